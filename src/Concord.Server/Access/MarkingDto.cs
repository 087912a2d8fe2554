namespace Concord.Server.Access;

/// <summary>A marking as the API shows and accepts it.</summary>
internal sealed record MarkingDto(string Classification, IReadOnlyList<string> ReleasableTo, IReadOnlyList<string> Caveats)
{
    /// <summary>The banner text, rendered the same way everywhere: LEVEL//CAVEAT/CAVEAT//REL TO A, B.</summary>
    public string? Label { get; init; }
}

/// <summary>Turns stored markings into their API form and back, with the deployment's scheme and caveats.</summary>
internal sealed class MarkingFormat(ClassificationScheme scheme, CaveatRegistry caveats)
{
    public ClassificationScheme Scheme => scheme;

    public CaveatRegistry Caveats => caveats;

    public MarkingDto ToDto(IMarked record) => ToDto(record.Classification, record.ReleasableTo, record.Caveats);

    /// <summary>
    /// How figures (counts, hotspots, spikes) or a file computed from records of these levels and caveats are marked: the
    /// highest level (the lowest when there is none) and every caveat.
    /// </summary>
    public (string Classification, IReadOnlyList<string> Caveats) Figures(IEnumerable<(int Level, long Caveats)> records)
    {
        var (level, bits) = records.Aggregate((Level: 0, Caveats: 0L), (all, r) => (Math.Max(all.Level, r.Level), all.Caveats | r.Caveats));
        return (scheme.Label(level), caveats.CodesOf(bits));
    }

    public MarkingDto ToDto(int classification, string releasableTo, long caveatBits)
    {
        var communities = Releasability.Decode(releasableTo);
        var caveatCodes = caveats.CodesOf(caveatBits);
        return new MarkingDto(scheme.Label(classification), communities, caveatCodes)
        {
            Label = Label(classification, communities, caveatCodes),
        };
    }

    /// <summary>
    /// The label is the server's rendering of the marking: sent back as read (or as the marking sent renders) it passes,
    /// but a label that says something else ("SECRET//NOFORN" on an UNCLASSIFIED marking) is refused on
    /// <paramref name="field"/>.label, not ignored. <paramref name="releasableTo"/> is the marking's encoded communities.
    /// </summary>
    public void CheckLabel(MarkingDto dto, int classification, string releasableTo, long caveatBits, string field, Dictionary<string, string[]> errors)
    {
        if (dto.Label is not { } label)
        {
            return;
        }

        var codes = caveats.CodesOf(caveatBits);
        var rendered = Label(classification, Releasability.Decode(releasableTo), codes);
        if (!string.Equals(label.Trim(), rendered, StringComparison.OrdinalIgnoreCase) && !string.Equals(label.Trim(), Label(classification, dto.ReleasableTo ?? [], codes), StringComparison.OrdinalIgnoreCase))
        {
            errors[field + ".label"] = [$"does not match the marking, which is labelled {rendered}: leave the label out, or send it as read"];
        }
    }

    public string Label(int classification, IReadOnlyList<string> communities, IReadOnlyList<string> caveatCodes)
    {
        var label = scheme.Label(classification);
        if (caveatCodes.Count > 0)
        {
            label += "//" + string.Join('/', caveatCodes);
        }

        if (communities.Count > 0)
        {
            label += "//REL TO " + string.Join(", ", communities.Select(c => c.ToUpperInvariant()));
        }

        return label;
    }

    /// <summary>
    /// Reads a marking a member asks for. The member's own organisation is always added to the releasability, and a member
    /// may not mark above their clearance nor with caveats they do not hold: they would lose sight of their own record.
    /// </summary>
    public bool TryRead(MarkingDto dto, Viewer author, string field, Dictionary<string, string[]> errors, out int classification, out string releasableTo, out long caveatBits)
    {
        classification = 0;
        releasableTo = "";
        caveatBits = 0;
        var start = errors.Count;

        if (string.IsNullOrWhiteSpace(dto.Classification) || !scheme.TryParse(dto.Classification, out classification))
        {
            errors[field + ".classification"] = [$"'{Http.QueryReader.Shown(dto.Classification ?? "")}' is not a level of the {scheme.Name} scheme ({string.Join(", ", scheme.Levels)})"];
        }
        else if (classification > author.Clearance)
        {
            errors[field + ".classification"] = [$"{scheme.Label(classification)} is above your clearance ({scheme.Label(author.Clearance)})"];
        }

        var tokens = new List<string> { Community.Organization(author.OrganizationCode) };
        foreach (var raw in dto.ReleasableTo ?? [])
        {
            if (Community.TryNormalize(raw ?? "", out var token, out var error))
            {
                tokens.Add(token);
            }
            else
            {
                errors[field + ".releasableTo"] = [error];
            }
        }

        caveatBits = 0;
        if (dto.Caveats?.Any(string.IsNullOrWhiteSpace) == true)
        {
            errors[field + ".caveats"] = ["must be caveat codes (one is null or empty)"];
        }
        else if (!caveats.TryGetBits(dto.Caveats ?? [], out caveatBits, out var unknown))
        {
            errors[field + ".caveats"] = [$"unknown caveat '{Http.QueryReader.Shown(unknown)}'"];
        }
        else if ((caveatBits & ~author.CaveatBits) != 0)
        {
            errors[field + ".caveats"] = [$"you do not hold {string.Join(", ", caveats.CodesOf(caveatBits & ~author.CaveatBits))}"];
        }

        releasableTo = Releasability.Encode(tokens);
        if (errors.Count == start)
        {
            CheckLabel(dto, classification, releasableTo, caveatBits, field, errors);
        }

        return errors.Count == start;
    }
}

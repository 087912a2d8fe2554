using System.Text.Json;
using Concord.Server.Access;

namespace Concord.Server.Sharing;

/// <summary>
/// An MOU or SOP as data: which default marking applies to the reports a party creates, by category. Versioned: a change
/// writes a new version, and each report keeps the version that marked it.
/// </summary>
internal sealed class Agreement : Realtime.IFeedEntity
{
    public string FeedName => "agreement";

    public required Guid Id { get; init; }

    public required int Version { get; init; }

    public required string Code { get; init; }

    public required string Name { get; init; }

    /// <summary>The party organisations, encoded <c>|org:A|org:B|</c>.</summary>
    public required string Parties { get; init; }

    public required string RulesJson { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required string CreatedBy { get; init; }

    public DateTime? RetiredAt { get; set; }

    /// <summary>
    /// When the agreement's first version was recorded (the mission directory sets it on the latest version it keeps;
    /// otherwise this version's time): its rules apply to incidents recorded since then, whatever later revisions changed.
    /// </summary>
    public DateTime InForceSince => _inForceSince ?? CreatedAt;

    private DateTime? _inForceSince;

    internal void FirstRecordedAt(DateTime at) => _inForceSince = at;

    /// <summary>Responsibility and assistance rules (see <see cref="Coordination.AgreementCoordination"/>), as JSON.</summary>
    public string CoordinationJson { get; init; } = "{}";

    /// <summary>The coordination rules, parsed once per loaded version: they are consulted for every incident routed.</summary>
    public Coordination.AgreementCoordination Coordination => _coordination ??= Concord.Server.Coordination.AgreementCoordination.Parse(CoordinationJson);

    private Coordination.AgreementCoordination? _coordination;

    /// <summary>
    /// The rules, parsed once per loaded version: they are consulted on every report created. Their reporters are read as
    /// validation read them (<c>" Kind: Humanitarian "</c> is <c>kind:humanitarian</c>), also for versions stored before
    /// they were stored so.
    /// </summary>
    public IReadOnlyList<AgreementRule> Rules => _rules ??= Normalized(JsonSerializer.Deserialize<List<AgreementRule>>(RulesJson, JsonSerializerOptions.Web) ?? []);

    /// <summary>The rules with each reporter as the community token it names.</summary>
    public static List<AgreementRule> Normalized(IEnumerable<AgreementRule> rules) =>
        [.. rules.Select(r => Access.Community.TryNormalize(r.Reporter ?? "", out var reporter, out _) ? r with { Reporter = reporter } : r)];

    private IReadOnlyList<AgreementRule>? _rules;
}

/// <summary>
/// One rule: reports created by <see cref="Reporter"/> (<c>org:CODE</c> or <c>kind:KIND</c>) whose category is
/// <see cref="Category"/> or below it (<c>*</c> for any) get <see cref="Marking"/> and <see cref="Tlp"/> by default.
/// </summary>
internal sealed record AgreementRule(string Reporter, string Category, MarkingDto Marking, string? Tlp);

/// <summary>The default a report gets from the agreements, with where it came from.</summary>
internal sealed record DefaultMarking(int Classification, IReadOnlySet<string> ReleasableTo, IReadOnlySet<string> Caveats, Tlp Tlp, Guid AgreementId, int AgreementVersion, string AgreementCode);

/// <summary>Pure decisions about agreements: which rule applies, and whether an explicit marking is looser than it.</summary>
internal static class AgreementDecisions
{
    /// <summary>
    /// The marking a record gets when its author names none: the agreement's default, or, with no agreement, its
    /// author's organisation only (sharing wider is a decision). Reports and TAK device records are marked by this alone.
    /// </summary>
    public static (int Classification, string ReleasableTo, long Caveats) Marks(DefaultMarking? resolved, string organizationCode, CaveatRegistry caveats) =>
        resolved is null
            ? (0, Releasability.Encode([Community.Organization(organizationCode)]), 0)
            : (resolved.Classification, Releasability.Encode(resolved.ReleasableTo), caveats.TryGetBits(resolved.Caveats, out var bits, out _) ? bits : 0);

    /// <summary>
    /// The default for a report: the most specific matching rule (longest category, then an organisation rule over a kind
    /// rule). Equally specific rules of several agreements combine to what the organisation agreed to in all of them:
    /// the highest level, the union of communities and caveats, the most restrictive TLP.
    /// </summary>
    public static DefaultMarking? Resolve(IEnumerable<Agreement> agreements, string organizationCode, OrganizationKind kind, string category, ClassificationScheme scheme)
    {
        var orgToken = Community.Organization(organizationCode);
        var kindToken = Community.Kind(kind);
        var matches = new List<(Agreement Agreement, AgreementRule Rule, int Specificity)>();
        // An agreement binds its parties only: a rule for a kind of organisation marks the reports of its parties of that kind.
        var party = "|" + orgToken + "|";
        foreach (var agreement in agreements.Where(a => a.RetiredAt is null && a.Parties.Contains(party, StringComparison.OrdinalIgnoreCase)))
        {
            foreach (var rule in agreement.Rules)
            {
                var reporter = rule.Reporter.Trim();
                var byOrganization = string.Equals(reporter, orgToken, StringComparison.OrdinalIgnoreCase);
                var byKind = string.Equals(reporter, kindToken, StringComparison.OrdinalIgnoreCase);
                if (!byOrganization && !byKind)
                {
                    continue;
                }

                var categoryLength = rule.Category == "*" ? 0
                    : category == rule.Category || category.StartsWith(rule.Category + ".", StringComparison.Ordinal) ? rule.Category.Length : -1;
                if (categoryLength >= 0)
                {
                    matches.Add((agreement, rule, (categoryLength * 2) + (byOrganization ? 1 : 0)));
                }
            }
        }

        if (matches.Count == 0)
        {
            return null;
        }

        var best = matches.Max(m => m.Specificity);
        var chosen = matches.Where(m => m.Specificity == best).ToList();
        var level = 0;
        var communities = new HashSet<string>(StringComparer.Ordinal);
        var caveats = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var tlp = Tlp.Clear;
        foreach (var (_, rule, _) in chosen)
        {
            if (scheme.TryParse(rule.Marking.Classification, out var l))
            {
                level = Math.Max(level, l);
            }

            foreach (var raw in rule.Marking.ReleasableTo ?? [])
            {
                if (Community.TryNormalize(raw, out var token, out _))
                {
                    communities.Add(token);
                }
            }

            // As the registry knows them (a rule's code may have been written with spaces around it).
            caveats.UnionWith((rule.Marking.Caveats ?? []).Select(c => c.Trim()));
            var ruleTlp = Tlps.TryParse(rule.Tlp, out var t) ? t : Tlp.Amber;
            tlp = ruleTlp > tlp ? ruleTlp : tlp;
        }

        communities.Add(orgToken);
        var source = chosen.OrderBy(c => c.Agreement.Code, StringComparer.Ordinal).First().Agreement;
        return new DefaultMarking(level, communities, caveats, tlp, source.Id, source.Version, source.Code);
    }

    /// <summary>
    /// How an explicit marking and TLP are looser than the default (each part apart, as each is refused under its own
    /// field), or null when both are at least as restrictive: a community is wider unless one of the default's holds it
    /// (<see cref="Community.Covers"/>: <c>org:FORCE</c> is within <c>mission</c>).
    /// </summary>
    public static Looser? Loosening(DefaultMarking @default, int classification, IReadOnlyCollection<string> releasableTo, IReadOnlyCollection<string> caveats, Tlp tlp, string authorOrganizationCode, ClassificationScheme scheme,
        Func<string, Organizations.Organization?> organization)
    {
        var reasons = new List<string>();
        if (classification < @default.Classification)
        {
            reasons.Add($"classification below {scheme.Label(@default.Classification)}");
        }

        var own = Community.Organization(authorOrganizationCode);
        var wider = releasableTo.Where(c => c != own && !@default.ReleasableTo.Any(d => Community.Covers(d, c, organization))).ToList();
        if (wider.Count > 0)
        {
            reasons.Add($"released also to {string.Join(", ", wider)}");
        }

        var dropped = @default.Caveats.Where(c => !caveats.Contains(c, StringComparer.OrdinalIgnoreCase)).ToList();
        if (dropped.Count > 0)
        {
            reasons.Add($"without caveat {string.Join(", ", dropped)}");
        }

        var widerTlp = tlp < @default.Tlp ? $"{Tlps.Label(tlp)} instead of {Tlps.Label(@default.Tlp)}" : null;
        return reasons.Count == 0 && widerTlp is null ? null : new Looser(reasons.Count == 0 ? null : string.Join("; ", reasons), widerTlp);
    }
}

/// <summary>Why a marking (its level, communities, caveats) and why a TLP are looser than an agreement's default; null where not.</summary>
internal sealed record Looser(string? Marking, string? Tlp)
{
    /// <summary>Both reasons, as the audit records a loosening.</summary>
    public override string ToString() => string.Join("; ", new[] { Marking, Tlp }.OfType<string>());
}

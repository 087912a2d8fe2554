namespace Concord.Server.Access;

/// <summary>
/// What every marked record stores, in three columns the database can filter on:
/// the classification level (an index into the scheme), the releasability set encoded as
/// <c>|token|token|</c> (so "released to X" is a substring test), and the caveats as a bit set
/// (so "viewer holds every caveat" is <c>(caveats &amp; ~held) = 0</c>).
/// </summary>
internal interface IMarked
{
    int Classification { get; }

    string ReleasableTo { get; }

    /// <summary>
    /// The mission and organisation-kind communities of <see cref="ReleasableTo"/> as bits, derived from it whenever it is set:
    /// most records are released to the mission or to kinds, and an integer test is far cheaper in SQL than a substring search.
    /// </summary>
    long ReleaseMask { get; }

    long Caveats { get; }
}

/// <summary>A marking in domain form: level, communities, caveat codes.</summary>
internal sealed record Marking(int Classification, IReadOnlySet<string> ReleasableTo, IReadOnlySet<string> Caveats)
{
    public string EncodedReleasability => Releasability.Encode(ReleasableTo);

    /// <summary>The reference form of the access rule, in plain C#. The SQL form in <see cref="Visibility"/> must agree with it.</summary>
    public static bool AllowsRead(int classification, string releasableTo, long caveats, Viewer viewer)
    {
        if (!Clears(viewer.Clearance, viewer.CaveatBits, classification, caveats))
        {
            return false;
        }

        foreach (var token in viewer.CommunityPatterns)
        {
            if (releasableTo.Contains(token, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether a clearance and caveats reach a marking's level and caveats (releasability aside).</summary>
    public static bool Clears(int clearance, long caveatBits, int classification, long caveats) =>
        classification <= clearance && (caveats & ~caveatBits) == 0;

    public static bool AllowsRead(IMarked record, Viewer viewer) =>
        AllowsRead(record.Classification, record.ReleasableTo, record.Caveats, viewer);
}

internal static class Releasability
{
    public static string Encode(IEnumerable<string> tokens)
    {
        var sorted = tokens.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        return sorted.Length == 0 ? "|" : "|" + string.Join('|', sorted) + "|";
    }

    public static IReadOnlyList<string> Decode(string encoded) =>
        encoded.Split('|', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The pattern that finds <paramref name="token"/> in an encoded set.</summary>
    public static string Pattern(string token) => "|" + token + "|";

    public const long MissionBit = 1;

    public static long KindBit(OrganizationKind kind) => 1L << ((int)kind + 1);

    /// <summary>The bits for the mission and organisation kinds named in an encoded set; other communities stay text.</summary>
    public static long Mask(string encoded)
    {
        long mask = 0;
        foreach (var token in Decode(encoded))
        {
            if (token == Community.Mission)
            {
                mask |= MissionBit;
            }
            else if (token.StartsWith("kind:", StringComparison.Ordinal) && OrganizationKinds.TryParse(token[5..], out var kind))
            {
                mask |= KindBit(kind);
            }
        }

        return mask;
    }
}

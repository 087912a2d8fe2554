using System.Text.RegularExpressions;

namespace Concord.Server.Access;

/// <summary>
/// A community a record can be released to: the whole mission, an organisation, an organisation kind, a nation, or a sharing group.
/// Written as tokens: <c>mission</c>, <c>org:UNPOL</c>, <c>kind:humanitarian</c>, <c>nation:FRA</c>, <c>group:CAN-NETWORK</c>.
/// </summary>
internal static partial class Community
{
    public const string Mission = "mission";

    public static string Organization(string code) => "org:" + code;

    public static string Kind(OrganizationKind kind) => "kind:" + OrganizationKinds.Token(kind);

    public static string Nation(string iso3) => "nation:" + iso3;

    public static string Group(string code) => "group:" + code;

    /// <summary>
    /// Whether everyone in community <paramref name="narrow"/> is in <paramref name="wide"/>: the same community; the mission
    /// holds every organisation, kind and nation; a kind or a nation holds the organisations of that kind or nation
    /// (<paramref name="organization"/> finds one by its code). A sharing group holds only itself, and is held only by itself.
    /// </summary>
    public static bool Covers(string wide, string narrow, Func<string, Organizations.Organization?> organization)
    {
        if (wide == narrow)
        {
            return true;
        }

        if (narrow.StartsWith("group:", StringComparison.Ordinal) || narrow == Mission)
        {
            return false;
        }

        if (wide == Mission)
        {
            return true;
        }

        return narrow.StartsWith("org:", StringComparison.Ordinal) && organization(narrow[4..]) is { } member
            && (wide == Kind(member.Kind) || (member.Nation is { Length: > 0 } nation && wide == Nation(nation)));
    }

    /// <summary>Normalises a token written by a user, or explains why it is not one.</summary>
    public static bool TryNormalize(string raw, out string token, out string error)
    {
        token = "";
        error = "";
        var text = raw.Trim();
        if (string.Equals(text, Mission, StringComparison.OrdinalIgnoreCase))
        {
            token = Mission;
            return true;
        }

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == text.Length - 1)
        {
            error = $"'{Http.QueryReader.Shown(raw)}' is not a community; use mission, org:CODE, kind:KIND, nation:ISO3 or group:CODE";
            return false;
        }

        var prefix = text[..colon].ToLowerInvariant();
        var value = text[(colon + 1)..];
        switch (prefix)
        {
            case "org" or "group" when CodePattern().IsMatch(value):
                token = prefix + ":" + value.ToUpperInvariant();
                return true;
            case "kind" when OrganizationKinds.TryParse(value, out var kind):
                token = Kind(kind);
                return true;
            case "nation" when NationPattern().IsMatch(value):
                token = Nation(value.ToUpperInvariant());
                return true;
            case "kind":
                error = $"'{Http.QueryReader.Shown(value)}' is not an organisation kind ({string.Join(", ", OrganizationKinds.All.Select(OrganizationKinds.Token))})";
                return false;
            case "nation":
                error = $"'{Http.QueryReader.Shown(value)}' is not an ISO 3166-1 alpha-3 nation code";
                return false;
            default:
                error = $"'{Http.QueryReader.Shown(raw)}' is not a community; use mission, org:CODE, kind:KIND, nation:ISO3 or group:CODE";
                return false;
        }
    }

    public static bool IsOrganizationCode(string code) => CodePattern().IsMatch(code);

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}\z")]
    private static partial Regex CodePattern();

    [GeneratedRegex(@"^[A-Za-z]{3}\z")]
    private static partial Regex NationPattern();
}

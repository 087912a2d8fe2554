namespace Concord.Server.Sharing;

/// <summary>
/// Traffic Light Protocol 2.0: how far a record may travel once it leaves Concord (exports, briefings). Inside Concord the
/// marking decides who sees what; TLP decides what an export may carry to an audience outside.
/// </summary>
internal enum Tlp
{
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

/// <summary>Who an export is for, from the widest audience to the narrowest.</summary>
internal enum ExportAudience
{
    /// <summary>Anyone: only TLP:CLEAR may go.</summary>
    Public,

    /// <summary>The wider community (partner agencies, clusters): CLEAR and GREEN.</summary>
    Community,

    /// <summary>The recipient's organisation and its clients on a need-to-know basis: up to AMBER.</summary>
    Clients,

    /// <summary>The recipient's organisation only: up to AMBER+STRICT. TLP:RED never leaves Concord in an export.</summary>
    Organization,
}

internal static class Tlps
{
    public static string Label(Tlp tlp) => tlp switch
    {
        Tlp.Clear => "TLP:CLEAR",
        Tlp.Green => "TLP:GREEN",
        Tlp.Amber => "TLP:AMBER",
        Tlp.AmberStrict => "TLP:AMBER+STRICT",
        Tlp.Red => "TLP:RED",
        _ => throw new ArgumentOutOfRangeException(nameof(tlp)),
    };

    public static string Token(Tlp tlp) => tlp switch
    {
        Tlp.AmberStrict => "amber+strict",
        _ => tlp.ToString().ToLowerInvariant(),
    };

    public static bool TryParse(string? text, out Tlp tlp)
    {
        tlp = Tlp.Amber;
        var t = text?.Trim().ToLowerInvariant().Replace("tlp:", "", StringComparison.Ordinal);
        switch (t)
        {
            case "clear" or "white":
                tlp = Tlp.Clear;
                return true;
            case "green":
                tlp = Tlp.Green;
                return true;
            case "amber":
                tlp = Tlp.Amber;
                return true;
            case "amber+strict" or "amber-strict":
                tlp = Tlp.AmberStrict;
                return true;
            case "red":
                tlp = Tlp.Red;
                return true;
            default:
                return false;
        }
    }

    public static Tlp Parse(string text) => TryParse(text, out var tlp) ? tlp : throw new FormatException($"'{text}' is not a TLP level");

    /// <summary>The most permissive TLP an export to <paramref name="audience"/> may carry.</summary>
    public static Tlp Widest(ExportAudience audience) => audience switch
    {
        ExportAudience.Public => Tlp.Clear,
        ExportAudience.Community => Tlp.Green,
        ExportAudience.Clients => Tlp.Amber,
        _ => Tlp.AmberStrict,
    };

    /// <summary>May a record marked <paramref name="tlp"/> go to <paramref name="audience"/>? RED never may.</summary>
    public static bool MayGoTo(Tlp tlp, ExportAudience audience) => tlp != Tlp.Red && tlp <= Widest(audience);
}

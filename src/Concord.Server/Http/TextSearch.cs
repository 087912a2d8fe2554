using System.Text;

namespace Concord.Server.Http;

/// <summary>The free-text filter (<c>q</c>) of the report and incident lists: case-insensitive containment.</summary>
internal static class TextSearch
{
    /// <summary>
    /// The words to look for, lower-cased and in composed form (a client may send "é" as "e" and a combining accent), and
    /// whether they reach beyond ASCII, so that stored text must be lower-cased beyond ASCII too (<see cref="Data.ConcordDb.Lower"/>).
    /// </summary>
    public static (string Needle, bool BeyondAscii) Needle(string text)
    {
        var needle = text.Normalize(NormalizationForm.FormC).ToLowerInvariant();
        return (needle, !Ascii.IsValid(needle));
    }
}

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
        var needle = Fold(text);
        return (needle, !Ascii.IsValid(needle));
    }

    /// <summary>Text as the search compares it: composed and lower-cased (what <see cref="Data.ConcordDb.Lower"/> does in SQL).</summary>
    public static string Fold(string text) => text.Normalize(NormalizationForm.FormC).ToLowerInvariant();

    /// <summary>The same test in memory, for incidents rebuilt for a viewer after the store selected them.</summary>
    public static bool Contains(string haystack, string text) => Fold(haystack).Contains(Needle(text).Needle, StringComparison.Ordinal);
}

using System.Globalization;
using System.Text.RegularExpressions;

namespace Concord.Server.Import;

/// <summary>
/// Dates in import files and queries as ISO 8601 and RFC 3339 write them: 2020-08-08, 2020-08-08T14:30,
/// 2020-08-08 14:30:00.000, with an optional Z or offset (±hh:mm, ±hhmm or ±hh; UTC when none); T and Z may be lower
/// case (RFC 3339 allows it). A looser parse would read a file re-saved in a day-first locale (04/05/2020) as the 5th of
/// April for some rows and refuse others.
/// </summary>
internal static partial class IsoDates
{
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();

    /// <summary>The date and time as written, an offset given with them dropped (calendar days of the place, as GED's).</summary>
    public static bool TryParseAsWritten(string? text, out DateTime value)
    {
        value = default;
        if (Normalised(text) is not { } iso || !DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var written))
        {
            return false;
        }

        value = DateTime.SpecifyKind(written.DateTime, DateTimeKind.Utc);
        return true;
    }

    public static bool TryParse(string? text, out DateTimeOffset value)
    {
        value = default;
        return Normalised(text) is { } iso
            && DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }

    /// <summary>The text in the one form .NET reads strictly (upper-case T and Z, offsets as ±hh:mm), or null when it is no ISO date.</summary>
    private static string? Normalised(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var upper = text.Trim().ToUpperInvariant();
        if (!Shape().IsMatch(upper))
        {
            return null;
        }

        // Any number of fraction digits, as RFC 3339 allows (Go's RFC3339Nano writes nine): .NET reads seven.
        if (upper.IndexOf('.', 10) is var dot and > 0)
        {
            var end = dot + 1;
            while (end < upper.Length && char.IsAsciiDigit(upper[end]))
            {
                end++;
            }

            if (end - dot - 1 > 7)
            {
                upper = string.Concat(upper.AsSpan(0, dot + 8), upper.AsSpan(end));
            }
        }

        // After the date (10 characters), a sign starts the offset: ±hh and ±hhmm become ±hh:mm.
        var sign = upper.IndexOfAny(['+', '-'], 10);
        if (sign < 0 || upper.Length - sign == 6)
        {
            return upper;
        }

        return upper.Length - sign == 3 ? upper + ":00" : string.Concat(upper.AsSpan(0, sign + 3), ":", upper.AsSpan(sign + 3));
    }
}

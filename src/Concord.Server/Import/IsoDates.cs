using System.Globalization;
using System.Text.RegularExpressions;

namespace Concord.Server.Import;

/// <summary>
/// Dates in import files as ISO 8601 writes them: 2020-08-08, 2020-08-08T14:30, 2020-08-08 14:30:00.000, with an optional
/// Z or ±hh:mm (UTC when none). A looser parse would read a file re-saved in a day-first locale (04/05/2020) as the
/// 5th of April for some rows and refuse others.
/// </summary>
internal static partial class IsoDates
{
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)?(?:Z|[+-]\d{2}:\d{2})?$", RegexOptions.CultureInvariant)]
    private static partial Regex Shape();

    /// <summary>The date and time as written, an offset given with them dropped (calendar days of the place, as GED's).</summary>
    public static bool TryParseAsWritten(string? text, out DateTime value)
    {
        value = default;
        if (text is null || !Shape().IsMatch(text.Trim())
            || !DateTimeOffset.TryParse(text.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var written))
        {
            return false;
        }

        value = DateTime.SpecifyKind(written.DateTime, DateTimeKind.Utc);
        return true;
    }

    public static bool TryParse(string? text, out DateTimeOffset value)
    {
        value = default;
        return text is not null && Shape().IsMatch(text.Trim())
            && DateTimeOffset.TryParse(text.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }
}

using System.Text.RegularExpressions;
using Concord.Server.Http;

namespace Concord.Server.Reports;

/// <summary>The rules a report must meet, as a pure function: each broken rule is an error keyed by its field.</summary>
internal static partial class ReportRules
{
    public const int MaxNarrativeLength = 8000;
    public const int MaxActors = 20;
    public const int MaxTextLength = 500;

    /// <summary>The longest name of one actor.</summary>
    public const int MaxActorLength = 200;

    /// <summary>The longest reference to a source record (<c>externalRef</c>).</summary>
    public const int MaxExternalRefLength = 200;
    public const int MaxCasualties = 1_000_000;
    public const double MaxPrecisionMeters = 1_000_000;

    /// <summary>How far in the future an observation may be, to allow for device clocks.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>How far ahead of UTC the earliest time zone is (UTC+14): a day has begun somewhere once it is this close.</summary>
    public static readonly TimeSpan EarliestTimeZone = TimeSpan.FromHours(14);

    public static readonly DateTimeOffset Earliest = new(1900, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static void Validate(CreateReport r, DateTimeOffset now, Func<string, bool> isKnownCategory, Dictionary<string, string[]> errors)
    {
        if (r.Id == Guid.Empty)
        {
            errors["id"] = ["must not be the empty id"];
        }

        if (r.ObservedAt is not { } observed)
        {
            errors["observedAt"] = ["is required"];
        }
        else if (ByDay(r.ObservedPrecision) is var byDay && observed > now + ClockSkew + (byDay ? EarliestTimeZone : TimeSpan.Zero))
        {
            // A day (or a coarser period) is written as its date, read as its start in UTC: a day that has begun somewhere
            // (east of UTC, the mission's own) is not in the future though its UTC midnight may be. Its time is held to
            // that too (no later than it is now at UTC+14).
            errors["observedAt"] = [byDay
                ? "is a day that has not begun yet anywhere"
                : $"is in the future beyond the {ClockSkew.TotalMinutes:0} minutes allowed for clock skew"];
        }
        else if (observed < Earliest)
        {
            errors["observedAt"] = ["is before 1900"];
        }

        if (r.ObservedPrecision is not null && !TryParsePrecision(r.ObservedPrecision, out _))
        {
            errors["observedPrecision"] = [$"must be one of {string.Join(", ", Enum.GetNames<TimePrecision>().Select(n => n.ToLowerInvariant()))}"];
        }

        ValidateLocation(r.Location, errors);

        if (string.IsNullOrWhiteSpace(r.Category))
        {
            errors["category"] = ["is required"];
        }
        else if (!isKnownCategory(r.Category))
        {
            errors["category"] = [$"'{Http.QueryReader.Shown(r.Category)}' is not in the taxonomy (see GET /api/categories)"];
        }

        if (r.Casualties is { } c)
        {
            ValidateRange(c.KilledCivilian, "casualties.killedCivilian", errors);
            ValidateRange(c.KilledOther, "casualties.killedOther", errors);
            ValidateRange(c.InjuredCivilian, "casualties.injuredCivilian", errors);
            ValidateRange(c.InjuredOther, "casualties.injuredOther", errors);
        }

        if (string.IsNullOrWhiteSpace(r.Narrative))
        {
            errors["narrative"] = ["is required"];
        }
        else if (r.Narrative.Length > MaxNarrativeLength)
        {
            errors["narrative"] = [$"is {r.Narrative.Length} characters long; at most {MaxNarrativeLength} are allowed"];
        }

        RejectControlCharacters(r.Narrative, "narrative", errors);
        RejectControlCharacters(r.ExternalRef, "externalRef", errors);
        RejectControlCharacters(r.Source?.Description, "source.description", errors);
        RejectControlCharacters(r.Source?.ProtectedIdentity, "source.protectedIdentity", errors);
        if (r.Language is not null && !IsLanguageTag(r.Language))
        {
            // Quoted by its start, control characters shown as '?', as every refused value is.
            errors["language"] = [$"'{Http.QueryReader.Shown(r.Language)}' is not a language tag such as en, fr or sg"];
        }

        CheckActors(r.Actors, errors);

        if (r.ExternalRef is { Length: > MaxExternalRefLength })
        {
            errors["externalRef"] = [$"at most {MaxExternalRefLength} characters are allowed"];
        }

        if (r.Source is { } s)
        {
            if (s.Reliability is not null && !(s.Reliability.Length == 1 && s.Reliability[0] is >= 'A' and <= 'F'))
            {
                errors["source.reliability"] = ["must be an Admiralty reliability grade A to F"];
            }

            if (s.Credibility is < 1 or > 6)
            {
                errors["source.credibility"] = ["must be an Admiralty credibility grade 1 to 6"];
            }

            if (s.Description?.Length > MaxTextLength)
            {
                errors["source.description"] = [$"at most {MaxTextLength} characters are allowed"];
            }

            if (s.ProtectedIdentity?.Length > MaxTextLength)
            {
                errors["source.protectedIdentity"] = [$"at most {MaxTextLength} characters are allowed"];
            }
        }
    }

    /// <summary>
    /// A report's actors, or those a releaser gives a sanitised copy: at most 20, each 1 to 200 characters of text.
    /// </summary>
    public static void CheckActors(IReadOnlyList<string>? actors, Dictionary<string, string[]> errors)
    {
        if (actors is null)
        {
            return;
        }

        if (actors.Count > MaxActors)
        {
            errors["actors"] = [$"at most {MaxActors} actors are allowed"];
        }
        else if (actors.Any(a => string.IsNullOrWhiteSpace(a) || a.Length > MaxActorLength || a.Contains('|', StringComparison.Ordinal)))
        {
            errors["actors"] = [$"each actor must be 1 to {MaxActorLength} characters, without '|'"];
        }
        else
        {
            foreach (var actor in actors)
            {
                RejectControlCharacters(actor, "actors", errors);
            }
        }
    }

    /// <summary>
    /// Text must be text: control characters other than tab and line breaks (NUL above all, which PostgreSQL cannot store
    /// and SQLite would keep) and halves of a UTF-16 surrogate pair are refused, naming the first one and where it is.
    /// </summary>
    public static void RejectControlCharacters(string? text, string field, Dictionary<string, string[]> errors)
    {
        if (text is not null && !errors.ContainsKey(field) && ControlCharacterProblem(text) is { } problem)
        {
            errors[field] = [problem];
        }
    }

    /// <summary><paramref name="text"/> with each character <see cref="ControlCharacterProblem"/> would refuse replaced by U+FFFD.</summary>
    public static string Printable(string text)
    {
        if (ControlCharacterProblem(text) is null)
        {
            return text;
        }

        var printable = text.ToCharArray();
        for (var i = 0; i < text.Length; i++)
        {
            if (Refused(text, i) is not null)
            {
                printable[i] = '\uFFFD';
            }
        }

        return new string(printable);
    }

    /// <summary>What <see cref="RejectControlCharacters"/> says of <paramref name="text"/>, or null when it is text.</summary>
    public static string? ControlCharacterProblem(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (Refused(text, i) is { } what)
            {
                return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"contains the {what} U+{(int)text[i]:X4} at position {i + 1}; only printable text, tabs and line breaks are allowed");
            }
        }

        return null;
    }

    /// <summary>What the character at <paramref name="i"/> is when text may not hold it ("control character", "noncharacter"), else null.</summary>
    private static string? Refused(string text, int i)
    {
        var c = text[i];
        // C0 and C1 controls alike: U+009B (CSI) starts a terminal's escape sequence as ESC [ does.
        if ((char.IsControl(c) && c is not '\t' and not '\n' and not '\r')
            || (char.IsHighSurrogate(c) && (i + 1 == text.Length || !char.IsLowSurrogate(text[i + 1])))
            || (char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(text[i - 1]))))
        {
            return "control character";
        }

        // Noncharacters are not characters at all (Unicode keeps them out of text, XML cannot carry them): they would
        // stop an export or a TAK event that has to write them.
        return c is '\uFFFE' or '\uFFFF' ? "noncharacter" : null;
    }

    /// <summary>At most <paramref name="length"/> characters of <paramref name="text"/>, never cutting a surrogate pair in half.</summary>
    public static string Truncate(string text, int length)
    {
        if (text.Length <= length)
        {
            return text;
        }

        return char.IsHighSurrogate(text[length - 1]) ? text[..(length - 1)] : text[..length];
    }

    /// <summary>Whether a stated time precision is a day or a coarser period.</summary>
    private static bool ByDay(string? precision) => precision is { } text && TryParsePrecision(text, out var stated) && stated >= TimePrecision.Day;

    public static bool TryParsePrecision(string text, out TimePrecision precision) =>
        EnumNames.TryParse(text, out precision);

    private static void ValidateLocation(LocationInput? location, Dictionary<string, string[]> errors)
    {
        if (location is null)
        {
            errors["location"] = ["is required"];
            return;
        }

        if (location.Latitude is not { } lat)
        {
            errors["location.latitude"] = ["is required"];
        }
        else if (!double.IsFinite(lat) || lat is < -90 or > 90)
        {
            errors["location.latitude"] = [$"{lat.ToString(System.Globalization.CultureInfo.InvariantCulture)} is out of range [-90, 90]"];
        }

        if (location.Longitude is not { } lon)
        {
            errors["location.longitude"] = ["is required"];
        }
        else if (!double.IsFinite(lon) || lon is < -180 or > 180)
        {
            errors["location.longitude"] = [$"{lon.ToString(System.Globalization.CultureInfo.InvariantCulture)} is out of range [-180, 180]"];
        }

        if (location.PrecisionMeters is { } p && (!double.IsFinite(p) || p < 0 || p > MaxPrecisionMeters))
        {
            errors["location.precisionMeters"] = [$"must be between 0 and {MaxPrecisionMeters:0} metres"];
        }
    }

    private static void ValidateRange(CasualtyRange? range, string field, Dictionary<string, string[]> errors)
    {
        if (range is null)
        {
            return;
        }

        int?[] values = [range.Low, range.Best, range.High];
        if (values.Any(v => v is < 0 or > MaxCasualties))
        {
            errors[field] = [$"figures must be between 0 and {MaxCasualties}"];
        }
        else if (range.Low > range.Best || range.Best > range.High || range.Low > range.High)
        {
            errors[field] = ["must satisfy low ≤ best ≤ high"];
        }
    }

    /// <summary>Whether <paramref name="tag"/> is a language tag (BCP 47 in its common shape: en, fr, sg, fr-CF).</summary>
    public static bool IsLanguageTag(string tag) => LanguageTag().IsMatch(tag);

    /// <summary>The language of a narrative sent without one.</summary>
    public const string DefaultLanguage = "en";

    // \z, not $: $ also matches before a final line break, which let "fr\n" through.
    [GeneratedRegex(@"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,4}\z")]
    private static partial Regex LanguageTag();
}

using System.Globalization;

namespace Concord.Server.Http;

/// <summary>
/// Typed query parameters read by hand, so that a bad value is a 400 naming the parameter and saying what it must be (the
/// framework's own binding answers a bare 400), and so that a limit out of range is refused rather than quietly clamped.
/// </summary>
internal sealed class QueryReader(IQueryCollection query, Dictionary<string, string[]>? errors = null)
{
    /// <summary>What was wrong, by parameter (shared with the caller's own checks when it passes its dictionary in).</summary>
    public Dictionary<string, string[]> Errors { get; } = errors ?? new(StringComparer.Ordinal);

    /// <summary>
    /// Refuses the parameters of <paramref name="query"/> not in <paramref name="taken"/> (names compared as the query
    /// collection does, ignoring case): a parameter a listing would not apply is refused rather than silently ignored.
    /// </summary>
    public static void RefuseOthers(IQueryCollection query, IReadOnlyCollection<string> taken, string what, Dictionary<string, string[]> errors)
    {
        // Named as values are shown (40 characters, control characters as '?'): the name is the caller's, and came back
        // whole, twice (the field and the detail), escape sequences and all.
        foreach (var key in query.Keys.Where(k => !taken.Contains(k, StringComparer.OrdinalIgnoreCase)))
        {
            errors[Shown(key)] = [taken.Count == 0 ? $"is not a parameter of {what}, which takes none" : $"is not a parameter of {what}, which takes {string.Join(", ", taken)}"];
        }
    }

    /// <summary>
    /// Refuses an API request that gives a query parameter more than once (400 naming it): every parameter of the API
    /// takes one value, and a repeated one was read as its values joined by commas (<c>q=foo&amp;q=bar</c> searched for
    /// "foo,bar"; two organisations were "no organisation 'A,B'") rather than refused.
    /// </summary>
    public static void UseOneValueEach(IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (context.Request.Path.StartsWithSegments("/api") && context.Request.Query.Where(p => p.Value.Count > 1).Select(p => p.Key).ToList() is [_, ..] repeated)
        {
            await Problems.Invalid(repeated.Select(Shown).Distinct(StringComparer.Ordinal).ToDictionary(k => k, _ => new[] { "is given more than once: give it once" }, StringComparer.Ordinal)).ExecuteAsync(context);
            return;
        }

        await next(context);
    });

    public bool? Bool(string name) => Read<bool>(name, text => bool.TryParse(text, out var value) ? value : null, "must be true or false");

    public Guid? Id(string name) => Read<Guid>(name, text => Guid.TryParse(text, out var value) ? value : null, "must be an id (a UUID)");

    /// <summary>
    /// The end of a time range: as <see cref="Time"/>, but a date alone (2024-03-31) means the end of that day (its last
    /// microsecond, the finest time both stores keep), as someone asking for records up to the 31st means: read as its
    /// midnight, the range would leave out nearly all of that day.
    /// </summary>
    public DateTimeOffset? Until(string name)
    {
        var text = query[name].ToString().Trim();
        var at = Time(name);
        return at is { } day && text.Length >= 10 && (text.Length == 10 || text[10] is '+' or '-' or 'Z' or 'z')
            ? (day < DateTimeOffset.MaxValue.AddDays(-1) ? day.AddDays(1).AddTicks(-TimeSpan.TicksPerMicrosecond) : DateTimeOffset.MaxValue)
            : at;
    }

    public DateTimeOffset? Time(string name) =>
        // ISO 8601 only: the invariant culture would also read 01/05/2024, as the 5th of January. With a T between date and
        // time, as a query has no spaces of its own: a space is a + left unencoded, and 2024-05-01+02:00 (a day from
        // 22:00 UTC) would be read as 02:00 UTC on the 1st.
        Read<DateTimeOffset>(name, text => !text.Contains(' ', StringComparison.Ordinal) && Import.IsoDates.TryParse(text, out var value) ? value : null,
            "is not an ISO 8601 time such as 2024-05-01T00:00:00Z or 2024-05-01T01:00:00%2B01:00 (a + in a query is written %2B)");

    public int Limit(int fallback, int max) =>
        Read<int>("limit", text => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value is >= 1 && value <= max ? value : null,
            $"must be a whole number from 1 to {max}", quoted: false) ?? fallback;

    /// <summary>The position a paged list's <c>cursor</c> (the <c>next</c> of its page before) holds; null when absent or (with an error) not one this API sealed.</summary>
    public Cursor? Cursor(CursorKeys keys) =>
        Read<Cursor>("cursor", text => Http.Cursor.TryDecode(text, keys, out var cursor) ? cursor : null, "is not a cursor returned by this API", quoted: false);

    /// <summary>The value of <paramref name="name"/>, null when absent or (with an error) when <paramref name="parse"/> refuses it.</summary>
    private T? Read<T>(string name, Func<string, T?> parse, string rule, bool quoted = true)
        where T : struct
    {
        if (query[name].ToString() is not { Length: > 0 } text)
        {
            return null;
        }

        if (parse(text) is { } value)
        {
            return value;
        }

        Errors[name] = [quoted ? $"'{Shown(text)}' {rule}" : rule];
        return null;
    }

    // A value is quoted back, cut short and without control characters (it may come from anywhere).
    /// <summary>A value a client sent, as an error message quotes it: its first 40 characters, control characters as '?'.</summary>
    public static string Shown(string text) => new([.. text.Take(40).Select(c => char.IsControl(c) ? '?' : c)]);
}

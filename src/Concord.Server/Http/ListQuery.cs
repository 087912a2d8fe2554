using System.Globalization;

namespace Concord.Server.Http;

/// <summary>The filters shared by list, map and export queries, parsed from the query string with an error per bad parameter.</summary>
internal sealed record ListQuery
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 5000;

    public BoundingBox? Bbox { get; init; }

    public DateTime? From { get; init; }

    public DateTime? To { get; init; }

    public string? Category { get; init; }

    public string? Organization { get; init; }

    public string? Status { get; init; }

    /// <summary>A classification level label (e.g. CONFIDENTIAL): only records marked at that level.</summary>
    public string? Classification { get; init; }

    public string? Text { get; init; }

    public int Limit { get; init; } = DefaultLimit;

    public Cursor? After { get; init; }

    /// <summary>The filters every report listing applies.</summary>
    public static readonly string[] ReportFilters = ["bbox", "from", "to", "category", "organization", "q"];

    /// <summary>The filters incident listings take: the report filters, the status and the classification.</summary>
    public static readonly string[] IncidentFilters = [.. ReportFilters, "status", "classification"];

    /// <summary>
    /// Parses the filters; <paramref name="cursors"/> is given by the lists that page, and without it a cursor is refused
    /// (a listing that is not paged would otherwise answer as if page two were page one). With <paramref name="honoured"/>,
    /// a parameter the listing does not apply is refused too, rather than answered as if it had been applied.
    /// </summary>
    public static bool TryParse(IQueryCollection query, CursorKeys? cursors, out ListQuery result, out Dictionary<string, string[]> errors,
        IReadOnlyCollection<string>? honoured = null)
    {
        errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (honoured is not null)
        {
            QueryReader.RefuseOthers(query, honoured, "this listing", errors);
        }

        BoundingBox? bbox = null;
        if (query["bbox"].ToString() is { Length: > 0 } bboxText)
        {
            if (BoundingBox.TryParse(bboxText, out var parsed, out var reason))
            {
                bbox = parsed;
            }
            else
            {
                errors["bbox"] = [reason];
            }
        }

        var reader = new QueryReader(query, errors);
        var from = reader.Time("from")?.UtcDateTime;
        var to = reader.Until("to")?.UtcDateTime;
        if (from > to)
        {
            errors["from"] = ["must not be after 'to'"];
        }

        var limit = reader.Limit(DefaultLimit, MaxLimit);

        Cursor? after = null;
        if (cursors is not null)
        {
            after = reader.Cursor(cursors);
        }
        else if (query["cursor"].ToString() is { Length: > 0 })
        {
            errors["cursor"] = ["this listing is not paged"];
        }

        var text = query["q"].ToString();
        if (text.Length > 200)
        {
            errors["q"] = ["at most 200 characters are allowed"];
        }

        Reports.ReportRules.RejectControlCharacters(text, "q", errors);

        result = new ListQuery
        {
            Bbox = bbox,
            From = from,
            To = to,
            Category = Optional(query, "category"),
            Organization = Optional(query, "organization"),
            Status = Optional(query, "status"),
            Classification = Optional(query, "classification"),
            Text = text.Length > 0 ? text : null,
            Limit = limit,
            After = after,
        };
        return errors.Count == 0;
    }

    private static string? Optional(IQueryCollection query, string name) =>
        query[name].ToString() is { Length: > 0 } value ? value.Trim() : null;

}

/// <summary>A viewport in GeoJSON order: west, south, east, north.</summary>
internal readonly record struct BoundingBox(double West, double South, double East, double North)
{
    public static bool TryParse(string text, out BoundingBox box, out string reason)
    {
        box = default;
        var parts = text.Split(',');
        var values = new double[4];
        // NaN parses as a number and fails every comparison below: it is no coordinate.
        if (parts.Length != 4 || !parts.Select((p, i) => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) && double.IsFinite(values[i])).All(ok => ok))
        {
            reason = "must be four numbers: west,south,east,north (longitude,latitude,longitude,latitude)";
            return false;
        }

        box = new BoundingBox(values[0], values[1], values[2], values[3]);
        if (box.West is < -180 or > 180 || box.East is < -180 or > 180 || box.South is < -90 or > 90 || box.North is < -90 or > 90)
        {
            reason = "longitudes must be within [-180, 180] and latitudes within [-90, 90]";
            return false;
        }

        if (box.South > box.North || box.West > box.East)
        {
            reason = "south must not exceed north, nor west exceed east (split a box that crosses the antimeridian in two)";
            return false;
        }

        reason = "";
        return true;
    }
}

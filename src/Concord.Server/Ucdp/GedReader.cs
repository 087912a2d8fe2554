using System.Globalization;

namespace Concord.Server.Ucdp;

/// <summary>One event of the UCDP Georeferenced Event Dataset (the fields Concord uses).</summary>
internal sealed record GedEvent
{
    public required long Id { get; init; }

    public required int TypeOfViolence { get; init; }

    public required string ConflictName { get; init; }

    public required string SideA { get; init; }

    public required string SideB { get; init; }

    public required int WherePrecision { get; init; }

    public required string WhereCoordinates { get; init; }

    public string? Adm1 { get; init; }

    public required double Latitude { get; init; }

    public required double Longitude { get; init; }

    public required int EventClarity { get; init; }

    public required int DatePrecision { get; init; }

    public required DateTime DateStart { get; init; }

    public required DateTime DateEnd { get; init; }

    public required int DeathsCivilians { get; init; }

    public required int Best { get; init; }

    public required int High { get; init; }

    public required int Low { get; init; }
}

/// <summary>A row read from a GED file: the event, or why the row was rejected. Lines count from 1 (the header).</summary>
/// <param name="WholeFile">The error is the file's (empty, or a header without the GED columns): nothing of it is read.</param>
internal sealed record GedRow(long Line, GedEvent? Event, string? Error, bool WholeFile = false);

/// <summary>
/// Streams the official 49-column UCDP GED CSV, one row at a time (constant memory). A bad row becomes a
/// <see cref="GedRow"/> with its line and reason; it never stops the rows after it.
/// </summary>
internal static class GedReader
{
    public static readonly IReadOnlyList<string> RequiredColumns =
    [
        "id", "type_of_violence", "conflict_name", "side_a", "side_b", "where_prec", "where_coordinates", "adm_1",
        "latitude", "longitude", "event_clarity", "date_prec", "date_start", "date_end", "deaths_civilians", "best", "high", "low",
    ];

    public static IEnumerable<GedRow> Read(TextReader text)
    {
        using var records = CsvRecords.Read(text).GetEnumerator();
        if (!CsvRecords.MoveToHeader(records))
        {
            yield return new GedRow(1, null, "the file is empty: no header row", WholeFile: true);
            yield break;
        }

        var header = CsvRecords.Header(records.Current.Fields);
        if (CsvRecords.HeaderProblem(header, RequiredColumns, "GED") is { } problem)
        {
            yield return new GedRow(records.Current.Line, null, problem, WholeFile: true);
            yield break;
        }

        var index = RequiredColumns.ToDictionary(c => c, c => Array.IndexOf(header, c), StringComparer.Ordinal);
        while (records.MoveNext())
        {
            var record = records.Current;
            if (record.IsBlank)
            {
                continue;
            }

            yield return record.Error is { } error
                ? new GedRow(record.Line, null, error)
                : Parse(record.Line, record.Fields, header.Length, index);
        }
    }

    private static GedRow Parse(long line, string[] fields, int columns, Dictionary<string, int> index)
    {
        if (fields.Length != columns)
        {
            return new GedRow(line, null, $"has {fields.Length} fields; the header has {columns}");
        }

        string Field(string name) => fields[index[name]];
        var errors = new List<string>();

        long Long(string name)
        {
            if (long.TryParse(Field(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
            {
                return v;
            }

            errors.Add($"{name} {Import.Quoted.Of(Field(name))} is not a whole number");
            return 0;
        }

        int Int(string name, int min, int max)
        {
            var unreadable = errors.Count;
            var v = Long(name);
            // Not a number: said once, not again as a 0 out of range that the file never held.
            if (errors.Count == unreadable && (v < min || v > max))
            {
                errors.Add($"{name} {v} is outside {min}..{max}");
            }

            return (int)Math.Clamp(v, min, max);
        }

        double Coordinate(string name, double limit)
        {
            if (double.TryParse(Field(name), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) && Math.Abs(v) <= limit)
            {
                return v;
            }

            errors.Add($"{name} {Import.Quoted.Of(Field(name))} is not a coordinate within ±{limit}");
            return 0;
        }

        DateTime Date(string name)
        {
            // GED dates are calendar days where the event happened: an offset written with one does not move it to another day.
            if (Import.IsoDates.TryParseAsWritten(Field(name), out var v))
            {
                return v;
            }

            errors.Add($"{name} {Import.Quoted.Of(Field(name))} is not an ISO 8601 date (yyyy-mm-dd, optionally with a time)");
            return default;
        }

        var ged = new GedEvent
        {
            Id = Long("id"),
            TypeOfViolence = Int("type_of_violence", 1, 3),
            ConflictName = Field("conflict_name"),
            SideA = Field("side_a"),
            SideB = Field("side_b"),
            WherePrecision = Int("where_prec", 1, 7),
            WhereCoordinates = Field("where_coordinates"),
            Adm1 = Import.MissingValue.Cleared(Field("adm_1")) is { Length: > 0 } adm1 ? adm1 : null,
            Latitude = Coordinate("latitude", 90),
            Longitude = Coordinate("longitude", 180),
            EventClarity = Int("event_clarity", 1, 2),
            DatePrecision = Int("date_prec", 1, 5),
            DateStart = Date("date_start"),
            DateEnd = Date("date_end"),
            DeathsCivilians = Int("deaths_civilians", 0, 1_000_000),
            Best = Int("best", 0, 1_000_000),
            High = Int("high", 0, 1_000_000),
            Low = Int("low", 0, 1_000_000),
        };

        if (errors.Count == 0 && ged.DateEnd < ged.DateStart)
        {
            errors.Add("date_end is before date_start");
        }

        return errors.Count > 0 ? new GedRow(line, null, string.Join("; ", errors)) : new GedRow(line, ged, null);
    }
}

using System.Globalization;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Reports;
using Concord.Server.Ucdp;

namespace Concord.Server.Import;

/// <summary>A row of an import file: the report it becomes, or why it cannot. Lines count from 1 (the header, in CSV).</summary>
/// <param name="WholeFile">
/// The error is the file's, not a row's: it is empty, its header lacks the format's columns, or it is no FeatureCollection
/// (or breaks off before its first feature). Nothing of it is read.
/// </param>
internal sealed record ImportRow(long Line, CreateReport? Report, string? Error, bool WholeFile = false);

internal enum ImportFormat
{
    Ged,
    Acled,
    GeoJson,
}

/// <summary>The three import formats, each read as a stream of rows: a bad row is reported with its line and never stops the rest.</summary>
internal static class ImportReaders
{
    public static bool TryParseFormat(string? text, out ImportFormat format)
    {
        format = text?.ToLowerInvariant() switch
        {
            "ged" or "ucdp" or "ucdp-ged" => ImportFormat.Ged,
            "acled" => ImportFormat.Acled,
            "geojson" => ImportFormat.GeoJson,
            _ => (ImportFormat)(-1),
        };
        return Enum.IsDefined(format);
    }

    /// <summary>
    /// The report field an error found at intake names (<c>observedAt</c>, <c>narrative</c>, …), with where in the file
    /// it came from, so that a rejection points at the columns to fix: <c>observedAt (from date_start)</c>.
    /// </summary>
    public static string Origin(ImportFormat format, string field)
    {
        var key = field.StartsWith("casualties", StringComparison.Ordinal) ? "casualties" : field;
        var from = format switch
        {
            ImportFormat.Ged => key switch
            {
                "observedAt" => "date_start",
                "observedPrecision" => "date_prec",
                "location" => "latitude, longitude",
                "location.latitude" => "latitude",
                "location.longitude" => "longitude",
                "location.precisionMeters" => "where_prec",
                "category" => "type_of_violence",
                "casualties" => "best, low, high, deaths_civilians",
                "narrative" => "side_a, side_b, where_coordinates, adm_1, conflict_name",
                "actors" => "side_a, side_b",
                "source.description" or "externalRef" or "id" => "id",
                _ => null,
            },
            ImportFormat.Acled => key switch
            {
                "observedAt" => "event_date",
                "observedPrecision" => "time_precision",
                "location" => "latitude, longitude",
                "location.latitude" => "latitude",
                "location.longitude" => "longitude",
                "location.precisionMeters" => "geo_precision",
                "category" => "event_type, sub_event_type",
                "casualties" => "fatalities, civilian_targeting",
                "narrative" => "notes (or event_type, sub_event_type, location)",
                "actors" => "actor1, actor2",
                "source.description" => "source",
                "externalRef" or "id" => "event_id_cnty",
                _ => null,
            },
            _ => key switch
            {
                "observedAt" or "observedPrecision" or "category" or "narrative" or "language" or "actors" => "properties." + key,
                "location" => "geometry.coordinates",
                "location.latitude" => "geometry.coordinates[1]",
                "location.longitude" => "geometry.coordinates[0]",
                "location.precisionMeters" => "properties.precisionMeters",
                "casualties" => "properties.killed, killedCivilians, injured",
                "source.reliability" => "properties.reliability",
                "source.credibility" => "properties.credibility",
                "source.description" => "properties.source",
                "externalRef" or "id" => "the dataset's name and the feature's id",
                _ => null,
            },
        };
        return from is null ? field : $"{field} (from {from})";
    }

    /// <summary>Why a dataset name given for an import (<c>--source</c>, <c>source=</c>) cannot be used, or null: 1 to 100 characters, none a control character.</summary>
    public static string? SourceProblem(string source) =>
        source.Length == 0 ? "must not be empty" : source.Length > 100 ? $"is {source.Length} characters long; at most 100" : source.Any(char.IsControl) ? "must not hold control characters" : null;

    /// <param name="source">
    /// The dataset's name: the file's name, or <c>--source</c>, or the API's <c>source</c>. For GeoJSON, it keeps this
    /// dataset's feature ids apart from other datasets'; for GED, it names the release credited in each report's source
    /// (<see cref="GedMapping.Version"/>).
    /// </param>
    public static IEnumerable<ImportRow> Read(ImportFormat format, TextReader text, MarkingDto? marking, string source = "geojson") => format switch
    {
        ImportFormat.Ged => Ged(text, marking, GedMapping.Version(source)),
        ImportFormat.Acled => AcledReader.Read(text, marking),
        ImportFormat.GeoJson => GeoJsonReader.Read(text, marking, source),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    /// <summary>GED rows as reports, each crediting <paramref name="version"/> (read from the file's name once).</summary>
    private static IEnumerable<ImportRow> Ged(TextReader text, MarkingDto? marking, string? version) =>
        GedReader.Read(text).Select(r => r.Event is { } e ? new ImportRow(r.Line, GedMapping.ToReport(e, marking, version), null) : new ImportRow(r.Line, null, r.Error, r.WholeFile));
}

/// <summary>
/// ACLED-style CSV (the public export's column names): event_id_cnty, event_date, time_precision, event_type,
/// sub_event_type, actor1, actor2, latitude, longitude, geo_precision, fatalities, notes, source; optional
/// civilian_targeting. Event and sub-event types map to the taxonomy's ACLED categories by their ACLED names.
/// </summary>
internal static class AcledReader
{
    public const string Dataset = "acled";

    public static readonly IReadOnlyList<string> RequiredColumns =
        ["event_id_cnty", "event_date", "time_precision", "event_type", "sub_event_type", "actor1", "actor2", "latitude", "longitude", "geo_precision", "fatalities", "notes"];

    private static readonly Lazy<Dictionary<string, string>> Categories = new(LoadCategories);

    public static IEnumerable<ImportRow> Read(TextReader text, MarkingDto? marking)
    {
        using var records = CsvRecords.Read(text).GetEnumerator();
        if (!CsvRecords.MoveToHeader(records))
        {
            yield return new ImportRow(1, null, "the file is empty: no header row", WholeFile: true);
            yield break;
        }

        var header = CsvRecords.Header(records.Current.Fields);
        if (CsvRecords.HeaderProblem(header, RequiredColumns, "ACLED") is { } problem)
        {
            yield return new ImportRow(records.Current.Line, null, problem, WholeFile: true);
            yield break;
        }

        var index = header.Select((h, i) => (h, i)).Where(p => p.h.Length > 0).ToDictionary(p => p.h, p => p.i, StringComparer.Ordinal);
        while (records.MoveNext())
        {
            var record = records.Current;
            if (record.IsBlank)
            {
                continue;
            }

            if (record.Error is { } error)
            {
                yield return new ImportRow(record.Line, null, error);
            }
            else if (record.Fields.Length != header.Length)
            {
                yield return new ImportRow(record.Line, null, $"has {record.Fields.Length} fields; the header has {header.Length}");
            }
            else
            {
                yield return Map(record.Line, name => index.TryGetValue(name, out var i) ? record.Fields[i].Trim() : "", marking);
            }
        }
    }

    /// <summary>
    /// Where a report's window starts for an ACLED date: ACLED codes an event known only by its week or month at the middle
    /// of it, while a report's time is the start of its window (its precision the window's length). Read as given, an event
    /// of "March" dated the 15th was placed from mid-March to mid-April, missed by reports of its first half, and refused as
    /// a time to come when the month's middle was still ahead.
    /// </summary>
    internal static DateTime WindowStart(DateTime date, string precision) => precision switch
    {
        // A date in the first days of year 1 (an export's "no date") has no three days before it: kept, to be refused as
        // before 1900 by the report's rules like any such date, not thrown on (which stopped the whole import).
        "week" => date > DateTime.MinValue.AddDays(3) ? date.AddDays(-3) : date,
        "month" => new DateTime(date.Year, date.Month, 1, 0, 0, 0, DateTimeKind.Utc),
        _ => date,
    };

    /// <summary>What <c>civilian_targeting</c> may say (any case), and whether it means "targets civilians".</summary>
    private static readonly Dictionary<string, bool> CivilianTargeting = new(StringComparer.OrdinalIgnoreCase)
    {
        [""] = false,
        ["no"] = false,
        ["false"] = false,
        ["0"] = false,
        ["Civilian targeting"] = true,
        ["yes"] = true,
        ["true"] = true,
        ["1"] = true,
    };

    private static ImportRow Map(long line, Func<string, string> field, MarkingDto? marking)
    {
        var errors = new List<string>();
        var id = field("event_id_cnty");
        if (id.Length == 0)
        {
            errors.Add("event_id_cnty is empty");
        }

        // ACLED writes its dates as 2024-05-01 or 1 May 2024; a tool that re-saved the export may have written the day as
        // an ISO 8601 date and time (2024-05-01T00:00:00, 2024-05-01 00:00:00): the calendar day as written.
        if (IsoDates.TryParseAsWritten(field("event_date"), out var written))
        {
            written = written.Date;
        }
        else if (!DateTime.TryParseExact(field("event_date"), ["dd MMMM yyyy", "d MMMM yyyy"], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out written))
        {
            errors.Add($"event_date {Quoted.Of(field("event_date"))} is not a date such as 2024-05-01");
        }

        var latitude = Number("latitude", -90, 90);
        var longitude = Number("longitude", -180, 180);
        var fatalityValue = Number("fatalities", 0, 1_000_000);
        var fatalities = (int)fatalityValue;
        if (fatalities != fatalityValue)
        {
            errors.Add($"fatalities {Quoted.Of(field("fatalities"))} must be a whole number");
        }

        // ACLED: time_precision 1 day, 2 week, 3 month; geo_precision 1 the place, 2 near it, 3 the admin area.
        var precision = field("time_precision") switch { "1" => "day", "2" => "week", "3" => "month", _ => null };
        if (precision is null)
        {
            errors.Add($"time_precision {Quoted.Of(field("time_precision"))} must be 1 (day), 2 (week) or 3 (month)");
        }

        double? meters = field("geo_precision") switch { "1" => 2_000.0, "2" => 25_000.0, "3" => 100_000.0, _ => null };
        if (meters is null)
        {
            errors.Add($"geo_precision {Quoted.Of(field("geo_precision"))} must be 1 (the place), 2 (near it) or 3 (the admin area)");
        }

        var category = Category(field("event_type"), field("sub_event_type"));
        if (category is null)
        {
            errors.Add($"event_type {Quoted.Of(field("event_type"))} / sub_event_type {Quoted.Of(field("sub_event_type"))} is not an ACLED type");
        }

        // ACLED marks an event that targets civilians "Civilian targeting" and leaves the others empty; a file re-saved by
        // R writes the empty ones NA. Any other value is refused by name rather than read as "yes" (every death of the file
        // counted as a civilian's) or as "no".
        var targeting = MissingValue.Cleared(field("civilian_targeting"));
        bool? targetsCivilians = CivilianTargeting.TryGetValue(targeting, out var targets) ? targets : null;
        if (targetsCivilians is null)
        {
            errors.Add($"civilian_targeting {Quoted.Of(targeting)} must be 'Civilian targeting' or empty");
        }

        if (errors.Count > 0)
        {
            return new ImportRow(line, null, string.Join("; ", errors));
        }

        var civilians = targetsCivilians == true || category!.StartsWith("acled.violence-against-civilians", StringComparison.Ordinal);
        var notes = MissingValue.Cleared(field("notes"));
        return new ImportRow(line, new CreateReport
        {
            Id = GedMapping.NameBasedGuid($"{Dataset}:{id}"),
            ObservedAt = new DateTimeOffset(WindowStart(written, precision!), TimeSpan.Zero),
            ObservedPrecision = precision,
            Location = new LocationInput(latitude, longitude, meters!.Value, null),
            Category = category,
            Casualties = new CasualtiesInput(civilians ? new CasualtyRange(null, fatalities, null) : null, civilians ? null : new CasualtyRange(null, fatalities, null), null, null),
            Narrative = notes.Length > 0 ? notes : $"{field("event_type")}: {field("sub_event_type")} at {field("location")}",
            Language = "en",
            Actors = new[] { MissingValue.Cleared(field("actor1")), MissingValue.Cleared(field("actor2")) }.Where(a => a.Length > 0).ToList(),
            Source = new SourceInput("B", 2, MissingValue.Cleared(field("source")) is { Length: > 0 } source ? ReportRules.Truncate("ACLED: " + source, 500) : "ACLED", null),
            Marking = marking,
            ExternalRef = $"{Dataset}:{id}",
        }, null);

        double Number(string name, double min, double max)
        {
            if (double.TryParse(field(name), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max)
            {
                return v;
            }

            errors.Add($"{name} {Quoted.Of(field(name))} must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
            return 0;
        }
    }

    /// <summary>
    /// The taxonomy code for an ACLED event type and sub-event type; the event type's own code when no sub-event type is
    /// given; null when either is not ACLED's (an unknown sub-event type is refused, not filed under its event type).
    /// </summary>
    public static string? Category(string eventType, string subEventType)
    {
        var map = Categories.Value;
        return subEventType.Trim().Length == 0
            ? map.GetValueOrDefault($"{eventType.Trim().ToLowerInvariant()}|")
            : map.GetValueOrDefault($"{eventType.Trim().ToLowerInvariant()}|{subEventType.Trim().ToLowerInvariant()}");
    }

    private static Dictionary<string, string> LoadCategories()
    {
        using var stream = typeof(AcledReader).Assembly.GetManifestResourceStream("taxonomy.json") ?? throw new InvalidOperationException("taxonomy.json is not embedded");
        using var document = JsonDocument.Parse(stream);
        var entries = document.RootElement.GetProperty("categories").EnumerateArray()
            .Where(c => c.GetProperty("scheme").GetString() == "acled" && c.TryGetProperty("acledName", out _))
            .Select(c => (Code: c.GetProperty("code").GetString()!, Parent: c.GetProperty("parent").GetString(), Name: c.GetProperty("acledName").GetString()!.ToLowerInvariant()))
            .ToList();
        var names = entries.ToDictionary(e => e.Code, e => e.Name, StringComparer.Ordinal);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (code, parent, name) in entries)
        {
            map[parent is null ? $"{name}|" : $"{names[parent]}|{name}"] = code;
        }

        return map;
    }
}

/// <summary>
/// A GeoJSON FeatureCollection of points. Properties: id (or the feature's id; required, for idempotence), observedAt,
/// category, narrative, and optionally precisionMeters, observedPrecision, killed, killedCivilians, injured, actors,
/// language, reliability, credibility, source. Read as a stream, one feature at a time (<see cref="FeatureStream"/>), so
/// memory stays bounded by the largest feature, not the file.
/// </summary>
internal static class GeoJsonReader
{
    public const string Dataset = "geojson";

    /// <summary>The largest feature read: a larger one is rejected (and skipped) without being held in memory.</summary>
    public const int MaxFeatureBytes = 1024 * 1024;

    public static IEnumerable<ImportRow> Read(TextReader text, MarkingDto? marking, string source)
    {
        var stream = new FeatureStream(text, MaxFeatureBytes);
        var n = 0;
        for (var step = stream.Next(); step.Kind != FeatureStream.StepKind.End; step = stream.Next())
        {
            n++;
            if (step.Kind == FeatureStream.StepKind.Broken)
            {
                // The rest of the document cannot be read: one more feature is counted for it, after those read.
                yield return new ImportRow(n, null, step.Reason!, WholeFile: n == 1);
                yield break;
            }

            ImportRow row;
            using (step.Feature)
            {
                row = step.Reason is { } reason ? new ImportRow(n, null, reason) : MapReadable(n, step.Feature!.RootElement, marking, source);
            }

            yield return row;
        }
    }

    /// <summary>
    /// <see cref="Map"/>, for a feature whose strings may not all be text: JSON lets a string hold an escaped half of a
    /// surrogate pair (<c>"\ud83d"</c>, what a serialiser writes for an emoji cut in two), which reads as no string at all.
    /// That feature is rejected, naming where, rather than ending the import.
    /// </summary>
    private static ImportRow MapReadable(int n, JsonElement feature, MarkingDto? marking, string source)
    {
        try
        {
            return Map(n, feature, marking, source);
        }
        catch (InvalidOperationException) when (Unreadable(feature, "feature") is { } where)
        {
            return new ImportRow(n, null, $"{where} holds half of a surrogate pair (an escape \\uD800–\\uDFFF without its other half): it is not text");
        }
    }

    /// <summary>Where in <paramref name="value"/> a string or a property name does not read as text; null when all do.</summary>
    internal static string? Unreadable(JsonElement value, string path)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                try
                {
                    _ = value.GetString();
                    return null;
                }
                catch (InvalidOperationException)
                {
                    return path;
                }

            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (Unreadable(item, string.Create(CultureInfo.InvariantCulture, $"{path}[{i++}]")) is { } inItem)
                    {
                        return inItem;
                    }
                }

                return null;
            case JsonValueKind.Object:
                foreach (var property in value.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        return $"a property name in {path}";
                    }

                    if (Unreadable(property.Value, $"{path}.{Quoted.Raw(name)}") is { } inProperty)
                    {
                        return inProperty;
                    }
                }

                return null;
            default:
                return null;
        }
    }

    /// <summary>A feature's source reference: the dataset's name (with <c>:</c> written <c>%3A</c>) and the feature's id.</summary>
    public static string ReferenceOf(string source, string id) => $"{Dataset}:{source.Replace(":", "%3A", StringComparison.Ordinal)}:{id}";

    /// <summary>Why <paramref name="name"/> of <paramref name="e"/> cannot be read as text (an object, an array, true or false), or null.</summary>
    private static string? WrongKind(JsonElement e, string name, string path) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.Object or JsonValueKind.Array or JsonValueKind.True or JsonValueKind.False
            ? $"{path} is {Kind(v)}, not text"
            : null;

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "text",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        _ => "null",
    };

    /// <summary>Features are numbered from 1 in place of lines.</summary>
    private static ImportRow Map(int n, JsonElement feature, MarkingDto? marking, string source)
    {
        // A blank text is missing, as null is: ogr2ogr and spreadsheets write an empty cell as "" (a survey's unknown
        // figures, an empty grade), and an optional property left empty was a rejected feature.
        static bool Missing(JsonElement v) => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.String && string.IsNullOrWhiteSpace(v.GetString()));
        string? Text(JsonElement e, string name) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && !Missing(v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Number => v.GetRawText(),
            _ => null,
        } : null;

        // A whole number written as 5.0 (GeoPandas writes integer columns with a missing value so) is still 5.
        static decimal? Whole(string t) => decimal.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == decimal.Truncate(d) ? decimal.Truncate(d) : null;
        int? Int(JsonElement e, string name) => Text(e, name) is { } t
            && (int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
                || (Whole(t) is { } d && d is >= int.MinValue and <= int.MaxValue && (v = (int)d) == d))
            ? v : null;

        if (feature.ValueKind != JsonValueKind.Object)
        {
            return new ImportRow(n, null, $"feature is {feature.ValueKind.ToString().ToLowerInvariant()}, not an object");
        }

        if (!feature.TryGetProperty("geometry", out var geometry) || geometry.ValueKind != JsonValueKind.Object)
        {
            return new ImportRow(n, null, geometry.ValueKind == JsonValueKind.Null ? "feature's geometry is null: a report needs a Point with [longitude, latitude]"
                : "feature has no Point geometry with [longitude, latitude]");
        }

        // A MultiPoint of one position is a point (QGIS writes a layer typed MultiPoint so); of several, it is several
        // places, and no report has more than one.
        var type = Text(geometry, "type");
        geometry.TryGetProperty("coordinates", out var coordinates);
        if (type == "MultiPoint" && coordinates.ValueKind == JsonValueKind.Array && coordinates.GetArrayLength() == 1)
        {
            coordinates = coordinates[0];
        }
        else if (type != "Point")
        {
            return new ImportRow(n, null, type == "MultiPoint" && coordinates.ValueKind == JsonValueKind.Array
                ? $"feature's geometry is a MultiPoint of {coordinates.GetArrayLength()} positions: a report has one place (a Point, or a MultiPoint of one)"
                : $"feature's geometry is {(type is null ? "of no type" : "a " + Quoted.Of(type))}, not a Point with [longitude, latitude]");
        }

        if (coordinates.ValueKind != JsonValueKind.Array || coordinates.GetArrayLength() < 2
            || coordinates[0].ValueKind != JsonValueKind.Number || coordinates[1].ValueKind != JsonValueKind.Number)
        {
            return new ImportRow(n, null, "feature has no Point geometry with [longitude, latitude]");
        }

        // A number too large for a double (1e400) is valid JSON: GetDouble would throw and end the whole import.
        if (!coordinates[0].TryGetDouble(out var longitude) || !coordinates[1].TryGetDouble(out var latitude)
            || !double.IsFinite(longitude) || !double.IsFinite(latitude))
        {
            return new ImportRow(n, null, $"geometry.coordinates [{Quoted.Raw(coordinates[0].GetRawText())}, {Quoted.Raw(coordinates[1].GetRawText())}] are not finite numbers");
        }

        if (feature.TryGetProperty("properties", out var given) && given.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
        {
            return new ImportRow(n, null, $"feature.properties is {Kind(given)}, not an object");
        }

        var properties = given.ValueKind == JsonValueKind.Object ? given : default;
        // A value of the wrong kind is named, not read as missing: a category given as an object would otherwise become
        // "category is required", and actors given as one string would be imported as none.
        if ((WrongKind(feature, "id", "feature.id") ?? WrongKind(properties, "id", "properties.id")) is { } wrongId)
        {
            return new ImportRow(n, null, wrongId);
        }

        // An id written as 7.0 (GeoPandas and GDAL write an integer column so once it has a missing value) is the feature 7
        // was: another text would import every feature again as new; so is " 7 " (a padded text column), as ACLED's and
        // GED's ids are read. A blank properties.id leaves the feature's own.
        string? Id(JsonElement e) => Text(e, "id") is not { } t ? null
            : e.GetProperty("id").ValueKind == JsonValueKind.Number && Whole(t) is { } whole ? whole.ToString(CultureInfo.InvariantCulture)
            : string.IsNullOrWhiteSpace(t) ? null : t.Trim();
        var id = Id(properties) ?? Id(feature);
        if (string.IsNullOrWhiteSpace(id))
        {
            return new ImportRow(n, null, "feature has no id (properties.id or id): it is needed to import again without duplicates");
        }

        // A value that is there must read as one: "many" is not imported as no casualties, nor -1 ("unknown") as none.
        var errors = new List<string>();
        foreach (var name in (string[])["observedAt", "observedPrecision", "category", "narrative", "language", "reliability", "source"])
        {
            if (WrongKind(properties, name, "properties." + name) is { } wrong)
            {
                errors.Add(wrong);
            }
        }

        JsonElement actorsGiven = default;
        if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty("actors", out actorsGiven) && !Missing(actorsGiven))
        {
            if (actorsGiven.ValueKind != JsonValueKind.Array)
            {
                errors.Add($"properties.actors is {Kind(actorsGiven)}, not an array of names");
            }
            else if (actorsGiven.EnumerateArray().Select((a, i) => (a, i)).FirstOrDefault(x => x.a.ValueKind != JsonValueKind.String) is { a.ValueKind: not JsonValueKind.Undefined } notName)
            {
                errors.Add($"properties.actors[{notName.i}] is {Kind(notName.a)}, not a name");
            }
        }

        DateTimeOffset? observed = null;
        if (Text(properties, "observedAt") is { } observedText)
        {
            if (IsoDates.TryParse(observedText, out var at))
            {
                observed = at;
            }
            else
            {
                errors.Add($"properties.observedAt {Quoted.Of(observedText)} is not an ISO 8601 date (yyyy-mm-dd, optionally with a time and offset)");
            }
        }

        foreach (var name in (string[])["killed", "killedCivilians", "injured", "credibility"])
        {
            if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty(name, out var value) && !Missing(value))
            {
                if (Int(properties, name) is not { } figure)
                {
                    errors.Add($"properties.{name} {Quoted.Raw(value.GetRawText())} must be a whole number");
                }
                else if (figure < 0)
                {
                    errors.Add($"properties.{name} {figure} must not be negative (leave it out when it is not known)");
                }
            }
        }

        var precision = 1000.0;
        if (properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty("precisionMeters", out var givenPrecision) && !Missing(givenPrecision)
            && !(double.TryParse(Text(properties, "precisionMeters"), NumberStyles.Float, CultureInfo.InvariantCulture, out precision) && double.IsFinite(precision)))
        {
            errors.Add($"properties.precisionMeters {Quoted.Raw(givenPrecision.GetRawText())} must be a number of metres");
        }

        var killed = Int(properties, "killed");
        var killedCivilians = Int(properties, "killedCivilians");
        if (killed is { } all && killedCivilians is { } civilians && civilians > all)
        {
            errors.Add($"properties.killedCivilians {civilians} is more than properties.killed {all}");
        }

        if (errors.Count > 0)
        {
            return new ImportRow(n, null, string.Join("; ", errors));
        }

        // The dataset's name may hold ':' (a file's name may), written %3A: unescaped, dataset "a:b" with feature "c" and
        // dataset "a" with feature "b:c" named one record, and the second import skipped a report never stored. '%' stays
        // as it is, so that names holding one (downloaded files' often do) keep the references their records have.
        var externalRef = ReferenceOf(source, id);
        return new ImportRow(n, new CreateReport
        {
            Id = GedMapping.NameBasedGuid(externalRef),
            ObservedAt = observed,
            ObservedPrecision = Text(properties, "observedPrecision") ?? "day",
            Location = new LocationInput(latitude, longitude, precision, null),
            Category = Text(properties, "category"),
            Casualties = new CasualtiesInput(
                killedCivilians is null ? null : new CasualtyRange(null, killedCivilians, null),
                killed is null ? null : new CasualtyRange(null, Math.Max(0, killed.Value - (killedCivilians ?? 0)), null),
                null,
                Int(properties, "injured") is { } injured ? new CasualtyRange(null, injured, null) : null),
            Narrative = Text(properties, "narrative"),
            Language = Text(properties, "language") ?? "en",
            Actors = actorsGiven.ValueKind == JsonValueKind.Array ? actorsGiven.EnumerateArray().Select(a => a.GetString()!).ToList() : null,
            Source = new SourceInput(Text(properties, "reliability") ?? "F", Int(properties, "credibility") ?? 6, Text(properties, "source"), null),
            Marking = marking,
            ExternalRef = externalRef,
        }, null);
    }
}

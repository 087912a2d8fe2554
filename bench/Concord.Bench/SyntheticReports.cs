using System.Data.Common;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Concord.Server.Ucdp;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Concord.Bench;

/// <summary>
/// Writes many reports (each with its incident, as intake does) straight into the store for the query benchmark:
/// places jittered around the real CAR GED events, dates from 1997 to 2022, markings spread as in the demo.
/// </summary>
internal static class SyntheticReports
{
    private static readonly string[] ReportColumns =
    [
        "id", "organization_id", "member_id", "observed_at", "observed_precision", "latitude", "longitude", "location_precision_meters",
        "area_id", "category", "killed_civilian_low", "killed_civilian_best", "killed_civilian_high", "killed_other_low", "killed_other_best",
        "killed_other_high", "injured_civilian_low", "injured_civilian_best", "injured_civilian_high", "injured_other_low", "injured_other_best",
        "injured_other_high", "narrative", "narrative_language", "actors", "source_reliability", "source_credibility", "source_description",
        "protected_source", "external_ref", "classification", "releasable_to", "release_mask", "caveats", "received_at", "request_hash",
    ];

    private static readonly string[] IncidentColumns =
    [
        "id", "category", "starts_at", "ends_at", "latitude", "longitude", "location_precision_meters", "area_id", "status", "title",
        "killed_best", "injured_best", "report_count", "classification", "releasable_to", "release_mask", "caveats", "created_at", "updated_at", "cell",
        "killed_low", "killed_high", "south", "north", "west", "east", "tie",
    ];

    private static readonly string[] LinkColumns = ["incident_id", "report_id", "contribution", "linked_at"];

    /// <summary>(classification, releasability, caveats): the demo's spread plus sharing groups and a nation.</summary>
    private static readonly (int Level, string Releasable, long Caveats)[] Markings =
    [
        (0, "|mission|org:JOC|", 0),
        (0, "|mission|org:JOC|", 0),
        (1, "|kind:military|org:FORCE|org:JMAC|org:JOC|", 0),
        (1, "|kind:police|org:JMAC|org:UNPOL|", 1),
        (1, "|kind:humanitarian|org:JOC|org:OCHA|", 2),
        (2, "|org:JMAC|org:JOC|", 0),
        (0, "|mission|org:CIVAFF|", 0),
        (0, "|kind:military|org:JOC|org:RWABATT|", 0),
        (1, "|group:EW-NET|org:JOC|", 0),
        (0, "|group:PWG|org:UNPOL|", 0),
        (1, "|nation:RWA|org:RWABATT|", 0),
        (2, "|group:PWG|org:JMAC|", 1),
    ];

    public static async Task WriteAsync(ConcordDb db, StoreKind kind, int count, Guid organizationId, Guid memberId, TextWriter log)
    {
        var places = LoadPlaces();
        var random = new Random(42);
        var connection = db.Database.GetDbConnection();
        await connection.OpenAsync();
        var now = DateTime.UtcNow;
        var started = DateTime.UtcNow;
        const int Batch = 50_000;
        for (var offset = 0; offset < count; offset += Batch)
        {
            var n = Math.Min(Batch, count - offset);
            var reports = new List<object?[]>(n);
            var incidents = new List<object?[]>(n);
            var links = new List<object?[]>(n);
            for (var i = 0; i < n; i++)
            {
                var (lat, lon) = places[random.Next(places.Count)];
                lat = Math.Clamp(lat + (Gaussian(random) * 0.15), -90, 90);
                lon = Math.Clamp(lon + (Gaussian(random) * 0.15), -180, 180);
                var observed = new DateTime(1997, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddMinutes(random.Next(0, 26 * 365 * 24 * 60));
                var category = random.Next(3) switch { 0 => "ucdp.state-based", 1 => "ucdp.non-state", _ => "ucdp.one-sided" };
                var marking = Markings[random.Next(Markings.Length)];
                var killed = random.Next(0, 12);
                var narrative = $"Synthetic report {offset + i}: armed men attacked a village, {killed} killed.";
                var reportId = Guid.CreateVersion7();
                var incidentId = Guid.CreateVersion7();
                reports.Add([
                    reportId, organizationId, memberId, observed, "day", lat, lon, 1000.0, null, category, null, killed, null, null, 0, null,
                    null, null, null, null, null, null, narrative, "en", "|", "B", 2, "synthetic", null, null,
                    marking.Level, marking.Releasable, Releasability.Mask(marking.Releasable), marking.Caveats, now, "",
                ]);
                incidents.Add([
                    incidentId, category, observed, observed.AddDays(1), lat, lon, 1000.0, null, "reported", narrative, killed, null, 1,
                    marking.Level, marking.Releasable, Releasability.Mask(marking.Releasable), marking.Caveats, now, now, MapCells.Of(lat, lon),
                    killed, killed, lat, lat, lon, lon, Incident.NewTie(),
                ]);
                links.Add([incidentId, reportId, 1.0, now]);
            }

            await WriteRowsAsync(connection, kind, "reports", ReportColumns, reports);
            await WriteRowsAsync(connection, kind, "incidents", IncidentColumns, incidents);
            await WriteRowsAsync(connection, kind, "incident_reports", LinkColumns, links);
            var done = offset + n;
            var rate = done / Math.Max(0.001, (DateTime.UtcNow - started).TotalSeconds);
            await log.WriteLineAsync($"  seeded {done:N0}/{count:N0} reports ({rate:N0}/s)");
        }

        if (kind == StoreKind.Postgres)
        {
            await using var analyze = connection.CreateCommand();
            analyze.CommandText = "ANALYZE reports; ANALYZE incidents; ANALYZE incident_reports;";
            await analyze.ExecuteNonQueryAsync();
        }
        else
        {
            await using var analyze = connection.CreateCommand();
            analyze.CommandText = "ANALYZE;";
            await analyze.ExecuteNonQueryAsync();
        }

        await connection.CloseAsync();
    }

    public static List<(double Lat, double Lon)> LoadPlaces()
    {
        using var reader = new StreamReader(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv"));
        return GedReader.Read(reader).Where(r => r.Event is not null).Select(r => (r.Event!.Latitude, r.Event.Longitude)).ToList();
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2.0 * Math.Log(1.0 - random.NextDouble())) * Math.Cos(2.0 * Math.PI * random.NextDouble());

    private static async Task WriteRowsAsync(DbConnection connection, StoreKind kind, string table, string[] columns, List<object?[]> rows)
    {
        if (kind == StoreKind.Postgres)
        {
            var npgsql = (NpgsqlConnection)connection;
            await using var import = await npgsql.BeginBinaryImportAsync($"COPY {table} ({string.Join(", ", columns)}) FROM STDIN (FORMAT BINARY)");
            foreach (var row in rows)
            {
                await import.WriteRowAsync(default, row.Select(v => v ?? DBNull.Value).ToArray());
            }

            await import.CompleteAsync();
            return;
        }

        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select((_, i) => "$p" + i))})";
        var parameters = columns.Select((_, i) =>
        {
            var p = command.CreateParameter();
            p.ParameterName = "$p" + i;
            command.Parameters.Add(p);
            return p;
        }).ToArray();
        command.Prepare();
        foreach (var row in rows)
        {
            for (var i = 0; i < row.Length; i++)
            {
                parameters[i].Value = row[i] switch
                {
                    null => DBNull.Value,
                    Guid g => g.ToString().ToUpperInvariant(),
                    DateTime t => t.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", System.Globalization.CultureInfo.InvariantCulture),
                    var v => v,
                };
            }

            // Synchronous on purpose: SQLite does no real I/O wait here, and the async path costs a task per row.
#pragma warning disable CA1849
            command.ExecuteNonQuery();
#pragma warning restore CA1849
        }

        await transaction.CommitAsync();
    }
}

using System.Net;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>
/// The map grid (<see cref="MapCells"/>): the store computes each incident's cell, the code computes the cells a viewport
/// covers, and the two must agree to the last bit, or a viewport silently misses points on a cell's edge.
/// </summary>
public abstract class MapCellTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    // Places on and beside half-degree edges, in every quadrant, at the poles and the antimeridian.
    public static readonly (double Latitude, double Longitude)[] Edges =
    [
        (4.5, 18.5), (4.499999999999, 18.499999999999), (4.500000000001, 18.500000000001), (0, 0), (-0.000000001, -0.000000001),
        (-33.25, -70.75), (-33.5, -70.5), (89.99, 179.99), (90, 180), (-90, -180), (-89.999, -179.999), (10.123456789, 20.987654321),
    ];

    private static int _day;

    [Fact]
    public void Cells_beyond_the_most_one_answer_holds_are_merged_into_cells_of_twice_the_size_on_both_sides_of_zero()
    {
        // Four cells, at most two per answer: in cells twice the size, (0,0) and (1,1) are one, (-1,-1) and (-2,-2) another.
        var cells = IncidentMap.Cells([(0, 0, 1, 0, 0), (1, 1, 2, 1, 0), (-1, -1, 3, 0, 4), (-2, -2, 4, 0, 0)], 0.5, maxCells: 2);

        Assert.Equal(2, cells.Count);
        Assert.Equal((-1L, -1L, 7, 0, 4L), (cells[0].Y, cells[0].X, cells[0].Count, cells[0].Classification, cells[0].Caveats));
        Assert.Equal((0L, 0L, 3, 1, 0L), (cells[1].Y, cells[1].X, cells[1].Count, cells[1].Classification, cells[1].Caveats));
        // Each at the centre of its cell of one degree.
        Assert.Equal((-0.5, -0.5), (cells[0].Latitude, cells[0].Longitude));
        Assert.Equal((0.5, 0.5), (cells[1].Latitude, cells[1].Longitude));
        Assert.Equal(4, IncidentMap.Cells([(0, 0, 1, 0, 0), (1, 1, 2, 1, 0), (-1, -1, 3, 0, 4), (-2, -2, 4, 0, 0)], 0.5).Count);
    }

    [Fact]
    public void Cells_at_the_edge_of_the_world_are_placed_inside_it()
    {
        // Latitude 90 and longitude 180 start cells of their own, beyond the world but for their edge.
        var cells = IncidentMap.Cells([(180, 360, 1, 0, 0), (-180, -360, 1, 0, 0), (179, 359, 1, 0, 0)], 0.5);
        Assert.Equal([(-89.75, -179.75), (89.75, 179.75), (90.0, 180.0)], cells.Select(c => (c.Latitude, c.Longitude)));

        // Merged into cells larger than the world, they are placed in the middle of the part of it they cover.
        // (Cells of 256°: the north-east one covers latitudes 0 to 90 and longitudes 0 to 180 of the world.)
        var halves = IncidentMap.Cells([(180, 360, 1, 0, 0), (0, 0, 1, 0, 0), (-180, -360, 1, 0, 0)], 0.5, maxCells: 2);
        Assert.Equal([(-45.0, -90.0), (45.0, 90.0)], halves.Select(c => (c.Latitude, c.Longitude)));
    }

    [Fact]
    public async Task The_store_and_the_code_put_each_incident_in_the_same_map_cell()
    {
        var ids = new List<Guid>();
        foreach (var (latitude, longitude) in Edges)
        {
            ids.Add(await IncidentAtAsync("force", latitude, longitude));
        }

        var stored = await server.WithDbAsync(db => db.Incidents.Where(i => ids.Contains(i.Id))
            .Select(i => new { i.Latitude, i.Longitude, Cell = EF.Property<int>(i, nameof(Incident.Cell)) }).ToListAsync());

        Assert.Equal(Edges.Length, stored.Count);
        Assert.All(stored, s => Assert.Equal(MapCells.Of(s.Latitude, s.Longitude), s.Cell));
    }

    [Fact]
    public async Task An_incident_that_moves_moves_to_its_new_cell_in_the_store()
    {
        var id = await IncidentAtAsync("force", 4.9, 18.9);

        await server.WithDbAsync(async db =>
        {
            var incident = await db.Incidents.SingleAsync(i => i.Id == id);
            incident.Latitude = -12.6;
            incident.Longitude = 45.1;
            return await db.SaveChangesAsync();
        });

        var cell = await server.WithDbAsync(db => db.Incidents.Where(i => i.Id == id).Select(i => EF.Property<int>(i, nameof(Incident.Cell))).SingleAsync());
        Assert.Equal(MapCells.Of(-12.6, 45.1), cell);
        Assert.NotEqual(MapCells.Of(4.9, 18.9), cell);
        var (_, geo) = await server.ClientFor("force").GetJson("/api/incidents/geojson?bbox=45,-12.7,45.2,-12.5");
        Assert.Contains(geo.GetProperty("features").EnumerateArray(), f => f.GetProperty("id").GetGuid() == id);
    }

    [Theory]
    [InlineData(19.99, 4.99, 20.0, 5.0)]
    [InlineData(19.9, 4.9, 20.1, 5.1)]
    [InlineData(20.0, 5.0, 20.0, 5.0)]
    [InlineData(19.95, 4.95, 20.05, 5.05)]
    public async Task A_viewport_across_cell_edges_holds_exactly_the_incidents_inside_it(double west, double south, double east, double north)
    {
        var grid = await GridAsync();
        var expected = grid.Where(p => p.Latitude >= south && p.Latitude <= north && p.Longitude >= west && p.Longitude <= east).Select(p => p.Id).ToHashSet();

        var (response, geo) = await server.ClientFor("force").GetJson(FormattableString.Invariant($"/api/incidents/geojson?bbox={west},{south},{east},{north}&limit=5000"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var shown = geo.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetGuid()).ToHashSet();
        Assert.NotEmpty(expected);
        Assert.Equal(expected, shown.Intersect(grid.Select(p => p.Id)).ToHashSet());
    }

    [Fact]
    public async Task A_viewport_over_more_cells_than_are_listed_is_read_without_them_and_misses_nothing()
    {
        var grid = await GridAsync();
        var box = new BoundingBox(-170, -80, 170, 80);
        Assert.Null(MapCells.Covering(box));

        var (_, geo) = await server.ClientFor("force").GetJson("/api/incidents/geojson?bbox=-170,-80,170,80&limit=5000");

        var shown = geo.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetGuid()).ToHashSet();
        Assert.Subset(shown, grid.Select(p => p.Id).ToHashSet());
    }

    [Fact]
    public void The_cells_of_a_viewport_are_every_half_degree_square_it_touches()
    {
        var cells = MapCells.Covering(new BoundingBox(19.9, 4.9, 20.1, 5.1))!;

        Assert.Equal(4, cells.Length);
        Assert.Equal(
            new[] { MapCells.Of(4.9, 19.9), MapCells.Of(4.9, 20.1), MapCells.Of(5.1, 19.9), MapCells.Of(5.1, 20.1) }.Order(),
            cells.Order());
        Assert.Single(MapCells.Covering(new BoundingBox(20.1, 5.1, 20.2, 5.2))!);
        Assert.Equal(MapCells.MaxCovering, MapCells.Covering(new BoundingBox(0, 0, 15.99, 15.99))!.Length);
        Assert.Null(MapCells.Covering(new BoundingBox(0, 0, 16, 15.99)));
    }

    /// <summary>The query plan of a viewport, as the GeoJSON endpoint builds it for a viewer.</summary>
    internal Task<string> ViewportPlanAsync(string explain, params string[] setup) =>
        ViewportPlanAsync(explain, (visible, query) => IncidentSelection.Newest(visible.Plain).Take(query.Limit).Select(IncidentPoint.Of), null, setup);

    /// <summary>The query plan of one part of a selection (by default of a viewport).</summary>
    internal async Task<string> ViewportPlanAsync<T>(string explain, Func<IncidentSelection, ListQuery, IQueryable<T>> part, ListQuery? selected, params string[] setup)
    {
        await GridAsync();
        await using var scope = server.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var query = selected ?? new ListQuery { Bbox = new BoundingBox(19.9, 4.9, 20.1, 5.1), Limit = ListQuery.MaxLimit };
        var (visible, errors) = await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), query, server.ViewerOf("force"),
            server.Services.GetRequiredService<MissionDirectory>(), server.Services.GetRequiredService<MarkingFormat>(), CancellationToken.None);
        Assert.Empty(errors);
        await using var command = part(visible!, query).CreateDbCommand();
        await command.Connection!.OpenAsync();
        foreach (var sql in setup)
        {
            await using var prepare = command.Connection.CreateCommand();
            prepare.CommandText = sql;
            await prepare.ExecuteNonQueryAsync();
        }

        command.CommandText = explain + command.CommandText;
        var lines = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetValue(reader.FieldCount - 1).ToString()!);
            }
        }

        if (setup.Contains("BEGIN"))
        {
            // Whatever the setup changed in the schema is undone.
            await using var rollback = command.Connection.CreateCommand();
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        return string.Join('\n', lines);
    }

    private async Task<Guid> IncidentAtAsync(string user, double latitude, double longitude)
    {
        // Days apart, so that fusion keeps neighbours as separate incidents.
        var observed = Api.Recent.AddDays(-5 * Interlocked.Increment(ref _day));
        var (created, report) = await server.ClientFor(user).PostJson("/api/reports", Api.Report(latitude: latitude, longitude: longitude, observedAt: observed,
            narrative: FormattableString.Invariant($"Map cell case at {latitude},{longitude}"), marking: Api.Marking("UNCLASSIFIED", ["mission"], [])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return report.GetProperty("incidentId").GetGuid();
    }

    private List<(Guid Id, double Latitude, double Longitude)>? _grid;

    // Five by five incidents around the corner of four cells at 5°N 20°E.
    private async Task<List<(Guid Id, double Latitude, double Longitude)>> GridAsync()
    {
        if (_grid is null)
        {
            var grid = new List<(Guid, double, double)>();
            double[] steps = [-0.1, -0.01, 0, 0.01, 0.1];
            foreach (var dlat in steps)
            {
                foreach (var dlon in steps)
                {
                    var (latitude, longitude) = (5 + dlat, 20 + dlon);
                    grid.Add((await IncidentAtAsync("force", latitude, longitude), latitude, longitude));
                }
            }

            _grid = grid;
        }

        return _grid;
    }
}

public sealed class MapCellTests_Sqlite(SqliteServer server) : MapCellTests<SqliteServer>(server)
{
    [Fact]
    public async Task A_viewport_is_read_from_the_map_index_alone()
    {
        var plan = await ViewportPlanAsync("EXPLAIN QUERY PLAN ");

        Assert.Contains("USING COVERING INDEX ix_incidents_map (cell=? AND latitude>? AND latitude<?)", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("SCAN i", plan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mixed_incidents_are_read_from_their_own_index()
    {
        var plan = await ViewportPlanAsync("EXPLAIN QUERY PLAN ", (visible, _) => visible.Mixed.Where(i => i.EndsAt >= Api.Recent.UtcDateTime), null);

        Assert.Contains("USING INDEX ix_incidents_mixed (ends_at>?)", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("SCAN i\n", plan + "\n", StringComparison.Ordinal);
    }
}

public sealed class MapCellTests_Postgres(PostgresServer server) : MapCellTests<PostgresServer>(server)
{
    [Fact]
    public async Task A_viewport_is_read_from_the_map_index_alone()
    {
        // A test store is small enough that PostgreSQL would rather read the table, or walk the time index and filter
        // (once autovacuum has analysed a handful of rows); what is asserted is that it can answer from the map index
        // alone once the table's pages are all-visible, as autovacuum leaves them. The time index is dropped for the
        // question only (PostgreSQL's DDL is transactional, and the transaction is rolled back).
        var plan = await ViewportPlanAsync("EXPLAIN ", "VACUUM incidents", "SET enable_seqscan = off", "SET enable_bitmapscan = off",
            "BEGIN", "DROP INDEX ix_incidents_starts");

        Assert.Contains("Index Only Scan using ix_incidents_map", plan, StringComparison.Ordinal);
        Assert.Contains("Index Cond: ((cell = ANY (", plan, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mixed_incidents_are_read_from_their_own_index()
    {
        // Over the whole mission (no viewport): the mixed incidents that may reach a page, by their stored end.
        var plan = await ViewportPlanAsync("EXPLAIN ", (visible, _) => visible.Mixed.Where(i => i.EndsAt >= Api.Recent.UtcDateTime),
            new ListQuery { Limit = ListQuery.MaxLimit }, "ANALYZE incidents", "SET enable_seqscan = off", "SET enable_bitmapscan = off");

        Assert.Contains("Index Scan using ix_incidents_mixed on incidents", plan, StringComparison.Ordinal);
    }
}

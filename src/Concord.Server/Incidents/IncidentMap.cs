using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>
/// The map's data: the incidents in a viewport as GeoJSON points when there are few enough to draw, otherwise counts per
/// grid cell (server-side aggregation sized to the zoom level), so that a browser never receives tens of thousands of
/// markers. Both are built from what the viewer may see only.
/// </summary>
internal static class IncidentMap
{
    /// <summary>Above this many incidents in the viewport the map gets cells instead of points.</summary>
    public const int MaxPoints = 2000;

    public static void MapIncidentMap(this RouteGroupBuilder group) =>
        group.MapGet("/map", Map)
            .Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .WithListParameters(incidents: true, limited: false)
            .WithQueryParameter("zoom", "the map's zoom level (Leaflet), which sets the grid's cell size", Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithQueryParameter("maxPoints", "the most points before counts per cell (default 2000)", Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithSummary("Incidents you may see in a viewport for the map: points, or counts per grid cell when there are many (same filters as the list, plus zoom, and maxPoints: the most points before cells, default 2000).");

    /// <summary>Grid cell size in degrees for a Leaflet zoom level: about 40 screen pixels.</summary>
    public static double CellDegrees(int zoom) => 45.0 / Math.Pow(2, zoom);

    /// <summary>
    /// The finest grid cells are those of this zoom level (0.011°, about 1.2 km): a cell is placed at its centre and
    /// audited as a count, so a finer one (a metre at zoom 22) holding a single incident would give its exact place and
    /// marking without the read of it being recorded.
    /// </summary>
    public const int FinestCellZoom = 12;

    /// <summary>The most cells one answer holds: a finer grid over a large viewport is coarsened (cells of twice the size) until it fits.</summary>
    public const int MaxCells = 10_000;

    /// <summary>
    /// How many mixed incidents (reports under different markings) one answer reads, each rebuilt as the viewer sees it:
    /// a box that may hold more matching ones says that its counts may be short (X-Concord-Truncated).
    /// </summary>
    public const int MaxMixed = 10 * MaxPoints;

    private static async Task<IResult> Map(
        HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        if (!ListQuery.TryParse(context.Request.Query, null, out var query, out var errors, [.. ListQuery.IncidentFilters, "zoom", "maxPoints"]))
        {
            return Problems.Invalid(errors);
        }

        var zoom = 6;
        if (context.Request.Query["zoom"].ToString() is { Length: > 0 } zoomText
            && (!int.TryParse(zoomText, NumberStyles.None, CultureInfo.InvariantCulture, out zoom) || zoom > 22))
        {
            return Problems.Field("zoom", "must be a whole number from 0 to 22");
        }

        var maxPoints = MaxPoints;
        if (context.Request.Query["maxPoints"].ToString() is { Length: > 0 } pointsText
            && (!int.TryParse(pointsText, NumberStyles.None, CultureInfo.InvariantCulture, out maxPoints) || maxPoints < 1 || maxPoints > MaxPoints))
        {
            return Problems.Field("maxPoints", $"must be a whole number from 1 to {MaxPoints}");
        }

        var (incidents, filterErrors) = await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), query, viewer, directory, markings, context.RequestAborted);
        if (incidents is null)
        {
            return Problems.Invalid(filterErrors);
        }

        // One pass over the viewport counts it and groups it: a whole-country view reads every entry in its cells, and
        // counting first then grouping read them twice.
        var size = CellDegrees(Math.Min(zoom, FinestCellZoom));
        var groups = await GroupsAsync(incidents.Plain, size, context.RequestAborted);
        // Mixed incidents are counted and placed as the viewer sees them (each rebuilt from its reports); a viewport seldom
        // holds many. At most MaxMixed are read: when there are more, the counts may be short, and the answer says so.
        var stored = await incidents.Mixed.OrderBy(i => i.Number).Take(MaxMixed + 1).ToListAsync(context.RequestAborted);
        var truncated = stored.Count > MaxMixed;
        var mixed = await incidents.SeenAsync(truncated ? stored[..MaxMixed] : stored, context.RequestAborted);
        context.Response.Headers["X-Concord-Truncated"] = truncated ? "true" : "false";
        var total = groups.Sum(g => g.Count) + mixed.Count;
        if (total <= maxPoints)
        {
            var (rows, _) = await IncidentEndpoints.NewestPointsAsync(incidents, query with { Limit = maxPoints }, mixed, context.RequestAborted);
            await IncidentEndpoints.RecordReadAsync(audit, viewer, rows, context, time);
            await using var points = Start(context, rows.Count, clustered: false);
            IncidentEndpoints.WriteFeatures(points, rows, markings);
            await GeoJsonFeatures.EndCollectionAsync(points, context.RequestAborted);
            return TypedResults.Empty;
        }

        var cells = Cells(
            groups.Select(g => ((long)g.Y, (long)g.X, g.Count, g.Classification, g.Caveats))
                .Concat(mixed.Select(i => ((long)Math.Floor(i.Latitude / size), (long)Math.Floor(i.Longitude / size), 1, i.Classification, i.Caveats))),
            size);
        await audit.RecordAggregateAsync(viewer, "incident",
            groups.Select(g => (g.Classification, g.Caveats, (long)g.Count)).Concat(mixed.Select(i => (i.Classification, i.Caveats, 1L))),
            context, time.GetUtcNow().UtcDateTime);
        await using var writer = Start(context, cells.Sum(c => c.Count), clustered: true);
        foreach (var cell in cells)
        {
            GeoJsonFeatures.StartPoint(writer, string.Create(CultureInfo.InvariantCulture, $"cell:{cell.Y}:{cell.X}"), cell.Longitude, cell.Latitude);
            writer.WriteBoolean("cluster", true);
            writer.WriteNumber("count", cell.Count);
            writer.WriteNumber("classification", cell.Classification);
            writer.WriteNumber("caveats", cell.Caveats);
            GeoJsonFeatures.EndFeature(writer);
        }

        await GeoJsonFeatures.EndCollectionAsync(writer, context.RequestAborted);
        return TypedResults.Empty;
    }

    private static System.Text.Json.Utf8JsonWriter Start(HttpContext context, int total, bool clustered)
    {
        var writer = GeoJsonFeatures.StartCollection(context);
        // Members before "features" would be neater, but the writer has already opened the array: close over it instead.
        context.Response.Headers["X-Concord-Total"] = total.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["X-Concord-Clustered"] = clustered ? "true" : "false";
        return writer;
    }

    internal sealed record Cell(long Y, long X, int Count, double Latitude, double Longitude, int Classification, long Caveats);

    private sealed record Group(double Y, double X, int Classification, long Caveats, int Count);

    /// <summary>The plain incidents of a viewport grouped by cell and marking, in the database.</summary>
    private static Task<List<Group>> GroupsAsync(IQueryable<Incident> plain, double size, CancellationToken cancellationToken) =>
        plain
            .GroupBy(i => new { Y = Math.Floor(i.Latitude / size), X = Math.Floor(i.Longitude / size), i.Classification, i.Caveats })
            .Select(g => new Group(g.Key.Y, g.Key.X, g.Key.Classification, g.Key.Caveats, g.Count()))
            .ToListAsync(cancellationToken);

    /// <summary>
    /// Counts per cell (the plain incidents' groups and the mixed incidents as the viewer sees them, by the cells of
    /// <paramref name="size"/> they are in), each placed at its cell's centre (not where its incidents are: a cell of one
    /// incident would place it), in cells of twice the size, and again, while there are more than <paramref name="maxCells"/>.
    /// </summary>
    internal static List<Cell> Cells(IEnumerable<(long Y, long X, int Count, int Classification, long Caveats)> counted, double size, int maxCells = MaxCells)
    {
        var parts = counted.ToList();
        var scale = 1L;
        while (parts.Select(p => (FloorDiv(p.Y, scale), FloorDiv(p.X, scale))).Distinct().Count() > maxCells)
        {
            scale *= 2;
        }

        var cellSize = size * scale;
        return parts.GroupBy(p => (Y: FloorDiv(p.Y, scale), X: FloorDiv(p.X, scale)))
            .Select(g => new Cell(
                g.Key.Y,
                g.Key.X,
                g.Sum(p => p.Count),
                Centre(g.Key.Y, cellSize, 90),
                Centre(g.Key.X, cellSize, 180),
                g.Max(p => p.Classification),
                g.Aggregate(0L, (bits, p) => bits | p.Caveats)))
            .OrderBy(c => c.Y).ThenBy(c => c.X)
            .ToList();
    }

    /// <summary>
    /// The middle of a cell's part of the world: the cell of latitude 90 (or longitude 180) starts at the edge of the world
    /// and would otherwise be placed beyond it, at a position no GeoJSON reader accepts.
    /// </summary>
    private static double Centre(long index, double cellSize, double edge) =>
        (Math.Max(index * cellSize, -edge) + Math.Min((index + 1) * cellSize, edge)) / 2;

    /// <summary>The cell of twice, four times… the size holding a cell (rounding down for cells west or south of zero too).</summary>
    private static long FloorDiv(long value, long scale) => value >= 0 ? value / scale : -((-value + scale - 1) / scale);
}

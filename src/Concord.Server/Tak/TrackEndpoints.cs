using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

internal static class TrackEndpoints
{
    public static void MapTracks(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/tracks/geojson", GeoJson).WithTags("Tracks").RequireAuthorization()
            .WithQueryParameter("bbox", "west,south,east,north in degrees (WGS 84): only tracks inside")
            .Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .WithSummary("Current (not stale) positions of field devices you may see, with their recent history, as GeoJSON.");

    private static async Task GeoJson(HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, Audit.AuditWriter audit, TimeProvider time)
    {
        if (!ListQuery.TryParse(context.Request.Query, null, out var query, out var errors, ["bbox"]))
        {
            await Problems.Invalid(errors).ExecuteAsync(context);
            return;
        }

        var now = time.GetUtcNow().UtcDateTime;
        var current = db.Tracks.AsNoTracking().Where(t => t.StaleAt > now);
        if (query.Bbox is { } box)
        {
            // The map asks for its view: tracks off screen are neither sent, nor named in the audit, nor counted in the banners.
            current = current.Where(t => t.Latitude >= box.South && t.Latitude <= box.North && t.Longitude >= box.West && t.Longitude <= box.East);
        }

        var tracks = await current.VisibleTo(viewer).OrderBy(t => t.Uid).ToListAsync(context.RequestAborted);
        // Positions of classified tracks are read like any classified record: named in the audit, before they are sent.
        await audit.RecordReadAsync(viewer, "track", tracks.Select(t => (t.Uid, t.Classification, t.Caveats)).ToList(), context.Request.Path + context.Request.QueryString, now,
            context.RequestAborted);
        await using var writer = GeoJsonFeatures.StartCollection(context);
        foreach (var t in tracks)
        {
            GeoJsonFeatures.StartPoint(writer, t.Uid, t.Longitude, t.Latitude);
            writer.WriteString("callsign", t.Callsign);
            writer.WriteString("cotType", t.CotType);
            writer.WriteString("observedAt", new DateTimeOffset(t.ObservedAt, TimeSpan.Zero));
            if (t.Course is { } course)
            {
                writer.WriteNumber("course", course);
            }

            if (t.Speed is { } speed)
            {
                writer.WriteNumber("speed", speed);
            }

            writer.WriteString("marking", markings.ToDto(t).Label);
            // The map's banners rise to what is on screen, tracks included.
            writer.WriteNumber("level", t.Classification);
            writer.WriteNumber("caveats", t.Caveats);
            writer.WritePropertyName("history");
            writer.WriteRawValue(t.HistoryJson, skipInputValidation: true);
            GeoJsonFeatures.EndFeature(writer);
        }

        await GeoJsonFeatures.EndCollectionAsync(writer, context.RequestAborted);
    }
}

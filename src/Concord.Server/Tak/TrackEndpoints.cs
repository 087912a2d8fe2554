using System.Text.Encodings.Web;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

internal static class TrackEndpoints
{
    public static void MapTracks(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/tracks/geojson", GeoJson).WithTags("Tracks").RequireAuthorization()
            .Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .WithSummary("Current (not stale) positions of field devices you may see, with their recent history, as GeoJSON.");

    private static async Task GeoJson(HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, TimeProvider time)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var tracks = await db.Tracks.AsNoTracking().Where(t => t.StaleAt > now).VisibleTo(viewer).OrderBy(t => t.Uid).ToListAsync(context.RequestAborted);
        context.Response.ContentType = "application/geo+json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        writer.WriteString("type", "FeatureCollection");
        writer.WriteStartArray("features");
        foreach (var t in tracks)
        {
            writer.WriteStartObject();
            writer.WriteString("type", "Feature");
            writer.WriteString("id", t.Uid);
            writer.WriteStartObject("geometry");
            writer.WriteString("type", "Point");
            writer.WriteStartArray("coordinates");
            writer.WriteNumberValue(t.Longitude);
            writer.WriteNumberValue(t.Latitude);
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteStartObject("properties");
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
            writer.WritePropertyName("history");
            writer.WriteRawValue(t.HistoryJson, skipInputValidation: true);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }
}

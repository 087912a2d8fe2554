using System.Text.Encodings.Web;
using System.Text.Json;

namespace Concord.Server.Http;

/// <summary>Writes GeoJSON FeatureCollections straight to the response, one feature at a time.</summary>
internal static class GeoJsonFeatures
{
    public static Utf8JsonWriter StartCollection(HttpContext context)
    {
        context.Response.ContentType = "application/geo+json";
        var writer = new Utf8JsonWriter(context.Response.BodyWriter, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        writer.WriteString("type", "FeatureCollection");
        writer.WriteStartArray("features");
        return writer;
    }

    /// <summary>Opens a point feature and its properties object; close it with <see cref="EndFeature"/>.</summary>
    public static void StartPoint(Utf8JsonWriter writer, string id, double longitude, double latitude)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Feature");
        writer.WriteString("id", id);
        writer.WriteStartObject("geometry");
        writer.WriteString("type", "Point");
        writer.WriteStartArray("coordinates");
        writer.WriteNumberValue(Math.Round(longitude, 6));
        writer.WriteNumberValue(Math.Round(latitude, 6));
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteStartObject("properties");
    }

    public static void EndFeature(Utf8JsonWriter writer)
    {
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    public static async Task EndCollectionAsync(Utf8JsonWriter writer, CancellationToken cancellationToken)
    {
        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(cancellationToken);
    }
}

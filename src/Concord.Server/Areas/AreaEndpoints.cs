using System.Text.Json;
using Concord.Server.Data;
using Concord.Server.Http;

namespace Concord.Server.Areas;

internal sealed record AreaDto(Guid Id, string Code, string Name, string Kind, double[] Bbox);

internal static class AreaEndpoints
{
    public static RouteGroupBuilder MapAreas(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/areas").WithTags("Areas").RequireAuthorization();
        group.MapGet("/", (MissionDirectory directory) => TypedResults.Ok(directory.Areas.Select(e => e.Area).OrderBy(a => a.Name)
                .Select(a => new AreaDto(a.Id, a.Code, a.Name, a.Kind, [a.MinLongitude, a.MinLatitude, a.MaxLongitude, a.MaxLatitude])).ToList()))
            .TakesQuery()
            .WithSummary("The mission's areas (admin-1 regions, sectors) without geometry.");
        group.MapGet("/geojson", GeoJson)
            .TakesQuery()
            .Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .WithSummary("The mission's areas as a GeoJSON FeatureCollection.");
        return group;
    }

    private static async Task GeoJson(HttpContext context, MissionDirectory directory)
    {
        context.Response.ContentType = "application/geo+json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter);
        writer.WriteStartObject();
        writer.WriteString("type", "FeatureCollection");
        writer.WriteStartArray("features");
        foreach (var area in directory.Areas.Select(e => e.Area).OrderBy(a => a.Name))
        {
            writer.WriteStartObject();
            writer.WriteString("type", "Feature");
            writer.WriteString("id", area.Code);
            writer.WritePropertyName("geometry");
            writer.WriteRawValue(area.GeometryJson, skipInputValidation: true);
            writer.WriteStartObject("properties");
            writer.WriteString("code", area.Code);
            writer.WriteString("name", area.Name);
            writer.WriteString("kind", area.Kind);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }
}

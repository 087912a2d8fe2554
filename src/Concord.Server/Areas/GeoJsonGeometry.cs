using System.Globalization;
using System.Text.Json;
using NetTopologySuite.Geometries;

namespace Concord.Server.Areas;

/// <summary>Reads GeoJSON Polygon and MultiPolygon geometries into NetTopologySuite (the GeoJSON4STJ package is not available here).</summary>
internal static class GeoJsonGeometry
{
    private static readonly GeometryFactory Factory = new(new PrecisionModel(), 4326);

    public static Geometry Read(JsonElement geometry)
    {
        var type = geometry.GetProperty("type").GetString();
        var coordinates = geometry.GetProperty("coordinates");
        return type switch
        {
            "Polygon" => ReadPolygon(coordinates),
            "MultiPolygon" => Factory.CreateMultiPolygon(coordinates.EnumerateArray().Select(ReadPolygon).ToArray()),
            _ => throw new FormatException($"geometry type '{type}' is not a Polygon or MultiPolygon"),
        };
    }

    public static Geometry Read(string json)
    {
        using var document = JsonDocument.Parse(json);
        return Read(document.RootElement);
    }

    public static Point Point(double latitude, double longitude) => Factory.CreatePoint(new Coordinate(longitude, latitude));

    private static Polygon ReadPolygon(JsonElement rings)
    {
        var linear = rings.EnumerateArray().Select(ring => Factory.CreateLinearRing(
            ring.EnumerateArray().Select(Position).ToArray())).ToArray();
        if (linear.Length == 0)
        {
            throw new FormatException("a polygon needs at least one ring");
        }

        return Factory.CreatePolygon(linear[0], linear[1..]);
    }

    /// <summary>
    /// A position in degrees of WGS 84, as GeoJSON has them (RFC 7946): a file in metres of a projection (UTM) would read
    /// as areas millions of degrees wide, which no cell grid or map can hold.
    /// </summary>
    private static Coordinate Position(JsonElement position)
    {
        var (longitude, latitude) = (position[0].GetDouble(), position[1].GetDouble());
        if (!(longitude is >= -180 and <= 180) || !(latitude is >= -90 and <= 90))
        {
            throw new FormatException(string.Create(CultureInfo.InvariantCulture,
                $"position [{longitude}, {latitude}] is not a longitude from -180 to 180 and a latitude from -90 to 90 (GeoJSON positions are WGS 84 degrees)"));
        }

        return new Coordinate(longitude, latitude);
    }
}

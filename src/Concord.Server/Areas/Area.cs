namespace Concord.Server.Areas;

/// <summary>A named polygon: an admin-1 region, a sector, a zone. The geometry is kept as GeoJSON with its bounding box for coarse filtering.</summary>
internal sealed class Area
{
    public required Guid Id { get; init; }

    public required string Code { get; init; }

    public required string Name { get; set; }

    /// <summary>admin1, sector, zone …</summary>
    public required string Kind { get; set; }

    public required string GeometryJson { get; set; }

    public required double MinLatitude { get; set; }

    public required double MinLongitude { get; set; }

    public required double MaxLatitude { get; set; }

    public required double MaxLongitude { get; set; }
}

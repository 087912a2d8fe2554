using Concord.Server.Access;

namespace Concord.Server.EarlyWarning;

/// <summary>Next month's forecast for one cell: expected fatalities, P(≥ 1), the central 90 % interval; marked for its audience.</summary>
internal sealed class Forecast : MarkedRecord
{
    public required int Gid { get; init; }

    /// <summary>The first day of the month forecast.</summary>
    public required DateTime Month { get; init; }

    public required double Latitude { get; init; }

    public required double Longitude { get; init; }

    public required double Expected { get; init; }

    public required double AtLeastOne { get; init; }

    public required double Low { get; init; }

    public required double High { get; init; }

    public required DateTime ComputedAt { get; init; }
}

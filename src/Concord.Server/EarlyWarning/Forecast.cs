using Concord.Server.Access;

namespace Concord.Server.EarlyWarning;

/// <summary>A forecast of next month's fatalities: expected value, P(≥ 1) and the central 90 % interval; marked for its audience.</summary>
internal abstract class ForecastRecord : MarkedRecord
{
    /// <summary>The first day of the month forecast.</summary>
    public required DateTime Month { get; init; }

    public double Expected { get; private set; }

    public double AtLeastOne { get; private set; }

    public double Low { get; private set; }

    public double High { get; private set; }

    public required DateTime ComputedAt { get; init; }

    /// <summary>Sets the summary from a predictive distribution's equally likely values.</summary>
    public void Describe(double[] samples)
    {
        var sorted = samples.Order().ToArray();
        Expected = sorted.Average();
        AtLeastOne = Scoring.ProbabilityAtLeastOne(sorted);
        Low = Scoring.Quantile(sorted, 0.05);
        High = Scoring.Quantile(sorted, 0.95);
    }
}

/// <summary>Next month's forecast for one PRIO-GRID cell.</summary>
internal sealed class Forecast : ForecastRecord
{
    public required int Gid { get; init; }

    public required double Latitude { get; init; }

    public required double Longitude { get; init; }
}

/// <summary>Next month's forecast for an admin-1 area: its cells' predictive distributions added up (taken as independent).</summary>
internal sealed class AreaForecast : ForecastRecord
{
    public required Guid AreaId { get; init; }
}

namespace Concord.Server.EarlyWarning;

/// <summary>
/// Proper scores for probabilistic forecasts of counts, as the VIEWS prediction challenge uses them: the continuous
/// ranked probability score (CRPS) of a sample ensemble, the Brier score of a probability, and calibration tables.
/// Lower CRPS and Brier are better; both are zero for a perfect, certain forecast.
/// </summary>
internal static class Scoring
{
    /// <summary>
    /// CRPS of an ensemble (samples taken as equally likely): mean |X − y| − ½ mean |X − X′|, computed on the sorted
    /// samples in O(n log n). A point forecast reduces to its absolute error.
    /// </summary>
    public static double Crps(ReadOnlySpan<double> samples, double observed)
    {
        if (samples.IsEmpty)
        {
            throw new ArgumentException("a forecast needs at least one sample", nameof(samples));
        }

        var sorted = samples.ToArray();
        Array.Sort(sorted);
        var n = sorted.Length;
        double error = 0, spread = 0;
        for (var i = 0; i < n; i++)
        {
            error += Math.Abs(sorted[i] - observed);
            // Σ_i Σ_j |x_i − x_j| = 2 Σ_i (2i − n + 1) x_(i) for sorted x (0-based i).
            spread += ((2.0 * i) - n + 1) * sorted[i];
        }

        return (error / n) - (spread / ((double)n * n));
    }

    /// <summary>Brier score of the probability given to an event: (p − o)², o = 1 if it happened.</summary>
    public static double Brier(double probability, bool happened) =>
        (probability - (happened ? 1 : 0)) * (probability - (happened ? 1 : 0));

    /// <summary>Share of samples at or above one: the forecast probability of at least one fatality.</summary>
    public static double ProbabilityAtLeastOne(ReadOnlySpan<double> samples)
    {
        var count = 0;
        foreach (var s in samples)
        {
            count += s >= 1 ? 1 : 0;
        }

        return (double)count / samples.Length;
    }

    /// <summary>Reliability table: forecasts binned by probability (ten bins), with the mean forecast and the observed frequency in each.</summary>
    public static IReadOnlyList<(double From, double To, int Count, double MeanForecast, double Observed)> Reliability(IReadOnlyList<(double Probability, bool Happened)> forecasts, int bins = 10)
    {
        var table = new List<(double, double, int, double, double)>();
        for (var b = 0; b < bins; b++)
        {
            var from = (double)b / bins;
            var to = (double)(b + 1) / bins;
            var inBin = forecasts.Where(f => f.Probability >= from && (f.Probability < to || (b == bins - 1 && f.Probability <= to))).ToList();
            table.Add((from, to, inBin.Count, inBin.Count == 0 ? double.NaN : inBin.Average(f => f.Probability), inBin.Count == 0 ? double.NaN : inBin.Average(f => f.Happened ? 1.0 : 0.0)));
        }

        return table;
    }

    /// <summary>Share of observations inside the central interval holding <paramref name="level"/> of the samples (90 %: 5th to 95th percentile).</summary>
    public static bool Covers(ReadOnlySpan<double> samples, double observed, double level)
    {
        var sorted = samples.ToArray();
        Array.Sort(sorted);
        var low = Quantile(sorted, (1 - level) / 2);
        var high = Quantile(sorted, 1 - ((1 - level) / 2));
        return observed >= low && observed <= high;
    }

    public static double Quantile(double[] sorted, double q)
    {
        var rank = q * (sorted.Length - 1);
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
    }
}

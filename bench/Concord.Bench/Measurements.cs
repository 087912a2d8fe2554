using System.Globalization;

namespace Concord.Bench;

/// <summary>Latency samples in milliseconds, with the percentiles the targets are written in.</summary>
internal sealed class Measurements
{
    private readonly List<double> _samples = [];

    public int Count => _samples.Count;

    public void Add(double milliseconds) => _samples.Add(milliseconds);

    public void AddRange(IEnumerable<double> milliseconds) => _samples.AddRange(milliseconds);

    public double Percentile(double p)
    {
        if (_samples.Count == 0)
        {
            return double.NaN;
        }

        var sorted = _samples.Order().ToArray();
        var rank = p / 100.0 * (sorted.Length - 1);
        var low = (int)Math.Floor(rank);
        var high = (int)Math.Ceiling(rank);
        return sorted[low] + ((sorted[high] - sorted[low]) * (rank - low));
    }

    public static string Ms(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);
}

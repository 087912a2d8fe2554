namespace Concord.Server.EarlyWarning;

/// <summary>A forecaster gives, for a cell and a forecast origin t (data up to month t), samples of month t+1's fatalities.</summary>
internal interface IForecaster
{
    string Name { get; }

    /// <summary>Learns from the panel using only targets at months ≤ <paramref name="lastTarget"/> (and features before them).</summary>
    void Fit(Panel panel, int lastTarget);

    double[] Forecast(Panel panel, int row, int origin);
}

/// <summary>The VIEWS benchmarks: all zeros, the last value, the cell's last twelve months (conflictology), a bootstrap of its history.</summary>
internal sealed class ZeroForecaster : IForecaster
{
    public string Name => "all zeros";

    public void Fit(Panel panel, int lastTarget)
    {
    }

    public double[] Forecast(Panel panel, int row, int origin) => [0];
}

internal sealed class LastValueForecaster : IForecaster
{
    public string Name => "last value";

    public void Fit(Panel panel, int lastTarget)
    {
    }

    public double[] Forecast(Panel panel, int row, int origin) => [panel.Killed[row, origin]];
}

internal sealed class ConflictologyForecaster : IForecaster
{
    public string Name => "conflictology (last 12 months)";

    public void Fit(Panel panel, int lastTarget)
    {
    }

    public double[] Forecast(Panel panel, int row, int origin)
    {
        var from = Math.Max(0, origin - 11);
        var samples = new double[origin - from + 1];
        for (var m = from; m <= origin; m++)
        {
            samples[m - from] = panel.Killed[row, m];
        }

        return samples;
    }
}

internal sealed class BootstrapForecaster(int seed = 240) : IForecaster
{
    public const int Draws = 240;

    public string Name => "bootstrap (240 draws of the cell's last 20 years)";

    public void Fit(Panel panel, int lastTarget)
    {
    }

    /// <summary>
    /// A seed computed the same way in every process (HashCode is randomised per process, so the benchmark's scores moved
    /// from run to run), and well mixed (SplitMix64's finaliser): neighbouring cells and months draw unrelated samples.
    /// </summary>
    internal static int Seed(int seed, int row, int origin)
    {
        unchecked
        {
            var z = ((ulong)seed << 40) ^ ((ulong)(uint)row << 20) ^ (uint)origin;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (int)(z ^ (z >> 31));
        }
    }

    public double[] Forecast(Panel panel, int row, int origin)
    {
        var random = new Random(Seed(seed, row, origin));
        var from = Math.Max(0, origin - 239);
        var samples = new double[Draws];
        for (var i = 0; i < Draws; i++)
        {
            samples[i] = panel.Killed[row, random.Next(from, origin + 1)];
        }

        return samples;
    }
}

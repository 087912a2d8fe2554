namespace Concord.Server.EarlyWarning;

/// <summary>
/// Concord's forecast, a hurdle model. Whether a cell has at least one fatality next month is a logistic regression on
/// its own recent history (last month, last 3 and 12 months, events), its neighbours' last 3 months, the time since its
/// last fatal event and the share of one-sided violence (fitted by iteratively reweighted least squares with a small
/// ridge penalty). How many, given some, is the cell's own recent fatal months (last 3 years), widened to its neighbours'
/// and then to the whole training set when it has few. The predictive distribution is 1,000 equally likely values: zeros
/// in proportion 1 − p, then the size distribution's quantiles. (A negative-binomial regression of the counts was tried first
/// and rejected: a few massacres made its mean explode; see docs/early-warning.md.)
/// </summary>
internal sealed class HurdleForecaster : IForecaster
{
    public const int Samples = 1000;
    public const int FeatureCount = 8;
    private const double Ridge = 1.0;

    private double[] _beta = new double[FeatureCount];

    public string Name => "Concord (hurdle: logistic + empirical sizes)";

    private double[] _globalSizes = [1];

    public IReadOnlyList<double> Coefficients => _beta;

    /// <summary>The features of a cell at origin t: only months ≤ t are read (the leakage guard test checks it).</summary>
    public static void Features(Panel panel, int row, int origin, Span<double> x)
    {
        double Sum(double[,] values, int r, int months)
        {
            double s = 0;
            for (var m = Math.Max(0, origin - months + 1); m <= origin; m++)
            {
                s += values[r, m];
            }

            return s;
        }

        var neighbours = 0.0;
        foreach (var n in panel.NeighbourRows[row])
        {
            neighbours += Sum(panel.Killed, n, 3);
        }

        var since = 0.0;
        for (var m = origin; m >= 0; m--)
        {
            if (panel.Killed[row, m] > 0)
            {
                since = Math.Exp(-(origin - m) / 12.0);
                break;
            }
        }

        var events12 = Sum(panel.Events, row, 12);
        x[0] = 1;
        x[1] = Math.Log(1 + panel.Killed[row, origin]);
        x[2] = Math.Log(1 + (Sum(panel.Killed, row, 3) / 3));
        x[3] = Math.Log(1 + (Sum(panel.Killed, row, 12) / 12));
        x[4] = Math.Log(1 + (neighbours / Math.Max(1, panel.NeighbourRows[row].Length) / 3));
        x[5] = since;
        x[6] = Math.Log(1 + Sum(panel.Events, row, 3));
        x[7] = events12 > 0 ? Sum(panel.OneSided, row, 12) / events12 : 0;
    }

    public void Fit(Panel panel, int lastTarget)
    {
        // Training pairs: origin t with target t + 1 ≤ lastTarget, after a year of history.
        var origins = Enumerable.Range(12, Math.Max(0, lastTarget - 12)).ToList();
        var n = panel.Cells.Count * origins.Count;
        var x = new double[n * FeatureCount];
        var y = new double[n];
        var i = 0;
        foreach (var t in origins)
        {
            for (var row = 0; row < panel.Cells.Count; row++)
            {
                Features(panel, row, t, x.AsSpan(i * FeatureCount, FeatureCount));
                y[i] = panel.Killed[row, t + 1];
                i++;
            }
        }

        _beta = new double[FeatureCount];
        var positives = y.Count(v => v >= 1);
        _beta[0] = Math.Log((positives + 0.5) / (n - positives + 0.5));
        for (var iteration = 0; iteration < 30; iteration++)
        {
            // Newton step for the penalised logistic log-likelihood: (XᵀWX + λI) Δ = Xᵀ(o − π) − λβ.
            var h = new double[FeatureCount, FeatureCount];
            var g = new double[FeatureCount];
            for (var k = 0; k < n; k++)
            {
                var row = x.AsSpan(k * FeatureCount, FeatureCount);
                var pi = Probability(row);
                var o = y[k] >= 1 ? 1.0 : 0.0;
                var w = pi * (1 - pi);
                for (var a = 0; a < FeatureCount; a++)
                {
                    g[a] += row[a] * (o - pi);
                    for (var c = 0; c <= a; c++)
                    {
                        h[a, c] += row[a] * row[c] * w;
                    }
                }
            }

            for (var a = 0; a < FeatureCount; a++)
            {
                g[a] -= a == 0 ? 0 : Ridge * _beta[a];
                h[a, a] += a == 0 ? 1e-9 : Ridge;
                for (var c = 0; c < a; c++)
                {
                    h[c, a] = h[a, c];
                }
            }

            // Newton's step, halved until the penalised likelihood does not fall (rare events make full steps overshoot).
            var step = Solve(h, g);
            var before = LogLikelihood(x, y, n);
            var previous = (double[])_beta.Clone();
            var scale = 1.0;
            for (var halving = 0; halving < 30; halving++, scale /= 2)
            {
                for (var a = 0; a < FeatureCount; a++)
                {
                    _beta[a] = previous[a] + (scale * step[a]);
                }

                if (LogLikelihood(x, y, n) >= before - 1e-9)
                {
                    break;
                }
            }

            if (step.Max(Math.Abs) * scale < 1e-6)
            {
                break;
            }
        }

        // Sizes across the training set, as 99 quantiles: the fallback for cells with little fatal history.
        var sizes = y.Where(v => v >= 1).Order().ToArray();
        _globalSizes = sizes.Length == 0 ? [1] : Enumerable.Range(1, 99).Select(q => Scoring.Quantile(sizes, q / 100.0)).ToArray();
    }

    private double LogLikelihood(double[] x, double[] y, int n)
    {
        var sum = 0.0;
        for (var k = 0; k < n; k++)
        {
            var p = Math.Clamp(Probability(x.AsSpan(k * FeatureCount, FeatureCount)), 1e-12, 1 - 1e-12);
            sum += y[k] >= 1 ? Math.Log(p) : Math.Log(1 - p);
        }

        for (var a = 1; a < FeatureCount; a++)
        {
            sum -= 0.5 * Ridge * _beta[a] * _beta[a];
        }

        return sum;
    }

    private double Probability(ReadOnlySpan<double> features)
    {
        var eta = 0.0;
        for (var a = 0; a < FeatureCount; a++)
        {
            eta += features[a] * _beta[a];
        }

        return 1 / (1 + Math.Exp(-Math.Clamp(eta, -30, 30)));
    }

    public double[] Forecast(Panel panel, int row, int origin)
    {
        Span<double> x = stackalloc double[FeatureCount];
        Features(panel, row, origin, x);
        var p = Probability(x);
        var sizes = Sizes(panel, row, origin);
        var samples = new double[Samples];
        var zeros = (int)Math.Round((1 - p) * Samples);
        for (var i = zeros; i < Samples; i++)
        {
            // Spread the fatal share over the size distribution's quantiles.
            var q = (i - zeros + 0.5) / (Samples - zeros);
            samples[i] = Math.Max(1, Math.Round(Scoring.Quantile(sizes, q)));
        }

        return samples;
    }

    /// <summary>The expected fatalities and P(≥ 1) of a cell's forecast (for storing and showing).</summary>
    public (double Mean, double AtLeastOne) Summary(Panel panel, int row, int origin)
    {
        var samples = Forecast(panel, row, origin);
        return (samples.Average(), Scoring.ProbabilityAtLeastOne(samples));
    }

    /// <summary>Fatal months of the cell in the last three years (sorted), or of its neighbourhood, or of the training set.</summary>
    private double[] Sizes(Panel panel, int row, int origin)
    {
        var own = new List<double>();
        void Collect(int r)
        {
            for (var m = Math.Max(0, origin - 35); m <= origin; m++)
            {
                if (panel.Killed[r, m] >= 1)
                {
                    own.Add(panel.Killed[r, m]);
                }
            }
        }

        Collect(row);
        if (own.Count < 3)
        {
            foreach (var n in panel.NeighbourRows[row])
            {
                Collect(n);
            }
        }

        if (own.Count < 3)
        {
            return _globalSizes;
        }

        own.Sort();
        return [.. own];
    }

    /// <summary>Solves a small symmetric positive definite system by Gaussian elimination with partial pivoting.</summary>
    private static double[] Solve(double[,] a, double[] b)
    {
        var n = b.Length;
        var m = (double[,])a.Clone();
        var v = (double[])b.Clone();
        for (var c = 0; c < n; c++)
        {
            var pivot = c;
            for (var r = c + 1; r < n; r++)
            {
                if (Math.Abs(m[r, c]) > Math.Abs(m[pivot, c]))
                {
                    pivot = r;
                }
            }

            if (pivot != c)
            {
                for (var k = 0; k < n; k++)
                {
                    (m[c, k], m[pivot, k]) = (m[pivot, k], m[c, k]);
                }

                (v[c], v[pivot]) = (v[pivot], v[c]);
            }

            for (var r = c + 1; r < n; r++)
            {
                var f = m[r, c] / m[c, c];
                for (var k = c; k < n; k++)
                {
                    m[r, k] -= f * m[c, k];
                }

                v[r] -= f * v[c];
            }
        }

        var x = new double[n];
        for (var r = n - 1; r >= 0; r--)
        {
            var s = v[r];
            for (var k = r + 1; k < n; k++)
            {
                s -= m[r, k] * x[k];
            }

            x[r] = s / m[r, r];
        }

        return x;
    }
}

namespace Concord.Server.EarlyWarning;

/// <summary>Scores of one forecaster over one held-out window.</summary>
internal sealed record WindowScore(string Model, int Year, int Forecasts, double Crps, double Brier, double Coverage90);

/// <summary>
/// Rolling-origin back-test: for each held-out calendar year, every forecaster learns from the months before it only
/// (targets up to December of the year before), then forecasts each month of the year one month ahead from the data up
/// to the month before (as it would have been known then). Scored per cell-month with CRPS, the Brier score of
/// P(≥ 1 fatality), and the coverage of the central 90 % interval.
/// </summary>
internal static class Backtest
{
    public static (List<WindowScore> Scores, List<(double Probability, bool Happened)> Calibration) Run(
        Panel panel, IReadOnlyList<IForecaster> forecasters, int firstYear, int lastYear, string calibrated, CancellationToken cancellationToken = default)
    {
        var scores = new List<WindowScore>();
        var calibration = new List<(double, bool)>();
        for (var year = firstYear; year <= lastYear; year++)
        {
            var firstTarget = panel.MonthOf(new DateTime(year, 1, 1, 0, 0, 0, DateTimeKind.Utc));
            var lastTarget = Math.Min(panel.Months - 1, firstTarget + 11);
            // Two years before the window and the month after them: a year of lagged features, then twelve training months
            // (a target needs its year of features before it: targets 13 to 24), as a forecast in service needs
            // (ForecastService.MinimumMonths). With fewer the model learns from fewer months (from none, a coin toss scored as
            // a model's skill); from 24 it learnt from eleven.
            if (firstTarget < ForecastService.MinimumMonths || firstTarget >= panel.Months || panel.Cells.Count == 0)
            {
                continue;
            }

            foreach (var forecaster in forecasters)
            {
                // A long back-test (a whole GED file from its first years) is interrupted by Ctrl+C between two fits.
                cancellationToken.ThrowIfCancellationRequested();
                // The leakage guard: nothing at or after the window's first month is learnt from.
                forecaster.Fit(panel, firstTarget - 1);
                double crps = 0, brier = 0;
                var covered = 0;
                var count = 0;
                for (var target = firstTarget; target <= lastTarget; target++)
                {
                    for (var row = 0; row < panel.Cells.Count; row++)
                    {
                        var samples = forecaster.Forecast(panel, row, target - 1);
                        var observed = panel.Killed[row, target];
                        crps += Scoring.Crps(samples, observed);
                        var p = Scoring.ProbabilityAtLeastOne(samples);
                        brier += Scoring.Brier(p, observed >= 1);
                        covered += Scoring.Covers(samples, observed, 0.9) ? 1 : 0;
                        count++;
                        if (forecaster.Name == calibrated)
                        {
                            calibration.Add((p, observed >= 1));
                        }
                    }
                }

                scores.Add(new WindowScore(forecaster.Name, year, count, crps / count, brier / count, (double)covered / count));
            }
        }

        return (scores, calibration);
    }
}

using Concord.Server.EarlyWarning;

namespace Concord.Server.Tests;

/// <summary>The scores, the benchmarks, the model's leakage guard and the back-test on the real CAR events.</summary>
public sealed class EarlyWarningTests
{
    [Theory]
    [InlineData("ucdp.one-sided", true)]
    [InlineData("acled.violence-against-civilians.attack", true)]
    [InlineData("poc.killing-and-maiming", true)]
    [InlineData("ucdp.state-based", false)]
    [InlineData("acled.battles.armed-clash", false)]
    [InlineData("poc.forced-displacement", false)]
    public void One_sided_violence_is_told_by_every_scheme_that_reports_it(string category, bool oneSided)
    {
        // The model's feature is UCDP's violence type 3 in the back-test; in service, a protection officer's killing of
        // civilians (poc.killing-and-maiming, which fusion pairs with UCDP's one-sided type) counted as not one-sided.
        Assert.Equal(oneSided, ForecastService.OneSided(category));
    }

    [Fact]
    public void CRPS_and_Brier_match_hand_computed_values()
    {
        // Ensemble {0, 2}, observed 1: mean |X − y| = 1, mean |X − X′| = (0 + 2 + 2 + 0) / 4 = 1, CRPS = 1 − ½ = 0.5.
        Assert.Equal(0.5, Scoring.Crps([0, 2], 1), 12);
        // {1, 2, 3, 4}, observed 2.5: mean |X − y| = 1, Σ|xi − xj| = 20 over 16 pairs, CRPS = 1 − 0.625 = 0.375.
        Assert.Equal(0.375, Scoring.Crps([4, 1, 3, 2], 2.5), 12);
        // A point forecast scores its absolute error.
        Assert.Equal(2, Scoring.Crps([3], 5), 12);
        Assert.Equal(0, Scoring.Crps([7, 7, 7], 7), 12);
        Assert.Equal(0.09, Scoring.Brier(0.7, happened: true), 12);
        Assert.Equal(0.49, Scoring.Brier(0.7, happened: false), 12);
        Assert.Equal(0.5, Scoring.ProbabilityAtLeastOne([0, 0, 1, 5]), 12);
        Assert.True(Scoring.Covers([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5, 0.9));
        Assert.False(Scoring.Covers([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, 0.5));
        Assert.Throws<ArgumentException>(() => Scoring.Crps([], 1));
    }

    private static Panel Toy(DateTime? from = null)
    {
        // Two neighbouring cells, 36 months to December 2002 (from January 2000 unless said): cell A has 2 fatalities
        // every month from month 20, cell B none.
        var a = PrioGrid.Gid(6.25, 20.25);
        var b = PrioGrid.Gid(6.25, 20.75);
        var start = from ?? new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var end = new DateTime(2002, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var events = Enumerable.Range(20, 16).Select(m => new ConflictEvent(6.25, 20.25, start.AddMonths(m), 2, false)).Where(e => e.At <= end);
        return Panel.Build(events, [a, b], start, end);
    }

    [Fact]
    public void A_panel_counts_only_the_events_it_holds()
    {
        // The forecast's summary ("learnt from N incidents") counted every open incident: the month in progress, years
        // before the panel's first month, cells outside it.
        var a = PrioGrid.Gid(6.25, 20.25);
        var start = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        ConflictEvent At(DateTime when, double longitude = 20.25) => new(6.25, longitude, when, 1, false);
        var panel = Panel.Build([At(start), At(start.AddMonths(35).AddDays(27)), At(start.AddMonths(36)), At(start.AddYears(-10)), At(start.AddMonths(3), longitude: 25.25)],
            [a], start, start.AddMonths(35));

        Assert.Equal(2, panel.Counted);
        Assert.Equal(16, Toy().Counted);
    }

    [Fact]
    public void Spike_probabilities_are_Poisson_upper_tails()
    {
        Assert.Equal(1, EarlyWarningEndpoints.PoissonUpperTail(0, 2.5), 12);
        Assert.Equal(1 - Math.Exp(-1), EarlyWarningEndpoints.PoissonUpperTail(1, 1), 12);
        // λ = 2, k = 5: 1 − e⁻²(1 + 2 + 2 + 4/3 + 2/3) = 1 − 7e⁻² = 0.0526530…
        Assert.Equal(1 - (7 * Math.Exp(-2)), EarlyWarningEndpoints.PoissonUpperTail(5, 2), 12);
        // Deep in the tail the probability stays positive and tiny rather than rounding to zero.
        var tiny = EarlyWarningEndpoints.PoissonUpperTail(40, 0.5);
        Assert.InRange(tiny, 1e-70, 1e-55);
    }

    [Fact]
    public void The_benchmarks_forecast_as_VIEWS_defines_them()
    {
        var panel = Toy();
        Assert.Equal([0.0], new ZeroForecaster().Forecast(panel, 0, 30));
        Assert.Equal([2.0], new LastValueForecaster().Forecast(panel, 0, 30));
        Assert.Equal([0.0], new LastValueForecaster().Forecast(panel, 1, 30));
        // Months 19..30: one zero (19) then eleven 2s.
        Assert.Equal(Enumerable.Repeat(0.0, 1).Concat(Enumerable.Repeat(2.0, 11)), new ConflictologyForecaster().Forecast(panel, 0, 30));
        var boot = new BootstrapForecaster().Forecast(panel, 0, 30);
        Assert.Equal(BootstrapForecaster.Draws, boot.Length);
        Assert.All(boot, v => Assert.Contains(v, new[] { 0.0, 2.0 }));
        Assert.Equal(1, PrioGrid.Gid(-89.9, -179.9));
        Assert.Equal(8, PrioGrid.Neighbours(PrioGrid.Gid(6.25, 20.25)).Count());
        Assert.Equal((6.25, 20.25), PrioGrid.Centre(PrioGrid.Gid(6.3, 20.4)));
        // The east and north edges are places too: they belong to the last column and row, not to the next row or off the grid.
        Assert.Equal((5.25, 179.75), PrioGrid.Centre(PrioGrid.Gid(5.0, 180.0)));
        Assert.Equal((89.75, 20.25), PrioGrid.Centre(PrioGrid.Gid(90.0, 20.4)));
        Assert.Equal(360 * 720, PrioGrid.Gid(90.0, 180.0));
    }

    [Fact]
    public void No_future_data_reaches_a_training_window_or_a_forecast()
    {
        var panel = Toy();
        var model = new HurdleForecaster();
        model.Fit(panel, lastTarget: 28);
        var coefficients = model.Coefficients.ToArray();
        var forecast = model.Forecast(panel, 0, 28);

        // Change everything after month 28: fitting up to 28 and forecasting from 28 must not notice.
        for (var m = 29; m < panel.Months; m++)
        {
            panel.Killed[0, m] = 500;
            panel.Events[0, m] = 9;
            panel.Killed[1, m] = 77;
        }

        model.Fit(panel, lastTarget: 28);
        Assert.Equal(coefficients, model.Coefficients.ToArray());
        Assert.Equal(forecast, model.Forecast(panel, 0, 28));
        Assert.NotEqual(forecast, model.Forecast(panel, 0, 30));
    }

    /// <summary>A forecaster that records what the back-test lets it learn from and what it asks it to forecast.</summary>
    private sealed class Spy : IForecaster
    {
        private int _fitted = -1;

        public string Name => "spy";

        public List<int> Fits { get; } = [];

        public List<(int Fitted, int Origin)> Forecasts { get; } = [];

        public void Fit(Panel panel, int lastTarget)
        {
            _fitted = lastTarget;
            Fits.Add(lastTarget);
        }

        public double[] Forecast(Panel panel, int row, int origin)
        {
            Forecasts.Add((_fitted, origin));
            return [0];
        }
    }

    [Fact]
    public void The_back_test_trains_before_each_held_out_year_and_forecasts_only_months_after_it()
    {
        // From January 2000, no year of 2000–2002 has the history a window needs, two years and a month (a year of
        // features, then twelve training months, as a forecast in service needs): 2002 was scored on a model learnt from
        // eleven months (targets 13 to 23). Skipped, as 2000 and 2001 are.
        var early = new Spy();
        Assert.Empty(Backtest.Run(Toy(), [early], 2000, 2002, "spy").Scores);
        Assert.Empty(early.Fits);

        // From December 1999, 2002 has it: learnt up to December 2001 (month 24), each of its months forecast one month
        // ahead from the month before.
        var panel = Toy(new DateTime(1999, 12, 1, 0, 0, 0, DateTimeKind.Utc));
        var spy = new Spy();
        var (scores, calibration) = Backtest.Run(panel, [spy], 2000, 2002, "spy");

        Assert.Equal([24], spy.Fits);
        Assert.Equal(Enumerable.Range(24, 12).SelectMany(origin => new[] { (24, origin), (24, origin) }), spy.Forecasts);
        Assert.All(spy.Forecasts, f => Assert.True(f.Origin + 1 > f.Fitted, $"target {f.Origin + 1} was learnt from (fitted to {f.Fitted})"));
        Assert.Equal(2002, Assert.Single(scores).Year);
        Assert.Equal(24, calibration.Count);
    }

    [Fact]
    public void The_hurdle_forecast_puts_zeros_and_sizes_in_proportion()
    {
        var panel = Toy();
        var model = new HurdleForecaster();
        model.Fit(panel, lastTarget: 34);
        var active = model.Forecast(panel, 0, 34);
        var quiet = model.Forecast(panel, 1, 34);
        Assert.Equal(HurdleForecaster.Samples, active.Length);
        // The active cell has had 2 killed every month: its fatal share is high and its sizes are 2.
        Assert.True(Scoring.ProbabilityAtLeastOne(active) > 0.5, $"P(≥1) {Scoring.ProbabilityAtLeastOne(active)}");
        Assert.All(active.Where(v => v > 0), v => Assert.Equal(2, v));
        Assert.True(Scoring.ProbabilityAtLeastOne(quiet) < Scoring.ProbabilityAtLeastOne(active));
        Assert.All(model.Coefficients, c => Assert.True(double.IsFinite(c)));
    }

    [Fact]
    public void The_back_test_on_the_real_CAR_events_scores_every_model_in_every_held_out_year()
    {
        var reference = Path.Combine(AppContext.BaseDirectory, "reference");
        var result = ForecastEvaluation.Run(Path.Combine(reference, "ucdp", "ged231_caf_events.csv"), Path.Combine(reference, "geo", "ne10m_admin1_caf.geojson"), 2015, 2022);

        Assert.InRange(result.Panel.Cells.Count, 200, 400);
        Assert.Equal(5 * 8, result.Scores.Count);
        Assert.All(result.Scores, s => Assert.True(double.IsFinite(s.Crps) && s.Crps >= 0 && s.Brier is >= 0 and <= 1, $"{s.Model} {s.Year}"));
        Assert.All(result.Scores, s => Assert.Equal(result.Panel.Cells.Count * 12, s.Forecasts));
        var markdown = ForecastEvaluation.Markdown(result);
        Assert.Contains("mean CRPS", markdown);
        // Recorded in docs/early-warning.md: Concord's forecast beats every benchmark on mean CRPS over 2015–2022.
        double Mean(string model) => result.Scores.Where(s => s.Model.StartsWith(model, StringComparison.Ordinal)).Average(s => s.Crps);
        Assert.True(Mean("Concord") < Mean("all zeros") && Mean("Concord") < Mean("last value") && Mean("Concord") < Mean("conflictology"),
            $"Concord {Mean("Concord"):0.0000}, zeros {Mean("all zeros"):0.0000}, last {Mean("last value"):0.0000}, conflictology {Mean("conflictology"):0.0000}");
        // And what docs/early-warning.md and the README say around its table: Concord beats all zeros, last value and
        // conflictology in every held-out year, the bootstrap on the mean and in seven years of eight, all zeros on the mean
        // Brier score; and the table's means are what the run prints (a model change that moves them must move the docs).
        double Crps(string model, int year) => result.Scores.Single(s => s.Model.StartsWith(model, StringComparison.Ordinal) && s.Year == year).Crps;
        foreach (var year in Enumerable.Range(2015, 8))
        {
            Assert.All((string[])["all zeros", "last value", "conflictology"], benchmark => Assert.True(Crps("Concord", year) < Crps(benchmark, year), $"{year}: Concord {Crps("Concord", year):0.0000}, {benchmark} {Crps(benchmark, year):0.0000}"));
        }

        Assert.True(Mean("Concord") < Mean("bootstrap"), $"Concord {Mean("Concord"):0.0000}, bootstrap {Mean("bootstrap"):0.0000}");
        Assert.Equal(7, Enumerable.Range(2015, 8).Count(year => Crps("Concord", year) < Crps("bootstrap", year)));
        double Brier(string model) => result.Scores.Where(s => s.Model.StartsWith(model, StringComparison.Ordinal)).Average(s => s.Brier);
        Assert.True(Brier("Concord") < Brier("all zeros"), $"Brier: Concord {Brier("Concord"):0.0000}, zeros {Brier("all zeros"):0.0000}");
        Assert.Equal([0.3078, 0.3195, 0.5532, 0.3334, 0.3140], ((string[])["Concord", "all zeros", "last value", "conflictology", "bootstrap"]).Select(m => Math.Round(Mean(m), 4)));
        Assert.StartsWith("<svg", ForecastEvaluation.Svg(result));
        Assert.Equal(0, result.Rejected);
        // Held-out months with no death at all score every model zero: the chart draws bars of no height, not NaN ones.
        var quiet = result with { Scores = [.. result.Scores.Select(s => s with { Crps = 0 })] };
        Assert.DoesNotContain("NaN", ForecastEvaluation.Svg(quiet), StringComparison.Ordinal);

        // The cells are chosen before the first held-out year: a cell outside the prefectures that only a later event
        // reaches would be scored on outcomes its choice saw.
        var areaCells = ForecastEvaluation.MissionCells(Path.Combine(reference, "geo", "ne10m_admin1_caf.geojson"), []).ToHashSet();
        var added = result.Panel.Cells.Where(c => !areaCells.Contains(c)).ToList();
        Assert.NotEmpty(added);
        Assert.All(added, c => Assert.True(Before(c, 2015), $"cell {c} has no event before 2015"));

        bool Before(int gid, int year)
        {
            using var reader = new StreamReader(Path.Combine(reference, "ucdp", "ged231_caf_events.csv"));
            return Ucdp.GedReader.Read(reader).Any(r => r.Event is { } e && e.DateStart.Year < year && PrioGrid.Gid(e.Latitude, e.Longitude) == gid);
        }
    }

    [Fact]
    public void Areas_given_in_metres_rather_than_degrees_are_refused_with_the_position()
    {
        // A prefecture in UTM metres: read as degrees its cells would number a million million, and the cell walk never ends.
        var path = Path.Combine(Path.GetTempPath(), $"areas-{Guid.NewGuid():N}.geojson");
        File.WriteAllText(path, """
            {"type":"FeatureCollection","features":[{"type":"Feature","properties":{"adm1_code":"X-1","name":"Metres"},
             "geometry":{"type":"Polygon","coordinates":[[[500000,1000000],[510000,1000000],[510000,1010000],[500000,1000000]]]}}]}
            """);
        try
        {
            var refused = Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.MissionCells(path, []));
            Assert.Contains("position [500000, 1000000] is not a longitude from -180 to 180", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void The_back_test_refuses_years_its_data_does_not_cover_and_files_without_events()
    {
        var reference = Path.Combine(AppContext.BaseDirectory, "reference");
        var ged = Path.Combine(reference, "ucdp", "ged231_caf_events.csv");
        var areas = Path.Combine(reference, "geo", "ne10m_admin1_caf.geojson");
        // The file ends in December 2022: 2023 and 2024 would be scored as years without a death.
        Assert.Contains("to 2022", Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(ged, areas, 2015, 2024)).Message);
        // It begins in August 1991: a window needs two years after the first event before it (January 1993 has 17 months).
        Assert.Contains("from 1994", Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(ged, areas, 1990, 1992)).Message);
        Assert.Contains("from 1994", Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(ged, areas, 1993, 1993)).Message);
        var empty = Path.GetTempFileName();
        try
        {
            File.WriteAllText(empty, "");
            Assert.Contains("no event", Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(empty, areas, 2015, 2022)).Message);
            // Areas of another shape are refused with the file named, not thrown as a stack trace: not JSON, not a
            // FeatureCollection, a Point, a ring of one-number positions, and no area at all.
            foreach (var text in new[] { "{", """{"type": "Feature"}""", """{"features": [{"properties": {"adm1_code": "A", "name": "A"}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]}""",
                """{"features": [{"properties": {"adm1_code": "A", "name": "A"}, "geometry": {"type": "Polygon", "coordinates": [[[1], [2], [3], [1]]]}}]}""", """{"features": []}""" })
            {
                File.WriteAllText(empty, text);
                Assert.Contains(empty, Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(ged, empty, 2015, 2022)).Message, StringComparison.Ordinal);
            }

            // An area far from every event, smaller than a cell (in the Pacific): no cell to score, said rather than scored as NaN.
            File.WriteAllText(empty, """{"features": [{"properties": {"adm1_code": "P", "name": "Pacific"}, "geometry": {"type": "Polygon", "coordinates": [[[-150.1, -10.1], [-150.0, -10.1], [-150.0, -10.0], [-150.1, -10.0], [-150.1, -10.1]]]}}]}""");
            Assert.Contains("nothing to score", Assert.Throws<ForecastEvaluation.Refused>(() => ForecastEvaluation.Run(ged, empty, 2015, 2022)).Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(empty);
        }
    }

    [Fact]
    public void The_bootstrap_benchmark_draws_the_same_samples_in_every_process()
    {
        // Seeded by a fixed mix, not HashCode (randomised per process): these are the draws of any run, on any machine, and
        // neighbouring cell-months do not share one.
        var panel = new Panel([1, 2], new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc), 40);
        for (var m = 0; m < 40; m++)
        {
            panel.Killed[0, m] = m;
        }

        var samples = new BootstrapForecaster().Forecast(panel, 0, 30);
        Assert.Equal(new Random(BootstrapForecaster.Seed(240, 0, 30)).Next(0, 31), samples[0]);
        var seeds = Enumerable.Range(0, 20).SelectMany(r => Enumerable.Range(31, 400).Select(o => (r, o, Seed: BootstrapForecaster.Seed(240, r, o)))).ToList();
        Assert.Equal(seeds.Count, seeds.Select(s => s.Seed).Distinct().Count());
        // (A seed of (seed·31 + row)·31 + origin gave a cell the draws of its neighbour 31 months earlier.)
        Assert.DoesNotContain(seeds, s => s.Seed == BootstrapForecaster.Seed(240, s.r + 1, s.o - 31));
        Assert.Equal(samples, new BootstrapForecaster().Forecast(panel, 0, 30));
    }

    [Fact]
    public async Task The_back_test_that_failed_is_run_again_and_one_that_succeeded_is_kept()
    {
        var runs = 0;
        var once = new OnceUnlessFailed<int>(() => Task.Run(() => ++runs == 1 ? throw new IOException("reference file locked") : runs));

        await Assert.ThrowsAsync<IOException>(() => once.Value);
        Assert.Equal(2, await once.Value);
        Assert.Equal(2, await once.Value);
        Assert.Equal(2, runs);
    }

    [Fact]
    public void The_panel_starts_past_a_short_stretch_of_reporting_cut_off_from_the_rest_and_no_more_than_forty_years_before_its_end()
    {
        static DateTime At(int year, int month, int day = 1) => new(year, month, day, 0, 0, 0, DateTimeKind.Utc);
        var end = At(2022, 12);
        // The bundled GED history (from 1989) is kept whole; reporting since 1975 is held to the last forty years.
        Assert.Equal(At(1989, 1, 3), ForecastService.PanelStart([At(1989, 1, 3), .. Enumerable.Range(1, 406).Select(m => At(1989, 1).AddMonths(m))], end));
        Assert.Equal(At(1982, 12), ForecastService.PanelStart([.. Enumerable.Range(0, 48 * 12).Select(m => At(1975, 1).AddMonths(m))], end));
        // A report mistyped as 2001 beside six months of a new mission's: the panel is those months (too few to forecast
        // from), not 21 years of quiet ones before them; 24 quiet months are still history, 25 are not.
        Assert.Equal(At(2022, 6), ForecastService.PanelStart([At(2001, 1), At(2022, 6, 15), At(2022, 9), At(2022, 12)], end));
        Assert.Equal(At(2020, 1), ForecastService.PanelStart([At(2020, 1), At(2022, 1), At(2022, 12)], end));
        Assert.Equal(At(2022, 2), ForecastService.PanelStart([At(2019, 12), At(2022, 2), At(2022, 12)], end));
        // A long history is kept whole when reporting resumes after a gap (a mission's first report after a dataset's
        // history ended years before), and short stretches before it go one after another.
        var history = Enumerable.Range(0, 10 * 12).Select(m => At(2009, 1).AddMonths(m)).ToList();
        Assert.Equal(At(2009, 1), ForecastService.PanelStart([.. history, At(2022, 12)], end));
        Assert.Equal(At(2009, 1), ForecastService.PanelStart([At(1990, 3), At(1995, 7), .. history, At(2022, 12)], end));
        // A later incident than the end (a month in progress) is no part of it.
        Assert.Equal(At(2020, 1), ForecastService.PanelStart([At(2020, 1), At(2022, 1), At(2026, 1)], end));

        // Nor are the cells of incidents before the start (the mistyped report's) in the panel: only quiet months there.
        ConflictEvent[] events = [new(-29.1, 35.1, At(2001, 1), 0, false), new(4.4, 18.6, At(2022, 6, 15), 1, false), new(5.6, 20.6, At(2022, 9), 0, false)];
        var start = ForecastService.PanelStart(events.Select(e => e.At), end);
        Assert.Equal([PrioGrid.Gid(4.4, 18.6), PrioGrid.Gid(5.6, 20.6)], ForecastService.CellsOf(events, start, end.AddMonths(1)).Order());
    }
}

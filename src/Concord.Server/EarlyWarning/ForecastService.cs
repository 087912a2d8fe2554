using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.EarlyWarning;

/// <summary>
/// Trains the forecast on the store's history and writes next month's forecast for every cell of the mission. The
/// audience is stated, not per viewer: it learns only from incidents marked UNCLASSIFIED, releasable to the whole mission
/// and without caveats, and its forecasts carry that same marking, so everyone who sees them may see every input.
/// </summary>
internal sealed class ForecastService(ConcordDb db, MissionDirectory directory, TimeProvider time, ForecastHistoryCache cache)
{
    public sealed record Summary(int Cells, DateTime Month, int Incidents, IReadOnlyList<Forecast> Highest);

    /// <summary>Monthly observed fatalities against the one-month-ahead expected fatalities, for one area.</summary>
    public sealed record AreaSeries(string Area, IReadOnlyList<string> Months, IReadOnlyList<double> Observed, IReadOnlyList<double> Forecast);

    /// <summary>
    /// The last <paramref name="months"/> months per area (the areas with most deaths first): observed, and what the
    /// model — trained on the months before them only — expected one month ahead. Out of sample, like the back-test.
    /// </summary>
    public Task<IReadOnlyList<AreaSeries>> HistoryAsync(int months, int areas, CancellationToken cancellationToken) =>
        cache.GetAsync((months, areas), () => ComputeHistoryAsync(months, areas, cancellationToken), cancellationToken);

    private async Task<IReadOnlyList<AreaSeries>> ComputeHistoryAsync(int months, int areas, CancellationToken cancellationToken)
    {
        // Each month shown is forecast by a model fitted on the months before the first one shown, with at least the
        // history a forecast in service needs (MinimumMonths): the first month shown is the one after those.
        if (await BuildPanelAsync(panelMonths => FirstCharted(panelMonths, months), cancellationToken) is not { } built || built.Panel.Months <= MinimumMonths)
        {
            return [];
        }

        var panel = built.Panel;
        var last = panel.Months - 1;
        var first = FirstCharted(panel.Months, months);
        var model = new HurdleForecaster();
        model.Fit(panel, first - 1);
        // By area, not by name: two areas may share one (no rule says otherwise), and their series are not one.
        var byArea = new Dictionary<Guid, (string Name, double[] Observed, double[] Forecast)>();
        void Add(Areas.Area area, int row)
        {
            if (!byArea.TryGetValue(area.Id, out var series))
            {
                byArea[area.Id] = series = (area.Name, new double[last - first + 1], new double[last - first + 1]);
            }

            for (var target = first; target <= last; target++)
            {
                series.Observed[target - first] += panel.Killed[row, target];
                series.Forecast[target - first] += model.Forecast(panel, row, target - 1).Average();
            }
        }

        for (var row = 0; row < panel.Cells.Count; row++)
        {
            var (lat, lon) = PrioGrid.Centre(panel.Cells[row]);
            if (directory.AreaAt(lat, lon) is { } area)
            {
                Add(area, row);
            }
        }

        // An area smaller than a cell (a capital) holds no cell's centre: charted by the cell it lies in, as it is forecast
        // (RunAsync).
        var rows = panel.Cells.Select((gid, row) => (gid, row)).ToDictionary(c => c.gid, c => c.row);
        foreach (var area in directory.Areas.Select(a => a.Area).Where(a => !byArea.ContainsKey(a.Id)))
        {
            if (rows.TryGetValue(PrioGrid.Gid((area.MinLatitude + area.MaxLatitude) / 2, (area.MinLongitude + area.MaxLongitude) / 2), out var row))
            {
                Add(area, row);
            }
        }

        var labels = Enumerable.Range(first, last - first + 1).Select(m => panel.MonthStart(m).ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture)).ToList();
        return byArea.OrderByDescending(p => p.Value.Observed.Sum()).Take(areas)
            .Select(p => new AreaSeries(p.Value.Name, labels, p.Value.Observed, p.Value.Forecast.Select(f => Math.Round(f, 2)).ToList())).ToList();
    }

    /// <summary>The first of the last <paramref name="months"/> months of a panel of <paramref name="panelMonths"/> that the charts show: none before the history a forecast needs.</summary>
    private static int FirstCharted(int panelMonths, int months) => Math.Max(MinimumMonths, panelMonths - months);

    private sealed record Built(Panel Panel, int Incidents);

    /// <summary>
    /// Whether an incident of <paramref name="category"/> is one-sided violence, the model's feature as the back-test scores it
    /// (UCDP's violence type 3): UCDP's one-sided type, ACLED's violence against civilians, and the protection category
    /// of the same kind (killing and maiming of civilians), as fusion's crosswalk pairs them. Without the last, a mission's
    /// own protection reporting left the feature it is about.
    /// </summary>
    internal static bool OneSided(string category) =>
        category.StartsWith("ucdp.one-sided", StringComparison.Ordinal)
        || category.StartsWith("acled.violence-against-civilians", StringComparison.Ordinal)
        || category.StartsWith("poc.killing-and-maiming", StringComparison.Ordinal);

    /// <summary>
    /// The panel of the stated audience's incidents (UNCLASSIFIED, releasable to the whole mission, no caveats), as that
    /// audience sees them: an incident of one marking carries its reports' marking; a mixed one (a restricted account fused
    /// into an open incident) is taken as built from its open reports only. Taking the stored incident's marking instead
    /// would drop the incident when a restricted report joined it, and its cell's forecast would move: telling everyone
    /// who may see the forecast that a report they may not see joined an incident they see unchanged.
    /// <para>
    /// Its cells are those whose centre lies in an area, and those of incidents outside the areas from before the month
    /// <paramref name="cellsBefore"/> gives for the panel's length (by default, every month of the panel; not the month in
    /// progress). A cell chosen for incidents of the months the charts show would join the fit with its quiet months and
    /// move its neighbours' forecasts: a forecast said to be out of sample would depend on the outcomes it is shown against
    /// (the back-test fixes its cells before its held-out years for the same reason).
    /// </para>
    /// </summary>
    private async Task<Built?> BuildPanelAsync(Func<int, int>? cellsBefore, CancellationToken cancellationToken)
    {
        var plain = await db.Incidents.AsNoTracking()
            .Where(i => !i.Mixed).Where(Visibility.OpenToAll<Incident>())
            .Select(i => new { i.Latitude, i.Longitude, i.StartsAt, i.KilledBest, i.Category }).ToListAsync(cancellationToken);
        var incidents = plain.Select(i => (i.Latitude, i.Longitude, i.StartsAt, i.KilledBest, i.Category)).ToList();
        var openReports = db.Reports.AsNoTracking().Where(Visibility.OpenToAll<Reports.Report>());
        var mixed = await db.IncidentReports.AsNoTracking()
            .Join(db.Incidents.AsNoTracking().Where(i => i.Mixed), l => l.IncidentId, i => i.Id, (l, i) => new { l.ReportId, l.LinkedAt, Incident = i })
            .Join(openReports, x => x.ReportId, r => r.Id, (x, r) => new { x.Incident, x.LinkedAt, Report = r })
            .OrderBy(x => x.Report.Number)
            .ToListAsync(cancellationToken);
        foreach (var seen in mixed.GroupBy(m => m.Incident.Id))
        {
            var view = IncidentSummary.ViewFor(seen.First().Incident, [.. seen.Select(m => m.Report)], seen.Select(m => m.LinkedAt));
            incidents.Add((view.Latitude, view.Longitude, view.StartsAt, view.KilledBest, view.Category));
        }

        if (incidents.Count == 0)
        {
            return null;
        }

        var events = incidents.Select(i => new ConflictEvent(i.Latitude, i.Longitude, i.StartsAt, i.KilledBest ?? 0, OneSided(i.Category))).ToList();
        var cells = new SortedSet<int>();
        foreach (var area in directory.Areas)
        {
            var envelope = area.Area;
            // An area smaller than a cell (a capital) may hold no cell's centre: it is forecast by the cell it lies in (see
            // RunAsync), which is then in the panel whether or not an incident happens to fall in it.
            var holdsACentre = false;
            for (var lat = Math.Floor(envelope.MinLatitude * 2) / 2; lat <= envelope.MaxLatitude; lat += PrioGrid.Size)
            {
                for (var lon = Math.Floor(envelope.MinLongitude * 2) / 2; lon <= envelope.MaxLongitude; lon += PrioGrid.Size)
                {
                    if (directory.AreaAt(lat + 0.25, lon + 0.25) is { } at)
                    {
                        cells.Add(PrioGrid.Gid(lat + 0.25, lon + 0.25));
                        holdsACentre |= at.Id == envelope.Id;
                    }
                }
            }

            if (!holdsACentre)
            {
                cells.Add(PrioGrid.Gid((envelope.MinLatitude + envelope.MaxLatitude) / 2, (envelope.MinLongitude + envelope.MaxLongitude) / 2));
            }
        }

        // The panel ends with the last month that is over by the clock: a month in progress would count as a quiet one (on
        // the 1st, a day's incidents as the whole month), and the forecast would be for the month after it. Quiet months
        // before it are months without deaths, as in any panel. Data that ended more than a year ago is a history, not a
        // mission going on (the demo's GED events, to 2022): it is forecast from its last month.
        var now = time.GetUtcNow().UtcDateTime;
        var current = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var latest = events.Max(e => e.At);
        var end = latest < now.AddMonths(-HistoricAfterMonths) ? latest : current.AddMonths(-1);
        var start = PanelStart(events.Select(e => e.At), end);
        if (start > end)
        {
            return null;
        }

        var months = Panel.MonthsFrom(start, end);
        var cellsUntil = new DateTime(start.Year, start.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(cellsBefore?.Invoke(months) ?? months);
        cells.UnionWith(CellsOf(events, start, cellsUntil));
        var panel = Panel.Build(events, [.. cells], start, end);
        return new Built(panel, panel.Counted);
    }

    /// <summary>
    /// The cells of the incidents from <paramref name="start"/> (the panel's first month) up to <paramref name="until"/>. An
    /// incident before the panel (a stretch <see cref="PanelStart"/> left out, a report mistyped as years back) would bring
    /// in a cell of nothing but quiet months, to the fit and to the Risk layer.
    /// </summary>
    internal static IEnumerable<int> CellsOf(IEnumerable<ConflictEvent> events, DateTime start, DateTime until) =>
        events.Where(e => e.At >= start && e.At < until).Select(e => PrioGrid.Gid(e.Latitude, e.Longitude));

    /// <summary>The longest history the panel holds: UCDP's own record starts in 1989, and older months only add quiet ones.</summary>
    public const int MaxHistoryYears = 40;

    /// <summary>The longest run of months without an open incident that the panel's history runs through.</summary>
    public const int LongestQuietMonths = 24;

    /// <summary>
    /// Where the panel starts: at the first incident, no more than <see cref="MaxHistoryYears"/> before its end, and past
    /// any stretch of reporting at its start that spans fewer than <see cref="MinimumMonths"/> months and is cut off from
    /// what follows by more than <see cref="LongestQuietMonths"/> months without an incident. Such a stretch (a report
    /// mistyped as years back, one old event filed with a new mission's reports) would otherwise add years of quiet months
    /// that count towards the history a forecast needs and drag every cell's forecast down, while the model learnt from a
    /// few months of real data. A long history is kept whole, also when reporting resumes after a gap (a mission's own
    /// reports after a dataset's history).
    /// </summary>
    internal static DateTime PanelStart(IEnumerable<DateTime> incidents, DateTime end)
    {
        static int Month(DateTime at) => (at.Year * 12) + at.Month - 1;
        var months = incidents.Where(at => Month(at) <= Month(end)).Select(Month).Distinct().Order().ToList();
        var first = incidents.Min();
        var stretchStart = 0;
        for (var i = 1; i < months.Count; i++)
        {
            if (months[i] - months[i - 1] - 1 > LongestQuietMonths)
            {
                if (months[i - 1] - months[stretchStart] + 1 >= MinimumMonths)
                {
                    break;
                }

                // Too short to learn from and cut off from the rest: the panel starts after it.
                stretchStart = i;
                first = new DateTime(months[i] / 12, (months[i] % 12) + 1, 1, 0, 0, 0, DateTimeKind.Utc);
            }
        }

        var earliest = new DateTime(end.Year - MaxHistoryYears, end.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        return first < earliest ? earliest : first;
    }

    /// <summary>Data whose latest incident is this many months before the current month is a history, forecast from its end.</summary>
    public const int HistoricAfterMonths = 12;

    /// <summary>
    /// The fewest months of history the model is fitted on: a year of lagged features before its first training month, and
    /// a year of training months. With less it would learn nothing and forecast one chance in two for every cell (and so
    /// near certainty for every area, which adds its cells up).
    /// </summary>
    public const int MinimumMonths = 25;

    /// <summary>
    /// Forecasts next month and stores them; null when the stated audience's history is empty or shorter than
    /// <see cref="MinimumMonths"/>, and then the forecasts stored before are removed: learnt from incidents the whole mission
    /// could see then, some of which it may no longer (a restricted report fused into them), they would otherwise be
    /// shown, marked for the whole mission, until enough history came back.
    /// </summary>
    public async Task<Summary?> RunAsync(CancellationToken cancellationToken)
    {
        if (await BuildPanelAsync(null, cancellationToken) is not { } built || built.Panel.Months < MinimumMonths)
        {
            await ReplaceAsync([], [], cancellationToken);
            return null;
        }

        var panel = built.Panel;
        var model = new HurdleForecaster();
        var origin = panel.Months - 1;
        model.Fit(panel, origin);
        var month = panel.MonthStart(origin + 1);
        var now = time.GetUtcNow().UtcDateTime;
        var mission = Releasability.Encode([Community.Mission]);
        var forecasts = new List<Forecast>();
        // Area distributions: each cell's samples, shuffled (cells taken as independent), added up per area.
        var random = new Random(origin);
        var areaSamples = new Dictionary<Guid, double[]>();
        var cellSamples = new Dictionary<int, double[]>();
        for (var row = 0; row < panel.Cells.Count; row++)
        {
            var samples = model.Forecast(panel, row, origin);
            cellSamples[panel.Cells[row]] = (double[])samples.Clone();
            var (cellLat, cellLon) = PrioGrid.Centre(panel.Cells[row]);
            if (directory.AreaAt(cellLat, cellLon) is { } area)
            {
                if (!areaSamples.TryGetValue(area.Id, out var sum))
                {
                    areaSamples[area.Id] = sum = new double[samples.Length];
                }

                var shuffled = (double[])samples.Clone();
                random.Shuffle(shuffled);
                for (var i = 0; i < sum.Length; i++)
                {
                    sum[i] += shuffled[i];
                }
            }

            var (lat, lon) = PrioGrid.Centre(panel.Cells[row]);
            var forecast = new Forecast
            {
                Gid = panel.Cells[row],
                Month = month,
                Latitude = lat,
                Longitude = lon,
                ComputedAt = now,
                Classification = 0,
                ReleasableTo = mission,
                Caveats = 0,
            };
            forecast.Describe(samples);
            forecasts.Add(forecast);
        }

        // An area smaller than a cell (a capital) holds no cell centre: it takes the cell it lies in.
        foreach (var area in directory.Areas.Select(a => a.Area).Where(a => !areaSamples.ContainsKey(a.Id)))
        {
            if (cellSamples.TryGetValue(PrioGrid.Gid((area.MinLatitude + area.MaxLatitude) / 2, (area.MinLongitude + area.MaxLongitude) / 2), out var samples))
            {
                areaSamples[area.Id] = samples;
            }
        }

        var areaForecasts = areaSamples.Select(p =>
        {
            var forecast = new AreaForecast { AreaId = p.Key, Month = month, ComputedAt = now, Classification = 0, ReleasableTo = mission, Caveats = 0 };
            forecast.Describe(p.Value);
            return forecast;
        }).ToList();

        await ReplaceAsync(forecasts, areaForecasts, cancellationToken);
        return new Summary(forecasts.Count, month, built.Incidents, forecasts.OrderByDescending(f => f.AtLeastOne).Take(10).ToList());
    }

    /// <summary>Replaces the stored forecasts (cells and areas) with these, in one transaction, and forgets the cached history.</summary>
    private async Task ReplaceAsync(List<Forecast> forecasts, List<AreaForecast> areaForecasts, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (db.Database.IsNpgsql())
        {
            // One replacement at a time, as SQLite's write lock makes them: under read committed, a second one (the daily
            // refresh meeting `concord forecast`) deleted around the first's new rows and then failed inserting the same
            // cells (a unique key), or, across a month boundary, left both months' cells (every cell listed twice).
            await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_xact_lock(4242005)", cancellationToken);
        }

        await db.Forecasts.ExecuteDeleteAsync(cancellationToken);
        await db.AreaForecasts.ExecuteDeleteAsync(cancellationToken);
        db.Forecasts.AddRange(forecasts);
        db.AreaForecasts.AddRange(areaForecasts);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        // Not kept tracked: the delete above does not see tracked rows, and a second run in the same scope (a month's
        // forecasts again) would meet its own.
        db.ChangeTracker.Clear();
        cache.Clear();
    }
}

/// <summary>Refreshes the forecasts once a day (and shortly after start), on the injected clock.</summary>
internal sealed class ForecastRefresher(IServiceScopeFactory scopes, TimeProvider time, ILogger<ForecastRefresher> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(24);

    /// <summary>
    /// After a failed refresh (the store restarting, a lock timeout), tried again this soon, then twice as late each time up
    /// to <see cref="LastRetry"/>: waiting the whole day left a new deployment, or a new month, without forecasts for a day.
    /// </summary>
    public static readonly TimeSpan FirstRetry = TimeSpan.FromMinutes(5);

    public static readonly TimeSpan LastRetry = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var wait = TimeSpan.FromMinutes(1);
            var retry = FirstRetry;
            while (true)
            {
                await Task.Delay(wait, time, stoppingToken);
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var summary = await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(stoppingToken);
                    logger.LogInformation("forecasts refreshed: {Cells} cells for {Month:yyyy-MM}", summary?.Cells ?? 0, summary?.Month);
                    (wait, retry) = (Interval, FirstRetry);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    (wait, retry) = (retry, retry * 2 < LastRetry ? retry * 2 : LastRetry);
                    logger.LogWarning(e, "refreshing the forecasts failed; next try in {Wait}", wait);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}

/// <summary>
/// The early-warning page's history of observed against forecast deaths, kept for <see cref="Lifetime"/>: computing it
/// fits the model over the whole panel (about a second on two cores), and every view of the page asked for it. It is the
/// same for every viewer (the stated audience's incidents only), so one copy serves all; a forecast refresh clears it.
/// </summary>
internal sealed class ForecastHistoryCache(TimeProvider time) : IDisposable
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<(int Months, int Areas), (DateTimeOffset At, long Generation, IReadOnlyList<ForecastService.AreaSeries> Series)> _kept = [];
    private long _generation;

    /// <summary>The kept history for <paramref name="key"/>, or computes it (one computation at a time: views arriving together wait for it).</summary>
    public async Task<IReadOnlyList<ForecastService.AreaSeries>> GetAsync((int Months, int Areas) key, Func<Task<IReadOnlyList<ForecastService.AreaSeries>>> compute,
        CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow();
            var generation = Interlocked.Read(ref _generation);
            if (_kept.TryGetValue(key, out var kept) && kept.Generation == generation && now - kept.At < Lifetime)
            {
                return kept.Series;
            }

            var series = await compute();
            _kept[key] = (now, generation, series);
            return series;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Forgets what is kept (new forecasts were written): the next view computes the history again.</summary>
    public void Clear() => Interlocked.Increment(ref _generation);

    public void Dispose() => _gate.Dispose();
}

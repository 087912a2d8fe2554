using Concord.Server.Access;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.EarlyWarning;

/// <summary>
/// Trains the forecast on the store's history and writes next month's forecast for every cell of the mission. The
/// audience is stated, not per viewer: it learns only from incidents marked UNCLASSIFIED, releasable to the whole mission
/// and without caveats, and its forecasts carry that same marking, so everyone who sees them may see every input.
/// </summary>
internal sealed class ForecastService(ConcordDb db, MissionDirectory directory, TimeProvider time)
{
    public sealed record Summary(int Cells, DateTime Month, int Incidents, IReadOnlyList<Forecast> Highest);

    public async Task<Summary?> RunAsync(CancellationToken cancellationToken)
    {
        var open = db.Incidents.AsNoTracking()
            .Where(i => i.Classification == 0 && i.Caveats == 0 && (i.ReleaseMask & Releasability.MissionBit) != 0);
        var incidents = await open.Select(i => new { i.Latitude, i.Longitude, i.StartsAt, i.KilledBest, i.Category }).ToListAsync(cancellationToken);
        if (incidents.Count == 0)
        {
            return null;
        }

        var events = incidents.Select(i => new ConflictEvent(i.Latitude, i.Longitude, i.StartsAt, i.KilledBest ?? 0,
            i.Category.StartsWith("ucdp.one-sided", StringComparison.Ordinal) || i.Category.StartsWith("acled.violence-against-civilians", StringComparison.Ordinal))).ToList();
        var cells = new SortedSet<int>(events.Select(e => PrioGrid.Gid(e.Latitude, e.Longitude)));
        foreach (var area in directory.Areas)
        {
            var envelope = area.Area;
            for (var lat = Math.Floor(envelope.MinLatitude * 2) / 2; lat <= envelope.MaxLatitude; lat += PrioGrid.Size)
            {
                for (var lon = Math.Floor(envelope.MinLongitude * 2) / 2; lon <= envelope.MaxLongitude; lon += PrioGrid.Size)
                {
                    if (directory.AreaAt(lat + 0.25, lon + 0.25) is not null)
                    {
                        cells.Add(PrioGrid.Gid(lat + 0.25, lon + 0.25));
                    }
                }
            }
        }

        var last = events.Max(e => e.At);
        var start = events.Min(e => e.At);
        var panel = Panel.Build(events, [.. cells], start, last);
        var model = new HurdleForecaster();
        var origin = panel.Months - 1;
        model.Fit(panel, origin);
        var month = panel.MonthStart(origin + 1);
        var now = time.GetUtcNow().UtcDateTime;
        var mission = Releasability.Encode([Community.Mission]);
        var forecasts = new List<Forecast>();
        for (var row = 0; row < panel.Cells.Count; row++)
        {
            var samples = model.Forecast(panel, row, origin);
            Array.Sort(samples);
            var (lat, lon) = PrioGrid.Centre(panel.Cells[row]);
            forecasts.Add(new Forecast
            {
                Gid = panel.Cells[row],
                Month = month,
                Latitude = lat,
                Longitude = lon,
                Expected = samples.Average(),
                AtLeastOne = Scoring.ProbabilityAtLeastOne(samples),
                Low = Scoring.Quantile(samples, 0.05),
                High = Scoring.Quantile(samples, 0.95),
                ComputedAt = now,
                Classification = 0,
                ReleasableTo = mission,
                Caveats = 0,
            });
        }

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await db.Forecasts.ExecuteDeleteAsync(cancellationToken);
        db.Forecasts.AddRange(forecasts);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new Summary(forecasts.Count, month, incidents.Count, forecasts.OrderByDescending(f => f.AtLeastOne).Take(10).ToList());
    }
}

/// <summary>Refreshes the forecasts once a day (and shortly after start), on the injected clock.</summary>
internal sealed class ForecastRefresher(IServiceScopeFactory scopes, TimeProvider time, ILogger<ForecastRefresher> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(24);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(TimeSpan.FromMinutes(1), time, stoppingToken);
            using var timer = new PeriodicTimer(Interval, time);
            do
            {
                try
                {
                    await using var scope = scopes.CreateAsyncScope();
                    var summary = await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(stoppingToken);
                    logger.LogInformation("forecasts refreshed: {Cells} cells for {Month:yyyy-MM}", summary?.Cells ?? 0, summary?.Month);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "refreshing the forecasts failed; next try in {Interval}", Interval);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
        }
    }
}

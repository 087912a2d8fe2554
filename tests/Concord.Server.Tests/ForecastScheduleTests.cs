using System.Net;
using Concord.Server.EarlyWarning;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>The server refreshes forecasts on its own clock, and the observed-against-forecast history is out of sample.</summary>
public abstract class ForecastScheduleTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    private FakeTimeProvider Clock => server.FakeClock;

    [Fact]
    public async Task Forecasts_are_refreshed_a_minute_after_start_and_then_daily_and_history_compares_like_with_like()
    {
        var code = "FC-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await server.AddAreaAsync(code, "Forecast test area", -25, 50, -23, 52);
        // A town smaller than a cell, holding no cell's centre (as Bangui holds none): forecast by the cell it lies in.
        await server.AddAreaAsync(code + "-T", "Forecast test town", -24.95, 50.05, -24.8, 50.2);

        // Thirty months of events (three killed each) in the area, released to the whole mission so the forecast may learn from them.
        // The last of them last month: the history ends with the last month that is over, and quiet months count as such.
        var first = new DateTimeOffset(Clock.GetUtcNow().Year, Clock.GetUtcNow().Month, 10, 12, 0, 0, TimeSpan.Zero).AddMonths(-30);
        using var joc = server.ClientFor("joc");
        for (var m = 0; m < 30; m++)
        {
            var (response, body) = await joc.PostJson("/api/reports", Api.Report(latitude: -24.75 + (m % 5 * 0.3), longitude: 50.25 + (m / 5 * 0.3),
                observedAt: first.AddMonths(m), narrative: $"{code} clash {m}", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        // Nothing before the first minute on the server's clock has passed; then a refresh.
        Assert.Equal(0, await server.WithDbAsync(db => db.Forecasts.CountAsync()));
        Clock.Advance(TimeSpan.FromSeconds(61));
        var computed = await WaitForAsync(() => server.WithDbAsync(db => db.Forecasts.MaxAsync(f => (DateTime?)f.ComputedAt)), c => c is not null);
        Assert.Equal(Clock.GetUtcNow().UtcDateTime, computed!.Value, TimeSpan.FromSeconds(1));
        var cells = await server.WithDbAsync(db => db.Forecasts.CountAsync(f => f.Latitude < -23 && f.Latitude > -25 && f.Longitude > 50 && f.Longitude < 52));
        Assert.True(cells >= 4, $"every cell of the area is forecast ({cells})");
        Assert.True(await server.WithDbAsync(db => db.AreaForecasts.AnyAsync()));

        // Not again within the day; again once the day has passed.
        Clock.Advance(TimeSpan.FromHours(23));
        await Task.Delay(500);
        Assert.Equal(computed, await server.WithDbAsync(db => db.Forecasts.MaxAsync(f => (DateTime?)f.ComputedAt)));
        Clock.Advance(TimeSpan.FromHours(1));
        var again = await WaitForAsync(() => server.WithDbAsync(db => db.Forecasts.MaxAsync(f => (DateTime?)f.ComputedAt)), c => c > computed);
        Assert.Equal(computed.Value.AddDays(1), again!.Value, TimeSpan.FromSeconds(1));

        // Observed against forecast for the area: the observed deaths are the events' own, month by month.
        await using var scope = server.Services.CreateAsyncScope();
        var history = await scope.ServiceProvider.GetRequiredService<ForecastService>().HistoryAsync(12, 50, CancellationToken.None);
        var series = Assert.Single(history, s => s.Area == "Forecast test area");
        Assert.Equal(series.Months.Count, series.Observed.Count);
        Assert.Equal(series.Months.Count, series.Forecast.Count);
        Assert.True(series.Months.Count is > 0 and <= 12);
        Assert.All(series.Observed, o => Assert.Equal(3, o));
        Assert.All(series.Forecast, f => Assert.True(f > 0, "a place with deaths every month is not forecast to be quiet"));
        // The town is charted too, by the cell it lies in, as its forecast is made (it was left out of the charts).
        Assert.Equal(series.Months, Assert.Single(history, s => s.Area == "Forecast test town").Months);

        // Every view of the page asks for it: it is fitted once and kept, until new forecasts are written.
        await using (var another = server.Services.CreateAsyncScope())
        {
            Assert.Same(history, await another.ServiceProvider.GetRequiredService<ForecastService>().HistoryAsync(12, 50, CancellationToken.None));
        }

        Assert.NotNull(await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(CancellationToken.None));
        await using var refreshed = server.Services.CreateAsyncScope();
        Assert.NotSame(history, await refreshed.ServiceProvider.GetRequiredService<ForecastService>().HistoryAsync(12, 50, CancellationToken.None));

        // A month in progress is not a month: an incident today leaves the history ending with last month, and the forecast
        // is for this month (it was for the month after, learnt from a month of one day, and on the 1st almost empty).
        var now = Clock.GetUtcNow();
        // (Signed in afresh: the tests' tokens last a day, and the clock has moved on by more.)
        var (today, todayBody) = await (await server.SignedInAsync("joc")).PostJson("/api/reports", Api.Report(latitude: -24.75, longitude: 50.25, observedAt: now, narrative: $"{code} clash today",
            marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.True(today.StatusCode == HttpStatusCode.Created, todayBody.ToString());
        var summary = await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(CancellationToken.None);
        Assert.Equal(new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc), summary!.Month);
        await using var latest = server.Services.CreateAsyncScope();
        var months = Assert.Single(await latest.ServiceProvider.GetRequiredService<ForecastService>().HistoryAsync(12, 50, CancellationToken.None), s => s.Area == "Forecast test area").Months;
        Assert.True(string.CompareOrdinal(months[^1], now.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture)) < 0, months[^1]);
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var value = await read();
            if (done(value) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await Task.Delay(100);
        }
    }
}

/// <summary>Which month is forecast: a server of its own, whose store holds nothing but the history the test writes.</summary>
public abstract class ForecastMonthTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    [Fact]
    public async Task Data_more_than_a_year_old_is_forecast_for_the_month_after_it_and_a_small_area_by_the_cell_it_lies_in()
    {
        // The latest incident more than a year before now, though in the month a year before this one (on 20 March, one
        // of 5 March last year): a history, forecast for the month after it (it was taken for a mission going on, and
        // the months since padded as quiet ones).
        var now = server.FakeClock.GetUtcNow().UtcDateTime;
        var monthAYearAgo = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(-12);
        var latest = monthAYearAgo + ((now.AddYears(-1) - monthAYearAgo) / 2);
        var code = "FM-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await server.AddAreaAsync(code, "Forecast month area", -25, 50, -23, 52);
        using var joc = server.ClientFor("joc");
        for (var m = 0; m < 30; m++)
        {
            var (response, body) = await joc.PostJson("/api/reports", Api.Report(latitude: -24.75 + (m % 5 * 0.3), longitude: 50.25 + (m / 5 * 0.3),
                observedAt: new DateTimeOffset(latest.AddMonths(-m)), narrative: $"{code} clash {m}", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        // A town smaller than a cell, holding no cell's centre (they are at .25 and .75 degrees), far from any incident:
        // forecast by the cell it lies in (it had no forecast unless an incident happened to fall in that cell).
        var town = "FT-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await server.AddAreaAsync(town, "Small town", -30.1, 55.1, -29.9, 55.3);

        await using var scope = server.Services.CreateAsyncScope();
        var summary = await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(CancellationToken.None);
        Assert.Equal(monthAYearAgo.AddMonths(1), summary!.Month);
        var (_, areas) = await joc.GetJson("/api/early-warning/forecasts/areas");
        Assert.Contains(areas.EnumerateArray(), a => a.GetProperty("area").GetString() == town);
    }
}

public sealed class ForecastMonthTests_Sqlite(SqliteClockServer server) : ForecastMonthTests<SqliteClockServer>(server);

public sealed class ForecastMonthTests_Postgres(PostgresClockServer server) : ForecastMonthTests<PostgresClockServer>(server);

public sealed class ForecastScheduleTests_Sqlite(SqliteClockServer server) : ForecastScheduleTests<SqliteClockServer>(server);

public sealed class ForecastScheduleTests_Postgres(PostgresClockServer server) : ForecastScheduleTests<PostgresClockServer>(server);

/// <summary>A refresh that fails is tried again within minutes, not the next day.</summary>
public sealed class ForecastRetryTests
{
    [Fact]
    public async Task A_failed_refresh_is_tried_again_after_five_minutes_then_twice_as_late_up_to_an_hour()
    {
        // The store is down: every attempt fails where the refresher takes its forecast service.
        var attempts = 0;
        var services = new ServiceCollection();
        services.AddScoped<ForecastService>(_ =>
        {
            Interlocked.Increment(ref attempts);
            throw new InvalidOperationException("the store is restarting");
        });
        await using var provider = services.BuildServiceProvider();
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));
        using var refresher = new ForecastRefresher(provider.GetRequiredService<IServiceScopeFactory>(), clock,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<ForecastRefresher>.Instance);
        await refresher.StartAsync(CancellationToken.None);

        // The clock moves a minute at a time, each step after the refresher has had time to set its next wait (on a busy
        // machine a step may come first: the attempt is then seen a step later, which the minutes below allow for).
        var minute = 0;
        async Task<int> MinuteOfNextAttemptAsync()
        {
            var before = Volatile.Read(ref attempts);
            while (Volatile.Read(ref attempts) == before)
            {
                Assert.True(minute < 400, "no attempt within 400 minutes");
                await Task.Delay(50);
                clock.Advance(TimeSpan.FromMinutes(1));
                minute++;
                for (var waited = System.Diagnostics.Stopwatch.StartNew(); Volatile.Read(ref attempts) == before && waited.ElapsedMilliseconds < 30;)
                {
                    await Task.Delay(10);
                }
            }

            return minute;
        }

        // A minute after start, then 5, 10, 20, 40, 60 and 60 minutes after each failure: not a day later.
        var minutes = new List<int>();
        for (var i = 0; i < 7; i++)
        {
            minutes.Add(await MinuteOfNextAttemptAsync());
        }

        var gaps = minutes.Zip(minutes.Skip(1), (a, b) => b - a).ToList();
        Assert.InRange(minutes[0], 1, 2);
        foreach (var (gap, expected) in gaps.Zip(new[] { 5, 10, 20, 40, 60, 60 }))
        {
            Assert.InRange(gap, expected, expected + 1);
        }

        await refresher.StopAsync(CancellationToken.None);
    }
}

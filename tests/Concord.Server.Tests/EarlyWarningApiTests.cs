using System.Net;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>Hotspots and spikes count only what the caller may see.</summary>
public abstract class EarlyWarningApiTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task Hotspots_and_spikes_count_only_visible_incidents()
    {
        // A test area far from the other tests' reports, so that its counts are this test's alone.
        var code = "EW-" + Guid.NewGuid().ToString("N")[..6];
        await server.AddAreaAsync(code, "Early warning test area", -20, 40, -18, 42);

        var at = new DateTimeOffset(2026, 6, 30, 0, 0, 0, TimeSpan.Zero);
        var restricted = Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["SOURCE-PROTECTED"]);
        using var unpol = server.ClientFor("unpol");
        // Baseline: two events a year; then six in the last month, each days apart and kilometres apart (distinct events).
        var days = new[] { -300, -150, -29, -25, -21, -17, -13, -9 };
        for (var i = 0; i < days.Length; i++)
        {
            var (response, _) = await unpol.PostJson("/api/reports", Api.Report(latitude: -19.0 + (i * 0.05), longitude: 41.0, observedAt: at.AddDays(days[i]),
                narrative: $"{code} event {i}", marking: restricted));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        var query = $"at={Uri.EscapeDataString(at.ToString("O"))}&days=30&baselineDays=365";
        var (_, seen) = await unpol.GetJson($"/api/early-warning/spikes?{query}");
        var spike = seen.GetProperty("items").EnumerateArray().Single(s => s.GetProperty("area").GetString() == code);
        Assert.Equal(6, spike.GetProperty("recent").GetInt32());
        Assert.Equal(2, spike.GetProperty("baseline").GetInt32());
        Assert.True(spike.GetProperty("alert").GetBoolean());
        Assert.True(spike.GetProperty("probability").GetDouble() < 1e-4);
        Assert.Equal("CONFIDENTIAL", seen.GetProperty("classification").GetString());
        // A count tells of what it counts: the answer names the caveats of the records it was counted from too.
        Assert.Contains("SOURCE-PROTECTED", seen.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));

        foreach (var (parameter, field) in new[] { ("threshold=NaN", "threshold"), ("at=0001-01-01T00:00:00Z", "at"), ("bbox=40,-20,42,-18", "bbox") })
        {
            var (refused, refusal) = await unpol.GetJson($"/api/early-warning/spikes?{parameter}");
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal([field], refusal.ErrorFields());
        }

        var (_, hidden) = await server.ClientFor("force").GetJson($"/api/early-warning/spikes?{query}");
        var none = hidden.GetProperty("items").EnumerateArray().Single(s => s.GetProperty("area").GetString() == code);
        Assert.Equal(0, none.GetProperty("recent").GetInt32());
        Assert.False(none.GetProperty("alert").GetBoolean());
        Assert.Empty(hidden.GetProperty("caveats").EnumerateArray());

        var (_, hot) = await unpol.GetJson("/api/early-warning/hotspots?bbox=40,-20,42,-18&by=area");
        Assert.Equal(8, hot.GetProperty("items").EnumerateArray().Single(h => h.GetProperty("key").GetString() == code).GetProperty("incidents").GetInt32());
        Assert.Equal(["SOURCE-PROTECTED"], hot.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));
        // All eight in one PRIO-GRID cell (19° S–18.5° S, 41° E–41.5° E), with their deaths (three each).
        var (_, mine) = await unpol.GetJson("/api/early-warning/hotspots?bbox=40,-20,42,-18&by=cell");
        var cell = Assert.Single(mine.GetProperty("items").EnumerateArray());
        Assert.Equal(("102683", 8, 24L, -18.75, 41.25), (cell.GetProperty("key").GetString(), cell.GetProperty("incidents").GetInt32(), cell.GetProperty("killed").GetInt64(),
            cell.GetProperty("latitude").GetDouble(), cell.GetProperty("longitude").GetDouble()));
        var (_, cells) = await server.ClientFor("force").GetJson("/api/early-warning/hotspots?bbox=40,-20,42,-18&by=cell");
        Assert.Empty(cells.GetProperty("items").EnumerateArray());
        // A window ending in the future would count days without incidents against a full rate: refused with the rest.
        var (bad, problem) = await unpol.GetJson($"/api/early-warning/spikes?days=0&threshold=2&at={Uri.EscapeDataString(DateTimeOffset.UtcNow.AddDays(1).ToString("O"))}");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(["at", "days", "threshold"], problem.ErrorFields().Order());
        // Hotspots name every bad parameter, the limit with their own bound.
        foreach (var limit in new[] { 600, 6000 })
        {
            var (badHotspots, hotspotsProblem) = await unpol.GetJson($"/api/early-warning/hotspots?limit={limit}&by=bogus&status=bogus");
            Assert.Equal(HttpStatusCode.BadRequest, badHotspots.StatusCode);
            Assert.Equal(["by", "limit", "status"], hotspotsProblem.ErrorFields().Order());
            Assert.StartsWith("must be a whole number from 1 to 500", hotspotsProblem.GetProperty("errors").GetProperty("limit")[0].GetString());
        }

        // A window and baseline before anything the caller may see cover no day: no rate, no figure, no claim of coverage.
        var (_, nothing) = await unpol.GetJson("/api/early-warning/spikes?at=1990-01-01T00:00:00Z&baselineDays=365");
        Assert.Equal(0, nothing.GetProperty("baselineObservedDays").GetInt32());
        Assert.All(nothing.GetProperty("items").EnumerateArray(), i =>
            Assert.True(!i.TryGetProperty("expected", out var expected) || expected.ValueKind == System.Text.Json.JsonValueKind.Null));

        // A parameter a listing would not apply is refused by name: an unfiltered answer would pass for a filtered one.
        foreach (var (path, field) in new[]
        {
            ("/api/early-warning/hotspots?form=2024-01-01", "form"), ("/api/early-warning/hotspots?days=30", "days"),
            ("/api/early-warning/forecasts/areas?bbox=40,-20,42,-18", "bbox"), ("/api/incidents?form=2024-01-01", "form"),
            ("/api/incidents/geojson?catgory=protest", "catgory"), ("/api/incidents/map?zoom=5&bboxx=1", "bboxx"),
        })
        {
            var (refused, refusal) = await unpol.GetJson(path);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal([field], refusal.ErrorFields());
        }
    }

    [Fact]
    public async Task A_surge_after_a_quiet_spell_alerts_when_the_mission_reported_before_the_baseline()
    {
        // Reporting went on before the baseline began (one incident elsewhere, 400 days back), then the area was quiet for
        // most of the baseline: three incidents in its last days and eight in the window. The quiet spell is part of the
        // baseline, not a time before reporting began.
        var at = new DateTimeOffset(2016, 6, 30, 0, 0, 0, TimeSpan.Zero);
        int[] offsets = [-400, -40, -36, -32, -28, -25, -22, -19, -16, -13, -10, -7];
        var (_, spikes, spike) = await SpikeAsync("Quiet then surging area", -12, 48, at,
            offsets.Select((days, i) => i == 0 ? (-13.5, 51.5, days) : (-11.5 + (i * 0.05), 49.0, days)));
        Assert.Equal(365, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(8, spike.GetProperty("recent").GetInt32());
        Assert.Equal(3, spike.GetProperty("baseline").GetInt32());
        Assert.True(spike.GetProperty("alert").GetBoolean());

        // A baseline shorter than the window could never alert: refused by name.
        var (refused, problem) = await server.ClientFor("unpol").GetJson("/api/early-warning/spikes?days=60&baselineDays=30");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["baselineDays"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_spike_baseline_counts_only_the_days_the_callers_incidents_cover()
    {
        // A mission that began reporting 44 days ago, at a steady rate of one incident every three days: the last 30 days are
        // no spike against the 14 days before them, though against a year they would look like one.
        var at = new DateTimeOffset(2013, 6, 30, 0, 0, 0, TimeSpan.Zero);
        var (_, spikes, spike) = await SpikeAsync("New mission area", -16, 44, at, Enumerable.Range(0, 15).Select(i => (-15.5 + (i * 0.05), 45.0, -44 + (3 * i))));
        Assert.Equal(14, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(10, spike.GetProperty("recent").GetInt32());
        Assert.Equal(5, spike.GetProperty("baseline").GetInt32());
        // The rate of the 14 days covered: (5 + ½) × 30 / 14, not scaled as if 30 days had been.
        Assert.Equal(11.786, spike.GetProperty("expected").GetDouble());
        Assert.Equal(EarlyWarning.EarlyWarningEndpoints.PoissonUpperTail(10, 5.5 * 30 / 14), spike.GetProperty("probability").GetDouble(), 12);
        Assert.False(spike.GetProperty("alert").GetBoolean());
    }

    [Fact]
    public async Task A_gap_in_reporting_longer_than_the_baseline_is_not_taken_for_a_quiet_spell()
    {
        // A dataset's history ended four years before the mission's own reports began, 44 days ago: the baseline is the 14
        // days those cover, not a year of calm that would make every steady area alarm.
        var at = new DateTimeOffset(2010, 6, 30, 0, 0, 0, TimeSpan.Zero);
        var (_, spikes, spike) = await SpikeAsync("Resumed reporting area", -28, 40, at,
            Enumerable.Range(0, 15).Select(i => (-27.5 + (i * 0.05), 41.0, -44 + (3 * i))).Prepend((-27.0, 40.5, -1500)));
        Assert.Equal(14, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(10, spike.GetProperty("recent").GetInt32());
        Assert.Equal(5, spike.GetProperty("baseline").GetInt32());
        Assert.False(spike.GetProperty("alert").GetBoolean());
    }

    [Fact]
    public async Task An_incident_dated_to_its_year_before_the_look_back_does_not_stretch_the_baseline()
    {
        // An event known only by its year, observed 800 days back, is over by 434 days back (its year ends then), inside the
        // year before the baseline: yet it did not happen in it. The mission began reporting 44 days ago, and the baseline
        // is the 14 days its reports cover (a year would make its steady rate look like a surge).
        var at = new DateTimeOffset(2001, 6, 30, 0, 0, 0, TimeSpan.Zero);
        using var unpol = server.ClientFor("unpol");
        var yearOnly = JsonSerializer.SerializeToNode(Api.Report(latitude: -43.5, longitude: 45.5, observedAt: at.AddDays(-800), narrative: "An event of that year",
            marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"])))!;
        yearOnly["observedPrecision"] = "year";
        var (stored, body) = await unpol.PostJson("/api/reports", yearOnly);
        Assert.True(stored.StatusCode == HttpStatusCode.Created, body.ToString());
        var (_, spikes, spike) = await SpikeAsync("Year-dated history area", -44, 44, at, Enumerable.Range(0, 15).Select(i => (-43.5 + (i * 0.05), 45.0, -44 + (3 * i))));
        Assert.Equal(14, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(10, spike.GetProperty("recent").GetInt32());
        Assert.False(spike.GetProperty("alert").GetBoolean());
    }

    [Fact]
    public async Task A_spike_gives_no_rate_before_any_baseline_day_is_covered()
    {
        // JOC's first incidents it may see (and of this test's server) are all within the recent window: there is no rate to
        // judge them by, and no figure is made up.
        var at = new DateTimeOffset(2005, 1, 31, 0, 0, 0, TimeSpan.Zero);
        var (_, spikes, spike) = await SpikeAsync("First weeks area", -20, 50, at, Enumerable.Range(0, 5).Select(i => (-19.5 + (i * 0.05), 51.0, -10 + i)), "joc", "JOC");
        Assert.Equal(0, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(5, spike.GetProperty("recent").GetInt32());
        Assert.False(spike.TryGetProperty("expected", out _));
        Assert.False(spike.TryGetProperty("probability", out _));
        Assert.False(spike.GetProperty("alert").GetBoolean());
    }

    [Fact]
    public async Task Spikes_are_marked_with_the_incident_that_tells_reporting_went_on_before_the_baseline()
    {
        // Only a CONFIDENTIAL incident, long before the baseline, tells that reporting went on before it (and so that the
        // whole year counts): the answer is built from it and marked with it, though every incident it counts is unclassified.
        var at = new DateTimeOffset(2015, 6, 30, 0, 0, 0, TimeSpan.Zero);
        var code = "EW-" + Guid.NewGuid().ToString("N")[..6];
        await server.AddAreaAsync(code, "Marked baseline area", -24, 36, -22, 38);
        using var ocha = server.ClientFor("ocha");
        foreach (var (days, marking) in new[] { (-400, Api.Marking("CONFIDENTIAL", ["org:OCHA"], ["DECONFLICTION-ONLY"])), (-10, Api.Marking("UNCLASSIFIED", ["org:OCHA"])) })
        {
            var (response, _) = await ocha.PostJson("/api/reports", Api.Report(latitude: -23.0, longitude: 37.0 + (days / 1000.0), observedAt: at.AddDays(days),
                narrative: $"{code} event {days}", marking: marking));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        var (_, spikes) = await ocha.GetJson($"/api/early-warning/spikes?at={Uri.EscapeDataString(at.ToString("O"))}&days=30&baselineDays=365");
        Assert.Equal(365, spikes.GetProperty("baselineObservedDays").GetInt32());
        Assert.Equal(1, spikes.GetProperty("items").EnumerateArray().Single(s => s.GetProperty("area").GetString() == code).GetProperty("recent").GetInt32());
        Assert.Equal("CONFIDENTIAL", spikes.GetProperty("classification").GetString());
        Assert.Equal(["DECONFLICTION-ONLY"], spikes.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));

        // An unclassified incident before the baseline tells the same: the answer is then unclassified.
        var (early, _) = await ocha.PostJson("/api/reports", Api.Report(latitude: -23.5, longitude: 36.5, observedAt: at.AddDays(-500),
            narrative: $"{code} early event", marking: Api.Marking("UNCLASSIFIED", ["org:OCHA"])));
        Assert.Equal(HttpStatusCode.Created, early.StatusCode);
        (_, spikes) = await ocha.GetJson($"/api/early-warning/spikes?at={Uri.EscapeDataString(at.ToString("O"))}&days=30&baselineDays=365");
        Assert.Equal("UNCLASSIFIED", spikes.GetProperty("classification").GetString());
        Assert.Empty(spikes.GetProperty("caveats").EnumerateArray());
    }

    [Fact]
    public async Task A_day_given_alone_for_spikes_is_the_whole_of_that_day()
    {
        // "at=2015-06-30" counts that day's incidents, as "to=2015-06-30" does elsewhere; at its midnight it would not.
        // Today given alone is up to now (not refused as a time to come).
        var code = "EW-" + Guid.NewGuid().ToString("N")[..6];
        await server.AddAreaAsync(code, "Whole day area", -52, 36, -50, 38);
        using var unpol = server.ClientFor("unpol");
        var (made, _) = await unpol.PostJson("/api/reports", Api.Report(latitude: -51, longitude: 37, observedAt: new DateTimeOffset(2015, 6, 30, 15, 0, 0, TimeSpan.Zero),
            narrative: $"{code} afternoon event", marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        async Task<int> RecentAsync(string at)
        {
            var (_, spikes) = await unpol.GetJson($"/api/early-warning/spikes?at={Uri.EscapeDataString(at)}&days=30&baselineDays=365");
            return spikes.GetProperty("items").EnumerateArray().Single(s => s.GetProperty("area").GetString() == code).GetProperty("recent").GetInt32();
        }

        Assert.Equal(1, await RecentAsync("2015-06-30"));
        Assert.Equal(0, await RecentAsync("2015-06-30T00:00:00Z"));
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var (response, now) = await unpol.GetJson($"/api/early-warning/spikes?at={today}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.InRange(now.GetProperty("at").GetDateTimeOffset(), DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));

        // A client's clock a few minutes ahead (within the skew reports allow) ends the window now, not in the future.
        var ahead = DateTimeOffset.UtcNow.AddMinutes(3).ToString("O", System.Globalization.CultureInfo.InvariantCulture);
        var (aheadResponse, aheadBody) = await unpol.GetJson($"/api/early-warning/spikes?at={Uri.EscapeDataString(ahead)}");
        Assert.Equal(HttpStatusCode.OK, aheadResponse.StatusCode);
        Assert.True(aheadBody.GetProperty("at").GetDateTimeOffset() <= DateTimeOffset.UtcNow, aheadBody.GetProperty("at").ToString());
    }

    [Fact]
    public async Task Spikes_of_equal_probability_come_in_the_order_of_their_codes()
    {
        // Tied rows came in the order the store held the areas (their ids, random per store): which of them filled the
        // page's twelve rows differed between installs and stores.
        foreach (var letter in "FDBECA")
        {
            await server.AddAreaAsync($"EW-TIE-{letter}", $"Tied area {letter}", -58, 30 + (2 * (letter - 'A')), -57, 31 + (2 * (letter - 'A')));
        }

        var (_, spikes) = await server.ClientFor("unpol").GetJson("/api/early-warning/spikes?at=2015-06-30&days=30&baselineDays=365");
        var items = spikes.GetProperty("items").EnumerateArray()
            .Select(s => (Area: s.GetProperty("area").GetString()!, Probability: s.TryGetProperty("probability", out var p) && p.ValueKind == JsonValueKind.Number ? p.GetDouble() : 2))
            .ToList();

        Assert.True(items.Count >= 2);
        Assert.Equal(items.OrderBy(i => i.Probability).ThenBy(i => i.Area, StringComparer.Ordinal), items);
    }

    /// <summary>
    /// A new two-degree area at (<paramref name="south"/>, <paramref name="west"/>), UNPOL's incidents (place, days before
    /// <paramref name="at"/>), and the spikes UNPOL reads at <paramref name="at"/> (30 days against 365) with the area's row.
    /// </summary>
    private async Task<(string Code, System.Text.Json.JsonElement Spikes, System.Text.Json.JsonElement Spike)> SpikeAsync(string name, double south, double west, DateTimeOffset at,
        IEnumerable<(double Latitude, double Longitude, int Days)> incidents, string member = "unpol", string organisation = "UNPOL")
    {
        var code = "EW-" + Guid.NewGuid().ToString("N")[..6];
        await server.AddAreaAsync(code, name, south, west, south + 2, west + 2);
        using var unpol = server.ClientFor(member);
        var i = 0;
        foreach (var (latitude, longitude, days) in incidents)
        {
            var (response, _) = await unpol.PostJson("/api/reports", Api.Report(latitude: latitude, longitude: longitude, observedAt: at.AddDays(days),
                narrative: $"{code} event {i++}", marking: Api.Marking("UNCLASSIFIED", ["org:" + organisation])));
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        var (_, spikes) = await unpol.GetJson($"/api/early-warning/spikes?at={Uri.EscapeDataString(at.ToString("O"))}&days=30&baselineDays=365");
        return (code, spikes, spikes.GetProperty("items").EnumerateArray().Single(s => s.GetProperty("area").GetString() == code));
    }
}

public abstract class ForecastApiTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task Forecasts_learn_only_from_what_the_whole_mission_may_see_and_say_so()
    {
        var open = Api.Marking("UNCLASSIFIED", ["mission"]);
        using var joc = server.ClientFor("joc");
        // Open history in one place over two and a half years (a forecast needs 25 months); a restricted massacre elsewhere
        // must not be learnt from.
        for (var m = 0; m < 30; m += 2)
        {
            await joc.PostJson("/api/reports", Api.Report(latitude: -25.1, longitude: 30.1, observedAt: new DateTimeOffset(2024, 1, 5, 0, 0, 0, TimeSpan.Zero).AddMonths(m), marking: open));
        }

        await joc.PostJson("/api/reports", Api.Report(latitude: -27.6, longitude: 33.6, observedAt: new DateTimeOffset(2025, 6, 5, 0, 0, 0, TimeSpan.Zero),
            marking: Api.Marking("STRICTLY CONFIDENTIAL", ["org:JOC"])));

        await using (var scope = server.Services.CreateAsyncScope())
        {
            var summary = await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().RunAsync(CancellationToken.None);
            Assert.NotNull(summary);
        }

        var (response, forecasts) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var items = forecasts.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(items, f => f.GetProperty("gid").GetInt32() == EarlyWarning.PrioGrid.Gid(-25.1, 30.1));
        Assert.DoesNotContain(items, f => f.GetProperty("gid").GetInt32() == EarlyWarning.PrioGrid.Gid(-27.6, 33.6));
        Assert.All(items, f => Assert.StartsWith("UNCLASSIFIED", f.GetProperty("marking").GetString(), StringComparison.Ordinal));
        var active = items.Single(f => f.GetProperty("gid").GetInt32() == EarlyWarning.PrioGrid.Gid(-25.1, 30.1));
        Assert.InRange(active.GetProperty("atLeastOne").GetDouble(), 0.01, 1);
        var (_, skill) = await server.ClientFor("pref").GetJson("/api/early-warning/skill");
        Assert.Equal(5, skill.GetProperty("models").GetArrayLength());

        // Restricted accounts fuse into the open history (stored here as their marking would narrow it): too little is left
        // open to forecast from, and the forecasts learnt from it go rather than stay on as the mission's.
        var narrowed = await server.WithDbAsync(db => db.Incidents.Where(i => i.Latitude > -25.2 && i.Latitude < -25.0 && i.Classification == 0)
            .ExecuteUpdateAsync(u => u.SetProperty(i => i.Classification, 1)));
        Assert.Equal(15, narrowed);
        await using (var scope = server.Services.CreateAsyncScope())
        {
            Assert.Null(await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().RunAsync(CancellationToken.None));
        }

        var (_, after) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts");
        Assert.Empty(after.GetProperty("items").EnumerateArray());
        var (_, areas) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts/areas");
        Assert.Empty(areas.EnumerateArray());
    }
}

/// <summary>Forecasts with a store of their own: what they learn from is the whole store's open history.</summary>
public abstract class PublicForecastTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task A_restricted_account_joining_an_open_incident_does_not_move_the_mission_forecast()
    {
        var open = Api.Marking("UNCLASSIFIED", ["mission"]);
        using var joc = server.ClientFor("joc");
        var times = Enumerable.Range(0, 15).Select(m => new DateTimeOffset(2024, 1, 5, 0, 0, 0, TimeSpan.Zero).AddMonths(2 * m)).ToList();
        foreach (var at in times)
        {
            var (created, body) = await joc.PostJson("/api/reports", Api.Report(latitude: -23.1, longitude: 28.1, observedAt: at, marking: open));
            Assert.True(created.IsSuccessStatusCode, body.ToString());
        }

        async Task<string> ForecastsAsync()
        {
            await using (var scope = server.Services.CreateAsyncScope())
            {
                Assert.NotNull(await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().RunAsync(CancellationToken.None));
            }

            var (_, forecasts) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts");
            var (_, areas) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts/areas");
            return forecasts.GetProperty("items").ToString() + areas;
        }

        var before = await ForecastsAsync();
        Assert.Contains($"\"gid\":{EarlyWarning.PrioGrid.Gid(-23.1, 28.1)},", before, StringComparison.Ordinal);

        // The JOC's restricted account of the latest event fuses into its open incident: the mission (pref among it) still
        // sees that incident as it was, and the forecast marked for the mission must not tell that anything joined it.
        // Its figures differ, so that the stored incident's differ from the mission's view of it (the lower median of the
        // two accounts: nobody killed, against three): a forecast from the stored incident would move.
        var (joined, report) = await joc.PostJson("/api/reports", new Dictionary<string, object?>(Api.Fields(Api.Report(latitude: -23.1, longitude: 28.1, observedAt: times[^1],
            marking: Api.Marking("STRICTLY CONFIDENTIAL", ["org:JOC"]))))
        {
            ["casualties"] = new { killedCivilian = new { low = 0, best = 0, high = 0 }, killedOther = new { best = 0 } },
        });
        Assert.True(joined.IsSuccessStatusCode, report.ToString());
        var incident = report.GetProperty("incidentId").GetGuid();
        Assert.True(await server.WithDbAsync(db => db.Incidents.Where(i => i.Id == incident).Select(i => i.Mixed).SingleAsync()));
        Assert.Equal(0, await server.WithDbAsync(db => db.Incidents.Where(i => i.Id == incident).Select(i => i.KilledBest).SingleAsync()));

        Assert.Equal(before, await ForecastsAsync());
    }
}

/// <summary>Which cells the forecast's panel holds, with a store of its own (its fit is the whole store's open history).</summary>
public abstract class ForecastCellTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task Incidents_outside_the_areas_choose_no_cell_from_the_months_they_are_charted_against_or_the_month_in_progress()
    {
        var open = Api.Marking("UNCLASSIFIED", ["mission"]);
        using var joc = server.ClientFor("joc");
        await server.AddAreaAsync("CHART", "Chart prefecture", -21.5, 26.0, -21.0, 26.5);
        var now = server.Services.GetRequiredService<TimeProvider>().GetUtcNow();
        var month = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        // Open history in the area's one cell from 34 months back to six months ago: the charts show the last nine months
        // (a forecast needs 25 months of history first).
        for (var back = 34; back >= 6; back -= 2)
        {
            var (created, body) = await joc.PostJson("/api/reports", Api.Report(latitude: -21.1, longitude: 26.1, observedAt: month.AddMonths(-back).AddDays(4), marking: open));
            Assert.True(created.IsSuccessStatusCode, body.ToString());
        }

        async Task<string> ChartsAsync()
        {
            server.Services.GetRequiredService<EarlyWarning.ForecastHistoryCache>().Clear();
            await using var scope = server.Services.CreateAsyncScope();
            var series = await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().HistoryAsync(12, 10, CancellationToken.None);
            var chart = Assert.Single(series);
            Assert.Equal("Chart prefecture", chart.Area);
            Assert.Equal(9, chart.Months.Count);
            Assert.Contains(chart.Forecast, f => f > 0);
            return JsonSerializer.Serialize(chart);
        }

        var before = await ChartsAsync();
        // Deaths three months ago in the next cell east, outside every area: shown against nothing (its cell is in no area),
        // and chosen as a cell for the fit it would move the chart's forecasts, which are said to be out of sample.
        var (east, eastBody) = await joc.PostJson("/api/reports", Api.Report(latitude: -21.1, longitude: 26.6, observedAt: month.AddMonths(-3).AddDays(4), marking: open));
        Assert.True(east.IsSuccessStatusCode, eastBody.ToString());
        Assert.Equal(before, await ChartsAsync());

        // In service, an incident of the month in progress (which the panel does not hold yet) gives its cell no forecast;
        // one of a month the panel holds does.
        var (current, currentBody) = await joc.PostJson("/api/reports", Api.Report(latitude: -21.1, longitude: 27.1, observedAt: month, marking: open));
        Assert.True(current.IsSuccessStatusCode, currentBody.ToString());
        await using (var scope = server.Services.CreateAsyncScope())
        {
            Assert.NotNull(await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().RunAsync(CancellationToken.None));
        }

        var (_, forecasts) = await server.ClientFor("pref").GetJson("/api/early-warning/forecasts");
        var cells = forecasts.GetProperty("items").EnumerateArray().Select(f => f.GetProperty("gid").GetInt32()).ToList();
        Assert.Contains(EarlyWarning.PrioGrid.Gid(-21.1, 26.1), cells);
        Assert.Contains(EarlyWarning.PrioGrid.Gid(-21.1, 26.6), cells);
        Assert.DoesNotContain(EarlyWarning.PrioGrid.Gid(-21.1, 27.1), cells);
    }

    [Fact]
    public async Task Forecasts_replaced_twice_at_once_are_replaced_once_after_the_other()
    {
        // The daily refresh meeting an operator's `concord forecast` on PostgreSQL: the second deleted around the first's new
        // rows and failed inserting the same cells (a unique key). SQLite's write lock had them in turn.
        var open = Api.Marking("UNCLASSIFIED", ["mission"]);
        using var joc = server.ClientFor("joc");
        for (var m = 0; m < 30; m += 2)
        {
            var (created, body) = await joc.PostJson("/api/reports", Api.Report(latitude: -19.1, longitude: 24.1, observedAt: new DateTimeOffset(2024, 2, 5, 0, 0, 0, TimeSpan.Zero).AddMonths(m), marking: open));
            Assert.True(created.IsSuccessStatusCode, body.ToString());
        }

        async Task<EarlyWarning.ForecastService.Summary?> RunAsync()
        {
            await using var scope = server.Services.CreateAsyncScope();
            return await scope.ServiceProvider.GetRequiredService<EarlyWarning.ForecastService>().RunAsync(CancellationToken.None);
        }

        for (var round = 0; round < 3; round++)
        {
            var runs = await Task.WhenAll(RunAsync(), RunAsync());
            Assert.All(runs, Assert.NotNull);
            Assert.Equal(runs[0]!.Cells, await server.WithDbAsync(db => db.Forecasts.CountAsync()));
        }
    }
}

public sealed class ForecastCellTests_Sqlite(SqliteServer server) : ForecastCellTests<SqliteServer>(server);

public sealed class ForecastCellTests_Postgres(PostgresServer server) : ForecastCellTests<PostgresServer>(server);

public sealed class PublicForecastTests_Sqlite(SqliteServer server) : PublicForecastTests<SqliteServer>(server);

public sealed class PublicForecastTests_Postgres(PostgresServer server) : PublicForecastTests<PostgresServer>(server);

public sealed class ForecastApiTests_Sqlite(SqliteServer server) : ForecastApiTests<SqliteServer>(server);

public sealed class ForecastApiTests_Postgres(PostgresServer server) : ForecastApiTests<PostgresServer>(server);

/// <summary>Spikes on a server whose clock the tests move.</summary>
public abstract class SpikeClockTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    [Fact]
    public async Task The_default_spike_window_ends_now_at_the_latest()
    {
        // A report dated by its day may start up to 14 hours ahead (UTC+14): at noon UTC, tomorrow's. The window ended with
        // the latest incident, in the future, counting hours not yet lived against a full day's rate.
        var now = server.FakeClock.GetUtcNow();
        var noon = new DateTimeOffset(now.Year, now.Month, now.Day, 12, 0, 0, TimeSpan.Zero);
        server.FakeClock.Advance((noon > now ? noon : noon.AddDays(1)) - now);
        var tomorrow = server.FakeClock.GetUtcNow().Date.AddDays(1);
        var (made, report) = await server.ClientFor("unpol").PostJson("/api/reports",
            new Dictionary<string, object?>(Api.Fields(Api.Report(observedAt: new DateTimeOffset(tomorrow, TimeSpan.Zero), marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"])))) { ["observedPrecision"] = "day" });
        Assert.True(made.StatusCode == HttpStatusCode.Created, report.ToString());

        var (_, spikes) = await server.ClientFor("unpol").GetJson("/api/early-warning/spikes?days=1");

        Assert.Equal(server.FakeClock.GetUtcNow(), spikes.GetProperty("at").GetDateTimeOffset());
    }
}

public sealed class SpikeClockTests_Sqlite(SqliteClockServer server) : SpikeClockTests<SqliteClockServer>(server);

public sealed class SpikeClockTests_Postgres(PostgresClockServer server) : SpikeClockTests<PostgresClockServer>(server);

public sealed class EarlyWarningApiTests_Sqlite(SqliteServer server) : EarlyWarningApiTests<SqliteServer>(server);

public sealed class EarlyWarningApiTests_Postgres(PostgresServer server) : EarlyWarningApiTests<PostgresServer>(server);

/// <summary>The forecast's skill when its back-test cannot run.</summary>
public sealed class SkillAnswerTests
{
    [Fact]
    public async Task A_back_test_that_cannot_read_its_reference_data_answers_503_with_the_reason()
    {
        // A deployment whose reference files are missing or unreadable: a 503 saying so (it was a bare 500).
        var empty = Directory.CreateTempSubdirectory("concord-reference-");
        try
        {
            var answer = await EarlyWarning.EarlyWarningEndpoints.SkillAnswerAsync(Task.Run(() => EarlyWarning.EarlyWarningEndpoints.Evaluate(empty.FullName)),
                Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            var problem = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult>(answer.Result);
            Assert.Equal(503, problem.StatusCode);
            Assert.Contains("tried again at the next request", problem.ProblemDetails.Detail, StringComparison.Ordinal);
            // Why is in the server's log: the reason names the server's files, which are not for members.
            Assert.Contains("the server's log says why", problem.ProblemDetails.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain("ged231_caf_events.csv", problem.ProblemDetails.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(empty.FullName, problem.ProblemDetails.Detail, StringComparison.Ordinal);
        }
        finally
        {
            empty.Delete(recursive: true);
        }
    }
}

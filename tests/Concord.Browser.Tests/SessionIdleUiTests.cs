using System.Net.Http.Json;
using System.Text.Json;
using Concord.Server.Data;
using Concord.Server.Tests;
using Microsoft.Playwright;

namespace Concord.Browser.Tests;

/// <summary>A clock that runs as the machine's does, ahead by what a test moved it: the browser and the circuit keep real time.</summary>
public sealed class MovableClock : TimeProvider
{
    private long _ahead;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ahead, by.Ticks);

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow().AddTicks(Interlocked.Read(ref _ahead));
}

/// <summary>A SQLite test server on a <see cref="MovableClock"/> (what is tested with it does not depend on the store).</summary>
public sealed class MovableClockServer : TestServer
{
    public MovableClock MovableClock { get; } = new();

    public override string StoreName => "sqlite";

    internal override TimeProvider? Clock => MovableClock;

    internal override Task<StoreOptions> CreateStoreAsync() => Task.FromResult(StoreOptions.Sqlite(DataDirectory));

    internal override Task DropStoreAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return Task.CompletedTask;
    }
}

public sealed class ClockBrowser : BrowserFixture<MovableClockServer>;

/// <summary>A page left open past its session's idle limit, as the cookie and the live channel end with it.</summary>
public sealed class SessionIdleUiTests(ClockBrowser fixture) : IClassFixture<ClockBrowser>, IAsyncLifetime
{
    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => fixture.ClosePagesAsync();

    [Fact]
    public async Task A_live_list_left_unused_past_the_idle_limit_shows_nothing_more()
    {
        var tag = "idle" + Guid.NewGuid().ToString("N")[..8];
        using var unpol = fixture.Server.ClientFor("unpol");
        async Task<string> ReportAsync(string narrative)
        {
            var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(narrative: $"{tag}: {narrative}", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
            return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("incidentId").GetString()!;
        }

        var first = await ReportAsync("Roadblock on the Bossangoa road");
        var page = await fixture.SignedInAsync("force", "/incidents?q=" + tag);
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        await page.WaitForSelectorAsync($"#incident-list tr[data-id='{first}']", new() { State = WaitForSelectorState.Attached });

        // Thirteen hours without a request under its cookie: the session has ended. The next change makes the open list
        // read itself again (nobody touches it), and it shows nothing more instead of the new incident.
        fixture.Server.MovableClock.Advance(TimeSpan.FromHours(13));
        await ReportAsync("Shots heard near the market");
        await page.WaitForSelectorAsync("#incident-list", new() { State = WaitForSelectorState.Detached });
        Assert.Contains("session", await page.TextContentAsync("ul.error[role='alert']"));
    }
}

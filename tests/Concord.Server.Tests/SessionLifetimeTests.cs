using System.Net;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>
/// A browser session slides while it is used, but ends a day after its sign-in however often it is used: the API, the
/// live channel opened with it and its pages. On these servers the clock moves only when a test moves it.
/// </summary>
public abstract class SessionLifetimeTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    [Fact]
    public async Task A_session_used_all_along_ends_a_day_after_its_sign_in()
    {
        var cookies = new CookieContainer();
        using var browser = await BrowserSignedInAsync("joc", cookies);
        var (live, changes, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;

        // Used every ten hours (within the twelve hours a session lasts unused): it goes on for a day.
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
        server.FakeClock.Advance(TimeSpan.FromHours(10));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
        server.FakeClock.Advance(TimeSpan.FromHours(10));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);

        // At twenty hours the live channel is still told of a change (it is checked before each push).
        using (var writer = await server.SignedInAsync("joc"))
        {
            var (written, report) = await writer.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.Equal(HttpStatusCode.Created, written.StatusCode);
            var id = report.GetProperty("id").GetGuid();
            for (var waited = System.Diagnostics.Stopwatch.StartNew(); !changes.Contains(id); await Task.Delay(50))
            {
                Assert.True(waited.Elapsed < TimeSpan.FromSeconds(15), "the report was pushed to the live channel at twenty hours");
            }
        }

        Assert.False(closed.IsCompleted);

        // A day and an hour after its sign-in it has ended: the API refuses it, and the live channel is closed at the next
        // change instead of being told of it.
        server.FakeClock.Advance(TimeSpan.FromHours(5));
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/me")).StatusCode);
        using var other = await server.SignedInAsync("joc");
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/api/me")).StatusCode);
        var (created, _) = await other.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await closed.WaitAsync(TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task A_live_channel_ends_with_its_session_left_unused_past_the_idle_limit()
    {
        var cookies = new CookieContainer();
        using var browser = await BrowserSignedInAsync("pref", cookies);
        var (live, _, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;

        // Thirteen hours without a request under the cookie: the session has ended as the cookie has, and the live channel
        // is closed at the next change instead of being told of it.
        server.FakeClock.Advance(TimeSpan.FromHours(13));
        using var other = await server.SignedInAsync("joc");
        var (created, _) = await other.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await closed.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_live_channel_ends_with_its_cookie_which_is_renewed_only_once_half_its_life_has_gone()
    {
        // Used five hours after the sign-in, the cookie is not renewed (less than half its twelve hours had gone): it still
        // expires twelve hours after the sign-in. The live channel was judged by the last request (five hours) and went on
        // for six hours more, pushing changes to a browser whose cookie the API already refused.
        var cookies = new CookieContainer();
        using var browser = await BrowserSignedInAsync("unpol2", cookies);
        server.FakeClock.Advance(TimeSpan.FromHours(5));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
        var (live, changes, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;

        server.FakeClock.Advance(TimeSpan.FromHours(7) + TimeSpan.FromMinutes(1));
        using var other = await server.SignedInAsync("joc");
        var (created, report) = await other.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await closed.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.DoesNotContain(report.GetProperty("id").GetGuid(), changes);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_session_used_past_half_its_idle_life_slides_and_its_live_channel_goes_on()
    {
        // Used seven hours after the sign-in, the cookie is renewed for twelve hours from then: at thirteen hours the live
        // channel is still told of a change.
        var cookies = new CookieContainer();
        using var browser = await BrowserSignedInAsync("rwabatt", cookies);
        server.FakeClock.Advance(TimeSpan.FromHours(7));
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
        var (live, changes, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;

        server.FakeClock.Advance(TimeSpan.FromHours(6));
        using var other = await server.SignedInAsync("joc");
        var (created, report) = await other.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = report.GetProperty("id").GetGuid();
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !changes.Contains(id); await Task.Delay(50))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(15), "the report was pushed to the live channel at thirteen hours");
        }

        Assert.False(closed.IsCompleted);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_signed_out_session_is_remembered_only_until_it_would_have_ended()
    {
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        async Task<(HttpClient Browser, HttpClient Copy)> SignedOutAsync()
        {
            var cookies = new CookieContainer();
            var browser = await BrowserSignedInAsync("ocha", cookies);
            var copied = new CookieContainer();
            copied.Add(cookies.GetCookies(server.BaseAddress));
            var copy = new HttpClient(new HttpClientHandler { CookieContainer = copied }) { BaseAddress = server.BaseAddress };
            Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);
            return (browser, copy);
        }

        async Task<int> RememberedAsync()
        {
            using var scope = server.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<Data.ConcordDb>();
            return await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.EndedSessions);
        }

        var before = await RememberedAsync();
        var (first, firstCopy) = await SignedOutAsync();
        using var _ = first;
        using var __ = firstCopy;
        Assert.Equal(before + 1, await RememberedAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, (await firstCopy.GetAsync("/api/me")).StatusCode);

        // A day and an hour later that session would have ended anyway: the next sign-out forgets it, and its copy is
        // still refused (by its age now).
        server.FakeClock.Advance(TimeSpan.FromHours(25));
        var (second, secondCopy) = await SignedOutAsync();
        using var ___ = second;
        using var ____ = secondCopy;
        Assert.Equal(1, await RememberedAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, (await firstCopy.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await secondCopy.GetAsync("/api/me")).StatusCode);
    }

    /// <summary>A browser's client keeping in <paramref name="cookies"/> the cookie of <paramref name="userName"/>'s new session.</summary>
    private async Task<HttpClient> BrowserSignedInAsync(string userName, CookieContainer cookies)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName, password = TestServer.Password })).Response.StatusCode);
        return browser;
    }
}

public sealed class SessionLifetimeTests_Sqlite(SqliteClockServer server) : SessionLifetimeTests<SqliteClockServer>(server);

public sealed class SessionLifetimeTests_Postgres(PostgresClockServer server) : SessionLifetimeTests<PostgresClockServer>(server);

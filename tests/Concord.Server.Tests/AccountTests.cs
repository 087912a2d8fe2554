using System.Net;
using System.Net.Http.Json;
using Concord.Server.Access;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

public abstract class AccountTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task A_member_signs_in_with_a_password_and_the_cookie_opens_the_api()
    {
        using var handler = new HttpClientHandler { CookieContainer = new CookieContainer() };
        using var client = new HttpClient(handler) { BaseAddress = server.BaseAddress };

        var (signedIn, me) = await client.PostJson("/api/auth/signin", new { userName = "FORCE", password = TestServer.Password });
        var mine = await client.GetAsync("/api/me");
        var signedOut = await client.PostAsync("/api/auth/signout", null);
        var after = await client.GetAsync("/api/me");

        Assert.Equal(HttpStatusCode.OK, signedIn.StatusCode);
        Assert.Equal("force", me.GetProperty("userName").GetString());
        Assert.Equal(HttpStatusCode.OK, mine.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, signedOut.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
    }

    [Fact]
    public async Task Signing_out_ends_the_session_for_every_copy_of_its_cookie_and_no_other_session()
    {
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName = "pref", password = TestServer.Password })).Response.StatusCode);
        // The same cookie copied elsewhere (another browser, a proxy's log), and another session of the same member.
        var copied = new CookieContainer();
        copied.Add(cookies.GetCookies(server.BaseAddress));
        using var copy = new HttpClient(new HttpClientHandler { CookieContainer = copied }) { BaseAddress = server.BaseAddress };
        using var otherSession = await server.SignedInAsync("pref");
        Assert.Equal(HttpStatusCode.OK, (await copy.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await otherSession.GetAsync("/api/me")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])))).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await otherSession.GetAsync("/api/me")).StatusCode);
        // The copy signing out again changes nothing; signing in again opens a new session.
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.PostAsync("/api/auth/signout", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName = "pref", password = TestServer.Password })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task A_session_another_node_signed_out_makes_no_token()
    {
        var cookies = new CookieContainer();
        using var stolen = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await stolen.PostJson("/api/auth/signin", new { userName = "pref", password = TestServer.Password })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await stolen.GetAsync("/api/me")).StatusCode);

        // Another node signs the session out: the store records it; this node's cache does not know yet.
        var cookie = cookies.GetCookies(server.BaseAddress)["concord"]!.Value;
        var format = server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions>>()
            .Get(Accounts.ConcordAuthentication.CookieScheme).TicketDataFormat;
        var principal = format.Unprotect(cookie)!.Principal;
        var session = Accounts.ConcordAuthentication.SessionId(principal)!.Value;
        var member = Guid.Parse(principal.FindFirst(Accounts.ConcordAuthentication.MemberIdClaim)!.Value);
        await server.WithDbAsync(async db =>
        {
            db.EndedSessions.Add(new Accounts.EndedSession { Id = session, MemberId = member, EndedAt = DateTime.UtcNow, ExpiresAt = DateTime.UtcNow.AddDays(1) });
            return await db.SaveChangesAsync();
        });

        // The copy of its cookie makes no token that would outlive the sign-out.
        var (refused, problem) = await stolen.PostJson("/api/me/tokens", new { name = "escape-sign-out", expiresInDays = 365 });
        Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, problem.ToString());
        Assert.Empty(await server.WithDbAsync(db => db.AccessTokens.Where(t => t.Name == "escape-sign-out").ToListAsync()));
    }

    [Fact]
    public async Task A_live_connection_of_a_session_is_closed_once_the_session_signs_out() =>
        await LiveSessionEndsAsync("joc", TestServer.Password, async browser =>
            Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode));

    [Fact]
    public async Task A_live_connection_of_a_session_is_closed_at_sign_out_even_when_nothing_changes_after()
    {
        // A quiet night shift: the member signs out in one tab; the live connection of another must not wait for a change.
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName = "force", password = TestServer.Password })).Response.StatusCode);
        var (live, _, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;
        Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);
        await closed.WaitAsync(TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// Signs <paramref name="userName"/> in, opens a live connection with the session and sees a change pushed on it; then
    /// <paramref name="end"/> ends the session, and the connection must be closed rather than told of the next change.
    /// </summary>
    private async Task LiveSessionEndsAsync(string userName, string password, Func<HttpClient, Task> end)
    {
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName, password })).Response.StatusCode);
        var (live, changes, closed) = await server.OpenLiveAsync(o => o.Cookies = cookies);
        await using var _ = live;

        var open = Api.Marking("UNCLASSIFIED", ["mission"]);
        var (_, before) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: "seen live in a session", marking: open));
        var beforeId = before.GetProperty("id").GetGuid();
        for (var i = 0; i < 150 && !changes.Contains(beforeId); i++)
        {
            await Task.Delay(100);
        }

        Assert.Contains(beforeId, changes);
        await end(browser);
        var (_, after) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: "after the session ended", marking: open));

        await closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(after.GetProperty("id").GetGuid(), changes);
    }

    [Fact]
    public async Task A_new_password_or_a_disable_ends_the_sessions_signed_in_before_it()
    {
        var name = "s" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        var (created, _) = await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "first-password-1", clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        async Task<HttpClient> SignedIn(string password)
        {
            var client = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };
            var (signedIn, _) = await client.PostJson("/api/auth/signin", new { userName = name, password });
            Assert.Equal(HttpStatusCode.OK, signedIn.StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/me")).StatusCode);
            return client;
        }

        // The password is reset (say, after the laptop was lost): the old session ends, the new password opens a new one.
        using var stolen = await SignedIn("first-password-1");
        using var bystander = await SignedIn("first-password-1");
        // The thief made a token with the stolen session: the reset ends it too.
        var (_, token) = await stolen.PostJson("/api/me/tokens", new { name = "kept", expiresInDays = 365 });
        using var byToken = new HttpClient { BaseAddress = server.BaseAddress };
        byToken.DefaultRequestHeaders.Authorization = new("Bearer", token.GetProperty("token").GetString());
        Assert.Equal(HttpStatusCode.OK, (await byToken.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { password = "second-password-2" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stolen.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await bystander.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await byToken.GetAsync("/api/me")).StatusCode);
        using var renewed = await SignedIn("second-password-2");

        // Disabled and enabled again: the sessions from before the disable stay ended.
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await renewed.GetAsync("/api/me")).StatusCode);
        using var again = await SignedIn("second-password-2");

        // Other changes (a display name) end nothing.
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { displayName = "Officer Renamed" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await again.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task Member_administration_does_what_it_is_asked_or_names_what_it_refuses()
    {
        var name = "p" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        async Task<HttpStatusCode> SignInAsync()
        {
            server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
            return (await server.Anonymous().PostJson("/api/auth/signin", new { userName = name, password = "first-password-1" })).Response.StatusCode;
        }

        // An account prepared disabled for someone not yet arrived: created so (it was created enabled, the field ignored).
        var (created, member) = await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "first-password-1", clearance = "UNCLASSIFIED", disabled = true });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.True(member.GetProperty("disabled").GetBoolean());
        Assert.Equal(HttpStatusCode.Unauthorized, await SignInAsync());
        // The attempt on the disabled account is audited (it was answered as a name nobody has, and left no trace), with
        // whether its password was right: someone holds the password of an account that should not be used.
        var memberId = member.GetProperty("id").GetGuid();
        string? attempt = null;
        for (var i = 0; i < 100 && attempt is null; i++, await Task.Delay(50))
        {
            attempt = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == memberId && a.Action == Audit.AuditActions.SignInFailed).Select(a => a.Detail).FirstOrDefaultAsync());
        }

        Assert.NotNull(attempt);
        Assert.Contains("\"disabled\":true", attempt, StringComparison.Ordinal);
        Assert.Contains("\"passwordRight\":true", attempt, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, await SignInAsync());

        // A user name is not changed: refused by its field (it answered 200 and changed nothing); the same name passes.
        var renamed = await admin.PatchAsJsonAsync($"/api/members/{name}", new { userName = name + "x", displayName = "Officer Three" });
        Assert.Equal(HttpStatusCode.BadRequest, renamed.StatusCode);
        Assert.Equal(["userName"], (await renamed.Json()).ErrorFields());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { userName = name.ToUpperInvariant(), displayName = "Officer Three" })).StatusCode);

        // A sign-in without both fields names both.
        var (empty, problem) = await server.Anonymous().PostJson("/api/auth/signin", new { });
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        Assert.Equal(["password", "userName"], problem.ErrorFields().Order());
    }

    [Fact]
    public async Task A_sign_in_that_overlaps_a_password_reset_gets_no_session_that_outlives_it()
    {
        var name = "r" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        var (created, _) = await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "first-password-1", clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        // Someone holding the old password signs in over and over on three connections while the password is reset: each
        // sign-in's password check (a tenth of a second of key stretching) is a window the reset can land in.
        var sessions = new System.Collections.Concurrent.ConcurrentBag<HttpClient>();
        using var stop = new CancellationTokenSource();
        async Task SignInsAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                var client = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };
                var (response, _) = await client.PostJson("/api/auth/signin", new { userName = name, password = "first-password-1" });
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    sessions.Add(client);
                    continue;
                }

                client.Dispose();
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    return;
                }
            }
        }

        try
        {
            var loops = Enumerable.Range(0, 3).Select(_ => Task.Run(SignInsAsync)).ToList();
            await Task.Delay(500);
            Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { password = "second-password-2" })).StatusCode);
            await Task.Delay(300);
            await stop.CancelAsync();
            await Task.WhenAll(loops);

            // Every session signed in with the old password ended with the reset, however its sign-in overlapped it.
            Assert.NotEmpty(sessions);
            foreach (var session in sessions)
            {
                Assert.Equal(HttpStatusCode.Unauthorized, (await session.GetAsync("/api/me")).StatusCode);
            }
        }
        finally
        {
            foreach (var session in sessions)
            {
                session.Dispose();
            }

            // The old password's failures after the reset count against the loopback address every test signs in from.
            server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        }
    }

    [Fact]
    public async Task A_page_told_of_a_change_to_its_member_reads_it_with_what_the_member_holds_now()
    {
        // The request that lowers a clearance commits before it forgets the viewers it cached; the live feed, woken by the
        // commit, must not let a page re-read with the old clearance (the page would keep what it no longer reaches).
        var name = "l" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "CONFIDENTIAL" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var memberId = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == name).Select(m => m.Id).SingleAsync());
        var viewers = server.Services.GetRequiredService<Access.ViewerDirectory>();
        Assert.Equal(1, (await viewers.ForMemberAsync(memberId, CancellationToken.None))!.Clearance);

        var reread = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var page = server.Services.GetRequiredService<Realtime.LiveFeed>().Subscribe(memberId, changes =>
        {
            // The member's creation may reach the feed after this subscription (it reads at most every 200 ms): only the
            // update counts.
            if (changes.Any(c => c.Entity == "member" && c.Id == memberId && c.Operation == "updated"))
            {
                _ = Task.Run(async () => reread.TrySetResult((await viewers.ForMemberAsync(memberId, CancellationToken.None))!.Clearance));
            }
        });

        // Committed, and nothing forgotten yet (as in the moment before the request does).
        await server.WithDbAsync(async db =>
        {
            var member = await db.Members.SingleAsync(m => m.Id == memberId);
            member.Clearance = 0;
            return await db.SaveChangesAsync();
        });
        Assert.Equal(0, await reread.Task.WaitAsync(TimeSpan.FromSeconds(15)));
    }

    [Fact]
    public async Task A_disabled_members_open_pages_are_told_to_read_again_and_then_hear_no_more()
    {
        var name = "d" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var memberId = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == name).Select(m => m.Id).SingleAsync());
        var told = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        using var page = server.Services.GetRequiredService<Realtime.LiveFeed>().Subscribe(memberId, changes =>
        {
            Interlocked.Increment(ref calls);
            // The member's creation may reach the feed after this subscription: only the disable's update is the telling.
            if (changes.Any(c => c.Entity == "member" && c.Id == memberId && c.Operation == "updated"))
            {
                told.TrySetResult();
            }
        });

        // A page in a server circuit re-reads (and finds it may show nothing) only when told; the feed told a disabled
        // member's pages nothing, so they kept their rows.
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("unpoladmin").PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        // The feed may hold back behind a write another test rolled back, for at most its grace.
        await told.Task.WaitAsync(Data.ChangeWindows.GapGrace + TimeSpan.FromSeconds(15));
        var after = calls;
        var (more, _) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, more.StatusCode);
        await Task.Delay(1500);
        Assert.Equal(after, calls);
    }

    [Fact]
    public async Task Failed_sign_ins_are_rate_limited_and_do_not_say_which_names_exist()
    {
        var client = server.Anonymous();

        var (unknown, unknownProblem) = await client.PostJson("/api/auth/signin", new { userName = "nobody", password = "wrong-password" });
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 6; i++)
        {
            last = await client.PostAsJsonAsync("/api/auth/signin", new { userName = "pref", password = "wrong-password" });
            statuses.Add(last.StatusCode);
        }

        var (wrong, wrongProblem) = (statuses[0], unknownProblem);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong);
        Assert.Equal(unknownProblem.GetProperty("detail").GetString(), wrongProblem.GetProperty("detail").GetString());
        // Five failures of one name from one address: the sixth try is refused (the unknown name counts apart).
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
        Assert.True(last!.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        var (locked, _) = await client.PostJson("/api/auth/signin", new { userName = "pref", password = TestServer.Password });
        Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
    }

    [Fact]
    public async Task A_browser_the_member_signed_in_from_is_not_locked_out_by_wrong_passwords_from_its_address()
    {
        // On a mission network many organisations share one router: anyone there typing wrong passwords for a member's name
        // would lock the member out where they work. The browser the member signed in from keeps signing in; only its own
        // mistakes count against it.
        var name = "d" + Guid.NewGuid().ToString("N")[..8];
        var (created, body) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/OCHA/members", new { userName = name, password = TestServer.Password, roles = new[] { "reporter" } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        var cookies = new CookieContainer();
        using var desk = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await desk.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);
        Assert.Contains(cookies.GetCookies(server.BaseAddress).Cast<Cookie>(), c => c.Name == Accounts.SignInDevices.CookieName && c.HttpOnly);

        using var someoneElse = server.Anonymous();
        for (var i = 0; i < Accounts.SignInThrottle.PairLimit; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await someoneElse.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = "wrong-password" })).StatusCode);
        }

        using var newBrowser = server.Anonymous();
        using var madeUp = server.Anonymous();
        madeUp.DefaultRequestHeaders.Add("Cookie", Accounts.SignInDevices.CookieName + "=CfDJ8made-up");
        Assert.Equal(HttpStatusCode.TooManyRequests, (await newBrowser.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await madeUp.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await desk.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);

        // The device's own mistakes do count: five, and it waits as any browser would.
        for (var i = 0; i < Accounts.SignInThrottle.PairLimit; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await desk.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = "mistyped-password" })).StatusCode);
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, (await desk.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
    }

    [Fact]
    public async Task A_browser_keeps_no_sign_in_guesses_of_its_own_past_a_password_reset()
    {
        // Someone signed in once from a browser (a laptop since stolen, an intruder who knew the old password); the member's
        // password is reset. That browser is a stranger again: the wrong passwords typed from its address hold it back as
        // they hold any other browser there.
        var name = "d" + Guid.NewGuid().ToString("N")[..8];
        // Signed in before the guesses (a sign-in through the test server clears the limits).
        using var admin = await server.SignedInAsync("jocadmin");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/organizations/OCHA/members", new { userName = name, password = TestServer.Password })).Response.StatusCode);
        using var laptop = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await laptop.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = TestServer.Password })).StatusCode);
        using var someoneElse = server.Anonymous();
        for (var i = 0; i < Accounts.SignInThrottle.PairLimit; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await someoneElse.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = "wrong-password" })).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { password = "the-new-password-2" })).StatusCode);

        Assert.Equal(HttpStatusCode.TooManyRequests, (await laptop.PostAsJsonAsync("/api/auth/signin", new { userName = name, password = "the-new-password-2" })).StatusCode);
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
    }

    [Fact]
    public async Task Sign_in_requires_both_fields()
    {
        var (response, problem) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = "force" });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(["password"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_session_cookie_makes_changes_only_from_concords_own_origin()
    {
        // A page of another origin on the same site gets the SameSite=Strict cookie too: its form or bodiless post would
        // sign the analyst out, or file a report in their name. The browser says where the request came from.
        var browser = await server.SignedInAsync("force");
        foreach (var site in new[] { "same-site", "cross-site" })
        {
            using var signOut = new HttpRequestMessage(HttpMethod.Post, "/api/auth/signout");
            signOut.Headers.Add("Sec-Fetch-Site", site);
            Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(signOut)).StatusCode);
            using var report = new HttpRequestMessage(HttpMethod.Post, "/api/reports") { Content = JsonContent.Create(Api.Report(narrative: "filed from elsewhere " + site)) };
            report.Headers.Add("Sec-Fetch-Site", site);
            Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(report)).StatusCode);
        }

        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.Narrative.StartsWith("filed from elsewhere"))));
        // Nor reads: an image or a frame of another origin's page would make an export, or a read of a page, audited in
        // the member's name. A page opened by a link from there is read as the member asked.
        var exports = await server.WithDbAsync(db => db.Audit.CountAsync(a => a.Action == "export"));
        // Nor a navigation a script made without the member's gesture, nor a prefetch.
        foreach (var (path, mode, dest, extra) in new[] { ("/api/exports/reports.csv?audience=public", "no-cors", "image", ""), ("/api/me", "cors", "empty", ""),
            ("/api/exports/reports.csv?audience=public", "navigate", "document", "Sec-Fetch-User"), ("/incidents", "navigate", "iframe", "Sec-Fetch-User"),
            ("/incidents", "navigate", "document", ""), ("/incidents", "navigate", "document", "Sec-Purpose") })
        {
            using var read = new HttpRequestMessage(HttpMethod.Get, path);
            read.Headers.Add("Sec-Fetch-Site", "same-site");
            read.Headers.Add("Sec-Fetch-Mode", mode);
            read.Headers.Add("Sec-Fetch-Dest", dest);
            if (extra.Length > 0)
            {
                read.Headers.Add("Sec-Fetch-User", "?1");
            }

            if (extra == "Sec-Purpose")
            {
                read.Headers.Add("Sec-Purpose", "prefetch;prerender");
            }

            Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(read)).StatusCode);
        }

        Assert.Equal(exports, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.Action == "export")));
        using var link = new HttpRequestMessage(HttpMethod.Get, "/incidents");
        link.Headers.Add("Sec-Fetch-Site", "same-site");
        link.Headers.Add("Sec-Fetch-Mode", "navigate");
        link.Headers.Add("Sec-Fetch-Dest", "document");
        link.Headers.Add("Sec-Fetch-User", "?1");
        Assert.Equal(HttpStatusCode.OK, (await browser.SendAsync(link)).StatusCode);
        using var ownRead = new HttpRequestMessage(HttpMethod.Get, "/api/exports/reports.csv?audience=public");
        ownRead.Headers.Add("Sec-Fetch-Site", "same-origin");
        Assert.Equal(HttpStatusCode.OK, (await browser.SendAsync(ownRead)).StatusCode);
        // The live hub, whatever the method: a socket opened from another origin (no same-origin policy holds a WebSocket)
        // would read the member's stream of changes.
        // So are the live pages' own sockets (the incident list, the dashboard): a circuit opened from another origin would
        // render the member's rows to it.
        foreach (var (method, path) in new[] { (HttpMethod.Post, "/hubs/live/negotiate?negotiateVersion=1"), (HttpMethod.Get, "/hubs/live"),
            (HttpMethod.Post, "/_blazor/negotiate?negotiateVersion=1"), (HttpMethod.Get, "/_blazor") })
        {
            using var hub = new HttpRequestMessage(method, path);
            hub.Headers.Add("Sec-Fetch-Site", "same-site");
            Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(hub)).StatusCode);
        }

        // A browser that does not say where a request comes from (no Sec-Fetch-Site) still names its origin on a
        // cross-origin post or socket: another host is refused, this one is not.
        using var unsaid = new HttpRequestMessage(HttpMethod.Post, "/api/reports") { Content = JsonContent.Create(Api.Report(narrative: "filed from elsewhere, unsaid")) };
        unsaid.Headers.Add("Origin", "https://wiki.mission.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(unsaid)).StatusCode);
        using var unsaidHub = new HttpRequestMessage(HttpMethod.Get, "/hubs/live");
        unsaidHub.Headers.Add("Origin", "null");
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(unsaidHub)).StatusCode);
        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.Narrative.StartsWith("filed from elsewhere"))));
        using var ownOrigin = new HttpRequestMessage(HttpMethod.Post, "/hubs/live/negotiate?negotiateVersion=1");
        ownOrigin.Headers.Add("Origin", server.BaseAddress.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.OK, (await browser.SendAsync(ownOrigin)).StatusCode);

        using var ownHub = new HttpRequestMessage(HttpMethod.Post, "/hubs/live/negotiate?negotiateVersion=1");
        ownHub.Headers.Add("Sec-Fetch-Site", "same-origin");
        Assert.Equal(HttpStatusCode.OK, (await browser.SendAsync(ownHub)).StatusCode);
        using var ownCircuit = new HttpRequestMessage(HttpMethod.Post, "/_blazor/negotiate?negotiateVersion=1");
        ownCircuit.Headers.Add("Sec-Fetch-Site", "same-origin");
        Assert.Equal(HttpStatusCode.OK, (await browser.SendAsync(ownCircuit)).StatusCode);
        using var own = new HttpRequestMessage(HttpMethod.Post, "/api/auth/signout");
        own.Headers.Add("Sec-Fetch-Site", "same-origin");
        Assert.Equal(HttpStatusCode.NoContent, (await browser.SendAsync(own)).StatusCode);
    }

    [Fact]
    public async Task A_display_name_of_spaces_and_a_fraction_of_days_are_refused_with_their_reason()
    {
        var name = "d" + Guid.NewGuid().ToString("N")[..8];
        var (spaces, problem) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/FORCE/members",
            new { userName = name, displayName = "   ", password = "a-long-password", roles = new[] { "reporter" }, clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.BadRequest, spaces.StatusCode);
        Assert.Equal(["displayName"], problem.ErrorFields());
        Assert.False(await server.WithDbAsync(db => db.Members.AnyAsync(m => m.UserName == name)));

        var owner = await server.SignedInAsync("joc");
        var (fraction, days) = await owner.PostJson("/api/me/tokens", new { name = "half a day", expiresInDays = 1.5 });
        Assert.Equal(HttpStatusCode.BadRequest, fraction.StatusCode);
        Assert.Contains("must be a whole number", days.GetProperty("errors").GetProperty("expiresInDays")[0].GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_member_holds_at_most_fifty_tokens_at_once()
    {
        // Each token is a row, an audit entry and a change, and a disable or a reset revokes them all in one transaction: a
        // stolen session making tokens in a loop would make the answer to the compromise slow, or fail it.
        var name = "t" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/FORCE/members",
            new { userName = name, password = TestServer.Password, roles = new[] { "reporter" }, clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var owner = await server.SignedInAsync(name);
        var ids = new List<Guid>();
        for (var i = 0; i < Accounts.AccountEndpoints.MaxActiveTokens; i++)
        {
            var (made, token) = await owner.PostJson("/api/me/tokens", new { name = $"display {i}", expiresInDays = 1 });
            Assert.Equal(HttpStatusCode.Created, made.StatusCode);
            ids.Add(token.GetProperty("id").GetGuid());
        }

        var (refused, problem) = await owner.PostJson("/api/me/tokens", new { name = "one more", expiresInDays = 1 });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal(["name"], problem.ErrorFields());
        Assert.Contains("revoke one", problem.GetProperty("errors").GetProperty("name")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(Accounts.AccountEndpoints.MaxActiveTokens, await server.WithDbAsync(db => db.AccessTokens.CountAsync(t => t.Name.StartsWith("display ") && db.Members.Any(m => m.Id == t.MemberId && m.UserName == name))));

        // A revoked one makes room.
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/me/tokens/{ids[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await owner.PostJson("/api/me/tokens", new { name = "one more", expiresInDays = 1 })).Response.StatusCode);
    }

    [Fact]
    public async Task A_token_revoked_twice_at_once_is_revoked_and_audited_once()
    {
        // A double click, or two tabs: both requests read the token unrevoked, and both wrote an entry, the second moving
        // the revocation time away from the first entry's.
        var owner = await server.SignedInAsync("joc");
        var (_, token) = await owner.PostJson("/api/me/tokens", new { name = "double click", expiresInDays = 1 });
        var id = token.GetProperty("id").GetGuid();
        var release = new TaskCompletionSource();
        var held = await server.HoldAuditWriterAsync(release.Task, _ => Task.CompletedTask);
        var first = owner.DeleteAsync($"/api/me/tokens/{id}");
        var second = owner.DeleteAsync($"/api/me/tokens/{id}");
        await Task.Delay(TimeSpan.FromSeconds(1));
        release.SetResult();
        await held;
        Assert.Equal(HttpStatusCode.NoContent, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await second).StatusCode);
        var entries = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.EntityId == id && a.Action == Audit.AuditActions.Update).ToListAsync());
        var entry = Assert.Single(entries);
        var revokedAt = await server.WithDbAsync(db => db.AccessTokens.Where(t => t.Id == id).Select(t => t.RevokedAt).SingleAsync());
        Assert.Equal(revokedAt, System.Text.Json.JsonDocument.Parse(entry.Detail).RootElement.GetProperty("revokedAt").GetDateTime());
    }

    [Fact]
    public async Task Making_and_revoking_a_token_is_audited_without_its_secret()
    {
        var owner = await server.SignedInAsync("joc");
        var (_, token) = await owner.PostJson("/api/me/tokens", new { name = "audited display", expiresInDays = 30 });
        var id = token.GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/me/tokens/{id}")).StatusCode);
        // Revoked again: nothing changes, and nothing more is recorded.
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/me/tokens/{id}")).StatusCode);

        var (_, audit) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={id}");
        var entries = audit.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["create", "update"], entries.Select(e => e.GetProperty("action").GetString()).Order());
        Assert.All(entries, e => Assert.Equal(("joc", "token"), (e.GetProperty("actor").GetString(), e.GetProperty("entity").GetString())));
        Assert.All(entries, e => Assert.DoesNotContain(token.GetProperty("token").GetString()!, e.ToString(), StringComparison.Ordinal));
        Assert.Contains(entries, e => e.GetProperty("detail").ToString().Contains("audited display", StringComparison.Ordinal));
    }

    /// <summary>A new UNPOL member (password "a-long-password"), with the sign-in limits cleared.</summary>
    private async Task<(string Name, Guid Id)> NewUnpolMemberAsync(string prefix)
    {
        var name = prefix + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var memberId = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == name).Select(m => m.Id).SingleAsync());
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        return (name, memberId);
    }

    [Fact]
    public async Task Sign_ins_failed_sign_ins_and_sign_outs_are_audited_with_the_address()
    {
        var (name, memberId) = await NewUnpolMemberAsync("s");
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };

        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.PostJson("/api/auth/signin", new { userName = name, password = "not-the-password" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.PostJson("/api/auth/signin", new { userName = name, password = "a-long-password" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);

        // The failed attempt is recorded once its answer has gone (its time must not tell a member's name from nobody's).
        List<System.Text.Json.JsonElement> entries = [];
        for (var i = 0; i < 50 && entries.Count < 3; i++)
        {
            await Task.Delay(i == 0 ? 0 : 100);
            var (_, audit) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={memberId}");
            entries = [.. audit.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("action").GetString()!.StartsWith("sign-", StringComparison.Ordinal))
                .OrderBy(e => e.GetProperty("index").GetInt64())];
        }

        Assert.Equal(["sign-in-failed", "sign-in", "sign-out"], entries.Select(e => e.GetProperty("action").GetString()));
        // A failed attempt is nobody's act (the name is in the detail); the sign-in and the sign-out are the member's.
        Assert.Equal(["system", name, name], entries.Select(e => e.GetProperty("actor").GetString()));
        Assert.All(entries, e => Assert.Equal("member", e.GetProperty("entity").GetString()));
        Assert.All(entries, e => Assert.Contains("127.0.0.1", e.GetProperty("detail").ToString(), StringComparison.Ordinal));
        Assert.DoesNotContain(entries, e => e.ToString().Contains("password", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task The_audit_of_a_failed_sign_in_does_not_hold_up_the_next_request_on_the_connection()
    {
        // The server reads the next request on a kept-alive connection only once the answer's completion callbacks have run.
        // The failed sign-in's audit write (for a member's name only) ran there and was waited for: a request sent after it
        // on the same connection was answered later for a member's name than for nobody's. Here the store holds its writers
        // back (another transaction holds the write lock): the next request must be answered meanwhile.
        var (name, memberId) = await NewUnpolMemberAsync("k");
        using var client = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health")).StatusCode);

        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var sqlite = await server.WithDbAsync(db => Task.FromResult(db.Database.IsSqlite()));
        await using System.Data.Common.DbConnection blocker = sqlite ? new Microsoft.Data.Sqlite.SqliteConnection(connection) : new Npgsql.NpgsqlConnection(connection);
        await blocker.OpenAsync();
        await using var hold = await blocker.BeginTransactionAsync();
        await using (var command = blocker.CreateCommand())
        {
            command.Transaction = hold;
            // SQLite: take the write lock (an insert, rolled back); PostgreSQL: the audit table, which the chain reads and appends to.
            command.CommandText = sqlite ? "INSERT INTO settings (key, value) VALUES ('blocker', 'x')" : "LOCK TABLE audit IN ACCESS EXCLUSIVE MODE";
            await command.ExecuteNonQueryAsync();
        }

        Task<HttpResponseMessage> next;
        try
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostJson("/api/auth/signin", new { userName = name, password = "not-the-password" })).Response.StatusCode);
            next = client.GetAsync("/health");
            Assert.Same(next, await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(10))));
        }
        finally
        {
            await hold.RollbackAsync();
        }

        Assert.Equal(HttpStatusCode.OK, (await next).StatusCode);
        // Recorded once the store lets it.
        for (var i = 0; i < 100 && !await server.WithDbAsync(db => db.Audit.AnyAsync(a => a.EntityId == memberId && a.Action == Audit.AuditActions.SignInFailed)); i++)
        {
            await Task.Delay(100);
        }

        Assert.True(await server.WithDbAsync(db => db.Audit.AnyAsync(a => a.EntityId == memberId && a.Action == Audit.AuditActions.SignInFailed)));
    }

    [Fact]
    public async Task A_failed_sign_in_is_recorded_once_the_audit_can_be_written_again_after_an_outage_of_seconds()
    {
        // The store refuses every audit entry (a full disk, a failover) for longer than the writer's tries take (4.25 s):
        // a wrong password meanwhile is answered, and its entry, which nobody waits for, is written once the store is back.
        var (name, memberId) = await NewUnpolMemberAsync("o");
        await using (await AuditDownAsync())
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await server.Anonymous().PostJson("/api/auth/signin", new { userName = name, password = "not-the-password" })).Response.StatusCode);
            await Task.Delay(TimeSpan.FromSeconds(6));
        }

        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!await server.WithDbAsync(db => db.Audit.AnyAsync(a => a.EntityId == memberId && a.Action == Audit.AuditActions.SignInFailed)))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(40), "the failed sign-in was never recorded once the audit could be written again");
            await Task.Delay(200);
        }

        // The chain is whole: every entry written before, during and after the outage links to the one before.
        var verified = await server.WithDbAsync(db => Audit.AuditVerifier.VerifyAsync(db, CancellationToken.None));
        Assert.True(verified.Intact, verified.Problem);
    }

    [Fact]
    public async Task While_the_audit_cannot_be_written_health_says_so_and_a_read_it_fails_is_a_503_on_postgres()
    {
        using var anyone = server.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await anyone.GetAsync("/health")).StatusCode);
        var (_, report) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])));
        HttpResponseMessage read, health;
        await using (await AuditDownAsync())
        {
            // The read is audited before it is answered: it fails once the writer's tries are over (4.25 s).
            read = await server.ClientFor("joc").GetAsync($"/api/reports/{report.GetProperty("id").GetGuid()}");
            health = await anyone.GetAsync("/health");
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Equal("the audit log cannot be written", (await health.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("problem").GetString());
        Assert.NotNull(health.Headers.RetryAfter);
        if (!await server.WithDbAsync(db => Task.FromResult(db.Database.IsSqlite())))
        {
            // PostgreSQL says the disk is full (SQLite's trigger can only say a constraint failed, which is not an outage).
            Assert.Equal(HttpStatusCode.ServiceUnavailable, read.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(5), read.Headers.RetryAfter?.Delta);
        }
        else
        {
            Assert.Equal(HttpStatusCode.InternalServerError, read.StatusCode);
        }

        // Back: the next audited read is written, and the server says it can serve.
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/reports/{report.GetProperty("id").GetGuid()}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anyone.GetAsync("/health")).StatusCode);
    }

    /// <summary>Makes the store refuse every audit entry (a full disk) until the result is disposed.</summary>
    private Task<IAsyncDisposable> AuditDownAsync() => server.RefuseAsync("audit_down", "INSERT ON audit", message: "database or disk is full",
        postgresRaise: "RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'could not extend file: No space left on device'");

    [Fact]
    public async Task A_live_connection_opened_with_a_token_is_closed_once_the_token_is_revoked()
    {
        var owner = await server.SignedInAsync("joc");
        var (_, token) = await owner.PostJson("/api/me/tokens", new { name = "wall display", expiresInDays = 30 });
        var (live, changes, closed) = await server.OpenLiveAsync(o => o.Headers["Authorization"] = "Bearer " + token.GetProperty("token").GetString());
        await using var _ = live;

        var (_, before) = await owner.PostJson("/api/reports", Api.Report(narrative: "seen live"));
        var beforeId = before.GetProperty("id").GetGuid();
        for (var i = 0; i < 150 && !changes.Contains(beforeId); i++)
        {
            await Task.Delay(100);
        }

        Assert.Contains(beforeId, changes);
        Assert.Equal(HttpStatusCode.NoContent, (await owner.DeleteAsync($"/api/me/tokens/{token.GetProperty("id").GetGuid()}")).StatusCode);
        var (_, after) = await owner.PostJson("/api/reports", Api.Report(narrative: "after the revocation"));

        await closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(after.GetProperty("id").GetGuid(), changes);
    }

    [Fact]
    public async Task A_live_connection_of_a_session_is_closed_once_a_new_password_ends_the_session()
    {
        var name = "l" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "first-password-1", clearance = "UNCLASSIFIED", roles = new[] { "reporter" } })).Response.StatusCode);
        await LiveSessionEndsAsync(name, "first-password-1", async _ =>
            Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { password = "second-password-2" })).StatusCode));
    }

    [Fact]
    public async Task A_cached_token_lasts_no_longer_than_the_token()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var directory = new Access.ViewerDirectory(server.Services.GetRequiredService<IServiceScopeFactory>(), clock);
        var owner = await server.SignedInAsync("ocha");
        var (_, token) = await owner.PostJson("/api/me/tokens", new { name = "short", expiresInDays = 1 });
        var hash = Accounts.AccessTokens.HashSecret(token.GetProperty("token").GetString()!);

        // One second before it expires the token is good (and cached); two seconds later it is not, cache or no cache.
        clock.SetUtcNow(token.GetProperty("expiresAt").GetDateTimeOffset().AddSeconds(-1));
        Assert.NotNull(await directory.ForTokenHashAsync(hash, CancellationToken.None));
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(await directory.ForTokenHashAsync(hash, CancellationToken.None));
    }

    [Fact]
    public async Task A_personal_access_token_works_until_it_is_revoked()
    {
        var owner = await server.SignedInAsync("ocha");
        var (created, token) = await owner.PostJson("/api/me/tokens", new { name = "sync script", expiresInDays = 30 });
        var secret = token.GetProperty("token").GetString()!;
        var client = server.Anonymous();
        client.DefaultRequestHeaders.Authorization = new("Bearer", secret);

        var before = await client.GetAsync("/api/me");
        var revoked = await owner.DeleteAsync($"/api/me/tokens/{token.GetProperty("id").GetGuid()}");
        var after = await client.GetAsync("/api/me");
        var (_, list) = await owner.GetJson("/api/me/tokens");

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.StartsWith("cnc_", secret);
        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Contains(list.EnumerateArray(), t => t.GetProperty("name").GetString() == "sync script" && t.TryGetProperty("revokedAt", out _));
        Assert.DoesNotContain(secret, list.ToString());
    }

    [Fact]
    public async Task A_token_makes_no_tokens_and_odd_names_get_clear_answers()
    {
        // A stolen token must not mint a longer-lived one.
        var (refused, problem) = await server.ClientFor("ocha").PostJson("/api/me/tokens", new { name = "longer", expiresInDays = 365 });
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("signed in with their password", problem.GetProperty("detail").GetString());

        var session = await server.SignedInAsync("ocha");
        var (badName, nameProblem) = await session.PostJson("/api/me/tokens", new { name = "sync\u0000script" });
        Assert.Equal(HttpStatusCode.BadRequest, badName.StatusCode);
        Assert.Equal(["name"], nameProblem.ErrorFields());

        // A name no member can have is a wrong name, not a failure of the store (PostgreSQL refuses a NUL in text).
        var (odd, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = "a\u0000b", password = "wrong-password" });
        Assert.Equal(HttpStatusCode.Unauthorized, odd.StatusCode);
    }

    [Fact]
    public async Task A_session_another_node_ended_makes_no_token_and_a_new_sign_in_carries_the_stores_session()
    {
        var name = "s" + Guid.NewGuid().ToString("N")[..8];
        var (created, body) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/OCHA/members", new { userName = name, password = TestServer.Password, roles = new[] { "reporter" } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        var stolen = await server.SignedInAsync(name);
        Assert.Equal(HttpStatusCode.OK, (await stolen.GetAsync("/api/me")).StatusCode);
        // A token the session made a moment before the reset (which revokes the tokens it finds: this one may come just after).
        var (made, madeToken) = await stolen.PostJson("/api/me/tokens", new { name = "just-before", expiresInDays = 365 });
        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        using var withToken = server.Anonymous();
        withToken.DefaultRequestHeaders.Authorization = new("Bearer", madeToken.GetProperty("token").GetString());
        Assert.Equal(HttpStatusCode.OK, (await withToken.GetAsync("/api/me")).StatusCode);

        // Another node resets the password: the store's session version moves on; this node's cache still holds the old one.
        await server.WithDbAsync(db => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.SessionVersion, m => m.SessionVersion + 1)));
        var (refused, problem) = await stolen.PostJson("/api/me/tokens", new { name = "escape", expiresInDays = 365 });
        Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, problem.ToString());
        Assert.Empty(await server.WithDbAsync(db => db.AccessTokens.Where(t => t.Name == "escape").Join(db.Members.Where(m => m.UserName == name), t => t.MemberId, m => m.Id, (t, m) => t).ToListAsync()));

        // Signing in again within the cache's lifetime stamps the store's version: the new cookie survives the cache's refresh.
        var again = await server.SignedInAsync(name);
        server.Services.GetRequiredService<ViewerDirectory>().Invalidate();
        Assert.Equal(HttpStatusCode.OK, (await again.GetAsync("/api/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stolen.GetAsync("/api/me")).StatusCode);
        // The token was made under the session version the reset ended: it ends with it, revoked or not.
        Assert.Equal(HttpStatusCode.Unauthorized, (await withToken.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task No_member_may_be_named_as_the_audit_names_the_system()
    {
        var (refused, problem) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/OCHA/members", new { userName = "System", password = TestServer.Password });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["userName"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_change_to_a_member_that_races_a_change_of_what_the_member_holds_is_refused()
    {
        // An administrator may change only members who hold no more than they do, judged on the member as the request
        // read it: a password reset read before a mission administrator raised the member (or reset it first) must not
        // be stored over the member as it is now.
        var name = "r" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        foreach (var raise in new Func<Data.ConcordDb, Task<int>>[]
        {
            db => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.Clearance, m => m.Clearance + 1)),
            db => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.Roles, "reporter,mission-admin")),
            db => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.SessionVersion, m => m.SessionVersion + 1)),
        })
        {
            await using var scope = server.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<Data.ConcordDb>();
            var read = await db.Members.SingleAsync(m => m.UserName == name);
            var before = read.PasswordHash;
            Assert.Equal(1, await server.WithDbAsync(raise));

            read.SetPassword("taken-over-password");
            await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => db.SaveChangesAsync());
            Assert.Equal(before, await server.WithDbAsync(d => d.Members.Where(m => m.UserName == name).Select(m => m.PasswordHash).SingleAsync()));
        }
    }

    [Fact]
    public async Task An_administrator_demoted_disabled_or_reset_elsewhere_changes_nothing_while_this_node_still_knows_them_as_they_were()
    {
        // A change made with the CLI, or on another node, reaches this node's cache of members within seconds; an
        // administrator's request in between must not undo their own demotion or leave a foothold behind a disable.
        var target = "t" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(HttpStatusCode.Created, (await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = target, password = "a-long-password" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("unpoladmin").PatchAsJsonAsync($"/api/members/{target}", new { displayName = target })).StatusCode);
        // Its creation and change are found in the audit by the member's id, the change with its display name.
        var id = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == target).Select(m => m.Id).SingleAsync());
        var changes = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == id && a.Action == Audit.AuditActions.Administer).Select(a => a.Detail).ToListAsync());
        Assert.Equal(2, changes.Count);
        Assert.Contains(changes, d => d.Contains("\"displayName\":\"" + target, StringComparison.Ordinal) && d.Contains("updated", StringComparison.Ordinal));
        foreach (var (what, change) in new (string, Func<Data.ConcordDb, string, Task<int>>)[]
        {
            ("demoted", (db, name) => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.Roles, "reporter"))),
            ("disabled", (db, name) => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.Disabled, true))),
            ("reset", (db, name) => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.SessionVersion, m => m.SessionVersion + 1))),
            ("lowered", (db, name) => db.Members.Where(m => m.UserName == name).ExecuteUpdateAsync(u => u.SetProperty(m => m.Clearance, 0))),
        })
        {
            var (admin, client) = await NewOrganizationAdministratorAsync("a-long-password");
            using var _ = client;
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/me")).StatusCode);
            Assert.Equal(1, await server.WithDbAsync(db => change(db, admin)));

            var refused = await client.PatchAsJsonAsync($"/api/members/{target}", new { displayName = "Taken over " + what, password = "taken-over-password" });
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, what + ": " + await refused.Content.ReadAsStringAsync());
            Assert.Equal(target, await server.WithDbAsync(db => db.Members.Where(m => m.UserName == target).Select(m => m.DisplayName).SingleAsync()));

            // Refused, the request made this node read the administrator again: they are now judged as they are (a lowered
            // clearance still administers, up to that clearance).
            if (what == "lowered")
            {
                continue;
            }

            var foothold = "f" + Guid.NewGuid().ToString("N")[..8];
            var (again, _) = await client.PostJson("/api/organizations/UNPOL/members", new { userName = foothold, password = "a-long-password" });
            Assert.True(again.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized, what + ": " + again.StatusCode);
            Assert.False(await server.WithDbAsync(db => db.Members.AnyAsync(m => m.UserName == foothold)));
        }
    }

    [Fact]
    public async Task An_administrators_token_sets_no_password_so_a_leaked_one_is_no_lasting_account()
    {
        // A leaked token of an organisation administrator set its own member's password (or made an account with one), and
        // its holder signed in with it for good: revoking the token, or its expiry, no longer mattered.
        var (admin, session) = await NewOrganizationAdministratorAsync("first-password-1");
        using var _ = session;
        var (_, token) = await session.PostJson("/api/me/tokens", new { name = "provisioning script", expiresInDays = 1 });
        var leaked = server.Anonymous();
        leaked.DefaultRequestHeaders.Authorization = new("Bearer", token.GetProperty("token").GetString());

        var own = await leaked.PatchAsJsonAsync($"/api/members/{admin}", new { password = "taken-over-pass-1" });
        var ownProblem = await own.Json();
        var foothold = "f" + Guid.NewGuid().ToString("N")[..8];
        var (created, createdProblem) = await leaked.PostJson("/api/organizations/UNPOL/members", new { userName = foothold, password = "taken-over-pass-1", roles = new[] { "org-admin" } });
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = admin, password = "taken-over-pass-1" });

        Assert.Equal(HttpStatusCode.Forbidden, own.StatusCode);
        Assert.Equal(["password"], ownProblem.ErrorFields());
        Assert.Contains("signed in with their password", ownProblem.GetProperty("errors").GetProperty("password")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, created.StatusCode);
        Assert.Equal(["password"], createdProblem.ErrorFields());
        Assert.False(await server.WithDbAsync(db => db.Members.AnyAsync(m => m.UserName == foothold)));
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        // Without a password, the token is told the same, not that the password is too short (which sent it to give one).
        var (bare, bareProblem) = await leaked.PostJson("/api/organizations/UNPOL/members", new { userName = foothold, disabled = true });
        Assert.Equal(HttpStatusCode.Forbidden, bare.StatusCode);
        Assert.Contains("signed in with their password", bareProblem.GetProperty("errors").GetProperty("password")[0].GetString(), StringComparison.Ordinal);
        // The token still does what else an administrator does with one, and its member's own session sets passwords.
        Assert.Equal(HttpStatusCode.OK, (await leaked.PatchAsJsonAsync($"/api/members/{admin}", new { displayName = "Provisioning" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await session.PatchAsJsonAsync($"/api/members/{admin}", new { password = "second-password-2" })).StatusCode);
    }

    /// <summary>A new CONFIDENTIAL administrator of UNPOL, added by the mission's administrator, and a browser signed in as them.</summary>
    private async Task<(string Name, HttpClient Session)> NewOrganizationAdministratorAsync(string password)
    {
        var name = "a" + Guid.NewGuid().ToString("N")[..8];
        var (added, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/UNPOL/members",
            new { userName = name, password, roles = new[] { "org-admin" }, clearance = "CONFIDENTIAL" });
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        var session = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await session.PostJson("/api/auth/signin", new { userName = name, password })).Response.StatusCode);
        return (name, session);
    }

    [Fact]
    public async Task A_token_cannot_be_revoked_by_someone_else()
    {
        var (_, token) = await (await server.SignedInAsync("ocha")).PostJson("/api/me/tokens", new { name = "mine" });

        var response = await server.ClientFor("force").DeleteAsync($"/api/me/tokens/{token.GetProperty("id").GetGuid()}");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task A_sign_out_the_audit_cannot_record_does_not_happen()
    {
        // The session's end was committed on its own, then its audit entry refused: a 500, and the next sign-out found the
        // session ended already and recorded nothing, so the sign-out was never in the audit. Now both or neither.
        using var browser = await server.SignedInAsync("pref");
        async Task<int> SignOutsAsync() => await server.WithDbAsync(db => db.Audit.CountAsync(a => a.Action == Audit.AuditActions.SignOut && a.Actor == "pref"));
        async Task<int> EndedAsync() => await server.WithDbAsync(async db =>
        {
            var member = await db.Members.Where(m => m.UserName == "pref").Select(m => m.Id).SingleAsync();
            return await db.EndedSessions.CountAsync(e => e.MemberId == member);
        });
        var before = await SignOutsAsync();
        var ended = await EndedAsync();
        await using (await server.RefuseAsync("refuse_sign_out", "INSERT ON audit", when: "NEW.action = 'sign-out'"))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);
        }

        Assert.Equal(ended, await EndedAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/auth/signout", null)).StatusCode);
        Assert.Equal(before + 1, await SignOutsAsync());
    }
}

public sealed class AccountTests_Sqlite(SqliteServer server) : AccountTests<SqliteServer>(server);

public sealed class AccountTests_Postgres(PostgresServer server) : AccountTests<PostgresServer>(server);

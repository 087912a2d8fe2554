using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Concord.Server.Tests;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Concord.Browser.Tests;

/// <summary>The browser UI end to end, in Chromium, against a real server on each store.</summary>
public abstract class UiTests<TServer>(BrowserFixture<TServer> fixture) : IAsyncLifetime
    where TServer : TestServer, new()
{
    private string Store => fixture.Server.StoreName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => fixture.ClosePagesAsync();

    [Fact]
    public async Task A_live_dashboard_reads_itself_again_at_most_once_a_second_during_a_burst()
    {
        // During an import or a busy hour the feed tells of changes every fraction of a second: the dashboard does not read
        // the whole mission again for each (every page open would), but at most once a second, the last change included.
        var dashboard = await fixture.SignedInAsync("force", "/dashboard");
        await dashboard.WaitForSelectorAsync("#dashboard-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        var before = int.Parse((await dashboard.GetAttributeAsync("#dashboard-live", "data-loads"))!, System.Globalization.CultureInfo.InvariantCulture);
        using var api = fixture.Server.ClientFor("force");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 20; i++)
        {
            var place = Api.Spot();
            (await api.PostAsJsonAsync("/api/reports", Api.Report(latitude: place.Latitude, longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])))).EnsureSuccessStatusCode();
            await Task.Delay(100);
        }

        var burst = clock.Elapsed;
        await dashboard.WaitForFunctionAsync($"() => Number(document.querySelector('#dashboard-live').dataset.loads) > {before}");
        await Task.Delay(LiveReadSettle);
        var loads = int.Parse((await dashboard.GetAttributeAsync("#dashboard-live", "data-loads"))!, System.Globalization.CultureInfo.InvariantCulture) - before;
        Assert.True(loads <= Math.Ceiling(burst.TotalSeconds) + 2, $"{loads} reads for 20 changes over {burst.TotalSeconds:0.0} s");
    }

    /// <summary>Long enough for a live page's last read of a burst (at most a second after the one before) to be done.</summary>
    private static readonly TimeSpan LiveReadSettle = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task A_report_sent_through_the_form_appears_live_only_for_members_who_may_see_it()
    {
        // UNPOL reports at CONFIDENTIAL for the military and UNPOL. FORCE (military, CONFIDENTIAL) may see it;
        // RWABATT (military, UNCLASSIFIED) lacks the clearance; OCHA (humanitarian, CONFIDENTIAL) lacks the community.
        var reporter = await fixture.SignedInAsync("unpol", "/report");
        var observer = await fixture.SignedInAsync("force");
        var uncleared = await fixture.SignedInAsync("rwabatt");
        var outsider = await fixture.SignedInAsync("ocha");
        var unclearedDashboard = await fixture.SignedInAsync("rwabatt", "/dashboard");
        var unclearedList = await fixture.SignedInAsync("rwabatt", "/incidents");
        foreach (var map in new[] { observer, uncleared, outsider })
        {
            await map.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
            // Every map looks at the place of the report (whatever areas other tests gave the mission).
            var loads = await map.EvaluateAsync<int>("window.concordMap.loads");
            await map.EvaluateAsync("() => { window.concordMap.map.setView([6.98765, 19.18765], 8); }");
            await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        }

        await unclearedDashboard.WaitForSelectorAsync("#dashboard-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        var unclearedTotal = await unclearedDashboard.TextContentAsync("#total-incidents");
        var unclearedLoads = await unclearedDashboard.GetAttributeAsync("#dashboard-live", "data-loads");
        await observer.EvaluateAsync("window.__notReloaded = true");
        var reportId = await reporter.InputValueAsync("input[name='Input.Id']");
        var narrative = $"Exchange of fire near the market of Kaga-Bandoro ({Store} {reportId[..8]}).";
        await reporter.FillAsync("#r-lat", "6.98765");
        await reporter.FillAsync("#r-lon", "19.18765");
        await reporter.SelectOptionAsync("#r-category", "acled.battles.armed-clash");
        await reporter.FillAsync("#r-killed-civilian", "2");
        await reporter.FillAsync("#r-narrative", narrative);
        await reporter.SelectOptionAsync("#r-reliability", "B");
        await reporter.SelectOptionAsync("#r-credibility", "2");
        await reporter.CheckAsync("#r-marking-explicit");
        await reporter.SelectOptionAsync("#r-classification", "CONFIDENTIAL");
        await reporter.UncheckAsync("input[name='releasableTo'][value='mission']");
        await reporter.CheckAsync("input[name='releasableTo'][value='kind:military']");
        await reporter.CheckAsync("input[name='releasableTo'][value='org:UNPOL']");
        await Screenshots.ScreenshotAsync(reporter, $"{Store}-report-form");
        await reporter.ClickAsync("#report-submit");
        await reporter.WaitForSelectorAsync("#report-saved");
        var incidentId = (await reporter.GetAttributeAsync("#saved-incident", "href"))!.Split('/')[^1];

        // The observer's map shows it without a reload, pushed as ids and read back through the API.
        await observer.WaitForFunctionAsync($"() => window.concordMap.ids.includes('{incidentId}')");
        Assert.True(await observer.EvaluateAsync<bool>("window.__notReloaded === true"));
        Assert.True(await observer.EvaluateAsync<bool>($"Concord.received.includes('{reportId}') && Concord.received.includes('{incidentId}')"));
        await observer.ClickAsync($".sym[data-id='{incidentId}']");
        await observer.WaitForSelectorAsync($"#panel #incident-{incidentId}");
        Assert.Contains(narrative, await observer.TextContentAsync("#panel"));
        Assert.Contains("B2", await observer.TextContentAsync("#panel .grade"));
        Assert.StartsWith("CONFIDENTIAL", await observer.TextContentAsync("#banner-top"));
        Assert.StartsWith("CONFIDENTIAL", await observer.TextContentAsync("#banner-bottom"));
        await Screenshots.ScreenshotAsync(observer, $"{Store}-map-live-panel");

        // A live re-read of the open panel (its incident verified meanwhile) leaves the focus where the member types.
        await observer.FocusAsync("#f-q");
        using (var analyst = fixture.Server.ClientFor("force"))
        {
            Assert.Equal(HttpStatusCode.OK, (await analyst.PostAsJsonAsync($"/api/incidents/{incidentId}/status", new { status = "verified" })).StatusCode);
        }

        await observer.WaitForFunctionAsync("() => document.getElementById('panel').textContent.includes('Verified')");
        Assert.Equal("f-q", await observer.EvaluateAsync<string>("document.activeElement.id"));

        // The live feed has sent this change to everyone who may see it; give it a few more rounds for the others.
        await Task.Delay(1500);
        foreach (var (page, who) in new[] { (uncleared, "rwabatt"), (outsider, "ocha") })
        {
            var received = await page.EvaluateAsync<string[]>("Concord.received");
            Assert.DoesNotContain(reportId, received);
            Assert.DoesNotContain(incidentId, received);
            Assert.False(await page.EvaluateAsync<bool>($"window.concordMap.ids.includes('{incidentId}')"), who + "'s map");
            await page.ReloadAsync();
            await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
            var loads = await page.EvaluateAsync<int>("window.concordMap.loads");
            await page.EvaluateAsync("() => { window.concordMap.map.setView([6.98765, 19.18765], 8); }");
            await page.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
            Assert.False(await page.EvaluateAsync<bool>($"window.concordMap.ids.includes('{incidentId}')"), who + "'s map after reload");
            Assert.DoesNotContain(narrative, await page.ContentAsync());
        }

        // The live dashboard of the member who may not see it was never told: not recomputed, same figures.
        Assert.Equal(unclearedLoads, await unclearedDashboard.GetAttributeAsync("#dashboard-live", "data-loads"));
        Assert.Equal(unclearedTotal, await unclearedDashboard.TextContentAsync("#total-incidents"));
        Assert.DoesNotContain(incidentId, await unclearedList.ContentAsync());
        await unclearedList.ReloadAsync();
        Assert.DoesNotContain(incidentId, await unclearedList.ContentAsync());
        await unclearedDashboard.ReloadAsync();
        Assert.Equal(unclearedTotal, await unclearedDashboard.TextContentAsync("#total-incidents"));
        Assert.Equal((int)HttpStatusCode.NotFound, (await uncleared.GotoAsync("/incidents/" + incidentId))!.Status);

        // Those who may see it find it in the list and the dashboard too.
        var list = await fixture.SignedInAsync("force", "/incidents");
        Assert.Contains(incidentId, await list.ContentAsync());
        await Screenshots.ScreenshotAsync(list, $"{Store}-incident-list");
        var dashboard = await fixture.SignedInAsync("force", "/dashboard");
        Assert.True(int.Parse((await dashboard.TextContentAsync("#total-incidents"))!.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        await dashboard.WaitForFunctionAsync("() => document.querySelector('#chart-weekly').width > 0");
        await Screenshots.ScreenshotAsync(dashboard, $"{Store}-dashboard");

        // A "to" date is the whole of that day: today's report counts on a dashboard ending today.
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var todayOnly = await fixture.SignedInAsync("force", $"/dashboard?from={today}&to={today}");
        Assert.True(int.Parse((await todayOnly.TextContentAsync("#total-incidents"))!.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture) >= 1);
    }

    /// <summary>Force's map, live, over a place of its own (<see cref="Api.Spot"/>), marked to tell whether it reloads.</summary>
    private async Task<(IPage Map, (double Latitude, double Longitude) Place)> LiveMapAtSpotAsync()
    {
        var map = await fixture.SignedInAsync("force");
        await map.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        var place = Api.Spot();
        var loads = await map.EvaluateAsync<int>("window.concordMap.loads");
        await map.EvaluateAsync(FormattableString.Invariant($"() => {{ window.concordMap.map.setView([{place.Latitude}, {place.Longitude}], 9); }}"));
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        await map.EvaluateAsync("window.__notReloaded = true");
        return (map, place);
    }

    [Fact]
    public async Task A_map_whose_live_channel_dropped_shows_what_changed_meanwhile_once_it_is_back()
    {
        var (map, place) = await LiveMapAtSpotAsync();

        // The channel drops (a weak link, a server restart): what is committed meanwhile is pushed to nobody on this page.
        // The page tries again every three seconds; its tries are refused until the report is in (on a loaded machine the
        // report may take longer than that).
        const string Negotiate = "**/hubs/live/negotiate**";
        await map.RouteAsync(Negotiate, route => route.AbortAsync());
        await map.EvaluateAsync("Concord.connections[0].stop()");
        await map.WaitForSelectorAsync("#map[data-live='down']", new() { State = WaitForSelectorState.Attached });
        using var unpol = fixture.Server.ClientFor("unpol");
        var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(
            narrative: "Shots heard at the ferry crossing.", latitude: place.Latitude, longitude: place.Longitude,
            marking: Api.Marking("CONFIDENTIAL", ["kind:military", "org:UNPOL"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var incidentId = (await created.Json()).GetProperty("incidentId").GetString()!;
        Assert.False(await map.EvaluateAsync<bool>($"window.concordMap.ids.includes('{incidentId}')"));
        await map.UnrouteAsync(Negotiate);

        // It comes back by itself, and the map reads its view again: no pan, no reload.
        await map.WaitForSelectorAsync("#map[data-live='up']", new() { State = WaitForSelectorState.Attached, Timeout = 15000 });
        Assert.True(await map.EvaluateAsync<bool>($"window.concordMap.ids.includes('{incidentId}')"));
        Assert.True(await map.EvaluateAsync<bool>("window.__notReloaded === true"));
    }

    [Fact]
    public async Task A_cluster_says_its_marking_in_words_and_opens_with_the_keyboard()
    {
        // A country-wide view is all clusters: they opened on a click only, and said their marking by colour alone.
        using (var unpol = fixture.Server.ClientFor("unpol"))
        {
            foreach (var (lat, lon) in new[] { (5.1, 19.1), (5.2, 19.2), (7.1, 21.1) })
            {
                var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(narrative: "A cluster's member.", latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
                Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
            }
        }

        var page = await fixture.SignedInAsync("force");
        await page.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        await page.RouteAsync("**/api/incidents/map?**", route => route.ContinueAsync(new() { Url = route.Request.Url + "&maxPoints=1" }));
        await page.EvaluateAsync("() => { window.concordMap.map.setView([6.5, 20.5], 6, { reset: true }); }");
        await page.WaitForFunctionAsync("() => window.concordMap.clustered", null, new() { Timeout = 15_000 });
        var cluster = page.Locator(".cluster").First;
        var title = await cluster.GetAttributeAsync("title");
        Assert.Matches(@"^[\d,. \u00a0\u202f]+ · (UNCLASSIFIED|CONFIDENTIAL|STRICTLY CONFIDENTIAL)", title);
        var zoom = await page.EvaluateAsync<int>("window.concordMap.map.getZoom()");
        await cluster.FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForFunctionAsync($"() => window.concordMap.map.getZoom() > {zoom}", null, new() { Timeout = 10_000 });
    }

    [Fact]
    public async Task Incidents_are_drawn_on_a_link_slower_than_the_changes_come()
    {
        // Each map read takes three seconds to answer (a weak link) while a change comes every second (an import, a busy
        // evening): each read is drawn and then read once more. A change superseding every read under way left the layer
        // never drawn for as long as the changes went on.
        var (map, place) = await LiveMapAtSpotAsync();
        await map.RouteAsync("**/api/incidents/map?**", async route =>
        {
            await Task.Delay(3000);
            await route.ContinueAsync();
        });
        var loads = await map.EvaluateAsync<int>("window.concordMap.loads");
        using var unpol = fixture.Server.ClientFor("unpol");
        using var stop = new CancellationTokenSource();
        var firstIncident = new TaskCompletionSource<string>();
        var changes = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(narrative: $"Convoy passing, vehicle {i}.", latitude: place.Latitude,
                    longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
                Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
                firstIncident.TrySetResult((await created.Json()).GetProperty("incidentId").GetString()!);
                await Task.Delay(1000);
            }
        });
        try
        {
            // Drawn twice while the changes still come (they go on until this wait ends or gives up).
            await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads + 1}", null, new() { Timeout = 20_000 });
        }
        finally
        {
            await stop.CancelAsync();
            await changes;
        }

        var incident = await firstIncident.Task;
        Assert.True(await map.EvaluateAsync<bool>($"window.concordMap.ids.includes('{incident}')"));
    }

    [Fact]
    public async Task A_map_told_of_more_changes_than_one_push_carries_reads_its_view_again()
    {
        // A round with more ids than one push carries (an import, a large merge) is sent as 'resync' (LiveFeedSendTests):
        // the map reads its view again, without a reload; after an access change, also once every node judges anew.
        var (map, _) = await LiveMapAtSpotAsync();
        var hub = fixture.Server.Services.GetRequiredService<IHubContext<Concord.Server.Realtime.LiveHub>>();
        var loads = await map.EvaluateAsync<int>("window.concordMap.loads");
        await hub.Clients.All.SendAsync(Concord.Server.Realtime.LiveHub.ResyncMethod, false);
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        Assert.True(await map.EvaluateAsync<bool>("window.__notReloaded === true"));
        Assert.True(await map.EvaluateAsync<bool>("sessionStorage.getItem('concord.accessSettlesAt') === null"));

        loads = await map.EvaluateAsync<int>("window.concordMap.loads");
        await hub.Clients.All.SendAsync(Concord.Server.Realtime.LiveHub.ResyncMethod, true);
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        Assert.True(await map.EvaluateAsync<bool>("Number(sessionStorage.getItem('concord.accessSettlesAt')) > Date.now()"));
        Assert.True(await map.EvaluateAsync<bool>("window.__notReloaded === true"));
    }

    [Fact]
    public async Task A_page_whose_session_was_signed_out_elsewhere_leaves_for_the_sign_in_page()
    {
        var map = await fixture.SignedInAsync("force", "/?from=2020-01-01");
        await map.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        // The page knows when its session's day is over (it leaves then too).
        var endsIn = TimeSpan.FromMilliseconds(await map.EvaluateAsync<double>("Concord.context.sessionEndsIn"));
        Assert.InRange(endsIn, TimeSpan.FromHours(23), TimeSpan.FromHours(24));

        // The session is signed out from elsewhere (a copy of its cookie, as another window of the same browser would).
        var cookie = (await map.Context.CookiesAsync()).Single(c => c.Name == "concord");
        using var copy = new HttpClient { BaseAddress = fixture.Server.BaseAddress };
        copy.DefaultRequestHeaders.Add("Cookie", $"concord={cookie.Value}");
        Assert.Equal(HttpStatusCode.NoContent, (await copy.PostAsync("/api/auth/signout", null)).StatusCode);

        // The next change closes the page's live channel instead of reaching it; the page finds its session ended and
        // goes to the sign-in page, which would bring the member back to where they were.
        using var unpol = fixture.Server.ClientFor("unpol");
        var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(narrative: "A change after the sign-out.", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        await map.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/signin", new() { Timeout = 20_000 });
        Assert.Equal("/?from=2020-01-01", System.Web.HttpUtility.ParseQueryString(new Uri(map.Url).Query)["returnUrl"]);
    }

    /// <summary>A report of FORCE's own (CONFIDENTIAL, FORCE only) at a place, and FORCE's live map showing its incident there.</summary>
    private async Task<(IPage Map, string IncidentId)> ForcesMapOnANewIncidentAsync(double latitude, double longitude, string narrative)
    {
        using var api = fixture.Server.ClientFor("force");
        var created = await api.PostAsJsonAsync("/api/reports", Api.Report(latitude: latitude, longitude: longitude, narrative: narrative, marking: Api.Marking("CONFIDENTIAL", ["org:FORCE"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var incidentId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("incidentId").GetString()!;
        var map = await fixture.SignedInAsync("force", "/?from=2020-01-01");
        await map.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        var loads = await map.EvaluateAsync<int>("window.concordMap.loads");
        await map.EvaluateAsync(FormattableString.Invariant($"() => {{ window.concordMap.map.setView([{latitude}, {longitude}], 12); }}"));
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads} && window.concordMap.ids.includes('{incidentId}')");
        return (map, incidentId);
    }

    [Fact]
    public async Task A_map_whose_reads_are_refused_once_its_session_ended_clears_and_leaves_for_the_sign_in_page()
    {
        // Signed out in another window on a quiet night: no change comes to close the live channel, but the map's next
        // read (a pan) is refused; what it showed goes, and the page leaves for the sign-in page.
        var (map, _) = await ForcesMapOnANewIncidentAsync(7.61234, 21.71234, $"Quiet night {Store}.");
        // A patrol's device on the tracks layer: tracks move without a change on the live channel, and their reads
        // refused left the last positions drawn.
        var uid = $"ANDROID-quiet-{Store}-{Guid.NewGuid():N}";
        await fixture.Server.AddTrackAsync("force", uid, "QUIET-1", 7.61534, 21.71534, classification: 1);
        await map.WaitForFunctionAsync($"() => window.concordMap.tracks.includes('{uid}')", null, new() { Timeout = 15_000 });
        Assert.StartsWith("CONFIDENTIAL", await map.TextContentAsync("#banner-top"));
        // Signed out on another node: the session's end reaches this node's cache of members, but not its live connections
        // (a sign-out on this node closes them at once, and the page leaves).
        var cookie = (await map.Context.CookiesAsync()).Single(c => c.Name == "concord");
        var cookies = fixture.Server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationOptions>>()
            .Get(Concord.Server.Accounts.ConcordAuthentication.CookieScheme);
        var session = cookies.TicketDataFormat.Unprotect(cookie.Value)!.Principal;
        var member = Guid.Parse(session.FindFirst(Concord.Server.Accounts.ConcordAuthentication.MemberIdClaim)!.Value);
        await fixture.Server.WithDbAsync(async db =>
        {
            db.EndedSessions.Add(new Concord.Server.Accounts.EndedSession
            {
                Id = Concord.Server.Accounts.ConcordAuthentication.SessionId(session)!.Value,
                MemberId = member,
                EndedAt = DateTime.UtcNow,
                ExpiresAt = DateTime.UtcNow.AddDays(1),
            });
            return await db.SaveChangesAsync();
        });
        fixture.Server.Services.GetRequiredService<Concord.Server.Access.ViewerDirectory>().Forget(member);

        // The page is held on the map (its session check recorded, not made) to see what the refused read leaves on it.
        await map.EvaluateAsync("() => { window.__check = Concord.checkSession; Concord.checkSession = () => { window.__checked = true; }; }");
        await map.EvaluateAsync("() => { window.concordMap.map.panBy([20, 0]); }");
        await map.WaitForFunctionAsync("() => window.__checked === true && window.concordMap.total === 0");
        await map.WaitForFunctionAsync("() => window.concordMap.tracks.length === 0", null, new() { Timeout = 15_000 });
        Assert.Equal(0, await map.EvaluateAsync<int>("window.concordMap.total"));
        Assert.Equal(0, await map.EvaluateAsync<int>("document.querySelectorAll('#map .sym').length"));
        Assert.Equal("UNCLASSIFIED", (await map.TextContentAsync("#banner-top"))?.Trim());
        await map.EvaluateAsync("() => { window.__check(); }");
        await map.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/signin", new() { Timeout = 20_000 });
    }

    [Fact]
    public async Task An_open_panel_whose_live_re_read_fails_is_hidden_and_comes_back_once_read()
    {
        // A change to the incident in the open panel (here its status; a clearance lowered or a report split out alike)
        // asks for the panel again; on a link that fails then, what it showed goes, until a later read brings it back.
        var (map, incidentId) = await ForcesMapOnANewIncidentAsync(7.31234, 21.41234, $"Panel re-read {Store}.");
        using var api = fixture.Server.ClientFor("force");
        await map.ClickAsync($".sym[data-id='{incidentId}']");
        await map.WaitForSelectorAsync($"#panel #incident-{incidentId}");
        Assert.StartsWith("CONFIDENTIAL", await map.TextContentAsync("#banner-top"));

        await map.RouteAsync("**/ui/incidents/*/panel", route => route.AbortAsync("connectionreset"));
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incidentId}/status", new { status = "verified" })).StatusCode);
        await map.WaitForFunctionAsync("() => document.getElementById('panel').hidden && document.getElementById('panel').textContent === ''");

        await map.UnrouteAsync("**/ui/incidents/*/panel");
        await map.WaitForFunctionAsync("() => !document.getElementById('panel').hidden && document.getElementById('panel').textContent.includes('Verified')", null, new() { Timeout = 15_000 });

        // A server answering 503 (a proxy, a restart) fails the same way, not as an incident no longer shown: it comes back.
        await map.RouteAsync("**/ui/incidents/*/panel", route => route.FulfillAsync(new() { Status = 503, Body = "unavailable" }));
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incidentId}/status", new { status = "closed" })).StatusCode);
        await map.WaitForFunctionAsync("() => document.getElementById('panel').hidden && document.getElementById('panel').textContent === ''");
        await map.UnrouteAsync("**/ui/incidents/*/panel");
        await map.WaitForFunctionAsync("() => !document.getElementById('panel').hidden && document.getElementById('panel').textContent.includes('Closed')", null, new() { Timeout = 15_000 });
    }

    [Fact]
    public async Task A_change_told_while_the_panel_is_still_loading_reads_it_again()
    {
        // A slow link: the panel's first answer is held until after a change of its incident was pushed; the answer, read
        // before the change, must not stay on screen as the incident's.
        var (map, incidentId) = await ForcesMapOnANewIncidentAsync(7.41234, 21.51234, $"Panel still loading {Store}.");
        using var api = fixture.Server.ClientFor("force");
        var release = new TaskCompletionSource();
        var reads = 0;
        await map.RouteAsync("**/ui/incidents/*/panel", async route =>
        {
            if (Interlocked.Increment(ref reads) != 1)
            {
                await route.ContinueAsync();
                return;
            }

            var early = await route.FetchAsync();
            await release.Task;
            await route.FulfillAsync(new() { Response = early });
        });
        await map.ClickAsync($".sym[data-id='{incidentId}']");
        for (var waited = 0; Volatile.Read(ref reads) == 0; waited++)
        {
            Assert.True(waited < 300, "the panel to be asked for");
            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incidentId}/status", new { status = "verified" })).StatusCode);
        await map.WaitForFunctionAsync($"() => Concord.received.includes('{incidentId}')", null, new() { Timeout = 15_000 });
        release.SetResult();

        await map.WaitForFunctionAsync("() => !document.getElementById('panel').hidden && document.getElementById('panel').textContent.includes('Verified')", null, new() { Timeout = 10_000 });
    }

    [Fact]
    public async Task The_base_map_lost_on_a_weak_link_is_read_again()
    {
        var page = await fixture.SignedInAsync("force", "/incidents");
        var reads = 0;
        await page.RouteAsync("**/ui/geo/countries-50m.json", route => Interlocked.Increment(ref reads) == 1 ? route.AbortAsync("connectionreset") : route.ContinueAsync());
        await page.GotoAsync(new Uri(fixture.Server.BaseAddress, "/?from=2020-01-01").ToString());
        await page.WaitForSelectorAsync("#map[data-base-map='drawn']", new() { State = WaitForSelectorState.Attached, Timeout = 20_000 });
        Assert.True(reads >= 2);
    }

    [Fact]
    public async Task The_requests_and_patrols_layer_says_when_it_draws_only_the_newest()
    {
        // The server's answer says there are more than the layer draws (a mission with thousands of open requests).
        var page = await fixture.SignedInAsync("force", "/incidents");
        await page.RouteAsync("**/api/coordination/geojson", async route =>
        {
            var answer = await route.FetchAsync();
            await route.FulfillAsync(new() { Response = answer, Headers = new Dictionary<string, string>(answer.Headers) { ["x-concord-truncated"] = "true" } });
        });
        await page.GotoAsync(new Uri(fixture.Server.BaseAddress, "/?from=2020-01-01").ToString());
        var note = page.Locator("label:has(#layer-coordination) .layer-cut");
        await note.WaitForAsync();
        Assert.Contains("2,000", await note.TextContentAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_incident_list_is_live_and_sorts_and_filters_in_place_for_those_who_may_see()
    {
        // Both lists look for one tag; UNPOL reports at CONFIDENTIAL for the military and UNPOL: FORCE may see it,
        // RWABATT (military, UNCLASSIFIED) may not.
        var tag = "livelist" + Guid.NewGuid().ToString("N")[..8];
        var force = await fixture.SignedInAsync("force", "/incidents?q=" + tag);
        var uncleared = await fixture.SignedInAsync("rwabatt", "/incidents?q=" + tag);
        var dashboard = await fixture.SignedInAsync("force", "/dashboard");
        foreach (var page in new[] { force, uncleared })
        {
            await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
            Assert.Contains(" 0 ", " " + await page.TextContentAsync("#list-count"));
            await page.EvaluateAsync("window.__notReloaded = true");
        }

        await dashboard.WaitForSelectorAsync("#dashboard-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        await dashboard.EvaluateAsync("window.__notReloaded = true");
        var before = Number(await dashboard.TextContentAsync("#total-incidents"));

        using var unpol = fixture.Server.ClientFor("unpol");
        var confidential = Api.Marking("CONFIDENTIAL", ["kind:military", "org:UNPOL"]);
        var ids = new List<string>();
        foreach (var (narrative, place) in new[] { ("first", Api.Spot()), ("second", Api.Spot()) })
        {
            var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(
                narrative: $"Clash at a checkpoint, {narrative} account ({tag}).", latitude: place.Latitude, longitude: place.Longitude, marking: confidential));
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
            ids.Add((await created.Json()).GetProperty("incidentId").GetString()!);

            // The list of a member who may see it grows in place (within the live feed's second on an idle machine).
            await force.WaitForSelectorAsync($"#incident-list tr[data-id='{ids[^1]}']");
        }

        Assert.True(await force.EvaluateAsync<bool>("window.__notReloaded === true"));
        Assert.StartsWith("CONFIDENTIAL", await force.TextContentAsync("#banner-top"));
        Assert.StartsWith("CONFIDENTIAL", await force.TextContentAsync("#banner-bottom"));
        Assert.Contains("2", await force.TextContentAsync("#list-count"));
        await Screenshots.ScreenshotAsync(force, $"{Store}-incident-list-live");

        // FORCE's dashboard counted them in place, and its charts were drawn again.
        await dashboard.WaitForFunctionAsync($"() => document.querySelector('#total-incidents').textContent.replace(/\\D/g, '') === '{before + 2}'");
        Assert.True(await dashboard.EvaluateAsync<bool>("window.__notReloaded === true && Chart.getChart(document.querySelector('#chart-weekly')) !== undefined"));

        // Sorting and filtering happen in the page (no reload), and the address follows for a bookmark or a reload.
        var loads = await force.GetAttributeAsync("#incident-list", "data-loads");
        await force.ClickAsync("#sort-startsAt");
        await force.WaitForFunctionAsync($"() => document.querySelector('#incident-list').dataset.loads !== '{loads}'");
        await force.WaitForURLAsync(url => url.Contains("dir=asc", StringComparison.Ordinal));
        Assert.Equal("ascending", await force.GetAttributeAsync("th[aria-sort]:not([aria-sort='none'])", "aria-sort"));
        Assert.Contains(Uri.EscapeDataString("dir=asc"), await force.GetAttributeAsync("#lang-fr", "href"));
        await force.SelectOptionAsync("#l-status", "verified");
        await force.ClickAsync("#list-apply");
        await force.WaitForSelectorAsync("#incident-list tbody tr", new() { State = WaitForSelectorState.Detached });
        await force.WaitForURLAsync(url => url.Contains("status=verified", StringComparison.Ordinal));
        Assert.True(await force.EvaluateAsync<bool>("window.__notReloaded === true"));
        await force.ReloadAsync();
        Assert.Equal("verified", await force.InputValueAsync("#l-status"));
        Assert.Equal(0, await force.Locator("#incident-list tbody tr").CountAsync());

        // The member without the clearance was told nothing: the list never changed and never held the incidents.
        await Task.Delay(1500);
        Assert.Equal(0, await uncleared.Locator("#incident-list tbody tr").CountAsync());
        Assert.True(await uncleared.EvaluateAsync<bool>("window.__notReloaded === true"));
        foreach (var id in ids)
        {
            Assert.DoesNotContain(id, await uncleared.ContentAsync());
        }

        Assert.StartsWith("UNCLASSIFIED", await uncleared.TextContentAsync("#banner-top"));
    }

    [Fact]
    public async Task A_report_filed_while_the_list_page_connects_is_shown_once_it_does()
    {
        // The list is read in the first (static) render, and the page listens only once the browser has fetched Blazor's
        // script and connected (seconds on a weak link). The script is held back here while a report is filed: the list must
        // show it once the page listens, without waiting for another change to come along.
        var tag = "gap" + Guid.NewGuid().ToString("N")[..8];
        var page = await fixture.SignedInAsync("force", "/dashboard");
        var held = new TaskCompletionSource();
        await page.RouteAsync("**/ui/lib/blazor.web.js", async route =>
        {
            await held.Task;
            await route.ContinueAsync();
        });
        await page.GotoAsync("/incidents?q=" + tag, new() { WaitUntil = WaitUntilState.Commit });
        await page.WaitForSelectorAsync("#list-count", new() { State = WaitForSelectorState.Attached });
        Assert.Contains(" 0 ", " " + await page.TextContentAsync("#list-count"));

        using var unpol = fixture.Server.ClientFor("unpol");
        var place = Api.Spot();
        var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(
            narrative: $"Shots heard near the market ({tag}).", latitude: place.Latitude, longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var incidentId = (await created.Json()).GetProperty("incidentId").GetString()!;

        held.SetResult();
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached, Timeout = 15_000 });
        await page.WaitForSelectorAsync($"#incident-list tr[data-id='{incidentId}']", new() { Timeout = 10_000 });
        Assert.Contains("1", await page.TextContentAsync("#list-count"));
    }

    [Fact]
    public async Task A_live_list_whose_read_fails_says_it_is_not_up_to_date_and_recovers_by_itself()
    {
        var tag = "stale" + Guid.NewGuid().ToString("N")[..8];
        var page = await fixture.SignedInAsync("unpol", "/incidents?q=" + tag);
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached });

        // The store's incidents cannot be read (the table is moved aside), and a change the list follows comes in: its read
        // fails, and the page says so instead of passing for live.
        using var admin = fixture.Server.ClientFor("jocadmin");
        await fixture.Server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync("ALTER TABLE incidents RENAME TO incidents_aside"));
        try
        {
            var group = await admin.PostAsJsonAsync("/api/groups", new { code = "ST" + tag[5..].ToUpperInvariant(), name = "Stale page test group" });
            Assert.True(group.IsSuccessStatusCode, await group.Content.ReadAsStringAsync());
            await page.WaitForSelectorAsync("#list-live[data-live='stale']", new() { State = WaitForSelectorState.Attached, Timeout = 15_000 });
            Assert.Contains("Not up to date", await page.TextContentAsync("#list-live"), StringComparison.Ordinal);
        }
        finally
        {
            await fixture.Server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync("ALTER TABLE incidents_aside RENAME TO incidents"));
        }

        // The store is back: the page tries again by itself (five seconds after the failure), with nothing else to prompt
        // it, and is live again; it then follows changes as before.
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached, Timeout = 15_000 });
        using var unpol = fixture.Server.ClientFor("unpol");
        var place = Api.Spot();
        var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(
            narrative: $"Looting at the market ({tag}).", latitude: place.Latitude, longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var incidentId = (await created.Json()).GetProperty("incidentId").GetString()!;
        await page.WaitForSelectorAsync($"#incident-list tr[data-id='{incidentId}']", new() { Timeout = 10_000 });
    }

    /// <summary>A new CONFIDENTIAL force analyst (named after its tag) and a CONFIDENTIAL incident the police report for the military, which they may see.</summary>
    private async Task<(string Tag, string IncidentId)> ConfidentialWatcherAsync(HttpClient admin, string prefix, string narrative)
    {
        var tag = prefix + Guid.NewGuid().ToString("N")[..8];
        var added = await admin.PostAsJsonAsync("/api/organizations/FORCE/members",
            new { userName = tag, roles = new[] { "analyst" }, clearance = "CONFIDENTIAL", password = TestServer.Password });
        Assert.True(added.IsSuccessStatusCode, await added.Content.ReadAsStringAsync());
        using var unpol = fixture.Server.ClientFor("unpol");
        var place = Api.Spot();
        var created = await unpol.PostAsJsonAsync("/api/reports", Api.Report(
            narrative: $"{narrative} ({tag}).", latitude: place.Latitude, longitude: place.Longitude,
            marking: Api.Marking("CONFIDENTIAL", ["kind:military", "org:UNPOL"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        return (tag, (await created.Json()).GetProperty("incidentId").GetString()!);
    }

    [Fact]
    public async Task A_live_page_that_lost_its_circuit_says_so_in_its_language_and_comes_back()
    {
        var page = await fixture.SignedInAsync("force", "/dashboard");
        // The page's circuit runs on a WebSocket that offline emulation leaves open: the test keeps each one to close it.
        await page.AddInitScriptAsync("""
            window.__sockets = [];
            const Native = window.WebSocket;
            window.WebSocket = class extends Native { constructor(...args) { super(...args); window.__sockets.push(this); } };
            """);
        await page.ClickAsync("#lang-fr");
        await page.WaitForSelectorAsync("html[lang='fr']");
        await page.WaitForSelectorAsync("#dashboard-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        Assert.False(await page.IsVisibleAsync("#components-reconnect-modal"));
        // The circuit's own socket, open, among those kept: closing them below must break the circuit, not nothing.
        await page.WaitForFunctionAsync("() => window.__sockets.some(s => s.url.includes('_blazor') && s.readyState === WebSocket.OPEN)");

        // The link goes down: the open circuit breaks and nothing reaches the server until it is back.
        await page.Context.SetOfflineAsync(true);
        await page.EvaluateAsync("window.__sockets.filter(s => s.url.includes('_blazor')).forEach(s => s.close(4000))");
        await page.WaitForSelectorAsync("#components-reconnect-modal", new() { State = WaitForSelectorState.Visible });
        var notice = await page.InnerTextAsync("#components-reconnect-modal");
        Assert.Matches("Connexion au serveur perdue|Toujours pas de connexion au serveur", notice);
        Assert.DoesNotContain("Rejoin", notice);
        // Blazor's own English notice is not shown beside it.
        Assert.Equal(1, await page.Locator("[id='components-reconnect-modal']").CountAsync());

        await page.Context.SetOfflineAsync(false);
        await page.WaitForSelectorAsync("#components-reconnect-modal", new() { State = WaitForSelectorState.Hidden, Timeout = 60_000 });
        // The circuit is back and live: the filter applies in place, without a page load.
        await page.EvaluateAsync("window.__notReloaded = true");
        var loads = await page.GetAttributeAsync("#dashboard-live", "data-loads");
        await page.FillAsync("#d-from", "2020-01-01");
        await page.ClickAsync("#dashboard-apply");
        await page.WaitForFunctionAsync("l => document.getElementById('dashboard-live').dataset.loads !== l", loads);
        Assert.True(await page.EvaluateAsync<bool>("window.__notReloaded === true"));
    }

    [Fact]
    public async Task A_map_told_of_an_access_change_reads_its_view_again_once_every_node_judges_the_member_anew()
    {
        // Behind a load balancer, the read the push starts may reach a node that still judges the member as before for up
        // to its member cache's lifetime: the map reads its view at once, and again once that is over.
        using var admin = await fixture.Server.SignedInAsync("jocadmin");
        var (tag, _) = await ConfidentialWatcherAsync(admin, "mapwatch", "Shots heard at the river crossing");
        var map = await fixture.SignedInAsync(tag, "/?from=2020-01-01");
        await map.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        var settles = await map.EvaluateAsync<int>("Concord.context.accessSettlesIn");
        Assert.InRange(settles, 10_000, 12_000);
        var loads = await map.EvaluateAsync<int>("window.concordMap.loads");

        var lowered = await admin.PatchAsJsonAsync($"/api/members/{tag}", new { clearance = "UNCLASSIFIED" });
        Assert.True(lowered.IsSuccessStatusCode, await lowered.Content.ReadAsStringAsync());
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        var told = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(settles - 2_000);
        var before = await map.EvaluateAsync<int>("window.concordMap.loads");
        await map.WaitForFunctionAsync($"() => window.concordMap.loads > {before}", null, new() { Timeout = 8_000 });
        Assert.InRange(told.Elapsed, TimeSpan.FromMilliseconds(settles - 2_000), TimeSpan.FromMilliseconds(settles + 6_000));
    }

    [Fact]
    public async Task An_incident_page_told_of_an_access_change_reads_itself_again_once_every_node_judges_the_member_anew()
    {
        // As the map: behind a load balancer, its first read again may reach a node that still judges the member as before.
        using var admin = await fixture.Server.SignedInAsync("jocadmin");
        var (tag, incidentId) = await ConfidentialWatcherAsync(admin, "incwatch", "Roadblock on the Bossangoa road");
        var page = await fixture.SignedInAsync(tag, "/incidents/" + incidentId);
        await page.WaitForFunctionAsync("() => window.concordIncident !== undefined && Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        var settles = await page.EvaluateAsync<int>("Concord.context.accessSettlesIn");
        var reads = await page.EvaluateAsync<int>("window.concordIncident.reads");

        var group = await admin.PostAsJsonAsync("/api/groups", new { code = "IW" + tag[8..].ToUpperInvariant(), name = "Incident page settle test" });
        Assert.True(group.IsSuccessStatusCode, await group.Content.ReadAsStringAsync());
        await page.WaitForFunctionAsync($"() => window.concordIncident.reads > {reads}");
        var told = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(settles - 2_000);
        var before = await page.EvaluateAsync<int>("window.concordIncident.reads");
        await page.WaitForFunctionAsync($"() => window.concordIncident.reads > {before}", null, new() { Timeout = 8_000 });
        Assert.InRange(told.Elapsed, TimeSpan.FromMilliseconds(settles - 2_000), TimeSpan.FromMilliseconds(settles + 6_000));
    }

    [Fact]
    public async Task Early_warning_told_of_an_access_change_loads_again_and_once_more_when_every_node_judges_the_member_anew()
    {
        // Loaded again a second after the change (perhaps by a node that still judged the member as before), the page loads
        // once more when the member cache's lifetime is over, whichever page it is by then.
        using var admin = await fixture.Server.SignedInAsync("jocadmin");
        var (tag, _) = await ConfidentialWatcherAsync(admin, "ewwatch", "Clash near the Kaga-Bandoro market");
        var page = await fixture.SignedInAsync(tag, "/early-warning");
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        var settles = await page.EvaluateAsync<int>("Concord.context.accessSettlesIn");
        var loads = 0;
        page.Load += (_, _) => Interlocked.Increment(ref loads);

        var lowered = await admin.PatchAsJsonAsync($"/api/members/{tag}", new { clearance = "UNCLASSIFIED" });
        Assert.True(lowered.IsSuccessStatusCode, await lowered.Content.ReadAsStringAsync());
        var told = System.Diagnostics.Stopwatch.StartNew();
        while (Volatile.Read(ref loads) < 1 && told.Elapsed < TimeSpan.FromSeconds(8))
        {
            await Task.Delay(100);
        }

        Assert.Equal(1, Volatile.Read(ref loads));
        while (Volatile.Read(ref loads) < 2 && told.Elapsed < TimeSpan.FromMilliseconds(settles + 8_000))
        {
            await Task.Delay(100);
        }

        Assert.Equal(2, Volatile.Read(ref loads));
        Assert.InRange(told.Elapsed, TimeSpan.FromMilliseconds(settles - 2_000), TimeSpan.FromMilliseconds(settles + 8_000));
    }

    [Fact]
    public async Task A_live_list_follows_the_members_clearance_and_shows_nothing_once_the_account_is_disabled()
    {
        // A circuit can stay open for hours: each read takes the member as they are now, not as they were at sign-in.
        using var admin = await fixture.Server.SignedInAsync("jocadmin");
        var (tag, incidentId) = await ConfidentialWatcherAsync(admin, "watch", "Armed men stopped a bus on the Sibut road");

        var page = await fixture.SignedInAsync(tag, "/incidents?q=" + tag);
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        await page.WaitForSelectorAsync($"#incident-list tr[data-id='{incidentId}']", new() { State = WaitForSelectorState.Attached });
        await page.EvaluateAsync("window.__notReloaded = true");

        // The clearance is lowered: the open list reads itself again at once (nobody touches it) and no longer shows the
        // CONFIDENTIAL incident.
        var lowered = await admin.PatchAsJsonAsync($"/api/members/{tag}", new { clearance = "UNCLASSIFIED" });
        Assert.True(lowered.IsSuccessStatusCode, await lowered.Content.ReadAsStringAsync());
        await page.WaitForSelectorAsync($"#incident-list tr[data-id='{incidentId}']", new() { State = WaitForSelectorState.Detached });
        Assert.StartsWith("UNCLASSIFIED", await page.TextContentAsync("#banner-top"));

        // The account is disabled: the circuit shows nothing more.
        var disabled = await admin.PatchAsJsonAsync($"/api/members/{tag}", new { disabled = true });
        Assert.True(disabled.IsSuccessStatusCode, await disabled.Content.ReadAsStringAsync());
        await page.ClickAsync("#list-apply");
        await page.WaitForSelectorAsync("#incident-list", new() { State = WaitForSelectorState.Detached });
        // Said as a sentence, not as the error of a field named "session".
        Assert.Equal("Your session has ended or your account is no longer active: sign in again.", (await page.TextContentAsync("ul.error[role='alert'] li"))?.Trim());
        Assert.True(await page.EvaluateAsync<bool>("window.__notReloaded === true"));
    }

    [Fact]
    public async Task A_humanitarian_requests_an_escort_the_force_accepts_it_and_the_requester_sees_the_change_live()
    {
        var requester = await fixture.SignedInAsync("ocha", "/coordination");
        var addressee = await fixture.SignedInAsync("force", "/coordination");
        foreach (var page in new[] { requester, addressee })
        {
            await page.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        }

        var title = $"Escort for the Bria food convoy ({Store} {Guid.NewGuid().ToString("N")[..8]})";
        await requester.SelectOptionAsync("#rq-type", "armed-escort");
        await requester.SelectOptionAsync("#rq-addressee", "FORCE");
        Assert.True(await requester.IsVisibleAsync("#rq-lastresort"), "a humanitarian asking the military states the last-resort criteria");
        Assert.True(await requester.IsVisibleAsync("#rq-escort"), "an armed escort states the escort criteria");
        await requester.FillAsync("#rq-title", title);
        await requester.FillAsync("#rq-details", "14 trucks, Bambari to Bria, departure 06:00.");
        // The longitude is forgotten at first: the place is refused, not taken as longitude 0.
        await requester.FillAsync("#rq-lat", "6.54");
        var start = DateTime.UtcNow.AddDays(1);
        await requester.FillAsync("#rq-start", start.ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture));
        await requester.FillAsync("#rq-end", start.AddDays(1).ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture));

        // Without the criteria the server refuses, and each missing statement is named beside its field.
        await requester.ClickAsync("#rq-submit");
        await requester.WaitForFunctionAsync("() => document.querySelector(\".field-error[data-for='criteria.escort.safetyAndSecurity']\").textContent.length > 0");
        Assert.NotEmpty((await requester.TextContentAsync(".field-error[data-for='criteria.lastResort.noCivilianAlternative']"))!);
        Assert.NotEmpty((await requester.TextContentAsync(".field-error[data-for='location']"))!);
        await requester.FillAsync("#rq-lon", "21.99");

        await requester.FillAsync("#lr-noCivilianAlternative", "No commercial or NGO carrier will travel the Bria road after the attacks.");
        await requester.FillAsync("#lr-criticalNeed", "Without this convoy the camp's food pipeline breaks for 12,000 people.");
        await requester.FillAsync("#lr-limitedInTimeAndScale", "One convoy of 14 trucks over two days, under humanitarian coordination.");
        await requester.FillAsync("#es-humanitarianNeed", "Food for 12,000 displaced people; stocks run out in four days.");
        await requester.FillAsync("#es-responsibleAuthorities", "The prefecture cannot secure the road; no gendarmerie since March.");
        await requester.FillAsync("#es-safetyAndSecurity", "Two convoy attacks on this road in October; an escort reduces the risk.");
        await requester.FillAsync("#es-sustainability", "A one-off escort while the road is repaired; civilian access resumes after.");
        await requester.ClickAsync("#rq-submit");
        await requester.WaitForFunctionAsync("() => document.getElementById('rq-sent').textContent.length > 0");
        await requester.WaitForSelectorAsync($"#request-board .column[data-status='requested'] .co-card:has-text('{title}')");
        await requester.EvaluateAsync("window.__notReloaded = true");

        // The force's inbox shows the request live, with the criteria open before it answers.
        var card = addressee.Locator($"#request-board .co-card:has-text('{title}')");
        await card.WaitForAsync();
        Assert.True(await card.Locator("details.criteria[open]").IsVisibleAsync());
        Assert.Contains("No commercial or NGO carrier", await card.TextContentAsync());
        await Screenshots.ScreenshotAsync(addressee, $"{Store}-coordination-incoming");
        await card.Locator("button[data-action='accepted']").ClickAsync();
        await addressee.WaitForSelectorAsync($"#request-board .column[data-status='accepted'] .co-card:has-text('{title}')");

        // The requester's board moves the card without a reload.
        await requester.WaitForSelectorAsync($"#request-board .column[data-status='accepted'] .co-card:has-text('{title}')");
        Assert.True(await requester.EvaluateAsync<bool>("window.__notReloaded === true"));
        Assert.Contains("FORCE", await requester.Locator($"#request-board .co-card:has-text('{title}')").TextContentAsync());
        await Screenshots.ScreenshotAsync(requester, $"{Store}-coordination-accepted");

        // The force comments on a task and logs the call it made; both show on the page, and the police do not see the log entry.
        using (var joc = fixture.Server.ClientFor("joc"))
        {
            var created = await joc.PostAsJsonAsync("/api/tasks", new { title = $"Confirm the convoy route ({title})", organization = "FORCE", marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "org:FORCE" }, caveats = Array.Empty<string>() } });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var task = addressee.Locator($"#task-board .co-card:has-text('Confirm the convoy route ({title})')");
        await task.WaitForAsync();
        await task.Locator("details.task-comments summary").ClickAsync();
        await task.Locator("details.task-comments input").FillAsync("Route checked with the Ippy company; bridge passable.");
        await task.Locator("details.task-comments button[type='submit']").ClickAsync();
        await addressee.WaitForSelectorAsync($"#task-board .co-card:has-text('bridge passable') .comments li");
        var summary = $"Called OCHA about the convoy timings ({title}).";
        await addressee.SelectOptionAsync("#li-organization", "OCHA");
        await addressee.FillAsync("#li-counterpart", "OCHA access officer");
        await addressee.SelectOptionAsync("#li-channel", "phone");
        await addressee.FillAsync("#li-summary", summary);
        await addressee.ClickAsync("#li-submit");
        await addressee.WaitForSelectorAsync($"#liaison-log tr:has-text('{summary}')");

        // The request is on the force's map (the requests and patrols layer).
        var requestId = await addressee.Locator($"#request-board .co-card:has-text('{title}')").GetAttributeAsync("data-id");
        var forceMap = await fixture.SignedInAsync("force");
        await forceMap.WaitForFunctionAsync($"() => window.concordMap.coordination.includes('{requestId}')");

        // A task whose acknowledgement deadline passes turns red on the open board without a reload (the escalation announces it).
        var late = $"Acknowledge the curfew notice ({title})";
        using (var joc = fixture.Server.ClientFor("joc"))
        {
            var created = await joc.PostAsJsonAsync("/api/tasks", new { title = late, organization = "FORCE", acknowledgeBy = DateTimeOffset.UtcNow.AddSeconds(15), marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "org:FORCE" }, caveats = Array.Empty<string>() } });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        await addressee.WaitForSelectorAsync($"#task-board .co-card:not(.overdue):has-text('{late}')");
        await addressee.WaitForSelectorAsync($"#task-board .co-card.overdue:has-text('{late}')", new() { Timeout = 60_000 });

        // The police are not party to it: their board never shows it.
        var police = await fixture.SignedInAsync("unpol", "/coordination");
        await police.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        await police.WaitForSelectorAsync("#liaison-log tbody", new() { State = WaitForSelectorState.Attached });
        await Task.Delay(500);
        Assert.DoesNotContain(title, await police.ContentAsync());
    }

    /// <summary>Gives the JOC an UNCLASSIFIED task of its own titled <paramref name="title"/>.</summary>
    private static async Task JocTaskAsync(HttpClient joc, string title) =>
        Assert.Equal(HttpStatusCode.Created, (await joc.PostAsJsonAsync("/api/tasks", new
        {
            title,
            organization = "JOC",
            marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "org:JOC" }, caveats = Array.Empty<string>() },
        })).StatusCode);

    /// <summary>The JOC's coordination page, live, showing a new task of the JOC's titled <paramref name="prefix"/> and a suffix.</summary>
    private async Task<(IPage Page, HttpClient Joc, string Title, Guid TaskId, ILocator Card)> JocTaskCardAsync(string prefix)
    {
        var title = prefix + " " + Guid.NewGuid().ToString("N")[..8];
        var page = await fixture.SignedInAsync("joc", "/coordination");
        await page.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        var joc = fixture.Server.ClientFor("joc");
        var created = await joc.PostAsJsonAsync("/api/tasks", new { title, organization = "JOC", marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "org:JOC" }, caveats = Array.Empty<string>() } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var taskId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var card = page.Locator($"#task-board .co-card:has-text('{title}')");
        await card.WaitForAsync();
        return (page, joc, title, taskId, card);
    }

    [Fact]
    public async Task A_declined_task_shows_why_on_its_card()
    {
        var (page, joc, title, taskId, _) = await JocTaskCardAsync("Decline check");
        using var disposeJoc = joc;

        var declined = await joc.PostAsJsonAsync($"/api/tasks/{taskId}/status", new { status = "declined", reason = "No vehicle until Thursday" });

        Assert.Equal(HttpStatusCode.OK, declined.StatusCode);
        // Closed tasks are shown on asking for them.
        await page.Locator("#co-closed").CheckAsync();
        await page.WaitForSelectorAsync($"#task-board .co-card[data-status='declined']:has-text('{title}') .reason:has-text('No vehicle until Thursday')");

        // A reason keeps the marking it was written under, which is above the task's after the task followed its incident
        // to a wider one (here written to the store as such a task's would be): the card labels the reason with it, and
        // the banners rise to it.
        Assert.True(fixture.Server.Services.GetRequiredService<Concord.Server.Access.MarkingFormat>().Caveats.TryGetBits(["SOURCE-PROTECTED"], out var protectedBit, out _));
        await fixture.Server.WithDbAsync(db => db.Tasks.Where(t => t.Id == taskId).ExecuteUpdateAsync(u => u
            .SetProperty(t => t.ReasonClassification, 2).SetProperty(t => t.ReasonReleasableTo, "|org:JOC|").SetProperty(t => t.ReasonCaveats, protectedBit)));
        Assert.Equal("0", await page.GetAttributeAsync("#banner-top", "data-level"));
        // A comment changes the task: the board reads it again.
        Assert.Equal(HttpStatusCode.Created, (await joc.PostAsJsonAsync($"/api/tasks/{taskId}/comments", new { text = "Noted" })).StatusCode);
        var label = page.Locator($"#task-board .co-card[data-status='declined']:has-text('{title}') .reason .marking");
        await label.WaitForAsync();
        Assert.Contains("SOURCE-PROTECTED", await label.TextContentAsync(), StringComparison.Ordinal);
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '2'", null, new() { Timeout = 5_000 });
        // Another task changing the boards keeps the card as drawn, and its reason still holds the banners up.
        await JocTaskAsync(joc, title + " other");
        await page.Locator($"#task-board .co-card:has-text('{title} other')").WaitForAsync();
        await page.WaitForTimeoutAsync(500);
        Assert.Equal("2", await page.GetAttributeAsync("#banner-top", "data-level"));

        // The task leaves the board (no longer the JOC's to see, here by a marking written to the store; a task withdrawn
        // alike): its reason no longer holds the banners up once the boards are read again (for another task of the JOC's).
        await fixture.Server.WithDbAsync(db => db.Tasks.Where(t => t.Id == taskId).ExecuteUpdateAsync(u => u.SetProperty(t => t.ReleasableTo, "|org:FORCE|")));
        await JocTaskAsync(joc, title + " next");
        await page.Locator($"#task-board .co-card:has-text('{title} next')").WaitForAsync();
        Assert.Equal(0, await page.Locator($"#task-board .co-card[data-id='{taskId}']").CountAsync());
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '0'", null, new() { Timeout = 5_000 });
    }

    [Fact]
    public async Task The_map_banner_names_a_caveat_added_after_the_page_was_read_and_says_so_to_screen_readers()
    {
        var page = await fixture.SignedInAsync("unpol", "/?from=2020-01-01");
        await page.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        // As a page read before the caveat existed: its list of caveats does not name the bit.
        await page.EvaluateAsync("() => { Concord.context.caveats[Concord.context.caveats.indexOf('SOURCE-PROTECTED')] = null; }");
        using var api = fixture.Server.ClientFor("unpol");
        var created = await api.PostAsJsonAsync("/api/reports", Api.Report(latitude: 7.71234, longitude: 21.81234, narrative: $"Informant meeting {Store}.",
            marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["SOURCE-PROTECTED"])));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var incidentId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("incidentId").GetString()!;
        await page.EvaluateAsync("() => { window.concordMap.map.setView([7.71234, 21.81234], 12); }");
        await page.WaitForFunctionAsync($"() => window.concordMap.ids.includes('{incidentId}')");

        // Never left out: named as soon as the list of caveats is read again.
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').textContent.includes('SOURCE-PROTECTED')", null, new() { Timeout = 15_000 });
        Assert.Contains("CONFIDENTIAL//SOURCE-PROTECTED", await page.GetAttributeAsync("#banner-top", "aria-label"), StringComparison.Ordinal);
        Assert.Contains("SOURCE-PROTECTED", await page.TextContentAsync("#banner-bottom"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_card_redrawn_while_the_member_types_on_it_keeps_what_was_typed_and_the_cursor()
    {
        var (page, joc, title, taskId, card) = await JocTaskCardAsync("Typing check");
        using var disposeJoc = joc;

        // A reason for declining half written, then a comment being typed; meanwhile a colleague comments on the task,
        // which changes it: its card is drawn again.
        await card.Locator("button[data-action='declined']").ClickAsync();
        await card.Locator("input.reason").FillAsync("No vehicle until");
        await card.Locator("details.task-comments summary").ClickAsync();
        var comment = card.Locator("details.task-comments input");
        await comment.FillAsync("Route checked as far as");
        Assert.Equal(HttpStatusCode.Created, (await joc.PostAsJsonAsync($"/api/tasks/{taskId}/comments", new { text = "Colleague's note" })).StatusCode);
        await page.WaitForSelectorAsync($"#task-board .co-card:has-text('{title}') .comments li:has-text('Colleague')");

        Assert.Equal("Route checked as far as", await comment.InputValueAsync());
        Assert.Equal("No vehicle until", await card.Locator("input.reason").InputValueAsync());
        // The cursor is back in the comment (within a refresh or two: other tests' changes may redraw the boards meanwhile).
        await page.WaitForFunctionAsync("() => document.activeElement?.matches('#task-board .task-comments input') && document.activeElement.value === 'Route checked as far as'",
            null, new() { Timeout = 5_000 });
    }

    [Fact]
    public async Task Comments_read_late_do_not_drop_a_comment_just_added_and_a_failed_read_says_so()
    {
        var (page, joc, title, taskId, card) = await JocTaskCardAsync("Comments check");
        using var disposeJoc = joc;
        // The first read of the comments is answered (as the task was then, without comments) only after the comment
        // added meanwhile was read back: a weak link delivering answers out of order. (The comment also changes the task,
        // so its card is usually drawn anew before the late answer comes; the list shown must keep the comment either way.)
        var release = new TaskCompletionSource();
        var reads = 0;
        await page.RouteAsync($"**/api/tasks/{taskId}", async route =>
        {
            if (route.Request.Method != "GET" || Interlocked.Increment(ref reads) != 1)
            {
                await route.ContinueAsync();
                return;
            }

            var early = await route.FetchAsync();
            await release.Task;
            await route.FulfillAsync(new() { Response = early });
        });
        await card.Locator("details.task-comments summary").ClickAsync();
        await card.Locator("details.task-comments input").FillAsync("Bridge passable on foot");
        await card.Locator("details.task-comments button[type='submit']").ClickAsync();
        await page.WaitForSelectorAsync($"#task-board .co-card:has-text('{title}') .comments li:has-text('Bridge passable')");
        release.SetResult();
        await page.WaitForTimeoutAsync(1000);
        Assert.Equal(1, await card.Locator(".comments li:has-text('Bridge passable')").CountAsync());

        // A read that fails says so, rather than showing an empty list that passes for a task without comments.
        await page.UnrouteAsync($"**/api/tasks/{taskId}");
        await page.RouteAsync($"**/api/tasks/{taskId}", route => route.Request.Method == "GET" ? route.AbortAsync() : route.ContinueAsync());
        await card.Locator("details.task-comments summary").ClickAsync();
        await card.Locator("details.task-comments summary").ClickAsync();
        await page.WaitForSelectorAsync($"#task-board .co-card:has-text('{title}') .task-comments .field-error:text-is('The request failed; try again.')");
    }

    [Fact]
    public async Task The_coordination_page_raises_its_banners_to_open_comments_and_keeps_its_boards_when_a_read_fails()
    {
        var (page, joc, title, taskId, card) = await JocTaskCardAsync("Board check");
        using var disposeJoc = joc;

        // A comment written while the task was marked higher (STRICTLY CONFIDENTIAL, SOURCE-PROTECTED) keeps that marking:
        // opened, the banners rise to it.
        var member = await fixture.Server.WithDbAsync(db => db.Members.Where(m => m.UserName == "joc").Select(m => m.Id).SingleAsync());
        Assert.True(fixture.Server.Services.GetRequiredService<Concord.Server.Access.MarkingFormat>().Caveats.TryGetBits(["SOURCE-PROTECTED"], out var protectedBit, out _));
        await fixture.Server.WithDbAsync(db =>
        {
            db.TaskComments.Add(new Concord.Server.Coordination.TaskComment
            {
                Id = Guid.NewGuid(),
                TaskId = taskId,
                MemberId = member,
                Author = "joc",
                At = DateTime.UtcNow,
                Text = "Source K-17 confirms the route",
                Classification = 2,
                ReleasableTo = "|org:JOC|",
                Caveats = protectedBit,
            });
            return db.SaveChangesAsync();
        });
        Assert.DoesNotContain("SOURCE-PROTECTED", await page.TextContentAsync("#banner-top"));
        await card.Locator("details.task-comments summary").ClickAsync();
        await page.WaitForSelectorAsync($"#task-board .co-card:has-text('{title}') .comments li:has-text('K-17')");
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '2'", null, new() { Timeout = 5_000 });

        // A read of the boards that fails (a weak link) leaves them as they were and says the page is not up to date; the
        // next read that succeeds brings them up to date.
        await page.RouteAsync("**/api/tasks?**", route => route.AbortAsync());
        var later = title + " later";
        Assert.Equal(HttpStatusCode.Created, (await joc.PostAsJsonAsync("/api/tasks", new { title = later, organization = "JOC", marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "org:JOC" }, caveats = Array.Empty<string>() } })).StatusCode);
        await page.WaitForSelectorAsync("#co-live[data-stale='true']", new() { State = WaitForSelectorState.Attached, Timeout = 10_000 });
        Assert.True(await card.IsVisibleAsync());
        await page.UnrouteAsync("**/api/tasks?**");
        await page.WaitForSelectorAsync("#co-live[data-stale='false']", new() { State = WaitForSelectorState.Attached, Timeout = 15_000 });
        await page.Locator($"#task-board .co-card:has-text('{later}')").WaitForAsync();
    }

    [Fact]
    public async Task A_request_whose_answer_was_lost_is_sent_again_and_stored_once()
    {
        // The request reaches the server, the answer does not (a weak link): the form says the send failed and keeps what
        // was typed; sending again stores nothing more, and the board shows the request once.
        var title = "Water trucking to Kaga-Bandoro " + Guid.NewGuid().ToString("N")[..8];
        var page = await fixture.SignedInAsync("ocha", "/coordination");
        await page.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        await page.SelectOptionAsync("#rq-type", "information");
        await page.SelectOptionAsync("#rq-addressee", "UNPOL");
        await page.FillAsync("#rq-title", title);
        await page.FillAsync("#rq-lat", "6.98");
        await page.FillAsync("#rq-lon", "19.18");
        var start = DateTime.UtcNow.AddDays(1);
        await page.FillAsync("#rq-start", start.ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture));
        await page.FillAsync("#rq-end", start.AddDays(1).ToString("yyyy-MM-dd'T'HH:mm", System.Globalization.CultureInfo.InvariantCulture));
        await LoseFirstAnswerAsync(page, "**/api/requests");

        await page.ClickAsync("#rq-submit");
        await page.WaitForSelectorAsync("#rq-error:not([hidden])");
        Assert.Equal(title, await page.InputValueAsync("#rq-title"));
        await page.ClickAsync("#rq-submit");
        await page.WaitForFunctionAsync("() => document.getElementById('rq-sent').textContent.length > 0");
        await page.WaitForSelectorAsync($"#request-board .co-card:has-text('{title}')");
        Assert.Equal(1, await page.Locator($"#request-board .co-card:has-text('{title}')").CountAsync());
        Assert.Equal(1, await fixture.Server.WithDbAsync(db => db.Requests.CountAsync(r => r.Title == title)));
        // The metrics name request types in the page's language, not by their codes.
        await page.WaitForSelectorAsync("#co-metrics-table td:text-is('Information request')");
        Assert.Equal(0, await page.Locator("#co-metrics-table td:text-is('information')").CountAsync());
    }

    [Fact]
    public async Task A_task_withdrawn_from_an_organisation_leaves_its_open_board()
    {
        // OCHA leads on clashes in a sector of this test's own; its board is open when the JOC's account, released to the
        // JOC and the police only, joins the incident and takes it (and OCHA's task with it) out of OCHA's reach.
        var area = "WD-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await fixture.Server.AddAreaAsync(area, "Withdrawal test sector " + area, -60, 70, -59, 71, kind: "sector");
        using var jocadmin = fixture.Server.ClientFor("jocadmin");
        var agreement = "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var made = await jocadmin.PostAsJsonAsync("/api/agreements", new
        {
            code = agreement,
            name = "Withdrawal test SOP " + agreement,
            parties = new[] { "JOC", "FORCE", "UNPOL", "OCHA" },
            rules = Array.Empty<object>(),
            responsibilities = new[] { new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "OCHA", acknowledgeMinutes = 60 } },
            assistance = Array.Empty<object>(),
        });
        Assert.True(made.StatusCode == HttpStatusCode.Created, await made.Content.ReadAsStringAsync());
        await fixture.Server.Services.GetRequiredService<Concord.Server.Data.MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);

        var page = await fixture.SignedInAsync("ocha", "/coordination");
        await page.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        var narrative = "Clash at the Bossangoa ferry " + area;
        using var unpol = fixture.Server.ClientFor("unpol");
        var opened = await unpol.PostAsJsonAsync("/api/reports", Api.Report(latitude: -59.5, longitude: 70.5, narrative: narrative, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
        var card = $"#task-board .co-card:has-text('{narrative}')";
        await page.WaitForSelectorAsync(card);

        using var joc = fixture.Server.ClientFor("joc");
        var joined = await joc.PostAsJsonAsync("/api/reports", Api.Report(latitude: -59.5, longitude: 70.5, narrative: narrative + ", JOC account.",
            marking: Api.Marking("UNCLASSIFIED", ["org:JOC", "org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, joined.StatusCode);
        // The board is told the task was withdrawn and drops its card (it stayed, open, until something else refreshed it).
        await page.WaitForSelectorAsync(card, new() { State = WaitForSelectorState.Detached });
    }

    /// <summary>The first POST to <paramref name="url"/> reaches the server and its answer is lost (a weak link); later ones pass.</summary>
    private static async Task LoseFirstAnswerAsync(IPage page, string url)
    {
        var lost = 0;
        await page.RouteAsync(url, async route =>
        {
            if (route.Request.Method == "POST" && lost++ == 0)
            {
                await route.FetchAsync();
                await route.AbortAsync("connectionreset");
            }
            else
            {
                await route.ContinueAsync();
            }
        });
    }

    [Fact]
    public async Task A_liaison_entry_whose_answer_was_lost_is_logged_once_when_sent_again()
    {
        var summary = "Chief agreed to the water point survey " + Guid.NewGuid().ToString("N")[..8];
        var page = await fixture.SignedInAsync("ocha", "/coordination");
        await page.WaitForSelectorAsync("#co-live[data-connected='true']", new() { State = WaitForSelectorState.Attached });
        await page.FillAsync("#li-counterpart", "Chief of Ndélé");
        await page.SelectOptionAsync("#li-channel", "visit");
        await page.FillAsync("#li-summary", summary);
        await LoseFirstAnswerAsync(page, "**/api/liaison");

        await page.ClickAsync("#liaison-form button[type='submit']");
        await page.WaitForSelectorAsync("#li-error:not([hidden])");
        Assert.Equal(summary, await page.InputValueAsync("#li-summary"));
        // The entry the first send stored may already be on the log (the live feed tells the page of it): the retry's
        // answer is what empties the form, and then the log holds the entry once.
        await page.ClickAsync("#liaison-form button[type='submit']");
        await page.WaitForFunctionAsync("() => document.getElementById('li-summary').value === ''");
        await page.WaitForSelectorAsync($"#liaison-log tr:has-text('{summary}')");
        Assert.Equal(1, await page.Locator($"#liaison-log tr:has-text('{summary}')").CountAsync());
        Assert.Equal(1, await fixture.Server.WithDbAsync(db => db.LiaisonLog.CountAsync(l => l.Summary == summary)));
    }

    [Fact]
    public Task A_map_read_the_server_fails_is_tried_again() =>
        // A 503 from a proxy or an overloaded server, once: the map says it failed and reads again, as after a network failure.
        MapReadFailingOnceIsTriedAgainAsync(route => route.FulfillAsync(new() { Status = 503, ContentType = "application/problem+json", Body = "{\"status\":503}" }));

    [Fact]
    public Task A_map_answer_cut_off_midway_is_tried_again() =>
        // The link breaks while the answer (streamed) comes: the map says it failed and reads again, rather than saying
        // "Loading" for ever.
        MapReadFailingOnceIsTriedAgainAsync(route => route.FulfillAsync(new() { Status = 200, ContentType = "application/geo+json", Body = "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":" }));

    /// <summary>The map's first read after a move is answered by <paramref name="fail"/>; the map reads again by itself and draws that answer.</summary>
    private async Task MapReadFailingOnceIsTriedAgainAsync(Func<IRoute, Task> fail)
    {
        var page = await fixture.SignedInAsync("force");
        // The live channel's own read of the view (made when it comes up) is done first: it would otherwise be the read
        // that fails, or count as the one after the failure.
        await page.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        var asked = 0;
        var failed = new TaskCompletionSource();
        var readAgain = new TaskCompletionSource();
        await page.RouteAsync("**/api/incidents/map?**", async route =>
        {
            if (Interlocked.Increment(ref asked) == 1)
            {
                await fail(route);
                failed.TrySetResult();
            }
            else
            {
                await route.ContinueAsync();
                readAgain.TrySetResult();
            }
        });
        await page.EvaluateAsync("() => { window.concordMap.map.setView([6.5, 20.5], 7); }");
        await failed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var loads = await page.EvaluateAsync<int>("window.concordMap.loads");
        await readAgain.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await page.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}", null, new() { Timeout = 20_000 });
    }

    [Fact]
    public async Task Tracks_are_drawn_on_a_link_slower_than_their_poll()
    {
        // Each answer comes only once the next poll has asked again (a link slower than the five-second poll): each is
        // still newer than the one drawn, and is drawn (only the newest asked was, so none ever was).
        var page = await fixture.SignedInAsync("force");
        await page.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });
        var waiting = new List<TaskCompletionSource>();
        var body = """{"type":"FeatureCollection","features":[{"type":"Feature","id":"slow-link-track","geometry":{"type":"Point","coordinates":[20.5,6.5]},"properties":{"callsign":"SLOW","level":0,"caveats":0}}]}""";
        await page.RouteAsync("**/api/tracks/geojson?**", async route =>
        {
            var next = new TaskCompletionSource();
            lock (waiting)
            {
                // This request releases the answer of the one before it.
                waiting.LastOrDefault()?.TrySetResult();
                waiting.Add(next);
            }

            await next.Task;
            await route.FulfillAsync(new() { Status = 200, ContentType = "application/geo+json", Body = body });
        });
        await page.WaitForFunctionAsync("() => window.concordMap.tracks.includes('slow-link-track')", null, new() { Timeout = 20_000 });
    }

    [Fact]
    public async Task The_map_zooms_no_closer_than_its_query_answers_and_draws_only_the_newest_answer_of_a_layer()
    {
        var page = await fixture.SignedInAsync("force");
        await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        // Without a tile server nothing limited the zoom: past 22 the map query refused it and the map went blank.
        await page.EvaluateAsync("() => { window.concordMap.map.setZoom(25, { animate: false }); }");
        Assert.Equal(22, await page.EvaluateAsync<int>("window.concordMap.map.getZoom()"));

        // An answer that arrives after a newer one (a weak network) is not drawn: it could hold what was withdrawn since.
        var stale = """{"type":"FeatureCollection","features":[{"type":"Feature","id":"stale-request","geometry":{"type":"Point","coordinates":[20.5,6.5]},"properties":{"kind":"request","type":"escort","title":"stale","status":"open","overdue":false,"marking":"UNCLASSIFIED","classification":0,"caveats":0}}]}""";
        var newestDone = new TaskCompletionSource();
        var staleSent = new TaskCompletionSource();
        var asked = 0;
        await page.RouteAsync("**/api/coordination/geojson", async route =>
        {
            if (Interlocked.Increment(ref asked) == 1)
            {
                await newestDone.Task;
                await route.FulfillAsync(new() { Status = 200, ContentType = "application/geo+json", Body = stale });
                staleSent.SetResult();
            }
            else
            {
                await route.ContinueAsync();
                newestDone.TrySetResult();
            }
        });
        var toggle = page.Locator("#layer-coordination");
        await toggle.UncheckAsync();
        await toggle.CheckAsync();
        await toggle.UncheckAsync();
        await toggle.CheckAsync();
        await staleSent.Task.WaitAsync(TimeSpan.FromSeconds(20));
        // The newest answer drawn, then time for the late one to be read (and, before, drawn over it).
        await page.WaitForFunctionAsync("() => Array.isArray(window.concordMap.coordination)");
        await page.WaitForTimeoutAsync(1000);
        Assert.False(await page.EvaluateAsync<bool>("window.concordMap.coordination.includes('stale-request')"));
    }

    [Fact]
    public async Task Caveat_sets_above_two_to_the_53_are_read_exactly_by_the_pages()
    {
        // The API writes a record's caveats as a 64-bit set; the map's banners are built from the sets of what is on screen.
        // Bits 0 and 60 together are 2^60 + 1, which a plain JSON parse rounds to 2^60 (the caveat of bit 0 lost).
        var page = await fixture.SignedInAsync("force");
        await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        var read = await page.EvaluateAsync<string>("""
            async () => {
              const body = '{"type":"FeatureCollection","features":[{"properties":{"caveats":1152921504606846977,"count":3}}]}';
              const data = await Concord.readJson(new Response(body));
              return data.features[0].properties.caveats.toString() + ' ' + typeof data.features[0].properties.count;
            }
            """);
        Assert.Equal("1152921504606846977 number", read);
    }

    [Fact]
    public async Task Filters_the_time_slider_and_the_layers_change_what_the_map_shows()
    {
        // Three incidents at a place of their own: a police clash 400 days ago, a force clash 20 days ago, a force-reported
        // march marked CONFIDENTIAL.
        var tag = "flt" + Guid.NewGuid().ToString("N")[..8];
        var (lat, lon) = (Store == "sqlite" ? 8.43 : 8.83, 22.54);
        async Task<string> Post(string user, string category, double dLat, double dLon, int daysAgo, string narrative, string classification = "UNCLASSIFIED")
        {
            using var client = fixture.Server.ClientFor(user);
            var response = await client.PostAsJsonAsync("/api/reports", new
            {
                id = Guid.NewGuid(),
                observedAt = DateTimeOffset.UtcNow.AddDays(-daysAgo),
                observedPrecision = "hour",
                location = new { latitude = lat + dLat, longitude = lon + dLon, precisionMeters = 300.0 },
                category,
                casualties = new { killedOther = new { best = 3 } },
                narrative = $"{tag} {narrative}",
                language = "en",
                source = new { reliability = "B", credibility = 2 },
                marking = new { classification, releasableTo = new[] { "mission" }, caveats = Array.Empty<string>() },
            });
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("incidentId").GetString()!;
        }

        var old = await Post("unpol", "acled.battles.armed-clash", 0, 0, 400, "old clash at the river");
        var recent = await Post("force", "acled.battles.armed-clash", 0.08, 0, 20, "recent clash at the river");
        var march = await Post("force", "acled.protests.peaceful-protest", 0, 0.08, 10, "march to the town hall", "CONFIDENTIAL");

        var page = await fixture.SignedInAsync("joc");
        await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        await page.EvaluateAsync($"() => {{ window.concordMap.map.setView([{lat + 0.04}, {lon + 0.04}], 10); }}");
        async Task Shows(string[] present, string[] absent)
        {
            var condition = string.Join(" && ", present.Select(id => $"window.concordMap.ids.includes('{id}')")
                .Concat(absent.Select(id => $"!window.concordMap.ids.includes('{id}')")));
            await page.WaitForFunctionAsync("() => " + condition, null, new() { Timeout = 10_000 });
        }

        await Shows([old, recent, march], []);
        await page.SelectOptionAsync("#f-category", "acled.protests.peaceful-protest");
        await Shows([march], [old, recent]);
        await page.ClickAsync("#f-reset");
        await Shows([old, recent, march], []);
        await page.SelectOptionAsync("#f-organization", "UNPOL");
        await Shows([old], [recent, march]);
        await page.ClickAsync("#f-reset");
        await page.FillAsync("#f-q", "river");
        await Shows([old, recent], [march]);
        await page.ClickAsync("#f-reset");
        await Shows([old, recent, march], []);

        // Status: once an analyst has verified the recent clash, the verified filter shows it alone.
        using (var analyst = fixture.Server.ClientFor("joc"))
        {
            var verified = await analyst.PostAsJsonAsync($"/api/incidents/{recent}/status", new { status = "verified" });
            Assert.True(verified.IsSuccessStatusCode, await verified.Content.ReadAsStringAsync());
        }

        await page.SelectOptionAsync("#f-status", "verified");
        await Shows([recent], [old, march]);
        await page.ClickAsync("#f-reset");

        // Marking: the CONFIDENTIAL filter shows the march alone.
        await page.SelectOptionAsync("#f-classification", "CONFIDENTIAL");
        await Shows([march], [old, recent]);
        await page.ClickAsync("#f-reset");

        // The time slider: at its left end it sets no start (the window says only where it ends: the span is set by
        // unclassified incidents alone, and earlier ones are drawn too); start the window 100 days ago and the old clash
        // leaves the map; the window is written out in words.
        Assert.StartsWith("Up to ", await page.TextContentAsync("#f-window"), StringComparison.Ordinal);
        await page.EvaluateAsync(@"() => {
            const from = document.getElementById('f-from');
            const start = new Date(document.getElementById('map').dataset.start);
            from.value = String(Math.floor((Date.now() - 100 * 86400000 - start.getTime()) / 86400000));
            from.dispatchEvent(new Event('input', { bubbles: true }));
        }");
        await Shows([recent, march], [old]);
        Assert.Contains(" – ", await page.TextContentAsync("#f-window"), StringComparison.Ordinal);
        await Screenshots.ScreenshotAsync(page, $"{Store}-map-filtered");
        await page.ClickAsync("#f-reset");
        await Shows([old, recent, march], []);

        // The sliders crossed (the window's start after its end): the server refuses those filters, and the map shows
        // nothing under them, saying why in the page's language, rather than the last picture read for other filters.
        await page.EvaluateAsync(@"() => {
            const from = document.getElementById('f-from'), to = document.getElementById('f-to');
            to.value = '0';
            from.value = from.max;
            from.dispatchEvent(new Event('input', { bubbles: true }));
        }");
        await page.WaitForFunctionAsync("() => window.concordMap.ids.length === 0 && document.querySelectorAll('#map .incident-icon').length === 0");
        Assert.Equal("The window's start is after its end: move the sliders back.", await page.TextContentAsync("#map-status"));
        await page.ClickAsync("#f-reset");
        await Shows([old, recent, march], []);

        // Tracks: a device of the force at the place appears on the tracks layer, and leaves it when the layer is off.
        var uid = "ANDROID-" + tag;
        await fixture.Server.AddTrackAsync("force", uid, "FORCE-1", lat + 0.02, lon + 0.02);
        await page.WaitForFunctionAsync($"() => window.concordMap.tracks.includes('{uid}')", null, new() { Timeout = 15_000 });

        // A STRICTLY CONFIDENTIAL track in view raises the banners above the CONFIDENTIAL march; without the layer they come down.
        Assert.StartsWith("CONFIDENTIAL", await page.TextContentAsync("#banner-top"));
        await fixture.Server.AddTrackAsync("joc", uid + "-sc", "JOC-1", lat + 0.03, lon + 0.03, classification: 2);
        await page.WaitForFunctionAsync($"() => window.concordMap.tracks.includes('{uid}-sc')", null, new() { Timeout = 15_000 });
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '2'", null, new() { Timeout = 5_000 });
        // Each track shows its marking beside its callsign, as every other record on the map does.
        var tooltips = await page.EvaluateAsync<string[]>("() => { const out = []; window.concordMap.map.eachLayer(l => { const tip = l.getTooltip && l.getTooltip(); if (tip) out.push(String(tip.getContent())); }); return out; }");
        Assert.Contains(tooltips, tip => tip.StartsWith("JOC-1<br>STRICTLY CONFIDENTIAL", StringComparison.Ordinal));
        await page.UncheckAsync("#layer-tracks");
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '1'", null, new() { Timeout = 5_000 });
        // Nor do the incidents once their layer is off: with every layer off, nothing on the map is classified.
        await page.UncheckAsync("#layer-coordination");
        await page.UncheckAsync("#layer-incidents");
        await page.WaitForFunctionAsync("() => document.getElementById('banner-top').dataset.level === '0'", null, new() { Timeout = 5_000 });
        // The line counting them goes with them: it is figures drawn from the incidents.
        Assert.False(await page.IsVisibleAsync("#map-status"));
        await page.CheckAsync("#layer-incidents");
        Assert.True(await page.IsVisibleAsync("#map-status"));
        await page.CheckAsync("#layer-coordination");
        await page.CheckAsync("#layer-tracks");

        // The risk layer: off by default; with forecasts computed, switching it on shades cells. A forecast learns from at
        // least 25 months of open history: two and a half years of it at the place.
        using (var history = fixture.Server.ClientFor("force"))
        {
            for (var months = 3; months <= 30; months += 3)
            {
                var posted = await history.PostAsJsonAsync("/api/reports", Api.Report(narrative: $"Clash at the river, {months} months ago ({tag})", latitude: lat, longitude: lon,
                    observedAt: DateTimeOffset.UtcNow.AddMonths(-months), marking: Api.Marking("UNCLASSIFIED", ["mission"])));
                Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
            }
        }

        await using (var scope = fixture.Server.Services.CreateAsyncScope())
        {
            Assert.NotNull(await scope.ServiceProvider.GetRequiredService<Concord.Server.EarlyWarning.ForecastService>().RunAsync(CancellationToken.None));
        }

        Assert.Equal(0, await page.EvaluateAsync<int>("window.concordMap.riskCells"));
        // Without animation: a zoom animated here could end after the moves below, and take the map back here.
        await page.EvaluateAsync("() => { window.concordMap.map.setView([6.5, 20.5], 6, { reset: true }); }");
        await page.CheckAsync("#layer-risk");
        try
        {
            await page.WaitForFunctionAsync("() => window.concordMap.riskCells > 0", null, new() { Timeout = 10_000 });
        }
        catch (TimeoutException)
        {
            var diag = await page.EvaluateAsync<string>("async () => { const r = await fetch('/api/early-warning/forecasts?bbox=' + window.concordMap.map.getBounds().toBBoxString()); return r.status + ' ' + (await r.text()).slice(0, 600); }");
            throw new InvalidOperationException("the risk layer shaded no cell; the forecasts in view: " + diag);
        }
        await page.WaitForSelectorAsync("#risk-skill:not([hidden])", new() { State = WaitForSelectorState.Attached });
        // The back-test's scores as the page writes numbers (they were printed to the last digit of a double).
        Assert.Matches(@"Concord \d+\.\d{4}, all zeros \d+\.\d{4}, conflictology \d+\.\d{4}\.", await page.TextContentAsync("#risk-skill"));
        // Zoomed in on a town inside the cell, the screen holds no cell's centre: the cell under it is still shaded (the API
        // keeps cells by their centre, and the layer asked for the screen alone).
        var (cellLat, cellLon) = (Math.Floor(lat * 2) / 2 + 0.25, Math.Floor(lon * 2) / 2 + 0.25);
        await page.EvaluateAsync("() => { window.concordMap.map.setView([-60.1, -150.1], 12, { reset: true }); }");
        await page.WaitForFunctionAsync("() => window.concordMap.riskCells === 0", null, new() { Timeout = 10_000 });
        await page.EvaluateAsync(FormattableString.Invariant($"() => {{ window.concordMap.map.setView([{cellLat + 0.2}, {cellLon - 0.2}], 12, {{ reset: true }}); }}"));
        await page.WaitForFunctionAsync("() => window.concordMap.riskCells > 0", null, new() { Timeout = 10_000 });
        await page.ClickAsync("#lang-fr");
        await page.WaitForSelectorAsync("html[lang='fr']");
        await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        await page.CheckAsync("#layer-risk");
        await page.WaitForSelectorAsync("#risk-skill:not([hidden])", new() { State = WaitForSelectorState.Attached });
        Assert.Matches(@"Concord \d+,\d{4}, zéros \d+,\d{4}, conflictologie \d+,\d{4}\.", await page.TextContentAsync("#risk-skill"));
    }

    /// <summary>Posts again what a form sent (kept in session storage under <paramref name="saved"/>), and reads the page it answers.</summary>
    private static Task<JsonElement> ResendAsync(IPage page, string saved) => page.EvaluateAsync<JsonElement>("""
        async saved => {
            const body = new URLSearchParams();
            for (const [k, v] of JSON.parse(sessionStorage[saved])) body.append(k, v);
            const r = await fetch(location.pathname, { method: 'POST', body });
            const html = new DOMParser().parseFromString(await r.text(), 'text/html');
            return { status: r.status, done: html.querySelector('#correction-done')?.textContent ?? null,
                into: html.querySelector('#split-into')?.getAttribute('href') ?? null, error: html.querySelector('#correction-error')?.textContent ?? null };
        }
        """, saved);

    [Fact]
    public async Task An_analyst_splits_and_merges_incidents_on_the_incident_page()
    {
        // Two accounts of one event, fused by Concord.
        using var api = fixture.Server.ClientFor("force");
        var at = new DateTimeOffset(2026, 8, 3, 7, 0, 0, TimeSpan.Zero).AddDays(-(Store.Length * 9));
        object Account(double lat, string narrative) => new
        {
            id = Guid.NewGuid(),
            observedAt = at,
            location = new { latitude = lat, longitude = 22.4, precisionMeters = 1000 },
            category = "ucdp.one-sided",
            casualties = new { killedCivilian = new { best = 3 } },
            narrative,
            language = "en",
            actors = new[] { "LRA", "Civilians" },
            source = new { reliability = "B", credibility = 2 },
            marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "mission" }, caveats = Array.Empty<string>() },
        };
        var first = await (await api.PostAsJsonAsync("/api/reports", Account(9.1, "LRA raided Sam Ouandja, three villagers killed."))).Content.ReadFromJsonAsync<JsonElement>();
        var second = await (await api.PostAsJsonAsync("/api/reports", Account(9.105, "Three civilians killed by LRA at Sam Ouandja."))).Content.ReadFromJsonAsync<JsonElement>();
        var incident = first.GetProperty("incidentId").GetString();
        Assert.Equal(incident, second.GetProperty("incidentId").GetString());

        var page = await fixture.SignedInAsync("joc", "/incidents/" + incident);
        Assert.Equal(2, await page.Locator(".timeline .report").CountAsync());
        Assert.Contains("score", await page.TextContentAsync($"#report-{second.GetProperty("id").GetString()} .provenance"));
        // Both ticked: refused (a split leaves a report behind), and both come back ticked (they came back empty), each box
        // named by its report for a screen reader (each read "Split off").
        var boxes = new[] { first, second }.Select(r => page.Locator($"input[name='split'][value='{r.GetProperty("id").GetString()}']")).ToList();
        foreach (var box in boxes)
        {
            await box.CheckAsync();
        }

        await page.ClickAsync("#split-submit");
        await page.WaitForSelectorAsync("#correction-error");
        // Judged once the page's scripts have had their time with it, not only as the answer drew it.
        await Task.Delay(1000);
        foreach (var box in boxes)
        {
            Assert.True(await box.IsCheckedAsync());
            Assert.StartsWith("Split off: ", await box.GetAttributeAsync("aria-label"), StringComparison.Ordinal);
        }

        await boxes[0].UncheckAsync();
        await page.CheckAsync($"input[name='split'][value='{second.GetProperty("id").GetString()}']");
        // What the form sends, kept (the answer is a new page) to send it again as a double click or a resend after a lost answer would.
        await page.EvaluateAsync("() => { sessionStorage.splitSent = JSON.stringify([...new FormData(document.querySelector('#split-form')).entries()]); }");
        await page.ClickAsync("#split-submit");
        await page.WaitForSelectorAsync("#correction-done");
        Assert.Equal(1, await page.Locator(".timeline .report").CountAsync());
        var into = (await page.GetAttributeAsync("#split-into", "href"))!;

        // Sent again, the split is not an error: the page says the reports already moved, and where.
        var again = await ResendAsync(page, "splitSent");
        Assert.Equal(200, again.GetProperty("status").GetInt32());
        Assert.Equal(JsonValueKind.Null, again.GetProperty("error").ValueKind);
        Assert.Contains("already moved", again.GetProperty("done").GetString());
        Assert.Equal(into, again.GetProperty("into").GetString());
        await Screenshots.ScreenshotAsync(page, $"{Store}-incident-split");

        // In the incident the split made, its one report ticked is refused with the reason, not "already moved" into itself.
        await page.GotoAsync(into);
        await page.CheckAsync($"input[name='split'][value='{second.GetProperty("id").GetString()}']");
        await page.ClickAsync("#split-submit");
        await page.WaitForSelectorAsync("#correction-error");
        Assert.Contains("leave at least one", await page.TextContentAsync("#correction-error"));
        Assert.Equal(0, await page.Locator("#correction-done").CountAsync());
        await page.GotoAsync("/incidents/" + incident);

        await page.FillAsync("#merge-ids", into);
        await page.EvaluateAsync("() => { sessionStorage.mergeSent = JSON.stringify([...new FormData(document.querySelector('#merge-form')).entries()]); }");
        await page.ClickAsync("#merge-submit");
        await page.WaitForSelectorAsync("#correction-done");
        Assert.Equal(2, await page.Locator(".timeline .report").CountAsync());
        // Sent again, the merge is not an error either ("no incident …"): the page says it was done.
        var mergedAgain = await ResendAsync(page, "mergeSent");
        Assert.Equal(200, mergedAgain.GetProperty("status").GetInt32());
        Assert.Equal(JsonValueKind.Null, mergedAgain.GetProperty("error").ValueKind);
        Assert.Contains("already merged", mergedAgain.GetProperty("done").GetString());
        Assert.Equal((int)HttpStatusCode.NotFound, (await page.GotoAsync(into))!.Status);

        // In French, a mistyped entry is named as typed under the field's label, and the service's reasons are in French.
        await page.GotoAsync("/incidents/" + incident);
        await page.ClickAsync("#lang-fr");
        await page.WaitForSelectorAsync("html[lang='fr']");
        await page.FillAsync("#merge-ids", "abc, " + into);
        await page.ClickAsync("#merge-submit");
        await page.WaitForSelectorAsync("#correction-error");
        Assert.Equal("Incidents décrivant le même événement (identifiants ou liens) : 'abc' n'est ni un identifiant ni un lien d'incident",
            await page.TextContentAsync("#correction-error"));
        // The incident merged a moment ago, named again by the analyst who merged it: said to be merged already.
        await page.FillAsync("#merge-ids", into);
        await page.ClickAsync("#merge-submit");
        await page.WaitForFunctionAsync("() => document.querySelector('#correction-done')?.textContent.includes('déjà été fusionnés')");
        // An incident that is not there: named, in French.
        var nowhere = Guid.NewGuid().ToString();
        await page.FillAsync("#merge-ids", nowhere);
        await page.ClickAsync("#merge-submit");
        await page.WaitForFunctionAsync("() => document.querySelector('#correction-error')?.textContent.includes('aucun incident')");
        Assert.EndsWith("aucun incident " + nowhere, await page.TextContentAsync("#correction-error"));
        // A link to the incident merged away finds the not-found page, in the member's language, not a bare problem document.
        Assert.Equal((int)HttpStatusCode.NotFound, (await page.GotoAsync(into))!.Status);
        Assert.Equal("Introuvable", await page.TextContentAsync("#not-found h1"));

        // A reporter sees no correction forms.
        var reporter = await fixture.SignedInAsync("rwabatt", "/incidents/" + incident);
        Assert.Equal(0, await reporter.Locator("#split-form").CountAsync());
    }

    [Fact]
    public async Task The_incident_page_reads_itself_again_when_the_incident_changes_unless_a_correction_is_being_typed()
    {
        using var api = fixture.Server.ClientFor("force");
        var created = await (await api.PostAsJsonAsync("/api/reports", new
        {
            id = Guid.NewGuid(),
            observedAt = new DateTimeOffset(2026, 7, 14, 9, 0, 0, TimeSpan.Zero).AddDays(-(Store.Length * 11)),
            location = new { latitude = 8.3 + (Store.Length * 0.01), longitude = 19.2, precisionMeters = 500 },
            category = "ucdp.one-sided",
            narrative = "Looting at the market of Kabo " + Store,
            language = "en",
            source = new { reliability = "B", credibility = 2 },
            marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "mission" }, caveats = Array.Empty<string>() },
        })).Content.ReadFromJsonAsync<JsonElement>();
        var incident = created.GetProperty("incidentId").GetString();
        var page = await fixture.SignedInAsync("force", "/incidents/" + incident);
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        await page.EvaluateAsync("() => { window.readBefore = true; }");

        // Verified elsewhere: the page reads itself again and shows it.
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incident}/status", new { status = "verified" })).StatusCode);
        await page.WaitForFunctionAsync("() => document.getElementById('incident-changed')?.dataset.version.startsWith('verified|') && window.readBefore === undefined");

        // With ids typed to merge, the page stays as it is and says the incident changed; its link reads it again.
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        await page.FillAsync("#merge-ids", "typed-but-not-sent");
        await page.EvaluateAsync("() => { window.readBefore = true; }");
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incident}/status", new { status = "closed" })).StatusCode);
        await page.WaitForSelectorAsync("#incident-changed:not([hidden])");
        Assert.Equal("typed-but-not-sent", await page.InputValueAsync("#merge-ids"));
        Assert.True(await page.EvaluateAsync<bool>("window.readBefore === true"));
        await page.ClickAsync("#incident-changed-read");
        await page.WaitForFunctionAsync("() => document.getElementById('incident-changed')?.dataset.version.startsWith('closed|')");
        Assert.Equal("", await page.InputValueAsync("#merge-ids"));

        // Merged away by another analyst while a correction is typed: the incident is gone, and what the page showed of it
        // is not kept on screen (a correction of it could not be made anyway). (Reopened first: a closed incident is not merged.)
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incident}/status", new { status = "verified", from = "closed" })).StatusCode);
        await page.WaitForFunctionAsync("() => document.getElementById('incident-changed')?.dataset.version.startsWith('verified|')");
        var other = (await (await api.PostAsJsonAsync("/api/reports", Api.Report(latitude: 5.05 + (Store.Length * 0.01), longitude: 16.25, narrative: "Cattle market of Berberati " + Store,
            marking: Api.Marking("UNCLASSIFIED", ["mission"])))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("incidentId").GetString();
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        await page.FillAsync("#merge-ids", "typed-again");
        using var joc = fixture.Server.ClientFor("joc");
        var merged = await joc.PostAsJsonAsync($"/api/incidents/{other}/merge", new { incidents = new[] { incident } });
        Assert.True(merged.IsSuccessStatusCode, await merged.Content.ReadAsStringAsync());
        await page.WaitForFunctionAsync("() => document.getElementById('incident-changed') === null", null, new() { Timeout = 15_000 });
        Assert.DoesNotContain("Looting at the market of Kabo", await page.ContentAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_incident_page_whose_re_read_fails_hides_the_incident_until_it_is_read()
    {
        using var api = fixture.Server.ClientFor("force");
        var created = await (await api.PostAsJsonAsync("/api/reports", Api.Report(latitude: 8.9 + (Store.Length * 0.01), longitude: 19.9,
            narrative: "Shots fired at the Kaga checkpoint " + Store, marking: Api.Marking("UNCLASSIFIED", ["mission"])))).Content.ReadFromJsonAsync<JsonElement>();
        var incident = created.GetProperty("incidentId").GetString()!;
        var page = await fixture.SignedInAsync("force", "/incidents/" + incident);
        await page.WaitForFunctionAsync("() => Concord.connections.length > 0 && Concord.connections[0].state === 'Connected'");
        Assert.True(await page.IsVisibleAsync("#incident-body"));

        // The incident changes (a clearance lowered or a report split out alike) on a link that fails: what the page showed
        // goes, and it says why.
        await page.RouteAsync("**/incidents/" + incident, route => route.AbortAsync("connectionreset"));
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync($"/api/incidents/{incident}/status", new { status = "verified" })).StatusCode);
        await page.WaitForSelectorAsync("#incident-unread", new() { State = WaitForSelectorState.Visible });
        Assert.False(await page.IsVisibleAsync("#incident-body"));

        // The link back, the page is read again by itself and shows the incident as it is now.
        await page.UnrouteAsync("**/incidents/" + incident);
        await page.WaitForFunctionAsync("() => document.getElementById('incident-changed')?.dataset.version.startsWith('verified|')", null, new() { Timeout = 20_000 });
        Assert.True(await page.IsVisibleAsync("#incident-body"));
        Assert.False(await page.IsVisibleAsync("#incident-unread"));
    }

    [Fact]
    public async Task The_early_warning_page_shows_spikes_hotspots_history_and_skill()
    {
        var page = await fixture.SignedInAsync("force", "/early-warning");
        await page.WaitForSelectorAsync("#spikes");
        await page.WaitForSelectorAsync("#hotspots");
        Assert.Equal(5, await page.Locator("#skill tbody tr").CountAsync());
        Assert.True(await page.Locator("#history-empty").CountAsync() + await page.Locator("canvas[id^='history-']").CountAsync() > 0);
        Assert.Contains("Early warning", await page.TextContentAsync("nav"));

        // Live spike alerts: six UNPOL-only incidents in a quiet area alert UNPOL's open page, not FORCE's.
        var code = "EWUI-" + Guid.NewGuid().ToString("N")[..6];
        await fixture.Server.AddAreaAsync(code, "Spike test prefecture " + Store, -30, 44, -28, 46);
        var unpol = await fixture.SignedInAsync("unpol", "/early-warning");
        await page.ReloadAsync();
        await unpol.WaitForFunctionAsync("() => document.body && window.Concord && Concord.received !== undefined");
        await Task.Delay(1000);
        using var api = fixture.Server.ClientFor("unpol");
        // Spikes are judged against the mission's reporting before them: here it has reported for most of a year (one
        // incident 300 days ago, elsewhere). Without any, a quiet area cannot be told from a mission that has just begun,
        // and no alert is raised (EarlyWarningApiTests).
        var unpolOnly = new { classification = "CONFIDENTIAL", releasableTo = new[] { "org:UNPOL" }, caveats = Array.Empty<string>() };
        await RiotAsync(api, DateTimeOffset.UtcNow.AddDays(-300), -31.5, 47.5, "An older riot outside the spike test prefecture", unpolOnly);
        for (var i = 0; i < 6; i++)
        {
            await RiotAsync(api, DateTimeOffset.UtcNow.AddDays(-1 - (4 * i)), -29.0 + (i * 0.1), 45.0, $"Riot {i} in the spike test prefecture", unpolOnly);
        }

        await unpol.WaitForSelectorAsync("#spike-alert:not([hidden])", new() { Timeout = 30_000 });
        Assert.Contains("Spike test prefecture", await unpol.TextContentAsync("#spike-alert"));
        Assert.Equal(1, await unpol.Locator($"#spikes tr.alert[data-area='{code}']").CountAsync());
        await Screenshots.ScreenshotAsync(unpol, $"{Store}-early-warning");
        await Task.Delay(1500);
        Assert.True(await page.IsHiddenAsync("#spike-alert"));
        Assert.Equal(0, await page.Locator($"#spikes tr[data-area='{code}'].alert").CountAsync());

        // The live channel drops and comes back: what changed meanwhile was pushed to nobody, so the page (hotspots,
        // history and forecasts are rendered by the server) is read again whole.
        await unpol.EvaluateAsync("window.__notReloaded = true");
        await unpol.EvaluateAsync("Concord.connections[0].stop()");
        await unpol.WaitForFunctionAsync("() => window.__notReloaded !== true", null, new() { Timeout = 20_000 });
        await unpol.WaitForSelectorAsync("#spikes", new() { State = WaitForSelectorState.Attached });
    }

    private static async Task RiotAsync(HttpClient api, DateTimeOffset at, double latitude, double longitude, string narrative, object? marking = null)
    {
        var response = await api.PostAsJsonAsync("/api/reports", new
        {
            id = Guid.NewGuid(),
            observedAt = at,
            location = new { latitude, longitude, precisionMeters = 500 },
            category = "acled.riots.violent-demonstration",
            narrative,
            language = "en",
            source = new { reliability = "C", credibility = 3 },
            marking,
        });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Force's early-warning page after its first live read of the spikes, and how many reads it has made.</summary>
    private async Task<(IPage Page, string Refreshed)> SpikesPageAsync()
    {
        var page = await fixture.SignedInAsync("force", "/early-warning");
        await page.WaitForFunctionAsync("() => Number(document.body.dataset.spikesRefreshed || 0) >= 1");
        return (page, await page.EvaluateAsync<string>("document.body.dataset.spikesRefreshed"));
    }

    /// <summary>
    /// Force's early-warning page once a riot of the force's (which changes what the spikes count) has made it read the
    /// spikes again, live, answered with <paramref name="body"/>.
    /// </summary>
    private async Task<IPage> SpikesReadLiveAsync(string body, double latitude, double longitude, string narrative)
    {
        var (page, refreshed) = await SpikesPageAsync();
        await page.RouteAsync("**/api/early-warning/spikes", route => route.FulfillAsync(new() { ContentType = "application/json", Body = body }));
        using var api = fixture.Server.ClientFor("force");
        await RiotAsync(api, DateTimeOffset.UtcNow.AddHours(-2), latitude, longitude, narrative);
        await page.WaitForFunctionAsync($"() => Number(document.body.dataset.spikesRefreshed) > {refreshed}");
        return page;
    }

    [Fact]
    public async Task A_spike_without_a_rate_is_shown_with_a_dash_when_read_live()
    {
        // A mission reporting for less than its baseline has no rate yet: the server leaves expected and probability out
        // (EarlyWarningApiTests), and the live table says so as the server-rendered one does, rather than "NaN".
        var page = await SpikesReadLiveAsync("{\"items\":[{\"area\":\"NEW-1\",\"name\":\"New sector\",\"recent\":3,\"baseline\":0,\"alert\":false}],\"classification\":\"UNCLASSIFIED\",\"caveats\":[]}",
            -33.5, 47.5, "A riot the spike table hears of");
        var cells = await page.Locator("#spikes tr[data-area='NEW-1'] td").AllTextContentsAsync();
        Assert.Equal(["New sector", "3", "0", "–", "–", "–"], cells);
    }

    [Fact]
    public async Task A_spike_tables_caption_names_the_window_its_live_counts_are_of()
    {
        // The window ends at the latest incident the member may see: a newer one moves it, and the table was read for the
        // new window under a caption still naming the old end and the old number of baseline days.
        var page = await SpikesReadLiveAsync("{\"at\":\"2031-03-04T00:00:00+00:00\",\"days\":30,\"baselineDays\":365,\"baselineObservedDays\":77,\"threshold\":0.01,"
            + "\"items\":[{\"area\":\"NEW-2\",\"name\":\"Later sector\",\"recent\":1,\"baseline\":0,\"alert\":false}],\"classification\":\"UNCLASSIFIED\",\"caveats\":[]}",
            -33.3, 47.3, "A riot that moves the spike window");

        var caption = await page.Locator("#spikes-hint").TextContentAsync();
        Assert.Contains("Incidents in the last 30 days to 04/03/2031 against each area's own rate over the 77 days before", caption, StringComparison.Ordinal);
        Assert.Contains("below 0.01 ", caption, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_spike_table_whose_live_read_fails_reads_again_by_itself()
    {
        // The read a change asks for fails (a 503 from a proxy, a weak link): the table is read again five seconds later,
        // not left as it was until some later change (a new alert would go unannounced meanwhile).
        var (page, refreshed) = await SpikesPageAsync();
        var failed = 0;
        await page.RouteAsync("**/api/early-warning/spikes", async route =>
        {
            if (Interlocked.Increment(ref failed) == 1)
            {
                await route.FulfillAsync(new() { Status = 503, Body = "unavailable" });
            }
            else
            {
                await route.ContinueAsync();
            }
        });

        using var api = fixture.Server.ClientFor("force");
        await RiotAsync(api, DateTimeOffset.UtcNow.AddHours(-2), -33.7, 47.7, "A riot whose spike read fails once");
        await page.WaitForFunctionAsync($"() => Number(document.body.dataset.spikesRefreshed) > {refreshed}", null, new() { Timeout = 15_000 });
        Assert.True(Volatile.Read(ref failed) >= 2);
    }

    [Fact]
    public async Task Invalid_fields_are_shown_next_to_the_fields_and_nothing_is_saved()
    {
        var page = await fixture.SignedInAsync("force", "/report");
        var id = await page.InputValueAsync("input[name='Input.Id']");
        await page.FillAsync("#r-lat", "95");
        await page.FillAsync("#r-lon", "20.5");
        await page.FillAsync("#r-killed-other", "two");
        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-errors");
        Assert.Contains("[-90, 90]", await page.TextContentAsync("#err-location-latitude"));
        Assert.Equal("true", await page.GetAttributeAsync("#r-lat", "aria-invalid"));
        Assert.NotNull(await page.QuerySelectorAsync("#err-casualties-killedOther"));
        // What was typed is kept, and the same report id goes out again with the corrected form.
        Assert.Equal("20.5", await page.InputValueAsync("#r-lon"));
        Assert.Equal(id, await page.InputValueAsync("input[name='Input.Id']"));
        // What is shown back was typed for a marking the agreement chooses: the banners are at the most the member could
        // have written (their clearance), not below it.
        Assert.StartsWith("CONFIDENTIAL", await page.TextContentAsync("#banner-top"));
        await Screenshots.ScreenshotAsync(page, $"{Store}-report-errors");
        using var api = fixture.Server.ClientFor("force");
        Assert.Equal(HttpStatusCode.NotFound, (await api.GetAsync($"/api/reports/{id}")).StatusCode);

        // Corrected, it is saved under that id.
        await page.FillAsync("#r-lat", "5.5");
        await page.FillAsync("#r-killed-other", "");
        await page.SelectOptionAsync("#r-category", "poc.forced-displacement");
        await page.FillAsync("#r-narrative", "Families leaving the village after threats.");
        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-saved");
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync($"/api/reports/{id}")).StatusCode);
        Assert.StartsWith("UNCLASSIFIED", await page.TextContentAsync("#banner-top"));

        // Marked by hand, the form shown back after an error carries that marking's banners.
        await page.CheckAsync("#r-marking-explicit");
        await page.SelectOptionAsync("#r-classification", "UNCLASSIFIED");
        await page.FillAsync("#r-lat", "95");
        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-errors");
        Assert.StartsWith("UNCLASSIFIED", await page.TextContentAsync("#banner-top"));

        // A protected source typed and shown back is under SOURCE-PROTECTED, whatever the marking chosen.
        Assert.DoesNotContain("SOURCE-PROTECTED", await page.TextContentAsync("#banner-top"));
        await page.FillAsync("#r-protected", "Informant K-17");
        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-errors");
        Assert.Equal("Informant K-17", await page.InputValueAsync("#r-protected"));
        Assert.Contains("SOURCE-PROTECTED", await page.TextContentAsync("#banner-top"));
    }

    [Fact]
    public async Task A_report_sent_after_the_session_ended_is_kept_through_signing_in_again()
    {
        var page = await fixture.SignedInAsync("force", "/report");
        var id = await page.InputValueAsync("input[name='Input.Id']");
        var narrative = "Armed men seen at the ferry landing " + id[..8];
        await page.FillAsync("#r-lat", "4.37");
        await page.FillAsync("#r-lon", "18.55");
        await page.SelectOptionAsync("#r-category", "poc.forced-displacement");
        await page.FillAsync("#r-narrative", narrative);
        // The session ends while the form is open (here signed out from another tab of the same browser).
        await page.EvaluateAsync("fetch('/api/auth/signout', { method: 'POST' })");

        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-held-notice");
        Assert.DoesNotContain(narrative, await page.InnerTextAsync("body"), StringComparison.Ordinal);
        await page.FillAsync("#held-user", "force");
        await page.FillAsync("#held-password", TestServer.Password);
        await page.ClickAsync("#held-signin");
        await page.WaitForSelectorAsync("#report-held-signedin");
        await page.ClickAsync("#report-resume");
        await page.WaitForSelectorAsync("#report-stale");
        Assert.Equal(narrative, await page.InputValueAsync("#r-narrative"));
        Assert.Equal("4.37", await page.InputValueAsync("#r-lat"));
        using var api = fixture.Server.ClientFor("force");
        Assert.Equal(HttpStatusCode.NotFound, (await api.GetAsync($"/api/reports/{id}")).StatusCode);

        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-saved");
        var report = await api.GetFromJsonAsync<JsonElement>($"/api/reports/{id}");
        Assert.Equal(narrative, report.GetProperty("narrative").GetString());
    }

    [Fact]
    public async Task Sending_the_same_form_again_after_a_dropped_connection_creates_one_report()
    {
        var page = await fixture.SignedInAsync("unpol", "/report");
        var id = await page.InputValueAsync("input[name='Input.Id']");
        var narrative = "Checkpoint closed on the road to Sibut " + id[..8];

        // The place can be picked on the form's map: a click fills latitude and longitude (inside the mission) and marks it.
        await page.WaitForSelectorAsync("#pick-map.leaflet-container");
        Assert.Equal("", await page.InputValueAsync("#r-lat"));
        await page.ClickAsync("#pick-map");
        var bounds = (await page.GetAttributeAsync("#pick-map", "data-bounds"))!.Split(',').Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var picked = (Lat: double.Parse(await page.InputValueAsync("#r-lat"), System.Globalization.CultureInfo.InvariantCulture),
            Lon: double.Parse(await page.InputValueAsync("#r-lon"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(picked.Lat, bounds[1], bounds[3]);
        Assert.InRange(picked.Lon, bounds[0], bounds[2]);
        Assert.Equal(1, await page.Locator("#pick-map .leaflet-marker-icon").CountAsync());

        await page.FillAsync("#r-lat", "5.7");
        await page.FillAsync("#r-lon", "19.1");
        await page.SelectOptionAsync("#r-category", "ocha-access.4-restriction-of-movement");
        await page.FillAsync("#r-narrative", narrative);

        // The first answer is lost on the way back: the server has the report, the browser never hears so.
        var dropped = 0;
        await page.RouteAsync("**/report", async route =>
        {
            if (route.Request.Method == "POST" && dropped++ == 0)
            {
                await route.FetchAsync();
                await route.AbortAsync("connectionreset");
            }
            else
            {
                await route.ContinueAsync();
            }
        });
        var form = await page.EvaluateAsync<string>("new URLSearchParams(new FormData(document.getElementById('report-form'))).toString()");
        await page.ClickAsync("#report-submit").ContinueWith(_ => { }, TaskScheduler.Default);
        await page.WaitForTimeoutAsync(500);
        Assert.Equal(1, dropped);

        // The member sends the same form again (the browser resends what it had).
        var again = await page.APIRequest.PostAsync("/report", new() { Headers = new Dictionary<string, string> { ["Content-Type"] = "application/x-www-form-urlencoded" }, Data = form });
        Assert.Equal(200, again.Status);
        Assert.Contains("already been received", await again.TextAsync());

        using var api = fixture.Server.ClientFor("unpol");
        var found = await api.GetFromJsonAsync<JsonElement>("/api/reports?q=" + Uri.EscapeDataString(narrative));
        Assert.Equal(1, found.GetProperty("items").GetArrayLength());
        Assert.Equal(id, found.GetProperty("items")[0].GetProperty("id").GetString());

        // Sent again with a detail added since: what was received stands, and the page says so; the changed form comes back
        // under a new id (under the old one every later send would conflict too), and its next send files it as a new report.
        var changed = narrative + ", two trucks turned back";
        var headers = new Dictionary<string, string> { ["Content-Type"] = "application/x-www-form-urlencoded" };
        var edited = With(form, "Input.Narrative", changed);
        var conflicted = await page.APIRequest.PostAsync("/report", new() { Headers = headers, Data = edited });
        Assert.Equal(422, conflicted.Status);
        var html = await conflicted.TextAsync();
        Assert.Contains("already been sent and received, with other content", html);
        Assert.Contains("id=\"resent-incident\"", html);
        Assert.Contains(System.Net.WebUtility.HtmlEncode(changed), html);
        var newId = System.Text.RegularExpressions.Regex.Match(html, "name=\"Input.Id\" value=\"([^\"]+)\"").Groups[1].Value;
        Assert.True(Guid.TryParse(newId, out _) && newId != id, newId);
        var filed = await page.APIRequest.PostAsync("/report", new() { Headers = headers, Data = With(edited, "Input.Id", newId) });
        Assert.Equal(200, filed.Status);
        Assert.Contains("Report received.", await filed.TextAsync());
        var both = await api.GetFromJsonAsync<JsonElement>("/api/reports?q=" + Uri.EscapeDataString(narrative));
        Assert.Equal(new[] { id, newId }.Order(), both.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("id").GetString()!).Order());

        // The form's encoded fields with one field's value replaced.
        static string With(string encoded, string field, string value) =>
            string.Join('&', encoded.Split('&').Select(pair => pair.StartsWith(field + "=", StringComparison.Ordinal) ? $"{field}={Uri.EscapeDataString(value)}" : pair));
    }

    [Fact]
    public async Task The_interface_speaks_French_with_French_dates_and_numbers()
    {
        async Task MarchAsync(DateTimeOffset at, double latitude, double longitude, string narrative)
        {
            using var api = fixture.Server.ClientFor("force");
            var created = await api.PostAsJsonAsync("/api/reports", new
            {
                id = Guid.NewGuid(),
                observedAt = at,
                location = new { latitude, longitude },
                category = "acled.protests.peaceful-protest",
                narrative,
                language = "en",
                source = new { reliability = "B", credibility = 2 },
            });
            Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        }

        // Something to list: a report FORCE may see; and a planned patrol of FORCE for the map's coordination layer.
        await MarchAsync(new DateTimeOffset(2026, 3, 14, 9, 30, 0, TimeSpan.Zero), 4.36, 18.55, "Peaceful march in Bangui.");
        var patrolName = "Patrouille " + Guid.NewGuid().ToString("N")[..6];
        string patrolId;
        using (var api = fixture.Server.ClientFor("force"))
        {
            var patrol = await api.PostAsJsonAsync("/api/patrols", new
            {
                name = patrolName,
                organizations = new[] { "FORCE" },
                route = new[] { new[] { 18.55, 4.36 }, new[] { 18.60, 4.40 } },
                startsAt = DateTimeOffset.UtcNow.AddHours(1),
                endsAt = DateTimeOffset.UtcNow.AddHours(4),
            });
            Assert.True(patrol.IsSuccessStatusCode, await patrol.Content.ReadAsStringAsync());
            patrolId = (await patrol.Json()).GetProperty("id").GetString()!;
        }

        var page = await fixture.PageAsync();
        await page.GotoAsync("/signin");
        await page.ClickAsync("#lang-fr");
        await page.WaitForSelectorAsync("html[lang='fr']");
        Assert.Equal("Connexion", await page.TextContentAsync("h1"));
        await page.FillAsync("#username", "force");
        await page.FillAsync("#password", TestServer.Password);
        await page.ClickAsync("#signin");
        await page.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/");
        Assert.Equal("Carte", await page.TextContentAsync("nav a[href='/']"));
        Assert.Contains("Habilitation", await page.TextContentAsync("#member-clearance"));
        await page.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        Assert.Contains("incidents", await page.TextContentAsync("#map-status"));
        // The patrol's kind and status in the page's language (its status was shown as its code, "planned").
        await page.WaitForFunctionAsync($"() => window.concordMap.coordination.includes('{patrolId}')");
        var tooltips = await page.EvaluateAsync<string[]>("() => { const out = []; window.concordMap.map.eachLayer(l => { const tip = l.getTooltip && l.getTooltip(); if (tip) out.push(String(tip.getContent())); }); return out; }");
        Assert.Contains(tooltips, tip => tip.StartsWith($"{patrolName} · patrouille conjointe · planifiée", StringComparison.Ordinal));
        await Screenshots.ScreenshotAsync(page, $"{Store}-map-fr");

        await page.GotoAsync("/report");
        Assert.Equal("Nouveau rapport", await page.TextContentAsync("h1"));
        Assert.Contains("Affrontement armé", await page.InnerHTMLAsync("#r-category"));
        await page.GotoAsync("/incidents");
        Assert.Contains("incidents", await page.TextContentAsync("#list-count"));
        // The live list (a server circuit) keeps the page's language.
        await page.WaitForSelectorAsync("#list-live[data-live='on']", new() { State = WaitForSelectorState.Attached });
        Assert.StartsWith("En direct", (await page.TextContentAsync("#list-live"))!.Trim());
        Assert.Equal("Incidents", await page.TextContentAsync("h1"));
        Assert.StartsWith("Page 1 sur", await page.TextContentAsync("#page-number"));
        var dates = await page.Locator("#incident-list tbody tr td time").AllTextContentsAsync();
        Assert.NotEmpty(dates);
        Assert.All(dates, date => Assert.Matches(@"^\d{2}/\d{2}/\d{4}$", date));

        // A live refresh (the feed's own thread starts it) renders in the page's language too, not the server's default.
        var loads = int.Parse((await page.GetAttributeAsync("#incident-list", "data-loads"))!, System.Globalization.CultureInfo.InvariantCulture);
        await MarchAsync(DateTimeOffset.UtcNow.AddHours(-1), 4.37, 18.56, "Second march in Bangui.");

        await page.WaitForFunctionAsync($"() => Number(document.querySelector('#incident-list').dataset.loads) > {loads}");
        Assert.StartsWith("Page 1 sur", await page.TextContentAsync("#page-number"));
        Assert.Equal("Carte", await page.TextContentAsync("nav a[href='/']"));

        await Screenshots.ScreenshotAsync(page, $"{Store}-list-fr");

        // Kinds of organisation are named in French too ("Toute organisation military" before).
        await page.GotoAsync("/coordination");
        Assert.Contains("Toute organisation militaire", await page.InnerHTMLAsync("body"));

        // The report form says why it refused a value in French too, keeping the value as typed.
        await page.GotoAsync("/report");
        await page.FillAsync("#r-lat", "95");
        await page.FillAsync("#r-lon", "19.1");
        await page.SelectOptionAsync("#r-category", "poc.forced-displacement");
        await page.FillAsync("#r-narrative", "Familles quittant le village après des menaces.");
        await page.ClickAsync("#report-submit");
        await page.WaitForSelectorAsync("#report-errors");
        Assert.Equal("95 est hors de l'intervalle [-90, 90]", await page.TextContentAsync("#err-location-latitude"));
        Assert.DoesNotContain("out of range", await page.TextContentAsync("#report-errors"));
    }

    [Fact]
    public async Task Pages_need_a_session_label_every_field_and_fit_a_tablet()
    {
        var anonymous = await fixture.PageAsync();
        await anonymous.GotoAsync("/dashboard");
        Assert.Equal("/signin", new Uri(anonymous.Url).AbsolutePath);

        var page = await fixture.SignedInAsync("ocha", "/report");
        var unlabelled = await page.EvaluateAsync<string[]>("""
            [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
              .map(e => e.id || e.name)
            """);
        Assert.Empty(unlabelled);

        // Keyboard: the skip link comes first and leads to the content.
        Assert.Equal("skip", await page.EvaluateAsync<string>("document.querySelector('a[href], button, input:not([type=hidden]), select, textarea').className"));
        await page.Locator("a.skip").FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForFunctionAsync("() => document.activeElement && document.activeElement.id === 'main'");

        var tablet = await fixture.SignedInAsync("ocha", "/", 820, 1180);
        await tablet.WaitForSelectorAsync("#map[data-loaded]", new() { State = WaitForSelectorState.Attached });
        var box = await tablet.Locator("#map").BoundingBoxAsync();
        Assert.True(box!.Width >= 780 && box.Height >= 400, $"map is {box.Width}×{box.Height} on a tablet");
        // The forecast risk layer comes with the model's back-test skill beside it.
        await tablet.CheckAsync("#layer-risk");
        await tablet.WaitForSelectorAsync("#risk-skill:not([hidden])", new() { Timeout = 60_000 });
        Assert.Contains("Concord 0.3", await tablet.TextContentAsync("#risk-skill"));
        await Screenshots.ScreenshotAsync(tablet, $"{Store}-map-tablet");

        // A copy of the session's cookie (another browser, a proxy's log) works until the page signs out, and not after.
        var cookie = (await tablet.Context.CookiesAsync()).Single(c => c.Name == "concord");
        using var copy = new HttpClient { BaseAddress = fixture.Server.BaseAddress };
        copy.DefaultRequestHeaders.Add("Cookie", $"concord={cookie.Value}");
        Assert.Equal(HttpStatusCode.OK, (await copy.GetAsync("/api/me")).StatusCode);

        await tablet.ClickAsync("#signout");
        await tablet.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/signin");
        await tablet.GotoAsync("/");
        Assert.Equal("/signin", new Uri(tablet.Url).AbsolutePath);
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task Pages_run_only_the_servers_own_scripts_and_what_is_slipped_into_one_does_nothing()
    {
        var page = await fixture.SignedInAsync("force", "/incidents");
        var answer = await page.GotoAsync("/");
        var policy = await answer!.HeaderValueAsync("content-security-policy");
        Assert.Contains("script-src 'self';", policy, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", policy, StringComparison.Ordinal);
        await page.WaitForSelectorAsync("#map[data-live='up'][data-loaded]", new() { State = WaitForSelectorState.Attached });

        // Markup slipped in as a narrative would be if a page ever failed to escape it: its handler and inline script run
        // nothing, and the browser says what it refused. (No 'unsafe-eval' above: eval is refused too, which Playwright's
        // own evaluation cannot show, as the browser lets a debugger's code eval.)
        await page.EvaluateAsync("""
            () => {
              document.body.insertAdjacentHTML('beforeend', '<img src="data:," onerror="window.__ran = 1" onload="window.__ran = 1">');
              const script = document.createElement('script');
              script.textContent = 'window.__ran = 2';
              document.body.append(script);
            }
            """);
        // The image's two handlers are each refused, and the script: wait for both kinds (two of one kind may come first).
        var refused = new List<string>();
        bool Both() => refused.Any(v => v.Contains("script-src-attr", StringComparison.Ordinal)) && refused.Any(v => v.Contains("script-src-elem", StringComparison.Ordinal));
        for (var i = 0; i < 50 && !Both(); i++)
        {
            refused.AddRange(fixture.TakePolicyViolations());
            await Task.Delay(100);
        }

        Assert.Null(await page.EvaluateAsync<int?>("window.__ran"));
        Assert.Contains(refused, v => v.Contains("[csp] script-src-attr refused inline", StringComparison.Ordinal));
        Assert.Contains(refused, v => v.Contains("[csp] script-src-elem refused inline", StringComparison.Ordinal));

        // The filter form applies as it changes: Enter in its text field stays on the map (it had an inline handler).
        var loads = await page.EvaluateAsync<int>("window.concordMap.loads");
        await page.FillAsync("#f-q", "market");
        await page.PressAsync("#f-q", "Enter");
        await page.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}");
        Assert.Equal("/", new Uri(page.Url).PathAndQuery);
    }

    private static int Number(string? text) => int.Parse(new string((text ?? "").Where(char.IsAsciiDigit).ToArray()), System.Globalization.CultureInfo.InvariantCulture);
}


public sealed class SqliteUiTests(SqliteBrowser fixture) : UiTests<SqliteServer>(fixture), IClassFixture<SqliteBrowser>;

public sealed class PostgresUiTests(PostgresBrowser fixture) : UiTests<PostgresServer>(fixture), IClassFixture<PostgresBrowser>;

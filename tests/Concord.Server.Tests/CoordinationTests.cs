using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Coordination;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>
/// Coordination on a server whose business clock is fake: deadlines pass when a test advances the clock, and the scheduler
/// escalates on that clock. Each test works in an area and on records of its own, so tests do not see each other's tasks.
/// </summary>
public abstract class CoordinationTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    private FakeTimeProvider Clock => server.FakeClock;

    private static Guid Id(JsonElement e, string property = "id") => e.GetProperty(property).GetGuid();

    private static object EscortCriteria => new
    {
        humanitarianNeed = "Food for 12,000 displaced people in Bria camp; stocks run out in four days.",
        responsibleAuthorities = "The prefecture cannot secure the road; gendarmerie absent since March.",
        safetyAndSecurity = "Two convoy attacks on this road in October; an escort reduces the risk per UNDSS.",
        sustainability = "One-off escort while the road is repaired; civilian access resumes after.",
    };

    private static object LastResortCriteria => new
    {
        noCivilianAlternative = "No commercial or NGO carrier will travel the Bria road after the attacks.",
        criticalNeed = "Without the convoy this week the camp's food pipeline breaks for 12,000 people.",
        limitedInTimeAndScale = "One convoy of 14 trucks, two days, under humanitarian coordination.",
    };

    /// <summary>A task the JOC assigns to the police, marked at <paramref name="classification"/> for them, due in six hours.</summary>
    private async Task<Guid> AssignedTaskAsync(string title, string classification)
    {
        var (created, task) = await server.ClientFor("joc").PostJson("/api/tasks", new
        {
            title,
            organization = "UNPOL",
            respondBy = Clock.GetUtcNow().AddHours(6),
            marking = Api.Marking(classification, ["org:UNPOL"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, task.ToString());
        return Id(task);
    }

    /// <summary>
    /// Moves the test's clock and wakes the escalation scheduler: one that computed its sleep (to the next deadline) just
    /// before the jump and set its timer just after it would sleep on a clock that no longer moves. (Real time flows.)
    /// </summary>
    private void Advance(TimeSpan by)
    {
        Clock.Advance(by);
        server.Services.GetRequiredService<EscalationScheduler>().Wake();
    }

    /// <summary>Waits until the incident router has examined every change made so far.</summary>
    private async Task RouterPassedAsync()
    {
        var last = await server.WithDbAsync(db => db.Changes.MaxAsync(c => c.Sequence));
        await WaitForAsync(() => server.WithDbAsync(db => db.Settings.Where(x => x.Key == IncidentRouter.CursorKey).Select(x => x.Value).SingleAsync()),
            cursor => long.Parse(cursor, System.Globalization.CultureInfo.InvariantCulture) >= last, "the router to pass the changes made so far");
    }

    /// <summary>A square area of the test's own, far from every other test's reports.</summary>
    private async Task<(string Code, double Latitude, double Longitude)> AreaAsync(double latitude)
    {
        var code = "CO-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await server.AddAreaAsync(code, "Coordination test area " + code, latitude, 60, latitude + 1, 61, kind: "sector");
        return (code, latitude + 0.5, 60.5);
    }

    private async Task<string> AgreementAsync(object[] responsibilities, object[]? assistance = null, string? code = null)
    {
        code ??= "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (response, body) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code,
            name = "Protection of civilians SOP " + code,
            parties = new[] { "JOC", "FORCE", "UNPOL", "OCHA" },
            rules = Array.Empty<object>(),
            responsibilities,
            assistance = assistance ?? [],
        });
        Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        await server.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
        return code;
    }

    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            var value = await read();
            if (done(value))
            {
                return value;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("waited 15 s for " + what);
            }

            await Task.Delay(50);
        }
    }

    private async Task<List<JsonElement>> TasksAsync(string user, string query)
    {
        var (response, body) = await server.ClientFor(user).GetJson("/api/tasks?" + query);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        return body.GetProperty("items").EnumerateArray().ToList();
    }

    /// <summary>Every item of a coordination list, read <paramref name="limit"/> at a time by following its cursors.</summary>
    private async Task<List<JsonElement>> PagesAsync(string user, string path, int limit)
    {
        var items = new List<JsonElement>();
        string? cursor = null;
        do
        {
            var (response, page) = await server.ClientFor(user).GetJson($"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}limit={limit}{(cursor is null ? "" : "&cursor=" + cursor)}");
            Assert.True(response.StatusCode == HttpStatusCode.OK, page.ToString());
            Assert.True(page.GetProperty("items").GetArrayLength() <= limit);
            items.AddRange(page.GetProperty("items").EnumerateArray());
            cursor = page.TryGetProperty("next", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null && items.Count < 1000);
        return items;
    }

    [Fact]
    public async Task Every_coordination_list_pages_through_the_same_items_as_one_long_page()
    {
        // Contacts logged at the same time: a page that ends among them neither repeats nor skips one.
        var at = Clock.GetUtcNow().AddHours(-3);
        for (var i = 0; i < 5; i++)
        {
            var (logged, entry) = await server.ClientFor("ocha").PostJson("/api/liaison", new { counterpart = $"Chief of village {i}", channel = "visit", summary = "Talked about access.", at });
            Assert.True(logged.StatusCode == HttpStatusCode.Created, entry.ToString());
        }

        foreach (var user in new[] { "ocha", "joc" })
        {
            foreach (var path in new[] { "/api/liaison", "/api/meetings", "/api/patrols", "/api/requests", "/api/tasks" })
            {
                var (_, whole) = await server.ClientFor(user).GetJson($"{path}?limit=500");
                var ids = whole.GetProperty("items").EnumerateArray().Select(i => Id(i)).ToList();
                Assert.True(ids.Count < 500, path);
                Assert.False(whole.TryGetProperty("next", out var none) && none.ValueKind == JsonValueKind.String, path);
                Assert.Equal(ids, (await PagesAsync(user, path, 2)).Select(i => Id(i)));
            }
        }

        Assert.True((await PagesAsync("ocha", "/api/liaison", 2)).Count >= 5);
        var (forged, problem) = await server.ClientFor("ocha").GetJson("/api/liaison?cursor=NjM4AAAA");
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Equal(["cursor"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_coordination_record_shows_its_times_in_its_first_answer_as_every_later_read_shows_them()
    {
        // PostgreSQL keeps microseconds: a time given (or stamped) with a seventh digit came back with it in the 201 and
        // without it in every read after, a change that never happened to a client comparing them.
        // A day or two before the business clock, whatever its time of day (other tests move it): never ahead of it.
        var at = new DateTimeOffset(Clock.GetUtcNow().AddHours(-31).UtcDateTime.Date.AddHours(7).AddTicks(1_234_567), TimeSpan.Zero);
        var (logged, entry) = await server.ClientFor("ocha").PostJson("/api/liaison", new { counterpart = "Chief of Ngoulo", channel = "visit", summary = "Talked about the ford.", at });
        Assert.Equal(HttpStatusCode.Created, logged.StatusCode);
        var (_, read) = await server.ClientFor("ocha").GetJson($"/api/liaison/{entry.GetProperty("id").GetGuid()}");
        foreach (var field in new[] { "at", "createdAt" })
        {
            if (entry.TryGetProperty(field, out var first))
            {
                Assert.Equal(first.GetString(), read.GetProperty(field).GetString());
            }
        }

        Assert.Equal(at.AddTicks(-7), entry.GetProperty("at").GetDateTimeOffset());

        var (requested, request) = await server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type = "information",
            title = "Who holds the ford?",
            priority = "routine",
            addressee = "FORCE",
            location = new { latitude = 5.1, longitude = 18.2 },
            windowStart = at.AddDays(1),
            windowEnd = at.AddDays(2),
        });
        Assert.True(requested.StatusCode == HttpStatusCode.Created, request.ToString());
        var (_, requestRead) = await server.ClientFor("unpol").GetJson($"/api/requests/{request.GetProperty("id").GetGuid()}");
        foreach (var field in new[] { "windowStart", "windowEnd", "createdAt", "updatedAt" })
        {
            Assert.Equal(request.GetProperty(field).GetString(), requestRead.GetProperty(field).GetString());
        }
    }

    [Fact]
    public async Task A_task_holds_at_most_five_hundred_comments()
    {
        // A task is read whole with its comments: one member able to see it could otherwise make every read of it, by
        // anyone, hundreds of megabytes.
        var id = await AssignedTaskAsync("Keep the log of the ford", "UNCLASSIFIED");
        var author = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == "unpol").Select(m => m.Id).SingleAsync());
        await server.WithDbAsync(async db =>
        {
            var marked = await db.Tasks.SingleAsync(t => t.Id == id);
            db.TaskComments.AddRange(Enumerable.Range(0, TaskEndpoints.MaxComments - 1).Select(i => new TaskComment
            {
                Id = Guid.NewGuid(),
                TaskId = id,
                MemberId = author,
                Author = "unpol",
                At = Clock.GetUtcNow().UtcDateTime.AddSeconds(-1000 + i),
                Text = $"note {i}",
                Classification = marked.Classification,
                ReleasableTo = marked.ReleasableTo,
                Caveats = marked.Caveats,
            }));
            return await db.SaveChangesAsync();
        });

        var unpol = server.ClientFor("unpol");
        var last = Guid.NewGuid();
        var (kept, _) = await unpol.PostJson($"/api/tasks/{id}/comments", new { id = last, text = "The last one." });
        Assert.Equal(HttpStatusCode.Created, kept.StatusCode);
        var (refused, problem) = await unpol.PostJson($"/api/tasks/{id}/comments", new { text = "One more." });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal(["text"], problem.ErrorFields());
        // The last one sent again is still answered as stored.
        Assert.Equal(HttpStatusCode.OK, (await unpol.PostJson($"/api/tasks/{id}/comments", new { id = last, text = "The last one." })).Response.StatusCode);
        var (_, task) = await unpol.GetJson($"/api/tasks/{id}");
        Assert.Equal(TaskEndpoints.MaxComments, task.GetProperty("comments").GetArrayLength());

        // Counted among those marked as the task is now: comments written under another marking (the task since widened)
        // are not counted, which would tell of them to whoever may not read them.
        await server.WithDbAsync(db => db.Tasks.Where(t => t.Id == id).ExecuteUpdateAsync(u => u.SetProperty(t => t.ReleasableTo, t => t.ReleasableTo + "kind:military|")));
        var (widened, _) = await unpol.PostJson($"/api/tasks/{id}/comments", new { text = "Under the new marking." });
        Assert.Equal(HttpStatusCode.Created, widened.StatusCode);
    }

    private Task<int> EscalationsAsync(Guid itemId, string deadline) =>
        server.WithDbAsync(db => db.Escalations.CountAsync(e => e.ItemId == itemId && e.Deadline == deadline));

    /// <summary>An open task assigned by hand to an organisation about an incident, unclassified, with no deadline.</summary>
    private static CoordinationTask AssignedTask(Guid id, string title, Guid organization, Guid incident, string createdBy, DateTime now, string releasableTo) => new()
    {
        Id = id,
        Title = title,
        OrganizationId = organization,
        Role = TaskRoles.Assigned,
        Status = TaskStatuses.Open,
        IncidentId = incident,
        CreatedBy = createdBy,
        CreatedAt = now,
        UpdatedAt = now,
        Classification = 0,
        ReleasableTo = releasableTo,
        Caveats = 0,
    };

    /// <summary>A working group of the police's, with <paramref name="member"/> in it: its code, new for each test.</summary>
    private async Task<string> PoliceGroupWithAsync(string name, string member)
    {
        var group = "WG" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var police = server.ClientFor("unpoladmin");
        Assert.Equal(HttpStatusCode.Created, (await police.PostJson("/api/groups", new { code = group, name })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await police.PutAsync($"/api/groups/{group}/members/{member}", null)).StatusCode);
        return group;
    }

    private async Task<Guid> IncidentOfAsync(string user, object report)
    {
        var (response, body) = await server.ClientFor(user).PostJson("/api/reports", report);
        Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        return Id(body, "incidentId");
    }

    private async Task<List<string>> ChangesOfAsync(string user, Guid id)
    {
        using var client = server.ClientFor(user);
        return await client.ChangesOfAsync(id);
    }

    [Theory]
    [InlineData("/api/tasks?limit=abc", "limit")]
    [InlineData("/api/tasks?limit=0", "limit")]
    [InlineData("/api/tasks?limit=501", "limit")]
    [InlineData("/api/tasks?overdue=maybe", "overdue")]
    [InlineData("/api/tasks?incident=12", "incident")]
    [InlineData("/api/requests?open=yes", "open")]
    [InlineData("/api/requests?limit=-1", "limit")]
    [InlineData("/api/patrols?from=yesterday", "from")]
    [InlineData("/api/coordination/metrics?to=soon", "to")]
    public async Task Bad_list_parameters_are_named(string path, string field)
    {
        var (response, problem) = await server.ClientFor("joc").GetJson(path);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal([field], problem.ErrorFields());
    }

    [Fact]
    public async Task The_task_list_puts_open_tasks_first_the_earliest_deadline_owed_first_even_once_it_has_escalated()
    {
        var now = Clock.GetUtcNow().UtcDateTime;
        // An incident of its own, whose tasks are listed: assigned by hand (the router follows the lead and supporting tasks
        // of an incident, and may close those no rule gives any more).
        var incident = await IncidentOfAsync("force", Api.Report(latitude: 45.5, longitude: -120.5, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var force = await server.WithDbAsync(db => db.Organizations.Where(o => o.Code == "FORCE").Select(o => o.Id).SingleAsync());
        CoordinationTask Task(string title, string status, DateTime? acknowledgeBy, DateTime? respondBy, bool escalated = false)
        {
            var task = new CoordinationTask
            {
                Id = Guid.NewGuid(),
                Title = title,
                OrganizationId = force,
                Role = TaskRoles.Assigned,
                Status = status,
                IncidentId = incident,
                CreatedBy = "test",
                CreatedAt = now,
                UpdatedAt = now,
                AcknowledgeBy = acknowledgeBy,
                RespondBy = respondBy,
                AcknowledgeEscalatedAt = escalated ? acknowledgeBy : null,
                Classification = 0,
                ReleasableTo = "|mission|",
                Caveats = 0,
            };
            task.Reschedule();
            return task;
        }

        // Added oldest first: the overdue one (its acknowledgement escalated an hour ago, so no deadline is left to watch),
        // one due next week, one owing nothing, then two done ones, the older closed with a deadline never met (as the
        // router closes the tasks of an incident merged away).
        await server.WithDbAsync(async db =>
        {
            foreach (var task in (CoordinationTask[])[
                Task("overdue", TaskStatuses.Open, now.AddHours(-1), null, escalated: true),
                Task("next week", TaskStatuses.Open, now.AddDays(7), now.AddDays(8)),
                Task("next week too", TaskStatuses.Open, now.AddDays(7), now.AddDays(8)),
                Task("no deadline", TaskStatuses.Open, null, null),
                Task("no deadline either", TaskStatuses.Open, null, null),
                Task("done", TaskStatuses.Done, now.AddHours(-2), null),
                Task("done later", TaskStatuses.Done, null, null)])
            {
                db.Tasks.Add(task);
                await db.SaveChangesAsync();
            }

            return 0;
        });

        // Of two with the same deadline (or none), the newer first. (Only the tasks made here are compared: a responsibility
        // rule another test recorded may route the incident to an organisation too.)
        string[] ours = ["overdue", "next week too", "next week", "no deadline either", "no deadline", "done later", "done"];
        IEnumerable<string?> Ours(IEnumerable<System.Text.Json.JsonElement> tasks) => tasks.Select(t => t.GetProperty("title").GetString()).Where(ours.Contains);
        var titles = Ours(await TasksAsync("force", $"incident={incident}")).ToList();
        Assert.Equal(ours, titles);
        Assert.Equal(ours[..5], Ours(await TasksAsync("force", $"incident={incident}&open=true")));
        // A page at a time, whichever task a page ends on, the same order.
        foreach (var limit in new[] { 1, 2, 3 })
        {
            Assert.Equal(titles, Ours(await PagesAsync("force", $"/api/tasks?incident={incident}", limit)));
        }
        Assert.Equal(["done later", "done"], Ours(await TasksAsync("force", $"incident={incident}&open=false")));
    }

    [Fact]
    public async Task A_report_is_linked_to_its_incident_at_the_time_of_the_business_clock()
    {
        // The change feed judges what a viewer saw first by comparing links' times with its changes' times, which the
        // server's clock gives: a link stamped by another clock would put the two out of order.
        // A second account of the same clash joins the first one's incident: the report writer links it.
        Advance(TimeSpan.FromHours(2));
        var observed = Clock.GetUtcNow().AddHours(-1);
        object Account() => Api.Report(latitude: -72.5, longitude: 60.5, observedAt: observed, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Armed clash at the ferry roadblock.");
        var incident = await IncidentOfAsync("unpol", Account());
        Advance(TimeSpan.FromSeconds(1));
        var before = Clock.GetUtcNow();
        Assert.Equal(incident, await IncidentOfAsync("force", Account()));
        var (_, provenance) = await server.ClientFor("joc").GetJson($"/api/incidents/{incident}/provenance");

        var joined = provenance.GetProperty("reports").EnumerateArray().Single(r => r.GetProperty("organization").GetString() == "FORCE");
        Assert.Equal("fused", joined.GetProperty("decision").GetString());
        Assert.InRange(joined.GetProperty("linkedAt").GetDateTimeOffset(), before.AddMilliseconds(-1), Clock.GetUtcNow());
    }

    [Fact]
    public async Task An_incident_recorded_before_its_rules_is_not_routed_when_it_changes_later()
    {
        var (area, lat, lon) = await AreaAsync(-46);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var older = await IncidentOfAsync("unpol", Api.Report(latitude: lat - 0.4, longitude: lon - 0.4, marking: mission, narrative: "Clash before the SOP."));
        Advance(TimeSpan.FromSeconds(1));
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);

        // The older incident changes; then a new one is recorded. The router reads the feed in order: once the new one has
        // its task, the change of the older one was judged.
        var (verified, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{older}/status", new { status = "verified" });
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        var newer = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: mission, narrative: "Clash after the SOP."));
        await WaitForAsync(() => TasksAsync("joc", $"incident={newer}"), t => t.Count == 1, "the newer incident's lead task");

        Assert.Empty(await TasksAsync("joc", $"incident={older}"));
    }

    [Fact]
    public async Task An_agreement_recorded_behind_the_servers_back_routes_the_incidents_recorded_after_it()
    {
        // Recorded by the command line (or on another node): this server's directory holds the agreement only once read
        // again. Its rules apply to incidents recorded since; an incident recorded in the next moments that never changes
        // again must still be routed by them.
        var (area, lat, lon) = await AreaAsync(-19);
        var directory = server.Services.GetRequiredService<MissionDirectory>();
        // Read now by the test's clock, which does not move in this test: not read again for its age.
        await directory.ReloadAsync(force: true, CancellationToken.None);
        var code = "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var body = JsonSerializer.Deserialize<Sharing.AgreementRequest>(JsonSerializer.Serialize(new
        {
            code,
            name = "Recorded by the command line " + code,
            parties = new[] { "JOC", "FORCE" },
            rules = Array.Empty<object>(),
            responsibilities = new[] { new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30 } },
        }), JsonSerializerOptions.Web)!;
        await server.WithDbAsync(async db =>
        {
            db.Agreements.Add(Sharing.AdminEndpoints.NewVersion(Guid.CreateVersion7(), 1, code, body, [directory.OrganizationByCode("JOC")!.Id, directory.OrganizationByCode("FORCE")!.Id],
                directory, "cli", server.Services.GetRequiredService<TimeProvider>()));
            return await db.SaveChangesAsync();
        });
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash after the SOP was recorded."));
        await RouterPassedAsync();
        Assert.Equal(["lead"], (await TasksAsync("force", $"incident={incident}")).Select(t => t.GetProperty("role").GetString()));
    }

    [Fact]
    public async Task The_tasks_of_an_incident_merged_into_another_are_closed_and_stop_escalating()
    {
        var (area, lat, lon) = await AreaAsync(-43);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var kept = await IncidentOfAsync("unpol", Api.Report(latitude: lat - 0.4, longitude: lon - 0.4, marking: mission, narrative: "Clash at the northern ford."));
        var merged = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: mission, narrative: "Shooting near the southern market."));
        await WaitForAsync(() => TasksAsync("joc", $"incident={kept}"), t => t.Count == 1, "the kept incident's lead task");
        var mergedTask = (await WaitForAsync(() => TasksAsync("joc", $"incident={merged}"), t => t.Count == 1, "the merged incident's lead task")).Single();
        // Unacknowledged past its deadline, it escalates to the JOC first.
        Advance(TimeSpan.FromMinutes(31));
        var notices = (await WaitForAsync(() => TasksAsync("joc", "organization=JOC&limit=500"), t => t.Any(x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(mergedTask)),
            "the JOC's escalation notice")).Where(x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(mergedTask)).Select(x => Id(x)).ToList();

        var (merge, mergeBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { merged } });
        Assert.True(merge.StatusCode == HttpStatusCode.OK, mergeBody.ToString());

        var closed = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == Id(mergedTask))), t => t.Status == TaskStatuses.Done, "the merged incident's task to close");
        Assert.Contains("merged", closed.Reason, StringComparison.Ordinal);
        Assert.Null(closed.NextDeadline);
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == closed.Id && a.Action == AuditActions.Status)));
        var keptTask = (await TasksAsync("joc", $"incident={kept}")).Single(t => t.GetProperty("role").GetString() == "lead");
        Assert.Equal("open", keptTask.GetProperty("status").GetString());
        Assert.All(await server.WithDbAsync(db => db.Tasks.AsNoTracking().Where(t => notices.Contains(t.Id)).ToListAsync()), n => Assert.Equal(TaskStatuses.Done, n.Status));
    }

    /// <summary>
    /// A new area where protests go to UNPOL and battles to FORCE (each supported by the other when <paramref name="supported"/>),
    /// UNPOL's protest there and, nearby, a clash reported three hours before it (merged into the protest's incident, it
    /// makes it a battle): the two incidents.
    /// </summary>
    private async Task<(Guid Protest, Guid Clash)> ProtestAndEarlierClashAsync(double areaLatitude, object marking, bool supported = false)
    {
        var (area, lat, lon) = await AreaAsync(areaLatitude);
        await AgreementAsync(
        [
            new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", supporting = supported ? new[] { "FORCE" } : [], acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" },
            new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting = supported ? new[] { "UNPOL" } : [], acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" },
        ]);
        var protest = await IncidentOfAsync("unpol", Api.Report(category: "acled.protests.peaceful-protest", latitude: lat - 0.4, longitude: lon - 0.4, marking: marking,
            narrative: "Crowd gathering at the prefecture."));
        var clash = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: marking, observedAt: Api.Recent.AddHours(-3),
            narrative: "Shots fired at the prefecture earlier."));
        return (protest, clash);
    }

    [Fact]
    public async Task A_lead_task_the_rules_no_longer_give_its_organisation_after_a_recategorisation_is_closed_and_the_new_lead_gets_one()
    {
        // Protests are led by UNPOL with FORCE supporting, battles the other way round. A protest's incident is routed to
        // both; an analyst then merges into it a clash reported earlier nearby: its earliest report, the clash, makes it a
        // battle. UNPOL's lead task, left open, would escalate as UNPOL's miss for an incident that is now FORCE's to lead.
        var (protest, clash) = await ProtestAndEarlierClashAsync(-82, Api.Marking("UNCLASSIFIED", ["mission"]), supported: true);
        var unpolTask = (await WaitForAsync(() => TasksAsync("unpol", $"incident={protest}&organization=UNPOL"), t => t.Count == 1, "UNPOL's lead task")).Single();
        var forceSupport = (await WaitForAsync(() => TasksAsync("force", $"incident={protest}&organization=FORCE"), t => t.Count == 1, "FORCE's supporting task")).Single();
        Assert.Equal("supporting", forceSupport.GetProperty("role").GetString());
        await WaitForAsync(() => TasksAsync("force", $"incident={clash}&organization=FORCE"), t => t.Count == 1, "FORCE's lead task of the clash");

        var (merge, mergeBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/merge", new { incidents = new[] { clash } });
        Assert.True(merge.StatusCode == HttpStatusCode.OK, mergeBody.ToString());
        Assert.Equal("acled.battles.armed-clash", (await server.WithDbAsync(db => db.Incidents.AsNoTracking().SingleAsync(i => i.Id == protest))).Category);

        var closed = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == Id(unpolTask))), t => t.Status == TaskStatuses.Done,
            "UNPOL's task to be superseded");
        Assert.Contains("no longer give its incident to the organisation", closed.Reason, StringComparison.Ordinal);
        Assert.Null(closed.NextDeadline);
        // Each organisation is routed the role the rules now give it: FORCE leads, UNPOL supports.
        var forceTasks = await WaitForAsync(() => TasksAsync("force", $"incident={protest}&organization=FORCE"), t => t.Any(x => x.GetProperty("status").GetString() == "open" && x.GetProperty("role").GetString() == "lead"),
            "FORCE's lead task of the merged incident");
        Assert.Equal(TaskStatuses.Done, forceTasks.Single(x => Id(x) == Id(forceSupport)).GetProperty("status").GetString());
        var unpolTasks = await WaitForAsync(() => TasksAsync("unpol", $"incident={protest}&organization=UNPOL"), t => t.Any(x => x.GetProperty("status").GetString() == "open"), "UNPOL's supporting task");
        Assert.Equal("supporting", unpolTasks.Single(x => x.GetProperty("status").GetString() == "open").GetProperty("role").GetString());
        // Past UNPOL's old deadline, nothing escalates as UNPOL's miss.
        Advance(TimeSpan.FromMinutes(31));
        await RouterPassedAsync();
        await Task.Delay(300);
        Assert.DoesNotContain(await TasksAsync("joc", "organization=JOC&limit=500"), x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(unpolTask));
    }

    [Fact]
    public async Task A_task_still_its_organisations_after_a_recategorisation_takes_the_terms_of_the_rule_that_now_applies()
    {
        // UNPOL leads protests (an hour to acknowledge, no escalation) and battles (15 minutes, misses to the JOC). A protest
        // becomes a battle when an earlier clash is merged into it: UNPOL's task stays UNPOL's lead task, but on the battle's
        // terms, counted from the change; on the protest's it would wait an hour and a miss would be told to nobody.
        var (area, lat, lon) = await AreaAsync(-16);
        await AgreementAsync(
        [
            new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", acknowledgeMinutes = 60, respondMinutes = 240 },
            new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "UNPOL", acknowledgeMinutes = 15, respondMinutes = 30, escalateTo = "JOC" },
        ]);
        var marking = Api.Marking("UNCLASSIFIED", ["mission"]);
        var protest = await IncidentOfAsync("unpol", Api.Report(category: "acled.protests.peaceful-protest", latitude: lat - 0.4, longitude: lon - 0.4, marking: marking,
            narrative: "Crowd gathering at the town hall."));
        var clash = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: marking, observedAt: Api.Recent.AddHours(-3),
            narrative: "Shots fired at the town hall earlier."));
        var lead = (await WaitForAsync(() => TasksAsync("unpol", $"incident={protest}&organization=UNPOL"), t => t.Count == 1, "UNPOL's lead task of the protest")).Single();
        var acknowledgeBy = lead.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset();
        Assert.Equal(Clock.GetUtcNow().AddMinutes(60), acknowledgeBy);
        await WaitForAsync(() => TasksAsync("unpol", $"incident={clash}&organization=UNPOL"), t => t.Count == 1, "UNPOL's lead task of the clash");

        // 55 minutes in: the battle's 15 minutes from now would be later than the protest's hour; a deadline is never put off.
        Advance(TimeSpan.FromMinutes(55));
        var mergedAt = Clock.GetUtcNow();
        var (merge, mergeBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/merge", new { incidents = new[] { clash } });
        Assert.True(merge.StatusCode == HttpStatusCode.OK, mergeBody.ToString());
        var retermed = await WaitForAsync(() => server.ClientFor("unpol").GetJson($"/api/tasks/{Id(lead)}").ContinueWith(r => r.Result.Body, TaskScheduler.Default),
            t => t.GetProperty("deadlines").TryGetProperty("escalateTo", out var to) && to.GetString() == "JOC", "the task to take the battle rule's terms");
        Assert.Equal("open", retermed.GetProperty("status").GetString());
        Assert.Equal(acknowledgeBy, retermed.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
        Assert.Equal(mergedAt.AddMinutes(30), retermed.GetProperty("deadlines").GetProperty("respondBy").GetDateTimeOffset());
        Assert.Single(await TasksAsync("unpol", $"incident={protest}&organization=UNPOL"));

        // Its deadline passes: the miss goes to the JOC, once.
        Advance(TimeSpan.FromMinutes(6));
        await WaitForAsync(() => EscalationsAsync(Id(lead), Deadlines.Acknowledge), n => n == 1, "the acknowledgement escalation to the JOC");
        await WaitForAsync(() => TasksAsync("joc", "organization=JOC&limit=500"), t => t.Any(x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(lead)),
            "the JOC's notice");
    }

    [Fact]
    public async Task A_lead_that_declines_its_incident_is_told_to_the_organisation_its_misses_go_to()
    {
        // The force declines the lead the SOP gives it: the incident has no lead, and the router gives it to nobody else.
        // Nobody was told (the JOC's notices of misses close as answered by the decline); the JOC now is, at once.
        var (area, lat, lon) = await AreaAsync(-13);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting = new[] { "UNPOL" }, acknowledgeMinutes = 30,
            respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the ferry."));
        var routed = await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 2, "the lead and supporting tasks");
        var lead = Id(routed.Single(t => t.GetProperty("role").GetString() == "lead"));
        var support = Id(routed.Single(t => t.GetProperty("role").GetString() == "supporting"));

        // A supporting organisation declining tells nobody: the lead still leads.
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("unpol").PostJson($"/api/tasks/{support}/status", new { status = "declined", reason = "No unit free." })).Response.StatusCode);
        var (declined, body) = await server.ClientFor("force").PostJson($"/api/tasks/{lead}/status", new { status = "declined", reason = "Outside our sector this week." });
        Assert.True(declined.StatusCode == HttpStatusCode.OK, body.ToString());

        var notices = (await TasksAsync("joc", "organization=JOC&limit=500")).Where(x => x.TryGetProperty("escalatedItem", out var e) && (e.GetGuid() == lead || e.GetGuid() == support)).ToList();
        var notice = Assert.Single(notices);
        Assert.Equal(lead, Id(notice, "escalatedItem"));
        Assert.Equal("escalation", notice.GetProperty("role").GetString());
        Assert.Equal("open", notice.GetProperty("status").GetString());
        Assert.Contains("lead declined by FORCE", notice.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal(incident, Id(notice, "incident"));
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == lead && a.Action == AuditActions.Escalate)));
        // Not a missed deadline: the response figures count no escalation for it.
        Assert.Equal(0, await EscalationsAsync(lead, Deadlines.Acknowledge) + await EscalationsAsync(lead, Deadlines.Respond));
        // Nor a notice the scheduler closes as answered: it stays until the incident has no need of it.
        Advance(EscalationScheduler.SweepEvery + TimeSpan.FromSeconds(1));
        server.Services.GetRequiredService<EscalationScheduler>().Wake();
        await Task.Delay(300);
        Assert.Equal("open", (await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}")).Body.GetProperty("status").GetString());

        // The incident is closed (an analyst finds it was a hoax): "no lead" is no news any more, and the notice closes.
        var (closed, closedBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/status", new { status = "closed" });
        Assert.True(closed.StatusCode == HttpStatusCode.OK, closedBody.ToString());
        Advance(EscalationScheduler.SweepEvery + TimeSpan.FromSeconds(1));
        server.Services.GetRequiredService<EscalationScheduler>().Wake();
        var done = await WaitForAsync(async () => (await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}")).Body, n => n.GetProperty("status").GetString() == "done",
            "the decline notice to close with its incident");
        Assert.Equal("its incident was closed", done.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Two_declines_of_a_lead_at_once_store_one_and_answer_the_other_409()
    {
        // Two FORCE officers decline the same lead task at the same moment: one decline is stored with one notice to the
        // JOC; the other is told the task was moved meanwhile (on PostgreSQL it met the first's notice key: a 500 before).
        // Three incidents, as the two requests do not always meet.
        foreach (var seed in new[] { -10, -7, -4 })
        {
            var (area, lat, lon) = await AreaAsync(seed);
            await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
            var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the ford."));
            var lead = Id((await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single());

            var answers = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => server.ClientFor("force").PostJson($"/api/tasks/{lead}/status",
                new { status = "declined", reason = $"Outside our sector ({i})." })));
            Assert.Equal([HttpStatusCode.OK, HttpStatusCode.Conflict], answers.Select(a => a.Response.StatusCode).Order());
            Assert.Single(await TasksAsync("joc", "organization=JOC&limit=500"), x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == lead);
            Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == lead && a.Action == AuditActions.Escalate)));
        }
    }

    [Fact]
    public async Task A_rule_that_comes_to_apply_to_an_incident_it_cannot_be_routed_under_is_recorded_once()
    {
        // A police-only protest (UNPOL's) becomes a battle (FORCE's) when an earlier police-only clash is merged into it:
        // FORCE may not see it, so it is not routed there, and the audit says so once, not at each later change.
        // The police's and the JOC's (whose analysts merge), not the force's.
        var (protest, clash) = await ProtestAndEarlierClashAsync(-22, Api.Marking("UNCLASSIFIED", ["org:UNPOL", "org:JOC"]));
        await WaitForAsync(() => TasksAsync("unpol", $"incident={protest}"), t => t.Count == 1, "UNPOL's lead task");
        Task<List<string>> WithheldAsync() => server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == protest && a.Action == AuditActions.RouteWithheld).Select(a => a.Detail).ToListAsync());
        Assert.Empty(await WithheldAsync());

        var (merge, mergeBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/merge", new { incidents = new[] { clash } });
        Assert.True(merge.StatusCode == HttpStatusCode.OK, mergeBody.ToString());
        var withheld = Assert.Single(await WaitForAsync(WithheldAsync, w => w.Count > 0, "the withheld route's audit entry"));
        Assert.Contains("\"organization\":\"FORCE\"", withheld, StringComparison.Ordinal);
        Assert.Contains("not released to the organisation", withheld, StringComparison.Ordinal);

        // A later change of the incident (its status) finds the same rule withheld: not recorded again.
        var (verified, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/status", new { status = "verified" });
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        await RouterPassedAsync();
        Assert.Single(await WithheldAsync());
    }

    [Fact]
    public async Task Incidents_route_by_category_and_area_and_a_missed_deadline_escalates_exactly_once_also_across_restarts()
    {
        var (area, lat, lon) = await AreaAsync(-31);
        var (other, otherLat, otherLon) = await AreaAsync(-34);
        await AgreementAsync(
        [
            new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting = new[] { "UNPOL" }, acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" },
            new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", acknowledgeMinutes = 60, respondMinutes = 240, escalateTo = "JOC" },
        ]);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var start = Clock.GetUtcNow();

        var battle = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: mission));
        var protest = await IncidentOfAsync("unpol", Api.Report(category: "acled.protests.peaceful-protest", latitude: lat - 0.3, longitude: lon + 0.3, marking: mission, narrative: "Peaceful march to the prefecture."));
        var elsewhere = await IncidentOfAsync("unpol", Api.Report(latitude: otherLat, longitude: otherLon, marking: mission));
        var unpolOnly = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.3, longitude: lon - 0.3, marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"]), narrative: "Clash seen by police only."));

        var routed = await WaitForAsync(() => TasksAsync("joc", $"incident={battle}"), t => t.Count == 2, "the battle's lead and supporting tasks");
        var lead = routed.Single(t => t.GetProperty("role").GetString() == "lead");
        var support = routed.Single(t => t.GetProperty("role").GetString() == "supporting");
        Assert.Equal("FORCE", lead.GetProperty("organization").GetString());
        Assert.Equal("UNPOL", support.GetProperty("organization").GetString());
        Assert.Equal("open", lead.GetProperty("status").GetString());
        Assert.Equal(start.AddMinutes(30), lead.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
        Assert.Equal(start.AddMinutes(120), lead.GetProperty("deadlines").GetProperty("respondBy").GetDateTimeOffset());
        Assert.Equal("JOC", lead.GetProperty("deadlines").GetProperty("escalateTo").GetString());
        Assert.Equal("UNCLASSIFIED//REL TO MISSION, ORG:UNPOL", lead.GetProperty("marking").GetProperty("label").GetString());

        var protestTasks = await WaitForAsync(() => TasksAsync("joc", $"incident={protest}"), t => t.Count == 1, "the protest's lead task");
        Assert.Equal("UNPOL", protestTasks[0].GetProperty("organization").GetString());
        Assert.Equal("lead", protestTasks[0].GetProperty("role").GetString());

        // The police-only incident: the police's supporting task exists (seen by the police only); the force's lead task is withheld, and the audit says so.
        var withheld = await WaitForAsync(() => TasksAsync("unpol", $"incident={unpolOnly}"), t => t.Count == 1, "the police-only incident's task");
        Assert.Equal("UNPOL", withheld[0].GetProperty("organization").GetString());
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == unpolOnly && a.Action == AuditActions.RouteWithheld)));
        Assert.Empty(await TasksAsync("force", $"incident={unpolOnly}"));

        // Outside the area no rule applies. Routing is asynchronous: the battle's tasks above came later in the feed, so by now it has run.
        Assert.Empty(await TasksAsync("joc", $"incident={elsewhere}"));

        // The force sees its task in its inbox; the police acknowledge theirs after ten minutes.
        var leadId = Id(lead);
        var supportId = Id(support);
        Assert.Contains(await TasksAsync("force", "organization=FORCE&open=true"), t => Id(t) == leadId);
        Advance(TimeSpan.FromMinutes(10));
        var (acknowledged, ackBody) = await server.ClientFor("unpol").PostJson($"/api/tasks/{supportId}/status", new { status = "acknowledged" });
        Assert.True(acknowledged.StatusCode == HttpStatusCode.OK, ackBody.ToString());

        // One minute before the deadline nothing happens; one minute after, the force's task escalates to the JOC, once.
        Advance(TimeSpan.FromMinutes(19));
        await Task.Delay(300);
        Assert.Equal(0, await EscalationsAsync(leadId, Deadlines.Acknowledge));
        Advance(TimeSpan.FromMinutes(2));
        await WaitForAsync(() => EscalationsAsync(leadId, Deadlines.Acknowledge), n => n == 1, "the acknowledgement escalation");
        var notices = await WaitForAsync(() => TasksAsync("joc", "organization=JOC&limit=500"), t => t.Any(x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == leadId), "the JOC's escalation task");
        var notice = notices.Single(x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == leadId);
        Assert.Equal("escalation", notice.GetProperty("role").GetString());
        Assert.Equal(battle, Id(notice, "incident"));
        Assert.Equal(0, await EscalationsAsync(supportId, Deadlines.Acknowledge));
        var (_, overdue) = await server.ClientFor("force").GetJson($"/api/tasks/{leadId}");
        Assert.Equal("acknowledge", overdue.GetProperty("deadlines").GetProperty("overdue").GetString());
        Assert.NotEqual(JsonValueKind.Null, overdue.GetProperty("deadlines").GetProperty("acknowledgeEscalatedAt").ValueKind);
        Assert.Contains(await TasksAsync("force", "overdue=true"), t => Id(t) == leadId);
        // overdue=false lists the others (it was ignored, listing this one too).
        Assert.DoesNotContain(await TasksAsync("force", "overdue=false&limit=500"), t => Id(t) == leadId);
        Assert.Contains(await TasksAsync("unpol", "overdue=false&limit=500"), t => Id(t) == supportId);

        Advance(TimeSpan.FromMinutes(5));
        await Task.Delay(300);
        Assert.Equal(1, await EscalationsAsync(leadId, Deadlines.Acknowledge));
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == leadId && a.Action == AuditActions.Escalate)));

        // The server is down while the response deadline (120 min) passes: on restart both tasks' response deadlines escalate, once.
        await server.RestartAsync();
        Advance(TimeSpan.FromMinutes(90));
        await WaitForAsync(() => EscalationsAsync(leadId, Deadlines.Respond), n => n == 1, "the response escalation after restart");
        await WaitForAsync(() => EscalationsAsync(supportId, Deadlines.Respond), n => n == 1, "the supporting task's response escalation");
        await server.RestartAsync();
        Advance(TimeSpan.FromMinutes(30));
        await Task.Delay(500);
        Assert.Equal(1, await EscalationsAsync(leadId, Deadlines.Acknowledge));
        Assert.Equal(1, await EscalationsAsync(leadId, Deadlines.Respond));
        Assert.Equal(1, await EscalationsAsync(supportId, Deadlines.Respond));
        Assert.Equal(0, await EscalationsAsync(supportId, Deadlines.Acknowledge));
        Assert.Equal(2, await server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == leadId)));

        // A CONFIDENTIAL account for the force alone joins the incident: its tasks follow. The police no longer see their own
        // supporting task, which would otherwise tell them of an account they may not read, and it is withdrawn; the force,
        // which may read both accounts, keeps its lead task, marked for it.
        var (_, joined) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Armed clash reported near Bambari market, force account.", marking: Api.Marking("CONFIDENTIAL", ["org:FORCE"])));
        Assert.Equal(battle, Id(joined, "incidentId"));
        await WaitForAsync(async () => (await server.ClientFor("unpol").GetAsync($"/api/tasks/{supportId}")).StatusCode, s => s == HttpStatusCode.NotFound, "the supporting task to follow the incident's marking");
        Assert.Equal("withdrawn: its incident is no longer released to the organisation",
            (await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == supportId))).Reason);
        var (_, followed) = await server.ClientFor("force").GetJson($"/api/tasks/{leadId}");
        Assert.Equal("CONFIDENTIAL//REL TO ORG:FORCE", followed.GetProperty("marking").GetProperty("label").GetString());
        Assert.Equal("open", followed.GetProperty("status").GetString());
        Assert.Equal(2, await server.WithDbAsync(db => db.Audit.CountAsync(a => (a.EntityId == leadId || a.EntityId == supportId) && a.Action == AuditActions.Update)));
    }

    [Theory]
    [InlineData("request")]
    [InlineData("task")]
    [InlineData("comment")]
    [InlineData("patrol")]
    [InlineData("meeting")]
    [InlineData("liaison")]
    public async Task Coordination_records_sent_again_with_their_id_after_a_lost_answer_are_stored_once(string kind)
    {
        var id = Guid.NewGuid();
        // Ticks of a tenth of a microsecond, which PostgreSQL does not keep: the retry's times are still the stored ones.
        var at = Clock.GetUtcNow().AddTicks(1_234_567);
        var task = kind == "comment" ? await AssignedTaskAsync("Count the displaced at the church", "UNCLASSIFIED") : Guid.Empty;
        // The member sending, a body with the id and a text (the same record, or another under the same id), and the path.
        var (user, path) = kind switch
        {
            "request" => ("ocha", "/api/requests"),
            "task" => ("joc", "/api/tasks"),
            "comment" => ("unpol", $"/api/tasks/{task}/comments"),
            "patrol" => ("force", "/api/patrols"),
            "meeting" => ("joc", "/api/meetings"),
            _ => ("ocha", "/api/liaison"),
        };
        object Body(string text, string? organization = null) => kind switch
        {
            "request" => new
            {
                id,
                type = "information",
                title = text,
                addressee = "FORCE",
                location = new { latitude = -81.6, longitude = 60.6 },
                priority = "routine",
                windowStart = at.AddDays(1),
                windowEnd = at.AddDays(3),
                criteria = new { lastResort = LastResortCriteria },
                marking = Api.Marking("CONFIDENTIAL", ["org:OCHA", "org:FORCE"]),
            },
            "task" => new { id, title = text, organization = "UNPOL", respondBy = at.AddHours(6), marking = Api.Marking("CONFIDENTIAL", ["org:UNPOL"]) },
            "comment" => new { id, text },
            "patrol" => new
            {
                id,
                name = text,
                organizations = organization is null ? new[] { "FORCE" } : ["FORCE", organization],
                route = new[] { new[] { 20.65, 5.75 }, new[] { 20.9, 6.0 } },
                startsAt = at.AddHours(2),
                endsAt = at.AddHours(8),
                marking = Api.Marking("CONFIDENTIAL", ["org:FORCE"]),
            },
            "meeting" => (object)new
            {
                id,
                title = text,
                heldAt = at.AddHours(-1),
                participants = organization is null ? null : new[] { organization },
                actionItems = new[] { new { title = "Share the list", organization = "OCHA" } },
                marking = Api.Marking("CONFIDENTIAL", ["org:JOC", "org:OCHA"]),
            },
            _ => new { id, counterpartOrganization = organization, counterpart = "Chief of Ndélé", channel = "visit", summary = text, at = at.AddHours(-1), marking = Api.Marking("CONFIDENTIAL", ["org:OCHA"]) },
        };
        var client = server.ClientFor(user);
        var (first, stored) = await client.PostJson(path, Body("Road to Ndélé, first " + kind));
        var (again, answered) = await client.PostJson(path, Body("Road to Ndélé, first " + kind));
        var (other, problem) = await client.PostJson(path, Body("Road to Ndélé, second " + kind));
        // A colleague of the same organisation (the comment's task is the police's: another of its members).
        var colleague = user switch { "joc" => "force", "unpol" => "unpol2", "force" => "joc", _ => "force" };
        var (byAnother, _) = await server.ClientFor(colleague).PostJson(path, Body("Road to Ndélé, first " + kind));
        var (empty, emptyProblem) = await client.PostJson(path, new { id = Guid.Empty });

        Assert.True(first.StatusCode == HttpStatusCode.Created, stored.ToString());
        Assert.True(again.StatusCode == HttpStatusCode.OK, answered.ToString());
        if (kind == "comment")
        {
            Assert.Equal(stored.GetProperty("text").GetString(), answered.GetProperty("text").GetString());
        }
        else
        {
            Assert.Equal(id, Id(stored));
            Assert.Equal(id, Id(answered));
        }

        Assert.Equal(HttpStatusCode.Conflict, other.StatusCode);
        Assert.Equal(["id"], problem.ErrorFields());
        Assert.Equal(HttpStatusCode.Conflict, byAnother.StatusCode);
        if (kind is "patrol" or "meeting" or "liaison")
        {
            // Sent again corrected to another organisation (the answer was lost, the officer fixed the counterpart): another
            // record under the same id, not the stored one answered as if it were the same.
            var (elsewhere, elsewhereProblem) = await client.PostJson(path, Body("Road to Ndélé, first " + kind, "UNPOL"));
            Assert.Equal(HttpStatusCode.Conflict, elsewhere.StatusCode);
            Assert.Equal(["id"], elsewhereProblem.ErrorFields());
        }

        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        Assert.Equal(["id"], emptyProblem.ErrorFields());
        var (count, created) = await server.WithDbAsync(async db => kind switch
        {
            "request" => (await db.Requests.CountAsync(r => r.Id == id || r.Title.StartsWith("Road to Ndélé, second")),
                await db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Create)),
            "task" => (await db.Tasks.CountAsync(t => t.Id == id || t.Title.StartsWith("Road to Ndélé, second")),
                await db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Create)),
            "comment" => (await db.TaskComments.CountAsync(c => c.TaskId == task), await db.Audit.CountAsync(a => a.EntityId == task && a.Action == AuditActions.Comment)),
            "patrol" => (await db.Patrols.CountAsync(p => p.Id == id || p.Name.StartsWith("Road to Ndélé, second")),
                await db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Create)),
            "meeting" => (await db.Meetings.CountAsync(m => m.Id == id || m.Title.StartsWith("Road to Ndélé, second")) + await db.Tasks.CountAsync(t => t.MeetingId == id) - 1,
                await db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Create)),
            _ => (await db.LiaisonLog.CountAsync(l => l.Id == id || l.Summary.StartsWith("Road to Ndélé, second")),
                await db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Create)),
        });
        Assert.Equal(1, count);
        Assert.Equal(1, created);
        if (kind != "comment")
        {
            // The retry answered the record as it is now: read, as a GET of it would be (the refused sends read nothing).
            Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Read)));
            // Where the creation said the record is, its author finds it, and a member it is not released to does not.
            Assert.Equal(HttpStatusCode.OK, (await client.GetJson(first.Headers.Location!.ToString())).Response.StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("pref").GetJson(first.Headers.Location!.ToString())).Response.StatusCode);
        }
    }

    /// <summary>OCHA asks the force for information about <paramref name="incident"/> and assigns it a task about it, both marked for the two.</summary>
    private async Task<(JsonElement Request, JsonElement Task)> OchaAsksTheForceAboutAsync(Guid incident, double latitude, double longitude)
    {
        var (created, request) = await server.ClientFor("ocha").PostJson("/api/requests", new
        {
            type = "information",
            title = "Who holds the checkpoint?",
            addressee = "FORCE",
            location = new { latitude, longitude },
            priority = "routine",
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(3),
            criteria = new { lastResort = LastResortCriteria },
            incident,
            marking = Api.Marking("UNCLASSIFIED", ["org:OCHA", "org:FORCE"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var (assigned, task) = await server.ClientFor("ocha").PostJson("/api/tasks", new
        {
            title = "Report on the checkpoint",
            organization = "FORCE",
            incident,
            marking = Api.Marking("UNCLASSIFIED", ["org:OCHA", "org:FORCE"]),
        });
        Assert.True(assigned.StatusCode == HttpStatusCode.Created, task.ToString());
        return (request, task);
    }

    [Fact]
    public async Task A_request_or_task_names_its_incident_only_to_those_who_may_see_it()
    {
        // OCHA's own account (OCHA only), and a request about it to the force, marked for both.
        var incident = await IncidentOfAsync("ocha", Api.Report(latitude: -81.5, longitude: 60.5, narrative: "Convoy stopped at the Kaga-Bandoro checkpoint.",
            marking: Api.Marking("UNCLASSIFIED", ["org:OCHA"])));
        var (request, task) = await OchaAsksTheForceAboutAsync(incident, -81.5, 60.5);
        Assert.Equal(incident, Id(request, "incident"));

        // The force reads the request, not the incident (which answers it 404): the request does not name it.
        var (_, forceView) = await server.ClientFor("force").GetJson($"/api/requests/{Id(request)}");
        Assert.False(forceView.TryGetProperty("incident", out _));
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("force").GetAsync($"/api/incidents/{incident}")).StatusCode);
        var (_, forceList) = await server.ClientFor("force").GetJson("/api/requests?limit=200");
        Assert.False(forceList.GetProperty("items").EnumerateArray().Single(r => Id(r) == Id(request)).TryGetProperty("incident", out _));
        var (_, ochaView) = await server.ClientFor("ocha").GetJson($"/api/requests/{Id(request)}");
        Assert.Equal(incident, Id(ochaView, "incident"));

        // Likewise a task OCHA assigns the force about it.
        var (_, forceTask) = await server.ClientFor("force").GetJson($"/api/tasks/{Id(task)}");
        Assert.False(forceTask.TryGetProperty("incident", out _));
        var (_, ochaTask) = await server.ClientFor("ocha").GetJson($"/api/tasks/{Id(task)}");
        Assert.Equal(incident, Id(ochaTask, "incident"));

        // Nor does a filter on the link tell it: the force's list of tasks about that incident is empty; OCHA's has the task.
        var (_, forceFiltered) = await server.ClientFor("force").GetJson($"/api/tasks?incident={incident}&limit=200");
        Assert.Empty(forceFiltered.GetProperty("items").EnumerateArray());
        var (_, ochaFiltered) = await server.ClientFor("ocha").GetJson($"/api/tasks?incident={incident}&limit=200");
        Assert.Contains(ochaFiltered.GetProperty("items").EnumerateArray(), t => Id(t) == Id(task));
    }

    [Fact]
    public async Task Requests_and_assigned_tasks_follow_their_incident_when_an_analyst_merges_it_into_another()
    {
        // Two accounts of one ambush, far enough apart that fusion kept them apart; OCHA asks the force about the second,
        // and assigns it a task about it. The JOC then merges the second into the first.
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var kept = await IncidentOfAsync("unpol", Api.Report(latitude: -85.2, longitude: 100.5, narrative: "Ambush on the Ndele road, two vehicles burnt.", marking: mission));
        var merged = await IncidentOfAsync("ocha", Api.Report(latitude: -86.4, longitude: 100.5, narrative: "Convoy attacked north of Ndele.", marking: mission));
        var (request, task) = await OchaAsksTheForceAboutAsync(merged, -86.4, 100.5);

        Advance(TimeSpan.FromMinutes(1));
        var (merge, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { merged } });
        Assert.Equal(HttpStatusCode.OK, merge.StatusCode);
        // Changed when they moved: a board that tells its cards apart by their update time draws them again.
        Assert.Equal(Clock.GetUtcNow(), (await server.ClientFor("ocha").GetJson($"/api/requests/{Id(request)}")).Body.GetProperty("updatedAt").GetDateTimeOffset());
        Assert.Equal(Clock.GetUtcNow(), (await server.ClientFor("ocha").GetJson($"/api/tasks/{Id(task)}")).Body.GetProperty("updatedAt").GetDateTimeOffset());

        // Both now name the incident the ambush is, to everyone who may see it; the change is on the feed for them.
        foreach (var user in new[] { "ocha", "force" })
        {
            var (_, requestNow) = await server.ClientFor(user).GetJson($"/api/requests/{Id(request)}");
            Assert.Equal(kept, Id(requestNow, "incident"));
            var (_, taskNow) = await server.ClientFor(user).GetJson($"/api/tasks/{Id(task)}");
            Assert.Equal(kept, Id(taskNow, "incident"));
        }

        Assert.Equal(2, (await ChangesOfAsync("force", Id(task))).Count);

        // Each move is in the audit, on the request and the task, by the analyst who merged, naming both incidents.
        foreach (var (entity, record) in new[] { ("request", Id(request)), ("task", Id(task)) })
        {
            var (_, audit) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={record}");
            var moved = Assert.Single(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "update");
            Assert.Equal((entity, "joc"), (moved.GetProperty("entity").GetString(), moved.GetProperty("actor").GetString()));
            var detail = System.Text.Json.JsonDocument.Parse(moved.GetProperty("detail").GetString()!).RootElement;
            Assert.Equal((kept, merged), (detail.GetProperty("incident").GetGuid(), detail.GetProperty("from").GetGuid()));
        }
    }

    [Fact]
    public async Task A_request_or_task_moved_by_a_merge_is_audited_under_the_marking_of_the_incident_it_names_too()
    {
        // OCHA asks the force about its mission-wide account; the JOC merges it into the JOC's own CONFIDENTIAL account. The
        // entries of the move name the merged incident: an auditor cleared for the request alone may not read of it.
        var kept = await IncidentOfAsync("joc", Api.Report(latitude: -87.2, longitude: 120.5, narrative: "Ambush on the Birao road.",
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])));
        var merged = await IncidentOfAsync("ocha", Api.Report(latitude: -88.4, longitude: 120.5, narrative: "Convoy attacked south of Birao.",
            marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var (request, task) = await OchaAsksTheForceAboutAsync(merged, -88.4, 120.5);

        var (merge, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { merged } });
        Assert.Equal(HttpStatusCode.OK, merge.StatusCode);

        var moves = await server.WithDbAsync(db => db.Audit.AsNoTracking()
            .Where(a => a.Action == Audit.AuditActions.Update && (a.EntityId == Id(request) || a.EntityId == Id(task)))
            .Select(a => new { a.Entity, a.Classification }).ToListAsync());
        Assert.Equal(["request", "task"], moves.Select(m => m.Entity).Order());
        Assert.All(moves, m => Assert.Equal(1, m.Classification));
    }

    [Fact]
    public async Task An_organisation_takes_on_coordination_duties_only_by_its_own_administrators()
    {
        // UNPOL's administrator records an SOP with the force: UNPOL may commit itself, not the force (a lead role with
        // one-minute deadlines, requests to answer, misses escalated to it are the force's to agree to).
        var code = "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        // In an area of its own: the rules recorded here must route nothing of the other tests.
        var (area, _, _) = await AreaAsync(-25);
        object Sop(object[] responsibilities, object[] assistance) => new
        {
            code,
            name = "Police–force SOP " + code,
            parties = new[] { "UNPOL", "FORCE" },
            rules = Array.Empty<object>(),
            responsibilities,
            assistance,
        };
        var ours = new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", acknowledgeMinutes = 30, respondMinutes = 120 };
        var admin = server.ClientFor("unpoladmin");
        foreach (var (responsibilities, assistance) in new (object[], object[])[]
        {
            ([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 1, respondMinutes = 5 }], []),
            ([new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", supporting = new[] { "FORCE" }, acknowledgeMinutes = 30, respondMinutes = 120 }], []),
            ([ours], [new { types = new[] { "armed-escort" }, addressee = "FORCE", acknowledgeMinutes = 1, respondMinutes = 5 }]),
        })
        {
            var (refused, problem) = await admin.PostJson("/api/agreements", Sop(responsibilities, assistance));
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, problem.ToString());
            Assert.Contains("FORCE", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        var (created, body) = await admin.PostJson("/api/agreements", Sop([ours], []));
        Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        // Nor by a revision; the force's own administrator (here a mission administrator) may.
        var revised = await admin.PutAsJsonAsync($"/api/agreements/{code}", Sop([ours, new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE" }], []));
        Assert.Equal(HttpStatusCode.Forbidden, revised.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("jocadmin").PutAsJsonAsync($"/api/agreements/{code}",
            Sop([ours, new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE" }], []))).StatusCode);

        // Nor by retiring the agreement, which ends the force's duties as surely as a revision without them.
        var (retire, refusal) = await admin.DeleteAsync($"/api/agreements/{code}") is var d ? (d, await d.Json()) : default;
        Assert.Equal(HttpStatusCode.Forbidden, retire.StatusCode);
        Assert.Contains("FORCE leads", refusal.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var (_, inForce) = await server.ClientFor("ocha").GetJson("/api/agreements");
        Assert.Contains(inForce.EnumerateArray(), a => a.GetProperty("code").GetString() == code);

        // UNPOL withdraws, as that refusal tells it to, by a version without it: its own rule goes with it, and so does its
        // part in the force's (it supported the force and took its escalations). It may not change the force's own terms
        // on the way out, and the force's rule stays as the force agreed it.
        object Battles(string[] supporting, string? escalateTo, int acknowledge) =>
            new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting, acknowledgeMinutes = acknowledge, respondMinutes = 60, escalateTo };
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("jocadmin").PutAsJsonAsync($"/api/agreements/{code}", Sop([ours, Battles(["UNPOL"], "UNPOL", 20)], []))).StatusCode);
        object Without(object battles) => new { code, name = "Police–force SOP " + code, parties = new[] { "FORCE" }, rules = Array.Empty<object>(), responsibilities = new[] { battles } };
        Assert.Equal(HttpStatusCode.Forbidden, (await admin.PutAsJsonAsync($"/api/agreements/{code}", Without(Battles([], null, 45)))).StatusCode);
        var withdrawn = await admin.PutAsJsonAsync($"/api/agreements/{code}", Without(Battles([], null, 20)));
        Assert.True(withdrawn.StatusCode == HttpStatusCode.OK, await withdrawn.Content.ReadAsStringAsync());
        var (_, versions) = await server.ClientFor("force").GetJson($"/api/agreements/{code}");
        var left = versions.EnumerateArray().MaxBy(v => v.GetProperty("version").GetInt32());
        Assert.Equal(["FORCE"], left.GetProperty("parties").EnumerateArray().Select(p => p.GetString()));
        var kept = Assert.Single(left.GetProperty("responsibilities").EnumerateArray());
        Assert.Equal(20, kept.GetProperty("acknowledgeMinutes").GetInt32());

        // Nor by a look-alike of another party's code: "ſ" (a long s) upper-cases to S, naming that party for the router.
        var sector = "S" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (organization, _) = await server.ClientFor("jocadmin").PostJson("/api/organizations", new { code = sector, name = "Sector " + sector, kind = "military" });
        Assert.Equal(HttpStatusCode.Created, organization.StatusCode);
        var (lookAlike, lookAlikeProblem) = await admin.PostJson("/api/agreements", new
        {
            code = code + "B",
            name = "Police–sector SOP " + code,
            parties = new[] { "UNPOL", sector },
            rules = Array.Empty<object>(),
            responsibilities = new object[] { ours, new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "\u017F" + sector[1..], acknowledgeMinutes = 1 } },
        });
        Assert.True(lookAlike.StatusCode == HttpStatusCode.BadRequest, lookAlikeProblem.ToString());
        Assert.Contains("responsibilities[1].lead", lookAlikeProblem.GetProperty("errors").EnumerateObject().Select(e => e.Name));
    }

    [Fact]
    public async Task A_rule_that_leaves_out_what_it_covers_is_refused_rather_than_read_as_covering_everything()
    {
        // Read as "*", a responsibility rule written without categories made its lead the lead of every incident in the
        // area (and tied with every other agreement's "*" rule), and an assistance rule without types held every request
        // type to its deadlines.
        var (area, _, _) = await AreaAsync(-27);
        var code = "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (refused, problem) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code,
            name = "Incomplete SOP " + code,
            parties = new[] { "JOC", "FORCE" },
            rules = Array.Empty<object>(),
            responsibilities = new object[]
            {
                new { areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 20, escalateTo = "JOC" },
                new { categories = Array.Empty<string>(), lead = "FORCE" },
            },
            assistance = new object[] { new { addressee = "FORCE", acknowledgeMinutes = 10, escalateTo = "JOC" }, new { types = Array.Empty<string>(), addressee = "FORCE" } },
        });

        Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, problem.ToString());
        Assert.Equal(["assistance[0].types", "assistance[1].types", "responsibilities[0].categories", "responsibilities[1].areas", "responsibilities[1].categories"], problem.ErrorFields());
        Assert.StartsWith("is required", problem.GetProperty("errors").GetProperty("responsibilities[0].categories")[0].GetString(), StringComparison.Ordinal);
        var (_, agreements) = await server.ClientFor("jocadmin").GetJson("/api/agreements");
        Assert.DoesNotContain(agreements.EnumerateArray(), a => a.GetProperty("code").GetString() == code);
    }

    [Fact]
    public async Task No_task_is_routed_to_an_organisation_none_of_whose_members_may_read_the_incident()
    {
        var (area, lat, lon) = await AreaAsync(-79);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting = new[] { "UNPOL" }, acknowledgeMinutes = 30 }]);

        // A battle released to the whole mission under SOURCE-PROTECTED: the force may be sent it, but none of its members
        // holds the caveat. A lead task nobody there could see would escalate as the force's miss; it is withheld, and audited.
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, narrative: "Exchange of fire at the Kouki checkpoint.",
            marking: Api.Marking("CONFIDENTIAL", ["mission"], ["SOURCE-PROTECTED"])));
        var tasks = await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count >= 1, "the police's supporting task");
        Assert.Equal(["UNPOL"], tasks.Select(t => t.GetProperty("organization").GetString()));
        var withheld = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == incident && a.Action == AuditActions.RouteWithheld).Select(a => a.Detail).ToListAsync());
        Assert.Contains("no member of the organisation may read the incident", Assert.Single(withheld), StringComparison.Ordinal);
        Assert.Contains("FORCE", withheld[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_routed_task_that_follows_a_wider_marking_after_a_split_no_longer_carries_the_words_of_the_report_split_out()
    {
        var (area, lat, lon) = await AreaAsync(-37);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", supporting = new[] { "OCHA" }, acknowledgeMinutes = 60 }]);

        // OCHA's own account (released to OCHA only) opens the incident; OCHA's supporting task is routed with its words.
        const string Secret = "Source ALPHA: armed group massing at the Ouham ford, forty fighters.";
        var incident = await IncidentOfAsync("ocha", Api.Report(latitude: lat, longitude: lon, narrative: Secret, marking: Api.Marking("UNCLASSIFIED", ["org:OCHA"])));
        var support = (await WaitForAsync(() => TasksAsync("ocha", $"incident={incident}"), t => t.Count == 1, "OCHA's supporting task")).Single();
        Assert.Equal(Secret, support.GetProperty("title").GetString());
        // OCHA's words on its task, written while only OCHA could read it: a comment, and the reason it declines.
        var (commented, _) = await server.ClientFor("ocha").PostJson($"/api/tasks/{Id(support)}/comments", new { text = "ALPHA says they move at dawn." });
        Assert.Equal(HttpStatusCode.Created, commented.StatusCode);
        var (declined, _) = await server.ClientFor("ocha").PostJson($"/api/tasks/{Id(support)}/status", new { status = "declined", reason = "ALPHA's safety comes first." });
        Assert.Equal(HttpStatusCode.OK, declined.StatusCode);

        // The force's mission-wide account joins it; OCHA's analyst takes OCHA's own account out again.
        var (_, force) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Patrol saw an armed group massing at the Ouham ford, forty fighters.", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(incident, Id(force, "incidentId"));
        var (_, ochaReports) = await server.ClientFor("ocha").GetJson($"/api/incidents/{incident}/provenance");
        var secretReport = ochaReports.GetProperty("reports").EnumerateArray().Single(r => r.GetProperty("organization").GetString() == "OCHA").GetProperty("reportId").GetGuid();
        var (split, splitBody) = await server.ClientFor("ocha").PostJson($"/api/incidents/{incident}/split", new { reports = new[] { secretReport } });
        Assert.True(split.StatusCode == HttpStatusCode.OK, splitBody.ToString());

        // The incident now holds the force's account only, released to the mission: the task follows in marking and in words.
        var seen = await WaitForAsync(() => TasksAsync("pref", $"incident={incident}"), t => t.Any(x => Id(x) == Id(support)), "the task to follow its incident");
        var followed = seen.Single(x => Id(x) == Id(support));
        Assert.Equal("Patrol saw an armed group massing at the Ouham ford, forty fighters.", followed.GetProperty("title").GetString());
        Assert.DoesNotContain("ALPHA", followed.ToString(), StringComparison.Ordinal);
        // Nor do the comment and the reason written for OCHA alone reach those the wider marking lets in; OCHA still reads them.
        var (_, prefView) = await server.ClientFor("pref").GetJson($"/api/tasks/{Id(support)}");
        Assert.Equal("declined", prefView.GetProperty("status").GetString());
        Assert.DoesNotContain("ALPHA", prefView.ToString(), StringComparison.Ordinal);
        var (_, ochaView) = await server.ClientFor("ocha").GetJson($"/api/tasks/{Id(support)}");
        Assert.Equal("ALPHA's safety comes first.", ochaView.GetProperty("reason").GetString());
        // Under the marking it was written under, not the task's wider one (a board labelled its words for the mission).
        Assert.Equal(["org:OCHA"], ochaView.GetProperty("reasonMarking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()));
        Assert.NotEqual(ochaView.GetProperty("marking").GetProperty("label").GetString(), ochaView.GetProperty("reasonMarking").GetProperty("label").GetString());
        Assert.False(prefView.TryGetProperty("reasonMarking", out _));
        Assert.Equal(["ALPHA says they move at dawn."], ochaView.GetProperty("comments").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
        // A comment written under the wider marking is for everyone it lets in.
        var (later, _) = await server.ClientFor("pref").PostJson($"/api/tasks/{Id(support)}/comments", new { text = "Prefecture informed." });
        Assert.Equal(HttpStatusCode.Created, later.StatusCode);
        var (_, again) = await server.ClientFor("pref").GetJson($"/api/tasks/{Id(support)}");
        Assert.Equal(["Prefecture informed."], again.GetProperty("comments").EnumerateArray().Select(c => c.GetProperty("text").GetString()));
    }

    [Fact]
    public async Task A_request_whose_window_ends_when_it_starts_is_refused_naming_its_end()
    {
        // An instant is no window to do anything in (a patrol's schedule is refused alike).
        var at = Clock.GetUtcNow().AddDays(1);
        var (refused, problem) = await server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type = "engineering",
            title = "Culvert repair at Kouango",
            details = "The culvert collapsed; police patrols cannot cross.",
            priority = "priority",
            addressee = "kind:military",
            location = new { latitude = 4.98, longitude = 19.97 },
            windowStart = at,
            windowEnd = at,
        });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["windowEnd"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_request_to_a_kind_no_other_organisation_is_of_is_refused_naming_the_addressee()
    {
        // Nobody could acknowledge or accept it: it would wait, overdue, on a queue no one reads. The mission has no regional
        // organisation, and UNPOL is its only police (a kind asks others of the requester's kind, never itself).
        var at = Clock.GetUtcNow().AddDays(1);
        foreach (var (user, kind) in new[] { ("ocha", "regional-organization"), ("unpol", "police") })
        {
            var (refused, problem) = await server.ClientFor(user).PostJson("/api/requests", new
            {
                type = "medevac",
                title = "Casualty evacuation from Kaga-Bandoro",
                details = "Two wounded staff need evacuation.",
                priority = "urgent",
                addressee = "kind:" + kind,
                location = new { latitude = 6.98, longitude = 19.18 },
                windowStart = at,
                windowEnd = at.AddHours(6),
            });
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, problem.ToString());
            Assert.Equal(["addressee"], problem.ErrorFields());
            Assert.Contains("nobody could answer", problem.GetProperty("errors").GetProperty("addressee")[0].GetString(), StringComparison.Ordinal);
        }

        Assert.False(await server.WithDbAsync(db => db.Requests.AnyAsync(r => r.Title == "Casualty evacuation from Kaga-Bandoro")));
    }

    [Fact]
    public async Task A_humanitarian_escort_request_needs_both_sets_of_criteria_and_the_addressee_sees_them_before_accepting()
    {
        var ocha = server.ClientFor("ocha");
        var window = new { windowStart = Clock.GetUtcNow().AddHours(20), windowEnd = Clock.GetUtcNow().AddHours(44) };
        object Body(object? criteria, object? marking = null) => new
        {
            type = "armed-escort",
            title = "Escort for the Bria food convoy",
            details = "14 trucks, Bambari to Bria, departure 06:00.",
            priority = "urgent",
            addressee = "FORCE",
            route = new[] { new[] { 20.67, 5.76 }, new[] { 21.2, 6.1 }, new[] { 21.99, 6.54 } },
            window.windowStart,
            window.windowEnd,
            criteria,
            marking,
        };

        var (missing, problem) = await ocha.PostJson("/api/requests", Body(null));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal(
            new[]
            {
                "criteria.escort.humanitarianNeed", "criteria.escort.responsibleAuthorities", "criteria.escort.safetyAndSecurity", "criteria.escort.sustainability",
                "criteria.lastResort.criticalNeed", "criteria.lastResort.limitedInTimeAndScale", "criteria.lastResort.noCivilianAlternative",
            },
            problem.ErrorFields().Order(StringComparer.Ordinal));
        var (bell, bellProblem) = await ocha.PostJson("/api/requests", Body(new
        {
            escort = new
            {
                humanitarianNeed = "Food for 12,000 displaced people in Bria camp; stocks run out in four days.",
                responsibleAuthorities = "The prefecture cannot secure the road; gendarmerie absent since March.",
                safetyAndSecurity = "Two convoy attacks on this road in October; an escort reduces the risk per UNDSS.",
                sustainability = "One-off escort while the road is repaired;\u0000 civilian access resumes after.",
            },
            lastResort = LastResortCriteria,
        }));
        Assert.Equal(HttpStatusCode.BadRequest, bell.StatusCode);
        Assert.Equal(["criteria.escort.sustainability"], bellProblem.ErrorFields());
        var (partial, partialProblem) = await ocha.PostJson("/api/requests", Body(new { escort = EscortCriteria }));
        Assert.Equal(HttpStatusCode.BadRequest, partial.StatusCode);
        Assert.All(partialProblem.ErrorFields(), f => Assert.StartsWith("criteria.lastResort.", f, StringComparison.Ordinal));

        var (hidden, hiddenProblem) = await ocha.PostJson("/api/requests", Body(new { escort = EscortCriteria, lastResort = LastResortCriteria }, Api.Marking("UNCLASSIFIED", [])));
        Assert.Equal(HttpStatusCode.BadRequest, hidden.StatusCode);
        Assert.Equal(["marking.releasableTo"], hiddenProblem.ErrorFields());

        var (created, request) = await ocha.PostJson("/api/requests", Body(new { escort = EscortCriteria, lastResort = LastResortCriteria }));
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var id = Id(request);
        Assert.Equal("requested", request.GetProperty("status").GetString());
        Assert.Equal(Clock.GetUtcNow().AddMinutes(15), request.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
        Assert.Equal(["cancelled"], request.GetProperty("actions").EnumerateArray().Select(a => a.GetString()));

        // The police are not party to the request: it does not exist for them.
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("unpol").GetAsync($"/api/requests/{id}")).StatusCode);
        var (_, policeList) = await server.ClientFor("unpol").GetJson("/api/requests");
        Assert.DoesNotContain(policeList.GetProperty("items").EnumerateArray(), r => Id(r) == id);

        // The force sees the criteria, and what it may do, before it answers.
        var force = server.ClientFor("force");
        var (_, incoming) = await force.GetJson("/api/requests?direction=incoming&open=true");
        var seen = incoming.GetProperty("items").EnumerateArray().Single(r => Id(r) == id);
        Assert.True(seen.GetProperty("lastResortRequired").GetBoolean());
        Assert.True(seen.GetProperty("escortCriteriaRequired").GetBoolean());
        Assert.StartsWith("No commercial or NGO carrier", seen.GetProperty("criteria").GetProperty("lastResort").GetProperty("noCivilianAlternative").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("Two convoy attacks", seen.GetProperty("criteria").GetProperty("escort").GetProperty("safetyAndSecurity").GetString(), StringComparison.Ordinal);
        Assert.Equal(["acknowledged", "accepted", "declined"], seen.GetProperty("actions").EnumerateArray().Select(a => a.GetString()));

        Assert.Equal(HttpStatusCode.Forbidden, (await ocha.PostJson($"/api/requests/{id}/status", new { status = "accepted" })).Response.StatusCode);
        var (noReason, noReasonProblem) = await force.PostJson($"/api/requests/{id}/status", new { status = "declined" });
        Assert.Equal(HttpStatusCode.BadRequest, noReason.StatusCode);
        Assert.Equal(["reason"], noReasonProblem.ErrorFields());
        var (notYet, notYetProblem) = await force.PostJson($"/api/requests/{id}/status", new { status = "completed" });
        Assert.Equal(HttpStatusCode.Conflict, notYet.StatusCode);
        Assert.Equal(["status"], notYetProblem.ErrorFields());

        Advance(TimeSpan.FromMinutes(4));
        var (acked, _) = await force.PostJson($"/api/requests/{id}/status", new { status = "acknowledged" });
        Assert.Equal(HttpStatusCode.OK, acked.StatusCode);
        Advance(TimeSpan.FromMinutes(6));
        var (accepted, acceptedBody) = await force.PostJson($"/api/requests/{id}/status", new { status = "accepted" });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, acceptedBody.ToString());
        Assert.Equal("FORCE", acceptedBody.GetProperty("assignedTo").GetString());

        var (_, mine) = await ocha.GetJson($"/api/requests/{id}");
        Assert.Equal("accepted", mine.GetProperty("status").GetString());
        Assert.False(mine.GetProperty("deadlines").TryGetProperty("overdue", out _));

        // Every state change is audited and on the change feed.
        var actions = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == id).Select(a => a.Action).ToListAsync());
        Assert.Equal(1, actions.Count(a => a == AuditActions.Create));
        Assert.Equal(2, actions.Count(a => a == AuditActions.Status));
        Assert.Equal(["created", "updated", "updated"], await ChangesOfAsync("ocha", id));
        Assert.Empty(await ChangesOfAsync("unpol", id));
    }

    [Fact]
    public async Task A_task_given_the_id_of_a_request_escalates_as_the_request_does_each_once()
    {
        // Clients choose the ids of tasks and requests; one id may name one of each. Their escalations are told apart by
        // kind: neither stops the other (or every escalation after them) from escalating.
        var id = Guid.NewGuid();
        object Ferry(Guid requestId) => new
        {
            id = requestId,
            type = "transport",
            title = "Ferry cable snapped at Mobaye",
            details = "The ferry cannot cross; patrols are cut off.",
            priority = "urgent",
            addressee = "PREF",
            location = new { latitude = 4.32, longitude = 21.18 },
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(2),
        };
        var (created, request) = await server.ClientFor("unpol").PostJson("/api/requests", Ferry(id));
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        // A task is not given a request's id, nor a request a task's.
        var (taken, takenProblem) = await server.ClientFor("unpol").PostJson("/api/tasks", new
        {
            id,
            title = "Check the ferry landing",
            organization = "UNPOL",
            acknowledgeBy = Clock.GetUtcNow().AddMinutes(16),
            marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL"]),
        });
        Assert.Equal(HttpStatusCode.Conflict, taken.StatusCode);
        Assert.Equal(["id"], takenProblem.ErrorFields());
        var (otherTask, other) = await server.ClientFor("unpol").PostJson("/api/tasks", new { title = "Check the ferry landing", organization = "UNPOL" });
        Assert.True(otherTask.StatusCode == HttpStatusCode.Created, other.ToString());
        var (takenByTask, takenByTaskProblem) = await server.ClientFor("unpol").PostJson("/api/requests", Ferry(Id(other)));
        Assert.Equal(HttpStatusCode.Conflict, takenByTask.StatusCode);
        Assert.Equal(["id"], takenByTaskProblem.ErrorFields());

        // Two sends at once can still store one of each (or a store from before the check holds them): such a task
        // escalates as the request does, each once.
        var unpol = await server.WithDbAsync(db => db.Organizations.Where(o => o.Code == "UNPOL").Select(o => o.Id).SingleAsync());
        await server.WithDbAsync(async db =>
        {
            var now = Clock.GetUtcNow().UtcDateTime;
            var task = new CoordinationTask
            {
                Id = id,
                Title = "Check the ferry landing",
                OrganizationId = unpol,
                Role = TaskRoles.Assigned,
                Status = TaskStatuses.Open,
                CreatedBy = "test",
                CreatedAt = now,
                UpdatedAt = now,
                AcknowledgeBy = now.AddMinutes(16),
                Classification = 0,
                ReleasableTo = "|org:UNPOL|",
                Caveats = 0,
            };
            task.Reschedule();
            db.Tasks.Add(task);
            await db.SaveChangesAsync();
            return 0;
        });

        Advance(TimeSpan.FromMinutes(17));
        Task<int> EscalatedAsync(string entity) =>
            server.WithDbAsync(db => db.Escalations.CountAsync(e => e.ItemId == id && e.ItemEntity == entity && e.Deadline == Deadlines.Acknowledge));
        await WaitForAsync(() => EscalatedAsync("request"), n => n == 1, "the request's escalation");
        await WaitForAsync(() => EscalatedAsync("task"), n => n == 1, "the task's escalation");
    }

    [Fact]
    public async Task Requests_to_a_kind_are_taken_by_one_organisation_and_measured()
    {
        var unpol = server.ClientFor("unpol");
        var (created, request) = await unpol.PostJson("/api/requests", new
        {
            type = "engineering",
            title = "Bridge repair at Kouango",
            details = "The bridge lost two spans; police patrols cannot cross.",
            priority = "priority",
            addressee = "kind:military",
            location = new { latitude = 4.99, longitude = 19.98 },
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(5),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var id = Id(request);
        Assert.False(request.GetProperty("lastResortRequired").GetBoolean());
        Assert.Equal("military", request.GetProperty("addresseeKind").GetString());

        // Both military organisations see it as incoming; the first to accept takes it, and the other may no longer answer.
        Assert.Contains((await server.ClientFor("rwabatt").GetJson("/api/requests?direction=incoming")).Body.GetProperty("items").EnumerateArray(), r => Id(r) == id);
        Advance(TimeSpan.FromMinutes(12));
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("force").PostJson($"/api/requests/{id}/status", new { status = "acknowledged" })).Response.StatusCode);
        Advance(TimeSpan.FromMinutes(30));
        var (accepted, body) = await server.ClientFor("rwabatt").PostJson($"/api/requests/{id}/status", new { status = "accepted" });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, body.ToString());
        Assert.Equal(HttpStatusCode.Forbidden, (await server.ClientFor("force").PostJson($"/api/requests/{id}/status", new { status = "in-progress" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("rwabatt").PostJson($"/api/requests/{id}/status", new { status = "in-progress" })).Response.StatusCode);

        // The JOC (civilian) may not see a request released to the military kind and the police; the force may.
        var (_, jocFigures) = await server.ClientFor("joc").GetJson("/api/coordination/metrics");
        Assert.DoesNotContain(jocFigures.GetProperty("byRequestType").EnumerateArray(), f => f.GetProperty("key").GetString() == "engineering");
        var (metrics, figures) = await server.ClientFor("force").GetJson("/api/coordination/metrics");
        Assert.True(metrics.StatusCode == HttpStatusCode.OK, figures.ToString());
        var engineering = figures.GetProperty("byRequestType").EnumerateArray().Single(f => f.GetProperty("key").GetString() == "engineering");
        Assert.Equal(1, engineering.GetProperty("items").GetInt32());
        Assert.Equal(12.0, engineering.GetProperty("medianAcknowledgeMinutes").GetDouble());
        Assert.Equal(42.0, engineering.GetProperty("medianRespondMinutes").GetDouble());
        Assert.Equal(0, engineering.GetProperty("overdue").GetInt32());

        // A count tells of what it counts: the metrics name the highest classification and the caveats of the records
        // counted, so that a page can mark them (a CONFIDENTIAL request to the force, which the battalion may not see).
        var (confidential, secret) = await unpol.PostJson("/api/requests", new
        {
            type = "information",
            title = "Armed group positions near Kouango",
            details = "What the force knows of the positions.",
            priority = "routine",
            addressee = "FORCE",
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(3),
            marking = Api.Marking("CONFIDENTIAL", ["org:FORCE", "org:UNPOL"]),
        });
        Assert.True(confidential.StatusCode == HttpStatusCode.Created, secret.ToString());
        // The metrics' window ends now, before it: this clock stands still unless moved.
        Advance(TimeSpan.FromMinutes(1));
        Assert.Equal("CONFIDENTIAL", (await server.ClientFor("force").GetJson("/api/coordination/metrics")).Body.GetProperty("classification").GetString());
        Assert.Equal("UNCLASSIFIED", (await server.ClientFor("rwabatt").GetJson("/api/coordination/metrics")).Body.GetProperty("classification").GetString());

        // The police may cancel their own request; nobody may move it after that.
        var (cancelled, _) = await unpol.PostJson($"/api/requests/{id}/status", new { status = "cancelled", reason = "Bridge repaired by the prefecture." });
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await server.ClientFor("rwabatt").PostJson($"/api/requests/{id}/status", new { status = "completed" })).Response.StatusCode);
    }

    /// <summary>A routine security assessment asked of the military kind (a type no other test counts).</summary>
    private async Task<JsonElement> RequestToTheMilitaryAsync(string requester, string title)
    {
        var (created, request) = await server.ClientFor(requester).PostJson("/api/requests", new
        {
            type = "security-assessment",
            title,
            details = "Assess the crossing before the convoys resume.",
            priority = "routine",
            addressee = "kind:military",
            location = new { latitude = 5.73, longitude = 20.05 },
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(3),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        return request;
    }

    [Fact]
    public async Task A_request_to_its_own_kind_is_for_the_others_of_that_kind()
    {
        var request = await RequestToTheMilitaryAsync("rwabatt", "Bridge survey at Grimari");
        var id = Id(request);

        // The requester cannot take its own request (which would meet the deadline and stop escalation); the force may.
        Assert.DoesNotContain((await server.ClientFor("rwabatt").GetJson("/api/requests?direction=incoming")).Body.GetProperty("items").EnumerateArray(), r => Id(r) == id);
        Assert.DoesNotContain("accepted", request.GetProperty("actions").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(HttpStatusCode.Forbidden, (await server.ClientFor("rwabatt").PostJson($"/api/requests/{id}/status", new { status = "accepted" })).Response.StatusCode);
        Assert.Contains((await server.ClientFor("force").GetJson("/api/requests?direction=incoming")).Body.GetProperty("items").EnumerateArray(), r => Id(r) == id);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("force").PostJson($"/api/requests/{id}/status", new { status = "accepted" })).Response.StatusCode);
    }

    [Fact]
    public async Task A_task_about_an_incident_merged_away_while_it_was_made_is_not_saved()
    {
        // A task (or request) is checked against its incident, then saved; an analyst's merge between the two moved only
        // the links already saved, and the new record would point at an incident gone for good. The save checks again,
        // inside its transaction: here the incident is merged away after the task was made and before its save.
        var place = Api.Spot();
        var gone = await IncidentOfAsync("force", Api.Report(latitude: place.Latitude, longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var other = Api.Spot();
        var kept = await IncidentOfAsync("force", Api.Report(latitude: other.Latitude, longitude: other.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var force = server.ViewerOf("force");
        var now = Clock.GetUtcNow().UtcDateTime;
        CoordinationTask About(Guid incident) => AssignedTask(Guid.NewGuid(), "Escort to the site", force.OrganizationId, incident, "force", now, "|mission|");

        await using var scope = server.Services.CreateAsyncScope();
        var desk = scope.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var late = About(gone);
        desk.Db.Tasks.Add(late);
        var (merged, _) = await server.ClientFor("force").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { gone } });
        Assert.Equal(HttpStatusCode.OK, merged.StatusCode);
        await Assert.ThrowsAsync<IncidentGoneException>(() => desk.SaveAboutAsync(gone, [desk.Audit(force, AuditActions.Create, "task", late.Id, AuditMarking.Of(late), new { })], CancellationToken.None));
        Assert.False(await server.WithDbAsync(db => db.Tasks.AnyAsync(t => t.Id == late.Id)));
        Assert.False(await server.WithDbAsync(db => db.Audit.AnyAsync(a => a.EntityId == late.Id)));

        // About the incident it went into, the same save is made; and over HTTP the refusal names the field, as a conflict.
        await using var again = server.Services.CreateAsyncScope();
        var next = again.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var onTime = About(kept);
        next.Db.Tasks.Add(onTime);
        await next.SaveAboutAsync(kept, [next.Audit(force, AuditActions.Create, "task", onTime.Id, AuditMarking.Of(onTime), new { })], CancellationToken.None);
        Assert.True(await server.WithDbAsync(db => db.Tasks.AnyAsync(t => t.Id == onTime.Id && t.IncidentId == kept)));
        Assert.Equal((int)HttpStatusCode.Conflict, CoordinationDesk.IncidentGone().StatusCode);

        // The other order: the task's save waits for the audit chain (another save holds it) before a merge of its incident
        // begins. The merge must not read the links to move before that save is done, or the task, saved next, would stay
        // about the incident the merge then removes.
        var third = Api.Spot();
        var merging = await IncidentOfAsync("force", Api.Report(latitude: third.Latitude, longitude: third.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var release = new TaskCompletionSource();
        var hold = await server.HoldAuditWriterAsync(release.Task, _ => Task.CompletedTask);
        await using var waiting = server.Services.CreateAsyncScope();
        var waitingDesk = waiting.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var early = About(merging);
        waitingDesk.Db.Tasks.Add(early);
        var saving = waitingDesk.SaveAboutAsync(merging, [waitingDesk.Audit(force, AuditActions.Create, "task", early.Id, AuditMarking.Of(early), new { })], CancellationToken.None);
        await Task.Delay(300);
        var merge = server.ClientFor("force").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { merging } });
        await Task.Delay(500);
        release.SetResult();
        await hold;
        await saving;
        Assert.Equal(HttpStatusCode.OK, (await merge).Response.StatusCode);
        Assert.Equal(kept, await server.WithDbAsync(db => db.Tasks.Where(t => t.Id == early.Id).Select(t => t.IncidentId).SingleAsync()));
        Assert.Equal(["incident"], Assert.IsType<Microsoft.AspNetCore.Http.HttpValidationProblemDetails>(CoordinationDesk.IncidentGone().ProblemDetails).Errors.Keys);
    }

    [Fact]
    public async Task Two_organisations_accepting_a_request_at_once_cannot_both_take_it()
    {
        var id = Id(await RequestToTheMilitaryAsync("unpol", "Culvert assessment at Bambari"));

        // Both military organisations read the request as requested, then both accept: the second save finds it moved.
        await using var first = server.Services.CreateAsyncScope();
        await using var second = server.Services.CreateAsyncScope();
        var firstDesk = first.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var secondDesk = second.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var rwabatt = server.ViewerOf("rwabatt");
        var force = server.ViewerOf("force");
        var readByFirst = await firstDesk.Db.Requests.SingleAsync(r => r.Id == id);
        var readBySecond = await secondDesk.Db.Requests.SingleAsync(r => r.Id == id);
        Assert.Null(await RequestEndpoints.MoveAsync(firstDesk, readByFirst, new StatusChange("accepted", null), rwabatt, CancellationToken.None));
        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => RequestEndpoints.MoveAsync(secondDesk, readBySecond, new StatusChange("accepted", null), force, CancellationToken.None));

        var stored = await server.WithDbAsync(db => db.Requests.AsNoTracking().SingleAsync(r => r.Id == id));
        Assert.Equal(rwabatt.OrganizationId, stored.AssignedOrganizationId);
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == id && a.Action == AuditActions.Status)));

        // On PostgreSQL the refused save took a change number it never used; the feed's readers pass that gap once the
        // transactions running when they saw it have ended, though this test's clock stands still.
        var (started, _) = await server.ClientFor("rwabatt").PostJson($"/api/requests/{id}/status", new { status = "in-progress" });
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);

        // Over HTTP the refused save is a conflict that says to read again, not a server error.
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext { RequestServices = server.Services };
        context.Response.Body = new MemoryStream();
        Assert.True(await new Http.ConcurrentChange(server.Services.GetRequiredService<Microsoft.AspNetCore.Http.IProblemDetailsService>())
            .TryHandleAsync(context, new DbUpdateConcurrencyException("moved"), CancellationToken.None));
        Assert.Equal((int)HttpStatusCode.Conflict, context.Response.StatusCode);
        Assert.Contains("read it again", System.Text.Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tasks_move_keeps_its_reason_until_the_next_move_as_the_audit_counts_it()
    {
        var id = await AssignedTaskAsync("Check the road to the Bambari market", "UNCLASSIFIED");
        var unpol = server.ClientFor("unpol");

        var (moved, body) = await unpol.PostJson($"/api/tasks/{id}/status", new { status = "done", reason = "Road cleared at 14:00; the market reopened." });
        Assert.True(moved.StatusCode == HttpStatusCode.OK, body.ToString());
        Assert.Equal("Road cleared at 14:00; the market reopened.", body.GetProperty("reason").GetString());
        Assert.Equal("Road cleared at 14:00; the market reopened.", (await server.ClientFor("joc").GetJson($"/api/tasks/{id}")).Body.GetProperty("reason").GetString());
        var entry = await server.WithDbAsync(db => db.Audit.AsNoTracking().SingleAsync(a => a.EntityId == id && a.Action == AuditActions.Status));
        Assert.Contains("\"reason\":\"43 characters\"", entry.Detail, StringComparison.Ordinal);

        // Moved on without a reason, the last one no longer stands for it.
        var other = await AssignedTaskAsync("Check the ford at Kouango", "UNCLASSIFIED");
        await unpol.PostJson($"/api/tasks/{other}/status", new { status = "acknowledged", reason = "On our way." });
        var (again, againBody) = await unpol.PostJson($"/api/tasks/{other}/status", new { status = "in-progress" });
        Assert.True(again.StatusCode == HttpStatusCode.OK, againBody.ToString());
        Assert.False(againBody.TryGetProperty("reason", out _), againBody.ToString());
    }

    [Fact]
    public async Task A_comment_made_while_the_task_moves_is_kept()
    {
        var id = await AssignedTaskAsync("Check the water point at the camp", "UNCLASSIFIED");

        // The audit chain's writer is held; the comment reads the task (open) and waits for the writer, then the task is
        // acknowledged before the comment is saved: the comment's update of the task finds its status moved.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = await server.HoldAuditWriterAsync(release.Task, async db =>
        {
            var moved = await db.Tasks.SingleAsync(t => t.Id == id);
            moved.Status = TaskStatuses.Acknowledged;
            moved.UpdatedAt = Clock.GetUtcNow().UtcDateTime;
        });
        var comment = server.ClientFor("unpol").PostJson($"/api/tasks/{id}/comments", new { text = "The pump was repaired this morning." });
        await Task.Delay(500);
        release.SetResult();
        await held;

        var (response, body) = await comment;
        Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        var (_, read) = await server.ClientFor("joc").GetJson($"/api/tasks/{id}");
        Assert.Equal("acknowledged", read.GetProperty("status").GetString());
        Assert.Equal("The pump was repaired this morning.", Assert.Single(read.GetProperty("comments").EnumerateArray()).GetProperty("text").GetString());
        Assert.Single(await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == id && a.Action == AuditActions.Comment).ToListAsync()));
    }

    [Fact]
    public async Task Tasks_are_marked_declined_only_with_a_reason_and_moved_only_by_their_organisation()
    {
        var joc = server.ClientFor("joc");
        var id = await AssignedTaskAsync("Confirm casualty figures with the hospital", "CONFIDENTIAL");

        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("unpol2").GetAsync($"/api/tasks/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("force").GetAsync($"/api/tasks/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await joc.PostJson($"/api/tasks/{id}/status", new { status = "done" })).Response.StatusCode);
        var unpol = server.ClientFor("unpol");
        var (comment, _) = await unpol.PostJson($"/api/tasks/{id}/comments", new { text = "Hospital director reachable after 14:00." });
        Assert.Equal(HttpStatusCode.Created, comment.StatusCode);
        var (bad, problem) = await unpol.PostJson($"/api/tasks/{id}/status", new { status = "declined", reason = "" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(["reason"], problem.ErrorFields());
        var (declined, body) = await unpol.PostJson($"/api/tasks/{id}/status", new { status = "declined", reason = "The hospital is in the FORCE sector; FORCE has the contact." });
        Assert.True(declined.StatusCode == HttpStatusCode.OK, body.ToString());
        var (_, read) = await joc.GetJson($"/api/tasks/{id}");
        Assert.Equal("declined", read.GetProperty("status").GetString());
        Assert.StartsWith("The hospital", read.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Single(read.GetProperty("comments").EnumerateArray());
        var (moved, movedProblem) = await unpol.PostJson($"/api/tasks/{id}/status", new { status = "in-progress" });
        Assert.Equal(HttpStatusCode.Conflict, moved.StatusCode);
        Assert.Equal(["status"], movedProblem.ErrorFields());

        // The decline is audited with the length of its reason, not its words: auditors read the log mission-wide, by
        // clearance alone, and the task (with its reason) is released to the police and the JOC only.
        var declineEntry = await server.WithDbAsync(db => db.Audit.SingleAsync(a => a.EntityId == id && a.Action == AuditActions.Status && a.Detail.Contains("declined")));
        Assert.DoesNotContain("hospital", declineEntry.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("59 characters", declineEntry.Detail, StringComparison.Ordinal);

        // Each change is audited (and so is the JOC's read of the CONFIDENTIAL task) and on the change feed, for those who may see the task only.
        var actions = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == id && a.Entity == "task").Select(a => a.Action).ToListAsync());
        Assert.Equal([AuditActions.Comment, AuditActions.Create, AuditActions.Read, AuditActions.Status], actions.Order(StringComparer.Ordinal));
        Assert.Equal(["created", "updated", "updated"], await ChangesOfAsync("unpol", id));
        Assert.Empty(await ChangesOfAsync("unpol2", id));

        // A task must be readable by the organisation it is assigned to.
        var (unreadable, unreadableProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "FORCE", marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL"]) });
        Assert.Equal(HttpStatusCode.BadRequest, unreadable.StatusCode);
        Assert.Equal(["marking.releasableTo"], unreadableProblem.ErrorFields());

        // ... by someone in it: no member of UNPOL holds DECONFLICTION-ONLY, none of RWABATT is cleared for CONFIDENTIAL
        // (released to them, but nobody there could read it, so nobody would act on it).
        var (caveated, caveatedProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", marking = Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["DECONFLICTION-ONLY"]) });
        Assert.Equal(HttpStatusCode.BadRequest, caveated.StatusCode);
        Assert.Equal(["marking"], caveatedProblem.ErrorFields());
        Assert.Equal("no member of UNPOL, named in organization, may read a record with this marking", caveatedProblem.GetProperty("errors").GetProperty("marking")[0].GetString());
        // Said only once everything else would be accepted: judged alongside another error, a request bound to fail told,
        // without making anything or leaving an audited record, which levels and caveats an organisation's members hold.
        var (untitled, untitledProblem) = await joc.PostJson("/api/tasks", new { title = "", organization = "UNPOL", marking = Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["DECONFLICTION-ONLY"]) });
        Assert.Equal(HttpStatusCode.BadRequest, untitled.StatusCode);
        Assert.Equal(["title"], untitledProblem.ErrorFields());
        // Nor beside a named assignee or patrol member who is no one: the member is refused whatever the marking.
        foreach (var marking in new[] { Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["DECONFLICTION-ONLY"]), Api.Marking("UNCLASSIFIED", ["org:UNPOL"]) })
        {
            var (toNobody, toNobodyProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", member = "no-such-name", marking });
            Assert.Equal(HttpStatusCode.BadRequest, toNobody.StatusCode);
            Assert.Equal(["member"], toNobodyProblem.ErrorFields());
        }

        // (No member of FORCE holds SOURCE-PROTECTED.)
        foreach (var marking in new[] { Api.Marking("CONFIDENTIAL", ["org:UNPOL", "org:FORCE"], ["SOURCE-PROTECTED"]), Api.Marking("UNCLASSIFIED", ["org:UNPOL", "org:FORCE"]) })
        {
            var (patrolled, patrolProblem) = await server.ClientFor("unpol").PostJson("/api/patrols", new
            {
                name = "Probe patrol",
                organizations = new[] { "UNPOL", "FORCE" },
                members = new[] { "no-such-name" },
                route = new[] { new[] { 20.65, 5.75 }, new[] { 20.9, 6.0 } },
                startsAt = Clock.GetUtcNow().AddHours(2),
                endsAt = Clock.GetUtcNow().AddHours(8),
                marking,
            });
            Assert.Equal(HttpStatusCode.BadRequest, patrolled.StatusCode);
            Assert.Equal(["members"], patrolProblem.ErrorFields());
        }

        // A request to RWABATT marked CONFIDENTIAL, at a place (latitude) given or not.
        Task<(HttpResponseMessage Response, JsonElement Body)> ToRwabattAsync(double latitude) => server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type = "information",
            title = "Who holds the bridge?",
            priority = "routine",
            addressee = "RWABATT",
            location = new { latitude, longitude = 18.2 },
            marking = Api.Marking("CONFIDENTIAL", ["org:RWABATT"]),
            windowStart = Clock.GetUtcNow().AddHours(1),
            windowEnd = Clock.GetUtcNow().AddDays(1),
        });
        var (requestProbe, requestProbeProblem) = await ToRwabattAsync(95.1);
        Assert.Equal(HttpStatusCode.BadRequest, requestProbe.StatusCode);
        Assert.Equal(["location"], requestProbeProblem.ErrorFields());
        var (toUncleared, toUnclearedProblem) = await ToRwabattAsync(5.1);
        Assert.Equal(HttpStatusCode.BadRequest, toUncleared.StatusCode);
        Assert.Equal(["marking"], toUnclearedProblem.ErrorFields());
        Assert.Contains("no member of RWABATT", toUnclearedProblem.GetProperty("errors").GetProperty("marking")[0].GetString(), StringComparison.Ordinal);

        // ... and by the member it is assigned to: unpol2 is cleared for UNCLASSIFIED only. Names are found as members are
        // kept (lower case); text that is no name is refused on the field, not by the store.
        var (uncleared, unclearedProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", member = "UNPOL2", marking = Api.Marking("CONFIDENTIAL", ["org:UNPOL"]) });
        Assert.Equal(HttpStatusCode.BadRequest, uncleared.StatusCode);
        Assert.Equal(["member"], unclearedProblem.ErrorFields());
        Assert.Contains("who may see a task with this marking", unclearedProblem.GetProperty("errors").GetProperty("member")[0].GetString(), StringComparison.Ordinal);
        var (nobody, nobodyProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", member = "unpol2\u0000" });
        Assert.Equal(HttpStatusCode.BadRequest, nobody.StatusCode);
        Assert.Equal(["member"], nobodyProblem.ErrorFields());
        // A bad marking is named whether or not the member exists: the refusal does not tell an active member from nobody.
        foreach (var member in new[] { "unpol2", "nobody-" + Guid.NewGuid().ToString("N")[..6] })
        {
            var (_, probe) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", member, marking = new { classification = "BOGUS" } });
            Assert.Contains("marking.classification", probe.ErrorFields());
        }

        // Nor is the member judged while anything else is refused: a request bound to fail on its title tells nothing of
        // whether a name is an active member, or what they are cleared for.
        foreach (var (member, level) in new[] { ("unpol2", "UNCLASSIFIED"), ("unpol2", "CONFIDENTIAL"), ("nobody-" + Guid.NewGuid().ToString("N")[..6], "UNCLASSIFIED") })
        {
            var (_, probe) = await joc.PostJson("/api/tasks", new { title = "x", organization = "UNPOL", member, marking = Api.Marking(level, ["org:UNPOL"]) });
            Assert.Equal(["title"], probe.ErrorFields());
        }
        var (assigned, assignedBody) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", member = "UNPOL2" });
        Assert.True(assigned.StatusCode == HttpStatusCode.Created, assignedBody.ToString());
        Assert.Equal("unpol2", assignedBody.GetProperty("member").GetString());
    }

    [Fact]
    public async Task An_audit_query_naming_a_classified_meeting_is_recorded_under_the_meetings_marking()
    {
        // Marked as no record (only reports, incidents, tasks and requests were looked up), the entry recording the query
        // showed every auditor the meeting's id, and whom it was being looked into with.
        var (_, meeting) = await server.ClientFor("joc").PostJson("/api/meetings", new
        {
            title = "Restricted source handling, Bria",
            heldAt = Clock.GetUtcNow().AddHours(-3),
            actionItems = Array.Empty<object>(),
            marking = Api.Marking("STRICTLY CONFIDENTIAL", ["org:JOC"], ["SOURCE-PROTECTED"]),
        });
        var id = Id(meeting);
        var unknown = Guid.NewGuid();
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("jocadmin").GetAsync($"/api/audit?record={id}&member=pref")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("jocadmin").GetAsync($"/api/audit?record={unknown}")).StatusCode);

        var queries = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == AuditActions.Read && a.Entity == "audit").ToListAsync());
        var named = Assert.Single(queries, a => a.Detail.Contains(id.ToString(), StringComparison.OrdinalIgnoreCase));
        Assert.Equal((2, server.Services.GetRequiredService<Access.CaveatRegistry>().Bits(["SOURCE-PROTECTED"])), (named.Classification, named.Caveats));
        // An id of no record (or of one deleted since) is marked as the asker is cleared.
        var nowhere = Assert.Single(queries, a => a.Detail.Contains(unknown.ToString(), StringComparison.OrdinalIgnoreCase));
        var asker = await server.WithDbAsync(db => db.Members.AsNoTracking().SingleAsync(m => m.UserName == "jocadmin"));
        Assert.Equal((asker.Clearance, asker.Caveats), (nowhere.Classification, nowhere.Caveats));
    }

    [Fact]
    public async Task A_member_of_an_organisation_added_behind_the_servers_back_may_record_a_patrol_and_a_meeting_at_once()
    {
        // The organisation and its member were added by the command line (or another node) a moment ago: this server's
        // directory does not hold the organisation yet, and the patrol's and meeting's own organisation was read from it.
        var code = "NEW" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var user = "new" + Guid.NewGuid().ToString("N")[..6];
        // Their change rows are taken out before the commit: this server's feed followers would otherwise read the directory
        // again at once, and the test would depend on whether they came first.
        var secret = await server.WithDbAsync(async db =>
        {
            var time = server.Services.GetRequiredService<TimeProvider>();
            Accounts.Member? member;
            await using (var transaction = await db.Database.BeginTransactionAsync())
            {
                var (organization, error) = await Organizations.OrganizationAdmin.AddAsync(db, code, "New battalion", "military", null, time, CancellationToken.None);
                Assert.Null(error);
                await db.SaveChangesAsync();
                (member, var memberError) = await Accounts.MemberAdmin.AddAsync(db, new Accounts.NewMember(user, code, null, ["reporter"], "UNCLASSIFIED", [], TestServer.Password),
                    server.Services.GetRequiredService<ClassificationScheme>(), server.Services.GetRequiredService<CaveatRegistry>(), time, CancellationToken.None);
                Assert.Null(memberError);
                await db.SaveChangesAsync();
                await db.Changes.Where(c => c.EntityId == organization!.Id || c.EntityId == member!.Id).ExecuteDeleteAsync();
                await transaction.CommitAsync();
            }

            db.ChangeTracker.Clear();
            return (await Accounts.AccessTokens.CreateAsync(db, server.Services.GetRequiredService<AuditChain>(), null, member!, "tests", TimeSpan.FromHours(1), time, CancellationToken.None)).Item2;
        });
        Assert.Null(server.Services.GetRequiredService<MissionDirectory>().OrganizationByCode(code));
        var client = server.Anonymous();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", secret);

        var (patrol, patrolBody) = await client.PostJson("/api/patrols", new
        {
            name = "First patrol of " + code,
            route = new[] { new[] { 22.3, 6.9 }, new[] { 22.4, 7.0 } },
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(3),
        });
        Assert.True(patrol.StatusCode == HttpStatusCode.Created, patrolBody.ToString());
        Assert.Equal([code], patrolBody.GetProperty("organizations").EnumerateArray().Select(o => o.GetString()));
        var (meeting, meetingBody) = await client.PostJson("/api/meetings", new { title = "Arrival briefing of " + code, heldAt = Clock.GetUtcNow().AddHours(-1) });
        Assert.True(meeting.StatusCode == HttpStatusCode.Created, meetingBody.ToString());
    }

    [Fact]
    public async Task A_meeting_given_the_id_of_a_hidden_incident_does_not_make_a_task_listed_beside_it_name_that_incident()
    {
        // Meeting ids are the client's: OCHA gives its meeting the id of a JOC-only incident it learnt of. Its action item
        // and a task of OCHA's linked to that incident are listed on one page: the visible meeting must not make the task
        // name the incident OCHA may not see.
        var hidden = await IncidentOfAsync("joc", Api.Report(latitude: 44.5, longitude: -118.5, marking: Api.Marking("CONFIDENTIAL", ["org:JOC"]), narrative: "Informant reports arms cache."));
        var (created, meeting) = await server.ClientFor("ocha").PostJson("/api/meetings", new
        {
            id = hidden,
            title = "Cluster coordination, Bria",
            heldAt = Clock.GetUtcNow().AddHours(-1),
            actionItems = new[] { new { title = "Share the cluster's access map", organization = "OCHA", dueAt = (DateTimeOffset?)null } },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, meeting.ToString());
        var now = Clock.GetUtcNow().UtcDateTime;
        var linked = Guid.NewGuid();
        await server.WithDbAsync(async db =>
        {
            var task = AssignedTask(linked, "Follow the incident up", await db.Organizations.Where(o => o.Code == "OCHA").Select(o => o.Id).SingleAsync(), hidden, "test", now,
                Releasability.Encode(["org:OCHA"]));
            task.Reschedule();
            db.Tasks.Add(task);
            return await db.SaveChangesAsync();
        });

        var tasks = await TasksAsync("ocha", "organization=OCHA&open=true&limit=500");
        Assert.Equal(hidden, Id(tasks.Single(t => t.TryGetProperty("meeting", out var m) && m.GetGuid() == hidden), "meeting"));
        var task = tasks.Single(t => Id(t) == linked);
        Assert.False(task.TryGetProperty("incident", out _), task.ToString());
    }

    [Fact]
    public async Task Reading_a_classified_meeting_audits_its_action_items_as_tasks_read()
    {
        var (created, meeting) = await server.ClientFor("joc").PostJson("/api/meetings", new
        {
            title = "Restricted planning, Kaga-Bandoro",
            heldAt = Clock.GetUtcNow().AddHours(-2),
            actionItems = new[] { new { title = "Recce the northern approach", organization = "FORCE", dueAt = (DateTimeOffset?)null } },
            marking = Api.Marking("CONFIDENTIAL", ["org:JOC", "org:FORCE"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, meeting.ToString());
        var id = Id(meeting);

        var (read, body) = await server.ClientFor("force").GetJson($"/api/meetings/{id}");

        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        var task = Id(Assert.Single(body.GetProperty("actionItems").EnumerateArray()));
        Assert.Contains(await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == AuditActions.Read && a.Entity == "task" && a.Actor == "force").ToListAsync()),
            a => a.Detail.Contains(task.ToString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Meetings_turn_action_items_into_tasks_and_the_liaison_log_keeps_contacts()
    {
        var joc = server.ClientFor("joc");
        var (created, meeting) = await joc.PostJson("/api/meetings", new
        {
            title = "Weekly security coordination, Bambari",
            heldAt = Clock.GetUtcNow().AddHours(-1),
            place = "Bambari JOC",
            participants = new[] { "FORCE", "UNPOL", "OCHA" },
            decisions = new[] { "Joint patrols on the Ippy road twice a week." },
            actionItems = new[]
            {
                new { title = "Plan the first Ippy road patrol", organization = "FORCE", dueAt = (DateTimeOffset?)Clock.GetUtcNow().AddDays(2) },
                new { title = "Share the market days calendar", organization = "OCHA", dueAt = (DateTimeOffset?)null },
            },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, meeting.ToString());
        var id = Id(meeting);
        var tasks = await TasksAsync("joc", $"meeting={id}");
        Assert.Equal(new[] { "FORCE", "OCHA" }, tasks.Select(t => t.GetProperty("organization").GetString()).Order(StringComparer.Ordinal));
        Assert.All(tasks, t => Assert.Equal("action", t.GetProperty("role").GetString()));
        Assert.Contains(await TasksAsync("force", "organization=FORCE"), t => t.GetProperty("title").GetString() == "Plan the first Ippy road patrol");
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("pref").GetAsync($"/api/meetings/{id}")).StatusCode);

        var (badItem, badProblem) = await joc.PostJson("/api/meetings", new { title = "x", heldAt = Clock.GetUtcNow(), actionItems = new[] { new { title = "Do", organization = "NOPE" } } });
        Assert.Equal(HttpStatusCode.BadRequest, badItem.StatusCode);
        Assert.Contains("actionItems[0].organization", badProblem.ErrorFields());
        Assert.Contains("title", badProblem.ErrorFields());

        // A null in a list, a NUL in a title, a time before any record, and no rows from any of them.
        var (nullItem, nullProblem) = await joc.PostJson("/api/meetings", new { title = "Weekly", heldAt = Clock.GetUtcNow(), actionItems = new object?[] { null }, participants = new string?[] { null } });
        Assert.Equal(HttpStatusCode.BadRequest, nullItem.StatusCode);
        Assert.Contains("must not hold null", nullProblem.GetProperty("errors").ToString());
        // A wrong type inside an element is named with the list and the element's index, not as the meeting's own title.
        var (wrongType, wrongTypeProblem) = await joc.PostJson("/api/meetings", new { title = "Weekly", heldAt = Clock.GetUtcNow(), actionItems = new object[] { new { title = 5, organization = "UNPOL" } } });
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
        Assert.Equal(["actionItems[0].title"], wrongTypeProblem.ErrorFields());
        var (nul, nulProblem) = await joc.PostJson("/api/tasks", new { title = "Fix\u0000it", organization = "UNPOL" });
        Assert.Equal(HttpStatusCode.BadRequest, nul.StatusCode);
        Assert.Equal(["title"], nulProblem.ErrorFields());
        Assert.Equal(0, await server.WithDbAsync(db => db.Tasks.CountAsync(t => t.Title.StartsWith("Fix"))));
        // A mistyped community would release the task to nobody.
        var (typo, typoProblem) = await joc.PostJson("/api/tasks", new { title = "Check the ford", organization = "UNPOL", marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL", "org:UNPLO"]) });
        Assert.Equal(HttpStatusCode.BadRequest, typo.StatusCode);
        Assert.Equal(["marking.releasableTo"], typoProblem.ErrorFields());
        Assert.Contains("UNPLO", typoProblem.GetProperty("errors").ToString());
        var (early, earlyProblem) = await joc.GetJson("/api/coordination/metrics?to=0001-01-01T00:00:00Z");
        Assert.Equal(HttpStatusCode.BadRequest, early.StatusCode);
        Assert.Equal(["to"], earlyProblem.ErrorFields());

        var ocha = server.ClientFor("ocha");
        var (logged, entry) = await ocha.PostJson("/api/liaison", new { counterpartOrganization = "PREF", counterpart = "Sous-préfet of Grimari", channel = "visit", summary = "Agreed on access for the mobile clinic on Thursdays." });
        Assert.True(logged.StatusCode == HttpStatusCode.Created, entry.ToString());
        Assert.Equal("PREF", entry.GetProperty("counterpartOrganization").GetString());
        var (_, prefLog) = await server.ClientFor("pref").GetJson("/api/liaison?organization=OCHA");
        Assert.Contains(prefLog.GetProperty("items").EnumerateArray(), e => Id(e) == Id(entry));
        Assert.DoesNotContain((await server.ClientFor("force").GetJson("/api/liaison")).Body.GetProperty("items").EnumerateArray(), e => Id(e) == Id(entry));
        var (badChannel, channelProblem) = await ocha.PostJson("/api/liaison", new { counterpart = "Chief of Kouango", channel = "pigeon", summary = "Talked." });
        Assert.Equal(HttpStatusCode.BadRequest, badChannel.StatusCode);
        Assert.Equal(["channel"], channelProblem.ErrorFields());

        // A misspelt filter is refused by name rather than ignored (which would list the whole log); so is a control
        // character in a decision, by its place in the list.
        var (misspelt, misspeltProblem) = await server.ClientFor("pref").GetJson("/api/liaison?organisation=OCHA");
        Assert.Equal(HttpStatusCode.BadRequest, misspelt.StatusCode);
        Assert.Equal(["organisation"], misspeltProblem.ErrorFields());
        Assert.Equal(HttpStatusCode.BadRequest, (await joc.GetAsync("/api/meetings?from=2024-01-01T00:00:00Z")).StatusCode);
        var (bell, bellProblem) = await joc.PostJson("/api/meetings", new { title = "Weekly", heldAt = Clock.GetUtcNow(), decisions = new[] { "Patrols twice a week.", "Ring the \u0007 bell." } });
        Assert.Equal(HttpStatusCode.BadRequest, bell.StatusCode);
        Assert.Equal(["decisions[1]"], bellProblem.ErrorFields());
    }

    [Fact]
    public async Task A_classified_patrol_read_on_the_coordination_map_is_audited()
    {
        var force = server.ClientFor("force");
        var (created, patrol) = await force.PostJson("/api/patrols", new
        {
            name = "Night patrol " + Guid.NewGuid().ToString("N")[..6],
            organizations = new[] { "FORCE" },
            members = new[] { "force" },
            route = new[] { new[] { 20.65, 5.75 }, new[] { 20.9, 6.0 } },
            startsAt = Clock.GetUtcNow().AddHours(2),
            endsAt = Clock.GetUtcNow().AddHours(8),
            marking = Api.Marking("CONFIDENTIAL", ["org:FORCE"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());

        var answer = await force.GetAsync("/api/coordination/geojson");
        var geo = System.Text.Json.JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement;

        Assert.Contains(geo.GetProperty("features").EnumerateArray(), f => f.GetProperty("id").GetGuid() == Id(patrol));
        Assert.Equal("false", answer.Headers.GetValues("X-Concord-Truncated").Single());
        // The map's feed is the mission's: a box or a filter would look applied and not be, so it is refused by name.
        var (boxed, refusal) = await force.GetJson("/api/coordination/geojson?bbox=20,5,21,6");
        Assert.Equal(HttpStatusCode.BadRequest, boxed.StatusCode);
        Assert.Equal(["bbox"], refusal.ErrorFields());
        var reads = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == AuditActions.Read && a.Entity == "patrol" && a.Actor == "force").ToListAsync());
        Assert.Contains(reads, a => a.Detail.Contains("/api/coordination/geojson", StringComparison.Ordinal) && a.Detail.Contains(Id(patrol).ToString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_mission_administrator_may_cancel_a_patrol_they_see_but_not_file_its_report()
    {
        var (created, patrol) = await server.ClientFor("force").PostJson("/api/patrols", new
        {
            name = "Bria road joint patrol",
            organizations = new[] { "FORCE", "UNPOL" },
            members = new[] { "force", "unpol" },
            route = new[] { new[] { 21.95, 6.5 }, new[] { 22.0, 6.55 } },
            startsAt = Clock.GetUtcNow().AddHours(2),
            endsAt = Clock.GetUtcNow().AddHours(8),
            marking = Api.Marking("UNCLASSIFIED", ["mission"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());
        var admin = server.ClientFor("jocadmin");
        var (refused, problem) = await admin.PostJson($"/api/patrols/{Id(patrol)}/report", new { category = "acled.strategic-developments.other", narrative = "Road open." });
        Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, problem.ToString());
        Assert.Equal(HttpStatusCode.OK, (await admin.PostJson($"/api/patrols/{Id(patrol)}/status", new { status = "cancelled", reason = "left behind" })).Response.StatusCode);
    }

    /// <summary>An agreement of FORCE (with the JOC) that marks FORCE's reports of each category as given; in force at once.</summary>
    private async Task<string> ForceReportingAsync(params (string Category, string Level, string[] To)[] rules)
    {
        var code = "MOU-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (recorded, agreement) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code,
            name = "Force reporting " + code,
            parties = new[] { "FORCE", "JOC" },
            rules = rules.Select(r => new { reporter = "org:FORCE", category = r.Category, marking = Api.Marking(r.Level, r.To), tlp = "amber" }).ToArray(),
        });
        Assert.True(recorded.StatusCode == HttpStatusCode.Created, agreement.ToString());
        await server.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
        return code;
    }

    private async Task RetireAsync(string code)
    {
        await server.ClientFor("jocadmin").DeleteAsync($"/api/agreements/{code}");
        await server.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
    }

    [Fact]
    public async Task A_patrol_report_looser_than_the_authors_agreement_takes_the_agreements_marking_rather_than_being_refused()
    {
        // FORCE agreed that its reports of this category are CONFIDENTIAL to FORCE. The patrol is marked for both forces;
        // its FORCE member, not a releaser, may not loosen the agreement, and had no marking to give: the report was refused
        // and the patrol could not be completed.
        const string Category = "ocha-access.7-ongoing-hostilities";
        var code = await ForceReportingAsync((Category, "CONFIDENTIAL", ["org:FORCE"]));
        try
        {
            var (created, patrol) = await server.ClientFor("force").PostJson("/api/patrols", new
            {
                name = "Bria road joint patrol " + code,
                organizations = new[] { "FORCE", "UNPOL" },
                members = new[] { "force", "unpol" },
                route = new[] { new[] { 21.95, 6.5 }, new[] { 22.0, 6.55 } },
                startsAt = Clock.GetUtcNow().AddHours(1),
                endsAt = Clock.GetUtcNow().AddHours(5),
            });
            Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());

            var (filed, done) = await server.ClientFor("force").PostJson($"/api/patrols/{Id(patrol)}/report", new { category = Category, narrative = "Exchange of fire north of the bridge." });

            Assert.True(filed.StatusCode == HttpStatusCode.Created, done.ToString());
            // To its author the answer's location is the report.
            Assert.Equal($"/api/reports/{Id(done, "report")}", filed.Headers.Location!.OriginalString);
            Assert.Equal("completed", done.GetProperty("status").GetString());
            var (_, report) = await server.ClientFor("force").GetJson($"/api/reports/{Id(done, "report")}");
            Assert.Equal("CONFIDENTIAL", report.GetProperty("marking").GetProperty("classification").GetString());
            Assert.Equal(["org:FORCE"], report.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()));

            // UNPOL sees the patrol and not its report: the patrol does not name it to them (its id would tell of a record
            // they may not read), in the patrol, the list of patrols, or the answer to a move.
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("unpol").GetAsync($"/api/reports/{Id(done, "report")}")).StatusCode);
            var (_, seenByUnpol) = await server.ClientFor("unpol").GetJson($"/api/patrols/{Id(patrol)}");
            Assert.False(seenByUnpol.TryGetProperty("report", out var named) && named.ValueKind != JsonValueKind.Null, seenByUnpol.ToString());
            var (_, unpolList) = await server.ClientFor("unpol").GetJson("/api/patrols?limit=200");
            Assert.DoesNotContain(Id(done, "report").ToString(), unpolList.ToString(), StringComparison.OrdinalIgnoreCase);
            var (_, seenByForce) = await server.ClientFor("force").GetJson($"/api/patrols/{Id(patrol)}");
            Assert.Equal(Id(done, "report"), seenByForce.GetProperty("report").GetGuid());
            // The completion's audit entry names the report: marked as the report is, not only as the patrol.
            var completion = await server.WithDbAsync(db => db.Audit.Where(a => a.Entity == "patrol" && a.EntityId == Id(patrol) && a.Action == "status").OrderByDescending(a => a.ChainIndex).FirstAsync());
            Assert.Equal(1, completion.Classification);

            // Filed again by UNPOL after a link dropped before the patrol was completed (the report stored, the patrol not
            // completed yet): completed with FORCE's report, whose id the answer's location does not give UNPOL either.
            await server.WithDbAsync(db => db.Patrols.Where(p => p.Id == Id(patrol)).ExecuteUpdateAsync(u => u.SetProperty(p => p.Status, PatrolStatuses.UnderWay).SetProperty(p => p.ReportId, (Guid?)null)));
            var (again, againBody) = await server.ClientFor("unpol").PostJson($"/api/patrols/{Id(patrol)}/report", new { category = Category, narrative = "Shots heard north of the bridge." });
            Assert.True(again.StatusCode == HttpStatusCode.Created, againBody.ToString());
            Assert.Equal($"/api/patrols/{Id(patrol)}", again.Headers.Location!.OriginalString);
            Assert.DoesNotContain(Id(done, "report").ToString(), againBody.ToString(), StringComparison.OrdinalIgnoreCase);
            Assert.Equal(Id(done, "report"), await server.WithDbAsync(db => db.Patrols.Where(p => p.Id == Id(patrol)).Select(p => p.ReportId).SingleAsync()));
        }
        finally
        {
            await RetireAsync(code);
        }
    }

    [Fact]
    public async Task A_patrol_report_is_never_lower_or_wider_than_its_patrol_whatever_the_agreement_says()
    {
        // FORCE agreed two defaults: UNCLASSIFIED to the whole mission for one category, CONFIDENTIAL to the mission for
        // another. A patrol of both forces is marked CONFIDENTIAL, or UNCLASSIFIED, for the two of them.
        const string Open = "ocha-access.5-interference-in-implementation", Confidential = "ocha-access.4-restriction-of-movement";
        var code = await ForceReportingAsync((Open, "UNCLASSIFIED", ["mission"]), (Confidential, "CONFIDENTIAL", ["mission"]));
        async Task<JsonElement> ReportOfPatrolAsync(string level, string category)
        {
            var (created, patrol) = await server.ClientFor("force").PostJson("/api/patrols", new
            {
                name = $"Ndele joint patrol {code} {level}",
                organizations = new[] { "FORCE", "UNPOL" },
                members = new[] { "force", "unpol" },
                route = new[] { new[] { 20.65, 8.4 }, new[] { 20.7, 8.45 } },
                startsAt = Clock.GetUtcNow().AddHours(1),
                endsAt = Clock.GetUtcNow().AddHours(5),
                marking = Api.Marking(level, ["org:FORCE", "org:UNPOL"]),
            });
            Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());
            var (filed, done) = await server.ClientFor("force").PostJson($"/api/patrols/{Id(patrol)}/report", new { category, narrative = "Checkpoint removed at the market." });
            Assert.True(filed.StatusCode == HttpStatusCode.Created, done.ToString());
            return (await server.ClientFor("force").GetJson($"/api/reports/{Id(done, "report")}")).Body.GetProperty("marking");
        }

        try
        {
            // Stricter than the agreement: the patrol's marking stands (the mission holds both forces).
            var kept = await ReportOfPatrolAsync("CONFIDENTIAL", Open);
            Assert.Equal("CONFIDENTIAL", kept.GetProperty("classification").GetString());
            Assert.Equal(["org:FORCE", "org:UNPOL"], kept.GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()).Order());
            // Lower than the agreement: the agreement's level, for the patrol's two forces only, not the whole mission.
            var raised = await ReportOfPatrolAsync("UNCLASSIFIED", Confidential);
            Assert.Equal("CONFIDENTIAL", raised.GetProperty("classification").GetString());
            Assert.Equal(["org:FORCE", "org:UNPOL"], raised.GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()).Order());
        }
        finally
        {
            await RetireAsync(code);
        }
    }

    [Fact]
    public async Task A_joint_patrol_is_planned_on_a_route_and_its_report_becomes_a_concord_report()
    {
        var force = server.ClientFor("force");
        var (created, patrol) = await force.PostJson("/api/patrols", new
        {
            name = "Ippy road joint patrol 1",
            organizations = new[] { "FORCE", "UNPOL" },
            members = new[] { "force", "unpol" },
            route = new[] { new[] { 20.65, 5.75 }, new[] { 20.9, 6.0 }, new[] { 21.2, 6.25 } },
            startsAt = Clock.GetUtcNow().AddHours(2),
            endsAt = Clock.GetUtcNow().AddHours(8),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());
        var id = Id(patrol);
        Assert.Equal(["FORCE", "UNPOL"], patrol.GetProperty("organizations").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("ocha").GetAsync($"/api/patrols/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("joc").PostJson($"/api/patrols/{id}/status", new { status = "under-way" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("unpol").PostJson($"/api/patrols/{id}/status", new { status = "under-way" })).Response.StatusCode);

        // Its tracks are its members' current TAK tracks: the force member's device shows (a CONFIDENTIAL track, read like any
        // track: named in the audit), another member's does not, nor the force member's stale old device.
        var patrolUid = "ANDROID-patrol-" + id.ToString("N")[..8];
        await server.AddTrackAsync("force", patrolUid, "FORCE", 5.9, 20.8, classification: 1);
        await server.AddTrackAsync("rwabatt", "ANDROID-other-" + id.ToString("N")[..8], "RWABATT", 5.9, 20.8);
        await server.AddTrackAsync("force", "ANDROID-stale-" + id.ToString("N")[..8], "FORCE OLD", 5.9, 20.8, stale: true);

        var (_, withTracks) = await force.GetJson($"/api/patrols/{id}");
        var track = Assert.Single(withTracks.GetProperty("tracks").EnumerateArray());
        Assert.Equal("force", track.GetProperty("member").GetString());
        Assert.Equal(patrolUid, track.GetProperty("uid").GetString());
        var trackReads = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == AuditActions.Read && a.Entity == "track" && a.Actor == "force").ToListAsync());
        Assert.Contains(trackReads, a => a.Detail.Contains(patrolUid, StringComparison.Ordinal) && a.Detail.Contains($"/api/patrols/{id}", StringComparison.Ordinal));

        var (_, geo) = await force.GetJson("/api/coordination/geojson");
        Assert.Contains(geo.GetProperty("features").EnumerateArray(), f => f.GetProperty("id").GetGuid() == id && f.GetProperty("geometry").GetProperty("type").GetString() == "LineString");

        // Another member who sees the patrol takes the id its report had when it was a plain hash of the patrol's: the report still files.
        // (One such hash in sixteen reads as a name-based UUID, which the API refuses: nobody can take that one.)
        var squatted = new Guid(System.Security.Cryptography.SHA256.HashData(id.ToByteArray())[..16]);
        Assert.Equal(squatted.Version == 8 ? HttpStatusCode.BadRequest : HttpStatusCode.Created,
            (await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(squatted))).Response.StatusCode);

        var report = new { category = "acled.strategic-developments.other", narrative = "Road passable; two checkpoints of armed group A removed." };
        // Half a place is refused by its missing half, not completed from the route's end; the patrol stays open.
        var (half, halfProblem) = await force.PostJson($"/api/patrols/{id}/report", new { report.category, report.narrative, location = new { latitude = 6.3 } });
        Assert.Equal(HttpStatusCode.BadRequest, half.StatusCode);
        Assert.Equal(["location.longitude"], halfProblem.ErrorFields());
        var (filed, done) = await force.PostJson($"/api/patrols/{id}/report", report);
        Assert.True(filed.StatusCode == HttpStatusCode.Created, done.ToString());
        Assert.Equal("completed", done.GetProperty("status").GetString());
        var reportId = Id(done, "report");
        var (_, stored) = await server.ClientFor("unpol").GetJson($"/api/reports/{reportId}");
        Assert.StartsWith("Patrol Ippy road joint patrol 1", stored.GetProperty("narrative").GetString(), StringComparison.Ordinal);
        Assert.Equal(6.25, stored.GetProperty("location").GetProperty("latitude").GetDouble(), 6);
        var (filedAgain, filedProblem) = await force.PostJson($"/api/patrols/{id}/report", report);
        Assert.Equal(HttpStatusCode.Conflict, filedAgain.StatusCode);
        Assert.Equal(["status"], filedProblem.ErrorFields());

        var (badRoute, routeProblem) = await force.PostJson("/api/patrols", new { name = "Nowhere", route = new[] { new[] { 200.0, 5.0 } }, startsAt = Clock.GetUtcNow(), endsAt = Clock.GetUtcNow().AddHours(1) });
        Assert.Equal(HttpStatusCode.BadRequest, badRoute.StatusCode);
        Assert.Equal(["route"], routeProblem.ErrorFields());
    }

    [Fact]
    public async Task An_escalation_notice_follows_its_incident_to_a_narrower_marking()
    {
        var (area, lat, lon) = await AreaAsync(-52);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the eastern bridge."));
        var lead = (await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single();
        Advance(TimeSpan.FromMinutes(31));
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(lead);
        await WaitForAsync(() => TasksAsync("pref", "organization=JOC&limit=500"), t => t.Any(IsNotice), "the notice, seen mission-wide as its incident was");

        // A CONFIDENTIAL account for the force and the JOC joins the incident: its marking narrows, and the notice follows
        // (it kept the wider marking, telling the whole mission of an incident it may no longer see, and that it is overdue).
        var (_, joined) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Clash at the eastern bridge, force account.", marking: Api.Marking("CONFIDENTIAL", ["org:FORCE", "org:JOC"])));
        Assert.Equal(incident, Id(joined, "incidentId"));
        await WaitForAsync(() => TasksAsync("pref", "organization=JOC&limit=500"), t => !t.Any(IsNotice), "the notice to follow its incident");
        Assert.Contains(await TasksAsync("joc", "organization=JOC&limit=500"), IsNotice);

        // The force may read both accounts (the mission's, and its own): its lead task stays its own, open, now marked for
        // it alone beside the incident (it was withdrawn, as if the incident were no longer released to it).
        var task = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == Id(lead)));
        Assert.True(task.Status == TaskStatuses.Open, task.Reason);
        Assert.NotNull(task.RoutingKey);
        Assert.Equal("|org:FORCE|", task.ReleasableTo);
        Assert.Contains(await TasksAsync("force", $"incident={incident}"), t => Id(t) == Id(lead));
    }

    [Fact]
    public async Task An_escalation_notice_is_not_changed_by_a_change_of_its_incident_that_leaves_what_it_says()
    {
        var (area, lat, lon) = await AreaAsync(-54);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the western ford."));
        var lead = (await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single();
        Advance(TimeSpan.FromMinutes(31));
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(lead);
        var notice = Id((await WaitForAsync(() => TasksAsync("joc", "organization=JOC&limit=500"), t => t.Any(IsNotice), "the notice")).Single(IsNotice));

        // The incident is verified: its words, category, area and marking stay, and so does the notice (it was updated,
        // audited and pushed once, as if it had changed, its category and area being unset).
        var (verified, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/status", new { status = "verified" });
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        await RouterPassedAsync();
        Assert.Equal(0, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == notice && a.Action == AuditActions.Update)));
    }

    [Fact]
    public async Task A_request_moved_without_a_reason_shows_none_not_the_last_moves()
    {
        var unpol = server.ClientFor("unpol");
        var (created, request) = await unpol.PostJson("/api/requests", new
        {
            type = "security-assessment",
            title = "Assess the Kouango road",
            details = "Is the road safe for police patrols?",
            priority = "routine",
            addressee = "FORCE",
            location = new { latitude = 5.0, longitude = 20.0 },
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(2),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var id = Id(request);
        var (accepted, acceptedBody) = await server.ClientFor("force").PostJson($"/api/requests/{id}/status", new { status = "accepted", reason = "Two vehicles at 06:00." });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, acceptedBody.ToString());
        Assert.Equal("Two vehicles at 06:00.", acceptedBody.GetProperty("reason").GetString());
        var (cancelled, cancelledBody) = await unpol.PostJson($"/api/requests/{id}/status", new { status = "cancelled" });
        Assert.True(cancelled.StatusCode == HttpStatusCode.OK, cancelledBody.ToString());
        Assert.False(cancelledBody.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String, cancelledBody.ToString());
    }

    [Fact]
    public async Task A_routed_task_narrowed_out_of_its_organisations_reach_is_withdrawn_with_its_notice_and_routed_again_when_it_widens()
    {
        var (area, lat, lon) = await AreaAsync(-85);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "OCHA", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the southern market."));
        var lead = Id((await WaitForAsync(() => TasksAsync("ocha", $"incident={incident}"), t => t.Count == 1, "OCHA's lead task")).Single());
        Advance(TimeSpan.FromMinutes(31));
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.ValueKind == JsonValueKind.String && e.GetGuid() == lead;
        await WaitForAsync(() => TasksAsync("joc", $"incident={incident}&organization=JOC"), t => t.Any(IsNotice), "the notice of OCHA's miss");

        // The JOC's account for itself and the police joins: the incident is no longer released to OCHA. OCHA's task, which
        // nobody at OCHA may see any more, is withdrawn, and the JOC's notice of OCHA's miss with it (both stayed open,
        // counted against OCHA, and the task escalated again at its response deadline).
        // OCHA's coordination board is open: it is told the task was withdrawn from it (the update itself it may not see
        // now), so that it drops the card rather than show an open, overdue task until something else refreshes it.
        var ochaToken = server.ClientFor("ocha").DefaultRequestHeaders.Authorization!.ToString();
        var (live, pushed, _) = await server.OpenLiveAsync(o => o.Headers["Authorization"] = ochaToken);
        await using var liveConnection = live;
        var feedBefore = await server.WithDbAsync(db => db.Changes.MaxAsync(c => c.Sequence));
        // What the feed pushed of earlier changes (the escalation updated the task) is not what this test waits for.
        await WaitForAsync(() => Task.FromResult(server.Services.GetRequiredService<Realtime.LiveFeed>().Position), p => p >= feedBefore, "the live feed to catch up");
        pushed.Clear();
        var (_, joined) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Clash at the southern market, JOC account.", marking: Api.Marking("UNCLASSIFIED", ["org:JOC", "org:UNPOL"])));
        Assert.Equal(incident, Id(joined, "incidentId"));
        var withdrawn = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == lead)),
            t => t.Status == TaskStatuses.Done, "the task to be withdrawn");
        await WaitForAsync(() => Task.FromResult(pushed.ToArray()), ids => ids.Contains(lead), "OCHA's board to be told the task was withdrawn");
        var (_, feed) = await server.ClientFor("ocha").GetJson($"/api/changes?after={feedBefore}&limit=500");
        Assert.Contains(feed.GetProperty("items").EnumerateArray(), c => c.GetProperty("id").GetGuid() == lead && c.GetProperty("operation").GetString() == "withdrawn");
        Assert.Equal("withdrawn: its incident is no longer released to the organisation", withdrawn.Reason);
        Assert.Null(withdrawn.RoutingKey);
        var notice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.EscalatedItemId == lead));
        Assert.Equal(TaskStatuses.Done, notice.Status);
        Assert.Equal("its task was withdrawn: its incident is no longer released to the organisation", notice.Reason);
        Assert.Equal(2, await server.WithDbAsync(db => db.Audit.CountAsync(a => (a.EntityId == lead || a.EntityId == notice.Id) && a.Action == AuditActions.Status)));

        // The JOC's account is split out again: the incident is the mission's once more, and OCHA is given a new lead task,
        // its deadlines counted from then.
        var splitAt = Clock.GetUtcNow();
        var (split, splitBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/split", new { reports = new[] { Id(joined) } });
        Assert.True(split.StatusCode == HttpStatusCode.OK, splitBody.ToString());
        // (OCHA sees the JOC's notice of its miss again, closed, as it sees the incident.)
        bool IsNewLead(JsonElement x) => Id(x) != lead && x.GetProperty("role").GetString() == "lead";
        var again = (await WaitForAsync(() => TasksAsync("ocha", $"incident={incident}"), t => t.Any(IsNewLead), "OCHA's task routed again")).Single(IsNewLead);
        Assert.Equal("open", again.GetProperty("status").GetString());
        Assert.Equal(splitAt.AddMinutes(30), again.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
    }

    [Fact]
    public async Task An_escalation_notice_is_withdrawn_when_its_organisation_leaves_the_group_its_incident_reached_it_through()
    {
        var (area, lat, lon) = await AreaAsync(-49);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "OCHA" }]);
        // The police report for the force and a working group OCHA belongs to: misses go to OCHA, which may read the incident.
        var group = await PoliceGroupWithAsync("Access working group", "OCHA");
        var police = server.ClientFor("unpoladmin");
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:FORCE", $"group:{group}"]),
            narrative: "Clash near the OCHA warehouse."));
        var lead = (await WaitForAsync(() => TasksAsync("force", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single();
        Advance(TimeSpan.FromMinutes(31));
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == Id(lead);
        await WaitForAsync(() => TasksAsync("ocha", "organization=OCHA"), t => t.Any(IsNotice), "the notice to OCHA");

        // OCHA leaves the group: the incident no longer reaches it, nothing about the incident changed, and the notice (its
        // words) goes back to the incident's marking, which OCHA is not in.
        Assert.Equal(HttpStatusCode.NoContent, (await police.DeleteAsync($"/api/groups/{group}/members/OCHA")).StatusCode);
        await WaitForAsync(() => TasksAsync("ocha", "organization=OCHA"), t => !t.Any(IsNotice), "the notice to be withdrawn from OCHA");
        var notice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.EscalatedItemId == Id(lead)));
        Assert.DoesNotContain("org:OCHA", notice.ReleasableTo, StringComparison.Ordinal);
        Assert.Contains(await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == notice.Id && a.Action == AuditActions.Update).Select(a => a.Detail).ToListAsync()),
            d => d.Contains("follows its incident", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_routed_task_is_withdrawn_when_its_organisation_leaves_the_group_its_incident_reached_it_through()
    {
        var (area, lat, lon) = await AreaAsync(-88);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "OCHA", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var group = await PoliceGroupWithAsync("Market access group", "OCHA");
        var police = server.ClientFor("unpoladmin");
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:JOC", $"group:{group}"]),
            narrative: "Clash at the cattle market."));
        var lead = Id((await WaitForAsync(() => TasksAsync("ocha", $"incident={incident}"), t => t.Count == 1, "OCHA's lead task")).Single());

        // OCHA leaves the group: nothing about the incident changed, but nobody at OCHA may see it or its task any more. The
        // task is withdrawn (it stayed open, OCHA's, and escalated to the JOC at its deadline as OCHA's miss).
        Assert.Equal(HttpStatusCode.NoContent, (await police.DeleteAsync($"/api/groups/{group}/members/OCHA")).StatusCode);
        var withdrawn = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == lead)),
            t => t.Status == TaskStatuses.Done, "the task to be withdrawn");
        Assert.Equal("withdrawn: its incident is no longer released to the organisation", withdrawn.Reason);
        Advance(TimeSpan.FromMinutes(31));
        await Task.Delay(300);
        Assert.Equal(0, await EscalationsAsync(lead, Deadlines.Acknowledge));

        // An access change elsewhere (a member of another organisation renamed) looks at the incident again for OCHA, still
        // out of its reach: nothing about the incident changed, so no withheld route is recorded.
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("jocadmin").PatchAsJsonAsync("/api/members/rwabatt", new { displayName = "RWABATT duty officer " + group })).StatusCode);
        await RouterPassedAsync();
        Assert.Equal(0, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == incident && a.Action == AuditActions.RouteWithheld)));

        // OCHA rejoins the group: the incident, unchanged, is within its reach again, and OCHA is given a new lead task, its
        // deadlines counted from its return.
        var rejoinedAt = Clock.GetUtcNow();
        Assert.Equal(HttpStatusCode.NoContent, (await police.PutAsync($"/api/groups/{group}/members/OCHA", null)).StatusCode);
        bool IsNewLead(JsonElement x) => Id(x) != lead && x.GetProperty("role").GetString() == "lead";
        var again = (await WaitForAsync(() => TasksAsync("ocha", $"incident={incident}"), t => t.Any(IsNewLead), "OCHA's task routed again")).Single(IsNewLead);
        Assert.Equal("open", again.GetProperty("status").GetString());
        Assert.Equal(rejoinedAt.AddMinutes(30), again.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
        // Once: a later access change that leaves the incident within its reach routes nothing more.
        Assert.Equal(HttpStatusCode.NoContent, (await police.PutAsync($"/api/groups/{group}/members/UNPOL", null)).StatusCode);
        await RouterPassedAsync();
        Assert.Equal(2, (await TasksAsync("ocha", $"incident={incident}")).Count(t => t.GetProperty("role").GetString() == "lead"));
    }

    [Fact]
    public async Task A_done_task_stops_telling_an_incident_to_its_organisation_when_the_incident_leaves_its_reach()
    {
        // The force's lead task of an incident built from its own report and a police report shared with it through a working
        // group is released to the force by name (the two reports share no community). The force finishes it; the police
        // then take the force out of the group: the done task, which still carries the incident's words (its title is the
        // police report's first line), must follow, as open tasks and notices do, or the force reads on what it may not.
        var (area, lat, lon) = await AreaAsync(-86);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120 }]);
        var group = await PoliceGroupWithAsync("Security working group", "FORCE");
        var police = server.ClientFor("unpoladmin");
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL", $"group:{group}"]),
            narrative: "Police informant: gunfire at the river crossing."));
        Assert.Equal(incident, await IncidentOfAsync("force", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:FORCE"]),
            narrative: "Patrol heard gunfire at the river crossing.")));
        var lead = Id((await WaitForAsync(() => TasksAsync("force", $"incident={incident}"),
            t => t.Count == 1 && t[0].GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Any(c => c.GetString() == "org:FORCE"), "the force's lead task, released to it by name")).Single());
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("force").PostJson($"/api/tasks/{lead}/status", new { status = "done", reason = "Patrol sent; calm." })).Response.StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await police.DeleteAsync($"/api/groups/{group}/members/FORCE")).StatusCode);
        await WaitForAsync(async () => (await server.ClientFor("force").GetAsync($"/api/tasks/{lead}")).StatusCode, s => s == HttpStatusCode.NotFound,
            "the done task to follow its incident out of the force's reach");
        var task = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == lead));
        Assert.DoesNotContain("org:FORCE", task.ReleasableTo, StringComparison.Ordinal);
        // Done it stays, with the force's own reason: only its marking followed.
        Assert.Equal(TaskStatuses.Done, task.Status);
        Assert.Equal("Patrol sent; calm.", task.Reason);

        // Back in the group, the force may read the incident again, and its own record of the work it did with it.
        Assert.Equal(HttpStatusCode.NoContent, (await police.PutAsync($"/api/groups/{group}/members/FORCE", null)).StatusCode);
        var back = await WaitForAsync(() => server.ClientFor("force").GetJson($"/api/tasks/{lead}").ContinueWith(r => r.Result, TaskScheduler.Default),
            r => r.Response.StatusCode == HttpStatusCode.OK, "the done task to follow its incident back into the force's sight");
        Assert.Equal("done", back.Body.GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_request_and_a_task_given_by_hand_are_withdrawn_when_their_organisation_leaves_the_group_they_reached_it_through()
    {
        // The police ask OCHA, and give it a task, under a marking that reaches OCHA through a working group. OCHA leaves the
        // group: nobody there may see either any more. Both close with the reason (the request declined, which the police
        // see), rather than staying open on nobody's board and escalating as OCHA's miss.
        var group = await PoliceGroupWithAsync("Shelter working group", "OCHA");
        var police = server.ClientFor("unpoladmin");
        var marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL", $"group:{group}"]);
        var (asked, request) = await server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type = "information",
            title = "Which shelters are full?",
            addressee = "OCHA",
            location = new { latitude = -40.5, longitude = 70.5 },
            priority = "urgent",
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(3),
            marking,
        });
        Assert.True(asked.StatusCode == HttpStatusCode.Created, request.ToString());
        var (assigned, task) = await server.ClientFor("unpol").PostJson("/api/tasks", new { title = "List the shelters", organization = "OCHA", marking, respondBy = Clock.GetUtcNow().AddHours(1) });
        Assert.True(assigned.StatusCode == HttpStatusCode.Created, task.ToString());

        Assert.Equal(HttpStatusCode.NoContent, (await police.DeleteAsync($"/api/groups/{group}/members/OCHA")).StatusCode);
        var declined = await WaitForAsync(() => server.ClientFor("unpol").GetJson($"/api/requests/{Id(request)}").ContinueWith(r => r.Result.Body, TaskScheduler.Default),
            r => r.GetProperty("status").GetString() == "declined", "the request to be declined");
        Assert.Equal("withdrawn: it is no longer released to the organisation", declined.GetProperty("reason").GetString());
        // OCHA gave no answer: the response figures do not count one (closed when withdrawn, as a cancelled request is).
        Assert.False(declined.GetProperty("deadlines").TryGetProperty("respondedAt", out _));
        Assert.True(declined.GetProperty("deadlines").TryGetProperty("completedAt", out _));
        var closed = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == Id(task))), t => t.Status == TaskStatuses.Done, "the task to be withdrawn");
        Assert.Equal("withdrawn: it is no longer released to the organisation", closed.Reason);

        // Their deadlines (15 minutes and an hour) pass without an escalation.
        Advance(TimeSpan.FromMinutes(61));
        await Task.Delay(300);
        Assert.Equal(0, await EscalationsAsync(Id(request), Deadlines.Acknowledge) + await EscalationsAsync(Id(task), Deadlines.Respond));
    }

    [Fact]
    public async Task An_escalation_read_before_its_task_narrowed_raises_its_notice_under_the_narrower_marking()
    {
        var (area, lat, lon) = await AreaAsync(-67);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the northern ferry."));
        var lead = Id((await WaitForAsync(() => TasksAsync("force", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single());

        // The audit writer is held: the scheduler reads the overdue task (mission-wide) and waits to save its escalation;
        // meanwhile the task is narrowed (as the router does when its incident narrows) and saved first.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var narrowed = Releasability.Encode(["org:FORCE", "org:UNPOL"]);
        var held = await server.HoldAuditWriterAsync(release.Task, async db => (await db.Tasks.SingleAsync(t => t.Id == lead)).ReleasableTo = narrowed);
        var advanced = Task.Run(() => Advance(TimeSpan.FromMinutes(31)));
        await Task.Delay(1000);
        release.SetResult();
        await held;
        await advanced;

        // The notice is raised from the task as it now is: released to the force, the police and the JOC, not the mission.
        // (A refused save is tried again a second later by the scheduler's clock.)
        await WaitForAsync(() =>
        {
            Advance(TimeSpan.FromSeconds(1));
            return server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == lead));
        }, n => n == 1, "the notice");
        var notice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.EscalatedItemId == lead));
        Assert.Equal(Releasability.Encode(["org:FORCE", "org:UNPOL", "org:JOC"]), notice.ReleasableTo);
        Assert.Equal(narrowed, await server.WithDbAsync(db => db.Tasks.Where(t => t.Id == lead).Select(t => t.ReleasableTo).SingleAsync()));
        Assert.Equal(1, await EscalationsAsync(lead, Deadlines.Acknowledge));
    }

    [Fact]
    public async Task An_organisation_two_equally_specific_rules_name_as_lead_and_as_support_is_given_the_lead()
    {
        var (area, lat, lon) = await AreaAsync(-62);
        // Recorded first: the rule that has the force support the police; then another SOP that has it lead.
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "UNPOL", supporting = new[] { "FORCE" }, acknowledgeMinutes = 60, respondMinutes = 240 }]);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120 }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the northern ferry."));

        var tasks = await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 2, "the two organisations' tasks");
        Assert.Equal([("FORCE", "lead"), ("UNPOL", "lead")],
            tasks.Select(t => (t.GetProperty("organization").GetString()!, t.GetProperty("role").GetString()!)).Order().ToList());
    }

    [Fact]
    public async Task A_router_running_late_counts_deadlines_from_the_incidents_change_not_from_its_round()
    {
        var (area, lat, lon) = await AreaAsync(-58);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        await RouterPassedAsync();

        // The router is held at the start of a round (a restart, a backlog) while the incident is reported; it runs 20
        // minutes later. The agreement gives FORCE 30 minutes from the report, not 30 from whenever the router got to it.
        var router = server.Services.GetRequiredService<IncidentRouter>();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        router.BeforeRound = async () =>
        {
            waiting.TrySetResult();
            await release.Task;
        };
        DateTimeOffset reportedAt;
        Guid incident;
        try
        {
            await waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
            reportedAt = Clock.GetUtcNow();
            incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the southern ford."));
            await Task.Run(() => Advance(TimeSpan.FromMinutes(20)));
        }
        finally
        {
            router.BeforeRound = null;
            release.TrySetResult();
        }

        var lead = (await WaitForAsync(() => TasksAsync("force", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single();
        Assert.Equal(reportedAt.AddMinutes(30), lead.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
        Assert.Equal(reportedAt.AddMinutes(120), lead.GetProperty("deadlines").GetProperty("respondBy").GetDateTimeOffset());
    }

    [Fact]
    public async Task A_router_running_late_counts_deadlines_of_an_incident_that_came_under_a_rule_from_its_latest_change()
    {
        var (area, lat, lon) = await AreaAsync(-59);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var protest = await IncidentOfAsync("unpol", Api.Report(category: "acled.protests.peaceful-protest", latitude: lat, longitude: lon, marking: mission,
            narrative: "March at the western market."));
        await RouterPassedAsync();

        // Held while the protest is verified, then ten minutes later merged with an earlier account of a battle (which makes
        // it a battle): the rule applies from the merge, not from the verification the router reads with it.
        var router = server.Services.GetRequiredService<IncidentRouter>();
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        router.BeforeRound = async () =>
        {
            waiting.TrySetResult();
            await release.Task;
        };
        DateTimeOffset mergedAt;
        try
        {
            await waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/status", new { status = "verified" })).Response.StatusCode);
            await Task.Run(() => Advance(TimeSpan.FromMinutes(10)));
            var battle = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.3, longitude: lon + 0.3, marking: mission, narrative: "Clash at the western market.",
                observedAt: Api.Recent.AddHours(-1)));
            Assert.NotEqual(protest, battle);
            mergedAt = Clock.GetUtcNow();
            var (merge, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{protest}/merge", new { incidents = new[] { battle } });
            Assert.True(merge.StatusCode == HttpStatusCode.OK, body.ToString());
            await Task.Run(() => Advance(TimeSpan.FromMinutes(5)));
        }
        finally
        {
            router.BeforeRound = null;
            release.TrySetResult();
        }

        var lead = (await WaitForAsync(() => TasksAsync("force", $"incident={protest}"), t => t.Count == 1, "the lead task")).Single();
        Assert.Equal(mergedAt.AddMinutes(30), lead.GetProperty("deadlines").GetProperty("acknowledgeBy").GetDateTimeOffset());
    }

    [Fact]
    public async Task An_escalation_saved_after_the_router_read_its_task_is_narrowed_with_the_task()
    {
        var (area, lat, lon) = await AreaAsync(-70);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Clash at the western ford."));
        var lead = Id((await WaitForAsync(() => TasksAsync("force", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single());
        await RouterPassedAsync();

        // A restricted account narrows the incident. The router reads its lead task to narrow it too; before the router
        // saves, the scheduler escalates the task (still mission-wide in the store) and commits its notice.
        var router = server.Services.GetRequiredService<IncidentRouter>();
        var escalated = 0;
        router.AfterFollowing = async followed =>
        {
            if (followed.Contains(incident) && Interlocked.Exchange(ref escalated, 1) == 0)
            {
                await Task.Run(() => Advance(TimeSpan.FromMinutes(31)));
                await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == lead)), n => n == 1, "the notice");
            }
        };
        try
        {
            var (_, joined) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
                narrative: "Clash at the western ford, force account.", marking: Api.Marking("CONFIDENTIAL", ["org:FORCE", "org:JOC"])));
            Assert.Equal(incident, Id(joined, "incidentId"));
            await RouterPassedAsync();
        }
        finally
        {
            router.AfterFollowing = null;
        }

        // The router's save found the notice it had not read and read the round again: the notice is narrowed with its task.
        Assert.Equal(1, escalated);
        var notice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.EscalatedItemId == lead));
        Assert.Equal(1, notice.Classification);
        Assert.Equal(Releasability.Encode(["org:JOC"]), notice.ReleasableTo);
        Assert.DoesNotContain(await TasksAsync("pref", "organization=JOC&limit=500"), x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == lead);
    }

    [Fact]
    public async Task An_escalation_saved_after_the_router_closed_its_merged_incidents_task_is_closed_with_it()
    {
        var (area, lat, lon) = await AreaAsync(-76);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var kept = await IncidentOfAsync("unpol", Api.Report(latitude: lat - 0.4, longitude: lon - 0.4, marking: mission, narrative: "Clash at the northern crossing."));
        var merged = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: mission, narrative: "Shooting near the eastern mine."));
        await WaitForAsync(() => TasksAsync("force", $"incident={kept}"), t => t.Count == 1, "the kept incident's lead task");
        var lead = Id((await WaitForAsync(() => TasksAsync("force", $"incident={merged}"), t => t.Count == 1, "the merged incident's lead task")).Single());
        await RouterPassedAsync();

        // The router closes the merged incident's lead task; before it saves, the scheduler escalates that task (still
        // open in the store) and commits its notice.
        var router = server.Services.GetRequiredService<IncidentRouter>();
        var escalated = 0;
        router.AfterFollowing = async followed =>
        {
            if (followed.Contains(kept) && Interlocked.Exchange(ref escalated, 1) == 0)
            {
                await Task.Run(() => Advance(TimeSpan.FromMinutes(31)));
                await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == lead)), n => n == 1, "the notice");
            }
        };
        try
        {
            var (merge, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{kept}/merge", new { incidents = new[] { merged } });
            Assert.True(merge.StatusCode == HttpStatusCode.OK, body.ToString());
            await RouterPassedAsync();
        }
        finally
        {
            router.AfterFollowing = null;
        }

        Assert.Equal(1, escalated);
        var notice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.EscalatedItemId == lead));
        Assert.Equal(TaskStatuses.Done, notice.Status);
        Assert.Equal(TaskStatuses.Done, await server.WithDbAsync(db => db.Tasks.Where(t => t.Id == lead).Select(t => t.Status).SingleAsync()));
    }

    [Fact]
    public async Task Closing_an_incident_closes_its_open_routed_tasks_so_they_do_not_escalate_and_reopening_routes_it_anew()
    {
        var (area, lat, lon) = await AreaAsync(-78);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        var mission = Api.Marking("UNCLASSIFIED", ["mission"]);
        var hoax = await IncidentOfAsync("unpol", Api.Report(latitude: lat - 0.4, longitude: lon - 0.4, marking: mission, narrative: "Shots reported at the northern crossing."));
        var real = await IncidentOfAsync("unpol", Api.Report(latitude: lat + 0.4, longitude: lon + 0.4, marking: mission, narrative: "Clash near the eastern mine."));
        var hoaxTask = Id((await WaitForAsync(() => TasksAsync("force", $"incident={hoax}"), t => t.Count == 1, "the first incident's lead task")).Single());
        var realTask = Id((await WaitForAsync(() => TasksAsync("force", $"incident={real}"), t => t.Count == 1, "the second incident's lead task")).Single());

        // Both miss their acknowledgement: the JOC is told of each.
        Advance(TimeSpan.FromMinutes(31));
        var notice = await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.AsNoTracking().Where(t => t.EscalatedItemId == hoaxTask).ToListAsync()), n => n.Count == 1, "the first incident's notice");
        await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == realTask)), n => n == 1, "the second incident's notice");

        // The first is then closed as a hoax: its lead task is closed with it, with the reason, and the notice of its miss.
        var (closed, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{hoax}/status", new { status = "closed" });
        Assert.True(closed.StatusCode == HttpStatusCode.OK, body.ToString());
        await RouterPassedAsync();
        // (The JOC's notice of its miss names the incident too, released as widely: the mission.)
        static bool Lead(JsonElement t) => t.GetProperty("role").GetString() == TaskRoles.Lead;
        var task = (await TasksAsync("force", $"incident={hoax}")).Single(Lead);
        Assert.Equal(TaskStatuses.Done, task.GetProperty("status").GetString());
        Assert.Equal("its incident was closed", task.GetProperty("reason").GetString());
        var closedNotice = await server.WithDbAsync(db => db.Tasks.AsNoTracking().SingleAsync(t => t.Id == notice[0].Id));
        Assert.Equal((TaskStatuses.Done, "its incident was closed"), (closedNotice.Status, closedNotice.Reason));

        // Past the response deadline both would have missed: only the open incident's task escalates again.
        Advance(TimeSpan.FromMinutes(90));
        await WaitForAsync(() => server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == realTask)), n => n == 2, "the second incident's second notice");
        Assert.Equal(1, await server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == hoaxTask)));

        // Reopened, it is routed again, due from its reopening.
        var (reopened, reopenedBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{hoax}/status", new { status = "verified", from = "closed" });
        Assert.True(reopened.StatusCode == HttpStatusCode.OK, reopenedBody.ToString());
        var tasks = await WaitForAsync(() => TasksAsync("force", $"incident={hoax}"), t => t.Count(Lead) == 2, "the reopened incident's new lead task");
        var fresh = tasks.Where(Lead).Single(t => Id(t) != hoaxTask);
        Assert.NotEqual(TaskStatuses.Done, fresh.GetProperty("status").GetString());

        // A lead done with its task before the incident closed is the lead again when it reopens (violence resumed): the
        // done task kept its routing, and the reopened incident had no lead task nor anything to escalate a miss of one.
        var (done, doneBody) = await server.ClientFor("force").PostJson($"/api/tasks/{realTask}/status", new { status = "done", reason = "Patrol sent; the area is calm." });
        Assert.True(done.StatusCode == HttpStatusCode.OK, doneBody.ToString());
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{real}/status", new { status = "closed" })).Response.StatusCode);
        await RouterPassedAsync();
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{real}/status", new { status = "verified", from = "closed" })).Response.StatusCode);
        var again = await WaitForAsync(() => TasksAsync("force", $"incident={real}"), t => t.Count(Lead) == 2, "the reopened incident's lead task, after its first was done");
        Assert.Equal("Patrol sent; the area is calm.", again.Single(t => Id(t) == realTask).GetProperty("reason").GetString());
        Assert.Equal(TaskStatuses.Open, again.Where(Lead).Single(t => Id(t) != realTask).GetProperty("status").GetString());
    }

    /// <summary>
    /// An urgent medevac the police ask of the force, for the two of them, under an agreement that sends a missed
    /// acknowledgement (10 minutes) to the JOC; the clock is moved past it. Returns the request and the JOC's notice.
    /// </summary>
    private async Task<(Guid Request, JsonElement Notice)> MissedMedevacAsync(double lat, double lon, string title, Guid? incident = null)
    {
        await AgreementAsync([], [new { types = new[] { "medevac" }, addressee = "FORCE", acknowledgeMinutes = 10, respondMinutes = 30, escalateTo = "JOC" }]);
        var (created, request) = await server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type = "medevac",
            title,
            details = "Wounded; landing zone at the southern checkpoint.",
            priority = "urgent",
            addressee = "FORCE",
            location = new { latitude = lat, longitude = lon },
            windowStart = Clock.GetUtcNow(),
            windowEnd = Clock.GetUtcNow().AddHours(6),
            incident,
            marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL", "org:FORCE"]),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var requestId = Id(request);
        Advance(TimeSpan.FromMinutes(11));
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == requestId;
        return (requestId, (await WaitForAsync(() => TasksAsync("joc", "organization=JOC&limit=500"), t => t.Any(IsNotice), "the request's escalation notice")).Single(IsNotice));
    }

    /// <summary>A routine request of the police's: the agreement that set its terms, and the time it is given to acknowledge.</summary>
    private async Task<(string? Agreement, TimeSpan Acknowledge)> TermsOfARequestAsync(string type, string addressee)
    {
        var (created, request) = await server.ClientFor("unpol").PostJson("/api/requests", new
        {
            type,
            title = "Support for the Kaga-Bandoro police post",
            details = "Before the convoy season.",
            priority = "routine",
            addressee,
            location = new { latitude = 6.99, longitude = 19.18 },
            windowStart = Clock.GetUtcNow().AddDays(1),
            windowEnd = Clock.GetUtcNow().AddDays(3),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, request.ToString());
        var deadlines = request.GetProperty("deadlines");
        return (deadlines.TryGetProperty("agreement", out var agreement) ? agreement.GetString() : null,
            deadlines.GetProperty("acknowledgeBy").GetDateTimeOffset() - request.GetProperty("createdAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task An_assistance_rule_for_a_kind_written_with_spaces_and_capitals_sets_the_terms_of_requests_to_that_kind()
    {
        // Validation accepts "KIND: Military " (as it accepts " force "): kept as typed, the rule never matched a request.
        var code = await AgreementAsync([], [new { types = new[] { "transport" }, addressee = " KIND: Military ", acknowledgeMinutes = 17, respondMinutes = 70, escalateTo = "joc" }]);
        try
        {
            var (_, agreement) = await server.ClientFor("jocadmin").GetJson($"/api/agreements/{code}");
            Assert.Equal("kind:military", agreement[0].GetProperty("assistance")[0].GetProperty("addressee").GetString());
            Assert.Equal((code, TimeSpan.FromMinutes(17)), await TermsOfARequestAsync("transport", "kind:military"));
        }
        finally
        {
            await RetireAsync(code);
        }
    }

    [Fact]
    public async Task Of_two_agreements_with_equally_specific_rules_for_a_request_the_one_first_by_code_sets_its_terms()
    {
        // The police signed two agreements that both set a security assessment by the force, with other deadlines: the
        // one recorded first (first in the store's order) is not the one that decides; the one first by code is.
        var suffix = Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var later = await AgreementAsync([], [new { types = new[] { "security-assessment" }, addressee = "FORCE", acknowledgeMinutes = 15, respondMinutes = 45 }], "SOP-ZZ" + suffix);
        var first = await AgreementAsync([], [new { types = new[] { "security-assessment" }, addressee = "FORCE", acknowledgeMinutes = 25, respondMinutes = 50 }], "SOP-AA" + suffix);
        try
        {
            Assert.Equal((first, TimeSpan.FromMinutes(25)), await TermsOfARequestAsync("security-assessment", "FORCE"));
        }
        finally
        {
            await RetireAsync(later);
            await RetireAsync(first);
        }
    }

    [Fact]
    public async Task A_requests_escalation_notice_keeps_the_requests_marking_when_its_incident_changes()
    {
        var (_, lat, lon) = await AreaAsync(-61);
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Ambush on the southern road."));
        // The police ask the force for a medevac about that mission-wide incident, for the force's eyes only (and the JOC's,
        // where misses go under the agreement the police signed).
        var (requestId, notice) = await MissedMedevacAsync(lat, lon, "Medevac for two wounded officers", incident);
        bool IsNotice(JsonElement x) => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == requestId;
        var label = notice.GetProperty("marking").GetProperty("label").GetString();
        Assert.DoesNotContain(await TasksAsync("pref", "organization=JOC&limit=500"), IsNotice);

        // The incident changes (another account fuses into it): the router follows the incident's tasks and their notices,
        // not the request's notice, which would take the incident's mission-wide marking and title.
        var (_, joined) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Ambush on the southern road, force account.", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(incident, Id(joined, "incidentId"));
        await RouterPassedAsync();
        Assert.DoesNotContain(await TasksAsync("pref", "organization=JOC&limit=500"), IsNotice);
        var (_, after) = await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}");
        Assert.Equal(label, after.GetProperty("marking").GetProperty("label").GetString());
        Assert.Equal("Medevac for two wounded officers", after.GetProperty("title").GetString());

        // The force acknowledges late: the JOC's notice is closed with the reason (the JOC cannot read the request to
        // find out), and the response deadline, not yet missed, has no notice to close.
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("joc").GetAsync($"/api/requests/{requestId}")).StatusCode);
        var (acknowledged, acknowledgedBody) = await server.ClientFor("force").PostJson($"/api/requests/{requestId}/status", new { status = "acknowledged" });
        Assert.True(acknowledged.StatusCode == HttpStatusCode.OK, acknowledgedBody.ToString());
        var (_, closed) = await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}");
        Assert.Equal("done", closed.GetProperty("status").GetString());
        Assert.Equal("the request was acknowledged after this notice", closed.GetProperty("reason").GetString());
        Assert.Equal(1, await server.WithDbAsync(db => db.Audit.CountAsync(a => a.EntityId == Id(notice) && a.Action == AuditActions.Status)));
    }

    [Fact]
    public async Task A_requests_escalation_notice_names_its_incident_only_to_those_who_may_see_it()
    {
        var (_, lat, lon) = await AreaAsync(-28);
        // The police link an incident only they may see to the request: the force (the addressee) and the JOC (where
        // misses go) read the request's notice, and neither may learn the incident's id from it.
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"]), narrative: "Officer shot at the checkpoint."));
        var (requestId, notice) = await MissedMedevacAsync(lat, lon, "Medevac for a wounded officer", incident);

        Assert.False(notice.TryGetProperty("incident", out _));
        var (_, read) = await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}");
        Assert.False(read.TryGetProperty("incident", out _));
        // The police, who may see it, find it named by the notice (released to the request's readers).
        var (_, theirs) = await server.ClientFor("unpol").GetJson($"/api/tasks/{Id(notice)}");
        Assert.Equal(incident, theirs.GetProperty("incident").GetGuid());
        Assert.Equal(requestId, theirs.GetProperty("escalatedItem").GetGuid());
    }

    [Fact]
    public async Task A_move_stored_is_answered_as_stored_when_its_notices_cannot_be_closed()
    {
        var (_, lat, lon) = await AreaAsync(-73);
        var (requestId, notice) = await MissedMedevacAsync(lat, lon, "Medevac for a wounded driver");

        // The store refuses to close the notice (as a store failing would): the acknowledgement is stored all the same,
        // and said to be, rather than a 500 the force would retry into a 409.
        await using (await server.RefuseAsync("refuse_notices", "UPDATE ON tasks", when: "OLD.role = 'escalation'"))
        {
            var (acknowledged, body) = await server.ClientFor("force").PostJson($"/api/requests/{requestId}/status", new { status = "acknowledged" });
            Assert.True(acknowledged.StatusCode == HttpStatusCode.OK, body.ToString());
            Assert.Equal("acknowledged", body.GetProperty("status").GetString());
        }

        Assert.Equal("open", (await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}")).Body.GetProperty("status").GetString());

        // It did not stay open for good: the scheduler's next look at open notices (at most a minute later) closes it, as
        // the move would have, the JOC seeing why.
        Advance(EscalationScheduler.SweepEvery + TimeSpan.FromSeconds(1));
        server.Services.GetRequiredService<EscalationScheduler>().Wake();
        var closed = await WaitForAsync(async () => (await server.ClientFor("joc").GetJson($"/api/tasks/{Id(notice)}")).Body, n => n.GetProperty("status").GetString() == "done",
            "the notice to be closed by the scheduler");
        Assert.Equal("the request was acknowledged after this notice", closed.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_routed_task_escalates_to_no_organisation_its_incident_is_not_released_to()
    {
        var (area, lat, lon) = await AreaAsync(-64);
        await AgreementAsync([new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120, escalateTo = "JOC" }]);
        // The police report for themselves and the force only: the force gets its task, the JOC must learn nothing of it.
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL", "org:FORCE"]), narrative: "Clash seen by police and force only."));
        var lead = (await WaitForAsync(() => TasksAsync("force", $"incident={incident}"), t => t.Count == 1, "the lead task")).Single();
        var leadId = Id(lead);
        // A mission-wide account joins the incident: the JOC may see that one, not the police's words the incident (and a
        // notice) is titled with.
        var (_, joined) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: lat, longitude: lon,
            narrative: "Firing heard near the river.", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(incident, Id(joined, "incidentId"));
        Advance(TimeSpan.FromMinutes(31));

        // The miss is recorded, flagged and audited; no notice is raised that the JOC could see.
        await WaitForAsync(() => EscalationsAsync(leadId, Deadlines.Acknowledge), n => n == 1, "the acknowledgement escalation");
        Assert.Equal(0, await server.WithDbAsync(db => db.Tasks.CountAsync(t => t.EscalatedItemId == leadId)));
        var entry = await server.WithDbAsync(db => db.Audit.SingleAsync(a => a.EntityId == leadId && a.Action == AuditActions.Escalate));
        Assert.Contains("may not see every report of the incident", entry.Detail);
        var (_, overdue) = await server.ClientFor("force").GetJson($"/api/tasks/{leadId}");
        Assert.Equal("acknowledge", overdue.GetProperty("deadlines").GetProperty("overdue").GetString());
        Assert.DoesNotContain(await TasksAsync("joc", "organization=JOC&limit=500"), x => x.TryGetProperty("escalatedItem", out var e) && e.GetGuid() == leadId);
    }

    /// <summary>
    /// A battle recorded under an agreement whose rules name only protests, which is then revised to route battles (its
    /// first version's time stays the agreement's): the incident, recorded between the versions, is returned unrouted.
    /// </summary>
    private async Task<Guid> BattleBeforeARevisionAsync(double areaLatitude, string narrative)
    {
        var (area, lat, lon) = await AreaAsync(areaLatitude);
        var protests = new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = "UNPOL", acknowledgeMinutes = 60, respondMinutes = 240 };
        var code = await AgreementAsync([protests]);
        var directory = server.Services.GetRequiredService<MissionDirectory>();
        var first = (await directory.AgreementsAsync(CancellationToken.None)).Single(a => a.Code == code);
        Advance(TimeSpan.FromMinutes(5));
        var incident = await IncidentOfAsync("unpol", Api.Report(latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: narrative));
        // The router has seen the incident's creation under the first version (else it could meet it after the revision).
        await RouterPassedAsync();
        Advance(TimeSpan.FromMinutes(5));

        // The revision adds a rule for battles; the incident, a battle recorded between the versions, changes next.
        using var admin = server.ClientFor("jocadmin");
        var revised = await admin.PutAsJsonAsync($"/api/agreements/{code}", new
        {
            name = "Protection of civilians SOP " + code,
            parties = new[] { "JOC", "FORCE", "UNPOL", "OCHA" },
            rules = Array.Empty<object>(),
            responsibilities = new object[] { protests, new { categories = new[] { "acled.battles" }, areas = new[] { area }, lead = "FORCE", acknowledgeMinutes = 30, respondMinutes = 120 } },
            assistance = Array.Empty<object>(),
        });
        Assert.True(revised.StatusCode == HttpStatusCode.OK, await revised.Content.ReadAsStringAsync());
        await directory.ReloadAsync(force: true, CancellationToken.None);
        var latest = (await directory.AgreementsAsync(CancellationToken.None)).Single(a => a.Code == code);
        Assert.Equal((2, first.CreatedAt), (latest.Version, latest.InForceSince));
        Assert.Empty(await TasksAsync("joc", $"incident={incident}"));
        return incident;
    }

    [Fact]
    public async Task A_revised_agreement_routes_the_incidents_recorded_since_its_first_version()
    {
        // Routing applies an agreement to incidents recorded since it was: a revision must not stop it for the incidents
        // recorded between its versions (each revision is stored with its own time).
        var incident = await BattleBeforeARevisionAsync(-55, "Clash at the western ford.");

        var (verified, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/status", new { status = "verified" });
        Assert.True(verified.StatusCode == HttpStatusCode.OK, body.ToString());
        var routed = await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 1, "the battle's lead task under the revised rules");
        Assert.Equal("FORCE", routed[0].GetProperty("organization").GetString());
    }

    [Fact]
    public async Task A_closed_incident_is_routed_to_nobody_when_its_closing_brings_a_rule_that_applies_to_it()
    {
        // As above; the incident's next change is its closing: a lead task then would be due, and escalate as the
        // organisation's miss, on an incident nobody works on any more.
        var incident = await BattleBeforeARevisionAsync(-57, "Clash at the eastern ford.");

        var (closed, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/status", new { status = "closed" });
        Assert.True(closed.StatusCode == HttpStatusCode.OK, body.ToString());
        await RouterPassedAsync();
        Assert.Empty(await TasksAsync("joc", $"incident={incident}"));

        // Reopened, it is routed under the revised rules.
        var (reopened, reopenedBody) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/status", new { status = "verified", from = "closed" });
        Assert.True(reopened.StatusCode == HttpStatusCode.OK, reopenedBody.ToString());
        var routed = await WaitForAsync(() => TasksAsync("joc", $"incident={incident}"), t => t.Count == 1, "the battle's lead task under the revised rules");
        Assert.Equal("FORCE", routed[0].GetProperty("organization").GetString());
    }

    [Fact]
    public async Task Too_many_rules_are_refused_under_the_list_that_has_them()
    {
        var rule = new { types = new[] { "medevac" }, addressee = "FORCE", acknowledgeMinutes = 10, respondMinutes = 30 };
        var (refused, problem) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code = "SOP-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant(),
            name = "Too many assistance rules",
            parties = new[] { "JOC", "FORCE", "UNPOL" },
            rules = Array.Empty<object>(),
            responsibilities = Array.Empty<object>(),
            assistance = Enumerable.Repeat(rule, 201).ToArray(),
        });

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["assistance"], problem.ErrorFields());
    }

    [Fact]
    public async Task Two_moves_of_one_patrol_from_the_same_status_are_not_both_stored_and_bad_list_entries_are_refused_by_field()
    {
        var force = server.ClientFor("force");
        var route = new[] { new[] { 22.3, 6.9 }, new[] { 22.4, 7.0 } };
        // Sign-in names are matched as the directory keeps them: "Force" is force.
        var (created, patrol) = await force.PostJson("/api/patrols", new
        {
            name = "Ndele road patrol " + Guid.NewGuid().ToString("N")[..6],
            organizations = new[] { "FORCE" },
            members = new[] { "Force" },
            route,
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(4),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());
        Assert.Equal(["force"], patrol.GetProperty("members").EnumerateArray().Select(m => m.GetString()));
        var id = Id(patrol);

        // Both read it planned; one starts it, the other cancels it: the store takes the first save and refuses the second
        // (the API answers 409), where the last write won (a cancelled patrol completed by its report, or the reverse).
        await using (var a = server.Services.CreateAsyncScope())
        await using (var b = server.Services.CreateAsyncScope())
        {
            var (dbA, dbB) = (a.ServiceProvider.GetRequiredService<ConcordDb>(), b.ServiceProvider.GetRequiredService<ConcordDb>());
            Assert.True(dbA.Model.FindEntityType(typeof(Patrol))!.FindProperty(nameof(Patrol.Status))!.IsConcurrencyToken);
            var (first, second) = (await dbA.Patrols.SingleAsync(p => p.Id == id), await dbB.Patrols.SingleAsync(p => p.Id == id));
            first.Status = PatrolStatuses.UnderWay;
            second.Status = PatrolStatuses.Cancelled;
            await dbA.SaveChangesAsync();
            await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => dbB.SaveChangesAsync());
            Assert.Equal(PatrolStatuses.UnderWay, await server.WithDbAsync(db => db.Patrols.Where(p => p.Id == id).Select(p => p.Status).SingleAsync()));
        }

        // A null in a list is a 400 naming the list, not a server error.
        foreach (var (path, body, field) in new (string, object, string)[]
        {
            ("/api/patrols", new { name = "Null patrol", organizations = new string?[] { null }, route, startsAt = Clock.GetUtcNow().AddHours(1), endsAt = Clock.GetUtcNow().AddHours(2) }, "organizations"),
            ("/api/meetings", new { title = "Null meeting", heldAt = Clock.GetUtcNow().AddHours(-1), participants = new string?[] { null } }, "participants"),
            ("/api/meetings", new { title = "Null action", heldAt = Clock.GetUtcNow().AddHours(-1), actionItems = new object?[] { null } }, "actionItems"),
            // A NUL in a member's name names nobody (PostgreSQL refuses it in a query: it was a server error there).
            ("/api/patrols", new { name = "NUL patrol", members = new[] { "for\u0000ce" }, route, startsAt = Clock.GetUtcNow().AddHours(1), endsAt = Clock.GetUtcNow().AddHours(2) }, "members"),
        })
        {
            var (refused, problem) = await force.PostJson(path, body);
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, problem.ToString());
            Assert.Equal([field], problem.ErrorFields());
        }

        // A member is judged once everything else would be accepted: a patrol bound to fail on its schedule does not tell
        // whether a name is an active member of an organisation. A disabled account is no patrol member.
        var (early, earlyProblem) = await force.PostJson("/api/patrols", new { name = "Probe patrol", members = new[] { "unpol" }, route, startsAt = Clock.GetUtcNow().AddHours(2), endsAt = Clock.GetUtcNow().AddHours(1) });
        Assert.Equal(HttpStatusCode.BadRequest, early.StatusCode);
        Assert.Equal(["endsAt"], earlyProblem.ErrorFields());
        var disabled = "d" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(HttpStatusCode.Created, (await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/FORCE/members", new { userName = disabled, password = "a-long-password-1", disabled = true })).Response.StatusCode);
        var (inactive, inactiveProblem) = await force.PostJson("/api/patrols", new { name = "Inactive patrol", members = new[] { disabled }, route, startsAt = Clock.GetUtcNow().AddHours(1), endsAt = Clock.GetUtcNow().AddHours(2) });
        Assert.Equal(HttpStatusCode.BadRequest, inactive.StatusCode);
        Assert.Equal(["members"], inactiveProblem.ErrorFields());

        // A wrong type inside a point of a route names the number it must be, not an array.
        var (wrongType, wrongProblem) = await force.PostJson("/api/patrols", new
        {
            name = "Typed patrol",
            route = new object[] { new object[] { 22.3, "x" }, new[] { 22.4, 7.0 } },
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(2)
        });
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
        var reason = Assert.Single(wrongProblem.GetProperty("errors").EnumerateObject());
        Assert.Equal(("route[0][1]", "must be a number"), (reason.Name, reason.Value[0].GetString()));
    }

    [Fact]
    public async Task A_patrol_report_cut_off_after_the_report_was_stored_is_completed_by_the_next_attempt_whatever_it_says()
    {
        var (_, patrol) = await server.ClientFor("force").PostJson("/api/patrols", new
        {
            name = "Bria road joint patrol",
            organizations = new[] { "FORCE", "UNPOL" },
            route = new[] { new[] { 21.9, 6.5 }, new[] { 22.0, 6.6 } },
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(5),
        });
        var id = Id(patrol);
        var (filed, first) = await server.ClientFor("force").PostJson($"/api/patrols/{id}/report", new { category = "acled.strategic-developments.other", narrative = "Road open." });
        Assert.Equal(HttpStatusCode.Created, filed.StatusCode);
        var reportId = Id(first, "report");

        // The state a dropped link leaves: the report stored, the patrol not yet completed. The next attempt comes later
        // (its default time differs) from the other organisation, in other words.
        await server.WithDbAsync(async db =>
        {
            var stored = await db.Patrols.SingleAsync(p => p.Id == id);
            stored.Status = "under-way";
            stored.ReportId = null;
            return await db.SaveChangesAsync();
        });
        Advance(TimeSpan.FromMinutes(20));
        var (again, done) = await server.ClientFor("unpol").PostJson($"/api/patrols/{id}/report", new { category = "acled.strategic-developments.other", narrative = "Road open, checkpoints gone." });

        Assert.True(again.StatusCode == HttpStatusCode.Created, done.ToString());
        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.Equal(reportId, Id(done, "report"));
        Assert.Equal(1, await server.WithDbAsync(db => db.Reports.CountAsync(r => r.Id == reportId)));
    }

    [Fact]
    public async Task A_patrol_shows_why_it_was_last_moved()
    {
        var force = server.ClientFor("force");
        var (created, patrol) = await force.PostJson("/api/patrols", new
        {
            name = "Bria road patrol " + Guid.NewGuid().ToString("N")[..6],
            route = new[] { new[] { 21.9, 6.5 }, new[] { 22.1, 6.6 } },
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(5),
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, patrol.ToString());
        var id = Id(patrol);
        Assert.False(patrol.TryGetProperty("reason", out _));

        var (started, _) = await force.PostJson($"/api/patrols/{id}/status", new { status = "under-way", reason = "  Left late: fuel delivery  " });
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        Assert.Equal("Left late: fuel delivery", (await force.GetJson($"/api/patrols/{id}")).Item2.GetProperty("reason").GetString());

        // The next move without a reason shows none, rather than the last move's under this one: a cancellation, or the
        // report that completes a patrol.
        var (cancelled, answer) = await force.PostJson($"/api/patrols/{id}/status", new { status = "cancelled" });
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.False(answer.TryGetProperty("reason", out _));
        var (_, other) = await force.PostJson("/api/patrols", new
        {
            name = "Bria market patrol " + Guid.NewGuid().ToString("N")[..6],
            route = new[] { new[] { 21.9, 6.5 }, new[] { 22.0, 6.55 } },
            startsAt = Clock.GetUtcNow().AddHours(1),
            endsAt = Clock.GetUtcNow().AddHours(3),
        });
        Assert.Equal(HttpStatusCode.OK, (await force.PostJson($"/api/patrols/{Id(other)}/status", new { status = "under-way", reason = "Escort joined late" })).Response.StatusCode);
        var (filed, done) = await force.PostJson($"/api/patrols/{Id(other)}/report", new { category = "acled.strategic-developments.other", narrative = "Market calm." });
        Assert.True(filed.StatusCode == HttpStatusCode.Created, done.ToString());
        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.False(done.TryGetProperty("reason", out _));
    }

    [Fact]
    public async Task Times_outside_what_a_mission_can_hold_are_refused_by_field_and_nothing_is_stored()
    {
        var early = new DateTimeOffset(1, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var late = new DateTimeOffset(9999, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var edge = Clock.GetUtcNow().AddYears(100).AddDays(-1);
        var tag = Guid.NewGuid().ToString("N")[..8];
        var cases = new (string User, string Path, object Body, string Field)[]
        {
            ("joc", "/api/meetings", new { title = "Weekly " + tag, heldAt = early }, "heldAt"),
            ("joc", "/api/meetings", new { title = "Weekly " + tag, heldAt = Clock.GetUtcNow(), actionItems = new[] { new { title = "Do " + tag, organization = "UNPOL", dueAt = late } } }, "actionItems[0].dueAt"),
            ("ocha", "/api/liaison", new { counterpart = "Chief " + tag, channel = "visit", summary = "Talked.", at = early }, "at"),
            ("force", "/api/patrols", new { name = "Patrol " + tag, route = new[] { new[] { 20.6, 5.7 }, new[] { 20.7, 5.8 } }, startsAt = late.AddDays(-2), endsAt = late.AddDays(-1) }, "startsAt"),
            ("unpol", "/api/requests", new { type = "engineering", title = "Bridge " + tag, details = "Two spans lost.", priority = "priority", addressee = "kind:military", location = new { latitude = 4.99, longitude = 19.98 }, windowStart = early, windowEnd = early.AddDays(1) }, "windowStart"),
            ("joc", "/api/tasks", new { title = "Check " + tag, organization = "UNPOL", acknowledgeBy = late }, "acknowledgeBy"),
            // An end past the century though its start is within it.
            ("force", "/api/patrols", new { name = "Patrol " + tag, route = new[] { new[] { 20.6, 5.7 }, new[] { 20.7, 5.8 } }, startsAt = edge, endsAt = edge.AddDays(2) }, "endsAt"),
            ("unpol", "/api/requests", new { type = "engineering", title = "Bridge " + tag, details = "Two spans lost.", priority = "priority", addressee = "kind:military", location = new { latitude = 4.99, longitude = 19.98 }, windowStart = edge, windowEnd = edge.AddDays(10) }, "windowEnd"),
            // A window already over: nobody could give the assistance, and it would escalate as the addressee's miss.
            ("unpol", "/api/requests", new { type = "engineering", title = "Bridge " + tag, details = "Two spans lost.", priority = "priority", addressee = "kind:military", location = new { latitude = 4.99, longitude = 19.98 }, windowStart = Clock.GetUtcNow().AddDays(-3), windowEnd = Clock.GetUtcNow().AddDays(-2) }, "windowEnd"),
        };
        foreach (var (user, path, body, field) in cases)
        {
            var (response, problem) = await server.ClientFor(user).PostJson(path, body);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {response.StatusCode} {problem}");
            Assert.Equal([field], problem.ErrorFields());
        }

        Assert.Equal(0, await server.WithDbAsync(db => db.Meetings.CountAsync(m => m.Title.EndsWith(tag))));
        Assert.Equal(0, await server.WithDbAsync(db => db.Tasks.CountAsync(t => t.Title.EndsWith(tag))));
        Assert.Equal(0, await server.WithDbAsync(db => db.Patrols.CountAsync(p => p.Name.EndsWith(tag))));
        Assert.Equal(0, await server.WithDbAsync(db => db.Requests.CountAsync(r => r.Title.EndsWith(tag))));

        // Lists whose every element costs a task or a lookup are bounded; a patrol's status reason is text.
        var items = Enumerable.Range(0, FieldEndpoints.MaxActionItems + 1).Select(i => new { title = $"Item {i} {tag}", organization = "UNPOL" }).ToArray();
        var (tooMany, tooManyProblem) = await server.ClientFor("joc").PostJson("/api/meetings", new { title = "Weekly " + tag, heldAt = Clock.GetUtcNow(), actionItems = items });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Equal(["actionItems"], tooManyProblem.ErrorFields());
        var (_, patrol) = await server.ClientFor("force").PostJson("/api/patrols", new { name = "Patrol " + tag, route = new[] { new[] { 20.6, 5.7 }, new[] { 20.7, 5.8 } }, startsAt = Clock.GetUtcNow().AddHours(1), endsAt = Clock.GetUtcNow().AddHours(2) });
        var (badReason, reasonProblem) = await server.ClientFor("force").PostJson($"/api/patrols/{Id(patrol)}/status", new { status = "under-way", reason = "Go\u0000now" });
        Assert.Equal(HttpStatusCode.BadRequest, badReason.StatusCode);
        Assert.Equal(["reason"], reasonProblem.ErrorFields());
        Assert.Equal("planned", (await server.ClientFor("force").GetJson($"/api/patrols/{Id(patrol)}")).Item2.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Organisation_codes_in_rules_route_as_written_in_any_case_and_spacing_and_rule_markings_name_real_communities()
    {
        // Validation took " unpol " as the party UNPOL, but the rule kept it as typed and the router, looking it up as
        // written, routed nothing and escalated nowhere.
        var (area, lat, lon) = await AreaAsync(-40);
        await AgreementAsync([new { categories = new[] { "acled.protests" }, areas = new[] { area }, lead = " unpol ", acknowledgeMinutes = 60, escalateTo = " joc" }]);
        var protest = await IncidentOfAsync("unpol", Api.Report(category: "acled.protests.peaceful-protest", latitude: lat, longitude: lon, marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "March to the town hall."));

        var routed = await WaitForAsync(() => TasksAsync("joc", $"incident={protest}"), t => t.Count == 1, "the protest's lead task");
        Assert.Equal("UNPOL", routed[0].GetProperty("organization").GetString());
        Assert.Equal("JOC", routed[0].GetProperty("deadlines").GetProperty("escalateTo").GetString());

        // A marking rule releasing to a mistyped organisation would mark every report it covers for nobody.
        var (typo, problem) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code = "MOU-TYPO" + Guid.NewGuid().ToString("N")[..4].ToUpperInvariant(),
            name = "Typo",
            parties = new[] { "JOC" },
            rules = new[] { new { reporter = "org:JOC", category = "*", marking = Api.Marking("CONFIDENTIAL", ["org:UNPLO"]) } },
        });
        Assert.Equal(HttpStatusCode.BadRequest, typo.StatusCode);
        Assert.Equal(["rules[0].marking.releasableTo"], problem.ErrorFields());
    }

    [Fact]
    public async Task Responsibility_rules_name_parties_only()
    {
        var (response, problem) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code = "SOP-BAD" + Guid.NewGuid().ToString("N")[..4].ToUpperInvariant(),
            name = "Broken SOP",
            parties = new[] { "JOC", "FORCE" },
            rules = Array.Empty<object>(),
            responsibilities = new[] { new { categories = new[] { "no.such.category" }, areas = new[] { "*" }, lead = "UNPOL", acknowledgeMinutes = 0, escalateTo = "OCHA" } },
        });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(
            new[] { "responsibilities[0].acknowledgeMinutes", "responsibilities[0].categories", "responsibilities[0].escalateTo", "responsibilities[0].lead" },
            problem.ErrorFields().Order(StringComparer.Ordinal));

        // An assistance rule for a kind needs a party of that kind: it would otherwise hold organisations that never signed.
        var (byKind, kindProblem) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code = "SOP-KIND" + Guid.NewGuid().ToString("N")[..4].ToUpperInvariant(),
            name = "No military party",
            parties = new[] { "JOC", "UNPOL" },
            rules = Array.Empty<object>(),
            assistance = new object[]
            {
                new { types = new[] { "*" }, addressee = "kind:police", acknowledgeMinutes = 30 },
                new { types = new[] { "*" }, addressee = "kind:military", acknowledgeMinutes = 1, respondMinutes = 2, escalateTo = "JOC" },
            },
        });
        Assert.Equal(HttpStatusCode.BadRequest, byKind.StatusCode);
        Assert.Equal(["assistance[1].addressee"], kindProblem.ErrorFields());
        Assert.Contains("no party is of kind military", kindProblem.GetProperty("errors").GetProperty("assistance[1].addressee")[0].GetString(), StringComparison.Ordinal);
    }
}

/// <summary>A test server whose business clock the tests move.</summary>
public interface IClockServer
{
    FakeTimeProvider FakeClock { get; }
}

public sealed class SqliteClockServer : TestServer, IClockServer
{
    public FakeTimeProvider FakeClock { get; } = new(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()));

    public override string StoreName => "sqlite";

    internal override TimeProvider? Clock => FakeClock;

    internal override Task<StoreOptions> CreateStoreAsync() => Task.FromResult(StoreOptions.Sqlite(DataDirectory));

    internal override Task DropStoreAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return Task.CompletedTask;
    }
}

public sealed class PostgresClockServer : TestServer, IClockServer
{
    private readonly PostgresDatabase _database = new();

    public FakeTimeProvider FakeClock { get; } = new(DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds()));

    public override string StoreName => "postgres";

    internal override TimeProvider? Clock => FakeClock;

    internal override async Task<StoreOptions> CreateStoreAsync() => StoreOptions.Postgres(await _database.CreateAsync());

    internal override Task DropStoreAsync() => _database.DropAsync();
}

public sealed class CoordinationTests_Sqlite(SqliteClockServer server) : CoordinationTests<SqliteClockServer>(server);

public sealed class CoordinationTests_Postgres(PostgresClockServer server) : CoordinationTests<PostgresClockServer>(server);

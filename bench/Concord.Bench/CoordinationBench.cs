using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Coordination;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Organizations;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Concord.Bench;

/// <summary>
/// The escalation scheduler under 100,000 open tasks: most due in the coming days, <c>due</c> of them due within the next
/// minute (stored before the server starts, as after a restart), and more created through the API while it runs (the
/// scheduler must wake for a deadline sooner than the one it sleeps towards). Lateness is the escalation's time minus the
/// deadline, both on the system clock; CPU is the whole server process's, measured while nothing is due.
/// </summary>
internal static class CoordinationBench
{
    public static async Task<List<string>> RunAsync(StoreOptions store, string label, int open, int due, TextWriter log)
    {
        var work = Directory.CreateTempSubdirectory("concord-coordination-bench-").FullName;
        var app = ConcordApp.Build(new ServerOptions
        {
            Store = store,
            Urls = "http://127.0.0.1:0",
            DataDirectory = work,
            MinimumLogLevel = LogLevel.Warning,
            Tak = new Server.Tak.TakOptions { TlsPort = 0, TcpPort = 0 },
        });
        await app.Services.PrepareStoreAsync(CancellationToken.None);
        var time = TimeProvider.System;
        string token;
        Guid force;
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            await OrganizationAdmin.AddAsync(db, "JOC", "Joint Operations Centre", "civilian", null, time, CancellationToken.None);
            var (forceOrg, _) = await OrganizationAdmin.AddAsync(db, "FORCE", "Force headquarters", "military", null, time, CancellationToken.None);
            force = forceOrg!.Id;
            // The admin verbs leave saving to their callers (which save with the audit entry): saved here, as in TileTests.
            await db.SaveChangesAsync();
            await app.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
            var (member, _) = await MemberAdmin.AddAsync(db, new NewMember("joc", "JOC", null, ["analyst"], "CONFIDENTIAL", [], "a-long-password-1"),
                app.Services.GetRequiredService<ClassificationScheme>(), app.Services.GetRequiredService<CaveatRegistry>(), time, CancellationToken.None);
            await db.SaveChangesAsync();
            (_, token) = await AccessTokens.CreateAsync(db, app.Services.GetRequiredService<Concord.Server.Audit.AuditChain>(), null, member!, "bench", TimeSpan.FromDays(1), time, CancellationToken.None);
        }

        await app.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
        var directory = app.Services.GetRequiredService<MissionDirectory>();
        var joc = (await directory.OrganizationAsync("JOC", CancellationToken.None))!.Id;

        // The open tasks, stored in batches; the ones due soon go last so that their deadlines start after the load.
        var load = Stopwatch.StartNew();
        var random = new Random(7);
        for (var start = 0; start < open - due; start += 5000)
        {
            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            var now = time.GetUtcNow().UtcDateTime;
            for (var i = start; i < Math.Min(open - due, start + 5000); i++)
            {
                db.Tasks.Add(Task(force, joc, now, now.AddMinutes(60 + random.Next(7 * 24 * 60)), i));
            }

            await db.SaveChangesAsync();
        }

        var firstDue = time.GetUtcNow().UtcDateTime.AddSeconds(15);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var now = time.GetUtcNow().UtcDateTime;
            for (var i = 0; i < due; i++)
            {
                // Spread over 30 s, and in bursts: a fifth of them share their second with others (a shift change).
                var at = firstDue.AddMilliseconds(i % 5 == 0 ? 10_000 : random.Next(30_000));
                db.Tasks.Add(Task(force, joc, now, at, open - due + i));
            }

            await db.SaveChangesAsync();
        }

        await log.WriteLineAsync($"coordination bench ({label}): {open:N0} open tasks stored in {load.Elapsed.TotalSeconds:0.0} s");
        await app.StartAsync();
        var scheduler = app.Services.GetRequiredService<EscalationScheduler>();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);

        // Through the API while the scheduler sleeps: deadlines sooner than the ones it waits for.
        const int viaApi = 200;
        for (var i = 0; i < viaApi; i++)
        {
            var response = await client.PostAsJsonAsync("/api/tasks", new
            {
                title = "Bench task via the API " + i,
                organization = "FORCE",
                acknowledgeBy = DateTimeOffset.UtcNow.AddMilliseconds(3000 + random.Next(8000)),
                marking = new { classification = "UNCLASSIFIED", releasableTo = new[] { "mission" }, caveats = Array.Empty<string>() },
            });
            response.EnsureSuccessStatusCode();
        }

        var expected = due + viaApi;
        var wait = Stopwatch.StartNew();
        while (scheduler.Escalated < expected && wait.Elapsed < TimeSpan.FromSeconds(120))
        {
            await System.Threading.Tasks.Task.Delay(250);
        }

        var lateness = new Measurements();
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var rows = await db.Escalations.AsNoTracking().Select(e => new { e.DueAt, e.EscalatedAt }).ToListAsync();
            lateness.AddRange(rows.Select(r => (r.EscalatedAt - r.DueAt).TotalMilliseconds));
        }

        // Idle: everything due has escalated; the rest is due in hours or days. After 30 s for the JIT to finish tiering up
        // what the load ran, count the server process's CPU for 30 s.
        await System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(30));
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var idle = Stopwatch.StartNew();
        await System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(30));
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds / idle.Elapsed.TotalMilliseconds * 100;
        var escalated = scheduler.Escalated;
        await app.StopAsync();
        await app.DisposeAsync();
        try
        {
            Directory.Delete(work, recursive: true);
        }
        catch (IOException)
        {
        }

        string F(double v) => v.ToString("0", CultureInfo.InvariantCulture);
        var p99 = lateness.Percentile(99);
        var max = lateness.Count == 0 ? double.NaN : lateness.Percentile(100);
        return
        [
            $"| {label} | escalation lateness, {open:N0} open tasks, {expected:N0} due in the first minute ({escalated:N0} escalated) | p50 {F(lateness.Percentile(50))} ms, p99 {F(p99)} ms, max {F(max)} ms | ≤ 1,000 ms | {(max / 1000).ToString("0.00", CultureInfo.InvariantCulture)} |",
            $"| {label} | server CPU while {open - expected:N0} tasks wait for later deadlines (30 s, after 30 s settling) | {cpu.ToString("0.0", CultureInfo.InvariantCulture)} % of one core | low (≤ 2 %) | {(cpu / 2).ToString("0.00", CultureInfo.InvariantCulture)} |",
        ];
    }

    private static CoordinationTask Task(Guid organization, Guid escalateTo, DateTime now, DateTime acknowledgeBy, int i)
    {
        var task = new CoordinationTask
        {
            Id = Guid.CreateVersion7(),
            Title = "Bench task " + i.ToString(CultureInfo.InvariantCulture),
            OrganizationId = organization,
            Role = TaskRoles.Assigned,
            Status = TaskStatuses.Open,
            AcknowledgeBy = acknowledgeBy,
            RespondBy = acknowledgeBy.AddHours(4),
            EscalateToOrganizationId = escalateTo,
            CreatedBy = "bench",
            CreatedAt = now,
            UpdatedAt = now,
            Classification = 0,
            ReleasableTo = "|mission|",
            Caveats = 0,
        };
        task.Reschedule();
        return task;
    }
}

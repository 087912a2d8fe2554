using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Escalates missed deadlines of tasks and requests, on the injected clock. It sleeps until the earliest pending deadline
/// (found through one indexed column) or until woken by a new deadline, so it costs nothing between deadlines however
/// many items are open. Each escalation is stored with its item's new state and its audit entry in one transaction, and
/// the (kind, item, deadline) key is unique: after a restart, deadlines missed while the server was down escalate once, and
/// those already escalated never again.
/// </summary>
internal sealed class EscalationScheduler(IServiceScopeFactory scopes, MissionDirectory directory, AuditChain chain, TimeProvider time, ILogger<EscalationScheduler> logger)
    : BackgroundService
{
    /// <summary>The longest sleep: deadlines written by another node are noticed within it.</summary>
    public static readonly TimeSpan MaximumSleep = TimeSpan.FromSeconds(30);

    private const int Batch = 500;

    private CancellationTokenSource _wake = new();

    /// <summary>Counts escalations since start (for benchmarks and logs).</summary>
    public long Escalated => Interlocked.Read(ref _escalated);

    private long _escalated;

    /// <summary>A deadline was set or moved: look again now (the scheduler's loop resumes on the thread pool, not on the caller's thread).</summary>
    public void Wake() => _ = Volatile.Read(ref _wake).CancelAsync();

    private readonly Hosting.FailureRun _failures = new(logger, "escalating missed deadlines");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // A fresh wake source before looking, so that a deadline written while we look is not slept through.
            var wake = new CancellationTokenSource();
            Volatile.Write(ref _wake, wake);
            TimeSpan sleep;
            try
            {
                sleep = await RunOnceAsync(stoppingToken);
                _failures.Succeeded();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                if (_failures.Failed(e))
                {
                    logger.LogWarning(e, "escalating missed deadlines failed; retrying");
                }

                sleep = TimeSpan.FromSeconds(1);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, wake.Token);
            try
            {
                await Task.Delay(sleep, time, linked.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    /// <summary>Escalates everything due now and returns how long to sleep until the next deadline.</summary>
    internal async Task<TimeSpan> RunOnceAsync(CancellationToken cancellationToken)
    {
        while (await EscalateDueAsync(cancellationToken) == Batch)
        {
        }

        if (time.GetUtcNow() - _sweptAt >= SweepEvery)
        {
            await CloseAnsweredNoticesAsync(cancellationToken);
            _sweptAt = time.GetUtcNow();
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var nextTask = await db.Tasks.Where(t => t.NextDeadline != null).MinAsync(t => t.NextDeadline, cancellationToken);
        var nextRequest = await db.Requests.Where(r => r.NextDeadline != null).MinAsync(r => r.NextDeadline, cancellationToken);
        var next = nextTask is null ? nextRequest : nextRequest is null ? nextTask : nextTask < nextRequest ? nextTask : nextRequest;
        if (next is null)
        {
            return MaximumSleep;
        }

        var wait = next.Value - time.GetUtcNow().UtcDateTime;
        return wait <= TimeSpan.Zero ? TimeSpan.Zero : wait < MaximumSleep ? wait : MaximumSleep;
    }

    /// <summary>How often open notices are checked against their items (<see cref="CloseAnsweredNoticesAsync"/>).</summary>
    public static readonly TimeSpan SweepEvery = TimeSpan.FromMinutes(1);

    private DateTimeOffset _sweptAt = DateTimeOffset.MinValue;

    /// <summary>
    /// Closes the open notices whose item has been answered since: an answer closes its notices right after it is stored
    /// (CoordinationDesk.CloseAnsweredNoticesAsync), and a store failing then, or the server stopping between the two, left
    /// them open on the escalation organisation's board for good (which often may not read the item to find out).
    /// </summary>
    private async Task CloseAnsweredNoticesAsync(CancellationToken cancellationToken)
    {
        List<(Guid Item, string Key, Guid Notice, Guid? Incident)> open;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            // A scan of the tasks once a minute (notices are not indexed by role: a few tens of milliseconds at 100,000 tasks).
            open = (await db.Tasks.AsNoTracking()
                    .Where(t => t.Role == TaskRoles.Escalation && t.EscalatedItemId != null && t.RoutingKey != null && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined)
                    .Select(t => new { Item = t.EscalatedItemId!.Value, Key = t.RoutingKey!, t.Id, t.IncidentId }).ToListAsync(cancellationToken))
                .Select(t => (t.Item, t.Key, t.Id, t.IncidentId)).ToList();
        }

        if (open.Count == 0)
        {
            return;
        }

        // Notices of missed deadlines whose item has answered them since; the others say a lead declined.
        var declines = open.ToLookup(o => o.Key.EndsWith(":" + TaskStatuses.Declined, StringComparison.Ordinal));
        var items = new List<(DeadlineRecord Item, Guid Id, string Entity, string Status)>();
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            foreach (var chunk in declines[false].Select(o => o.Item).Distinct().Chunk(500))
            {
                items.AddRange((await db.Tasks.AsNoTracking().Where(t => chunk.Contains(t.Id)).ToListAsync(cancellationToken)).Select(t => ((DeadlineRecord)t, t.Id, "task", t.Status)));
                items.AddRange((await db.Requests.AsNoTracking().Where(r => chunk.Contains(r.Id)).ToListAsync(cancellationToken)).Select(r => ((DeadlineRecord)r, r.Id, "request", r.Status)));
            }
        }

        foreach (var (item, id, entity, status) in items)
        {
            var keys = item.AnsweredDeadlines.Select(d => NoticeKey(entity, id, d)).ToHashSet(StringComparer.Ordinal);
            if (!declines[false].Any(o => o.Item == id && keys.Contains(o.Key)))
            {
                // Nothing its state answers is open (an acknowledged item's response notice waits for the answer).
                continue;
            }

            // A scope each: a save that fails leaves nothing behind for the next item's.
            await using var scope = scopes.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<CoordinationDesk>().CloseAnsweredNoticesAsync(item, id, entity, status, cancellationToken);
        }

        await CloseStaleDeclineNoticesAsync([.. declines[true]], cancellationToken);
    }

    /// <summary>
    /// A notice that a lead declined its incident says the incident has no lead: it is closed once that is no longer so
    /// (the incident has an open lead task again, is closed, or was merged into another or removed).
    /// </summary>
    private async Task CloseStaleDeclineNoticesAsync(List<(Guid Item, string Key, Guid Notice, Guid? Incident)> declines, CancellationToken cancellationToken)
    {
        if (declines.Count == 0)
        {
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var incidentIds = declines.Select(d => d.Incident).OfType<Guid>().Distinct().ToList();
        var states = await db.Incidents.AsNoTracking().Where(i => incidentIds.Contains(i.Id)).Select(i => new { i.Id, i.Status }).ToDictionaryAsync(i => i.Id, i => i.Status, cancellationToken);
        var led = (await db.Tasks.AsNoTracking().Where(t => t.IncidentId != null && incidentIds.Contains(t.IncidentId.Value) && t.Role == TaskRoles.Lead
                && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined).Select(t => t.IncidentId!.Value).ToListAsync(cancellationToken)).ToHashSet();
        var now = time.GetUtcNow().UtcDateTime;
        var closing = new Dictionary<Guid, string>();
        foreach (var decline in declines)
        {
            var reason = decline.Incident is not { } incident || !states.TryGetValue(incident, out var state) ? "its incident was merged into another or removed"
                : state == Incidents.IncidentStatus.Closed ? "its incident was closed"
                : led.Contains(incident) ? "its incident has a lead again"
                : null;
            if (reason is not null)
            {
                closing[decline.Notice] = reason;
            }
        }

        if (closing.Count == 0)
        {
            return;
        }

        var closingIds = closing.Keys.ToList();
        var notices = await db.Tasks.Where(t => closingIds.Contains(t.Id) && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined).ToListAsync(cancellationToken);
        await chain.SaveAsync(db, [.. notices.Select(n => n.CloseBySystem(closing[n.Id], now))], cancellationToken);
    }

    /// <summary>One batch of due items of both kinds; returns the size of the larger of the two batches.</summary>
    private async Task<int> EscalateDueAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var now = time.GetUtcNow().UtcDateTime;
        var tasks = await db.Tasks.Where(t => t.NextDeadline != null && t.NextDeadline <= now).OrderBy(t => t.NextDeadline).Take(Batch).ToListAsync(cancellationToken);
        var requests = await db.Requests.Where(r => r.NextDeadline != null && r.NextDeadline <= now).OrderBy(r => r.NextDeadline).Take(Batch).ToListAsync(cancellationToken);
        if (tasks.Count == 0 && requests.Count == 0)
        {
            return 0;
        }

        var audit = new List<AuditEntry>();
        var count = 0;
        var reach = await IncidentReach.ReadAsync(db, tasks
            .Where(t => t.EscalateToOrganizationId is { } to && directory.Organization(to) is { } organization && !directory.ReleasesTo(t.ReleasableTo, organization))
            .Select(t => t.IncidentId), cancellationToken);
        foreach (var task in tasks)
        {
            count += Escalate(db, task, "task", task.Title, task.IncidentId, task.RequestId, now, audit, reach);
        }

        foreach (var request in requests)
        {
            count += Escalate(db, request, "request", request.Title, request.IncidentId, request.Id, now, audit, reach);
        }

        await chain.SaveAsync(db, audit, cancellationToken);
        Interlocked.Add(ref _escalated, count);
        return Math.Max(tasks.Count, requests.Count);
    }

    /// <summary>
    /// The routing key of the notice of one missed deadline of a task or request: unique as the escalation is, by kind too
    /// (clients choose the ids of tasks and requests, so one id may name one of each).
    /// </summary>
    internal static string NoticeKey(string entity, Guid itemId, string deadline) => $"escalation:{entity}:{itemId:N}:{deadline}";

    /// <summary>Why no notice was raised, in the audit entry that records the miss (or the decline) all the same.</summary>
    internal const string NoticeWithheld = "the escalation organisation may not see every report of the incident of the task";

    /// <summary>An escalation notice is released as its item is, and to the organisation the misses go to.</summary>
    internal static string NoticeReleasableTo(string itemReleasableTo, string escalationOrganization) =>
        Releasability.Encode(Releasability.Decode(itemReleasableTo).Append(Community.Organization(escalationOrganization)));

    private int Escalate(ConcordDb db, DeadlineRecord item, string entity, string title, Guid? incidentId, Guid? requestId, DateTime now, List<AuditEntry> audit,
        IncidentReach reach)
    {
        var itemId = entity == "task" ? ((CoordinationTask)item).Id : ((AssistanceRequest)item).Id;
        var count = 0;
        foreach (var (deadline, due) in Due(item, now))
        {
            var to = item.EscalateToOrganizationId is { } id ? directory.Organization(id) : null;
            // A task's notice tells the escalation organisation of the task's incident, words and all: only an organisation
            // every report of it is released to is told (the reporting organisations did not all sign the agreement that
            // names where misses go). Only the requester of a request chose that agreement (and so its escalation
            // organisation). Not told, the miss is recorded and audited without a notice.
            var withheld = to is not null && item is CoordinationTask task && !reach.Reaches(task.IncidentId, task.ReleasableTo, to, directory);
            if (withheld)
            {
                to = null;
            }

            CoordinationTask? notice = null;
            if (to is not null)
            {
                // The agreement names where misses go; the notice is released to that organisation (its members' clearance still applies).
                notice = Notice(item, entity, itemId, title, incidentId, requestId, to, deadline,
                    string.Create(CultureInfo.InvariantCulture, $"{entity} not {(deadline == Deadlines.Acknowledge ? "acknowledged" : "answered")} by {due:yyyy-MM-dd HH:mm} UTC"), now);
                db.Tasks.Add(notice);
            }

            db.Escalations.Add(new Escalation
            {
                Id = Guid.CreateVersion7(),
                ItemEntity = entity,
                ItemId = itemId,
                Deadline = deadline,
                DueAt = due,
                EscalatedAt = now,
                ToOrganizationId = to?.Id,
                TaskId = notice?.Id,
            });
            if (deadline == Deadlines.Acknowledge)
            {
                item.AcknowledgeEscalatedAt = now;
            }
            else
            {
                item.RespondEscalatedAt = now;
            }

            audit.Add(Audits.Entry(null, AuditActions.Escalate, entity, itemId, AuditMarking.Of(item), now,
                Audits.Detail(new
                {
                    deadline,
                    due,
                    to = to?.Code,
                    notice = notice?.Id,
                    agreement = item.AgreementCode,
                    withheld = withheld ? NoticeWithheld : null,
                })));
            count++;
        }

        item.Reschedule();
        if (item is CoordinationTask t)
        {
            t.UpdatedAt = now;
        }
        else if (item is AssistanceRequest r)
        {
            r.UpdatedAt = now;
        }

        return count;
    }

    /// <summary>A notice to <paramref name="to"/> about <paramref name="item"/> (a missed deadline, a lead role declined), marked as the item and released to <paramref name="to"/> too.</summary>
    internal static CoordinationTask Notice(DeadlineRecord item, string entity, Guid itemId, string title, Guid? incidentId, Guid? requestId, Organizations.Organization to,
        string what, string description, DateTime now) => new()
        {
            Id = Guid.CreateVersion7(),
            Title = title,
            Description = description,
            OrganizationId = to.Id,
            Role = TaskRoles.Escalation,
            Status = TaskStatuses.Open,
            RoutingKey = NoticeKey(entity, itemId, what),
            IncidentId = incidentId,
            // What the task says of its incident, as the task does (the router compares both with the incident's).
            Category = (item as CoordinationTask)?.Category,
            AreaId = (item as CoordinationTask)?.AreaId,
            RequestId = requestId,
            EscalatedItemId = itemId,
            AgreementCode = item.AgreementCode,
            CreatedBy = "system",
            CreatedAt = now,
            UpdatedAt = now,
            Classification = item.Classification,
            ReleasableTo = NoticeReleasableTo(item.ReleasableTo, to.Code),
            Caveats = item.Caveats,
        };

    private static IEnumerable<(string Deadline, DateTime Due)> Due(DeadlineRecord item, DateTime now)
    {
        if (item.AcknowledgePending && item.AcknowledgeEscalatedAt is null && item.AcknowledgeBy <= now)
        {
            yield return (Deadlines.Acknowledge, item.AcknowledgeBy!.Value);
        }

        if (item.RespondPending && item.RespondEscalatedAt is null && item.RespondBy <= now)
        {
            yield return (Deadlines.Respond, item.RespondBy!.Value);
        }
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Gives every new or changed incident its lead and supporting organisations, as the agreements' responsibility rules say.
/// It tails the change feed from a cursor kept in the store, so routing never slows the write path, survives restarts,
/// and an incident whose category or area changes (an escalated or corrected incident) is routed again: organisations
/// that already have its task are not given another (the task's routing key is unique).
/// </summary>
internal sealed class IncidentRouter(IServiceScopeFactory scopes, MissionDirectory directory, AuditChain chain, EscalationScheduler scheduler,
    Realtime.ChangeSignal signal, TimeProvider time, ILogger<IncidentRouter> logger) : BackgroundService
{
    public const string CursorKey = "coordination.router.after";

    /// <summary>The shortest gap between two reads of the feed (wall-clock pacing, not business time).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    /// <summary>How often the feed is read when this process commits nothing (for incidents written by other processes).</summary>
    public static readonly TimeSpan Fallback = TimeSpan.FromSeconds(5);

    private const int Window = 500;

    /// <summary>Whether the last read stopped before committed changes waiting on a gap (read again soon, not at the fallback).</summary>
    private volatile bool _held;

    private readonly Hosting.FailureRun _failures = new(logger, "routing incidents");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var next = signal.Next;
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    // Set by a read that was held at a gap; a round that fails before reading waits the fallback.
                    _held = false;
                    while (await RouteAsync(stoppingToken) == Window)
                    {
                    }

                    _failures.Succeeded();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (_failures.Failed(e))
                    {
                        logger.LogWarning(e, "routing incidents failed; retrying");
                    }
                }

                await Realtime.ChangeSignal.WaitAsync(next, Fallback, Interval, started, _held, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Test hook: runs with the incidents a round followed, once their tasks are followed (and those of gone incidents closed) and before anything is saved.</summary>
    internal Func<IReadOnlyList<Guid>, Task>? AfterFollowing { get; set; }

    /// <summary>Test hook: runs at the start of each round, before the feed is read (a router running late).</summary>
    internal Func<Task>? BeforeRound { get; set; }

    /// <summary>
    /// Routes the incidents of the next window of the feed; returns how many changes it examined. A round that finds the
    /// store changed under it (a task moved or escalated meanwhile) is read again, up to three times in a row.
    /// </summary>
    internal async Task<int> RouteAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RouteOnceAsync(cancellationToken);
            }
            catch (DbUpdateConcurrencyException) when (attempt < 3)
            {
            }
        }
    }

    private async Task<int> RouteOnceAsync(CancellationToken cancellationToken)
    {
        if (BeforeRound is { } wait)
        {
            await wait();
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var cursor = await db.Settings.SingleOrDefaultAsync(s => s.Key == CursorKey, cancellationToken);
        if (cursor is null)
        {
            // First start: rules apply to incidents created or changed from now on, not to the whole history.
            await MoveToEndAsync(db, cancellationToken);
            await db.SaveChangesAsync(cancellationToken);
            return 0;
        }

        var after = long.Parse(cursor.Value, CultureInfo.InvariantCulture);
        (var window, _held) = await ChangeWindows.ReadHeldAsync(db, after, Window, time.GetUtcNow().UtcDateTime, cancellationToken);
        if (window.Count == 0)
        {
            return 0;
        }

        cursor.Value = window[^1].Sequence.ToString(CultureInfo.InvariantCulture);
        // An agreement recorded or retired (by the command line or on another node too), a sharing group's members or an
        // organisation's kind or nation changed: the directory is read again before this window is judged. An agreement's
        // rules apply to the incidents recorded since it was; judged by a directory up to its 30 s age old, an incident
        // recorded meanwhile that never changes again would never be routed.
        if (window.Any(c => c.Entity is "agreement" or "group" or "organization"))
        {
            await directory.ReloadAsync(force: true, cancellationToken, changesThrough: window[^1].Sequence);
        }

        var agreements = (await directory.AgreementsAsync(cancellationToken)).Where(a => a.Coordination.Responsibilities is { Count: > 0 }).ToList();
        var ids = window.Where(c => c.Entity == "incident" && c.Operation != "deleted").Select(c => c.EntityId).Distinct().ToList();
        var created = window.Where(c => c.Entity == "incident" && c.Operation == "created").Select(c => c.EntityId).ToHashSet();
        // The withheld routes this round records (remembered once the round is stored).
        var recorded = new HashSet<string>(StringComparer.Ordinal);
        var audit = new List<AuditEntry>();
        var routed = 0;
        var now = time.GetUtcNow().UtcDateTime;
        // A sharing group's members or an organisation's kind or nation changed: whether the organisation an escalation
        // notice went to still reaches every report of its incident (and so may read the incident's words) may have changed
        // with them, without the incident changing (the directory was read again above).
        var follow = ids;
        // The same changes, and a member's (clearance, caveats, disabled), may take an incident out of the reach of an
        // organisation that holds an open routed task of it, without the incident changing: such tasks are judged again
        // (withdrawn, as when the incident narrows), or they would stay open where nobody there can see them and escalate
        // as the organisation's miss.
        var accessChanged = window.Any(c => c.Entity is "group" or "organization" or "member");
        if (accessChanged)
        {
            // Closed notices too: they are still read, words and all. (Group changes are rare; notices are few beside reports.)
            // So are the closed lead and supporting tasks of mixed incidents (and of any incident whose marking a task's
            // differs from) when a group or an organisation changed: such a task is released to its organisation by name
            // as each report of the incident reaches it, and keeps the incident's words done; it follows the incident out of
            // the organisation's sight, and back into it (its own record of the work it did). A member's change does not
            // move what reaches an organisation, and member changes are frequent: they leave closed tasks alone.
            var reachChanged = window.Any(c => c.Entity is "group" or "organization");
            var noticed = await db.Tasks.Where(t => t.IncidentId != null && (t.Role == TaskRoles.Escalation
                    || ((t.Role == TaskRoles.Lead || t.Role == TaskRoles.Supporting) && ((t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined)
                        || (reachChanged && db.Incidents.Any(i => i.Id == t.IncidentId && (i.Mixed || i.ReleasableTo != t.ReleasableTo)))))))
                .Select(t => t.IncidentId!.Value).Distinct().ToListAsync(cancellationToken);
            follow = [.. ids.Union(noticed)];
        }

        // The incidents whose routed task was withdrawn when its organisation lost its reach, and whose organisation holds no
        // task of them since: the same changes may bring them back within its reach (it rejoins the group, a member is
        // cleared again) without the incident changing, and it is routed again then, due from that change.
        var returning = accessChanged ? await db.Tasks
            .Where(t => t.IncidentId != null && (t.Role == TaskRoles.Lead || t.Role == TaskRoles.Supporting) && t.Status == TaskStatuses.Done
                && t.RoutingKey == null && t.Reason != null && t.Reason.StartsWith(WithdrawnPrefix)
                && !db.Tasks.Any(o => o.IncidentId == t.IncidentId && o.OrganizationId == t.OrganizationId && o.RoutingKey != null
                    && (o.Role == TaskRoles.Lead || o.Role == TaskRoles.Supporting))
                && db.Incidents.Any(i => i.Id == t.IncidentId && i.Status != Incidents.IncidentStatus.Closed))
            .Select(t => t.IncidentId!.Value).Distinct().ToListAsync(cancellationToken) : [];
        var toRoute = returning.Count > 0 ? ids.Union(returning).ToList() : ids;
        var changedIncidents = ids.ToHashSet();

        var followed = follow.Count > 0 ? await FollowIncidentsAsync(db, follow, now, audit, accessChanged, cancellationToken) : FollowedTasks.None;
        if (accessChanged)
        {
            followed = followed.With(await WithdrawUnreadableAsync(db, now, audit, cancellationToken));
        }
        var gone = window.Where(c => c.Entity == "incident" && c.Operation == "deleted").Select(c => c.EntityId).Distinct().ToList();
        if (gone.Count > 0)
        {
            followed = followed.With(await CloseTasksOfGoneIncidentsAsync(db, gone, now, audit, cancellationToken));
        }

        if (AfterFollowing is { } hook)
        {
            await hook(follow);
        }

        if (agreements.Count > 0 && toRoute.Count > 0)
        {
            // A closed incident is routed to nobody: its change (the closing itself, a correction) could otherwise bring a rule
            // that applies to it now (an agreement revised since it was recorded) and a task due, and escalating, at once.
            var incidents = await db.Incidents.AsNoTracking().Where(i => toRoute.Contains(i.Id) && i.Status != Incidents.IncidentStatus.Closed).ToListAsync(cancellationToken);
            // Deadlines count from the change that brought an incident here, not from this round: a router running late (a
            // restart, a backlog) must not give the lead organisation more time than the agreement does.
            // Which change made a rule apply is not recorded: an incident created in the window is counted from its creation;
            // one that existed before came under the rule with one of its changes in the window, counted from the latest of
            // them (from the earliest, a recategorisation read late with an older change would be routed already overdue and
            // escalate at once as the organisation's miss).
            var changedAt = window.Where(c => c.Entity == "incident" && c.Operation != "deleted").GroupBy(c => c.EntityId)
                .ToDictionary(g => g.Key, g => created.Contains(g.Key) ? g.Min(c => c.At) : g.Max(c => c.At));
            if (returning.Count > 0)
            {
                // Back within an organisation's reach with the access change, not with a change of the incident.
                var accessAt = window.Where(c => c.Entity is "group" or "organization" or "member").Max(c => c.At);
                foreach (var id in returning)
                {
                    changedAt.TryAdd(id, accessAt);
                }
            }

            var existing = (await db.Tasks.Where(t => t.IncidentId != null && toRoute.Contains(t.IncidentId.Value) && t.RoutingKey != null)
                .Select(t => t.RoutingKey!).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
            // The keys this round's withdrawals and supersessions gave up (not saved yet): those organisations may be routed
            // anew now (a protest's supporting organisation that is a battle's lead).
            existing.ExceptWith(db.ChangeTracker.Entries<CoordinationTask>()
                .Where(e => e.Entity.RoutingKey is null && e.Property(t => t.RoutingKey).OriginalValue is not null)
                .Select(e => e.Property(t => t.RoutingKey).OriginalValue!));
            // Rules apply to incidents recorded since their agreement was (its first version: a revision, of a deadline say,
            // does not stop the routing of incidents recorded before it): an older incident that changes (a status, a fused
            // report) is not routed retroactively by an agreement recorded after it. Every lead first, then every supporting
            // role, each by agreement: an organisation two equally specific rules name in both roles is given the lead (one
            // task per incident and organisation; which one it got followed the order the store returned the agreements in).
            var named = incidents.ToDictionary(i => i.Id, incident => Responsibilities.Resolve(
                    [.. agreements.Where(a => a.InForceSince <= incident.CreatedAt)], incident.Category, directory.Area(incident.AreaId)?.Code)
                .SelectMany(route => route.Supporting.Select(s => (Route: route, Code: s, Role: TaskRoles.Supporting)).Prepend((Route: route, Code: route.Lead, Role: TaskRoles.Lead)))
                .OrderBy(r => r.Role == TaskRoles.Lead ? 0 : 1).ThenBy(r => r.Route.AgreementCode, StringComparer.Ordinal)
                .ToList());
            // The reports' own markings, for incidents whose marking leaves out an organisation the rules name (a mixed
            // incident: its marking is what all its reports share, which may be less than each releases to it).
            var reach = await IncidentReach.ReadAsync(db, incidents
                .Where(incident => named[incident.Id].Any(r => directory.OrganizationByCode(r.Code) is not { } organization || !directory.ReleasesTo(incident.ReleasableTo, organization)))
                .Select(incident => (Guid?)incident.Id), cancellationToken);
            // Whether anyone in an organisation may read a level and caveats, asked once per round: most of a window's
            // incidents share their marking, and each route asked the store twice.
            var unread = new Dictionary<(Guid, int, long), bool>();
            foreach (var incident in incidents)
            {
                foreach (var (route, code, role) in named[incident.Id])
                {
                    if (await directory.OrganizationAsync(code, cancellationToken) is not { } organization)
                    {
                        continue;
                    }

                    var key = RoutingKey(incident.Id, organization.Id);
                    if (!existing.Add(key))
                    {
                        continue;
                    }

                    // A task never widens what its incident may be seen by: the organisation is not told, the audit is. Nor
                    // is it given a task none of its members may read (the level or a caveat above all of them, as a task
                    // assigned by hand is refused): nobody would see it, and it would escalate as the organisation's miss.
                    var releasableTo = RoutedReleasableTo(incident.Id, incident.ReleasableTo, organization, reach);
                    var withheld = releasableTo is null ? "the incident is not released to the organisation"
                        : await NobodyMayReadAsync(db, organization.Id, incident, unread, cancellationToken) ? "no member of the organisation may read the incident" : null;
                    if (withheld is not null && !changedIncidents.Contains(incident.Id))
                    {
                        // Only looked at again for an access change (a withdrawn task's organisation still out of reach):
                        // nothing about the incident changed, so nothing is recorded.
                        existing.Remove(key);
                        continue;
                    }

                    if (withheld is not null)
                    {
                        // Recorded when the incident is created, and when a later change first makes a rule apply that
                        // cannot route it (a recategorisation, a move): not again at each change of it.
                        var withheldKey = key + ":" + route.AgreementCode + ":" + withheld;
                        if ((!_withheld.ContainsKey(withheldKey) || created.Contains(incident.Id)) && recorded.Add(withheldKey))
                        {
                            audit.Add(Audits.Entry(null, AuditActions.RouteWithheld, "incident", incident.Id, AuditMarking.Of(incident), now,
                                Audits.Detail(new { organization = organization.Code, role, agreement = route.AgreementCode, reason = withheld })));
                        }

                        existing.Remove(key);
                        continue;
                    }

                    var escalateTo = route.EscalateTo is { } e ? await directory.OrganizationAsync(e, cancellationToken) : null;
                    var from = changedAt.TryGetValue(incident.Id, out var at) && at < now ? at : now;
                    var task = new CoordinationTask
                    {
                        Id = Guid.CreateVersion7(),
                        Title = incident.Title,
                        Description = RoleUnder(role, route.AgreementCode),
                        OrganizationId = organization.Id,
                        Role = role,
                        Status = TaskStatuses.Open,
                        RoutingKey = key,
                        IncidentId = incident.Id,
                        Category = incident.Category,
                        AreaId = incident.AreaId,
                        AgreementCode = route.AgreementCode,
                        AcknowledgeBy = route.Acknowledge is { } a ? from + a : null,
                        RespondBy = route.Respond is { } r ? from + r : null,
                        EscalateToOrganizationId = escalateTo?.Id,
                        CreatedBy = "system",
                        CreatedAt = now,
                        UpdatedAt = now,
                        Classification = incident.Classification,
                        ReleasableTo = releasableTo!,
                        Caveats = incident.Caveats,
                    };
                    task.Reschedule();
                    db.Tasks.Add(task);
                    audit.Add(Audits.Entry(null, AuditActions.Route, "task", task.Id, AuditMarking.Of(task), now,
                        Audits.Detail(new { incident = incident.Id, organization = organization.Code, role, agreement = route.AgreementCode, acknowledgeBy = task.AcknowledgeBy, respondBy = task.RespondBy })));
                    routed++;
                }
            }
        }

        // Tasks come with their audit entries; a window without any only moves the cursor (no need to take the audit chain's turn).
        if (audit.Count > 0)
        {
            await chain.SaveAsync(db, audit, cancellationToken, followed.CheckNoNoticeRaisedMeanwhileAsync);
        }
        else
        {
            await db.SaveChangesAsync(cancellationToken);
        }

        // Remembered once stored: a round that failed (and is read again) records them then.
        foreach (var withheldKey in recorded)
        {
            RememberWithheld(withheldKey);
        }

        if (routed > 0 || followed.TermsChanged)
        {
            scheduler.Wake();
        }

        return window.Count;
    }

    /// <summary>
    /// A routed task is marked as its incident, also later: when an incident's marking changes (a restricted report fused
    /// into it, a merge, a correction), its lead and supporting tasks take the new marking, so that a task never tells
    /// anyone more than its incident would. What the task says of its incident (title, category, area) follows too, in
    /// the same change: the title was the earliest report's first line when the task was routed, and a split that took
    /// that report out (widening the marking to the reports left) would otherwise show its words under the wider marking.
    /// </summary>
    // The routes withheld already recorded in the audit (incident, organisation, agreement, reason), so that each is recorded
    // once, not at every change of its incident. In memory: after a restart a withheld route is recorded again at its
    // incident's next change. Bounded: when full it starts again.
    private readonly ConcurrentDictionary<string, byte> _withheld = new(StringComparer.Ordinal);

    /// <summary>How many withheld routes the router remembers having recorded.</summary>
    public const int MaxWithheldRemembered = 100_000;

    private void RememberWithheld(string key)
    {
        if (_withheld.Count >= MaxWithheldRemembered)
        {
            _withheld.Clear();
        }

        _withheld.TryAdd(key, 0);
    }

    /// <summary>Why a routed task was closed with its incident.</summary>
    public const string IncidentClosedReason = "its incident was closed";

    /// <summary>How the reason of a task or request withdrawn for its organisation's lost reach begins.</summary>
    public const string WithdrawnPrefix = "withdrawn:";

    private async Task<FollowedTasks> FollowIncidentsAsync(ConcordDb db, List<Guid> ids, DateTime now, List<AuditEntry> audit, bool accessChanged, CancellationToken cancellationToken)
    {
        // Escalation notices of the incident's tasks too: raised under the incident's marking then, widened to the
        // organisation misses go to, they must not keep telling of an incident now marked narrower.
        var tasks = await db.Tasks.Where(t => t.IncidentId != null && ids.Contains(t.IncidentId.Value)
                && (t.Role == TaskRoles.Lead || t.Role == TaskRoles.Supporting || t.Role == TaskRoles.Escalation))
            .ToListAsync(cancellationToken);
        // Only the notices of those tasks: a request's notice names the request's incident too, but it is marked as the
        // request (which its requester marked, and released to the escalation organisation), not as the incident.
        var routed = tasks.Where(t => t.Role != TaskRoles.Escalation).Select(t => (Guid?)t.Id).ToHashSet();
        tasks.RemoveAll(t => t.Role == TaskRoles.Escalation && !routed.Contains(t.EscalatedItemId));
        if (tasks.Count == 0)
        {
            return FollowedTasks.None;
        }

        var markings = await db.Incidents.AsNoTracking().Where(i => ids.Contains(i.Id))
            .Select(i => new { i.Id, i.Classification, i.ReleasableTo, i.Caveats, i.Title, i.Category, i.AreaId, i.CreatedAt, i.Status }).ToDictionaryAsync(i => i.Id, cancellationToken);
        List<Agreement>? agreements = null;
        var reach = await IncidentReach.ReadAsync(db, tasks
            .Where(t => markings.TryGetValue(t.IncidentId!.Value, out var m)
                && directory.Organization(t.OrganizationId) is { } to && !directory.ReleasesTo(m.ReleasableTo, to))
            .Select(t => t.IncidentId), cancellationToken);
        var changed = new List<Guid?>();
        var withdrawn = new Dictionary<Guid, string>();
        var unread = new Dictionary<(Guid, int, long), bool>();
        var termsChanged = false;
        foreach (var task in tasks)
        {
            if (!markings.TryGetValue(task.IncidentId!.Value, out var m))
            {
                continue;
            }

            // A notice stays released to the organisation the misses go to (as when it was raised) while every report of
            // the incident is released to it (the notice carries the incident's words); otherwise it is marked as the
            // incident alone.
            // A lead or supporting task is its organisation's as long as every report of its incident is released to it.
            var releasableTo = directory.Organization(task.OrganizationId) is not { } to ? m.ReleasableTo
                : task.Role != TaskRoles.Escalation ? RoutedReleasableTo(task.IncidentId!.Value, m.ReleasableTo, to, reach) ?? m.ReleasableTo
                : reach.Reaches(task.IncidentId, m.ReleasableTo, to, directory) ? EscalationScheduler.NoticeReleasableTo(m.ReleasableTo, to.Code)
                : m.ReleasableTo;
            var open = task.Role != TaskRoles.Escalation && task.Status is not (TaskStatuses.Done or TaskStatuses.Declined);
            // A closed incident (a hoax, an event over) is worked on by nobody: its routed tasks left open would escalate as
            // their organisations' misses. Reopened, it is routed anew (the key is given up), due from its reopening.
            var incidentClosed = open && m.Status == Incidents.IncidentStatus.Closed;
            // So is one its organisation had done with (or declined) before the closing: the lead that was done with the
            // event is the lead of what happens when it reopens; keeping the key left the reopened incident without one.
            if (!open && task.Role != TaskRoles.Escalation && m.Status == Incidents.IncidentStatus.Closed && task.RoutingKey is not null)
            {
                task.RoutingKey = null;
            }

            var unchanged = m.Classification == task.Classification && releasableTo == task.ReleasableTo && m.Caveats == task.Caveats
                && m.Title == task.Title && m.Category == task.Category && m.AreaId == task.AreaId;
            // Unchanged, a task is judged again only when the organisations or members around it may have changed.
            if (unchanged && !(accessChanged && open) && !incidentClosed)
            {
                continue;
            }

            // An incident recategorised or moved (a merge brought an earlier report of another kind, a report moved out): the
            // rules that routed a task may no longer name its organisation for it.
            var moved = m.Category != task.Category || m.AreaId != task.AreaId;
            var (formerCategory, formerArea) = (task.Category, task.AreaId);
            if (!unchanged)
            {
                // The words themselves stay out of the audit entry, which readers of the audit see by their clearance alone.
                audit.Add(Audits.Entry(null, AuditActions.Update, "task", task.Id, AuditMarking.Of(task).With(new AuditMarking(m.Classification, m.Caveats)), now, Audits.Detail(new
                {
                    incident = task.IncidentId,
                    marking = "follows its incident",
                    from = new { task.Classification, task.ReleasableTo, task.Caveats },
                    to = new { m.Classification, ReleasableTo = releasableTo, m.Caveats },
                    title = m.Title == task.Title ? null : "follows its incident",
                    category = m.Category == task.Category ? null : m.Category,
                    area = m.AreaId == task.AreaId ? null : m.AreaId,
                })));
                task.Classification = m.Classification;
                task.ReleasableTo = releasableTo;
                task.Caveats = m.Caveats;
                task.Title = m.Title;
                task.Category = m.Category;
                task.AreaId = m.AreaId;
                task.UpdatedAt = now;
            }

            var reason = incidentClosed ? IncidentClosedReason : open ? await WithdrawnAsync(db, task, unread, cancellationToken) : null;
            if (reason is null && open && moved && task.RoutingKey is not null && task.Role is TaskRoles.Lead or TaskRoles.Supporting)
            {
                // As routing judges it (the agreements in force when the incident was recorded): a task left open where the
                // rules no longer send the incident would escalate as its organisation's miss.
                // Judged by the same agreements for where the incident was and where it is: a task routed under an agreement
                // retired since is not taken for one the rules moved (nor is one assigned in a role they never gave it).
                agreements ??= [.. (await directory.AgreementsAsync(cancellationToken)).Where(a => a.Coordination.Responsibilities is { Count: > 0 })];
                var code = directory.Organization(task.OrganizationId)?.Code;
                var inForce = agreements.Where(a => a.InForceSince <= m.CreatedAt).ToList();
                // The rule giving the organisation its role, first by agreement code as routing takes them.
                Route? Giving(string? category, Guid? area) => category is null ? null : Responsibilities.Resolve(inForce, category, directory.Area(area)?.Code)
                    .Where(route => task.Role == TaskRoles.Lead ? route.Lead == code : route.Supporting.Contains(code))
                    .OrderBy(route => route.AgreementCode, StringComparer.Ordinal).FirstOrDefault();
                var (former, current) = (Giving(formerCategory, formerArea), Giving(m.Category, m.AreaId));
                reason = former is not null && current is null
                    ? $"superseded: the agreements no longer give its incident to the organisation as {task.Role} (its category or area changed)"
                    : null;
                if (reason is null && former is not null && current is not null
                    && (current.AgreementCode, current.Acknowledge, current.Respond, current.EscalateTo) != (former.AgreementCode, former.Acknowledge, former.Respond, former.EscalateTo))
                {
                    // Still the organisation's, under other terms (a protest turned riot: shorter deadlines, a miss now told to
                    // the JOC): the deadlines it has not met nor missed yet are counted again from the change, as a task routed
                    // now would be, and its misses go where the rule now says.
                    await RetermAsync(task, current, now, audit, cancellationToken);
                    termsChanged = true;
                    changed.Add(task.Id);
                }
            }

            if (reason is not null)
            {
                audit.Add(task.CloseBySystem(reason, now));
                // Routed again, with deadlines from then, if the incident comes back within the organisation's reach.
                task.RoutingKey = null;
                task.UpdatedAt = now;
                withdrawn[task.Id] = reason;
            }

            if (task.Role != TaskRoles.Escalation && (!unchanged || reason is not null))
            {
                changed.Add(task.Id);
            }
        }

        // Their escalation notices go with them: a miss of a task its organisation could not see is no miss.
        foreach (var notice in tasks.Where(t => t.Role == TaskRoles.Escalation && t.Status is not (TaskStatuses.Done or TaskStatuses.Declined)))
        {
            if (notice.EscalatedItemId is { } item && withdrawn.TryGetValue(item, out var reason))
            {
                audit.Add(notice.CloseBySystem(reason == IncidentClosedReason ? reason : $"its task was {reason}", now));
            }
        }

        return new FollowedTasks(changed, [.. tasks.Where(t => t.Role == TaskRoles.Escalation).Select(t => t.Id)]) { TermsChanged = termsChanged };
    }

    /// <summary>What a routed task says it is: its role and the agreement that gave it.</summary>
    private static string RoleUnder(string role, string agreement) => role == TaskRoles.Lead ? $"Lead under {agreement}" : $"Support under {agreement}";

    /// <summary>
    /// Gives an open routed task the terms of the rule that now gives its organisation its role: its deadlines not yet met
    /// nor escalated, counted from <paramref name="now"/> but never later than they were; where misses go; the agreement it
    /// answers to. Audited as an update.
    /// </summary>
    private async Task RetermAsync(CoordinationTask task, Route route, DateTime now, List<AuditEntry> audit, CancellationToken cancellationToken)
    {
        var escalateTo = route.EscalateTo is { } e ? await directory.OrganizationAsync(e, cancellationToken) : null;
        // Never later than it was: a looser rule gives no more time than the task had, and a category turned back and forth
        // (or a router catching up late) must not put a miss off.
        static DateTime? Earlier(DateTime? had, DateTime? now) => had is { } h && now is { } n ? (h < n ? h : n) : had ?? now;
        if (task.AcknowledgedAt is null && task.RespondedAt is null && task.AcknowledgeEscalatedAt is null)
        {
            task.AcknowledgeBy = Earlier(task.AcknowledgeBy, route.Acknowledge is { } a ? now + a : null);
        }

        if (task.RespondedAt is null && task.RespondEscalatedAt is null)
        {
            task.RespondBy = Earlier(task.RespondBy, route.Respond is { } r ? now + r : null);
        }

        task.EscalateToOrganizationId = escalateTo?.Id;
        task.AgreementCode = route.AgreementCode;
        task.Description = RoleUnder(task.Role, route.AgreementCode);
        task.UpdatedAt = now;
        task.Reschedule();
        audit.Add(Audits.Entry(null, AuditActions.Update, "task", task.Id, AuditMarking.Of(task), now, Audits.Detail(new
        {
            incident = task.IncidentId,
            terms = "follow the rule that now applies (its category or area changed)",
            agreement = route.AgreementCode,
            task.AcknowledgeBy,
            task.RespondBy,
            escalateTo = escalateTo?.Code,
        })));
    }

    /// <summary>
    /// Requests for assistance and tasks given by hand are marked by whoever gave them, and their organisation could read
    /// them then (they are refused otherwise). An access change (a sharing group, an organisation's kind or nation, a
    /// member's clearance or caveats, a disabled account) may take one out of its organisation's reach: nobody there can
    /// see it any more, yet it would stay open on nobody's board and escalate as that organisation's miss. Such a task is
    /// closed, and such a request declined, by the system with the reason, as a routed task is withdrawn; their open
    /// escalation notices close with them. The requester sees the request declined and why, and may ask again.
    /// </summary>
    /// <returns>
    /// The items withdrawn and every notice of theirs read: a notice the scheduler raises for one of them before the round
    /// is stored is found then, and the round is read again (<see cref="FollowedTasks.CheckNoNoticeRaisedMeanwhileAsync"/>).
    /// </returns>
    private async Task<FollowedTasks> WithdrawUnreadableAsync(ConcordDb db, DateTime now, List<AuditEntry> audit, CancellationToken cancellationToken)
    {
        var unread = new Dictionary<(Guid, int, long), bool>();
        var withdrawn = new Dictionary<Guid, string>();
        var tasks = await db.Tasks.Where(t => (t.Role == TaskRoles.Assigned || t.Role == TaskRoles.Action) && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined)
            .ToListAsync(cancellationToken);
        foreach (var task in tasks)
        {
            if (await UnreadableAsync(db, task.OrganizationId, task, "it", unread, cancellationToken) is { } reason)
            {
                audit.Add(task.CloseBySystem(reason, now));
                withdrawn[task.Id] = "task was " + reason;
            }
        }

        // A request is answered by the organisation that accepted it, else the one it is addressed to (one addressed to a
        // kind is answered by whichever of that kind takes it up: not judged here).
        var requests = await db.Requests.Where(r => r.Status != RequestStatuses.Declined && r.Status != RequestStatuses.Completed && r.Status != RequestStatuses.Cancelled
            && (r.AssignedOrganizationId != null || r.AddresseeOrganizationId != null)).ToListAsync(cancellationToken);
        foreach (var request in requests)
        {
            if (await UnreadableAsync(db, (request.AssignedOrganizationId ?? request.AddresseeOrganizationId)!.Value, request, "it", unread, cancellationToken) is { } reason)
            {
                audit.Add(Audits.Entry(null, AuditActions.Status, "request", request.Id, AuditMarking.Of(request), now,
                    Audits.Detail(new { from = request.Status, to = RequestStatuses.Declined, reason })));
                request.Status = RequestStatuses.Declined;
                request.Reason = reason;
                // Closed, as a cancelled request is; not answered (the response figures would count it as the addressee's answer).
                request.CompletedAt ??= now;
                request.UpdatedAt = now;
                request.Reschedule();
                withdrawn[request.Id] = "request was declined: " + reason;
            }
        }

        if (withdrawn.Count == 0)
        {
            return FollowedTasks.None;
        }

        var items = withdrawn.Keys.ToList();
        var notices = await db.Tasks.Where(t => t.Role == TaskRoles.Escalation && t.EscalatedItemId != null && items.Contains(t.EscalatedItemId.Value)).ToListAsync(cancellationToken);
        foreach (var notice in notices.Where(n => n.Status is not (TaskStatuses.Done or TaskStatuses.Declined)))
        {
            audit.Add(notice.CloseBySystem($"its {withdrawn[notice.EscalatedItemId!.Value]}", now));
        }

        return new FollowedTasks([.. items.Select(id => (Guid?)id)], [.. notices.Select(n => n.Id)]);
    }

    /// <summary>Why <paramref name="organization"/> can no longer take <paramref name="record"/>: not released to it, or none of its members may read it.</summary>
    private async Task<string?> UnreadableAsync(ConcordDb db, Guid organization, IMarked record, string what, Dictionary<(Guid, int, long), bool> unread, CancellationToken cancellationToken)
    {
        if (directory.Organization(organization) is not { } to)
        {
            return null;
        }

        if (!directory.ReleasesTo(record.ReleasableTo, to))
        {
            return $"{WithdrawnPrefix} {what} is no longer released to the organisation";
        }

        return await NobodyMayReadAsync(db, to.Id, record, unread, cancellationToken) ? $"{WithdrawnPrefix} no member of the organisation may read {what} any more" : null;
    }

    /// <summary>Whether no member of <paramref name="organization"/> may read <paramref name="record"/>'s level and caveats, each asked of the store once per round (<paramref name="unread"/>).</summary>
    private static async Task<bool> NobodyMayReadAsync(ConcordDb db, Guid organization, IMarked record, Dictionary<(Guid, int, long), bool> unread, CancellationToken cancellationToken)
    {
        var key = (organization, record.Classification, record.Caveats);
        if (!unread.TryGetValue(key, out var nobody))
        {
            unread[key] = nobody = await CoordinationDesk.NobodyMayReadAsync(db, organization, record.Classification, record.Caveats, cancellationToken);
        }

        return nobody;
    }

    /// <summary>
    /// The marking of an organisation's lead or supporting task of an incident: the incident's, and released to the
    /// organisation too when each of the incident's reports is, though not all to the same communities (a mixed incident's
    /// own marking is what its reports share: UNPOL's account released to the mission and the force's own to the force
    /// and the JOC share no community, yet the force may read both). Null when some report is not released to it.
    /// </summary>
    private string? RoutedReleasableTo(Guid incident, string incidentReleasableTo, Organizations.Organization organization, IncidentReach reach) =>
        directory.ReleasesTo(incidentReleasableTo, organization) ? incidentReleasableTo
        : reach.Reaches(incident, incidentReleasableTo, organization, directory) ? EscalationScheduler.NoticeReleasableTo(incidentReleasableTo, organization.Code)
        : null;

    /// <summary>
    /// Why a routed task that has just followed its incident to a narrower marking is withdrawn from its organisation:
    /// the incident is no longer released to it, or none of its members may read it any more. Such a task would stay
    /// open where nobody there can see it and escalate as the organisation's miss (the router never routes one: the
    /// same two reasons withhold a route). <paramref name="unread"/> keeps, for one round, whether anyone in an organisation may read a level and caveats: a
    /// change to a member judges every open routed task again, and most share their organisation and marking.
    /// </summary>
    private Task<string?> WithdrawnAsync(ConcordDb db, CoordinationTask task, Dictionary<(Guid, int, long), bool> unread, CancellationToken cancellationToken) =>
        UnreadableAsync(db, task.OrganizationId, task, "its incident", unread, cancellationToken);

    /// <summary>
    /// The routed tasks whose marking or words a round changed, and the escalation notices it read with them. The
    /// scheduler may escalate one of those tasks between the round's read and its save: its save then finds the task's
    /// marking unchanged (the round has not saved yet) and raises the notice under the wider marking the round is
    /// narrowing. The round's save therefore looks, inside its transaction (after the audit chain's lock, which the
    /// scheduler's save takes too, so its notice is committed or not yet read), for notices of those tasks it did not
    /// read, and is read again if it finds one. The other order, a save of the scheduler read before the round's, is
    /// refused by the task's marking, a concurrency token.
    /// </summary>
    private sealed record FollowedTasks(List<Guid?> Changed, List<Guid> Notices)
    {
        public static readonly FollowedTasks None = new([], []);

        /// <summary>Both sets of tasks and the notices read for them.</summary>
        public FollowedTasks With(FollowedTasks other) => new([.. Changed, .. other.Changed], [.. Notices, .. other.Notices]) { TermsChanged = TermsChanged || other.TermsChanged };

        /// <summary>Some task's deadlines were counted again: the scheduler must look at them.</summary>
        public bool TermsChanged { get; init; }

        public async Task CheckNoNoticeRaisedMeanwhileAsync(ConcordDb db)
        {
            if (Changed.Count > 0 && await db.Tasks.AnyAsync(t => t.Role == TaskRoles.Escalation && Changed.Contains(t.EscalatedItemId) && !Notices.Contains(t.Id)))
            {
                throw new DbUpdateConcurrencyException("an escalation notice of a task this round changes was raised after the round read them");
            }
        }
    }

    /// <summary>
    /// An incident merged into another, or emptied when its last report moved to another, is gone: its open lead and
    /// supporting tasks, and their open escalation notices, are closed (done, with the reason), so that they neither stay on a board pointing at nothing
    /// nor escalate.
    /// The incident that remains is routed as its change says, and an organisation that has its task there keeps that one.
    /// </summary>
    /// <returns>
    /// The tasks closed and the notices read for them: a notice the scheduler raises for one of them after this read would
    /// stay open on a board, pointing at a closed task of a gone incident; the round's save looks for one
    /// (<see cref="FollowedTasks.CheckNoNoticeRaisedMeanwhileAsync"/>) and is read again if it finds it.
    /// </returns>
    private static async Task<FollowedTasks> CloseTasksOfGoneIncidentsAsync(ConcordDb db, List<Guid> gone, DateTime now, List<AuditEntry> audit, CancellationToken cancellationToken)
    {
        const string Reason = "its incident was merged into another or emptied when its last report moved to another";
        var tasks = await db.Tasks.Where(t => t.IncidentId != null && gone.Contains(t.IncidentId.Value) && (t.Role == TaskRoles.Lead || t.Role == TaskRoles.Supporting)
            && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined).ToListAsync(cancellationToken);
        // The escalation notices of those tasks (an overdue one escalated to the JOC) go with them.
        var closed = tasks.Select(t => (Guid?)t.Id).ToList();
        var notices = await db.Tasks.Where(t => t.Role == TaskRoles.Escalation && closed.Contains(t.EscalatedItemId)).ToListAsync(cancellationToken);
        tasks.AddRange(notices.Where(t => t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined));
        audit.AddRange(tasks.Select(t => t.CloseBySystem(Reason, now)));
        return new FollowedTasks(closed, [.. notices.Select(n => n.Id)]);
    }

    /// <summary>Sets the router's cursor (in the context, not yet saved) to the end of the change feed: what came before is not routed.</summary>
    public static async Task MoveToEndAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        var end = (await db.Changes.MaxAsync(c => (long?)c.Sequence, cancellationToken) ?? 0).ToString(CultureInfo.InvariantCulture);
        if (await db.Settings.SingleOrDefaultAsync(s => s.Key == CursorKey, cancellationToken) is { } cursor)
        {
            cursor.Value = end;
        }
        else
        {
            db.Settings.Add(new Setting { Key = CursorKey, Value = end });
        }
    }

    public static string RoutingKey(Guid incidentId, Guid organizationId) => $"incident:{incidentId:N}:{organizationId:N}";
}

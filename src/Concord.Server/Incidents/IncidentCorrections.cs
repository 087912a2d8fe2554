using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Fusion;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>
/// An analyst's corrections of fusion, shared by the API and the incident page: merge incidents into one, split reports
/// off into a new incident. Both audited; both leave every incident rebuilt from its reports. Each holds the
/// <see cref="IncidentGate"/> from its first read to its commit, so no report fuses into what it is changing meanwhile.
/// The commit is not cancelled with the request: once it starts, fusion's index must learn of it.
/// </summary>
internal sealed class IncidentCorrections(ConcordDb db, AuditChain chain, FusionEngine fusion, IncidentGate gate, TimeProvider time)
{
    /// <summary>The result: the incident that now holds the reports, or the field at fault and why (404 when nothing to see).</summary>
    /// <param name="Incident">The incident as stored; <paramref name="Seen"/> as the analyst sees it, built before the gate opened.</param>
    internal sealed record Outcome(Incident? Incident, string? Field, string? Reason, int Status = StatusCodes.Status400BadRequest, Incident? Seen = null)
    {
        public static Outcome NotFound() => new(null, null, null, StatusCodes.Status404NotFound);
    }

    public async Task<Outcome> MergeAsync(Viewer viewer, Guid id, IReadOnlyList<Guid>? incidents, CancellationToken cancellationToken)
    {
        var others = incidents?.Distinct().Where(o => o != id).ToList() ?? [];
        if (others.Count is 0 or > 100)
        {
            return new Outcome(null, "incidents", "name 1 to 100 other incidents to merge into this one");
        }

        using var held = await gate.EnterAsync(cancellationToken);
        var visible = await db.VisibleIncidents(db.Incidents, viewer).Where(i => i.Id == id || others.Contains(i.Id)).ToListAsync(cancellationToken);
        var target = visible.SingleOrDefault(i => i.Id == id);
        if (target is null)
        {
            return Outcome.NotFound();
        }

        var missing = others.Where(o => visible.All(i => i.Id != o)).ToList();
        if (missing.Count > 0)
        {
            return new Outcome(null, "incidents", $"no incident {string.Join(", ", missing)}", StatusCodes.Status404NotFound);
        }

        // A closed incident takes no reports, from fusion or from an analyst. Judged from the status the analyst is shown:
        // one decided on reports hidden from them is not theirs to be refused by (IncidentSummary.ViewFor).
        var seen = (await db.AsSeenByAsync(visible, viewer, cancellationToken)).ToDictionary(i => i.Id);
        if (seen[id].Status == IncidentStatus.Closed)
        {
            return new Outcome(null, "incidents", "this incident is closed: reopen it (set its status) before others are merged into it", StatusCodes.Status409Conflict);
        }

        // Nor does a closed incident go into another by a merge: its reports would be open to fusion again through the
        // incident they join, and its closing lost without a word. The analyst reopens it first, if that is what is meant.
        string StatusOf(Guid incident) => (seen.TryGetValue(incident, out var i) ? i.Status : IncidentStatus.Reported).ToString().ToLowerInvariant();
        if (others.Where(o => StatusOf(o) == "closed").ToList() is [_, ..] closed)
        {
            return new Outcome(null, "incidents", $"closed: {string.Join(", ", closed)}; reopen an incident (set its status) before merging it into another", StatusCodes.Status409Conflict);
        }

        // Every report of the merged incidents moves, including those this analyst may not see: they learn nothing of them.
        var moved = await db.IncidentReports.Where(l => others.Contains(l.IncidentId)).ToListAsync(cancellationToken);
        var now = AuditChain.Now(time);
        db.IncidentReports.RemoveRange(moved);
        db.IncidentReports.AddRange(moved.Select(l => new IncidentReport
        {
            IncidentId = id,
            ReportId = l.ReportId,
            Contribution = l.Contribution,
            LinkedAt = now,
            Decision = LinkDecisions.Merged,
            ScoreDetail = l.ScoreDetail,
        }));
        foreach (var removed in visible.Where(i => i.Id != id))
        {
            // Who may have had it: the change row of its deletion names the reports it held (Change.Causes).
            foreach (var link in moved.Where(l => l.IncidentId == removed.Id))
            {
                removed.Causes.Add(link.ReportId);
            }

            db.Incidents.Remove(removed);
        }

        await RetargetProposalsAsync(db, viewer, id, others, moved.Select(l => l.ReportId).ToList(), now, cancellationToken);
        var reportIds = moved.Select(l => l.ReportId).Concat(await db.IncidentReports.Where(l => l.IncidentId == id).Select(l => l.ReportId).ToListAsync(cancellationToken)).ToList();
        var reports = await IncidentSummary.ReportsAsync(db, reportIds, cancellationToken);
        IncidentSummary.Rebuild(target, reports);
        var relinked = await RelinkCoordinationAsync(db, viewer, target, others, now, cancellationToken);
        target.UpdatedAt = now;
        // Announced to those who may see a report that moved: for anyone else the incident they see is the same.
        foreach (var link in moved)
        {
            target.Causes.Add(link.ReportId);
        }

        await chain.SaveAsync(db, [Audits.Entry(viewer, AuditActions.Merge, "incident", id, AuditMarking.Of(target), now, Audits.Detail(new { merged = others, statuses = others.Select(o => visible.Single(i => i.Id == o).Status.ToString().ToLowerInvariant()) })), .. relinked], CancellationToken.None);
        fusion.Changed(IncidentSummary.Copy(target));
        foreach (var merged in others)
        {
            fusion.Removed(merged);
        }

        // Built while the gate is held: another analyst's merge right after could otherwise take the target away first.
        return new Outcome(target, null, null, Seen: (await db.AsSeenByAsync([target], viewer, CancellationToken.None)).SingleOrDefault());
    }

    /// <summary>
    /// Proposals follow a merge (or an accepted proposal that emptied the incident its report left): a pending one that
    /// proposed a merged incident now proposes the incident it went into, under its own id (an analyst deciding on the id
    /// they were shown decides on it; a new id would also date the merge), and one whose report came into the incident it
    /// proposed, or that proposes a report already proposed there, is settled by the merge ("merged"). Decided ones follow
    /// too: none is left pointing at an incident that no longer exists (a decision sent again finds it decided).
    /// </summary>
    internal static async Task RetargetProposalsAsync(ConcordDb db, Viewer viewer, Guid target, IReadOnlyList<Guid> merged, IReadOnlyList<Guid> movedReports, DateTime now, CancellationToken cancellationToken)
    {
        // In the store and in this unit of work (a proposal just decided is tracked, not yet saved).
        var proposals = await db.FusionProposals.Where(p => merged.Contains(p.IncidentId) || (p.IncidentId == target && p.DecidedAt == null)).ToListAsync(cancellationToken);
        var inTarget = (await db.IncidentReports.Where(l => l.IncidentId == target).Select(l => l.ReportId).ToListAsync(cancellationToken)).Concat(movedReports).ToHashSet();
        // One pending proposal per report for the target: those already there, and the first retargeted of each report.
        var proposedHere = proposals.Where(p => p.IncidentId == target && p.DecidedAt is null).Select(p => p.ReportId).ToHashSet();
        foreach (var proposal in proposals.OrderBy(p => p.IncidentId == target ? 0 : 1))
        {
            var pending = proposal.DecidedAt is null;
            var moved = proposal.IncidentId != target;
            if (moved)
            {
                proposal.IncidentId = target;
            }

            if (pending && (inTarget.Contains(proposal.ReportId) || (moved && !proposedHere.Add(proposal.ReportId))))
            {
                proposal.DecidedAt = now;
                proposal.Decision = "merged";
                proposal.DecidedBy = viewer.MemberId;
            }
        }
    }

    /// <summary>
    /// Requests for assistance, assigned tasks and meeting actions about an incident merged into <paramref name="target"/>
    /// (or emptied into it by an accepted proposal) are about that incident from now on: a medevac request about one of two
    /// accounts of an ambush still names the ambush once an analyst merged them, rather than an incident that is gone.
    /// Routed tasks and escalations are the router's and the scheduler's, which close those of an incident that is gone.
    /// Each link is shown, as before, only to those who may see the incident (CoordinationDesk.SeeLinksAsync).
    /// </summary>
    internal static async Task<List<AuditEntry>> RelinkCoordinationAsync(ConcordDb db, Viewer viewer, Incident target, IReadOnlyList<Guid> merged, DateTime now, CancellationToken cancellationToken)
    {
        // Each move is audited on the record that moved (as any change to it is), naming the incident it was about and the
        // one it is about now; its update time moves (pages tell a changed card by it). The entry is marked as the record
        // and as the incident it names now (which holds every report of those it was about): an auditor cleared for the
        // record alone is not told of incidents they may not see, as the record's own page does not name them.
        var marking = AuditMarking.Of(target);
        var audit = new List<AuditEntry>();
        foreach (var task in await db.Tasks.Where(t => t.IncidentId != null && merged.Contains(t.IncidentId.Value) && (t.Role == Coordination.TaskRoles.Assigned || t.Role == Coordination.TaskRoles.Action))
            .ToListAsync(cancellationToken))
        {
            audit.Add(Audits.Entry(viewer, AuditActions.Update, "task", task.Id, AuditMarking.Of(task).With(marking), now, Audits.Detail(new { incident = target.Id, from = task.IncidentId, reason = "its incident was merged into another" })));
            task.IncidentId = target.Id;
            task.UpdatedAt = now;
        }

        foreach (var request in await db.Requests.Where(r => r.IncidentId != null && merged.Contains(r.IncidentId.Value)).ToListAsync(cancellationToken))
        {
            audit.Add(Audits.Entry(viewer, AuditActions.Update, "request", request.Id, AuditMarking.Of(request).With(marking), now, Audits.Detail(new { incident = target.Id, from = request.IncidentId, reason = "its incident was merged into another" })));
            request.IncidentId = target.Id;
            request.UpdatedAt = now;
        }

        return audit;
    }

    /// <summary>
    /// The incident an earlier split made of exactly <paramref name="reportIds"/>, as the analyst may see it: a split form
    /// sent twice (a double click, a resend after a lost answer) is refused the second time, since the reports left this
    /// incident, and the page tells where they went instead. Only an incident the analyst may see, holding those reports
    /// and no other the analyst may see, each linked by a split, is named: nothing the analyst could not see already is
    /// told (whether it holds reports they may not see changes nothing). Never <paramref name="from"/> itself: a split
    /// refused in the incident a split made (every report of it ticked, or it closed) was not made before.
    /// </summary>
    public async Task<Guid?> SplitIntoAsync(Viewer viewer, Guid from, IReadOnlyList<Guid> reportIds, CancellationToken cancellationToken)
    {
        var moved = reportIds.Distinct().ToList();
        if (moved.Count is 0 or > MaxSplit)
        {
            return null;
        }

        var links = await db.IncidentReports.AsNoTracking().Where(l => moved.Contains(l.ReportId)).ToListAsync(cancellationToken);
        if (links.Count != moved.Count || links.Any(l => l.Decision != LinkDecisions.Split || l.IncidentId != links[0].IncidentId))
        {
            return null;
        }

        var into = links[0].IncidentId;
        if (into == from)
        {
            return null;
        }

        var seen = await db.Reports.AsNoTracking().VisibleTo(viewer).CountAsync(r => moved.Contains(r.Id), cancellationToken);
        return seen == moved.Count
            && await db.VisibleIncidents(db.Incidents, viewer).AnyAsync(i => i.Id == into, cancellationToken)
            && await db.IncidentReports.Where(l => l.IncidentId == into).Join(db.Reports.VisibleTo(viewer), l => l.ReportId, r => r.Id, (l, _) => l)
                .CountAsync(cancellationToken) == moved.Count
            ? into : null;
    }

    /// <summary>How far back in the audit a merge sent twice is looked for: a double click's second send comes seconds after.</summary>
    private const int RecentEntries = 10_000;

    /// <summary>
    /// Whether <paramref name="viewer"/> merged every one of <paramref name="others"/> into <paramref name="id"/> a moment
    /// ago: a merge form sent twice (a double click, a resend after a lost answer) finds them gone, and the page says they
    /// were merged instead of "no incident". Read from the analyst's own recent merge entries (the last
    /// <see cref="RecentEntries"/> of the audit, by its key): nothing another analyst did is told.
    /// </summary>
    public async Task<bool> MergedAlreadyAsync(Viewer viewer, Guid id, IReadOnlyList<Guid> others, CancellationToken cancellationToken)
    {
        var wanted = others.Distinct().Where(o => o != id).Select(o => o.ToString("D")).ToList();
        if (wanted.Count == 0)
        {
            return false;
        }

        var details = await db.Audit.AsNoTracking().OrderByDescending(a => a.ChainIndex).Take(RecentEntries)
            .Where(a => a.Action == AuditActions.Merge && a.EntityId == id && a.MemberId == viewer.MemberId)
            .Select(a => a.Detail).ToListAsync(cancellationToken);
        return wanted.All(w => details.Any(d => d.Contains(w, StringComparison.Ordinal)));
    }

    /// <summary>The most reports one split moves: each is a parameter of its queries, and a much-reported event's incident holds fewer.</summary>
    public const int MaxSplit = 1000;

    /// <summary>The most unknown report ids a refused split names.</summary>
    private const int MaxNamed = 10;

    /// <summary>
    /// Moves <paramref name="reportIds"/> into a new incident. <paramref name="answer"/> runs once it is committed, before
    /// the gate opens: another analyst's merge could otherwise take the new incident away before the answer is built.
    /// </summary>
    public async Task<Outcome> SplitAsync(Viewer viewer, Guid id, IReadOnlyList<Guid>? reportIds, CancellationToken cancellationToken, Func<Incident, Task>? answer = null)
    {
        using var held = await gate.EnterAsync(cancellationToken);
        var incident = await db.VisibleIncidents(db.Incidents, viewer).SingleOrDefaultAsync(i => i.Id == id, cancellationToken);
        if (incident is null)
        {
            return Outcome.NotFound();
        }

        var moving = reportIds?.Distinct().ToList() ?? [];
        if (moving.Count is 0 or > MaxSplit)
        {
            return new Outcome(null, "reports", $"name 1 to {MaxSplit:N0} reports to move into a new incident");
        }

        // As for a merge, a closed incident is not split: the new incident would open its reports to fusion again, and
        // the closing would be lost without a word. Judged from the status the analyst is shown (IncidentSummary.ViewFor).
        if ((await db.AsSeenByAsync([incident], viewer, cancellationToken)).SingleOrDefault() is { Status: IncidentStatus.Closed })
        {
            return new Outcome(null, "reports", "this incident is closed: reopen it (set its status) before splitting it", StatusCodes.Status409Conflict);
        }

        // Only reports the analyst may see can be named; all the incident's reports are needed to rebuild what stays.
        var links = await db.IncidentReports.Where(l => l.IncidentId == id).ToListAsync(cancellationToken);
        var visible = await db.Reports.AsNoTracking().VisibleTo(viewer).Where(r => moving.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken);
        var unknown = moving.Where(m => !visible.Contains(m) || links.All(l => l.ReportId != m)).ToList();
        if (unknown.Count > 0)
        {
            // The first few by name, as many as there are in all: the answer stays short whatever was sent.
            var named = string.Join(", ", unknown.Take(MaxNamed));
            return new Outcome(null, "reports", $"not in this incident: {named}{(unknown.Count > MaxNamed ? $" and {unknown.Count - MaxNamed:N0} more" : "")}");
        }

        // Counted among the reports the analyst may see: counting all of them would tell whether hidden ones remain.
        var visibleLinked = await db.IncidentReports.Where(l => l.IncidentId == id).Join(db.Reports.VisibleTo(viewer), l => l.ReportId, r => r.Id, (l, _) => l)
            .CountAsync(cancellationToken);
        if (moving.Count >= visibleLinked)
        {
            return new Outcome(null, "reports", "leave at least one report you may see in the incident");
        }

        var all = links.Select(l => l.ReportId).ToList();
        var reports = await IncidentSummary.ReportsAsync(db, all, cancellationToken);
        var now = AuditChain.Now(time);
        var moved = reports.Where(r => moving.Contains(r.Id)).OrderBy(r => r.ObservedAt).ToList();
        var split = IncidentSummary.OpenFor(moved[0], now);
        IncidentSummary.Rebuild(split, moved);
        foreach (var report in moved)
        {
            split.Causes.Add(report.Id);
        }

        db.Incidents.Add(split);
        db.IncidentReports.RemoveRange(links.Where(l => moving.Contains(l.ReportId)));
        db.IncidentReports.AddRange(moved.Select(r => new IncidentReport { IncidentId = split.Id, ReportId = r.Id, Contribution = 1.0, LinkedAt = now, Decision = LinkDecisions.Split }));
        IncidentSummary.Rebuild(incident, reports.Where(r => !moving.Contains(r.Id)).ToList());
        var staying = links.Where(l => !moving.Contains(l.ReportId)).Select(l => l.LinkedAt).ToList();
        IncidentSummary.ForgetStatusDecidedBefore(incident, staying);
        // A report leaving is not a change of the time: for a viewer who may not see it, nothing happened.
        incident.UpdatedAt = IncidentSummary.LastChange(incident, staying);
        foreach (var report in moved)
        {
            incident.Departed.Add(report.Id);
        }

        await chain.SaveAsync(db, [Audits.Entry(viewer, AuditActions.Split, "incident", id, AuditMarking.Of(incident).With(split), now,
            Audits.Detail(new { into = split.Id, reports = moving }))], CancellationToken.None);
        fusion.Changed(IncidentSummary.Copy(incident));
        fusion.Changed(IncidentSummary.Copy(split));
        if (answer is not null)
        {
            await answer(split);
        }

        return new Outcome(split, null, null);
    }
}

using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>
/// Tails the change feed and sends new and changed incidents to the connected devices whose members may see them, each
/// device getting the incident as built from the reports its member may see. Incidents made only from TAK markers are
/// not echoed back: the devices already have the marker itself.
/// </summary>
internal sealed class IncidentFeed(
    TakRouter router, IServiceScopeFactory scopes, MarkingFormat markings, MissionDirectory directory, ViewerDirectory viewers, Realtime.ChangeSignal signal,
    Audit.AuditWriter audit, TimeProvider time, ILogger<IncidentFeed> logger)
    : BackgroundService
{
    /// <summary>The shortest gap between two reads of the feed.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the feed is read when this process commits nothing (for writes by other processes).</summary>
    public static readonly TimeSpan Fallback = TimeSpan.FromSeconds(1);

    private const int Window = 1000;

    private readonly Hosting.FailureRun _failures = new(logger, "sending incident changes to TAK devices");
    private readonly Hosting.FailureRun _auditFailures = new(logger, "auditing incidents sent to TAK devices");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long after;
        while (true)
        {
            // Where the feed stands: only what is written from now on is news to devices (they get the rest in their
            // opening picture). Retried like every round: a store that fails for a moment at start must not stop the host.
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
                (after, _, _) = await ChangeWindows.SettledEndAsync(db, -1, time.GetUtcNow().UtcDateTime, stoppingToken);
                _failures.Succeeded();
                break;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                if (_failures.Failed(e))
                {
                    logger.LogWarning(e, "reading where the change feed stands for TAK devices failed; retrying");
                }

                await Task.Delay(Fallback, time, stoppingToken);
            }
        }

        router.Told = after;

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
                    do
                    {
                        // A full window: the rest is read at once (a backlog written by another process wakes nobody here).
                        _behind = false;
                        // Nobody to tell: skip the work, but keep the position so that nothing old is sent later.
                        after = router.Sessions.Count == 0 ? await LatestAsync(after, stoppingToken) : await PublishAsync(after, stoppingToken);
                        router.Told = after;
                    }
                    while (_behind && !stoppingToken.IsCancellationRequested);
                    _failures.Succeeded();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (_failures.Failed(e))
                    {
                        logger.LogWarning(e, "sending incident changes to TAK devices failed; retrying");
                    }
                }

                await Realtime.ChangeSignal.WaitAsync(next, Fallback, Interval, started, _held, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<long> LatestAsync(long after, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        // Not past a change still being written: a device that connects from here must be told of it.
        (var latest, _held, _behind) = await ChangeWindows.SettledEndAsync(db, after, time.GetUtcNow().UtcDateTime, cancellationToken);
        if (router.Sessions.Count > 0)
        {
            // A device connected meanwhile: its opening picture may have been read before some of these changes, which
            // the next round therefore publishes rather than skips.
            return after;
        }

        if (router.RemembersIncidents && latest > after)
        {
            // No device to tell, but incidents deleted meanwhile need no withdrawal later.
            foreach (var id in await db.Changes.Where(c => c.Sequence > after && c.Sequence <= latest && c.Entity == "incident" && c.Operation == "deleted")
                .Select(c => c.EntityId).ToListAsync(cancellationToken))
            {
                router.Forget(id);
            }
        }

        return latest;
    }

    /// <summary>
    /// A round whose audit failed for some devices: it is run again for the same changes (up to <c>End</c>), for the devices
    /// not in <c>Done</c> only (those were audited and sent to; again they would be audited twice).
    /// </summary>
    private (long After, long End, HashSet<TakSession> Done)? _retry;

    /// <summary>Whether the last read stopped before committed changes waiting on a gap (read again soon, not at the fallback).</summary>
    private volatile bool _held;

    /// <summary>Whether the last read stopped at its window's end with more of the feed to read.</summary>
    private volatile bool _behind;

    internal async Task<long> PublishAsync(long after, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        (var changes, _held) = await ChangeWindows.ReadHeldAsync(db, after, Window, time.GetUtcNow().UtcDateTime, cancellationToken);
        _behind = changes.Count == Window;
        var done = new HashSet<TakSession>();
        if (_retry is { } retry && retry.After == after)
        {
            changes = [.. changes.Where(c => c.Sequence <= retry.End)];
            done = retry.Done;
        }

        _retry = null;
        if (changes.Count == 0)
        {
            return after;
        }

        // Access changed (here, on another node, or by the CLI): the devices are checked against what their members hold
        // now before anything of this round goes out, not within the periodic check's 10 s. A device whose member lost
        // access is cut; one whose access changed is cut and reconnects.
        if (await Realtime.AccessChanges.RefreshAsync(changes, directory, viewers, cancellationToken) && router.CheckAccess is { } check)
        {
            await check(cancellationToken);
        }

        // A device being cut gets only its withdrawals (TakServer.CutAsync).
        var sessions = router.Sessions.Where(s => !s.Draining && !s.Closing.IsCancellationRequested && !done.Contains(s)).ToList();
        var now = time.GetUtcNow();
        var ids = changes.Where(c => c.Entity == "incident" && c.Operation != "deleted").Select(c => c.EntityId).Distinct().ToList();
        var incidents = await db.Incidents.AsNoTracking().Where(i => ids.Contains(i.Id)).ToListAsync(cancellationToken);
        var links = await db.IncidentReports.AsNoTracking().Where(l => ids.Contains(l.IncidentId)).ToListAsync(cancellationToken);
        // The incidents' reports, and those that joined or left them: a report makes news only for devices whose members
        // may see it (see Change.Causes).
        var reportIds = links.Select(l => l.ReportId).Concat(changes.SelectMany(c => c.CauseIds)).Distinct().ToList();
        var reports = await db.Reports.AsNoTracking().Where(r => reportIds.Contains(r.Id)).ToDictionaryAsync(r => r.Id, cancellationToken);
        foreach (var deleted in changes.Where(c => c.Entity == "incident" && c.Operation == "deleted"))
        {
            // Its deletion names the reports it held: a device whose member may read one may have it.
            var held = deleted.CauseIds.Select(id => reports.GetValueOrDefault(id)).OfType<Reports.Report>().ToList();
            router.Withdraw(deleted.EntityId, now, held.Count == 0 ? null : viewer => held.Any(r => Marking.AllowsRead(r, viewer)));
        }

        var changesOf = changes.ToLookup(c => c.EntityId);
        var linksOf = links.ToLookup(l => l.IncidentId);
        // What goes to each device, in order: classified incidents are named in the audit before any of it is sent.
        var outgoing = new List<(TakSession Session, Guid Id, Outbound Item, int Classification, long Caveats)>();
        foreach (var incident in incidents)
        {
            var why = changesOf[incident.Id].ToList();
            var open = why.Any(c => c.Causes is null);
            var because = why.SelectMany(c => c.CauseIds).Select(id => reports.GetValueOrDefault(id)).OfType<Reports.Report>().ToList();
            bool Newsworthy(Viewer viewer) => open || because.Any(r => Marking.AllowsRead(r, viewer));
            // A device loses an incident when a report its member may see left it and none is left that they may see; a
            // later change of an incident it no longer has tells it nothing.
            bool Lost(Viewer viewer) => because.Any(r => Marking.AllowsRead(r, viewer)) && router.MayHave(incident.Id, viewer);
            var ownLinks = linksOf[incident.Id].ToList();
            var own = ownLinks.Select(l => reports[l.ReportId]).ToList();
            if (own.Count > 0 && own.All(CotMapping.IsFromItem))
            {
                // Not echoed back: the devices have the markers themselves. One that had the incident while reports of
                // other kinds were in it, and saw such a report leave, loses it.
                foreach (var session in sessions)
                {
                    if (Lost(session.Viewer))
                    {
                        outgoing.Add((session, incident.Id, Withdrawal(incident.Id), 0, 0));
                    }
                }

                continue;
            }

            if (!incident.Mixed)
            {
                var item = CotMapping.Outgoing(incident, markings, now);
                var marking = new MarkingDefault(incident.Classification, incident.ReleasableTo, incident.Caveats, "");
                var sent = false;
                foreach (var session in sessions)
                {
                    if (!Marking.AllowsRead(incident, session.Viewer))
                    {
                        if (Lost(session.Viewer))
                        {
                            // The reports this member could see left it: what the device shows is gone for them.
                            outgoing.Add((session, incident.Id, Withdrawal(incident.Id), 0, 0));
                        }
                    }
                    else if (Newsworthy(session.Viewer))
                    {
                        outgoing.Add((session, incident.Id, item, incident.Classification, incident.Caveats));
                        sent = true;
                    }
                }

                // Remembered for a later withdrawal only when some device was sent it (or had it already): incidents no
                // device got would otherwise fill the list.
                if (sent || router.MayHaveAny(incident.Id))
                {
                    router.Remember(incident.Id, marking);
                }

                continue;
            }

            // A mixed incident is rebuilt for each device from the reports its member may see; made only of markers as
            // that member sees it, it is not echoed back either (whether it is must not tell of reports of other kinds
            // the member may not see).
            foreach (var session in sessions)
            {
                var seenLinks = ownLinks.Where(l => Marking.AllowsRead(reports[l.ReportId], session.Viewer)).ToList();
                var visible = seenLinks.Select(l => reports[l.ReportId]).ToList();
                if (visible.Count == 0 || visible.All(CotMapping.IsFromItem))
                {
                    if (Lost(session.Viewer))
                    {
                        outgoing.Add((session, incident.Id, Withdrawal(incident.Id), 0, 0));
                    }

                    continue;
                }

                // A status set before the first report this member may see joined is not theirs (ChangeVisibility, ViewFor).
                var firstSeen = seenLinks.Min(l => l.LinkedAt);
                if (!why.Any(c => c.Causes is null && c.At >= firstSeen) && !because.Any(r => Marking.AllowsRead(r, session.Viewer)))
                {
                    continue;
                }

                var view = IncidentSummary.ViewFor(incident, visible, seenLinks.Select(l => l.LinkedAt));
                router.RememberSent(incident.Id, view, session.Viewer);
                outgoing.Add((session, incident.Id, CotMapping.Outgoing(view, markings, now), view.Classification, view.Caveats));
            }
        }

        // One entry per device and round, as a list read through the API is one entry per request. A device whose entry
        // could not be written is sent nothing of the round, which runs again for it alone (the others, audited and sent
        // to, are not audited twice).
        var unaudited = (await Task.WhenAll(outgoing.Where(o => Audit.Audits.IsAudited(o.Classification, o.Caveats)).GroupBy(o => o.Session).Select(async sent =>
        {
            try
            {
                await audit.RecordReadAsync(sent.Key.Viewer, "incident", sent.Select(o => (o.Id, o.Classification, o.Caveats)).ToList(), $"tak:live {sent.Key.Remote}",
                    now.UtcDateTime, cancellationToken);
                _auditFailures.Succeeded();
                return null;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // With the audit log down every device fails every round: the first failure is logged whole, the rest summed up.
                if (_auditFailures.Failed(e))
                {
                    logger.LogWarning(e, "the reads of the TAK device of {User} ({Remote}) could not be audited; its incidents wait for the next round", sent.Key.Viewer.UserName, sent.Key.Remote);
                }

                return sent.Key;
            }
        }))).OfType<TakSession>().ToHashSet();
        foreach (var (session, id, item, _, _) in outgoing.Where(o => !unaudited.Contains(o.Session)))
        {
            session.NoteLiveIncident(id);
            session.Send(item);
        }

        if (unaudited.Count > 0)
        {
            done.UnionWith(sessions.Where(s => !unaudited.Contains(s)));
            _retry = (after, changes[^1].Sequence, done);
            // Tried again after the usual wait, not at once.
            _behind = false;
            return after;
        }

        return changes[^1].Sequence;

        Outbound Withdrawal(Guid id) => CotMapping.Withdrawal(id, now);
    }
}

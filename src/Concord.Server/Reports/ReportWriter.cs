using System.Threading.Channels;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Fusion;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Reports;

/// <summary>
/// Group commit for reports arriving one by one (HTTP, later CoT): requests wait in a queue and one writer stores them
/// in batches, one transaction per batch. SQLite allows one writer at a time, and contending writers back off with
/// sleeps of up to 100 ms; one writer that batches avoids that and also saves round trips on PostgreSQL.
/// Idempotency is decided here, against the store and within the batch, so concurrent retries of one id never race.
/// </summary>
internal sealed class ReportWriter : IAsyncDisposable
{
    /// <summary>
    /// Reports stored per transaction at most: an import batch (<see cref="Import.Importer.BatchSize"/>) goes in one. Each
    /// commit writes out every index page its rows touched, and with indexes keyed at random 256 reports touched nearly as
    /// many pages as 4,000 (docs/benchmarks-notes.md, "Import batches and PostgreSQL COPY").
    /// </summary>
    public const int MaxBatch = 2048;

    /// <summary>From this many reports on, a join updates the incident's summary instead of rebuilding it from every report.</summary>
    public const int LargeIncident = 50;

    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(20_000) { SingleReader = true });
    private readonly IServiceScopeFactory _scopes;
    private readonly AuditChain _chain;
    private readonly ILogger<ReportWriter> _logger;
    private readonly FusionEngine _fusion;
    private readonly ChangeFeedInterceptor _feed;
    private readonly IncidentGate _gate;
    private readonly WriterLease _lease;
    private readonly TimeProvider _time;
    private readonly Hosting.FailureRun _failures;
    private readonly Task _loop;

    public ReportWriter(IServiceScopeFactory scopes, AuditChain chain, FusionEngine fusion, ChangeFeedInterceptor feed, IncidentGate gate, WriterLease lease, TimeProvider time,
        ILogger<ReportWriter> logger)
    {
        _scopes = scopes;
        _time = time;
        _lease = lease;
        _gate = gate;
        _chain = chain;
        _fusion = fusion;
        _feed = feed;
        _logger = logger;
        _failures = new Hosting.FailureRun(logger, "storing reports");
        _loop = Task.Run(RunAsync);
    }

    internal sealed record Entry(Report Report, Incident Incident, IncidentReport Link, IReadOnlyList<AuditEntry> Audit)
    {
        /// <summary>
        /// An imported report whose id derives from its source record's id (<see cref="SourceIds"/>): the organisation,
        /// not only the member, owns it for idempotency, and another organisation holding that id is no conflict.
        /// </summary>
        public bool SourceKeyed { get; init; }

        /// <summary>
        /// An imported row refused for its marking (looser than the organisation's agreement allows its author): refused
        /// with these reasons if it would be new, and found already imported (or changed at the source) if the organisation
        /// holds its record, whose stored marking stands.
        /// </summary>
        public Dictionary<string, string[]>? RefusedIfNew { get; init; }

        /// <summary>Another organisation's copy of the same source record: this report joins the incident that copy is in.</summary>
        public Guid? SameRecordAs { get; init; }

        /// <summary>The id imports gave this record before schema 12 (<see cref="SourceIds.Unkeyed"/>), and the hash they stored with it.</summary>
        public Guid? LegacyId { get; init; }

        public string? LegacyHash { get; init; }

        /// <summary>
        /// The same record came earlier in the import's batch that brought this one: named as given twice in the file
        /// whether or not the writer took the two in one batch of its own (it takes what is queued when it wakes).
        /// </summary>
        public bool GivenEarlierInFile { get; init; }
    }

    private sealed record Pending(Entry Entry, Viewer Author, TaskCompletionSource<ReportIntake.Outcome> Done);

    public async Task<ReportIntake.Outcome> WriteAsync(Entry entry, Viewer author, CancellationToken cancellationToken)
    {
        // The one process that writes reports to the store (see WriterLease); serve, import and the demo take it at start.
        await _lease.AcquireAsync(cancellationToken);
        var pending = new Pending(entry, author, new TaskCompletionSource<ReportIntake.Outcome>(TaskCreationOptions.RunContinuationsAsynchronously));
        await _queue.Writer.WriteAsync(pending, cancellationToken);
        return await pending.Done.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }

    private async Task RunAsync()
    {
        await LoadFusionAsync();
        var batch = new List<Pending>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync())
        {
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            // Corrections and status changes wait between batches (see IncidentGate).
            using var held = await _gate.EnterAsync(CancellationToken.None);
            try
            {
                if (await _lease.EnsureHeldAsync(CancellationToken.None) | _loadedWithoutLease)
                {
                    _loadedWithoutLease = false;
                    // Without the lease another process may have written incidents (an import): fusion reads them anew.
                    _fusion.Invalidate();
                }

                await WriteBatchAsync(batch);
                _failures.Succeeded();
            }
            catch (DbUpdateException refused) when (StoreErrors.IsConstraintViolation(refused.GetBaseException()))
            {
                // One bad report must not fail the others: store them one at a time to find it. (A store failing in
                // itself, which SaveChanges reports the same way, fails the batch below: no report is to blame.)
                foreach (var pending in batch.Where(p => !p.Done.Task.IsCompleted))
                {
                    // The failed attempt may have grown this report's own incident with later reports of the batch.
                    IncidentSummary.Rebuild(pending.Entry.Incident, [pending.Entry.Report]);
                    pending.Entry.Incident.Causes.Clear();
                    pending.Entry.Incident.Causes.Add(pending.Entry.Report.Id);
                    try
                    {
                        await WriteBatchAsync([pending]);
                    }
                    catch (Exception e)
                    {
                        _logger.LogError(e, "storing report {Id} failed", pending.Entry.Report.Id);
                        pending.Done.TrySetException(e);
                    }
                }
            }
            catch (Exception e)
            {
                // Each failing batch is a request (or an import's batch) told so; a store that is down fails every one.
                if (_failures.Failed(e))
                {
                    _logger.LogError(e, "storing a batch of {Count} reports failed", batch.Count);
                }

                foreach (var pending in batch)
                {
                    pending.Done.TrySetException(e);
                }
            }

            batch.Clear();
        }
    }

    /// <summary>
    /// Loads fusion's index on the writer's own thread before the first report rather than with it: provenance weighs
    /// words by their rarity among the indexed incidents (<see cref="WordRarity"/>), and a server just started would
    /// otherwise explain links with unweighted words until a report came. A failure leaves it to the first report.
    /// </summary>
    private async Task LoadFusionAsync()
    {
        try
        {
            // Loaded before this process held the lease (a server that takes it with its first report), another may have
            // written since: the first batch loads again (a server serving takes the lease before it starts).
            _loadedWithoutLease = !_lease.Held;
            // Between corrections and releases, as a batch's load is: a release's copy stored while the count is rebuilt
            // would be lost with the old count, or counted twice.
            using var held = await _gate.EnterAsync(CancellationToken.None);
            await using var scope = _scopes.CreateAsyncScope();
            await _fusion.PrepareAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), [], CancellationToken.None);
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "loading fusion's index failed; it is loaded with the first report");
            _fusion.Invalidate();
        }
    }

    private bool _loadedWithoutLease;

    private async Task WriteBatchAsync(IReadOnlyList<Pending> batch)
    {
        try
        {
            await StoreBatchAsync(batch);
        }
        catch
        {
            // What fusion's index learnt from this batch (incidents opened, joined) was not stored: rebuild it from the
            // store, whichever step failed (a query of the batch's candidates, or the save).
            _fusion.Invalidate();
            throw;
        }
    }

    private async Task StoreBatchAsync(IReadOnlyList<Pending> batch)
    {
        await using var scope = _scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var ids = batch.Select(p => p.Entry.Report.Id).Concat(batch.Select(p => p.Entry.LegacyId).OfType<Guid>()).Distinct().ToList();
        var stored = await db.Reports.AsNoTracking().Where(r => ids.Contains(r.Id)).ToDictionaryAsync(r => r.Id);
        var storedIncidents = stored.Count == 0
            ? []
            : await db.IncidentReports.Where(l => ids.Contains(l.ReportId)).ToDictionaryAsync(l => l.ReportId, l => l.IncidentId);

        var added = new Dictionary<Guid, Entry>();
        // The casualty figures of the large incidents this batch joins, their stored reports' and then the batch's joiners'.
        var largeFigures = new Dictionary<Guid, List<(int? Killed, int? Injured)>>();
        var outcomes = new List<(Pending Pending, ReportIntake.Outcome Outcome)>(batch.Count);
        // Incidents opened or joined in this batch, with their reports, so that a later report of the batch can join them.
        var incidents = new Dictionary<Guid, (Incident Incident, List<Report> Reports)>();
        // The incidents this batch's new reports may join, read from the store at once (a query per report was most of fusion's time).
        var fusion = await _fusion.PrepareAsync(db, batch.Select(p => p.Entry.Report).Where(r => !stored.ContainsKey(r.Id)), CancellationToken.None);
        // The incidents holding the copies of source records that other organisations imported first (under the
        // deployment's id, or under the reader's id before schema 12).
        var holders = new Dictionary<Guid, Guid>();
        foreach (var pending in batch.Where(p => !stored.ContainsKey(p.Entry.Report.Id)))
        {
            if (pending.Entry.SameRecordAs is { } first)
            {
                holders[pending.Entry.Report.Id] = first;
            }
            else if (pending.Entry.LegacyId is { } legacy && stored.TryGetValue(legacy, out var old) && old.OrganizationId != pending.Author.OrganizationId)
            {
                holders[pending.Entry.Report.Id] = legacy;
            }
        }

        var sameRecord = await SameRecordIncidentsAsync(db, holders.Values);
        // The reports of the incidents those are likely to join, so that a join rebuilds the summary without a query of its own.
        var linkedReports = await LinkedReportsAsync(db, fusion.Incidents.Values.Where(i => i.ReportCount < LargeIncident).Select(i => i.Id));
        // The business clock, as the change rows' times are: the change feed compares a link's time with its changes'.
        var now = _time.GetUtcNow().UtcDateTime;
        foreach (var pending in batch)
        {
            var report = pending.Entry.Report;
            if (pending.Entry.LegacyId is { } legacyId && stored.TryGetValue(legacyId, out var legacy) && legacy.OrganizationId == pending.Author.OrganizationId)
            {
                // This organisation imported the record before schema 12, under the reader's id: that is its copy, whoever
                // has taken the deployment's id for the record since (another organisation importing it after the upgrade).
                outcomes.Add((pending, Decide(legacy, storedIncidents.GetValueOrDefault(legacy.Id), report, pending.Author, sourceKeyed: true, pending.Entry.LegacyHash)));
            }
            else if (stored.TryGetValue(report.Id, out var existing))
            {
                outcomes.Add((pending, Decide(existing, storedIncidents.GetValueOrDefault(existing.Id), report, pending.Author, pending.Entry.SourceKeyed,
                    earlierInBatch: pending.Entry.GivenEarlierInFile)));
            }
            else if (added.TryGetValue(report.Id, out var first))
            {
                outcomes.Add((pending, Decide(first.Report, first.Link.IncidentId, report, pending.Author, pending.Entry.SourceKeyed, earlierInBatch: true)));
            }
            else if (pending.Entry.RefusedIfNew is { } refusal)
            {
                outcomes.Add((pending, new ReportIntake.Outcome.Invalid(refusal)));
            }
            else
            {
                db.Reports.Add(report);
                // A copy of a record another organisation imported from a curated dataset (which codes each event once) is
                // that record's incident, whatever the scorer says (it never joins two records of one dataset). Records of
                // other sources sharing an id (two organisations' GeoJSON files both numbering features from 1) are scored.
                var decision = holders.TryGetValue(report.Id, out var same) && sameRecord.TryGetValue(same, out var holder)
                    && holder.ExternalRef == report.ExternalRef && FusionFeatures.Dataset(report.ExternalRef) is not null
                    && holder.Incident.Status != IncidentStatus.Closed
                    ? new FusionEngine.Decision.SameRecord(holder.Incident, report.ExternalRef!)
                    : await _fusion.DecideAsync(db, report, fusion, id => incidents.TryGetValue(id, out var known) ? known.Incident : null, CancellationToken.None);
                var entry = pending.Entry;
                if ((decision switch { FusionEngine.Decision.Join j => j.Incident, FusionEngine.Decision.SameRecord r => r.Incident, _ => null }) is { } joined)
                {
                    // The report describes an open incident: link it with its scores and rebuild the summary from all its reports.
                    if (joined.ReportCount >= LargeIncident && !incidents.ContainsKey(joined.Id))
                    {
                        // A large incident grows from its summary: reading hundreds of reports on every join would not scale.
                        // Their figures are read once per batch and kept with those of the batch's joiners, which the
                        // store does not hold yet.
                        if (!largeFigures.TryGetValue(joined.Id, out var figures))
                        {
                            var linked = db.IncidentReports.Where(l => l.IncidentId == joined.Id).Select(l => l.ReportId);
                            var casualties = await db.Reports.AsNoTracking().Where(r => linked.Contains(r.Id))
                                .Select(r => new { r.KilledCivilianBest, r.KilledOtherBest, r.InjuredCivilianBest, r.InjuredOtherBest }).ToListAsync();
                            largeFigures[joined.Id] = figures = casualties
                                .Select(c => (IncidentSummary.Sum(c.KilledCivilianBest, c.KilledOtherBest), IncidentSummary.Sum(c.InjuredCivilianBest, c.InjuredOtherBest))).ToList();
                        }

                        IncidentSummary.Add(joined, report, figures);
                        figures.Add(IncidentSummary.Figures(report));
                        // Never back in time: a status change may have been stored since this batch took its time.
                        joined.UpdatedAt = now > joined.UpdatedAt ? now : joined.UpdatedAt;
                        joined.Causes.Add(report.Id);
                        var largeLink = Linked(db, decision, joined, report, now);
                        entry = entry with { Link = largeLink };
                        _fusion.Put(joined);
                        added[report.Id] = entry;
                        outcomes.Add((pending, new ReportIntake.Outcome.Created(report, largeLink.IncidentId)));
                        continue;
                    }

                    if (!incidents.TryGetValue(joined.Id, out var target))
                    {
                        // An incident fusion confirmed on its own (not among the prepared ones) costs a query for its reports.
                        target = (joined, linkedReports.Remove(joined.Id, out var reports)
                            ? reports
                            : (await LinkedReportsAsync(db, [joined.Id])).GetValueOrDefault(joined.Id) ?? []);
                        incidents[joined.Id] = target;
                    }

                    target.Reports.Add(report);
                    IncidentSummary.Rebuild(target.Incident, target.Reports);
                    target.Incident.UpdatedAt = now > target.Incident.UpdatedAt ? now : target.Incident.UpdatedAt;
                    target.Incident.Causes.Add(report.Id);
                    var link = Linked(db, decision, target.Incident, report, now);
                    entry = entry with { Link = link };
                    _fusion.Put(target.Incident);
                }
                else
                {
                    // Opened at the batch's time, as a report joining an incident is linked: an incident a report opened
                    // must not be told by its times (updatedAt, linkedAt, each later than the report's receivedAt when it
                    // joined) from one it joined whose other reports the viewer may not see.
                    entry.Incident.CreatedAt = entry.Incident.UpdatedAt = entry.Link.LinkedAt = now;
                    db.Incidents.Add(entry.Incident);
                    db.IncidentReports.Add(entry.Link);
                    incidents[entry.Incident.Id] = (entry.Incident, [report]);
                    _fusion.Put(entry.Incident);
                    if (decision is FusionEngine.Decision.Propose propose)
                    {
                        foreach (var (incidentId, score) in propose.Alternatives.Prepend((propose.IncidentId, propose.Score)))
                        {
                            db.FusionProposals.Add(new FusionProposal
                            {
                                Id = Guid.CreateVersion7(),
                                ReportId = report.Id,
                                IncidentId = incidentId,
                                Score = score.Total,
                                ScoreDetail = score.ToJson(),
                                CreatedAt = now,
                            });
                        }
                    }
                }

                added[report.Id] = entry;
                outcomes.Add((pending, new ReportIntake.Outcome.Created(report, entry.Link.IncidentId)));
            }
        }

        if (added.Count > 0)
        {
            await _chain.SaveAsync(db, added.Values.SelectMany(e => e.Audit).ToList(), CancellationToken.None,
                d => BulkInsert.FlushAsync(d, _feed, CancellationToken.None));
            // Committed: those anyone may read count towards the words' rarity (not before, so no failed batch counts).
            _fusion.Stored(added.Values.Select(e => e.Report), fusion);
        }

        foreach (var (pending, outcome) in outcomes)
        {
            pending.Done.TrySetResult(outcome);
        }
    }

    /// <summary>For each of <paramref name="reportIds"/> that is stored, its source record and the incident it is in (tracked: a copy may join it).</summary>
    private static async Task<Dictionary<Guid, (string? ExternalRef, Incident Incident)>> SameRecordIncidentsAsync(ConcordDb db, IEnumerable<Guid> reportIds)
    {
        var holders = new Dictionary<Guid, (string?, Incident)>();
        foreach (var chunk in reportIds.Distinct().Chunk(500))
        {
            var rows = await db.IncidentReports.Where(l => chunk.Contains(l.ReportId))
                .Join(db.Incidents, l => l.IncidentId, i => i.Id, (l, i) => new { l.ReportId, Incident = i })
                .Join(db.Reports, x => x.ReportId, r => r.Id, (x, r) => new { x.ReportId, r.ExternalRef, x.Incident }).ToListAsync();
            foreach (var row in rows)
            {
                holders[row.ReportId] = (row.ExternalRef, row.Incident);
            }
        }

        return holders;
    }

    /// <summary>The reports linked to each of <paramref name="incidentIds"/>, a few hundred incidents per query.</summary>
    private static async Task<Dictionary<Guid, List<Report>>> LinkedReportsAsync(ConcordDb db, IEnumerable<Guid> incidentIds)
    {
        var linked = new Dictionary<Guid, List<Report>>();
        foreach (var chunk in incidentIds.Chunk(500))
        {
            var rows = await db.IncidentReports.AsNoTracking().Where(l => chunk.Contains(l.IncidentId))
                .Join(db.Reports, l => l.ReportId, r => r.Id, (l, r) => new { l.IncidentId, Report = r })
                // In the order the store received them: the summary's ties (same time, same precision) go the same way in every view.
                .OrderBy(x => x.Report.Number).ToListAsync();
            foreach (var row in rows)
            {
                if (!linked.TryGetValue(row.IncidentId, out var reports))
                {
                    linked[row.IncidentId] = reports = [];
                }

                reports.Add(row.Report);
            }
        }

        return linked;
    }

    /// <summary>Links a report to the incident fusion chose, with its scores, or to the incident of another copy of its source record.</summary>
    private static IncidentReport Linked(ConcordDb db, FusionEngine.Decision decision, Incident incident, Report report, DateTime now)
    {
        var join = decision as FusionEngine.Decision.Join;
        var link = new IncidentReport
        {
            IncidentId = incident.Id,
            ReportId = report.Id,
            Contribution = join?.Score.Total ?? 1.0,
            LinkedAt = now,
            Decision = join is null ? LinkDecisions.SameRecord : LinkDecisions.Fused,
            ScoreDetail = join?.Score.ToJson() ?? SourceIds.SameRecordDetail(report.ExternalRef!),
        };
        db.IncidentReports.Add(link);
        return link;
    }

    /// <summary>
    /// A report with this id exists: a retry of the same request by the same author gets it back; anything else conflicts.
    /// For an imported report keyed by its source record, the author's organisation stands for the author (a colleague
    /// importing the same file skips what is there), and another organisation's copy is a conflict the intake resolves
    /// by giving the report an id of its organisation's own.
    /// </summary>
    /// <param name="earlierInBatch">
    /// <paramref name="existing"/> is not stored yet: a row earlier in the same batch (an import's file giving the id twice).
    /// </param>
    internal static ReportIntake.Outcome Decide(Report existing, Guid? incidentId, Report candidate, Viewer author, bool sourceKeyed = false, string? candidateHash = null,
        bool earlierInBatch = false)
    {
        if (sourceKeyed && existing.OrganizationId != author.OrganizationId)
        {
            return new ReportIntake.Outcome.Conflict($"the id {candidate.Id} is already used by another report") { HeldByAnotherOrganization = true };
        }

        var owner = sourceKeyed ? existing.OrganizationId == author.OrganizationId : existing.MemberId == author.MemberId;
        if (!owner || !Marking.AllowsRead(existing, author))
        {
            return new ReportIntake.Outcome.Conflict($"the id {candidate.Id} is already used by another report");
        }

        if (existing.RequestHash == (candidateHash ?? candidate.RequestHash))
        {
            return new ReportIntake.Outcome.Existing(existing, incidentId);
        }

        // An import run again with other marking options (or the same communities in another order) brings the same
        // record: it is already imported, under the marking it was stored with (a marking changes by a release, not by
        // importing again).
        var changed = sourceKeyed ? Changed(existing, candidate).ToList() : [];
        if (sourceKeyed && changed.All(c => c == "marking"))
        {
            return new ReportIntake.Outcome.Existing(existing, incidentId);
        }

        // Reports are what a source said when it said it, never edited: a record the source has revised since it was
        // imported keeps its stored report, and the importer is told what the source changed.
        var parts = string.Join(", ", changed.Where(c => c != "marking"));
        return sourceKeyed
            ? new ReportIntake.Outcome.Conflict(earlierInBatch
                ? $"the same record is given earlier in this file with other content ({parts}); the first is kept"
                : $"changed at the source since it was imported ({parts}), or given twice in this file; the stored report is kept, as reports are not edited")
            : new ReportIntake.Outcome.Conflict($"report {candidate.Id} already exists with a different body; a retry must send the same body");
    }

    /// <summary>The parts of a report that differ between what is stored and what came again: names of the API's fields.</summary>
    internal static IEnumerable<string> Changed(Report stored, Report again)
    {
        // PostgreSQL keeps microseconds (rounding times before 2000 up, later ones down), a request may give ticks of a
        // tenth of one: within a microsecond is the same time once stored.
        if (Math.Abs(stored.ObservedAt.Ticks - again.ObservedAt.Ticks) >= 10 || stored.ObservedPrecision != again.ObservedPrecision)
        {
            yield return "observedAt";
        }

        if (stored.Latitude != again.Latitude || stored.Longitude != again.Longitude || stored.LocationPrecisionMeters != again.LocationPrecisionMeters)
        {
            yield return "location";
        }

        if (stored.Category != again.Category)
        {
            yield return "category";
        }

        if ((stored.KilledCivilianLow, stored.KilledCivilianBest, stored.KilledCivilianHigh, stored.KilledOtherLow, stored.KilledOtherBest, stored.KilledOtherHigh)
            != (again.KilledCivilianLow, again.KilledCivilianBest, again.KilledCivilianHigh, again.KilledOtherLow, again.KilledOtherBest, again.KilledOtherHigh)
            || (stored.InjuredCivilianLow, stored.InjuredCivilianBest, stored.InjuredCivilianHigh, stored.InjuredOtherLow, stored.InjuredOtherBest, stored.InjuredOtherHigh)
            != (again.InjuredCivilianLow, again.InjuredCivilianBest, again.InjuredCivilianHigh, again.InjuredOtherLow, again.InjuredOtherBest, again.InjuredOtherHigh))
        {
            yield return "casualties";
        }

        if (stored.Narrative != again.Narrative || stored.NarrativeLanguage != again.NarrativeLanguage)
        {
            yield return "narrative";
        }

        if (stored.Actors != again.Actors)
        {
            yield return "actors";
        }

        if (stored.SourceReliability != again.SourceReliability || stored.SourceCredibility != again.SourceCredibility)
        {
            yield return "source grading";
        }

        if (stored.ProtectedSource != again.ProtectedSource)
        {
            yield return "source";
        }

        if (stored.Classification != again.Classification || stored.ReleasableTo != again.ReleasableTo || stored.Caveats != again.Caveats || stored.Tlp != again.Tlp)
        {
            yield return "marking";
        }
    }
}

using Concord.Server.Data;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Fusion;

/// <summary>
/// Decides, for each new report, whether it describes an open incident: above <see cref="FusionScorer.JoinThreshold"/> it
/// joins the best-scoring one, in the grey band it opens its own incident and the match is proposed to an analyst,
/// below it opens its own. Called by the report writer, one report at a time; the index of open incidents is loaded
/// from the store on first use and after a failed write; what changes incidents outside the writer (status changes,
/// releases, an analyst's merge, split or accepted proposal) tells it which (<see cref="Changed"/>, <see cref="Removed"/>).
/// </summary>
internal sealed class FusionEngine(ILogger<FusionEngine> logger)
{
    private readonly FusionIndex _index = new();
    private readonly WordRarity _rarity = new();
    private volatile bool _stale = true;

    internal abstract record Decision
    {
        public sealed record Join(Incident Incident, FusionScore Score) : Decision;

        /// <summary>
        /// The best incident (in the grey band, or on a near-tie) and the others within <see cref="FusionScorer.Margin"/>
        /// of it (at most <see cref="MaxAlternatives"/>, best first): each becomes a proposal, so that the analyst sees
        /// the incidents the report fits almost equally well side by side.
        /// </summary>
        public sealed record Propose(Guid IncidentId, FusionScore Score, IReadOnlyList<(Guid IncidentId, FusionScore Score)> Alternatives) : Decision;

        public sealed record Open : Decision;

        /// <summary>Another organisation's copy of the report's source record is in this incident (decided by the writer, not scored).</summary>
        public sealed record SameRecord(Incident Incident, string ExternalRef) : Decision;
    }

    /// <summary>The index no longer matches the store (a write failed): reload before the next decision.</summary>
    public void Invalidate() => _stale = true;

    /// <summary>Incidents changed outside the writer, in order: the incident as it is now, or none when it was removed.</summary>
    private readonly System.Collections.Concurrent.ConcurrentQueue<(Guid Id, Incident? Now)> _changed = new();

    /// <summary>
    /// An incident changed outside the writer (its status moved, a release joined or opened it, an analyst merged into
    /// it, split it or moved a report in or out): the index takes it in before the next decision, open ones as they are
    /// now, closed ones out. Pass a copy the caller will not change. (Reloading every open incident for one correction
    /// would cost a large store seconds, with every report waiting.)
    /// </summary>
    public void Changed(Incident incident) => _changed.Enqueue((incident.Id, incident));

    /// <summary>An incident an analyst's merge or move removed: it leaves the index before the next decision.</summary>
    public void Removed(Guid incidentId) => _changed.Enqueue((incidentId, null));

    public int Indexed => _index.Count;

    /// <summary>How rare each word is among the reports anyone may read (provenance scores with it too).</summary>
    public WordRarity Rarity => _rarity;

    /// <summary>Reports just stored (committed): those anyone may read count towards the words' rarity (with the words <paramref name="batch"/> read).</summary>
    public void Stored(IEnumerable<Report> reports, Batch? batch = null) =>
        _rarity.Stored(reports, batch is null ? null : r => batch.Features.TryGetValue(r, out var features) ? features.Words : null);

    /// <summary>Decisions taken and the time they took (for benchmarks and operations).</summary>
    public (long Decisions, TimeSpan Elapsed, long Joined, long Proposed) Statistics => (_decisions, TimeSpan.FromTicks(_elapsed), _joined, _proposed);

    private long _decisions;
    private long _elapsed;
    private long _joined;
    private long _proposed;

    /// <summary>What the decisions of one writer batch share: each report's features, computed once, and the incidents read for them.</summary>
    internal sealed class Batch
    {
        /// <summary>
        /// By report (the object, not its id: two reports of one id in a batch, of which the writer stores one, each keep
        /// their own features, so that neither is scored, or counted, with the other's words).
        /// </summary>
        public Dictionary<Report, FusionFeatures> Features { get; } = new(ReferenceEqualityComparer.Instance);

        public Dictionary<Guid, Incident> Incidents { get; } = [];
    }

    /// <summary>
    /// Prepares the decisions for a batch of new reports: computes their features and reads from the store, in one query
    /// per few hundred, the open incident each report fits best according to the index, so that deciding confirms matches
    /// in memory instead of with a query per report. Incidents opened earlier in the same batch are not among them (the
    /// caller knows those); a match the read did not confirm is looked up on its own.
    /// </summary>
    public async Task<Batch> PrepareAsync(ConcordDb db, IEnumerable<Report> reports, CancellationToken cancellationToken)
    {
        await EnsureLoadedAsync(db, cancellationToken);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var batch = new Batch();
        var best = new HashSet<Guid>();
        foreach (var report in reports)
        {
            var features = FusionFeatures.Of(report);
            batch.Features[report] = features;
            // The best match, and those within the margin of it (a tie may sort either way). Each decision scores the
            // report again: by then incidents opened or joined earlier in the batch have changed the index.
            var scored = Scored(features);
            var top = scored.Count == 0 ? 0 : scored.Max(c => c.Score.Total);
            foreach (var (id, score) in scored)
            {
                if (score.Total >= top - FusionScorer.Margin)
                {
                    best.Add(id);
                }
            }
        }

        foreach (var chunk in best.Chunk(500))
        {
            foreach (var incident in await db.Incidents.Where(i => chunk.Contains(i.Id)).ToListAsync(cancellationToken))
            {
                batch.Incidents[incident.Id] = incident;
            }
        }

        _elapsed += System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks;
        return batch;
    }

    /// <summary>
    /// The decision for <paramref name="report"/>, one of the reports <paramref name="batch"/> was prepared for.
    /// <paramref name="local"/> resolves incidents created or loaded earlier in the same batch (not yet in the store);
    /// <paramref name="batch"/> holds those read by <see cref="PrepareAsync"/>; any other match is confirmed in the store,
    /// since the index may be stale.
    /// </summary>
    public async Task<Decision> DecideAsync(ConcordDb db, Report report, Batch batch, Func<Guid, Incident?> local, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var decision = await DecideCoreAsync(db, report, batch, local, cancellationToken);
        _decisions++;
        _elapsed += System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks;
        _joined += decision is Decision.Join ? 1 : 0;
        _proposed += decision is Decision.Propose ? 1 : 0;
        return decision;
    }

    private List<(Guid Id, FusionScore Score)> Scored(FusionFeatures features)
    {
        var scored = new List<(Guid Id, FusionScore Score)>();
        foreach (var entry in _index.Near(features))
        {
            if (FusionScorer.Score(features, entry.Features, _rarity) is { Total: >= FusionScorer.ProposeThreshold } score)
            {
                scored.Add((entry.Id, score));
            }
        }

        return scored;
    }

    /// <summary>The most incidents proposed beside the best one on a near-tie.</summary>
    public const int MaxAlternatives = 2;

    private async Task<Decision> DecideCoreAsync(ConcordDb db, Report report, Batch batch, Func<Guid, Incident?> local, CancellationToken cancellationToken)
    {
        // A failed write may have marked the index stale since the batch was prepared.
        await EnsureLoadedAsync(db, cancellationToken);
        var scored = Scored(batch.Features.GetValueOrDefault(report) ?? FusionFeatures.Of(report));
        scored.Sort((a, b) => b.Score.Total.CompareTo(a.Score.Total));
        for (var n = 0; n < scored.Count; n++)
        {
            var (id, score) = scored[n];
            if (await OpenAsync(db, id, batch, local, cancellationToken) is not { } incident)
            {
                continue;
            }

            // Two incidents fit almost equally well: do not guess, ask, naming each (an incident the index still held
            // after it was closed or removed is no alternative, and makes no tie).
            var alternatives = new List<(Guid IncidentId, FusionScore Score)>();
            for (var m = n + 1; m < scored.Count && alternatives.Count < MaxAlternatives && score.Total - scored[m].Score.Total < FusionScorer.Margin; m++)
            {
                if (await OpenAsync(db, scored[m].Id, batch, local, cancellationToken) is not null)
                {
                    alternatives.Add(scored[m]);
                }
            }

            return score.Total >= FusionScorer.JoinThreshold && alternatives.Count == 0 ? new Decision.Join(incident, score) : new Decision.Propose(id, score, alternatives);
        }

        return new Decision.Open();
    }

    /// <summary>The incident the index matched, confirmed open; null (and out of the index) when it was closed or removed since.</summary>
    private async Task<Incident?> OpenAsync(ConcordDb db, Guid id, Batch batch, Func<Guid, Incident?> local, CancellationToken cancellationToken)
    {
        var incident = local(id) ?? batch.Incidents.GetValueOrDefault(id) ?? await db.Incidents.SingleOrDefaultAsync(i => i.Id == id, cancellationToken);
        if (incident is null || incident.Status == IncidentStatus.Closed)
        {
            _index.Remove(id);
            return null;
        }

        return incident;
    }

    /// <summary>Records an incident's new state (after it was opened or a report joined it).</summary>
    public void Put(Incident incident) => _index.Put(incident);

    private async Task EnsureLoadedAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        if (_stale)
        {
            _changed.Clear();
            await LoadAsync(db, cancellationToken);
        }

        while (_changed.TryDequeue(out var change))
        {
            if (change.Now is not { Status: not IncidentStatus.Closed } incident)
            {
                _index.Remove(change.Id);
            }
            else
            {
                _index.Put(incident);
            }
        }
    }

    private async Task LoadAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        _stale = false;
        _index.Clear();
        try
        {
            // Only the columns the features are made of: a million open incidents read whole took about 10 s.
            var open = db.Incidents.AsNoTracking().Where(i => i.Status != IncidentStatus.Closed)
                .Select(i => new { i.Id, i.Latitude, i.Longitude, i.LocationPrecisionMeters, i.StartsAt, i.EndsAt, i.Category, i.Actors, i.Keywords, i.Datasets, i.KilledBest });
            await foreach (var i in open.AsAsyncEnumerable().WithCancellation(cancellationToken))
            {
                _index.Put(i.Id, FusionFeatures.OfIncident(i.Latitude, i.Longitude, i.LocationPrecisionMeters, i.StartsAt, i.EndsAt, i.Category, i.Actors, i.Keywords, i.Datasets, i.KilledBest));
            }

            await _rarity.Load(db.Reports.AsNoTracking()
                .Where(Access.Visibility.OpenToAll<Report>())
                .Select(r => r.Narrative).AsAsyncEnumerable(), cancellationToken);
        }
        catch
        {
            _stale = true;
            throw;
        }

        logger.LogInformation("fusion index loaded: {Count} open incidents", _index.Count);
    }
}

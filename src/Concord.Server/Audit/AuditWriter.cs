using System.Threading.Channels;
using Concord.Server.Access;
using Concord.Server.Data;

namespace Concord.Server.Audit;

/// <summary>
/// Records entries that do not come with a write of their own (reads of classified records), batching whatever is queued
/// into one transaction. Callers wait until their entry is stored: the answer leaves only once the access is on record.
/// </summary>
internal sealed class AuditWriter : IAsyncDisposable
{
    private const int MaxBatch = 512;

    /// <summary>Entries to write, each with the task its caller waits on (none for a posted entry).</summary>
    private readonly Channel<(AuditEntry Entry, TaskCompletionSource? Done)> _queue =
        Channel.CreateBounded<(AuditEntry, TaskCompletionSource?)>(new BoundedChannelOptions(50_000) { SingleReader = true });

    private readonly AsyncServiceScope _scope;
    private readonly ConcordDb _db;
    private readonly AuditChain _chain;
    private readonly ILogger<AuditWriter> _logger;
    private readonly Hosting.FailureRun _failures;
    private readonly Task _loop;

    public AuditWriter(IServiceScopeFactory scopes, AuditChain chain, ILogger<AuditWriter> logger)
    {
        _chain = chain;
        _logger = logger;
        _failures = new Hosting.FailureRun(logger, "recording audit entries");
        // One unit of work for the writer's life, taken now, while the service container is surely there: the queue is
        // drained when the container is disposed (at shutdown), and a scope asked of it then is refused, which lost every
        // entry still queued (a failed sign-in posted by one of the last requests).
        _scope = scopes.CreateAsyncScope();
        _db = _scope.ServiceProvider.GetRequiredService<ConcordDb>();
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Records what a viewer read (<see cref="Audits.Read"/>): nothing for unclassified records without caveats, else every id.</summary>
    public Task RecordReadAsync<TId>(Viewer viewer, string entity, IReadOnlyCollection<(TId Id, int Classification, long Caveats)> records, string path, DateTime at,
        CancellationToken cancellationToken) =>
        RecordAllAsync(Audits.Read(viewer, entity, records, path, at), cancellationToken);

    /// <summary>Records figures a viewer was given (<see cref="Audits.Aggregate"/>): nothing when no classified or caveated record went into them.</summary>
    public Task RecordAggregateAsync(Viewer viewer, string entity, IEnumerable<(int Level, long Caveats, long Count)> counted, string path, DateTime at, CancellationToken cancellationToken) =>
        RecordAllAsync(Audits.Aggregate(viewer, entity, counted, path, at), cancellationToken);

    /// <summary>As above, for an API answer: named by the request's path and query, and given up with the request.</summary>
    public Task RecordAggregateAsync(Viewer viewer, string entity, IEnumerable<(int Level, long Caveats, long Count)> counted, HttpContext context, DateTime at) =>
        RecordAggregateAsync(viewer, entity, counted, context.Request.Path + context.Request.QueryString, at, context.RequestAborted);

    /// <summary>Stores the entries of one read, all queued before any is awaited, so that the writer stores them in one batch.</summary>
    private async Task RecordAllAsync(IEnumerable<AuditEntry> entries, CancellationToken cancellationToken)
    {
        var recorded = new List<Task>();
        foreach (var entry in entries)
        {
            recorded.Add(await EnqueueAsync(entry, cancellationToken));
        }

        await Task.WhenAll(recorded).WaitAsync(cancellationToken);
    }

    public async Task RecordAsync(AuditEntry entry, CancellationToken cancellationToken) =>
        await (await EnqueueAsync(entry, cancellationToken)).WaitAsync(cancellationToken);

    /// <summary>
    /// Queues an entry and returns at once, without waiting for it to be stored (a failure is logged, as every failed batch
    /// is): for entries whose writing must not hold up, nor be timed by, the request that made them.
    /// </summary>
    public void Post(AuditEntry entry)
    {
        if (!_queue.Writer.TryWrite((entry, null)))
        {
            Lost(entry, "the audit queue is full or closed");
        }
    }

    private void Lost(AuditEntry entry, string why) =>
        _logger.LogError("{Why}: {Action} of {Entity} {Id} by member {Member} at {At:O} ({Detail}) was not recorded",
            why, entry.Action, entry.Entity, entry.EntityId, entry.MemberId, entry.At, entry.Detail);

    /// <summary>Queues an entry; the task returned ends once it is stored.</summary>
    private async Task<Task> EnqueueAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.Writer.WriteAsync((entry, done), cancellationToken);
        return done.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _closing = true;
        _queue.Writer.TryComplete();
        await _loop;
        await _scope.DisposeAsync();
    }

    /// <summary>How long a failed batch waits before each further try (a store busy for a moment, a connection dropped).</summary>
    internal static readonly TimeSpan[] Retries = [TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)];

    /// <summary>
    /// Entries nobody waits for (<see cref="Post"/>: failed sign-ins) kept after their batch failed every try: tried again
    /// with the next batch, or alone after <see cref="_carryDelay"/>, until the store takes them. A store that cannot be
    /// written for minutes (a full disk, a failover) must not wipe the trace of the passwords guessed meanwhile. Held to
    /// <see cref="MaxCarried"/>; past it, each entry given up is logged whole.
    /// </summary>
    private readonly List<AuditEntry> _carried = [];

    internal const int MaxCarried = 10_000;

    /// <summary>The longest wait between tries of carried entries when nothing else is written.</summary>
    internal static readonly TimeSpan LastCarryDelay = TimeSpan.FromSeconds(30);

    private TimeSpan _carryDelay = TimeSpan.FromSeconds(1);

    private volatile bool _closing;

    /// <summary>When the last try to write a batch failed (<see cref="Environment.TickCount64"/>), or 0 since one succeeded.</summary>
    private long _failedAt;

    /// <summary>How long a failure says the audit cannot be written when nothing is written after it (no try, no success).</summary>
    internal static readonly TimeSpan FailureShown = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The last try to write a batch failed, less than <see cref="FailureShown"/> ago, and none has succeeded since: reads of
    /// classified records and sign-ins fail meanwhile. Not for ever: with nobody sent to a node that says so, no write
    /// would come to show that the store is back.
    /// </summary>
    public bool Failing => Interlocked.Read(ref _failedAt) is var at and not 0 && Environment.TickCount64 - at < FailureShown.TotalMilliseconds;

    /// <summary>Whether there is more to write: queued entries, or carried ones once their wait has passed; false once closed and none is carried.</summary>
    private async Task<bool> WaitForWorkAsync()
    {
        if (_carried.Count == 0)
        {
            return await _queue.Reader.WaitToReadAsync();
        }

        using var wait = new CancellationTokenSource(_carryDelay);
        try
        {
            // Closed (at shutdown) with entries still carried: one last try.
            await _queue.Reader.WaitToReadAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
        }

        return true;
    }

    private async Task RunAsync()
    {
        var db = _db;
        var batch = new List<(AuditEntry Entry, TaskCompletionSource? Done)>(MaxBatch);
        while (await WaitForWorkAsync())
        {
            // Stopping: carried entries are given up once a batch has failed every try, so that a store that stays down does
            // not hold the shutdown (thousands carried, a batch at a time) past what a service manager waits for; their loss
            // is logged.
            var closing = _closing;
            // Carried entries take half a batch at most: entries a request waits for still go in, and fail in seconds
            // rather than wait behind thousands carried while the store is down.
            var carried = Math.Min(_carried.Count, MaxBatch / 2);
            batch.AddRange(_carried.GetRange(0, carried).Select(e => (e, (TaskCompletionSource?)null)));
            _carried.RemoveRange(0, carried);
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            // Tried again a few times before its waiters are failed: an entry posted without a waiter (a failed sign-in,
            // written once its answer has gone) has nobody to try it again, and was lost at the first failure.
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await _chain.SaveAsync(db, batch.Select(b => b.Entry).ToList(), CancellationToken.None);
                    db.ChangeTracker.Clear();
                    foreach (var (_, done) in batch)
                    {
                        done?.TrySetResult();
                    }

                    _carryDelay = TimeSpan.FromSeconds(1);
                    Interlocked.Exchange(ref _failedAt, 0);
                    _failures.Succeeded();
                    break;
                }
                catch (Exception e)
                {
                    db.ChangeTracker.Clear();
                    Interlocked.Exchange(ref _failedAt, Environment.TickCount64);
                    // Every batch of an outage fails: the first failure is logged whole, the rest summed up once a minute.
                    var news = _failures.Failed(e);
                    if (attempt < Retries.Length)
                    {
                        if (news)
                        {
                            _logger.LogWarning(e, "recording {Count} audit entries failed; trying again in {Delay}", batch.Count, Retries[attempt]);
                        }

                        await Task.Delay(Retries[attempt]);
                        continue;
                    }

                    if (news)
                    {
                        _logger.LogError(e, "recording {Count} audit entries failed", batch.Count);
                    }

                    foreach (var (entry, done) in batch)
                    {
                        // Nobody waits for a posted entry (its request has answered): it is kept for a later try.
                        if (done is not null)
                        {
                            done.TrySetException(e);
                        }
                        else if (closing)
                        {
                            Lost(entry, "the server stops and the audit cannot be written");
                        }
                        else if (_carried.Count < MaxCarried)
                        {
                            _carried.Add(entry);
                        }
                        else
                        {
                            Lost(entry, $"{MaxCarried} entries wait for the audit to be writable again");
                        }
                    }

                    if (closing)
                    {
                        foreach (var entry in _carried)
                        {
                            Lost(entry, "the server stops and the audit cannot be written");
                        }

                        _carried.Clear();
                    }

                    _carryDelay = _carryDelay * 2 < LastCarryDelay ? _carryDelay * 2 : LastCarryDelay;
                    break;
                }
            }

            batch.Clear();
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Concord.Server.Realtime;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Concord.Server.Data;

/// <summary>
/// Appends a row to <c>changes</c> for every written feed entity, inside the same SaveChanges and so the same transaction:
/// no handler has to remember to, and a write without its change row cannot happen.
/// </summary>
internal sealed class ChangeFeedInterceptor(TimeProvider time, ChangeSignal signal) : SaveChangesInterceptor
{
    // Outside an explicit transaction, SaveChanges has committed by now; inside one, the commit interceptor pulses.
    public override int SavedChanges(SaveChangesCompletedEventData eventData, int result)
    {
        if (eventData.Context?.Database.CurrentTransaction is null)
        {
            signal.Pulse();
        }

        return result;
    }

    public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
    {
        if (eventData.Context?.Database.CurrentTransaction is null)
        {
            signal.Pulse();
        }

        return ValueTask.FromResult(result);
    }

    public override InterceptionResult<int> SavingChanges(DbContextEventData eventData, InterceptionResult<int> result)
    {
        AppendChanges(eventData.Context);
        return result;
    }

    public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        AppendChanges(eventData.Context);
        return ValueTask.FromResult(result);
    }

    private void AppendChanges(DbContext? context)
    {
        if (context is null)
        {
            return;
        }

        var now = time.GetUtcNow().UtcDateTime;
        var changes = new List<Change>();
        foreach (var entry in context.ChangeTracker.Entries<IFeedEntity>())
        {
            var operation = entry.State switch
            {
                EntityState.Added => "created",
                EntityState.Modified => "updated",
                EntityState.Deleted => "deleted",
                _ => null,
            };
            if (operation is not null)
            {
                changes.Add(For(entry.Entity, operation, now, PriorMarking(entry)));
            }
        }

        context.Set<Change>().AddRange(changes);
    }

    /// <summary>The change rows for records written outside SaveChanges (<see cref="BulkInsert"/>): "created" or "updated".</summary>
    public List<Change> Rows(IEnumerable<IFeedEntity> written, string operation)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return [.. written.Select(e => For(e, operation, now, null))];
    }

    /// <summary>The change rows of records updated outside SaveChanges (the writer's joined incidents), with the markings they had.</summary>
    public List<Change> Updated(IEnumerable<EntityEntry> updated)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return [.. updated.Select(e => For((IFeedEntity)e.Entity, "updated", now, PriorMarking(e)))];
    }

    /// <summary>The marking an updated record had before this write, when the write changes it.</summary>
    private static (int Classification, string ReleasableTo, long Caveats)? PriorMarking(EntityEntry entry)
    {
        if (entry.State != EntityState.Modified || entry.Entity is not Access.IMarked)
        {
            return null;
        }

        var classification = entry.Property(nameof(Access.IMarked.Classification));
        var releasableTo = entry.Property(nameof(Access.IMarked.ReleasableTo));
        var caveats = entry.Property(nameof(Access.IMarked.Caveats));
        return Equals(classification.OriginalValue, classification.CurrentValue) && Equals(releasableTo.OriginalValue, releasableTo.CurrentValue)
            && Equals(caveats.OriginalValue, caveats.CurrentValue)
            ? null
            : ((int)classification.OriginalValue!, (string)releasableTo.OriginalValue!, (long)caveats.OriginalValue!);
    }

    /// <summary>
    /// The change row of one write, naming the reports that caused it (an incident opened for them, or joined or left by
    /// them; for a deleted incident, the reports it held); the causes are used up.
    /// </summary>
    private static Change For(IFeedEntity entity, string operation, DateTime at, (int Classification, string ReleasableTo, long Caveats)? prior)
    {
        var causes = entity.Causes.Count + entity.Departed.Count > 0
            ? Access.Releasability.Encode(entity.Causes.Select(c => c.ToString("D")).Concat(entity.Departed.Select(d => Change.DepartedMark + d.ToString("D"))))
            : null;
        entity.Causes.Clear();
        entity.Departed.Clear();
        return new()
        {
            Entity = entity.FeedName,
            EntityId = entity.Id,
            Operation = operation,
            At = at,
            Causes = causes,
            PriorClassification = prior?.Classification,
            PriorReleasableTo = prior?.ReleasableTo,
            PriorCaveats = prior?.Caveats,
        };
    }
}

/// <summary>
/// Reads the change feed in sequence order for those who follow it with a cursor (the API, live pushes, TAK streams, the
/// incident router). On PostgreSQL a sequence number is drawn when a row is inserted, not when its transaction commits,
/// so a later number can become visible before an earlier one: a reader that moved its cursor past the gap would never
/// see the earlier row. A window therefore ends before the first gap that a transaction may still fill. A gap is known
/// to be final (a transaction that rolled back: a refused save, a conflict, a crash) once the transaction that drew its
/// number has ended, which PostgreSQL's transaction ids tell (see <see cref="ReadHeldAsync"/>); and whatever they say,
/// once the row after the gap was written more than <see cref="GapGrace"/> ago. SQLite has one writer at a time, whose
/// rows are numbered and committed in order: no gap there is ever filled later.
/// </summary>
internal static class ChangeWindows
{
    /// <summary>Longer than any write transaction takes; a reader waits at most this long behind a rolled-back write.</summary>
    public static readonly TimeSpan GapGrace = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long after a gap is first seen a transaction id is drawn to judge it by. A transaction draws its number a
    /// moment before it is given its own transaction id (in the same statement); by this long after, it has it.
    /// </summary>
    public static readonly TimeSpan GapNotice = TimeSpan.FromMilliseconds(200);

    /// <summary>Gaps seen in each store by any reader of this process, by the first number missing.</summary>
    private static readonly ConcurrentDictionary<(string Store, long Missing), Gap> Gaps = new();

    /// <summary>Up to <paramref name="limit"/> changes after <paramref name="after"/> that no earlier change can still join.</summary>
    public static async Task<List<Change>> ReadAsync(ConcordDb db, long after, int limit, DateTime now, CancellationToken cancellationToken) =>
        (await ReadHeldAsync(db, after, limit, now, cancellationToken)).Changes;

    /// <summary>
    /// As <see cref="ReadAsync"/>, and whether the window ends before changes already committed that wait on an earlier
    /// write still in progress (or a gap not yet judged): a reader then reads again shortly rather than think itself
    /// at the end.
    /// </summary>
    /// <remarks>
    /// How a gap is judged on PostgreSQL. The transaction holding it drew its number before the number after the gap, so
    /// before the gap was first seen; <see cref="GapNotice"/> later it has a transaction id. A transaction id drawn then
    /// (<c>pg_current_xact_id()</c>, in a statement of its own) is above every id given before it, the holder's too. Once
    /// the oldest transaction still running in this database (<see cref="OldestRunningAsync"/>) is at or past that id, the holder has ended; the
    /// oldest running is read before the window is read again, so a holder that committed meanwhile has its row in that
    /// read. (A snapshot's <c>xmax</c> would not do: it is one past the last transaction to have ended, and a running one
    /// may hold it.) Readers run outside transactions of their own, on the primary; the feed's sequence keeps its default
    /// cache of 1, so numbers are drawn in order across connections.
    /// </remarks>
    public static async Task<(List<Change> Changes, bool Held)> ReadHeldAsync(ConcordDb db, long after, int limit, DateTime now, CancellationToken cancellationToken)
    {
        var window = await ReadWindowAsync(db, after, limit, cancellationToken);
        if (db.Database.IsSqlite())
        {
            return (window, false);
        }

        var settled = Settled(window, after, now);
        if (settled.Count == window.Count)
        {
            return (window, false);
        }

        if (db.Database.CurrentTransaction is not null)
        {
            // Inside a transaction of its own a reader would judge by its own snapshot and hold back the oldest running id:
            // only age settles gaps there.
            return (settled, true);
        }

        var store = db.Database.GetConnectionString() ?? "";
        ForgetOld();
        var gaps = Missing(window, after, now).Select(missing => Gaps.AddOrUpdate((store, missing), _ => new Gap(), (_, gap) => gap.Old ? new Gap() : gap)).ToList();
        var due = gaps.Where(g => g.Due).ToList();
        if (due.Count > 0)
        {
            var boundary = await NewTransactionIdAsync(db, cancellationToken);
            foreach (var gap in due)
            {
                gap.Judge(boundary);
            }
        }

        var oldestRunning = await OldestRunningAsync(db, cancellationToken);
        window = await ReadWindowAsync(db, after, limit, cancellationToken);
        var ended = Missing(window, after, now)
            .Where(missing => Gaps.TryGetValue((store, missing), out var gap) && gap.EndedBy(oldestRunning))
            .ToHashSet();
        settled = Settled(window, after, now, ended);
        return (settled, settled.Count < window.Count);
    }

    /// <summary>
    /// Where a follower with nobody to tell may move its cursor without skipping anything it must tell later: the last change
    /// after <paramref name="after"/> before the first gap a running transaction may still fill (on SQLite, the end of the
    /// feed). A bare maximum of the feed on PostgreSQL could pass such a gap, and a listener who joined afterwards would never
    /// hear of the change that fills it. Held: the end stops before committed changes waiting on a gap (read again soon).
    /// Behind: <paramref name="windows"/> windows were read and the feed goes on (move again at once). A follower without a
    /// cursor yet (<paramref name="after"/> below 0) starts from the last change older than <see cref="GapGrace"/>, every gap
    /// before which is settled.
    /// </summary>
    public static async Task<(long End, bool Held, bool Behind)> SettledEndAsync(ConcordDb db, long after, DateTime now, CancellationToken cancellationToken, int windows = 10)
    {
        if (db.Database.IsSqlite())
        {
            return (await db.Changes.MaxAsync(c => (long?)c.Sequence, cancellationToken) ?? Math.Max(after, 0), false, false);
        }

        if (after < 0)
        {
            // From the end of the feed backwards (its key), to the first change old enough: the young ones only are read.
            var settled = now - GapGrace;
            after = await db.Changes.OrderByDescending(c => c.Sequence).Where(c => c.At < settled).Select(c => (long?)c.Sequence).FirstOrDefaultAsync(cancellationToken) ?? 0;
        }

        const int Limit = 10_000;
        for (var read = 0; read < windows; read++)
        {
            var (window, held) = await ReadHeldAsync(db, after, Limit, now, cancellationToken);
            after = window.Count > 0 ? window[^1].Sequence : after;
            if (held || window.Count < Limit)
            {
                return (after, held, false);
            }
        }

        return (after, false, true);
    }

    /// <summary>The start of <paramref name="window"/> up to its first gap that may still be filled (one whose first missing number is not in <paramref name="ended"/>).</summary>
    internal static List<Change> Settled(List<Change> window, long after, DateTime now, IReadOnlySet<long>? ended = null)
    {
        foreach (var (index, missing) in Unsettled(window, after, now))
        {
            if (ended?.Contains(missing) != true)
            {
                return window[..index];
            }
        }

        return window;
    }

    private static Task<List<Change>> ReadWindowAsync(ConcordDb db, long after, int limit, CancellationToken cancellationToken) =>
        db.Changes.AsNoTracking().Where(c => c.Sequence > after).OrderBy(c => c.Sequence).Take(limit).ToListAsync(cancellationToken);

    /// <summary>The first missing number of each gap of <paramref name="window"/> that its age alone does not settle, in order.</summary>
    private static IEnumerable<long> Missing(List<Change> window, long after, DateTime now) => Unsettled(window, after, now).Select(g => g.Missing);

    /// <summary>Each gap its age alone does not settle: the index of the row after it and its first missing number, in order.</summary>
    private static IEnumerable<(int Index, long Missing)> Unsettled(List<Change> window, long after, DateTime now)
    {
        var expected = after + 1;
        for (var i = 0; i < window.Count; i++)
        {
            if (window[i].Sequence != expected && now - window[i].At < GapGrace)
            {
                yield return (i, expected);
            }

            expected = window[i].Sequence + 1;
        }
    }

    /// <summary>Gaps of stores gone, or passed by every reader long ago, are forgotten.</summary>
    private static void ForgetOld()
    {
        if (Gaps.Count > 1_000)
        {
            foreach (var old in Gaps.Where(g => g.Value.Old).Select(g => g.Key).ToList())
            {
                Gaps.TryRemove(old, out _);
            }
        }
    }

    /// <summary>A new transaction id, above every one given before (it costs the store one id and one commit record).</summary>
    private static async Task<ulong> NewTransactionIdAsync(ConcordDb db, CancellationToken cancellationToken) =>
        ulong.Parse(await db.Database.SqlQueryRaw<string>("SELECT pg_current_xact_id()::text AS \"Value\"").SingleAsync(cancellationToken), CultureInfo.InvariantCulture);

    /// <summary>
    /// The oldest transaction id still running in this database: every lower one of this database has ended (a holder of a
    /// gap writes here). A snapshot's <c>xmin</c> would be the cluster's: a long write in another database of the cluster
    /// (another application, a maintenance job) would hold every gap here until <see cref="GapGrace"/>. Each session's
    /// current top-level transaction id (<c>backend_xid</c>, shown to every role) is 32 bits; it is widened to 64 against
    /// the snapshot's <c>xmin</c>, which no running id is below, nor more than 2^31 above (not against its <c>xmax</c>:
    /// one past the last transaction to have ended, which a running one may be above). With none running here, the
    /// snapshot's <c>xmax</c>: above every id given before it.
    /// </summary>
    internal static async Task<ulong> OldestRunningAsync(ConcordDb db, CancellationToken cancellationToken) =>
        ulong.Parse(await db.Database.SqlQueryRaw<string>(OldestRunningSql).SingleAsync(cancellationToken), CultureInfo.InvariantCulture);

    private const string OldestRunningSql = """
        WITH snapshot AS (SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_current_snapshot() s)
        SELECT coalesce(min(s.xmin + (((a.backend_xid::text::bigint - s.xmin % 4294967296) % 4294967296 + 4294967296) % 4294967296)), min(s.xmax))::text AS "Value"
        FROM snapshot s LEFT JOIN pg_stat_activity a ON a.datname = current_database() AND a.backend_xid IS NOT NULL
        """;

    private sealed class Gap
    {
        private readonly long _seenAt = Stopwatch.GetTimestamp();

        private readonly Lock _lock = new();

        /// <summary>A transaction id drawn at least <see cref="GapNotice"/> after the gap was first seen: the holder's is below it.</summary>
        private ulong? _boundary;

        /// <summary>Seen so long ago that its row's age has settled it for every reader: a gap of that number now is another.</summary>
        public bool Old => Stopwatch.GetElapsedTime(_seenAt) > 2 * GapGrace;

        /// <summary>Not judged yet, and seen long enough ago for a transaction id drawn now to be above the holder's.</summary>
        public bool Due
        {
            get
            {
                lock (_lock)
                {
                    return _boundary is null && Stopwatch.GetElapsedTime(_seenAt) >= GapNotice;
                }
            }
        }

        /// <summary>Takes <paramref name="boundary"/>, drawn after the gap was found <see cref="Due"/> (a boundary taken before stays).</summary>
        public void Judge(ulong boundary)
        {
            lock (_lock)
            {
                _boundary ??= boundary;
            }
        }

        public bool EndedBy(ulong oldestRunning)
        {
            lock (_lock)
            {
                return _boundary is { } boundary && oldestRunning >= boundary;
            }
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Concord.Server.Realtime;
using Microsoft.EntityFrameworkCore;
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
                changes.Add(For(entry.Entity, operation, now));
            }
        }

        context.Set<Change>().AddRange(changes);
    }

    /// <summary>The change rows for records written outside SaveChanges (<see cref="BulkInsert"/>): "created" or "updated".</summary>
    public List<Change> Rows(IEnumerable<IFeedEntity> written, string operation)
    {
        var now = time.GetUtcNow().UtcDateTime;
        return [.. written.Select(e => For(e, operation, now))];
    }

    /// <summary>The change row of one write, naming the reports that caused it (an incident opened for them, or joined or left by them); the causes are used up.</summary>
    private static Change For(IFeedEntity entity, string operation, DateTime at)
    {
        var causes = entity.Causes.Count > 0 && operation is "updated" or "created"
            ? Access.Releasability.Encode(entity.Causes.Select(c => c.ToString("D")))
            : null;
        entity.Causes.Clear();
        return new() { Entity = entity.FeedName, EntityId = entity.Id, Operation = operation, At = at, Causes = causes };
    }
}

/// <summary>
/// Reads the change feed in sequence order for those who follow it with a cursor (the API, live pushes, TAK streams, the
/// incident router). On PostgreSQL a sequence number is drawn when a row is inserted, not when its transaction commits,
/// so a later number can become visible before an earlier one: a reader that moved its cursor past the gap would never
/// see the earlier row. A window therefore ends before the first gap that a transaction may still fill. A gap is known
/// to be final (a transaction that rolled back: a refused save, a conflict, a crash) once every transaction that was
/// running when the gap was noticed has ended, which PostgreSQL's snapshots tell (<see cref="RolledBack"/>); and
/// whatever the snapshots say, once the row after the gap was written more than <see cref="GapGrace"/> ago. SQLite has
/// one writer at a time, whose rows are numbered and committed in order: no gap there is ever filled later.
/// </summary>
internal static class ChangeWindows
{
    /// <summary>Longer than any write transaction takes; a reader waits at most this long behind a rolled-back write.</summary>
    public static readonly TimeSpan GapGrace = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long after a gap is first seen the transactions then running are noted. A transaction draws its number a moment
    /// before it is given the transaction id that shows it as running; by this long after, it has it.
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

        // A gap that may still be filled. The store's snapshot is taken first and the window read again after it: a
        // transaction that had ended by the snapshot has, if it committed, its rows in the second read.
        var snapshot = await SnapshotAsync(db, cancellationToken);
        window = await ReadWindowAsync(db, after, limit, cancellationToken);
        var store = db.Database.GetConnectionString() ?? "";
        var ended = new HashSet<long>();
        foreach (var missing in Missing(window, after, now))
        {
            if (!RolledBack(store, missing, snapshot))
            {
                break;
            }

            ended.Add(missing);
        }

        settled = Settled(window, after, now, ended);
        return (settled, settled.Count < window.Count);
    }

    /// <summary>The start of <paramref name="window"/> up to its first gap that may still be filled (one whose first missing number is not in <paramref name="ended"/>).</summary>
    internal static List<Change> Settled(List<Change> window, long after, DateTime now, IReadOnlySet<long>? ended = null)
    {
        var expected = after + 1;
        for (var i = 0; i < window.Count; i++)
        {
            if (window[i].Sequence != expected && now - window[i].At < GapGrace && ended?.Contains(expected) != true)
            {
                return window[..i];
            }

            expected = window[i].Sequence + 1;
        }

        return window;
    }

    /// <summary>
    /// Whether the transaction that drew <paramref name="missing"/> has ended without its row, judged by a snapshot of the
    /// store taken before the gap was last read. The transaction drew the number before the number after the gap was
    /// drawn, so before the gap was first seen; <see cref="GapNotice"/> later it has a transaction id, below the next id
    /// of a snapshot taken then. Once the oldest transaction still running is at or past that id, it has ended.
    /// </summary>
    internal static bool RolledBack(string store, long missing, (ulong OldestRunning, ulong Next) snapshot)
    {
        if (Gaps.Count > 10_000)
        {
            // Gaps of stores gone, or passed by every reader: forget those seen long ago.
            foreach (var old in Gaps.Where(g => Stopwatch.GetElapsedTime(g.Value.SeenAt) > 4 * GapGrace).Select(g => g.Key).ToList())
            {
                Gaps.TryRemove(old, out _);
            }
        }

        var gap = Gaps.GetOrAdd((store, missing), _ => new Gap(Stopwatch.GetTimestamp()));
        lock (gap)
        {
            if (gap.RunningBefore is null)
            {
                if (Stopwatch.GetElapsedTime(gap.SeenAt) < GapNotice)
                {
                    return false;
                }

                gap.RunningBefore = snapshot.Next;
            }

            return snapshot.OldestRunning >= gap.RunningBefore;
        }
    }

    private static Task<List<Change>> ReadWindowAsync(ConcordDb db, long after, int limit, CancellationToken cancellationToken) =>
        db.Changes.AsNoTracking().Where(c => c.Sequence > after).OrderBy(c => c.Sequence).Take(limit).ToListAsync(cancellationToken);

    /// <summary>The first missing number of each gap of <paramref name="window"/> that its age alone does not settle, in order.</summary>
    private static IEnumerable<long> Missing(List<Change> window, long after, DateTime now)
    {
        var expected = after + 1;
        foreach (var change in window)
        {
            if (change.Sequence != expected && now - change.At < GapGrace)
            {
                yield return expected;
            }

            expected = change.Sequence + 1;
        }
    }

    /// <summary>The oldest transaction id still running (every lower one has ended) and the next to be given, now.</summary>
    private static async Task<(ulong OldestRunning, ulong Next)> SnapshotAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        var text = await db.Database
            .SqlQueryRaw<string>("SELECT pg_snapshot_xmin(s)::text || ' ' || pg_snapshot_xmax(s)::text AS \"Value\" FROM pg_current_snapshot() AS s")
            .SingleAsync(cancellationToken);
        var parts = text.Split(' ');
        return (ulong.Parse(parts[0], CultureInfo.InvariantCulture), ulong.Parse(parts[1], CultureInfo.InvariantCulture));
    }

    private sealed class Gap(long seenAt)
    {
        public long SeenAt { get; } = seenAt;

        /// <summary>The next transaction id when the gap was noted: the transaction holding the gap has a lower one.</summary>
        public ulong? RunningBefore { get; set; }
    }
}

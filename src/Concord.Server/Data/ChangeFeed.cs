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
/// see the earlier row. A window therefore ends before the first gap, unless the row after the gap was written more than
/// <see cref="GapGrace"/> ago: then the gap is a transaction that rolled back (its numbers are never used) rather than
/// one still committing. SQLite has one writer at a time, whose rows are numbered and committed in order: no gap there
/// is ever filled later.
/// </summary>
internal static class ChangeWindows
{
    /// <summary>Longer than any write transaction takes; a reader waits at most this long behind a rolled-back write.</summary>
    public static readonly TimeSpan GapGrace = TimeSpan.FromSeconds(15);

    /// <summary>Up to <paramref name="limit"/> changes after <paramref name="after"/> that no earlier change can still join.</summary>
    public static async Task<List<Change>> ReadAsync(ConcordDb db, long after, int limit, DateTime now, CancellationToken cancellationToken)
    {
        var window = await db.Changes.AsNoTracking().Where(c => c.Sequence > after).OrderBy(c => c.Sequence).Take(limit).ToListAsync(cancellationToken);
        return db.Database.IsSqlite() ? window : Settled(window, after, now);
    }

    /// <summary>The start of <paramref name="window"/> up to its first gap that may still be filled.</summary>
    internal static List<Change> Settled(List<Change> window, long after, DateTime now)
    {
        var expected = after + 1;
        for (var i = 0; i < window.Count; i++)
        {
            if (window[i].Sequence != expected && now - window[i].At < GapGrace)
            {
                return window[..i];
            }

            expected = window[i].Sequence + 1;
        }

        return window;
    }
}

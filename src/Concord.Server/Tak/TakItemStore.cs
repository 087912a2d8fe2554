using System.Text.Json;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>
/// Keeps the TAK router's memory of relayed items (markers, drawings, routes, alerts) in the store: what changed is
/// written every <see cref="FlushInterval"/> and when the server stops, and read back when it starts, so that a restart
/// neither leaves devices connecting afterwards without the markers placed before it nor leaves a device holding an item
/// its member has since lost access to. The store holds what the memory holds: an item the memory forgets is deleted.
/// </summary>
internal sealed class TakItemStore(IServiceScopeFactory scopes, TakRouter router, TimeProvider time, ILogger<TakItemStore> logger) : BackgroundService
{
    private readonly Hosting.FailureRun _failures = new(logger, "writing TAK items");

    public static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Reads the stored items into the router's memory (before the listeners start). A row that cannot be read is logged
    /// and deleted; a table that cannot be read is logged and the listeners start without it (as tracks: what was once
    /// stored must not keep devices out).
    /// </summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var loaded = new List<(string, TakRouter.RelayedItem, Guid)>();
        List<(TakItem Row, Guid Organization)> rows;
        try
        {
            rows = [.. (await db.TakItems.AsNoTracking().Join(db.Members, t => t.SenderId, m => m.Id, (t, m) => new { Row = t, m.OrganizationId }).ToListAsync(cancellationToken))
                .Select(r => (r.Row, r.OrganizationId))];
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogError(e, "the stored TAK items could not be read; devices connecting are sent only items relayed from now on");
            return;
        }

        foreach (var (row, organization) in rows)
        {
            if (ReadMarkings(row.Markings) is not { } markings)
            {
                // Deleted at the next flush: the router knows nothing of it, as of an item it forgot.
                logger.LogWarning("TAK item {Uid} could not be loaded (its markings cannot be read); it is known again when a device next sends it", row.Uid);
                router.ItemsNotStored([row.Uid]);
                continue;
            }

            loaded.Add((row.Uid, new TakRouter.RelayedItem(markings, row.RelayedAt.Ticks, row.SenderId, row.Latest, row.EventTime.Ticks, row.StaleAt.Ticks, row.FromCertificate,
                row.Deleted, row.EditedByOthers), organization));
        }

        router.LoadItems(loaded);
    }

    /// <summary>Writes the items changed since the last flush; on failure they are written at the next.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var changed = router.TakeChangedItems();
        if (changed.Count == 0)
        {
            return;
        }

        var uids = changed.Select(c => c.Uid).ToList();
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            // Which are stored already (their uids only: an item's latest version may be 64 KiB).
            var stored = new HashSet<string>(StringComparer.Ordinal);
            foreach (var chunk in uids.Chunk(500))
            {
                stored.UnionWith(await db.TakItems.Where(t => chunk.Contains(t.Uid)).Select(t => t.Uid).ToListAsync(cancellationToken));
            }

            foreach (var (uid, item) in changed)
            {
                if (item is null)
                {
                    if (stored.Contains(uid))
                    {
                        db.TakItems.Remove(Row(uid, null));
                    }
                }
                else if (stored.Contains(uid))
                {
                    db.TakItems.Update(Row(uid, item));
                }
                else
                {
                    db.TakItems.Add(Row(uid, item));
                }
            }

            await db.SaveChangesAsync(cancellationToken);
            _failures.Succeeded();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A store that is down (PostgreSQL restarting) costs a retry at the next flush, never the flushing loop.
            if (_failures.Failed(e))
            {
                logger.LogWarning(e, "writing {Count} TAK items failed; they will be written at the next flush", uids.Count);
            }

            router.ItemsNotStored(uids);
        }
    }

    /// <summary>The row of <paramref name="item"/> (null: a row that only names its uid, to delete it).</summary>
    private static TakItem Row(string uid, TakRouter.RelayedItem? item) => new()
    {
        Uid = uid,
        Markings = item is null ? "" : JsonSerializer.Serialize(item.Markings),
        RelayedAt = new DateTime(item?.At ?? 0, DateTimeKind.Utc),
        SenderId = item?.Sender ?? Guid.Empty,
        Latest = item?.Latest,
        EventTime = new DateTime(item?.Time ?? 0, DateTimeKind.Utc),
        StaleAt = new DateTime(item?.Stale ?? 0, DateTimeKind.Utc),
        FromCertificate = item?.From ?? "",
        Deleted = item?.Deleted ?? false,
        EditedByOthers = item?.Edited ?? false,
    };

    /// <summary>The markings stored as JSON, or null when they are not a list of whole markings (at least one).</summary>
    private static MarkingDefault[]? ReadMarkings(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<MarkingDefault?[]>(json) is [_, ..] markings && markings.All(m => m is { ReleasableTo: not null, Label: not null })
                ? [.. markings.OfType<MarkingDefault>()]
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(CancellationToken.None);
            }
        }
        catch (OperationCanceledException)
        {
        }

        await FlushAsync(CancellationToken.None);
    }
}

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
    public static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);

    /// <summary>Reads the stored items into the router's memory (before the listeners start). A row that cannot be read is logged and deleted.</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var loaded = new List<(string, TakRouter.RelayedItem, Guid)>();
        var rows = await db.TakItems.AsNoTracking().Join(db.Members, t => t.SenderId, m => m.Id, (t, m) => new { Row = t, m.OrganizationId }).ToListAsync(cancellationToken);
        foreach (var (row, organization) in rows.Select(r => (r.Row, r.OrganizationId)))
        {
            if (ReadMarkings(row.Markings) is not [_, ..] markings)
            {
                // Deleted at the next flush: the router knows nothing of it, as of an item it forgot.
                logger.LogWarning("TAK item {Uid} could not be loaded (its markings cannot be read); it is known again when a device next sends it", row.Uid);
                router.ItemsNotStored([row.Uid]);
                continue;
            }

            loaded.Add((row.Uid, new TakRouter.RelayedItem(markings, row.RelayedAt.Ticks, row.SenderId, row.Latest, row.EventTime.Ticks, row.StaleAt.Ticks, row.FromCertificate,
                row.Deleted), organization));
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
            var stored = new Dictionary<string, TakItem>(StringComparer.Ordinal);
            foreach (var chunk in uids.Chunk(500))
            {
                foreach (var row in await db.TakItems.Where(t => chunk.Contains(t.Uid)).ToListAsync(cancellationToken))
                {
                    stored[row.Uid] = row;
                }
            }

            foreach (var (uid, item) in changed)
            {
                stored.TryGetValue(uid, out var row);
                if (item is null)
                {
                    if (row is not null)
                    {
                        db.TakItems.Remove(row);
                    }

                    continue;
                }

                if (row is null)
                {
                    db.TakItems.Add(Row(uid, item));
                }
                else
                {
                    db.Entry(row).CurrentValues.SetValues(Row(uid, item));
                }
            }

            await db.SaveChangesAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A store that is down (PostgreSQL restarting) costs a retry at the next flush, never the flushing loop.
            logger.LogWarning(e, "writing {Count} TAK items failed; they will be written at the next flush", uids.Count);
            router.ItemsNotStored(uids);
        }
    }

    private static TakItem Row(string uid, TakRouter.RelayedItem item) => new()
    {
        Uid = uid,
        Markings = JsonSerializer.Serialize(item.Markings),
        RelayedAt = new DateTime(item.At, DateTimeKind.Utc),
        SenderId = item.Sender,
        Latest = item.Latest,
        EventTime = new DateTime(item.Time, DateTimeKind.Utc),
        StaleAt = new DateTime(item.Stale, DateTimeKind.Utc),
        FromCertificate = item.From,
        Deleted = item.Deleted,
    };

    private static MarkingDefault[]? ReadMarkings(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<MarkingDefault[]>(json);
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

using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Audit;

/// <summary>
/// Appends audit entries to the hash chain in the same transaction as the change they record. One gate orders the
/// appends of this process; PostgreSQL's advisory lock orders those of several processes; SQLite's single writer does
/// the same for it. Each entry's hash covers its content and the previous entry's hash.
/// </summary>
internal sealed class AuditChain : IDisposable
{
    public static readonly string Genesis = new('0', 64);

    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>
    /// Saves the context's pending changes and <paramref name="entries"/> together, chaining the entries.
    /// <paramref name="beforeSave"/> runs inside the transaction once the entries are chained, just before SaveChanges (the
    /// report writer inserts its rows there).
    /// </summary>
    public async Task SaveAsync(ConcordDb db, IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken, Func<ConcordDb, Task>? beforeSave = null)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            if (entries.Count > 0)
            {
                if (db.Database.IsNpgsql())
                {
                    await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_xact_lock(4242002)", cancellationToken);
                }

                var head = await db.Audit.AsNoTracking().OrderByDescending(a => a.ChainIndex)
                    .Select(a => new { a.ChainIndex, a.Hash }).FirstOrDefaultAsync(cancellationToken);
                var index = head?.ChainIndex ?? 0;
                var previous = head?.Hash ?? Genesis;
                foreach (var entry in entries)
                {
                    entry.ChainIndex = ++index;
                    entry.PreviousHash = previous;
                    entry.Hash = Compute(entry);
                    previous = entry.Hash;
                    db.Audit.Add(entry);
                }
            }

            if (beforeSave is not null)
            {
                await beforeSave(db);
            }

            // Inside our own transaction EF's automatic savepoint would only cost a round trip.
            db.Database.AutoSavepointsEnabled = false;
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Times are kept to the microsecond, the precision both stores hold, so the hash survives a round trip.</summary>
    public static DateTime Truncate(DateTime at) => new(at.Ticks - (at.Ticks % 10), DateTimeKind.Utc);

    /// <summary>Now, as the stores will keep it: a time an answer gives before it is read back is the one later reads give.</summary>
    public static DateTime Now(TimeProvider time) => Truncate(time.GetUtcNow().UtcDateTime);

    /// <summary>
    /// The entry's hash: SHA-256 of its fields joined by line feeds, as UTF-8. The caveats (a number, the bits) are a field
    /// only when the entry has some, after the level, so that the entries written before they were recorded keep their
    /// hashes. The bytes are built in a pooled buffer: a read of a viewport names thousands of ids, and joining them into a
    /// string and then into an array put two copies of a few hundred kilobytes on the large object heap for each request.
    /// </summary>
    public static string Compute(AuditEntry e)
    {
        // A field left out is null: the caveats when the entry has none.
        ReadOnlySpan<string?> parts =
        [
            e.ChainIndex.ToString(CultureInfo.InvariantCulture),
            Truncate(e.At).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
            e.MemberId?.ToString("D") ?? "",
            e.Actor,
            e.Action,
            e.Entity ?? "",
            e.EntityId?.ToString("D") ?? "",
            e.Classification.ToString(CultureInfo.InvariantCulture),
            e.Caveats == 0 ? null : e.Caveats.ToString(CultureInfo.InvariantCulture),
            e.Detail,
            e.PreviousHash,
        ];
        var length = 0;
        foreach (var part in parts)
        {
            length += part is null ? 0 : Encoding.UTF8.GetByteCount(part) + 1;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var written = 0;
            var first = true;
            foreach (var part in parts)
            {
                if (part is null)
                {
                    continue;
                }

                if (!first)
                {
                    buffer[written++] = (byte)'\n';
                }

                first = false;

                written += Encoding.UTF8.GetBytes(part, buffer.AsSpan(written));
            }

            return Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, written)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose() => _gate.Dispose();
}

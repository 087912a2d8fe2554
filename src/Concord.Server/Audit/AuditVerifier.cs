using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Audit;

/// <summary>The result of walking the audit chain: where it first breaks, if it does.</summary>
internal sealed record AuditVerification(long Entries, string HeadHash, long? BrokenAt, string? Problem)
{
    public bool Intact => Problem is null;
}

/// <summary>
/// Walks the chain in order and reports the first entry that was altered (its hash no longer matches its content), that
/// follows a removed entry (a gap in the chain index), or that follows an inserted or altered one (its previous hash does
/// not match). The chain cannot show that entries were cut off its end: record the head hash it prints somewhere else.
/// </summary>
internal static class AuditVerifier
{
    public static async Task<AuditVerification> VerifyAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        const int Page = 5000;
        long expectedIndex = 1;
        var previousHash = AuditChain.Genesis;
        long count = 0;
        // The chain starts at 1: an entry before it (written straight into the store) would be listed first, unchecked.
        if (await db.Audit.AsNoTracking().Where(a => a.ChainIndex < 1).OrderBy(a => a.ChainIndex).FirstOrDefaultAsync(cancellationToken) is { } before)
        {
            return new AuditVerification(0, previousHash, before.ChainIndex,
                $"entry {before.ChainIndex} precedes the chain's first entry: it was inserted ({before.Action} {before.Entity} {before.EntityId} by {before.Actor})");
        }

        while (true)
        {
            var from = expectedIndex;
            // Read an entry at a time: a read entry names up to 5,000 records, so a page held whole could take a gigabyte.
            var read = 0;
            await foreach (var entry in db.Audit.AsNoTracking().Where(a => a.ChainIndex >= from).OrderBy(a => a.ChainIndex).Take(Page).AsAsyncEnumerable().WithCancellation(cancellationToken))
            {
                read++;
                if (entry.ChainIndex != expectedIndex)
                {
                    return new AuditVerification(count, previousHash, entry.ChainIndex,
                        expectedIndex == entry.ChainIndex - 1
                            ? $"entry {expectedIndex} is missing: entry {entry.ChainIndex} follows entry {expectedIndex - 1}"
                            : $"entries {expectedIndex} to {entry.ChainIndex - 1} are missing: entry {entry.ChainIndex} follows entry {expectedIndex - 1}");
                }

                if (entry.PreviousHash != previousHash)
                {
                    return new AuditVerification(count, previousHash, entry.ChainIndex,
                        $"entry {entry.ChainIndex} does not follow entry {entry.ChainIndex - 1}: its previous hash differs, so an entry was inserted, removed or altered before it");
                }

                // The hash joins the fields by line feeds and leaves out caveats of 0: were a field allowed a line feed, or a
                // detail allowed to start as a number, caveats moved into the detail (or text between fields) would hash
                // alike. Concord writes every detail as one line of JSON object and no line feed in the other fields.
                // Nor an empty entity, which hashes as none does: an entry's entity cleared to '' would verify as before.
                if (!entry.Detail.StartsWith('{') || Multiline(entry.Detail) || Multiline(entry.Actor) || Multiline(entry.Action) || Multiline(entry.Entity) || entry.Entity is "")
                {
                    return new AuditVerification(count, previousHash, entry.ChainIndex,
                        $"entry {entry.ChainIndex} was altered: its fields are not as Concord writes them (a detail is one line of JSON object, an entity is named or none)");
                }

                if (AuditChain.Compute(entry) != entry.Hash)
                {
                    return new AuditVerification(count, previousHash, entry.ChainIndex,
                        $"entry {entry.ChainIndex} was altered: its content no longer matches its hash ({entry.Action} {entry.Entity} {entry.EntityId} by {entry.Actor})");
                }

                previousHash = entry.Hash;
                expectedIndex++;
                count++;
            }

            if (read < Page)
            {
                return new AuditVerification(count, previousHash, null, null);
            }
        }
    }

    private static bool Multiline(string? field) => field is not null && field.Contains('\n', StringComparison.Ordinal);
}

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

        var firstMisstored = await FirstMisstoredAsync(db, cancellationToken);
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

                if (entry.ChainIndex == firstMisstored)
                {
                    return new AuditVerification(count, previousHash, entry.ChainIndex,
                        $"entry {entry.ChainIndex} was altered: its fields are not stored as Concord writes them (a level or caveats as other than a whole number, text as other than text, an id or time in another form), which reads back alike but hides the entry from auditors' searches");
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

    /// <summary>
    /// On SQLite, the first entry a field of which is stored in another type or form than Concord writes (null if none).
    /// SQLite keeps whatever type it is given, and reading converts: a level stored as the text '2x' reads back as 2 and
    /// hashes as before, yet compares above every clearance in the auditors' search, so the entry would be hidden from all
    /// of them with the chain intact; likewise a level of 2.5, a name stored as a blob (missed by a search by member or
    /// action), an id in lower case (missed by a search by record) or a time written in another form (missed by a search
    /// by time). PostgreSQL's typed columns take none of these.
    /// </summary>
    private static async Task<long?> FirstMisstoredAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        if (!db.Database.IsSqlite())
        {
            return null;
        }

        const string Sql = """
            SELECT chain_index AS "Value" FROM audit WHERE
              typeof(classification) <> 'integer' OR typeof(caveats) <> 'integer'
              OR typeof(actor) <> 'text' OR typeof(action) <> 'text' OR typeof(detail) <> 'text'
              OR typeof(previous_hash) <> 'text' OR typeof(hash) <> 'text'
              OR (entity IS NOT NULL AND typeof(entity) <> 'text')
              OR (member_id IS NOT NULL AND (typeof(member_id) <> 'text' OR member_id <> upper(member_id) OR length(member_id) <> 36))
              OR (entity_id IS NOT NULL AND (typeof(entity_id) <> 'text' OR entity_id <> upper(entity_id) OR length(entity_id) <> 36))
              OR typeof(at) <> 'text'
              OR NOT (at GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]*')
              OR NOT (length(at) = 19 OR (substr(at, 20, 1) = '.' AND length(at) BETWEEN 21 AND 27 AND substr(at, 21) NOT GLOB '*[^0-9]*' AND substr(at, -1) <> '0'))
            ORDER BY chain_index LIMIT 1
            """;
        return await db.Database.SqlQueryRaw<long?>(Sql).FirstOrDefaultAsync(cancellationToken);
    }

    private static bool Multiline(string? field) => field is not null && field.Contains('\n', StringComparison.Ordinal);
}

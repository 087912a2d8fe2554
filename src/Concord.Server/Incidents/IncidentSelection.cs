using System.Linq.Expressions;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>
/// The incidents a query selects for one viewer, in two parts. <see cref="Plain"/> incidents (every report under one
/// marking) are exact as stored: the database filters, sorts, pages and counts them. <see cref="Mixed"/> incidents are
/// selected in the database by the reports the viewer may see (a necessary condition: a filter on place, words, category
/// or level holds for the rebuilt incident only if it holds for one of those reports), then rebuilt from those reports
/// and checked again (<see cref="IncidentEndpoints.Matches"/>). Their place in any order, page, cursor or count is decided
/// on the rebuilt copy, so where a mixed incident appears never reveals the time, place or figures of a report the viewer
/// may not see.
/// </summary>
internal sealed class IncidentSelection(ConcordDb db, Viewer viewer, ListQuery query, IQueryable<Incident> plain, IQueryable<Incident> mixed)
{
    /// <summary>Test hook: runs in <see cref="SortedPageAsync"/> between the count and the page's read (incidents going meanwhile).</summary>
    internal Func<Task>? AfterCounting { get; set; }

    /// <summary>The filters this selection applies.</summary>
    public ListQuery Query => query;

    /// <summary>Visible incidents whose reports share one marking, with every filter applied by the database.</summary>
    public IQueryable<Incident> Plain => plain;

    /// <summary>Visible mixed incidents that may match once rebuilt for the viewer (stored values, not to be shown).</summary>
    public IQueryable<Incident> Mixed => mixed;

    /// <summary>
    /// The same selection with plain incidents narrowed in the database by <paramref name="predicate"/>; the caller applies
    /// the same condition to the rows it gets (mixed incidents can be judged only once rebuilt).
    /// </summary>
    public IncidentSelection NarrowPlain(Expression<Func<Incident, bool>> predicate) =>
        new(db, viewer, query, plain.Where(predicate), mixed);

    /// <summary>Mixed incidents (of <paramref name="candidates"/>, by default all) as the viewer sees them, still matching the query.</summary>
    public async Task<List<Incident>> MixedAsSeenAsync(IQueryable<Incident>? candidates, CancellationToken cancellationToken) =>
        await SeenAsync(await (candidates ?? mixed).ToListAsync(cancellationToken), cancellationToken);

    /// <summary>Mixed incidents already read (stored values) as the viewer sees them, still matching the query.</summary>
    public async Task<List<Incident>> SeenAsync(List<Incident> stored, CancellationToken cancellationToken) =>
        stored.Count == 0 ? [] : [.. (await db.AsSeenByAsync(stored, viewer, cancellationToken)).Where(i => IncidentEndpoints.Matches(query, i))];

    /// <summary>
    /// Every selected incident as a row: plain ones projected in the database, mixed ones rebuilt and projected in memory.
    /// Counts, charts and hotspots read incidents this way.
    /// </summary>
    public async Task<List<TRow>> RowsAsync<TRow>(Expression<Func<Incident, TRow>> projection, CancellationToken cancellationToken)
    {
        var rows = await plain.Select(projection).ToListAsync(cancellationToken);
        if (await MixedAsSeenAsync(null, cancellationToken) is { Count: > 0 } seen)
        {
            rows.AddRange(seen.Select(projection.Compile()));
        }

        return rows;
    }

    /// <summary>How many incidents the viewer would find.</summary>
    public async Task<int> CountAsync(CancellationToken cancellationToken) =>
        await plain.CountAsync(cancellationToken) + (await MixedAsSeenAsync(null, cancellationToken)).Count;

    /// <summary>
    /// The latest start the viewer would see, if any. Only mixed incidents whose stored window reaches the latest plain
    /// start can start later once rebuilt.
    /// </summary>
    public async Task<DateTime?> LatestStartAsync(CancellationToken cancellationToken)
    {
        var latest = await plain.MaxAsync(i => (DateTime?)i.StartsAt, cancellationToken);
        var candidates = latest is { } at ? mixed.Where(i => i.EndsAt >= at) : mixed;
        var seen = await MixedAsSeenAsync(candidates, cancellationToken);
        return seen.Count == 0 ? latest : new[] { latest ?? DateTime.MinValue, seen.Max(i => i.StartsAt) }.Max();
    }

    /// <summary>
    /// The marking of the least marked incident the viewer would see (the lowest level; at that level, one without caveats
    /// if any), or null when none: what an answer that tells only whether some incident matches tells it from.
    /// </summary>
    /// <param name="seen">A further condition on mixed incidents as the viewer sees them (as <see cref="NarrowPlain"/> leaves to its caller).</param>
    public async Task<(int Classification, long Caveats)?> LeastMarkedAsync(CancellationToken cancellationToken, Func<Incident, bool>? seen = null)
    {
        var least = await plain.OrderBy(i => i.Classification).ThenBy(i => i.Caveats == 0 ? 0 : 1)
            .Select(i => new Mark(i.Classification, i.Caveats)).FirstOrDefaultAsync(cancellationToken);
        if (least is { Classification: 0, Caveats: 0 })
        {
            return (0, 0);
        }

        // A viewer's copy of a mixed incident may be marked lower than the stored one: rebuilt, all of them (they are few).
        var candidates = (await MixedAsSeenAsync(null, cancellationToken)).Where(seen ?? (_ => true)).Select(i => new Mark(i.Classification, i.Caveats)).Append(least).OfType<Mark>();
        return candidates.OrderBy(m => m.Classification).ThenBy(m => m.Caveats == 0 ? 0 : 1).Select(m => ((int, long)?)(m.Classification, m.Caveats)).FirstOrDefault();
    }

    private sealed record Mark(int Classification, long Caveats);

    /// <summary>
    /// The <paramref name="count"/> incidents last changed as the viewer sees them (what a TAK device gets when it
    /// connects). A viewer's copy of a mixed incident changed no later than the stored incident, so only mixed incidents
    /// stored as changed since the last plain one taken can be among them.
    /// </summary>
    public async Task<List<Incident>> LatestChangedAsync(int count, CancellationToken cancellationToken)
    {
        var rows = await plain.OrderByDescending(i => i.UpdatedAt).ThenByDescending(i => i.Tie).Take(count).ToListAsync(cancellationToken);
        var floor = rows.Count >= count ? rows[^1].UpdatedAt : DateTime.MinValue;
        var seen = await MixedAsSeenAsync(mixed.Where(i => i.UpdatedAt >= floor), cancellationToken);
        return [.. rows.Concat(seen).OrderByDescending(i => i.UpdatedAt).ThenByDescending(i => i.Tie).Take(count)];
    }

    /// <summary>The earliest start and the latest end of the plain incidents the viewer would see (no mixed one is rebuilt).</summary>
    public async Task<(DateTime? First, DateTime? Last)> PlainSpanAsync(CancellationToken cancellationToken) =>
        (await plain.MinAsync(i => (DateTime?)i.StartsAt, cancellationToken), await plain.MaxAsync(i => (DateTime?)i.EndsAt, cancellationToken));

    /// <summary>
    /// A page of the newest incidents (start as the viewer sees it, then store number, both descending) after
    /// <see cref="ListQuery.After"/>, and the cursor of the next page when there is one. Plain incidents come from the
    /// store in order; mixed ones are rebuilt and merged in. Only mixed incidents that can reach the page are read: a
    /// rebuilt incident starts no later than its stored end and no earlier than its stored start, so one whose stored end
    /// is before the last plain row the page needs, or whose stored start is after the cursor, cannot.
    /// <paramref name="seenMixed"/>: the selection's mixed incidents as the viewer sees them, when the caller has them.
    /// </summary>
    public async Task<(List<TRow> Rows, Cursor? Next)> NewestAsync<TRow>(
        Expression<Func<Incident, TRow>> projection, Func<Incident, TRow> fromIncident, Func<TRow, Cursor> key, int limit,
        IReadOnlyList<Incident>? seenMixed, CancellationToken cancellationToken)
    {
        var after = query.After;
        var rows = await Newest(After(plain, after)).Take(limit + 1).Select(projection).ToListAsync(cancellationToken);
        var candidates = mixed;
        if (rows.Count > limit)
        {
            var floor = key(rows[^1]).At;
            candidates = candidates.Where(i => i.EndsAt >= floor);
        }

        if (after is { } last)
        {
            candidates = candidates.Where(i => i.StartsAt <= last.At);
        }

        // A caller that has rebuilt the mixed incidents already (the map, to count them) passes them: the bounds above only spare reading.
        if ((seenMixed ?? await MixedAsSeenAsync(candidates, cancellationToken)) is { Count: > 0 } seen)
        {
            rows.AddRange(seen.Where(i => after is not { } a || i.StartsAt < a.At || (i.StartsAt == a.At && i.Tie < a.Number)).Select(fromIncident));
            rows = [.. rows.Select(r => (Row: r, Key: key(r))).OrderByDescending(r => r.Key.At).ThenByDescending(r => r.Key.Number).Take(limit + 1).Select(r => r.Row)];
        }

        return rows.Count > limit ? (rows[..limit], key(rows[limit - 1])) : (rows, null);
    }

    /// <summary>
    /// How many incidents match, and one page of them by a sort key with offset paging (the browser's sortable list);
    /// ties go newest number first. <paramref name="sameOrder"/> compares two incidents as the store orders
    /// <paramref name="key"/>, to merge rebuilt mixed incidents in; when there are none the store pages alone.
    /// </summary>
    public async Task<(int Total, List<Incident> Page)> SortedPageAsync<TKey>(
        Expression<Func<Incident, TKey>> key, Comparison<Incident> sameOrder, bool ascending, int skip, int take, CancellationToken cancellationToken,
        Tally? counted = null)
    {
        var seen = counted?.Seen ?? await MixedAsSeenAsync(null, cancellationToken);
        var total = (counted?.Plain ?? await plain.CountAsync(cancellationToken)) + seen.Count;
        var ordered = (ascending ? plain.OrderBy(key) : plain.OrderByDescending(key)).ThenByDescending(i => i.Tie);
        if (seen.Count == 0)
        {
            return (total, await ordered.Skip(skip).Take(take).ToListAsync(cancellationToken));
        }

        // With m mixed incidents, the page's plain rows are among plain rows skip − m … skip + take. Mixed ones that sort
        // before the first of those are counted, not merged: they fill the places before it.
        int Compare(Incident a, Incident b) => (ascending ? sameOrder(a, b) : sameOrder(b, a)) is var order and not 0 ? order : b.Tie.CompareTo(a.Tie);
        var from = Math.Max(0, skip - seen.Count);
        if (skip >= total)
        {
            return (total, []);
        }

        if (AfterCounting is { } hook)
        {
            await hook();
        }

        // Below the total, the plain rows from `from` on cannot have run out (at most m of the first skip are mixed), unless
        // incidents went meanwhile (merged away, say): then the page is merged from the first plain row, as for a first page.
        var merged = await ordered.Skip(from).Take(skip - from + take).ToListAsync(cancellationToken);
        if (merged.Count == 0 && from > 0)
        {
            from = 0;
            merged = await ordered.Take(skip + take).ToListAsync(cancellationToken);
        }

        var before = from == 0 ? 0 : seen.Count(m => Compare(m, merged[0]) < 0);
        merged.AddRange(from == 0 ? seen : seen.Where(m => Compare(m, merged[0]) >= 0));
        merged.Sort(Compare);
        return (total, merged.Skip(skip - from - before).Take(take).ToList());
    }

    /// <summary>
    /// How many incidents match, under each marking: plain ones counted by the store by level and caveats, mixed ones as the
    /// viewer sees them (kept, for <see cref="SortedPageAsync"/> to page without counting again). What a count is marked
    /// and audited by: it tells of every incident it counts.
    /// </summary>
    public async Task<Tally> TallyAsync(CancellationToken cancellationToken)
    {
        var groups = await plain.GroupBy(i => new { i.Classification, i.Caveats }).Select(g => new { g.Key.Classification, g.Key.Caveats, Count = g.Count() })
            .ToListAsync(cancellationToken);
        var seen = await MixedAsSeenAsync(null, cancellationToken);
        return new Tally(groups.Sum(g => g.Count), seen,
            [.. groups.Select(g => (g.Classification, g.Caveats, g.Count)), .. seen.Select(i => (i.Classification, i.Caveats, 1))]);
    }

    /// <summary>What <see cref="TallyAsync"/> found: the plain incidents' number, the mixed ones as seen, and the counts by marking of both.</summary>
    public sealed record Tally(int Plain, List<Incident> Seen, List<(int Classification, long Caveats, int Count)> ByMarking)
    {
        public int Level => ByMarking.Count == 0 ? 0 : ByMarking.Max(m => m.Classification);

        public long Caveats => ByMarking.Aggregate(0L, (bits, m) => bits | m.Caveats);

        /// <summary>The counts by level and caveats, as the audit of figures takes them.</summary>
        public IEnumerable<(int Level, long Caveats, long Count)> Markings => ByMarking.Select(m => (m.Classification, m.Caveats, (long)m.Count));
    }

    /// <summary>Newest first by stored start: exact for plain incidents.</summary>
    public static IOrderedQueryable<Incident> Newest(IQueryable<Incident> incidents) =>
        incidents.OrderByDescending(i => i.StartsAt).ThenByDescending(i => i.Tie);

    private static IQueryable<Incident> After(IQueryable<Incident> incidents, Cursor? after) =>
        after is { } a ? incidents.Where(i => i.StartsAt < a.At || (i.StartsAt == a.At && i.Tie < a.Number)) : incidents;
}

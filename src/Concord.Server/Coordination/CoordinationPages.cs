using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Pages of the coordination lists (requests, tasks, patrols, meetings, the liaison log): <c>limit</c> rows at most and
/// the <c>next</c> cursor when more follow, which the following request sends back as <c>cursor</c>. Keyset paging, as
/// the report and incident lists page: a row stored or moved meanwhile neither repeats nor hides another. The cursor holds
/// the last row's sort key and store number, sealed (<see cref="Cursor"/>): the number counts rows the viewer may not see.
/// </summary>
internal static class CoordinationPages
{
    public const int DefaultLimit = 100;

    public const int MaxLimit = 500;

    public static readonly string[] Parameters = ["limit", "cursor"];

    public static (int Limit, Cursor? After) Read(QueryReader query, CursorKeys cursors) => (query.Limit(DefaultLimit, MaxLimit), query.Cursor(cursors));

    /// <summary>At most <paramref name="limit"/> rows of <paramref name="ordered"/> and, when more follow, the cursor after the last.</summary>
    public static async Task<(List<T> Rows, Cursor? Next)> TakeAsync<T>(IQueryable<T> ordered, int limit, Func<T, Cursor> key, CancellationToken cancellationToken)
    {
        var rows = await ordered.Take(limit + 1).ToListAsync(cancellationToken);
        if (rows.Count <= limit)
        {
            return (rows, null);
        }

        rows.RemoveAt(limit);
        return (rows, key(rows[^1]));
    }

    /// <summary>
    /// A task's place in the task list (open before closed, the earliest deadline owed first, then the newest) as a cursor:
    /// the deadline as its time, the store number with whether the task was closed or owed nothing in two high bits.
    /// </summary>
    public static Cursor TaskKey(bool closed, DateTime? due, long number) =>
        new(due ?? DateTime.MinValue, number | (closed ? ClosedBit : 0) | (due is null ? DuelessBit : 0));

    public static (bool Closed, DateTime? Due, long Number) TaskPlace(Cursor cursor) =>
        ((cursor.Number & ClosedBit) != 0, (cursor.Number & DuelessBit) != 0 ? null : cursor.At, cursor.Number & ~(ClosedBit | DuelessBit));

    private const long ClosedBit = 1L << 62;
    private const long DuelessBit = 1L << 61;
}

using Concord.Server.Access;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Ids a client may choose for what it creates (requests, tasks, comments, patrols, meetings, liaison entries), so that a
/// send repeated after a lost answer (a weak link, a page that timed out) stores one record: the same id again from the
/// same member with the same record answers the one stored (200); anything else with that id is a 409 on <c>id</c>.
/// </summary>
internal static class ClientIds
{
    /// <summary>The empty id is no id a client chose at random: refused, rather than shared by every client that sends it.</summary>
    public static ProblemHttpResult? Refused(Guid? id) =>
        id == Guid.Empty ? Problems.Field("id", "must not be the empty id (leave it out, or give a new random one)") : null;

    /// <summary>
    /// Whether a stored record is the one a retry sends again: its author's (<paramref name="sameAuthorAndRecord"/> says
    /// whether author and content match) and still readable by them (a marking raised since is another's record to them).
    /// </summary>
    public static bool IsRetry(IMarked stored, Viewer viewer, bool sameAuthorAndRecord) => sameAuthorAndRecord && Marking.AllowsRead(stored, viewer);

    /// <summary>
    /// A time sent again is the stored one: PostgreSQL keeps microseconds, and a client may send ticks of a tenth of one.
    /// </summary>
    public static bool SameTime(DateTime? stored, DateTimeOffset? sent) =>
        stored is null ? sent is null : sent is not null && Math.Abs(stored.Value.Ticks - sent.Value.UtcTicks) < 10;

    /// <summary>
    /// Whether a sent list of organisation codes names the organisations a stored record holds (<c>|org:A|org:B|</c>), in
    /// any order and case, with the sender's own organisation, which creating it adds.
    /// </summary>
    public static bool SameOrganizations(string stored, IReadOnlyList<string>? sent, Viewer viewer) =>
        CoordinationDesk.Codes(stored).ToHashSet(StringComparer.OrdinalIgnoreCase)
            .SetEquals((sent ?? []).Select(c => c.Trim()).Append(viewer.OrganizationCode));

    /// <summary>The id is a record's of the other kind (a task's for a request, or a request's for a task).</summary>
    public static ProblemHttpResult TakenByOther(string what) =>
        Problems.Field("id", $"is already used by a {what}: start a new form to send this one", StatusCodes.Status409Conflict);

    public static ProblemHttpResult Taken(string what) =>
        Problems.Field("id", $"is already used by another {what}: a retry must send the same {what} (start a new form to send another)", StatusCodes.Status409Conflict);

    /// <summary>
    /// Creates a record under the client's id, once: an empty id is refused (<paramref name="refused"/> gives the 400 as
    /// the endpoint's answer); the record a retry sends again (<paramref name="retried"/>: null when its id is new, or
    /// none was given) is answered as it is; else the answer of <paramref name="create"/>. A constraint violation on
    /// storing it with a client id is the same id stored meanwhile (the first send of a retry still under way), answered
    /// as a retry.
    /// </summary>
    public static async Task<TResult> OnceAsync<TResult>(Guid? id, Func<ProblemHttpResult, TResult> refused, Func<Task<TResult?>> retried, Func<Task<TResult>> create)
        where TResult : class
    {
        if (Refused(id) is { } badId)
        {
            return refused(badId);
        }

        if (await retried() is { } again)
        {
            return again;
        }

        try
        {
            return await create();
        }
        catch (DbUpdateException e) when (id is not null && Data.StoreErrors.IsConstraintViolation(e.GetBaseException()))
        {
            return await retried() ?? throw new InvalidOperationException("a client's id was refused by the store but is not stored", e);
        }
    }
}

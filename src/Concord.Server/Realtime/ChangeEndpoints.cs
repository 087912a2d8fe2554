using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Realtime;

internal sealed record ChangeDto(long Sequence, string Entity, Guid Id, string Operation, DateTimeOffset At);

/// <summary>
/// The feed a client resumes from. <c>next</c> is the last sequence examined, so invisible changes are skipped, never
/// shown (an answer may have no items and a <c>next</c> that moved on). <c>held</c>: changes already committed after
/// <c>next</c> wait on an earlier write still in progress (read again shortly); <c>next</c> equal to the request's
/// <c>after</c> without <c>held</c> means the client has read to the end.
/// </summary>
internal sealed record ChangePage(IReadOnlyList<ChangeDto> Items, long Next, bool Held);

internal static class ChangeEndpoints
{
    public const int MaxLimit = 1000;

    public static RouteGroupBuilder MapChanges(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/changes").WithTags("Changes").RequireAuthorization();
        group.MapGet("/", List)
            .WithQueryParameter("after", "the sequence number after which to list changes (the next of the previous answer; 0 for the start)", Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithQueryParameter("limit", "at most this many changes", Microsoft.OpenApi.JsonSchemaType.Integer)
            .TakesQuery("after", "limit")
            .WithSummary("Changes after a sequence number, only for records you may see.");
        return group;
    }

    private static async Task<Results<Ok<ChangePage>, ProblemHttpResult>> List(HttpContext context, Viewer viewer, ConcordDb db, TimeProvider time)
    {
        var query = context.Request.Query;
        long after = 0;
        if (query["after"].ToString() is { Length: > 0 } afterText && (!long.TryParse(afterText, NumberStyles.None, CultureInfo.InvariantCulture, out after)))
        {
            return Problems.Field("after", "must be a sequence number (a whole number ≥ 0)");
        }

        var limit = 500;
        if (query["limit"].ToString() is { Length: > 0 } limitText
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            return Problems.Field("limit", $"must be a whole number from 1 to {MaxLimit}");
        }

        // Examine a window of the feed, then keep what the viewer may see: the window bound keeps the scan cheap.
        var (window, held) = await ChangeWindows.ReadHeldAsync(db, after, limit, time.GetUtcNow().UtcDateTime, context.RequestAborted);
        if (window.Count == 0)
        {
            // Past the feed's end (a store restored from a backup, or replaced, since the client last read): answered as
            // "read to the end", the client would skip every change up to its number without a word.
            // (The end is no secret: "next" passes over every change, seen or not.)
            if (!held && after > 0 && await db.Changes.MaxAsync(c => (long?)c.Sequence, context.RequestAborted) is var end && after > (end ?? 0))
            {
                return Problems.Field("after", string.Create(CultureInfo.InvariantCulture,
                    $"is past the end of the change feed ({end ?? 0}): the store was restored or replaced since you read it; read your view again, then follow from after={end ?? 0}"));
            }

            return TypedResults.Ok(new ChangePage([], after, held));
        }

        var visible = await ChangeVisibility.VisibleAsync(db, viewer, window, context.RequestAborted);
        var items = visible
            .Select(c => new ChangeDto(c.Sequence, c.Entity, c.EntityId, c.Operation, new DateTimeOffset(c.At, TimeSpan.Zero)))
            .ToList();
        return TypedResults.Ok(new ChangePage(items, window[^1].Sequence, held));
    }
}

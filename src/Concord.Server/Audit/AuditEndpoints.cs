using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Audit;

internal sealed record AuditEntryDto(long Index, DateTimeOffset At, string Actor, string Action, string? Entity, Guid? EntityId, string Detail, string Classification, IReadOnlyList<string> Caveats, string Hash);

internal sealed record AuditPage(IReadOnlyList<AuditEntryDto> Items, long? Next);

internal static class AuditEndpoints
{
    public static void MapAudit(this IEndpointRouteBuilder app) =>
        app.MapGet("/api/audit", Query).WithTags("Audit").RequireAuthorization(Policies.Auditor)
            .WithQueryParameter("record", "entries about this record (its id), or naming it")
            .WithQueryParameter("member", "entries by this member (user name)")
            .WithQueryParameter("action", "entries of this action (read, create, status, …)")
            .WithQueryParameter("from", "entries at or after this time (ISO 8601)")
            .WithQueryParameter("to", "entries at or before this time (ISO 8601)")
            .WithQueryParameter("after", "entries after this audit index: the next value of the previous page", type: Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithQueryParameter("limit", "at most this many entries (1–1000; default 200)", type: Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithSummary("The audit log, for auditors: entries up to your clearance and under caveats you hold, filtered by record, member, action and time.");

    /// <summary>The details one page of the log holds at most (in characters), unless its first entry alone is longer.</summary>
    internal const int MaxPageCharacters = 4_000_000;

    private static readonly string[] Parameters = ["record", "member", "action", "from", "to", "after", "limit"];

    /// <summary>The audit is marked like any record: an auditor sees the entries at or below their clearance whose caveats they hold.</summary>
    private static async Task<Results<Ok<AuditPage>, ProblemHttpResult>> Query(HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditWriter audit,
        TimeProvider time)
    {
        var q = context.Request.Query;
        var times = new QueryReader(q);
        QueryReader.RefuseOthers(q, Parameters, "the audit log", times.Errors);
        var (from, to) = (times.Time("from")?.UtcDateTime, times.Until("to")?.UtcDateTime);
        if (from > to)
        {
            // An empty answer would read as "nothing happened then".
            times.Errors["from"] = ["must not be after 'to'"];
        }

        var action = q["action"].ToString().Trim().ToLowerInvariant();
        if (action.Length > 0 && !AuditActions.All.Contains(action))
        {
            times.Errors["action"] = [$"is not an action the log records; one of: {string.Join(", ", AuditActions.All.Order(StringComparer.Ordinal))}"];
        }

        if (times.Errors.Count > 0)
        {
            return Problems.Invalid(times.Errors);
        }

        // The log is keyed by its chain index only (a second index cost a third of report creation's rate), so a time
        // filter reads the log in order; entries are appended in time order.
        var notHeld = ~viewer.CaveatBits;
        var entries = db.Audit.AsNoTracking().Where(a => a.Classification <= viewer.Clearance && (a.Caveats & notHeld) == 0);
        // An auditor's own reads of the log are not shown back to them (other auditors see them): each page would add
        // one, and paging to the end would never end.
        var self = viewer.MemberId;
        entries = entries.Where(a => !(a.MemberId == self && a.Action == AuditActions.Read && a.Entity == "audit"));
        entries = from is { } f ? entries.Where(a => a.At >= f) : entries;
        entries = to is { } t ? entries.Where(a => a.At <= t) : entries;
        // The record asked about, in the form every entry names records in: an id may be typed in other forms (upper case,
        // without dashes, in braces), and the auditor's own read entry names it in this one, so that a later search for the
        // record finds who looked it up.
        string? recordId = null;
        Guid? asked = null;
        if (q["record"].ToString() is { Length: > 0 } recordText)
        {
            if (!Guid.TryParse(recordText, out var record))
            {
                return Problems.Field("record", "must be a record id");
            }

            asked = record;
            recordId = record.ToString("D");
            entries = entries.Where(a => a.EntityId == record || a.Detail.Contains(recordId));
        }

        if (q["member"].ToString() is { Length: > 0 } member)
        {
            // A name is text: a control character (NUL above all, which PostgreSQL refuses in a query) names nobody.
            if (Reports.ReportRules.ControlCharacterProblem(member) is { } problem)
            {
                return Problems.Field("member", problem);
            }

            // Found as sign-in finds a name (spaces around it and case do not make another member); a name no member has (a
            // typing mistake) is said so: an empty answer would read as "they did nothing". `system` names the server's own
            // entries.
            var name = member.Trim().ToLowerInvariant();
            if (name != Audits.SystemActor && !await db.Members.AnyAsync(m => m.UserName == name, context.RequestAborted))
            {
                return Problems.Field("member", $"no member has the name '{name}' (or 'system', for the server's own entries)");
            }

            entries = entries.Where(a => a.Actor == name);
        }

        if (action.Length > 0)
        {
            entries = entries.Where(a => a.Action == action);
        }

        if (q["after"].ToString() is { Length: > 0 } afterText)
        {
            if (!long.TryParse(afterText, NumberStyles.None, CultureInfo.InvariantCulture, out var after))
            {
                return Problems.Field("after", "must be an audit index");
            }

            entries = entries.Where(a => a.ChainIndex > after);
        }

        var limit = 200;
        if (q["limit"].ToString() is { Length: > 0 } limitText
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 1000))
        {
            return Problems.Field("limit", "must be a whole number from 1 to 1000");
        }

        // A page also ends once its entries' details reach MaxPageCharacters (a read entry names up to 5,000 records, some
        // 200 kB): a thousand of them would be held, and sent, whole. The next page goes on from where it ended.
        var page = new List<AuditEntry>();
        var (characters, more) = (0L, false);
        await foreach (var row in entries.OrderBy(a => a.ChainIndex).Take(limit + 1).AsAsyncEnumerable().WithCancellation(context.RequestAborted))
        {
            if (page.Count == limit || (page.Count > 0 && characters + row.Detail.Length > MaxPageCharacters))
            {
                more = true;
                break;
            }

            page.Add(row);
            characters += row.Detail.Length;
        }

        var items = page.Select(a => new AuditEntryDto(a.ChainIndex, new DateTimeOffset(a.At, TimeSpan.Zero), a.Actor, a.Action, a.Entity, a.EntityId, a.Detail, markings.Scheme.Label(a.Classification), markings.Caveats.CodesOf(a.Caveats), a.Hash)).ToList();

        // Reading the log is an access like any other, and the one that watches the others: on record before the answer
        // leaves, with what was asked and which entries were seen, marked as the most sensitive of them (an auditor who may
        // not see those entries does not learn that someone looked at them).
        var marking = page.Aggregate(AuditMarking.None, (m, a) => m.With(new AuditMarking(a.Classification, a.Caveats)));
        if (asked is { } named)
        {
            // The entry names the record asked about, whatever the page held (a window or a member that matched nothing):
            // it is marked as that record too, or an auditor who may not see the record would learn its id, and that it is
            // being looked into, from it.
            marking = marking.With(await NamedRecordMarkingAsync(db, named, viewer, context.RequestAborted));
        }

        await audit.RecordAsync(Audits.Entry(viewer, AuditActions.Read, "audit", null, marking, time.GetUtcNow().UtcDateTime, Audits.Detail(new
        {
            query = context.Request.QueryString.Value,
            record = recordId,
            entries = page.Count,
            first = page.FirstOrDefault()?.ChainIndex,
            last = page.LastOrDefault()?.ChainIndex,
        })), context.RequestAborted);
        return TypedResults.Ok(new AuditPage(items, more ? page[^1].ChainIndex : null));
    }

    /// <summary>
    /// The marking of the marked record an id names (a report, an incident, a task, a request, a patrol, a meeting, a
    /// liaison entry or a TAK chat message); for an id no such record has (another kind's, or one deleted since: a merged incident), the
    /// asker's own clearance and caveats, which no auditor cleared below them reads.
    /// </summary>
    private static async Task<AuditMarking> NamedRecordMarkingAsync(ConcordDb db, Guid id, Viewer asker, CancellationToken cancellationToken)
    {
        return await db.Reports.AsNoTracking().Where(r => r.Id == id).Select(r => (AuditMarking?)new AuditMarking(r.Classification, r.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Incidents.AsNoTracking().Where(i => i.Id == id).Select(i => (AuditMarking?)new AuditMarking(i.Classification, i.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Tasks.AsNoTracking().Where(t => t.Id == id).Select(t => (AuditMarking?)new AuditMarking(t.Classification, t.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Requests.AsNoTracking().Where(r => r.Id == id).Select(r => (AuditMarking?)new AuditMarking(r.Classification, r.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Patrols.AsNoTracking().Where(p => p.Id == id).Select(p => (AuditMarking?)new AuditMarking(p.Classification, p.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Meetings.AsNoTracking().Where(m => m.Id == id).Select(m => (AuditMarking?)new AuditMarking(m.Classification, m.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.LiaisonLog.AsNoTracking().Where(l => l.Id == id).Select(l => (AuditMarking?)new AuditMarking(l.Classification, l.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? await db.Messages.AsNoTracking().Where(m => m.Id == id).Select(m => (AuditMarking?)new AuditMarking(m.Classification, m.Caveats)).FirstOrDefaultAsync(cancellationToken)
            ?? new AuditMarking(asker.Clearance, asker.CaveatBits);
    }
}

using System.Globalization;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>Response times of one group: how many items, how fast they were acknowledged and answered, how many missed a deadline.</summary>
internal sealed record ResponseFigures(string Key, int Items, int Acknowledged, double? MedianAcknowledgeMinutes, double? P90AcknowledgeMinutes,
    int Responded, double? MedianRespondMinutes, double? P90RespondMinutes, int Overdue, int OpenOverdue);

/// <summary>The metrics, with the highest classification and every caveat of the records counted: a count tells of what it counts.</summary>
internal sealed record CoordinationMetricsDto(DateTimeOffset From, DateTimeOffset To, ResponseFigures Total, IReadOnlyList<ResponseFigures> ByOrganization,
    IReadOnlyList<ResponseFigures> ByCategory, IReadOnlyList<ResponseFigures> ByRequestType, IReadOnlyList<ResponseFigures> ByWeek, string Classification,
    IReadOnlyList<string> Caveats);

/// <summary>
/// Coordination metrics over the tasks and requests a viewer may see: time to acknowledge and to respond (from creation),
/// missed deadlines (late or still pending past due) and those still open past due, per organisation that owes the answer,
/// per incident category, per request type and per week.
/// </summary>
internal static class CoordinationMetrics
{
    private sealed record Item(Guid Organization, string? Category, string? Type, DateTime CreatedAt, DateTime? AcknowledgedAt, DateTime? RespondedAt,
        DateTime? AcknowledgeBy, DateTime? RespondBy, DateTime? ClosedAt, bool Closed, int Classification, long Caveats);

    public static void MapCoordinationViews(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/coordination").WithTags("Coordination").RequireAuthorization();
        group.MapGet("/metrics", Metrics)
            .WithQueryParameter("from", "start of the period (ISO 8601; default 90 days before to)")
            .WithQueryParameter("to", "end of the period (ISO 8601; default now)")
            .TakesQuery("from", "to")
            .WithSummary("Time to acknowledge and to respond, missed deadlines, per organisation, category, request type and week.");
        group.MapGet("/geojson", GeoJson).Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .TakesQuery()
            .WithSummary($"Open requests with a place or route and patrols, as GeoJSON, for the map: the {MaxMapRequests} requests made last and the {MaxMapPatrols} patrols starting last (X-Concord-Truncated says when there are more).");
    }

    private static async Task<Results<Ok<CoordinationMetricsDto>, ProblemHttpResult>> Metrics(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var query = new QueryReader(context.Request.Query);
        var (from, to) = (query.Time("from"), query.Until("to"));
        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var now = desk.Now;
        foreach (var (name, value) in new[] { ("from", from), ("to", to) })
        {
            if (value is { } at && CoordinationDesk.OutOfRange(at, now))
            {
                return Problems.Field(name, CoordinationDesk.TimeRange);
            }
        }

        var end = to?.UtcDateTime ?? now;
        var start = from?.UtcDateTime ?? end.AddDays(-90);
        if (end <= start || end - start > TimeSpan.FromDays(3660))
        {
            return Problems.Field("from", "must be before to, at most ten years apart");
        }

        var tasks = await desk.Db.Tasks.AsNoTracking().VisibleTo(viewer).Where(t => t.CreatedAt >= start && t.CreatedAt < end && t.Role != TaskRoles.Escalation)
            .Select(t => new Item(t.OrganizationId, t.Category, null, t.CreatedAt, t.AcknowledgedAt, t.RespondedAt, t.AcknowledgeBy, t.RespondBy, t.CompletedAt,
                t.Status == TaskStatuses.Done || t.Status == TaskStatuses.Declined, t.Classification, t.Caveats))
            .ToListAsync(context.RequestAborted);
        var requests = await desk.Db.Requests.AsNoTracking().VisibleTo(viewer).Where(r => r.CreatedAt >= start && r.CreatedAt < end)
            .Select(r => new Item(r.AssignedOrganizationId ?? r.AddresseeOrganizationId ?? Guid.Empty, null, r.Type, r.CreatedAt, r.AcknowledgedAt, r.RespondedAt,
                r.AcknowledgeBy, r.RespondBy, r.CompletedAt,
                r.Status == RequestStatuses.Declined || r.Status == RequestStatuses.Completed || r.Status == RequestStatuses.Cancelled, r.Classification, r.Caveats))
            .ToListAsync(context.RequestAborted);
        var all = tasks.Concat(requests).ToList();
        await desk.AuditAggregateAsync(viewer, "task", Audits.CountMarkings(tasks.Select(t => (t.Classification, t.Caveats))), context);
        await desk.AuditAggregateAsync(viewer, "request", Audits.CountMarkings(requests.Select(r => (r.Classification, r.Caveats))), context);
        string Organization(Guid id) => id == Guid.Empty ? "(kind)" : desk.OrganizationCode(id);
        return TypedResults.Ok(new CoordinationMetricsDto(
            CoordinationDesk.Utc(start), CoordinationDesk.Utc(end),
            Figures("all", all, now),
            all.GroupBy(i => Organization(i.Organization)).Select(g => Figures(g.Key, g, now)).OrderBy(f => f.Key, StringComparer.Ordinal).ToList(),
            tasks.Where(t => t.Category is not null).GroupBy(t => t.Category!).Select(g => Figures(g.Key, g, now)).OrderBy(f => f.Key, StringComparer.Ordinal).ToList(),
            requests.GroupBy(r => r.Type!).Select(g => Figures(g.Key, g, now)).OrderBy(f => f.Key, StringComparer.Ordinal).ToList(),
            all.GroupBy(i => Http.Weeks.Start(i.CreatedAt)).OrderBy(g => g.Key).Select(g => Figures(g.Key.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), g, now)).ToList(),
            desk.Markings.Scheme.Label(all.Count == 0 ? 0 : all.Max(i => i.Classification)), desk.Markings.Caveats.CodesOf(all.Aggregate(0L, (bits, i) => bits | i.Caveats))));
    }

    private static ResponseFigures Figures(string key, IEnumerable<Item> group, DateTime now)
    {
        var items = group.ToList();
        var acknowledge = items.Select(i => i.AcknowledgedAt ?? i.RespondedAt).Zip(items).Where(x => x.First is not null)
            .Select(x => (x.First!.Value - x.Second.CreatedAt).TotalMinutes).Order().ToList();
        var respond = items.Where(i => i.RespondedAt is not null).Select(i => (i.RespondedAt!.Value - i.CreatedAt).TotalMinutes).Order().ToList();
        var overdue = 0;
        var openOverdue = 0;
        foreach (var i in items)
        {
            var answered = i.AcknowledgedAt ?? i.RespondedAt ?? (i.Closed ? i.ClosedAt : null) ?? now;
            var responded = i.RespondedAt ?? (i.Closed ? i.ClosedAt : null) ?? now;
            var missed = (i.AcknowledgeBy is { } a && answered > a) || (i.RespondBy is { } r && responded > r);
            overdue += missed ? 1 : 0;
            openOverdue += missed && !i.Closed && ((i.RespondedAt is null && i.RespondBy <= now) || (i.AcknowledgedAt is null && i.RespondedAt is null && i.AcknowledgeBy <= now)) ? 1 : 0;
        }

        return new ResponseFigures(key, items.Count, acknowledge.Count, Quantile(acknowledge, 0.5), Quantile(acknowledge, 0.9),
            respond.Count, Quantile(respond, 0.5), Quantile(respond, 0.9), overdue, openOverdue);
    }

    /// <summary>The q-quantile of sorted values (linear interpolation between closest ranks), rounded to 0.1 minute.</summary>
    internal static double? Quantile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0)
        {
            return null;
        }

        var position = q * (sorted.Count - 1);
        var lower = (int)Math.Floor(position);
        var upper = Math.Min(lower + 1, sorted.Count - 1);
        return Math.Round(sorted[lower] + ((sorted[upper] - sorted[lower]) * (position - lower)), 1);
    }

    public const int MaxMapRequests = 2000;
    public const int MaxMapPatrols = 500;

    private static async Task<IResult> GeoJson(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var closed = new[] { RequestStatuses.Declined, RequestStatuses.Completed, RequestStatuses.Cancelled };
        var requests = await desk.Db.Requests.AsNoTracking().VisibleTo(viewer)
            .Where(r => !closed.Contains(r.Status) && (r.Latitude != null || r.RouteJson != null)).OrderByDescending(r => r.Number).Take(MaxMapRequests + 1).ToListAsync(context.RequestAborted);
        var patrols = await desk.Db.Patrols.AsNoTracking().VisibleTo(viewer)
            .Where(p => p.Status == PatrolStatuses.Planned || p.Status == PatrolStatuses.UnderWay).OrderByDescending(p => p.StartsAt).Take(MaxMapPatrols + 1).ToListAsync(context.RequestAborted);
        // More than the map shows: the newest are, and the answer says the rest are left out (as a cut export does).
        context.Response.Headers["X-Concord-Truncated"] = requests.Count > MaxMapRequests || patrols.Count > MaxMapPatrols ? "true" : "false";
        requests = [.. requests.Take(MaxMapRequests)];
        patrols = [.. patrols.Take(MaxMapPatrols)];
        await desk.AuditReadAsync(viewer, "request", Audits.Named(requests), context);
        await desk.AuditReadAsync(viewer, "patrol", Audits.Named(patrols), context);
        var now = desk.Now;
        var features = new List<object>();
        foreach (var r in requests)
        {
            object geometry = r.RouteJson is { } route
                ? new { type = "LineString", coordinates = JsonSerializer.Deserialize<List<double[]>>(route) }
                : new { type = "Point", coordinates = new[] { r.Longitude!.Value, r.Latitude!.Value } };
            features.Add(new
            {
                type = "Feature",
                id = r.Id,
                geometry,
                properties = new { kind = "request", r.Type, r.Title, r.Status, r.Priority, requester = desk.OrganizationCode(r.RequesterOrganizationId), overdue = r.OverdueAt(now), marking = desk.Markings.ToDto(r).Label, level = r.Classification, caveats = r.Caveats },
            });
        }

        foreach (var p in patrols)
        {
            features.Add(new
            {
                type = "Feature",
                id = p.Id,
                geometry = new { type = "LineString", coordinates = JsonSerializer.Deserialize<List<double[]>>(p.RouteJson) },
                properties = new { kind = "patrol", title = p.Name, p.Status, startsAt = CoordinationDesk.Utc(p.StartsAt), marking = desk.Markings.ToDto(p).Label, level = p.Classification, caveats = p.Caveats },
            });
        }

        return Results.Json(new { type = "FeatureCollection", features }, JsonSerializerOptions.Web, "application/geo+json");
    }
}

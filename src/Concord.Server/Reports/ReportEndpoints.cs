using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Reports;

internal static class ReportEndpoints
{
    public const long MaxBodyBytes = 64 * 1024;

    public static RouteGroupBuilder MapReports(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/reports").WithTags("Reports").RequireAuthorization();
        group.MapPost("/", Create)
            .WithJsonBody<CreateReport>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .WithSummary("Create a report; the same id and body again returns the existing report (idempotent).");
        group.MapGet("/{id:guid}", Get).WithSummary("One report, if you may see it.");
        group.MapGet("/", List).WithListParameters(paged: true).ProducesProblem(StatusCodes.Status400BadRequest).WithSummary("Reports you may see, newest observed first, with filters and keyset paging.");
        app.MapGet("/api/categories", Categories).TakesQuery().WithTags("Reports").RequireAuthorization().WithSummary("The category taxonomy.");
        return group;
    }

    private static async Task<Results<Created<ReportDto>, Ok<ReportDto>, ProblemHttpResult>> Create(
        HttpContext context, Viewer viewer, ReportIntake intake, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        var (request, problem) = await JsonBody.ReadAsync<CreateReport>(context, MaxBodyBytes);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var outcome = await intake.CreateAsync(request!, viewer, context.RequestAborted);
        if (outcome is ReportIntake.Outcome.Existing existing)
        {
            // A retry is answered with the report as it is stored now (perhaps corrected since): a read, audited as a GET of it is.
            await RecordReadAsync(audit, viewer, [existing.Report], context, time);
        }

        return outcome switch
        {
            ReportIntake.Outcome.Created c => TypedResults.Created($"/api/reports/{c.Report.Id}",
                c.Report.ToDto(c.IncidentId, viewer, directory, markings, await ReportMapping.VisibleOriginalsAsync(db, viewer, [c.Report], context.RequestAborted))),
            ReportIntake.Outcome.Existing e => TypedResults.Ok(e.Report.ToDto(e.IncidentId, viewer, directory, markings,
                await ReportMapping.VisibleOriginalsAsync(db, viewer, [e.Report], context.RequestAborted))),
            ReportIntake.Outcome.Conflict c => Problems.Field("id", c.Reason, StatusCodes.Status409Conflict),
            ReportIntake.Outcome.Invalid i => Problems.Invalid(i.Errors),
            _ => throw new InvalidOperationException("unknown intake outcome"),
        };
    }

    private static async Task<Results<Ok<ReportDto>, NotFound>> Get(
        Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        var row = await db.Reports.AsNoTracking().VisibleTo(viewer)
            .Where(r => r.Id == id)
            .Select(r => new { Report = r, IncidentId = db.IncidentReports.Where(l => l.ReportId == r.Id).Select(l => (Guid?)l.IncidentId).FirstOrDefault() })
            .SingleOrDefaultAsync(context.RequestAborted);
        if (row is null)
        {
            return TypedResults.NotFound();
        }

        await RecordReadAsync(audit, viewer, [row.Report], context, time);
        return TypedResults.Ok(row.Report.ToDto(row.IncidentId, viewer, directory, markings, await ReportMapping.VisibleOriginalsAsync(db, viewer, [row.Report], context.RequestAborted)));
    }

    /// <summary>
    /// Names the classified and caveated reports read in the audit. A report whose protected source the answer shows (to
    /// a member of its organisation who holds SOURCE-PROTECTED) is read under that caveat whatever its own marking: who
    /// read an informant's name is what the source's handlers will ask, on an unclassified report too.
    /// </summary>
    internal static Task RecordReadAsync(AuditWriter audit, Viewer viewer, IReadOnlyCollection<Report> reports, HttpContext context, TimeProvider time)
    {
        var caveats = context.RequestServices.GetRequiredService<MarkingFormat>().Caveats;
        var protectedBit = Sharing.SourceProtection.TryGetBit(caveats, out var bit) ? bit : 0;
        var named = reports.Select(r => (r.Id, r.Classification,
            Caveats: r.ProtectedSource is { Length: > 0 } && Sharing.SourceProtection.MaySeeSource(r, viewer, caveats) ? r.Caveats | protectedBit : r.Caveats)).ToList();
        return audit.RecordReadAsync(viewer, "report", named, context.Request.Path + context.Request.QueryString, time.GetUtcNow().UtcDateTime, context.RequestAborted);
    }

    private static async Task<Results<Ok<Page<ReportDto>>, ProblemHttpResult>> List(
        HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time, CursorKeys cursors)
    {
        var (query, errors) = await ReportFilters.ReadAsync(context.Request.Query, cursors.For(CursorListings.Reports), [.. ListQuery.ReportFilters, "limit", "cursor"],
            directory, context.RequestAborted);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var reports = await ReportFilters.ApplyAsync(db.Reports.AsNoTracking(), query, directory, context.RequestAborted);
        if (query.After is { } after)
        {
            reports = reports.Where(r => r.ObservedAt < after.At || (r.ObservedAt == after.At && r.Number < after.Number));
        }

        // The access predicate goes last: SQLite evaluates conditions in the order written, and the cheap
        // bounding-box test then spares the marking test on rows outside the box.
        reports = reports.VisibleTo(viewer);

        // Two steps: pick the newest keys from the covering index, then read only those rows.
        var keys = reports.OrderByDescending(r => r.ObservedAt).ThenByDescending(r => r.Number).Take(query.Limit + 1).Select(r => r.Number);
        var rows = await db.Reports.AsNoTracking().Where(r => keys.Contains(r.Number))
            .OrderByDescending(r => r.ObservedAt).ThenByDescending(r => r.Number)
            .Select(r => new { Report = r, IncidentId = db.IncidentReports.Where(l => l.ReportId == r.Id).Select(l => (Guid?)l.IncidentId).FirstOrDefault() })
            .ToListAsync(context.RequestAborted);
        var page = rows.Take(query.Limit).ToList();
        await RecordReadAsync(audit, viewer, page.Select(r => r.Report).ToList(), context, time);
        var originals = await ReportMapping.VisibleOriginalsAsync(db, viewer, page.Select(r => r.Report), context.RequestAborted);
        var items = page.Select(row => row.Report.ToDto(row.IncidentId, viewer, directory, markings, originals)).ToList();
        var next = rows.Count > query.Limit ? new Cursor(rows[query.Limit - 1].Report.ObservedAt, rows[query.Limit - 1].Report.Number).Encode(cursors.For(CursorListings.Reports)) : null;
        return TypedResults.Ok(new Page<ReportDto>(items, next));
    }

    private static async Task<Ok<List<CategoryDto>>> Categories(ConcordDb db, CancellationToken cancellationToken) =>
        TypedResults.Ok(await db.Categories.AsNoTracking().OrderBy(c => c.Code)
            .Select(c => new CategoryDto(c.Code, c.Parent, c.Scheme, c.Label, c.LabelFr, c.Description))
            .ToListAsync(cancellationToken));
}

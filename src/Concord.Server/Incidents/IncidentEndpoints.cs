using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

internal sealed record IncidentDto(
    Guid Id,
    string Category,
    string Status,
    string Title,
    DateTimeOffset StartsAt,
    DateTimeOffset EndsAt,
    LocationDto Location,
    int? KilledBest,
    int? InjuredBest,
    int ReportCount,
    MarkingDto Marking,
    DateTimeOffset UpdatedAt,
    IReadOnlyList<ReportDto>? Reports = null);

internal sealed record ChangeStatus(string? Status);

internal static class IncidentEndpoints
{
    public static RouteGroupBuilder MapIncidents(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/incidents").WithTags("Incidents").RequireAuthorization();
        group.MapGet("/", List).WithSummary("Incidents you may see, newest first, with filters and keyset paging.");
        group.MapGet("/geojson", GeoJson)
            .Produces(StatusCodes.Status200OK, contentType: "application/geo+json")
            .WithSummary("Incidents you may see as a GeoJSON FeatureCollection (same filters as the list).");
        group.MapGet("/{id:guid}", Get).WithSummary("One incident with the reports you may see.");
        group.MapPost("/{id:guid}/status", SetStatus).WithSummary("Move an incident along reported → verified → closed (analysts).");
        return group;
    }

    private static IncidentDto ToDto(this Incident i, MissionDirectory directory, MarkingFormat markings, IReadOnlyList<ReportDto>? reports = null) => new(
        i.Id,
        i.Category,
        i.Status.ToString().ToLowerInvariant(),
        i.Title,
        new DateTimeOffset(i.StartsAt, TimeSpan.Zero),
        new DateTimeOffset(i.EndsAt, TimeSpan.Zero),
        new LocationDto(i.Latitude, i.Longitude, i.LocationPrecisionMeters, directory.Area(i.AreaId)?.Code),
        i.KilledBest,
        i.InjuredBest,
        i.ReportCount,
        markings.ToDto(i),
        new DateTimeOffset(i.UpdatedAt, TimeSpan.Zero),
        reports);

    internal static bool TryFilter(IQueryable<Incident> incidents, ListQuery query, out IQueryable<Incident> filtered, out Dictionary<string, string[]> errors)
    {
        errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (query.Bbox is { } box)
        {
            incidents = incidents.Where(i => i.Latitude >= box.South && i.Latitude <= box.North && i.Longitude >= box.West && i.Longitude <= box.East);
        }

        if (query.From is { } from)
        {
            incidents = incidents.Where(i => i.EndsAt >= from);
        }

        if (query.To is { } to)
        {
            incidents = incidents.Where(i => i.StartsAt <= to);
        }

        if (query.Category is { } category)
        {
            var under = category + ".";
            incidents = incidents.Where(i => i.Category == category || i.Category.StartsWith(under));
        }

        if (query.Status is { } statusText)
        {
            if (Enum.TryParse<IncidentStatus>(statusText, true, out var status) && Enum.IsDefined(status))
            {
                incidents = incidents.Where(i => i.Status == status);
            }
            else
            {
                errors["status"] = ["must be reported, verified or closed"];
            }
        }

        if (query.Text is { } text)
        {
            var needle = text.ToLowerInvariant();
            // Translated to SQL lower(); the culture rules do not apply in the database.
#pragma warning disable CA1304, CA1311, CA1862
            incidents = incidents.Where(i => i.Title.ToLower().Contains(needle));
#pragma warning restore CA1304, CA1311, CA1862
        }

        filtered = incidents;
        return errors.Count == 0;
    }

    private static async Task<Results<Ok<Page<IncidentDto>>, ProblemHttpResult>> List(HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings)
    {
        if (!ListQuery.TryParse(context.Request.Query, out var query, out var errors)
            || !TryFilter(db.Incidents.AsNoTracking(), query, out var incidents, out errors))
        {
            return Problems.Invalid(errors);
        }

        if (query.After is { } after)
        {
            incidents = incidents.Where(i => i.StartsAt < after.At || (i.StartsAt == after.At && i.Number < after.Number));
        }

        incidents = incidents.VisibleTo(viewer);

        var rows = await incidents.OrderByDescending(i => i.StartsAt).ThenByDescending(i => i.Number)
            .Take(query.Limit + 1).ToListAsync(context.RequestAborted);
        var items = rows.Take(query.Limit).Select(i => i.ToDto(directory, markings)).ToList();
        var next = rows.Count > query.Limit ? new Cursor(rows[query.Limit - 1].StartsAt, rows[query.Limit - 1].Number).Encode() : null;
        return TypedResults.Ok(new Page<IncidentDto>(items, next));
    }

    private static async Task<Results<Ok<IncidentDto>, NotFound>> Get(Guid id, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, CancellationToken cancellationToken)
    {
        var incident = await db.Incidents.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(i => i.Id == id, cancellationToken);
        if (incident is null)
        {
            return TypedResults.NotFound();
        }

        // Only the linked reports this viewer may see.
        var reports = await db.IncidentReports.Where(l => l.IncidentId == id)
            .Join(db.Reports.AsNoTracking().VisibleTo(viewer), l => l.ReportId, r => r.Id, (l, r) => r)
            .OrderBy(r => r.ObservedAt)
            .ToListAsync(cancellationToken);
        return TypedResults.Ok(incident.ToDto(directory, markings, reports.Select(r => r.ToDto(id, viewer, directory, markings)).ToList()));
    }

    private static async Task<Results<Ok<IncidentDto>, NotFound, ProblemHttpResult>> SetStatus(
        Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, TimeProvider time)
    {
        var incident = await db.Incidents.VisibleTo(viewer).SingleOrDefaultAsync(i => i.Id == id, context.RequestAborted);
        if (incident is null)
        {
            return TypedResults.NotFound();
        }

        if (!viewer.HasRole(MemberRoles.Analyst))
        {
            return Problems.Forbidden("only analysts change an incident's status");
        }

        var (body, problem) = await JsonBody.ReadAsync<ChangeStatus>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (!Enum.TryParse<IncidentStatus>(body!.Status, true, out var status) || !Enum.IsDefined(status) || int.TryParse(body.Status, out _))
        {
            return Problems.Field("status", "must be reported, verified or closed");
        }

        if (status != incident.Status)
        {
            if (!Incident.CanMove(incident.Status, status))
            {
                return Problems.Field("status", $"an incident cannot move from {incident.Status.ToString().ToLowerInvariant()} to {body.Status.ToLowerInvariant()}", StatusCodes.Status409Conflict);
            }

            incident.Status = status;
            incident.UpdatedAt = time.GetUtcNow().UtcDateTime;
            await db.SaveChangesAsync(context.RequestAborted);
        }

        return TypedResults.Ok(incident.ToDto(directory, markings));
    }

    /// <summary>Streams a FeatureCollection straight to the response: no intermediate document for thousands of features.</summary>
    private static async Task<IResult> GeoJson(HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings)
    {
        if (!ListQuery.TryParse(context.Request.Query, out var query, out var errors)
            || !TryFilter(db.Incidents.AsNoTracking(), query, out var incidents, out errors))
        {
            return Problems.Invalid(errors);
        }

        // The access predicate goes last, after the cheap bounding-box test (see ReportEndpoints.List).
        incidents = incidents.VisibleTo(viewer);

        // Two steps: pick the newest keys from the covering index, then read only those rows.
        var keys = incidents.OrderByDescending(i => i.StartsAt).ThenByDescending(i => i.Number).Take(query.Limit).Select(i => i.Number);
        var rows = await db.Incidents.AsNoTracking().Where(i => keys.Contains(i.Number))
            .OrderByDescending(i => i.StartsAt).ThenByDescending(i => i.Number)
            .Select(i => new { i.Id, i.Category, i.Status, i.Title, i.StartsAt, i.EndsAt, i.Latitude, i.Longitude, i.KilledBest, i.ReportCount, i.Classification, i.ReleasableTo, i.Caveats })
            .ToListAsync(context.RequestAborted);
        var labels = new Dictionary<(int, string, long), string?>();

        context.Response.ContentType = "application/geo+json";
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        writer.WriteString("type", "FeatureCollection");
        writer.WriteStartArray("features");
        foreach (var i in rows)
        {
            writer.WriteStartObject();
            writer.WriteString("type", "Feature");
            writer.WriteString("id", i.Id);
            writer.WriteStartObject("geometry");
            writer.WriteString("type", "Point");
            writer.WriteStartArray("coordinates");
            writer.WriteNumberValue(Math.Round(i.Longitude, 6));
            writer.WriteNumberValue(Math.Round(i.Latitude, 6));
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteStartObject("properties");
            writer.WriteString("category", i.Category);
            writer.WriteString("status", i.Status.ToString().ToLowerInvariant());
            writer.WriteString("title", i.Title);
            writer.WriteString("startsAt", i.StartsAt.ToString("O", CultureInfo.InvariantCulture));
            writer.WriteString("endsAt", i.EndsAt.ToString("O", CultureInfo.InvariantCulture));
            if (i.KilledBest is { } killed)
            {
                writer.WriteNumber("killedBest", killed);
            }

            writer.WriteNumber("reportCount", i.ReportCount);
            writer.WriteNumber("classification", i.Classification);
            if (!labels.TryGetValue((i.Classification, i.ReleasableTo, i.Caveats), out var label))
            {
                label = markings.ToDto(i.Classification, i.ReleasableTo, i.Caveats).Label;
                labels[(i.Classification, i.ReleasableTo, i.Caveats)] = label;
            }

            writer.WriteString("marking", label);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
        return TypedResults.Empty;
    }
}

using System.Globalization;
using System.Text;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Sharing;

/// <summary>A count, marked as figures are: the highest classification and every caveat of the records counted.</summary>
internal sealed record CountDto(long Count, string Classification, IReadOnlyList<string> Caveats);

internal sealed record CategoryCount(string Category, long Count);

/// <summary>Counts by category, marked as <see cref="CountDto"/> is.</summary>
internal sealed record CategoryCountsDto(string Classification, IReadOnlyList<string> Caveats, IReadOnlyList<CategoryCount> Items);

/// <summary>
/// What leaves Concord, and the counts derived from what is in it. Exports carry only what the viewer may see and whose
/// TLP allows the stated audience; counts are computed over visible records only.
/// </summary>
internal static class ExportEndpoints
{
    public const int MaxExportRows = 100_000;

    public static void MapExports(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").WithTags("Sharing").RequireAuthorization();
        group.MapGet("/exports/reports.csv", ReportsCsv)
            .Produces(StatusCodes.Status200OK, contentType: "text/csv")
            .WithListParameters(limit: $"at most this many rows (1–{ListQuery.MaxLimit}; without it, up to {MaxExportRows})")
            .WithQueryParameter("audience", "who the export is for: public, community, clients or organization", required: true)
            .WithSummary("Reports you may see whose TLP allows the audience (public, community, clients, organization), as CSV.");
        group.MapGet("/reports/count", Count).WithListParameters(limited: false).WithSummary("How many reports you may see match the filters.");
        group.MapGet("/reports/by-category", ByCategory).WithListParameters(limited: false).WithSummary("Counts of the reports you may see, by category.");
    }

    internal static bool TryAudience(string? text, out ExportAudience audience) =>
        EnumNames.TryParse(text, out audience);

    private static async Task<IResult> ReportsCsv(HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        var (query, errors) = await ReportFilters.ReadAsync(context.Request.Query, null, [.. ListQuery.ReportFilters, "limit", "audience"], directory, context.RequestAborted);
        var given = context.Request.Query["audience"].ToString();
        if (!TryAudience(given, out var audience))
        {
            errors["audience"] = [(given.Length == 0 ? "is required" : $"'{QueryReader.Shown(given)}' is not an audience")
                + ": public, community, clients or organization (who the export is for decides which TLP levels it may carry)"];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var allowed = Enum.GetValues<Tlp>().Where(t => Tlps.MayGoTo(t, audience)).ToList();
        // A caveat is a compartment (DECONFLICTION-ONLY, SOURCE-PROTECTED): whatever its TLP (AMBER by default), a record under
        // one leaves only for the exporter's own organisation, never for its clients, a community or the public.
        var caveatsMayGo = audience == ExportAudience.Organization;
        System.Linq.Expressions.Expression<Func<Report, bool>> exportable = r => allowed.Contains(r.Tlp) && (caveatsMayGo || r.Caveats == 0);
        // More than the limit: the newest rows go (what an export for a briefing wants), and the answer says it is cut.
        // What is exported is chosen first by id and marking alone (tens of bytes a row), for the headers and the audit;
        // the rows are then read and written a few hundred at a time, so that an export of 100,000 reports with long
        // narratives streams in bounded memory rather than being held whole (three times: rows, text, bytes).
        var limit = context.Request.Query["limit"].ToString().Length > 0 ? Math.Min(query.Limit, MaxExportRows) : MaxExportRows;
        var chosen = await (await ReportFilters.ApplyAsync(db.Reports.AsNoTracking(), query, directory, context.RequestAborted))
            .Where(exportable)
            .VisibleTo(viewer)
            .OrderByDescending(r => r.ObservedAt).ThenByDescending(r => r.Number)
            .Select(r => new { r.Id, r.Classification, r.Caveats })
            .Take(limit + 1)
            .ToListAsync(context.RequestAborted);
        var truncated = chosen.Count > limit;
        var rows = chosen.Take(limit).Reverse().ToList();

        await audit.RecordReadAsync(viewer, "report", [.. rows.Select(r => (r.Id, r.Classification, r.Caveats))], context.Request.Path + context.Request.QueryString,
            time.GetUtcNow().UtcDateTime, context.RequestAborted);

        // The file is marked with its highest level and every caveat of its rows.
        var fileMarking = new AuditMarking(rows.Count == 0 ? 0 : rows.Max(r => r.Classification), rows.Aggregate(0L, (bits, r) => bits | r.Caveats));
        var (highest, caveats) = markings.Figures([(fileMarking.Level, fileMarking.Caveats)]);
        // An export leaves Concord: whatever it holds (unclassified rows too, which reads do not name), one entry says who took
        // how many rows for which audience, marked as the file is.
        await audit.RecordAsync(Audits.Entry(viewer, AuditActions.Export, "report", null, fileMarking, time.GetUtcNow().UtcDateTime,
            Audits.Detail(new { path = context.Request.Path + context.Request.QueryString, audience = audience.ToString().ToLowerInvariant(), rows = rows.Count, truncated })),
            context.RequestAborted);
        context.Response.ContentType = "text/csv; charset=utf-8";
        context.Response.Headers.ContentDisposition = $"attachment; filename=\"concord-reports-{audience.ToString().ToLowerInvariant()}.csv\"";
        context.Response.Headers["X-Concord-Classification"] = highest;
        // Every caveat a row of the file carries (each row's own marking is in its marking column).
        context.Response.Headers["X-Concord-Caveats"] = string.Join(", ", caveats);
        context.Response.Headers["X-Concord-Audience"] = audience.ToString().ToLowerInvariant();
        context.Response.Headers["X-Concord-Truncated"] = truncated ? "true" : "false";
        // UTF-8 with its byte order mark and CRLF line ends (RFC 4180): spreadsheet software opening the file otherwise
        // reads it in the computer's legacy code page, and place names such as Ndélé or Ouham-Pendé come out garbled.
        await using var csv = new StreamWriter(context.Response.Body, new UTF8Encoding(encoderShouldEmitUTF8Identifier: true), 64 * 1024) { NewLine = "\r\n" };
        await csv.WriteLineAsync("id,observed_at,precision,latitude,longitude,precision_m,area,category,killed_civilian_best,killed_other_best,injured_civilian_best,injured_other_best,narrative,source_grade,marking,tlp,organization");
        foreach (var chunk in rows.Chunk(500))
        {
            // Read again under the same conditions: a report released more narrowly since it was chosen is left out, and so
            // is one whose level or caveats changed (the headers and the audit, already written, name the chosen ones).
            var ids = chunk.Select(c => c.Id).ToList();
            var read = await db.Reports.AsNoTracking().Where(r => ids.Contains(r.Id)).Where(exportable).VisibleTo(viewer)
                .ToDictionaryAsync(r => r.Id, context.RequestAborted);
            foreach (var chosenRow in chunk)
            {
                if (read.TryGetValue(chosenRow.Id, out var r) && r.Classification == chosenRow.Classification && r.Caveats == chosenRow.Caveats)
                {
                    await csv.WriteLineAsync(Row(r, directory, markings));
                }
            }
        }

        return TypedResults.Empty;
    }

    private static string Row(Report r, MissionDirectory directory, MarkingFormat markings)
    {
        var organization = directory.Organization(r.OrganizationId)?.Code ?? "";
        return new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"{r.Id},{r.ObservedAt:yyyy-MM-ddTHH:mm:ssZ},{r.ObservedPrecision.ToString().ToLowerInvariant()},")
            .Append(CultureInfo.InvariantCulture, $"{r.Latitude:0.######},{r.Longitude:0.######},{r.LocationPrecisionMeters:0},{Quote(directory.Area(r.AreaId)?.Name)},{r.Category},")
            .Append(CultureInfo.InvariantCulture, $"{r.KilledCivilianBest},{r.KilledOtherBest},{r.InjuredCivilianBest},{r.InjuredOtherBest},{Quote(r.Narrative)},")
            .Append(CultureInfo.InvariantCulture, $"{r.SourceReliability}{r.SourceCredibility},{Quote(markings.ToDto(r).Label)},{Tlps.Label(r.Tlp)},{organization}")
            .ToString();
    }

    private static async Task<Results<Ok<CountDto>, ProblemHttpResult>> Count(HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings,
        AuditWriter audit, TimeProvider time)
    {
        var (query, errors) = await ReportFilters.ReadAsync(context.Request.Query, null, ListQuery.ReportFilters, directory, context.RequestAborted);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        // Counted per marking in the same query, for the audit.
        var reports = await ReportFilters.ApplyAsync(db.Reports.AsNoTracking(), query, directory, context.RequestAborted);
        var levels = await reports.VisibleTo(viewer).GroupBy(r => new { r.Classification, r.Caveats })
            .Select(g => new { g.Key.Classification, g.Key.Caveats, Count = g.LongCount() }).ToListAsync(context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "report", levels.Select(l => (l.Classification, l.Caveats, l.Count)), context, time.GetUtcNow().UtcDateTime);
        var (classification, caveats) = markings.Figures(levels.Select(l => (l.Classification, l.Caveats)));
        return TypedResults.Ok(new CountDto(levels.Sum(l => l.Count), classification, caveats));
    }

    private static async Task<Results<Ok<CategoryCountsDto>, ProblemHttpResult>> ByCategory(HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory,
        MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        var (query, errors) = await ReportFilters.ReadAsync(context.Request.Query, null, ListQuery.ReportFilters, directory, context.RequestAborted);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var reports = await ReportFilters.ApplyAsync(db.Reports.AsNoTracking(), query, directory, context.RequestAborted);
        var groups = await reports.VisibleTo(viewer)
            .GroupBy(r => new { r.Category, r.Classification, r.Caveats }).Select(g => new { g.Key.Category, g.Key.Classification, g.Key.Caveats, Count = g.LongCount() })
            .ToListAsync(context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "report", groups.Select(g => (g.Classification, g.Caveats, g.Count)), context, time.GetUtcNow().UtcDateTime);
        var (classification, caveats) = markings.Figures(groups.Select(g => (g.Classification, g.Caveats)));
        return TypedResults.Ok(new CategoryCountsDto(classification, caveats,
            groups.GroupBy(g => g.Category, StringComparer.Ordinal).Select(g => new CategoryCount(g.Key, g.Sum(c => c.Count)))
                .OrderByDescending(c => c.Count).ThenBy(c => c.Category, StringComparer.Ordinal).ToList()));
    }

    /// <summary>
    /// A CSV text field. Text a spreadsheet would take for a formula (starting with =, +, -, @, a tab or a carriage return)
    /// gets a leading apostrophe, as OWASP advises: narratives come from other organisations' reporters, and the analyst
    /// opening the export must not run what one of them wrote.
    /// </summary>
    private static string Quote(string? text) =>
        text is null ? "" : "\"" + (text is ['=' or '+' or '-' or '@' or '\t' or '\r', ..] ? "'" : "") + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

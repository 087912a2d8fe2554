using Concord.Server.Data;
using Concord.Server.Http;

namespace Concord.Server.Reports;

/// <summary>The list filters of reports, shared by the list, the counts and the exports (the access predicate comes after).</summary>
internal static class ReportFilters
{
    /// <summary>
    /// Adds to <paramref name="errors"/> an organisation code or category the mission does not know: an error (in the
    /// report and the incident filters alike), not an empty list.
    /// </summary>
    public static async Task AddProblemsAsync(ListQuery query, MissionDirectory directory, Dictionary<string, string[]> errors, CancellationToken cancellationToken)
    {
        if (query.Organization is { } code && await directory.OrganizationAsync(code, cancellationToken) is null)
        {
            errors["organization"] = [$"no organisation '{Http.QueryReader.Shown(code)}'"];
        }

        if (query.Category is { } category && !directory.IsKnownCategory(category))
        {
            errors["category"] = [$"no category '{Http.QueryReader.Shown(category)}' in the taxonomy"];
        }
    }

    /// <summary>
    /// A listing's query read and its organisation and category judged: every bad parameter is named in one answer, not
    /// the query's first and the filters' after it is mended.
    /// </summary>
    public static async Task<(ListQuery Query, Dictionary<string, string[]> Errors)> ReadAsync(IQueryCollection parameters, CursorKeys? cursors,
        IReadOnlyCollection<string> honoured, MissionDirectory directory, CancellationToken cancellationToken)
    {
        ListQuery.TryParse(parameters, cursors, out var query, out var errors, honoured);
        await AddProblemsAsync(query, directory, errors, cancellationToken);
        return (query, errors);
    }

    public static async Task<IQueryable<Report>> ApplyAsync(IQueryable<Report> reports, ListQuery query, MissionDirectory directory, CancellationToken cancellationToken)
    {
        if (query.Bbox is { } box)
        {
            reports = reports.Where(r => r.Latitude >= box.South && r.Latitude <= box.North && r.Longitude >= box.West && r.Longitude <= box.East);
        }

        if (query.From is { } from)
        {
            reports = reports.Where(r => r.ObservedAt >= from);
        }

        if (query.To is { } to)
        {
            reports = reports.Where(r => r.ObservedAt <= to);
        }

        if (query.Category is { } category)
        {
            var under = category + ".";
            reports = reports.Where(r => r.Category == category || r.Category.StartsWith(under));
        }

        if (query.Organization is { } code)
        {
            // An unknown code matches nothing (rather than everything).
            var organizationId = (await directory.OrganizationAsync(code, cancellationToken))?.Id ?? Guid.Empty;
            reports = reports.Where(r => r.OrganizationId == organizationId);
        }

        if (query.Text is { } text)
        {
            var (needle, beyondAscii) = TextSearch.Needle(text);
            // Translated to SQL lower(), or ConcordDb.Lower for words beyond ASCII; the culture rules do not apply in the database.
#pragma warning disable CA1304, CA1311, CA1862
            reports = reports.Where(r => (beyondAscii ? ConcordDb.Lower(r.Narrative) : r.Narrative.ToLower()).Contains(needle));
#pragma warning restore CA1304, CA1311, CA1862
        }

        return reports;
    }
}

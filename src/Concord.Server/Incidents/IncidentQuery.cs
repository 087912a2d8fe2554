using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;

namespace Concord.Server.Incidents;

/// <summary>
/// The incident filters shared by the API, the map, the incident list and the dashboard, with the access predicate applied
/// last. Filtering by organisation looks only at the reports the viewer may see, so it never reveals that an invisible
/// report from that organisation is linked to a visible incident.
/// </summary>
internal static class IncidentQuery
{
    public static async Task<(IncidentSelection? Incidents, Dictionary<string, string[]> Errors)> ApplyAsync(
        ConcordDb db, IQueryable<Incident> source, ListQuery query, Viewer viewer, MissionDirectory directory, MarkingFormat markings, CancellationToken cancellationToken)
    {
        if (!IncidentEndpoints.TryFilter(db, viewer, source, query, out var incidents, out var errors))
        {
            return (null, errors);
        }

        // Unknown organisation codes and categories, as the report filters judge them.
        foreach (var (field, reasons) in await Reports.ReportFilters.ProblemsAsync(query, directory, cancellationToken) ?? [])
        {
            errors[field] = reasons;
        }

        if (query.Classification is { } label)
        {
            if (markings.Scheme.TryParse(label, out var level))
            {
                // A mixed incident's stored level may be a hidden report's: it is selected by the levels of the reports the viewer may see.
                var visibleReports = db.Reports.VisibleTo(viewer);
                // Its level as the viewer sees it is the highest of those reports: some at this level, none above.
                incidents = incidents.Where(i => (!i.Mixed && i.Classification == level)
                    || (i.Mixed && db.IncidentReports.Any(l => l.IncidentId == i.Id && visibleReports.Any(r => r.Id == l.ReportId && r.Classification == level))
                        && !db.IncidentReports.Any(l => l.IncidentId == i.Id && visibleReports.Any(r => r.Id == l.ReportId && r.Classification > level))));
            }
            else
            {
                errors["classification"] = [$"must be one of {string.Join(", ", markings.Scheme.Levels)}"];
            }
        }

        if (query.Organization is { } code && await directory.OrganizationAsync(code, cancellationToken) is { } organization)
        {
            var reports = db.Reports.VisibleTo(viewer).Where(r => r.OrganizationId == organization.Id);
            incidents = incidents.Where(i => db.IncidentReports.Any(l => l.IncidentId == i.Id && reports.Any(r => r.Id == l.ReportId)));
        }

        if (errors.Count > 0)
        {
            return (null, errors);
        }

        var plain = db.PlainVisible(incidents.Where(i => !i.Mixed), viewer);
        var mixed = db.MixedVisible(incidents.Where(i => i.Mixed), viewer);
        if (query.Bbox is { } box)
        {
            if (MapCells.Covering(box) is { } cells)
            {
                plain = plain.Where(i => cells.Contains(i.Cell));
            }

            plain = plain.Where(i => i.Latitude >= box.South && i.Latitude <= box.North && i.Longitude >= box.West && i.Longitude <= box.East);

            // A rebuilt incident lies where its most precise visible report does; its stored place may be a hidden report's.
            var inside = db.Reports.VisibleTo(viewer).Where(r => r.Latitude >= box.South && r.Latitude <= box.North && r.Longitude >= box.West && r.Longitude <= box.East);
            mixed = mixed.Where(i => db.IncidentReports.Any(l => l.IncidentId == i.Id && inside.Any(r => r.Id == l.ReportId)));
        }

        return (new IncidentSelection(db, viewer, query, plain, mixed), errors);
    }
}

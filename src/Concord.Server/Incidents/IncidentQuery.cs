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
        if (!IncidentEndpoints.TryFilter(db, viewer, source, query, out _, out var errors))
        {
            return (null, errors);
        }

        // Unknown organisation codes and categories, as the report filters judge them.
        await Reports.ReportFilters.AddProblemsAsync(query, directory, errors, cancellationToken);

        var level = -1;
        if (query.Classification is { } label && !markings.Scheme.TryParse(label, out level))
        {
            errors["classification"] = [$"must be one of {string.Join(", ", markings.Scheme.Levels)}"];
        }

        var organization = query.Organization is { } code ? await directory.OrganizationAsync(code, cancellationToken) : null;
        if (errors.Count > 0)
        {
            return (null, errors);
        }

        // Each part is narrowed first by what its index holds, then by the filters.
        var plain = Filter(source.Where(i => !i.Mixed));
        var mixed = source.Where(i => i.Mixed);
        if (query.Bbox is { } box)
        {
            if (MapCells.Covering(box) is { } cells)
            {
                plain = plain.Where(i => cells.Contains(i.Cell));
            }

            plain = plain.Where(i => i.Latitude >= box.South && i.Latitude <= box.North && i.Longitude >= box.West && i.Longitude <= box.East);

            // A rebuilt incident lies where its most precise visible report does; its stored place may be a hidden report's.
            // The box around all its reports (in the mixed index) rules most out before any report is read.
            var inside = db.Reports.VisibleTo(viewer).Where(r => r.Latitude >= box.South && r.Latitude <= box.North && r.Longitude >= box.West && r.Longitude <= box.East);
            mixed = mixed.Where(i => i.North >= box.South && i.South <= box.North && i.East >= box.West && i.West <= box.East)
                .Where(i => db.IncidentReports.Any(l => l.IncidentId == i.Id && inside.Any(r => r.Id == l.ReportId)));
        }

        return (new IncidentSelection(db, viewer, query, db.PlainVisible(plain, viewer), db.MixedVisible(Filter(mixed), viewer)), errors);

        IQueryable<Incident> Filter(IQueryable<Incident> part)
        {
            IncidentEndpoints.TryFilter(db, viewer, part, query, out var incidents, out _);
            if (level >= 0)
            {
                // A mixed incident's stored level may be a hidden report's: it is selected by the levels of the reports the viewer may see.
                var visibleReports = db.Reports.VisibleTo(viewer);
                // Its level as the viewer sees it is the highest of those reports: some at this level, none above.
                incidents = incidents.Where(i => (!i.Mixed && i.Classification == level)
                    || (i.Mixed && db.IncidentReports.Any(l => l.IncidentId == i.Id && visibleReports.Any(r => r.Id == l.ReportId && r.Classification == level))
                        && !db.IncidentReports.Any(l => l.IncidentId == i.Id && visibleReports.Any(r => r.Id == l.ReportId && r.Classification > level))));
            }

            if (organization is not null)
            {
                var reports = db.Reports.VisibleTo(viewer).Where(r => r.OrganizationId == organization.Id);
                incidents = incidents.Where(i => db.IncidentReports.Any(l => l.IncidentId == i.Id && reports.Any(r => r.Id == l.ReportId)));
            }

            return incidents;
        }
    }
}

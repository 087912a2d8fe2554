using System.Linq.Expressions;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>
/// Incidents are derived records: a viewer sees an incident when they may see at least one of its reports, and sees it as
/// built from those reports only. When all of an incident's reports share one marking (the common case) the stored
/// incident carries that marking and its stored summary is exact for whoever may see it; when they differ (a merge, a
/// sanitised release) the incident is "mixed" and is rebuilt per viewer.
/// </summary>
internal static class IncidentViews
{
    public static IQueryable<Incident> VisibleIncidents(this ConcordDb db, IQueryable<Incident> source, Viewer viewer)
    {
        var own = Visibility.Predicate<Incident>(viewer);
        var reports = db.Reports.Where(Visibility.Predicate<Report>(viewer));
        var links = db.IncidentReports;
        Expression<Func<Incident, bool>> mixed = i => i.Mixed && links.Any(l => l.IncidentId == i.Id && reports.Any(r => r.Id == l.ReportId));
        var parameter = own.Parameters[0];
        var body = Expression.OrElse(
            Expression.AndAlso(Expression.Not(Expression.Property(parameter, nameof(Incident.Mixed))), own.Body),
            new Rebind(mixed.Parameters[0], parameter).Visit(mixed.Body));
        return source.Where(Expression.Lambda<Func<Incident, bool>>(body, parameter));
    }

    /// <summary>The incidents of <paramref name="source"/> (not mixed) whose own marking lets <paramref name="viewer"/> read them.</summary>
    public static IQueryable<Incident> PlainVisible(this ConcordDb db, IQueryable<Incident> source, Viewer viewer) =>
        source.Where(Visibility.Predicate<Incident>(viewer));

    /// <summary>The incidents of <paramref name="source"/> (mixed) that hold at least one report <paramref name="viewer"/> may see.</summary>
    public static IQueryable<Incident> MixedVisible(this ConcordDb db, IQueryable<Incident> source, Viewer viewer)
    {
        var reports = db.Reports.Where(Visibility.Predicate<Report>(viewer));
        return source.Where(i => db.IncidentReports.Any(l => l.IncidentId == i.Id && reports.Any(r => r.Id == l.ReportId)));
    }

    /// <summary>Replaces each mixed incident by its summary over the reports <paramref name="viewer"/> may see.</summary>
    public static async Task<List<Incident>> AsSeenByAsync(this ConcordDb db, IReadOnlyList<Incident> incidents, Viewer viewer, CancellationToken cancellationToken)
    {
        var mixedIds = incidents.Where(i => i.Mixed).Select(i => i.Id).ToList();
        if (mixedIds.Count == 0)
        {
            return [.. incidents];
        }

        var visible = await db.IncidentReports.Where(l => mixedIds.Contains(l.IncidentId))
            .Join(db.Reports.AsNoTracking().VisibleTo(viewer), l => l.ReportId, r => r.Id, (l, r) => new { l.IncidentId, l.LinkedAt, Report = r })
            // In the order the store received them, as the writer reads them: two reports observed at the same time (or
            // placed as precisely) give the summary the same title and place in every view and on both stores.
            .OrderBy(v => v.Report.Number)
            .ToListAsync(cancellationToken);
        var byIncident = visible.GroupBy(v => v.IncidentId).ToDictionary(g => g.Key, g => (Reports: g.Select(v => v.Report).ToList(), LinkedAt: g.Select(v => v.LinkedAt).ToList()));
        var result = new List<Incident>(incidents.Count);
        foreach (var incident in incidents)
        {
            if (!incident.Mixed)
            {
                result.Add(incident);
            }
            else if (byIncident.TryGetValue(incident.Id, out var seen))
            {
                // Last changed, as far as this viewer can tell: when one of their reports last joined, or its status last moved.
                var view = IncidentSummary.ViewFor(incident, seen.Reports, seen.LinkedAt);
                view.UpdatedAt = IncidentSummary.LastChange(view, seen.LinkedAt);
                result.Add(view);
            }
        }

        return result;
    }

    private sealed class Rebind(ParameterExpression from, ParameterExpression to) : ExpressionVisitor
    {
        protected override Expression VisitParameter(ParameterExpression node) => node == from ? to : base.VisitParameter(node);
    }
}

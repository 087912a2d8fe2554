using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Realtime;

/// <summary>Which changes of a window of the feed a viewer may learn of: those of records the viewer may see now.</summary>
internal static class ChangeVisibility
{
    /// <summary>
    /// The changes of <paramref name="window"/> about reports and incidents <paramref name="viewer"/> may see, in feed order.
    /// A deleted record cannot be checked, so its deletion is never announced: clients re-read what they show.
    /// </summary>
    public static async Task<List<Change>> VisibleAsync(ConcordDb db, Viewer viewer, IReadOnlyList<Change> window, CancellationToken cancellationToken)
    {
        var reportIds = window.Where(c => c.Entity == "report").Select(c => c.EntityId).Distinct().ToList();
        var incidentIds = window.Where(c => c.Entity == "incident").Select(c => c.EntityId).Distinct().ToList();
        var visible = new HashSet<Guid>();
        if (reportIds.Count > 0)
        {
            visible.UnionWith(await db.Reports.VisibleTo(viewer).Where(r => reportIds.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken));
        }

        if (incidentIds.Count > 0)
        {
            visible.UnionWith(await db.VisibleIncidents(db.Incidents.Where(i => incidentIds.Contains(i.Id)), viewer).Select(i => i.Id).ToListAsync(cancellationToken));
        }

        return window.Where(c => visible.Contains(c.EntityId)).ToList();
    }
}

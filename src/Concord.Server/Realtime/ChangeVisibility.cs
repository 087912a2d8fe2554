using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Realtime;

/// <summary>Which changes of a window of the feed a viewer may learn of: those of records the viewer may see now.</summary>
internal static class ChangeVisibility
{
    /// <summary>
    /// The changes of <paramref name="window"/> about reports, incidents and coordination records <paramref name="viewer"/> may see, in feed order.
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

        await AddVisibleAsync(db.Tasks, "task", window, viewer, visible, cancellationToken);
        await AddVisibleAsync(db.Requests, "request", window, viewer, visible, cancellationToken);
        await AddVisibleAsync(db.Patrols, "patrol", window, viewer, visible, cancellationToken);
        await AddVisibleAsync(db.Meetings, "meeting", window, viewer, visible, cancellationToken);
        await AddVisibleAsync(db.LiaisonLog, "liaison", window, viewer, visible, cancellationToken);
        return window.Where(c => visible.Contains(c.EntityId)).ToList();
    }

    /// <summary>Adds the ids of <paramref name="entity"/> changes in the window that the viewer may see (one query, none when the window has no such change).</summary>
    private static async Task AddVisibleAsync<T>(IQueryable<T> records, string entity, IReadOnlyList<Change> window, Viewer viewer, HashSet<Guid> visible, CancellationToken cancellationToken)
        where T : class, IMarked, IFeedEntity
    {
        var ids = window.Where(c => c.Entity == entity).Select(c => c.EntityId).Distinct().ToList();
        if (ids.Count > 0)
        {
            visible.UnionWith(await records.VisibleTo(viewer).Where(r => ids.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken));
        }
    }
}

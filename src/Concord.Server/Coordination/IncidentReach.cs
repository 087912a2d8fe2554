using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Whom an incident's reports are released to: an organisation may see the incident (as built from the reports it may
/// see) when one of them is released to it. The incident's own marking is what all of its reports share, narrower than
/// that when they differ.
/// </summary>
internal sealed class IncidentReach(Dictionary<Guid, List<string>> releasableTo)
{
    public static async Task<IncidentReach> ReadAsync(ConcordDb db, IEnumerable<Guid?> incidents, CancellationToken cancellationToken)
    {
        var ids = incidents.OfType<Guid>().Distinct().ToList();
        if (ids.Count == 0)
        {
            return new IncidentReach([]);
        }

        var rows = await db.IncidentReports.Where(l => ids.Contains(l.IncidentId))
            .Join(db.Reports, l => l.ReportId, r => r.Id, (l, r) => new { l.IncidentId, r.ReleasableTo })
            .Distinct()
            .ToListAsync(cancellationToken);
        return new IncidentReach(rows.GroupBy(r => r.IncidentId).ToDictionary(g => g.Key, g => g.Select(r => r.ReleasableTo).ToList()));
    }

    /// <summary>Whether one of the incident's reports is released to the organisation (none read: no).</summary>
    public bool Reaches(Guid incident, Organizations.Organization organization, MissionDirectory directory) =>
        releasableTo.TryGetValue(incident, out var markings) && markings.Any(r => directory.ReleasesTo(r, organization));
}

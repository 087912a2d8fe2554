using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// Whether an organisation may be told of an incident as a whole, words and all (its title is its earliest report's
/// first line, its category and area any report's): when every one of its reports is released to the organisation. The
/// incident's own marking is what its reports share, so an organisation it releases to is reached by all of them; when
/// the reports differ (a mixed incident) their own markings are read, for the incidents that need it only.
/// </summary>
internal sealed class IncidentReach(Dictionary<Guid, List<string>> releasableTo)
{
    /// <summary>Reads the markings of the reports of <paramref name="incidents"/> (those their own marking does not settle).</summary>
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

    /// <summary>
    /// Whether the incident (marked <paramref name="incidentReleasableTo"/>) reaches the organisation whole: its own marking
    /// releases to it, or each of its reports (read by <see cref="ReadAsync"/>) does. No incident: its own marking only.
    /// </summary>
    public bool Reaches(Guid? incident, string incidentReleasableTo, Organizations.Organization organization, MissionDirectory directory) =>
        directory.ReleasesTo(incidentReleasableTo, organization)
        || (incident is { } id && releasableTo.TryGetValue(id, out var markings) && markings.Count > 0 && markings.All(r => directory.ReleasesTo(r, organization)));
}

using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>
/// One incident as a viewer sees it: built from, and listing, only the reports the viewer may see; null when the viewer may
/// see none (the API answers 404). Reading it is audited. Shared by <c>GET /api/incidents/{id}</c> and the UI's panel.
/// </summary>
public sealed class IncidentDetails
{
    internal IncidentDto Incident { get; private init; } = null!;

    /// <summary>Highest classification level and all caveats among the incident and its visible reports: what a banner shows.</summary>
    internal (int Level, long Caveats) Highest { get; private init; }

    /// <summary>How each visible report came into the incident (opened it, fused with a score, merged, split, accepted).</summary>
    internal IReadOnlyDictionary<Guid, (string Decision, double Contribution)> Links { get; private init; } = new Dictionary<Guid, (string, double)>();

    internal static async Task<IncidentDetails?> LoadAsync(HttpContext context, Viewer viewer, Guid id)
    {
        var services = context.RequestServices;
        var db = services.GetRequiredService<ConcordDb>();
        var directory = services.GetRequiredService<MissionDirectory>();
        var markings = services.GetRequiredService<MarkingFormat>();
        var audit = services.GetRequiredService<AuditWriter>();
        var time = services.GetRequiredService<TimeProvider>();

        var incident = await db.VisibleIncidents(db.Incidents.AsNoTracking(), viewer).SingleOrDefaultAsync(i => i.Id == id, context.RequestAborted);
        if (incident is null)
        {
            return null;
        }

        var rows = await Fusion.FusionEndpoints.LinksAsSeenAsync(db, viewer, id, services.GetRequiredService<Fusion.FusionEngine>().Rarity, context.RequestAborted);
        var reports = rows.Select(x => x.Report).ToList();
        // Gone when an analyst's merge or split took the incident, or its visible reports, away since it was read (no
        // visible link left: the incident read first is a stale copy, whether all its reports were visible or not).
        if (rows.Count == 0 || (await db.AsSeenByAsync([incident], viewer, context.RequestAborted)).SingleOrDefault() is not { } seen)
        {
            return null;
        }

        await IncidentEndpoints.RecordReadAsync(audit, viewer, [seen], context, time);
        await ReportEndpoints.RecordReadAsync(audit, viewer, reports, context, time);
        var marked = reports.Cast<IMarked>().Append(seen).ToList();
        var originals = await ReportMapping.VisibleOriginalsAsync(db, viewer, reports, context.RequestAborted);
        var shown = reports.Select(r => r.ToDto(id, viewer, directory, markings, originals)).ToList();
        var caveats = marked.Aggregate(0L, (bits, m) => bits | m.Caveats);
        // A protected source shown (to members of its organisation who hold SOURCE-PROTECTED) is under that caveat, whatever
        // its report's marking says: the banners carry it as long as it is on screen.
        if (shown.Any(r => r.Source.ProtectedIdentity is { Length: > 0 }) && Sharing.SourceProtection.TryGetBit(markings.Caveats, out var protectedBit))
        {
            caveats |= protectedBit;
        }

        return new IncidentDetails
        {
            Incident = seen.ToDto(directory, markings, shown),
            Highest = (marked.Max(m => m.Classification), caveats),
            Links = rows.ToDictionary(x => x.Report.Id, x => (x.Decision, x.Contribution ?? 0.0)),
        };
    }
}

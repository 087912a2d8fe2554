using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Reports;

internal static class ReportMapping
{
    private static readonly IReadOnlySet<Guid> None = new HashSet<Guid>();

    /// <param name="visibleOriginals">
    /// The originals of released copies that <paramref name="viewer"/> may see (<see cref="VisibleOriginalsAsync"/>): a
    /// copy names its original only to them, since the id of a record one may not see is itself something one may not learn.
    /// </param>
    public static ReportDto ToDto(this Report r, Guid? incidentId, Viewer viewer, MissionDirectory directory, MarkingFormat markings, IReadOnlySet<Guid> visibleOriginals) =>
        r.ToDto(incidentId, viewer, directory, markings, markings.Caveats, visibleOriginals);

    /// <summary>Which of the originals the released copies among <paramref name="reports"/> name the viewer may see (no query when none is a copy).</summary>
    public static async Task<IReadOnlySet<Guid>> VisibleOriginalsAsync(ConcordDb db, Viewer viewer, IEnumerable<Report> reports, CancellationToken cancellationToken)
    {
        var originals = reports.Where(r => r.ReleasedFrom is not null).Select(r => r.ReleasedFrom!.Value).Distinct().ToList();
        return originals.Count == 0
            ? None
            : (await db.Reports.VisibleTo(viewer).Where(r => originals.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken)).ToHashSet();
    }

    private static ReportDto ToDto(this Report r, Guid? incidentId, Viewer viewer, MissionDirectory directory, MarkingFormat markings, CaveatRegistry caveats, IReadOnlySet<Guid> visibleOriginals) => new(
        r.Id,
        incidentId,
        directory.Organization(r.OrganizationId)?.Code ?? r.OrganizationId.ToString(),
        new DateTimeOffset(r.ObservedAt, TimeSpan.Zero),
        r.ObservedPrecision.ToString().ToLowerInvariant(),
        new LocationDto(r.Latitude, r.Longitude, r.LocationPrecisionMeters, directory.Area(r.AreaId)?.Code),
        r.Category,
        new CasualtiesDto(
            new CasualtyRange(r.KilledCivilianLow, r.KilledCivilianBest, r.KilledCivilianHigh),
            new CasualtyRange(r.KilledOtherLow, r.KilledOtherBest, r.KilledOtherHigh),
            new CasualtyRange(r.InjuredCivilianLow, r.InjuredCivilianBest, r.InjuredCivilianHigh),
            new CasualtyRange(r.InjuredOtherLow, r.InjuredOtherBest, r.InjuredOtherHigh)),
        r.Narrative,
        r.NarrativeLanguage,
        Releasability.Decode(r.Actors),
        new SourceDto(
            r.SourceReliability,
            r.SourceCredibility,
            r.SourceReliability + r.SourceCredibility.ToString(System.Globalization.CultureInfo.InvariantCulture),
            r.SourceDescription,
            // Field-level protection: only holders of SOURCE-PROTECTED in the reporting organisation see who the source is.
            SourceProtection.MaySeeSource(r, viewer, caveats) ? r.ProtectedSource : null),
        markings.ToDto(r),
        Tlps.Label(r.Tlp),
        r.AgreementId is { } agreementId ? new AgreementRefDto(agreementId, r.AgreementVersion ?? 0) : null,
        r.ReleasedFrom is { } original && visibleOriginals.Contains(original) ? original : null,
        r.ReleasedFrom is { } releasedFrom && visibleOriginals.Contains(releasedFrom) ? r.ReleaseReason : null,
        new DateTimeOffset(r.ReceivedAt, TimeSpan.Zero),
        r.ExternalRef);
}

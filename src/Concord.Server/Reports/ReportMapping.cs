using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Sharing;

namespace Concord.Server.Reports;

internal static class ReportMapping
{
    public static ReportDto ToDto(this Report r, Guid? incidentId, Viewer viewer, MissionDirectory directory, MarkingFormat markings) =>
        r.ToDto(incidentId, viewer, directory, markings, markings.Caveats);

    private static ReportDto ToDto(this Report r, Guid? incidentId, Viewer viewer, MissionDirectory directory, MarkingFormat markings, CaveatRegistry caveats) => new(
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
        r.ReleasedFrom,
        new DateTimeOffset(r.ReceivedAt, TimeSpan.Zero),
        r.ExternalRef);
}

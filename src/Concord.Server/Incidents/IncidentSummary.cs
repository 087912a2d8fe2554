using Concord.Server.Reports;

namespace Concord.Server.Incidents;

/// <summary>Builds an incident's summary from its reports. Until fusion exists, each report opens its own incident.</summary>
internal static class IncidentSummary
{
    public const int TitleLength = 120;

    public static Incident OpenFor(Report report, DateTime now) => new()
    {
        Id = Guid.CreateVersion7(new DateTimeOffset(now)),
        Category = report.Category,
        StartsAt = report.ObservedAt,
        EndsAt = report.ObservedAt + TimePrecisions.Span(report.ObservedPrecision),
        Latitude = report.Latitude,
        Longitude = report.Longitude,
        LocationPrecisionMeters = report.LocationPrecisionMeters,
        AreaId = report.AreaId,
        Status = IncidentStatus.Reported,
        Title = Title(report.Narrative),
        KilledBest = Sum(report.KilledCivilianBest, report.KilledOtherBest),
        InjuredBest = Sum(report.InjuredCivilianBest, report.InjuredOtherBest),
        ReportCount = 1,
        Classification = report.Classification,
        ReleasableTo = report.ReleasableTo,
        Caveats = report.Caveats,
        CreatedAt = now,
        UpdatedAt = now,
    };

    public static string Title(string narrative)
    {
        var firstLine = narrative.AsSpan().Trim();
        var end = firstLine.IndexOfAny('\n', '\r');
        if (end >= 0)
        {
            firstLine = firstLine[..end];
        }

        return firstLine.Length <= TitleLength ? firstLine.ToString() : string.Concat(firstLine[..(TitleLength - 1)], "…");
    }

    private static int? Sum(int? a, int? b) => a is null && b is null ? null : (a ?? 0) + (b ?? 0);
}

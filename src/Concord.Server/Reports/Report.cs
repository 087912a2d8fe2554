using Concord.Server.Access;
using Concord.Server.Realtime;
using Concord.Server.Sharing;

namespace Concord.Server.Reports;

/// <summary>What one source says it saw. Reports are never edited away; incidents are built from them.</summary>
internal sealed class Report : MarkedRecord, IFeedEntity
{
    public string FeedName => "report";

    /// <summary>Store order; keyset paging uses it as the tie-breaker.</summary>
    public long Number { get; init; }

    /// <summary>Client-supplied (or server-made) id; creating the same id twice is idempotent.</summary>
    public required Guid Id { get; init; }

    public required Guid OrganizationId { get; init; }

    public required Guid MemberId { get; init; }

    public required DateTime ObservedAt { get; init; }

    public required TimePrecision ObservedPrecision { get; init; }

    public required double Latitude { get; init; }

    public required double Longitude { get; init; }

    public required double LocationPrecisionMeters { get; init; }

    public Guid? AreaId { get; init; }

    public required string Category { get; init; }

    public int? KilledCivilianLow { get; init; }

    public int? KilledCivilianBest { get; init; }

    public int? KilledCivilianHigh { get; init; }

    public int? KilledOtherLow { get; init; }

    public int? KilledOtherBest { get; init; }

    public int? KilledOtherHigh { get; init; }

    public int? InjuredCivilianLow { get; init; }

    public int? InjuredCivilianBest { get; init; }

    public int? InjuredCivilianHigh { get; init; }

    public int? InjuredOtherLow { get; init; }

    public int? InjuredOtherBest { get; init; }

    public int? InjuredOtherHigh { get; init; }

    public required string Narrative { get; init; }

    public required string NarrativeLanguage { get; init; }

    /// <summary>Actors named by the source, encoded as <c>|a|b|</c>.</summary>
    public required string Actors { get; init; }

    /// <summary>Admiralty source reliability, A (completely reliable) to F (cannot be judged).</summary>
    public required string SourceReliability { get; init; }

    /// <summary>Admiralty information credibility, 1 (confirmed) to 6 (cannot be judged).</summary>
    public required int SourceCredibility { get; init; }

    public string? SourceDescription { get; init; }

    /// <summary>Who the source is (an informant, a community contact). Shown only to SOURCE-PROTECTED members of the reporting organisation.</summary>
    public string? ProtectedSource { get; init; }

    /// <summary>Where an imported report came from, e.g. <c>ucdp-ged:12345</c>.</summary>
    public string? ExternalRef { get; init; }

    /// <summary>How far the report may travel outside Concord (exports).</summary>
    public required Tlp Tlp { get; init; }

    /// <summary>The agreement (and its version) whose default marked this report, if one did.</summary>
    public Guid? AgreementId { get; init; }

    public int? AgreementVersion { get; init; }

    /// <summary>For a sanitised release: the original report it was made from.</summary>
    public Guid? ReleasedFrom { get; init; }

    /// <summary>For a sanitised release: why it was released, as its releaser gave it (shown to those who may read the original).</summary>
    public string? ReleaseReason { get; init; }

    public required DateTime ReceivedAt { get; init; }

    /// <summary>SHA-256 of the canonical create request: a retry with the same id and body is recognised, a different body is a conflict.</summary>
    public required string RequestHash { get; init; }
}

/// <summary>How exactly the observed-at time is known (UCDP GED's date_prec maps onto it).</summary>
internal enum TimePrecision
{
    Exact,
    Hour,
    Day,
    Days,
    Week,
    Month,
    Year,
}

internal static class TimePrecisions
{
    /// <summary>The window a time of this precision may stand for, used to widen time filters and overlaps.</summary>
    public static TimeSpan Span(TimePrecision p) => p switch
    {
        TimePrecision.Exact => TimeSpan.Zero,
        TimePrecision.Hour => TimeSpan.FromHours(1),
        TimePrecision.Day => TimeSpan.FromDays(1),
        TimePrecision.Days => TimeSpan.FromDays(6),
        TimePrecision.Week => TimeSpan.FromDays(7),
        TimePrecision.Month => TimeSpan.FromDays(31),
        TimePrecision.Year => TimeSpan.FromDays(366),
        _ => throw new ArgumentOutOfRangeException(nameof(p)),
    };
}

using Concord.Server.Access;

namespace Concord.Server.Reports;

/// <summary>A report as a client sends it. Everything is optional at the JSON level so that each missing field gets its own error.</summary>
internal sealed record CreateReport
{
    public Guid? Id { get; init; }

    public DateTimeOffset? ObservedAt { get; init; }

    public string? ObservedPrecision { get; init; }

    public LocationInput? Location { get; init; }

    public string? Category { get; init; }

    public CasualtiesInput? Casualties { get; init; }

    public string? Narrative { get; init; }

    public string? Language { get; init; }

    public IReadOnlyList<string>? Actors { get; init; }

    public SourceInput? Source { get; init; }

    public MarkingDto? Marking { get; init; }

    /// <summary>
    /// The agreement decision that already marked what this report comes from (a TAK marker, relayed under it before its
    /// report is stored): the report is marked by it, not by the agreements as they are when it is prepared. Set by the
    /// server only; never read from a request.
    /// </summary>
    internal MarkedBy? MarkedBy { get; init; }

    /// <summary>TLP 2.0 for dissemination outside Concord: clear, green, amber, amber+strict, red.</summary>
    public string? Tlp { get; init; }

    /// <summary>Where the report comes from outside Concord, e.g. a message's or another system's id (<c>tak:</c> and curated datasets' prefixes such as <c>ucdp-ged:</c> are Concord's own).</summary>
    public string? ExternalRef { get; init; }
}

internal sealed record LocationInput(double? Latitude, double? Longitude, double? PrecisionMeters, string? Area);

internal sealed record CasualtyRange(int? Low, int? Best, int? High);

internal sealed record CasualtiesInput(CasualtyRange? KilledCivilian, CasualtyRange? KilledOther, CasualtyRange? InjuredCivilian, CasualtyRange? InjuredOther);

internal sealed record SourceInput(string? Reliability, int? Credibility, string? Description, string? ProtectedIdentity);

internal sealed record ReportDto(
    Guid Id,
    Guid? IncidentId,
    string Organization,
    DateTimeOffset ObservedAt,
    string ObservedPrecision,
    LocationDto Location,
    string Category,
    CasualtiesDto Casualties,
    string Narrative,
    string Language,
    IReadOnlyList<string> Actors,
    SourceDto Source,
    MarkingDto Marking,
    string Tlp,
    AgreementRefDto? Agreement,
    Guid? ReleasedFrom,
    string? ReleaseReason,
    DateTimeOffset ReceivedAt,
    string? ExternalRef);

internal sealed record AgreementRefDto(Guid Id, int Version);

internal sealed record LocationDto(double Latitude, double Longitude, double PrecisionMeters, string? Area);

internal sealed record CasualtiesDto(CasualtyRange KilledCivilian, CasualtyRange KilledOther, CasualtyRange InjuredCivilian, CasualtyRange InjuredOther);

internal sealed record SourceDto(string Reliability, int Credibility, string Grade, string? Description, string? ProtectedIdentity);

internal sealed record Page<T>(IReadOnlyList<T> Items, string? Next);

/// <summary>An agreement decision taken for a report before it was prepared: <see cref="Decision"/> null when no agreement covered it (its organisation only).</summary>
internal sealed record MarkedBy(Sharing.DefaultMarking? Decision);

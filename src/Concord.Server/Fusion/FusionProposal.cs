namespace Concord.Server.Fusion;

/// <summary>A report that scored in the grey band against an incident: an analyst accepts (the report moves there) or rejects.</summary>
internal sealed class FusionProposal
{
    public required Guid Id { get; init; }

    public required Guid ReportId { get; init; }

    public required Guid IncidentId { get; set; }

    public required double Score { get; init; }

    public required string ScoreDetail { get; init; }

    public required DateTime CreatedAt { get; init; }

    public DateTime? DecidedAt { get; set; }

    /// <summary>accepted or rejected; null while pending.</summary>
    public string? Decision { get; set; }

    public Guid? DecidedBy { get; set; }
}

using Concord.Server.Access;

namespace Concord.Server.Coordination;

/// <summary>
/// A marked record that someone owes an answer to: it must be acknowledged by one time and responded to by another.
/// <see cref="NextDeadline"/> is the earliest deadline still pending (neither met nor escalated), kept in one indexed column
/// so that the scheduler finds what is due with one range scan, whatever the number of open items.
/// </summary>
internal abstract class DeadlineRecord : MarkedRecord
{
    public DateTime? AcknowledgeBy { get; set; }

    public DateTime? RespondBy { get; set; }

    public DateTime? AcknowledgedAt { get; set; }

    public DateTime? RespondedAt { get; set; }

    public DateTime? CompletedAt { get; set; }

    public DateTime? AcknowledgeEscalatedAt { get; set; }

    public DateTime? RespondEscalatedAt { get; set; }

    public DateTime? NextDeadline { get; set; }

    /// <summary>Where missed deadlines go, as the agreement says (for example the joint operations centre); null: only flagged.</summary>
    public Guid? EscalateToOrganizationId { get; set; }

    public string? AgreementCode { get; set; }

    /// <summary>Terminal records owe nothing more.</summary>
    public abstract bool IsClosed { get; }

    public bool AcknowledgePending => AcknowledgeBy is not null && AcknowledgedAt is null && RespondedAt is null && !IsClosed;

    public bool RespondPending => RespondBy is not null && RespondedAt is null && !IsClosed;

    /// <summary>Overdue: a pending deadline has passed (whether or not its escalation has run yet).</summary>
    public string? OverdueAt(DateTime now) =>
        RespondPending && RespondBy <= now ? Deadlines.Respond
        : AcknowledgePending && AcknowledgeBy <= now ? Deadlines.Acknowledge
        : null;

    /// <summary>The deadlines this record's state has answered: their escalation notices have nothing more to say.</summary>
    public IReadOnlyList<string> AnsweredDeadlines => IsClosed || RespondedAt is not null ? [Deadlines.Acknowledge, Deadlines.Respond]
        : AcknowledgedAt is not null ? [Deadlines.Acknowledge]
        : [];

    /// <summary>Recomputes <see cref="NextDeadline"/> after any change of status or deadline.</summary>
    public void Reschedule()
    {
        DateTime? next = null;
        if (AcknowledgePending && AcknowledgeEscalatedAt is null)
        {
            next = AcknowledgeBy;
        }

        if (RespondPending && RespondEscalatedAt is null && (next is null || RespondBy < next))
        {
            next = RespondBy;
        }

        NextDeadline = next;
    }
}

internal static class Deadlines
{
    public const string Acknowledge = "acknowledge";
    public const string Respond = "respond";
}

/// <summary>
/// One missed deadline, escalated. The unique key (kind, item, deadline) makes an escalation happen exactly once, whatever
/// restarts or concurrent schedulers do: a second insert fails and its transaction rolls back.
/// </summary>
internal sealed class Escalation
{
    public required Guid Id { get; init; }

    public required string ItemEntity { get; init; }

    public required Guid ItemId { get; init; }

    public required string Deadline { get; init; }

    public required DateTime DueAt { get; init; }

    public required DateTime EscalatedAt { get; init; }

    public Guid? ToOrganizationId { get; init; }

    public Guid? TaskId { get; init; }
}

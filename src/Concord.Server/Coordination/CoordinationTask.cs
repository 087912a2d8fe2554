using Concord.Server.Realtime;

namespace Concord.Server.Coordination;

/// <summary>
/// Work owed by an organisation (or one of its members): from a responsibility rule (lead or supporting on an incident),
/// a meeting's action item, an escalation, or assigned by hand. Marked like every record.
/// </summary>
internal sealed class CoordinationTask : DeadlineRecord, IFeedEntity
{
    public string FeedName => "task";

    public long Number { get; init; }

    public required Guid Id { get; init; }

    public required string Title { get; set; }

    public string? Description { get; set; }

    public required Guid OrganizationId { get; set; }

    public Guid? MemberId { get; set; }

    /// <summary>lead, supporting, action (from a meeting), escalation, assigned.</summary>
    public required string Role { get; init; }

    public required string Status { get; set; }

    /// <summary>Why it was declined or closed (<see cref="GiveReason"/>).</summary>
    public string? Reason { get; private set; }

    /// <summary>
    /// The marking the task had when its reason was given. A routed task follows its incident's marking, which widens when
    /// a report leaves it: the reason, written for those who could read the task then (and perhaps quoting that report),
    /// is shown only to those who may read it under that marking.
    /// </summary>
    public int? ReasonClassification { get; private set; }

    public string? ReasonReleasableTo { get; private set; }

    public long? ReasonCaveats { get; private set; }

    /// <summary>Sets the reason, under the task's marking as it is now.</summary>
    public void GiveReason(string? reason)
    {
        Reason = reason;
        ReasonClassification = reason is null ? null : Classification;
        ReasonReleasableTo = reason is null ? null : ReleasableTo;
        ReasonCaveats = reason is null ? null : Caveats;
    }

    /// <summary>The marking a read of the task by <paramref name="viewer"/> is audited at: the task's, raised to its reason's when they are shown it.</summary>
    public (int Classification, long Caveats) ReadBy(Access.Viewer viewer) => ReasonFor(viewer) is null
        ? (Classification, Caveats)
        : (Math.Max(Classification, ReasonClassification!.Value), Caveats | (ReasonCaveats ?? 0));

    /// <summary>The reason, if <paramref name="viewer"/> may read it under the marking it was given under.</summary>
    public string? ReasonFor(Access.Viewer viewer) =>
        Reason is not null && ReasonClassification is { } level && Access.Marking.AllowsRead(level, ReasonReleasableTo!, ReasonCaveats ?? 0, viewer) ? Reason : null;

    /// <summary>
    /// Makes automatic creation idempotent (one lead task per incident and organisation, one task per escalation). A routed
    /// task withdrawn from its organisation gives its key up, so that the incident may be routed to it again.
    /// </summary>
    public string? RoutingKey { get; set; }

    /// <summary>The incident it is about; an incident merged into another takes its assigned tasks and meeting actions along (IncidentCorrections).</summary>
    public Guid? IncidentId { get; set; }

    public Guid? RequestId { get; init; }

    public Guid? MeetingId { get; init; }

    /// <summary>For an escalation task: the task or request whose deadline was missed.</summary>
    public Guid? EscalatedItemId { get; init; }

    /// <summary>The incident's category (routed tasks follow their incident's), for metrics by category.</summary>
    public string? Category { get; set; }

    public Guid? AreaId { get; set; }

    public required string CreatedBy { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required DateTime UpdatedAt { get; set; }

    public override bool IsClosed => Status is TaskStatuses.Done or TaskStatuses.Declined;

    /// <summary>
    /// Closes the task as done for a reason no member gave (its incident gone, its escalated item answered): the audit
    /// entry of the move, by the system, to save with it.
    /// </summary>
    public Audit.AuditEntry CloseBySystem(string reason, DateTime now)
    {
        var entry = Audit.Audits.Entry(null, Audit.AuditActions.Status, "task", Id, Audit.AuditMarking.Of(this), now, Audit.Audits.Detail(new { from = Status, to = TaskStatuses.Done, reason }));
        Status = TaskStatuses.Done;
        GiveReason(reason);
        CompletedAt = now;
        UpdatedAt = now;
        Reschedule();
        return entry;
    }
}

internal static class TaskRoles
{
    public const string Lead = "lead";
    public const string Supporting = "supporting";
    public const string Action = "action";
    public const string Escalation = "escalation";
    public const string Assigned = "assigned";
}

/// <summary>open → acknowledged → in-progress → done, or declined (with a reason) from any open state.</summary>
internal static class TaskStatuses
{
    public const string Open = "open";
    public const string Acknowledged = "acknowledged";
    public const string InProgress = "in-progress";
    public const string Done = "done";
    public const string Declined = "declined";

    public static readonly IReadOnlyList<string> All = [Open, Acknowledged, InProgress, Done, Declined];

    public static bool CanMove(string from, string to) => (from, to) switch
    {
        (Open, Acknowledged) => true,
        (Open or Acknowledged, InProgress) => true,
        (Open or Acknowledged or InProgress, Done) => true,
        (Open or Acknowledged or InProgress, Declined) => true,
        _ => false,
    };
}

/// <summary>
/// A comment on a task, read with the task. It keeps the marking the task had when it was written: a routed task's marking
/// widens when a report leaves its incident, and a comment written for the narrower audience (perhaps quoting that report)
/// is shown only to those who may read it under its own.
/// </summary>
internal sealed class TaskComment
{
    public required int Classification { get; init; }

    public required string ReleasableTo { get; init; }

    public required long Caveats { get; init; }

    public required Guid Id { get; init; }

    public required Guid TaskId { get; init; }

    public required Guid MemberId { get; init; }

    public required string Author { get; init; }

    public required DateTime At { get; init; }

    public required string Text { get; init; }
}

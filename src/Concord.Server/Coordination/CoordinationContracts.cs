using Concord.Server.Access;

namespace Concord.Server.Coordination;

internal sealed record PointInput(double? Latitude, double? Longitude);

/// <param name="Id">Chosen by the client (optional), as for requests (see <see cref="ClientIds"/>).</param>
internal sealed record NewTask(string? Title, string? Description, string? Organization, string? Member, DateTimeOffset? AcknowledgeBy, DateTimeOffset? RespondBy,
    Guid? Incident, Guid? Request, MarkingDto? Marking, Guid? Id = null);

/// <param name="Id">
/// Chosen by the client (optional), so that a send whose answer was lost can be repeated: the same id again from the same
/// member with the same request answers the request already stored (see <see cref="ClientIds"/>).
/// </param>
internal sealed record NewRequest(string? Type, string? Title, string? Details, string? Priority, string? Addressee, PointInput? Location,
    IReadOnlyList<double[]>? Route, DateTimeOffset? WindowStart, DateTimeOffset? WindowEnd, RequestCriteria? Criteria, Guid? Incident, MarkingDto? Marking,
    Guid? Id = null);

internal sealed record StatusChange(string? Status, string? Reason);

/// <param name="Id">Chosen by the client (optional), as for requests (see <see cref="ClientIds"/>).</param>
internal sealed record NewComment(string? Text, Guid? Id = null);

/// <param name="Id">Chosen by the client (optional), as for requests (see <see cref="ClientIds"/>).</param>
internal sealed record NewPatrol(string? Name, IReadOnlyList<string>? Organizations, IReadOnlyList<string>? Members, IReadOnlyList<double[]>? Route,
    DateTimeOffset? StartsAt, DateTimeOffset? EndsAt, MarkingDto? Marking, Guid? Id = null);

internal sealed record PatrolReport(string? Category, string? Narrative, DateTimeOffset? ObservedAt, PointInput? Location, string? Language);

internal sealed record NewActionItem(string? Title, string? Organization, DateTimeOffset? DueAt);

/// <param name="Id">Chosen by the client (optional), as for requests (see <see cref="ClientIds"/>).</param>
internal sealed record NewMeeting(string? Title, DateTimeOffset? HeldAt, string? Place, IReadOnlyList<string>? Participants, IReadOnlyList<string>? Decisions,
    IReadOnlyList<NewActionItem>? ActionItems, MarkingDto? Marking, Guid? Id = null);

/// <param name="Id">Chosen by the client (optional), as for requests (see <see cref="ClientIds"/>).</param>
internal sealed record NewLiaison(DateTimeOffset? At, string? CounterpartOrganization, string? Counterpart, string? Channel, string? Summary, MarkingDto? Marking,
    Guid? Id = null);

/// <summary>A task's comment, with the marking the task had when it was written (pages raise their banners to it).</summary>
internal sealed record CommentDto(string Author, DateTimeOffset At, string Text, MarkingDto Marking);

internal sealed record DeadlinesDto(DateTimeOffset? AcknowledgeBy, DateTimeOffset? RespondBy, DateTimeOffset? AcknowledgedAt, DateTimeOffset? RespondedAt,
    DateTimeOffset? CompletedAt, DateTimeOffset? AcknowledgeEscalatedAt, DateTimeOffset? RespondEscalatedAt, string? Overdue, string? EscalateTo, string? Agreement);

internal sealed record TaskDto(Guid Id, string Title, string? Description, string Organization, string? Member, string Role, string Status, string? Reason,
    Guid? Incident, Guid? Request, Guid? Meeting, Guid? EscalatedItem, string? Category, string? Area, DeadlinesDto Deadlines, string CreatedBy,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, MarkingDto Marking, IReadOnlyList<CommentDto>? Comments = null, MarkingDto? ReasonMarking = null);

internal sealed record RequestDto(Guid Id, string Type, string Title, string Details, string Priority, string Requester, string RequesterMember,
    string? Addressee, string? AddresseeKind, string? AssignedTo, PointInput? Location, IReadOnlyList<double[]>? Route, DateTimeOffset WindowStart,
    DateTimeOffset WindowEnd, string Status, string? Reason, RequestCriteria Criteria, bool LastResortRequired, bool EscortCriteriaRequired, Guid? Incident,
    DeadlinesDto Deadlines, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, MarkingDto Marking, IReadOnlyList<string> Actions);

internal sealed record PatrolDto(Guid Id, string Name, IReadOnlyList<string> Organizations, IReadOnlyList<string> Members, IReadOnlyList<double[]> Route,
    DateTimeOffset StartsAt, DateTimeOffset EndsAt, string Status, string? Reason, Guid? Report, string CreatedBy, DateTimeOffset UpdatedAt, MarkingDto Marking,
    IReadOnlyList<PatrolTrackDto>? Tracks = null);

internal sealed record PatrolTrackDto(string Uid, string Callsign, string Member, double Latitude, double Longitude, DateTimeOffset ObservedAt);

internal sealed record MeetingDto(Guid Id, string Title, DateTimeOffset HeldAt, string Place, IReadOnlyList<string> Participants, IReadOnlyList<string> Decisions,
    string CreatedBy, MarkingDto Marking, IReadOnlyList<TaskDto>? ActionItems = null);

internal sealed record LiaisonDto(Guid Id, DateTimeOffset At, string Organization, string Member, string? CounterpartOrganization, string Counterpart,
    string Channel, string Summary, MarkingDto Marking);

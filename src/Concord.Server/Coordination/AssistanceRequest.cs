using Concord.Server.Access;
using Concord.Server.Realtime;

namespace Concord.Server.Coordination;

/// <summary>
/// A request for assistance from one organisation to another (or to whichever organisation of a kind takes it up):
/// requested → acknowledged → accepted / declined (with a reason) → in progress → completed, or cancelled by the requester.
/// </summary>
internal sealed class AssistanceRequest : DeadlineRecord, IFeedEntity
{
    public string FeedName => "request";

    public long Number { get; init; }

    public required Guid Id { get; init; }

    public required string Type { get; init; }

    public required string Title { get; init; }

    public required string Details { get; init; }

    public required string Priority { get; init; }

    public required Guid RequesterOrganizationId { get; init; }

    public required Guid RequesterMemberId { get; init; }

    /// <summary>The organisation asked, or null when the request goes to a capability kind.</summary>
    public Guid? AddresseeOrganizationId { get; init; }

    /// <summary>The organisation kind asked (for example military), when no one organisation is named.</summary>
    public string? AddresseeKind { get; init; }

    /// <summary>Who accepted a request addressed to a kind (or the addressee organisation).</summary>
    public Guid? AssignedOrganizationId { get; set; }

    public double? Latitude { get; init; }

    public double? Longitude { get; init; }

    /// <summary>A route as GeoJSON LineString coordinates <c>[[lon, lat], …]</c>.</summary>
    public string? RouteJson { get; init; }

    public required DateTime WindowStart { get; init; }

    public required DateTime WindowEnd { get; init; }

    public required string Status { get; set; }

    public string? Reason { get; set; }

    /// <summary>The requester's statements against the last-resort and armed-escort criteria, as JSON.</summary>
    public required string CriteriaJson { get; init; }

    /// <summary>The incident it is about; an incident merged into another takes its requests along (IncidentCorrections).</summary>
    public Guid? IncidentId { get; set; }

    public required DateTime CreatedAt { get; init; }

    public required DateTime UpdatedAt { get; set; }

    public override bool IsClosed => Status is RequestStatuses.Declined or RequestStatuses.Completed or RequestStatuses.Cancelled;
}

internal static class RequestTypes
{
    public const string ArmedEscort = "armed-escort";
    public const string Evacuation = "medevac";
    public const string Transport = "transport";
    public const string Engineering = "engineering";
    public const string SecurityAssessment = "security-assessment";
    public const string JointPatrol = "joint-patrol";
    public const string Information = "information";

    public static readonly IReadOnlyList<string> All = [ArmedEscort, Evacuation, Transport, Engineering, SecurityAssessment, JointPatrol, Information];
}

internal static class RequestPriorities
{
    public const string Routine = "routine";
    public const string Priority = "priority";
    public const string Urgent = "urgent";

    public static readonly IReadOnlyList<string> All = [Routine, Priority, Urgent];

    /// <summary>Deadlines when no agreement sets them: acknowledge within, respond within.</summary>
    public static (TimeSpan Acknowledge, TimeSpan Respond) DefaultDeadlines(string priority) => priority switch
    {
        Urgent => (TimeSpan.FromMinutes(15), TimeSpan.FromHours(1)),
        Priority => (TimeSpan.FromHours(1), TimeSpan.FromHours(6)),
        _ => (TimeSpan.FromHours(4), TimeSpan.FromHours(24)),
    };
}

internal static class RequestStatuses
{
    public const string Requested = "requested";
    public const string Acknowledged = "acknowledged";
    public const string Accepted = "accepted";
    public const string Declined = "declined";
    public const string InProgress = "in-progress";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";

    public static readonly IReadOnlyList<string> All = [Requested, Acknowledged, Accepted, Declined, InProgress, Completed, Cancelled];

    /// <summary>The addressee's moves; the requester may only cancel an open request.</summary>
    public static bool CanMove(string from, string to) => (from, to) switch
    {
        (Requested, Acknowledged) => true,
        (Requested or Acknowledged, Accepted or Declined) => true,
        (Accepted, InProgress) => true,
        (Accepted or InProgress, Completed) => true,
        (Requested or Acknowledged or Accepted or InProgress, Cancelled) => true,
        _ => false,
    };
}

/// <summary>
/// What a requester states against the humanitarian civil–military criteria. The last-resort criteria (Oslo and MCDA
/// guidelines) apply when a humanitarian organisation asks for a military asset; the four armed-escort criteria (IASC
/// Non-Binding Guidelines on the Use of Armed Escorts for Humanitarian Convoys, 2013) apply to every armed-escort request.
/// </summary>
internal sealed record RequestCriteria(LastResortCriteria? LastResort, EscortCriteria? Escort);

/// <summary>Military assets only as a last resort: no comparable civilian alternative, a critical need only they can meet in time, limited in time and scale.</summary>
internal sealed record LastResortCriteria(string? NoCivilianAlternative, string? CriticalNeed, string? LimitedInTimeAndScale);

/// <summary>Armed escorts as the exception: humanitarian need and programme criticality, the responsible authorities, safety and security, sustainability.</summary>
internal sealed record EscortCriteria(string? HumanitarianNeed, string? ResponsibleAuthorities, string? SafetyAndSecurity, string? Sustainability);

internal static class RequestRules
{
    public const int MinimumStatement = 20;

    public const int MaximumStatement = 2000;

    /// <summary>A humanitarian organisation asking the military: an organisation of that kind, or the kind itself.</summary>
    public static bool NeedsLastResort(OrganizationKind requester, OrganizationKind? addressee) =>
        requester == OrganizationKind.Humanitarian && addressee == OrganizationKind.Military;

    public static bool NeedsEscortCriteria(string type) => type == RequestTypes.ArmedEscort;

    /// <summary>Every statement the request must carry and does not, by field.</summary>
    public static void Check(RequestCriteria? criteria, bool lastResort, bool escort, Dictionary<string, string[]> errors)
    {
        if (lastResort)
        {
            var c = criteria?.LastResort;
            Statement(c?.NoCivilianAlternative, "criteria.lastResort.noCivilianAlternative", errors);
            Statement(c?.CriticalNeed, "criteria.lastResort.criticalNeed", errors);
            Statement(c?.LimitedInTimeAndScale, "criteria.lastResort.limitedInTimeAndScale", errors);
        }

        if (escort)
        {
            var c = criteria?.Escort;
            Statement(c?.HumanitarianNeed, "criteria.escort.humanitarianNeed", errors);
            Statement(c?.ResponsibleAuthorities, "criteria.escort.responsibleAuthorities", errors);
            Statement(c?.SafetyAndSecurity, "criteria.escort.safetyAndSecurity", errors);
            Statement(c?.Sustainability, "criteria.escort.sustainability", errors);
        }
    }

    private static void Statement(string? text, string field, Dictionary<string, string[]> errors)
    {
        var length = text?.Trim().Length ?? 0;
        if (length < MinimumStatement || length > MaximumStatement)
        {
            errors[field] = [$"state how this criterion is met ({MinimumStatement} to {MaximumStatement} characters)"];
        }

        Reports.ReportRules.RejectControlCharacters(text, field, errors);
    }
}

using Concord.Server.Access;
using Concord.Server.Realtime;

namespace Concord.Server.Coordination;

/// <summary>A joint patrol: participating organisations and members, a route, a schedule; its end report becomes a Concord report.</summary>
internal sealed class Patrol : MarkedRecord, IFeedEntity
{
    public string FeedName => "patrol";

    public long Number { get; init; }

    public required Guid Id { get; init; }

    public required string Name { get; set; }

    /// <summary>Participating organisations, encoded <c>|org:A|org:B|</c>.</summary>
    public required string Organizations { get; set; }

    /// <summary>Participating members by user name, encoded <c>|name|name|</c>; their TAK tracks are the patrol's tracks.</summary>
    public required string Members { get; set; }

    /// <summary>GeoJSON LineString coordinates <c>[[lon, lat], …]</c>.</summary>
    public required string RouteJson { get; set; }

    public required DateTime StartsAt { get; set; }

    public required DateTime EndsAt { get; set; }

    public required string Status { get; set; }

    /// <summary>Why the patrol was last moved (cancelled, delayed), as its mover gave it; shown under the patrol's marking.</summary>
    public string? Reason { get; set; }

    public Guid? ReportId { get; set; }

    public required string CreatedBy { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required DateTime UpdatedAt { get; set; }
}

/// <summary>planned → under-way → completed (with its report), or cancelled before it ends.</summary>
internal static class PatrolStatuses
{
    public const string Planned = "planned";
    public const string UnderWay = "under-way";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";

    public static bool CanMove(string from, string to) => (from, to) switch
    {
        (Planned, UnderWay) => true,
        (Planned or UnderWay, Cancelled) => true,
        (Planned or UnderWay, Completed) => true,
        _ => false,
    };
}

/// <summary>A coordination meeting: who took part, what was decided; its action items are tasks.</summary>
internal sealed class Meeting : MarkedRecord, IFeedEntity
{
    public string FeedName => "meeting";

    public long Number { get; init; }

    public required Guid Id { get; init; }

    public required string Title { get; init; }

    public required DateTime HeldAt { get; init; }

    public required string Place { get; init; }

    /// <summary>Participating organisations, encoded <c>|org:A|org:B|</c>.</summary>
    public required string Participants { get; init; }

    /// <summary>The decisions taken, as a JSON array of strings.</summary>
    public required string DecisionsJson { get; init; }

    public required string CreatedBy { get; init; }

    public required DateTime CreatedAt { get; init; }
}

/// <summary>One contact between organisations (a call, a visit, a radio exchange), logged by the liaison officer who made it.</summary>
internal sealed class LiaisonEntry : MarkedRecord, IFeedEntity
{
    public string FeedName => "liaison";

    public long Number { get; init; }

    public required Guid Id { get; init; }

    public required DateTime At { get; init; }

    public required Guid OrganizationId { get; init; }

    public required Guid MemberId { get; init; }

    public Guid? CounterpartOrganizationId { get; init; }

    /// <summary>Who was contacted (a person or office; local counterparts often have no account).</summary>
    public required string Counterpart { get; init; }

    public required string Channel { get; init; }

    public required string Summary { get; init; }

    public required DateTime CreatedAt { get; init; }
}

internal static class LiaisonChannels
{
    public static readonly IReadOnlyList<string> All = ["meeting", "visit", "phone", "radio", "email", "message", "other"];
}

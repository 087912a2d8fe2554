namespace Concord.Server.Realtime;

/// <summary>A record whose writes are announced on the change feed.</summary>
internal interface IFeedEntity
{
    string FeedName { get; }

    Guid Id { get; }
}

/// <summary>One row of the append-only change feed: what changed, never its content.</summary>
internal sealed class Change
{
    public long Sequence { get; init; }

    public required string Entity { get; init; }

    public required Guid EntityId { get; init; }

    public required string Operation { get; init; }

    public required DateTime At { get; init; }
}

namespace Concord.Server.Audit;

/// <summary>
/// One entry of the append-only audit log. <see cref="ChainIndex"/> orders the chain; each entry holds the hash of the one
/// before it, so altering, inserting or removing an entry breaks the chain at that point.
/// </summary>
internal sealed class AuditEntry
{
    public long ChainIndex { get; set; }

    public required DateTime At { get; init; }

    public Guid? MemberId { get; init; }

    public required string Actor { get; init; }

    public required string Action { get; init; }

    public string? Entity { get; init; }

    public Guid? EntityId { get; init; }

    public required string Detail { get; init; }

    /// <summary>The audit is marked too: an entry is as classified as the records it names.</summary>
    public required int Classification { get; init; }

    public string PreviousHash { get; set; } = "";

    public string Hash { get; set; } = "";
}

internal static class AuditActions
{
    public const string Create = "create";
    public const string Update = "update";
    public const string Read = "read";
    public const string Release = "release";
    public const string MarkingLoosened = "marking-loosened";
    public const string Merge = "merge";
    public const string Split = "split";
    public const string FusionDecision = "fusion-decision";
    public const string Administer = "administer";
    public const string Route = "route";
    public const string RouteWithheld = "route-withheld";
    public const string Status = "status";
    public const string Comment = "comment";
    public const string Escalate = "escalate";
}

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

    /// <summary>The caveats of the records it names (their bits, as the records hold them): an auditor sees the entry only holding them all.</summary>
    public long Caveats { get; init; }

    public string PreviousHash { get; set; } = "";

    public string Hash { get; set; } = "";
}

/// <summary>
/// The marking an audit entry takes from the records it names: the highest level and every caveat among them. An entry
/// that names no marked record (an administrative change) is <see cref="None"/>.
/// </summary>
internal readonly record struct AuditMarking(int Level, long Caveats)
{
    public static AuditMarking None => default;

    public static AuditMarking Of(Access.IMarked record) => new(record.Classification, record.Caveats);

    /// <summary>The marking of an entry naming the records of both.</summary>
    public AuditMarking With(AuditMarking other) => new(Math.Max(Level, other.Level), Caveats | other.Caveats);

    public AuditMarking With(Access.IMarked record) => With(Of(record));
}

internal static class AuditActions
{
    public const string Create = "create";
    public const string Update = "update";
    public const string Read = "read";
    public const string Release = "release";
    public const string Export = "export";
    public const string Import = "import";
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
    public const string SignIn = "sign-in";
    public const string SignInFailed = "sign-in-failed";
    public const string SignOut = "sign-out";

    /// <summary>Every action an entry may record: a query naming another finds nothing, and is refused rather than answered empty.</summary>
    public static readonly IReadOnlySet<string> All = typeof(AuditActions).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
        .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToHashSet(StringComparer.Ordinal);
}

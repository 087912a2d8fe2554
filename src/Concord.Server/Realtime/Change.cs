namespace Concord.Server.Realtime;

/// <summary>A record whose writes are announced on the change feed.</summary>
internal interface IFeedEntity
{
    string FeedName { get; }

    Guid Id { get; }

    /// <summary>
    /// The reports whose joining or leaving made this write, when that is what made it (<see cref="Change.Causes"/>).
    /// Empty for every other write.
    /// </summary>
    ICollection<Guid> Causes => [];

    /// <summary>
    /// The reports whose leaving made this write (a split, an accepted proposal moving a report out), written with the
    /// causes and marked as gone (<see cref="Change.DepartedIds"/>). Empty for every other write.
    /// </summary>
    ICollection<Guid> Departed => [];
}

/// <summary>One row of the append-only change feed: what changed, never its content.</summary>
internal sealed class Change
{
    public long Sequence { get; init; }

    public required string Entity { get; init; }

    public required Guid EntityId { get; init; }

    public required string Operation { get; init; }

    public required DateTime At { get; init; }

    /// <summary>
    /// The reports whose joining or leaving an incident made this change, if that is what made it (an encoded set of
    /// ids): the change is announced only to those who may see one of them, since for anyone else the incident they see
    /// has not changed. Reports that left are marked (<see cref="DepartedIds"/>): a viewer is told an incident was withdrawn
    /// where a report they may see left it, never where one joined it. One row whatever their number, so that the feed's
    /// sequence does not count hidden reports. On the
    /// deletion of an incident (merged into another, emptied by a move), the reports it held: whose devices may have had
    /// it, for a device that was offline when it went (TakServer's withdrawals on reconnecting). A deletion itself is never
    /// announced (<see cref="ChangeVisibility"/>).
    /// </summary>
    public string? Causes { get; init; }

    /// <summary>
    /// On an update that changed the record's marking, the marking it had before (schema 23): those who could read it then
    /// and may not now are told the record was withdrawn from them (<see cref="ChangeVisibility"/>), so that a page or a
    /// client drops what it shows of it. Null on every other change.
    /// </summary>
    public int? PriorClassification { get; init; }

    /// <inheritdoc cref="PriorClassification"/>
    public string? PriorReleasableTo { get; init; }

    /// <inheritdoc cref="PriorClassification"/>
    public long? PriorCaveats { get; init; }

    /// <summary>How a report that left the incident is written among <see cref="Causes"/>: its id after this mark.</summary>
    public const char DepartedMark = '-';

    private (Guid[] All, Guid[] Departed)? _decodedCauses;

    /// <summary>The ids in <see cref="Causes"/>, of reports that joined or left, decoded once (feeds read them for every viewer).</summary>
    public IReadOnlyList<Guid> CauseIds => Decoded.All;

    /// <summary>
    /// The ids in <see cref="Causes"/> of reports that left the incident (marked since schema version 30: rows written
    /// before name a report that left as they name one that joined, and are read as joins).
    /// </summary>
    public IReadOnlyList<Guid> DepartedIds => Decoded.Departed;

    private (Guid[] All, Guid[] Departed) Decoded => _decodedCauses ??= Decode(Causes);

    private static (Guid[], Guid[]) Decode(string? causes)
    {
        if (causes is null)
        {
            return ([], []);
        }

        var tokens = Access.Releasability.Decode(causes);
        return ([.. tokens.Select(t => Guid.Parse(t.TrimStart(DepartedMark)))], [.. tokens.Where(t => t[0] == DepartedMark).Select(t => Guid.Parse(t.AsSpan(1)))]);
    }
}

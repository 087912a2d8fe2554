namespace Concord.Server.Import;

/// <summary>
/// Imports under way through the API on this server: one per member at a time, and at most <see cref="MaxAtOnce"/> in all.
/// Each upload is spooled to a temporary file of up to <see cref="ImportEndpoints.MaxBytes"/> (often on the volume the
/// store sits on) and then written through the one report writer: one analyst's token sending forty at once would fill
/// gigabytes of disk and hold the writer from everyone's reports.
/// </summary>
internal sealed class ImportSlots
{
    public const int MaxAtOnce = 4;

    private readonly HashSet<Guid> _members = [];

    /// <summary>Takes a slot for <paramref name="member"/>; null when taken, else why not (the member's own, or the server's).</summary>
    public Busy? TryTake(Guid member)
    {
        lock (_members)
        {
            if (_members.Contains(member))
            {
                return Busy.Member;
            }

            if (_members.Count >= MaxAtOnce)
            {
                return Busy.Server;
            }

            _members.Add(member);
            return null;
        }
    }

    /// <summary>Whether <paramref name="member"/> has an import under way.</summary>
    public bool Holds(Guid member)
    {
        lock (_members)
        {
            return _members.Contains(member);
        }
    }

    public void Release(Guid member)
    {
        lock (_members)
        {
            _members.Remove(member);
        }
    }

    internal enum Busy
    {
        Member,
        Server,
    }
}

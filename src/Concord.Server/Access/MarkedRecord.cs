namespace Concord.Server.Access;

/// <summary>
/// The marking columns every marked record has. <see cref="ReleaseMask"/> is derived from <see cref="ReleasableTo"/>
/// whenever it is set, in this one place, so the two can never disagree.
/// </summary>
internal abstract class MarkedRecord : IMarked
{
    public required int Classification { get; set; }

    public required string ReleasableTo
    {
        get;
        set
        {
            field = value;
            ReleaseMask = Releasability.Mask(value);
        }
    }

    public long ReleaseMask { get; private set; }

    public required long Caveats { get; set; }
}

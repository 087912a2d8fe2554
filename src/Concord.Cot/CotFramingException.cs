namespace Concord.Cot;

/// <summary>
/// A stream framer met bytes it cannot frame (garbage between events, an oversize event or frame, a bad
/// TAK protocol header). <see cref="Reason"/> says why. Whether the framer can go on after this is
/// documented on each framer.
/// </summary>
public sealed class CotFramingException : Exception
{
    public CotFramingException()
        : this("invalid CoT stream")
    {
    }

    public CotFramingException(string reason)
        : base(reason) => Reason = reason;

    public CotFramingException(string reason, Exception innerException)
        : base(reason, innerException) => Reason = reason;

    /// <summary>Why the stream could not be framed.</summary>
    public string Reason { get; }
}

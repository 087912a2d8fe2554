namespace Concord.Cot;

/// <summary>
/// A CoT document (XML or TAK protocol payload) was rejected. <see cref="Reason"/> says why in words
/// fit for a log line, e.g. "DTD is not allowed" or "latitude 123.4 out of range [-90,90]".
/// </summary>
public sealed class CotParseException : Exception
{
    public CotParseException()
        : this("invalid CoT document")
    {
    }

    public CotParseException(string reason)
        : base(reason) => Reason = reason;

    public CotParseException(string reason, Exception innerException)
        : base(reason, innerException) => Reason = reason;

    /// <summary>Why the document was rejected.</summary>
    public string Reason { get; }
}

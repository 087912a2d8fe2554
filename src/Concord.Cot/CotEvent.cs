namespace Concord.Cot;

/// <summary>
/// One Cursor-on-Target event. Value equality covers every attribute, the point and the canonical
/// detail XML, so parse(serialize(e)) equals e.
/// </summary>
public sealed record CotEvent
{
    private readonly CotDetail _detail = CotDetail.Empty;

    public required string Uid { get; init; }

    /// <summary>The CoT type, e.g. a-f-G-U-C (friendly ground unit) or b-t-f (GeoChat).</summary>
    public required string Type { get; init; }

    /// <summary>How the position was obtained, e.g. h-e (human, estimated) or m-g (machine, GPS).</summary>
    public string? How { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required DateTimeOffset Start { get; init; }

    public required DateTimeOffset Stale { get; init; }

    public string Version { get; init; } = "2.0";

    /// <summary>The event's access attribute: a classification marking string.</summary>
    public string? Access { get; init; }

    public string? Qos { get; init; }

    public string? Opex { get; init; }

    public CotPoint Point { get; init; } = CotPoint.Unknown;

    public CotDetail Detail
    {
        get => _detail;
        init => _detail = value ?? CotDetail.Empty;
    }

    /// <summary>The detail as XML; setting it parses and canonicalises the (untrusted) XML.</summary>
    /// <exception cref="CotParseException">The XML is malformed, too large or too deep.</exception>
    public string DetailXml
    {
        get => _detail.Xml;
        init => _detail = CotDetail.Parse(value);
    }

    public bool IsStaleAt(DateTimeOffset now) => now >= Stale;
}

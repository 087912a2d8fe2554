namespace Concord.Cot;

/// <summary>
/// One Cursor-on-Target event. Value equality covers every attribute, the point and the canonical
/// detail XML, so parse(serialize(e)) equals e. Text properties refuse characters XML cannot carry,
/// so every event can be serialised.
/// </summary>
public sealed record CotEvent
{
    private readonly CotDetail _detail = CotDetail.Empty;

    public required string Uid
    {
        get;
        init => field = Required(value, nameof(Uid));
    }

    /// <summary>The CoT type, e.g. a-f-G-U-C (friendly ground unit) or b-t-f (GeoChat).</summary>
    public required string Type
    {
        get;
        init => field = Required(value, nameof(Type));
    }

    /// <summary>How the position was obtained, e.g. h-e (human, estimated) or m-g (machine, GPS).</summary>
    public string? How
    {
        get;
        init => field = Optional(value, nameof(How));
    }

    public required DateTimeOffset Time { get; init; }

    public required DateTimeOffset Start { get; init; }

    public required DateTimeOffset Stale { get; init; }

    public string Version
    {
        get;
        init => field = Required(value, nameof(Version));
    } = "2.0";

    /// <summary>The event's access attribute: a classification marking string.</summary>
    public string? Access
    {
        get;
        init => field = Optional(value, nameof(Access));
    }

    public string? Qos
    {
        get;
        init => field = Optional(value, nameof(Qos));
    }

    public string? Opex
    {
        get;
        init => field = Optional(value, nameof(Opex));
    }

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

    private static string Required(string value, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(value, name);
        return Optional(value, name)!;
    }

    private static string? Optional(string? value, string name)
    {
        if (value is not null && XmlText.IndexOfInvalid(value) is var at and >= 0)
        {
            throw new ArgumentException(name + " holds " + XmlText.DescribeCharacter(value[at]) + ", which XML cannot carry", name);
        }

        return value;
    }
}

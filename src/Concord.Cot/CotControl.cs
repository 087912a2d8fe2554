using System.Globalization;
using System.Xml;

namespace Concord.Cot;

/// <summary>
/// Connection control events: TAK protocol version negotiation (takproto/README.md, "Streaming
/// Connection Protocol Negotiation") and the t-x-c-t keep-alive ping with its t-x-c-t-r pong.
/// </summary>
public static class CotControl
{
    /// <summary>Server to client: the TAK protocol versions the server supports.</summary>
    public const string VersionSupportType = "t-x-takp-v";

    /// <summary>Client to server: switch to this protocol version.</summary>
    public const string VersionRequestType = "t-x-takp-q";

    /// <summary>Server to client: whether the switch is accepted.</summary>
    public const string VersionResponseType = "t-x-takp-r";

    public const string PingType = "t-x-c-t";

    public const string PongType = "t-x-c-t-r";

    /// <summary>The uid TAK servers (taky, FreeTAKServer) give every pong.</summary>
    public const string PongUid = "takPong";

    private static TimeSpan NegotiationLifetime { get; } = TimeSpan.FromMinutes(1);
    private static TimeSpan PongLifetime { get; } = TimeSpan.FromSeconds(20);

    public static CotEvent CreateVersionSupport(string uid, DateTimeOffset now, params ReadOnlySpan<int> versions)
    {
        if (versions.IsEmpty)
        {
            throw new ArgumentException("at least one version is needed", nameof(versions));
        }

        var control = new CotDetailBuilder();
        foreach (var version in versions)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(version, nameof(versions));
            control.Element("TakProtocolSupport", ("version", version.ToString(CultureInfo.InvariantCulture)));
        }

        return Negotiation(uid, VersionSupportType, now, control);
    }

    public static CotEvent CreateVersionRequest(string uid, DateTimeOffset now, int version)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(version);
        return Negotiation(uid, VersionRequestType, now, new CotDetailBuilder().Element("TakRequest", ("version", version.ToString(CultureInfo.InvariantCulture))));
    }

    public static CotEvent CreateVersionResponse(string uid, DateTimeOffset now, bool accepted) =>
        Negotiation(uid, VersionResponseType, now, new CotDetailBuilder().Element("TakResponse", ("status", accepted ? "true" : "false")));

    /// <summary>The versions in a t-x-takp-v event; false for any other event.</summary>
    public static bool TryGetSupportedVersions(CotEvent cotEvent, out IReadOnlyList<int> versions)
    {
        ArgumentNullException.ThrowIfNull(cotEvent);
        var found = new List<int>();
        versions = found;
        if (cotEvent.Type != VersionSupportType)
        {
            return false;
        }

        foreach (var (name, attributes) in ControlElements(cotEvent.Detail))
        {
            if (name == "TakProtocolSupport" && ParseVersion(attributes) is { } version)
            {
                found.Add(version);
            }
        }

        return found.Count > 0;
    }

    /// <summary>The version a t-x-takp-q event asks for; false for any other event.</summary>
    public static bool TryGetRequestedVersion(CotEvent cotEvent, out int version)
    {
        ArgumentNullException.ThrowIfNull(cotEvent);
        version = 0;
        if (cotEvent.Type != VersionRequestType)
        {
            return false;
        }

        foreach (var (name, attributes) in ControlElements(cotEvent.Detail))
        {
            if (name == "TakRequest" && ParseVersion(attributes) is { } requested)
            {
                version = requested;
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether a t-x-takp-r event accepts the switch; false for any other event.</summary>
    public static bool TryGetResponse(CotEvent cotEvent, out bool accepted)
    {
        ArgumentNullException.ThrowIfNull(cotEvent);
        accepted = false;
        if (cotEvent.Type != VersionResponseType)
        {
            return false;
        }

        foreach (var (name, attributes) in ControlElements(cotEvent.Detail))
        {
            if (name == "TakResponse" && attributes.TryGetValue("status", out var status))
            {
                accepted = string.Equals(status.Trim(), "true", StringComparison.OrdinalIgnoreCase);
                return true;
            }
        }

        return false;
    }

    public static bool IsPing(CotEvent cotEvent) => cotEvent?.Type == PingType;

    public static bool IsPong(CotEvent cotEvent) => cotEvent?.Type == PongType;

    /// <summary>
    /// The reply a TAK server sends to a client's t-x-c-t ping, as taky and FreeTAKServer build it:
    /// uid "takPong", how h-g-i-g-o, stale 20 s later, point 0,0.
    /// </summary>
    public static CotEvent CreatePong(DateTimeOffset now) => new()
    {
        Uid = PongUid,
        Type = PongType,
        How = "h-g-i-g-o",
        Time = now,
        Start = now,
        Stale = now + PongLifetime,
        Point = new CotPoint(0, 0, 0),
    };

    /// <summary>Tells a device to remove a marker or other item: t-x-d-d with a link to its uid and a forced delete.</summary>
    public const string DeleteType = "t-x-d-d";

    /// <summary>
    /// A deletion as ATAK sends one when a marker is removed: type t-x-d-d, a &lt;link&gt; naming the uid to remove, and
    /// &lt;__forcedelete/&gt;; its own uid is new each time.
    /// </summary>
    public static CotEvent CreateDelete(string uid, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(uid);
        return new CotEvent
        {
            Uid = Guid.NewGuid().ToString("D"),
            Type = DeleteType,
            How = "h-g-i-g-o",
            Time = now,
            Start = now,
            Stale = now + PongLifetime,
            Point = new CotPoint(0, 0, 0),
            Detail = new CotDetailBuilder().Element("link", ("uid", uid), ("relation", "none"), ("type", "none")).Element("__forcedelete").Build(),
        };
    }

    private static CotEvent Negotiation(string uid, string type, DateTimeOffset now, CotDetailBuilder control)
    {
        ArgumentException.ThrowIfNullOrEmpty(uid);
        return new CotEvent
        {
            Uid = uid,
            Type = type,
            How = "m-g",
            Time = now,
            Start = now,
            Stale = now + NegotiationLifetime,
            Point = new CotPoint(0, 0, 0),
            Detail = new CotDetailBuilder().Element("TakControl", control).Build(),
        };
    }

    private static int? ParseVersion(Dictionary<string, string> attributes) =>
        attributes.TryGetValue("version", out var text)
            && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var version) && version > 0
            ? version
            : null;

    // The children of <TakControl>, read from our own canonical detail XML.
    private static List<(string Name, Dictionary<string, string> Attributes)> ControlElements(CotDetail detail)
    {
        var elements = new List<(string, Dictionary<string, string>)>();
        if (!detail.Contains("TakControl"))
        {
            return elements;
        }

        // Our own canonical XML of an event already parsed within the limits, but escaping can make it longer than the
        // event was (each '>' of a text becomes "&gt;"): a detail past the reader's limit is no control message rather
        // than an exception that would end the sending device's session.
        using var reader = XmlReader.Create(new StringReader("<detail>" + detail.Xml + "</detail>"), CotParseOptions.Default.ReaderSettings);
        var inControl = false;
        while (TryRead(reader))
        {
            if (reader.NodeType == XmlNodeType.EndElement && reader.Depth == 1)
            {
                inControl = false;
            }

            if (reader.NodeType != XmlNodeType.Element)
            {
                continue;
            }

            if (reader.Depth == 1)
            {
                inControl = reader.Name == "TakControl" && !reader.IsEmptyElement;
            }
            else if (reader.Depth == 2 && inControl)
            {
                var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
                var name = reader.Name;
                while (reader.MoveToNextAttribute())
                {
                    attributes[reader.Name] = reader.Value;
                }

                elements.Add((name, attributes));
            }
        }

        return elements;

        static bool TryRead(XmlReader reader)
        {
            try
            {
                return reader.Read();
            }
            catch (XmlException)
            {
                return false;
            }
        }
    }
}

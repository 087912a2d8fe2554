using System.Globalization;
using System.Text;

namespace Concord.Cot;

/// <summary>
/// Maps between the XML <see cref="CotEvent"/> and the TAK protocol v1 <see cref="TakCotEvent"/>, following
/// the rules in detail.proto: a detail child goes into a typed field only when it occurs once and the
/// typed field can hold all of it; everything else travels whole in xmlDetail.
/// </summary>
/// <remarks>
/// The mapping loses nothing a TAK client relies on, but it is not byte-for-byte: times are milliseconds,
/// typed children come back after the xmlDetail children, and their numbers are rewritten in shortest form.
/// </remarks>
public static class TakCotConversion
{
    public static TakMessage ToTakMessage(this CotEvent cotEvent) => new() { CotEvent = cotEvent.ToTakCotEvent() };

    public static TakCotEvent ToTakCotEvent(this CotEvent cotEvent)
    {
        ArgumentNullException.ThrowIfNull(cotEvent);
        return new TakCotEvent
        {
            Type = cotEvent.Type,
            Access = cotEvent.Access ?? "",
            Qos = cotEvent.Qos ?? "",
            Opex = cotEvent.Opex ?? "",
            Uid = cotEvent.Uid,
            SendTime = Milliseconds(cotEvent.Time),
            StartTime = Milliseconds(cotEvent.Start),
            StaleTime = Milliseconds(cotEvent.Stale),
            How = cotEvent.How ?? "",
            Lat = cotEvent.Point.Lat,
            Lon = cotEvent.Point.Lon,
            Hae = cotEvent.Point.Hae,
            Ce = cotEvent.Point.Ce,
            Le = cotEvent.Point.Le,
            Detail = ToTakDetail(cotEvent.Detail),
        };
    }

    /// <exception cref="CotParseException">
    /// Missing uid or type, times or coordinates out of range, or an xmlDetail that is not acceptable XML.
    /// </exception>
    public static CotEvent ToCotEvent(this TakCotEvent takEvent, CotParseOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(takEvent);
        if (takEvent.Uid.Length == 0)
        {
            throw new CotParseException("missing field 'uid'");
        }

        if (takEvent.Type.Length == 0)
        {
            throw new CotParseException("missing field 'type'");
        }

        XmlSafe("uid", takEvent.Uid);
        XmlSafe("type", takEvent.Type);
        XmlSafe("how", takEvent.How);
        XmlSafe("access", takEvent.Access);
        XmlSafe("qos", takEvent.Qos);
        XmlSafe("opex", takEvent.Opex);
        if (CotPoint.Validate(takEvent.Lat, takEvent.Lon, takEvent.Hae, takEvent.Ce, takEvent.Le) is { } problem)
        {
            throw new CotParseException(problem);
        }

        return new CotEvent
        {
            Uid = takEvent.Uid,
            Type = takEvent.Type,
            How = NullIfEmpty(takEvent.How),
            Time = Time("sendTime", takEvent.SendTime),
            Start = Time("startTime", takEvent.StartTime),
            Stale = Time("staleTime", takEvent.StaleTime),
            Access = NullIfEmpty(takEvent.Access),
            Qos = NullIfEmpty(takEvent.Qos),
            Opex = NullIfEmpty(takEvent.Opex),
            Point = new CotPoint(takEvent.Lat, takEvent.Lon, takEvent.Hae, takEvent.Ce, takEvent.Le),
            Detail = ToCotDetail(takEvent.Detail, options ?? CotParseOptions.Default),
        };
    }

    private static TakDetail? ToTakDetail(CotDetail detail)
    {
        if (detail.IsEmpty)
        {
            return null;
        }

        var nodes = detail.Nodes;
        var typed = new bool[nodes.Length];
        TakContact? contact = null;
        TakGroup? group = null;
        TakPrecisionLocation? location = null;
        TakStatus? status = null;
        TakTakv? takv = null;
        TakTrack? track = null;
        // Counted once: asked for each node, it scanned every node again (thousands of empty elements cost tens of
        // milliseconds per event sent to a protocol-v1 device).
        var occurrences = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            if (TypedNames.Contains(node.Name))
            {
                occurrences[node.Name] = occurrences.GetValueOrDefault(node.Name) + 1;
            }
        }

        for (var i = 0; i < nodes.Length; i++)
        {
            var node = nodes[i];
            if (node.Attributes is null || node.HasContent || occurrences.GetValueOrDefault(node.Name) != 1)
            {
                continue;
            }

            switch (node.Name)
            {
                case "contact" when OnlyAttributes(node, "callsign", "endpoint") && node.Attribute("callsign") is { } callsign
                    && node.Attribute("endpoint") is not "":
                    contact = new TakContact { Callsign = callsign, Endpoint = node.Attribute("endpoint") ?? "" };
                    typed[i] = true;
                    break;
                case "__group" when OnlyAttributes(node, "name", "role") && node.Attributes.Length == 2:
                    group = new TakGroup { Name = node.Attribute("name")!, Role = node.Attribute("role")! };
                    typed[i] = true;
                    break;
                case "precisionlocation" when OnlyAttributes(node, "geopointsrc", "altsrc") && node.Attributes.Length == 2:
                    location = new TakPrecisionLocation { Geopointsrc = node.Attribute("geopointsrc")!, Altsrc = node.Attribute("altsrc")! };
                    typed[i] = true;
                    break;
                case "status" when OnlyAttributes(node, "battery") && node.Attributes.Length == 1
                    && uint.TryParse(node.Attribute("battery"), NumberStyles.None, CultureInfo.InvariantCulture, out var battery):
                    status = new TakStatus { Battery = battery };
                    typed[i] = true;
                    break;
                case "takv" when OnlyAttributes(node, "device", "platform", "os", "version") && node.Attributes.Length == 4:
                    takv = new TakTakv
                    {
                        Device = node.Attribute("device")!,
                        Platform = node.Attribute("platform")!,
                        Os = node.Attribute("os")!,
                        Version = node.Attribute("version")!,
                    };
                    typed[i] = true;
                    break;
                case "track" when OnlyAttributes(node, "speed", "course") && node.Attributes.Length == 2
                    && Finite(node.Attribute("speed"), out var speed) && Finite(node.Attribute("course"), out var course):
                    track = new TakTrack { Speed = speed, Course = course };
                    typed[i] = true;
                    break;
                default:
                    break;
            }
        }

        var xml = new StringBuilder(detail.Xml.Length);
        var at = 0;
        for (var i = 0; i < nodes.Length; i++)
        {
            if (typed[i])
            {
                xml.Append(detail.Xml, at, nodes[i].Start - at);
                at = nodes[i].Start + nodes[i].Length;
            }
        }

        xml.Append(detail.Xml, at, detail.Xml.Length - at);
        return new TakDetail
        {
            XmlDetail = xml.ToString(),
            Contact = contact,
            Group = group,
            PrecisionLocation = location,
            Status = status,
            Takv = takv,
            Track = track,
        };
    }

    private static CotDetail ToCotDetail(TakDetail? takDetail, CotParseOptions options)
    {
        if (takDetail is null)
        {
            return CotDetail.Empty;
        }

        var fromXml = CotDetail.Parse(takDetail.XmlDetail, options);
        var xml = new StringBuilder(fromXml.Xml);
        var added = false;

        // detail.proto: when a sender left the element in xmlDetail as well, xmlDetail wins.
        if (takDetail.Contact is { } contact && !fromXml.Contains("contact"))
        {
            Element(xml, "contact", ("endpoint", contact.Endpoint.Length == 0 ? null : contact.Endpoint), ("callsign", contact.Callsign));
            added = true;
        }

        if (takDetail.Group is { } group && !fromXml.Contains("__group"))
        {
            Element(xml, "__group", ("name", group.Name), ("role", group.Role));
            added = true;
        }

        if (takDetail.PrecisionLocation is { } location && !fromXml.Contains("precisionlocation"))
        {
            Element(xml, "precisionlocation", ("geopointsrc", location.Geopointsrc), ("altsrc", location.Altsrc));
            added = true;
        }

        if (takDetail.Status is { } status && !fromXml.Contains("status"))
        {
            Element(xml, "status", ("battery", status.Battery.ToString(CultureInfo.InvariantCulture)));
            added = true;
        }

        if (takDetail.Takv is { } takv && !fromXml.Contains("takv"))
        {
            Element(xml, "takv", ("device", takv.Device), ("platform", takv.Platform), ("os", takv.Os), ("version", takv.Version));
            added = true;
        }

        if (takDetail.Track is { } track && !fromXml.Contains("track"))
        {
            if (!double.IsFinite(track.Speed) || !double.IsFinite(track.Course))
            {
                throw new CotParseException("track speed or course is not a finite number");
            }

            Element(xml, "track", ("speed", CotNumber.ToText(track.Speed)), ("course", CotNumber.ToText(track.Course)));
            added = true;
        }

        // Read again as a rewrite of a detail already accepted: escaping may have made it longer than the sender's XML was.
        return added ? CotDetail.Reparse(xml.ToString(), options) : fromXml;
    }

    private static void Element(StringBuilder xml, string name, params ReadOnlySpan<(string Name, string? Value)> attributes)
    {
        xml.Append('<').Append(name);
        foreach (var (attributeName, value) in attributes)
        {
            if (value is not null)
            {
                XmlSafe(name + " " + attributeName, value);
                XmlText.AppendAttribute(xml, attributeName, value);
            }
        }

        xml.Append("/>");
    }


    // The detail elements TakMessage carries as typed fields.
    private static readonly System.Collections.Frozen.FrozenSet<string> TypedNames =
        System.Collections.Frozen.FrozenSet.Create(StringComparer.Ordinal, "contact", "__group", "precisionlocation", "status", "takv", "track");

    private static bool OnlyAttributes(DetailNode node, params ReadOnlySpan<string> allowed)
    {
        foreach (var attribute in node.Attributes!)
        {
            if (!allowed.Contains(attribute.Key))
            {
                return false;
            }
        }

        return true;
    }

    private static bool Finite(string? text, out double value)
    {
        value = 0;
        return text is not null && CotNumber.TryParse(text, out value) && double.IsFinite(value);
    }

    private static ulong Milliseconds(DateTimeOffset time)
    {
        var milliseconds = time.ToUnixTimeMilliseconds();
        return milliseconds < 0 ? 0 : (ulong)milliseconds;
    }

    private static DateTimeOffset Time(string field, ulong milliseconds)
    {
        const ulong maxMilliseconds = 253_402_300_799_999;
        return milliseconds > maxMilliseconds
            ? throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"{field} {milliseconds} is out of range"))
            : DateTimeOffset.FromUnixTimeMilliseconds((long)milliseconds);
    }

    // Protobuf strings may hold characters (most control characters) that XML cannot carry at all.
    private static void XmlSafe(string field, string value)
    {
        var at = XmlText.IndexOfInvalid(value);
        if (at >= 0)
        {
            throw new CotParseException("field '" + field + "' contains " + XmlText.DescribeCharacter(value[at]) + ", which XML cannot carry");
        }
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}

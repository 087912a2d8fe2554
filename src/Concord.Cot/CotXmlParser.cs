using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Xml;

namespace Concord.Cot;

internal static class CotXmlParser
{
    /// <summary>
    /// TAK clients and servers cut a stream of events at each "&lt;/event&gt;": one inside an event (a nested event, a
    /// comment, CDATA) would make what follows it an event of its own on every device the event is passed to, one that no
    /// check of Concord's has seen (a deletion of an incident, another member's emergency or chat).
    /// </summary>
    internal const string EndInside = "'</event>' inside the event (a nested event, or in a comment or CDATA): TAK clients would cut the event there";

    /// <summary>Whether a well-formed event's text holds its end tag more than once (the last one is its own).</summary>
    private static bool EndsInside<T>(ReadOnlySpan<T> document, ReadOnlySpan<T> endTag)
        where T : IEquatable<T>
    {
        var first = document.IndexOf(endTag);
        return first >= 0 && document[(first + 1)..].IndexOf(endTag) >= 0;
    }

    internal static CotEvent Parse(ReadOnlyMemory<byte> utf8, CotParseOptions options)
    {
        if (utf8.Length > options.MaxDocumentBytes)
        {
            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"event exceeds {options.MaxDocumentBytes} bytes"));
        }

        var stream = MemoryMarshal.TryGetArray(utf8, out var segment) && segment.Array is not null
            ? new MemoryStream(segment.Array, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(utf8.ToArray(), writable: false);
        try
        {
            using var reader = XmlReader.Create(stream, options.ThreadReaderSettings());
            var e = ReadEvent(reader, options);
            return EndsInside(utf8.Span, "</event>"u8) ? throw new CotParseException(EndInside) : e;
        }
        catch (Exception e) when (e is XmlException or DecoderFallbackException or ArgumentException)
        {
            throw Explain(e, utf8.Span);
        }
    }

    internal static CotEvent Parse(string xml, CotParseOptions options)
    {
        if (xml.Length > options.MaxDocumentBytes)
        {
            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"event exceeds {options.MaxDocumentBytes} characters"));
        }

        try
        {
            using var reader = XmlReader.Create(new StringReader(xml), options.ThreadReaderSettings());
            var e = ReadEvent(reader, options);
            return EndsInside(xml.AsSpan(), "</event>") ? throw new CotParseException(EndInside) : e;
        }
        catch (Exception e) when (e is XmlException or ArgumentException)
        {
            throw Explain(e, Encoding.UTF8.GetBytes(xml));
        }
    }

    private static CotParseException Explain(Exception e, ReadOnlySpan<byte> document)
    {
        if (document.IndexOf("<!DOCTYPE"u8) >= 0)
        {
            return new CotParseException("DTD is not allowed", e);
        }

        if (document.Trim(" \t\r\n"u8).IsEmpty)
        {
            return new CotParseException("empty document", e);
        }

        if (CotXmlFramer.IsTruncated(document) && FailedAtEnd(e, document))
        {
            return new CotParseException("truncated document", e);
        }

        return e is DecoderFallbackException
            ? new CotParseException("invalid UTF-8", e)
            : new CotParseException("malformed XML: " + e.Message, e);
    }

    // A truncated document fails where the input runs out; a mismatched tag near the end fails earlier.
    private static bool FailedAtEnd(Exception e, ReadOnlySpan<byte> document)
    {
        if (e is not XmlException { LineNumber: > 0 } xml)
        {
            return true;
        }

        var text = Encoding.UTF8.GetString(document).AsSpan().TrimEnd();
        var lineStart = 0;
        for (var line = 1; line < xml.LineNumber; line++)
        {
            var next = text[lineStart..].IndexOfAny('\n', '\r');
            if (next < 0)
            {
                return true;
            }

            lineStart += next + (text[lineStart + next] == '\r' && lineStart + next + 1 < text.Length && text[lineStart + next + 1] == '\n' ? 2 : 1);
        }

        return lineStart + xml.LinePosition >= text.Length;
    }

    private static CotEvent ReadEvent(XmlReader reader, CotParseOptions options)
    {
        if (reader.MoveToContent() != XmlNodeType.Element)
        {
            throw new CotParseException("no root element");
        }

        if (reader.Name != "event")
        {
            throw new CotParseException("root element is '" + Shorten(reader.Name) + "', expected 'event'");
        }

        string? uid = null, type = null, how = null, time = null, start = null, stale = null;
        string? version = null, access = null, qos = null, opex = null;
        if (reader.MoveToFirstAttribute())
        {
            do
            {
                switch (reader.Name)
                {
                    case "uid": uid = reader.Value; break;
                    case "type": type = reader.Value; break;
                    case "how": how = reader.Value; break;
                    case "time": time = reader.Value; break;
                    case "start": start = reader.Value; break;
                    case "stale": stale = reader.Value; break;
                    case "version": version = reader.Value; break;
                    case "access": access = reader.Value; break;
                    case "qos": qos = reader.Value; break;
                    case "opex": opex = reader.Value; break;
                    default: break;
                }
            }
            while (reader.MoveToNextAttribute());
            reader.MoveToElement();
        }

        var required = new CotEventAttributes(
            Required("uid", uid),
            Required("type", type),
            RequiredTime("time", time),
            RequiredTime("start", start),
            RequiredTime("stale", stale));

        CotPoint? point = null;
        var detail = CotDetail.Empty;
        var sawDetail = false;
        if (!reader.IsEmptyElement)
        {
            while (reader.Read())
            {
                if (reader.NodeType == XmlNodeType.EndElement && reader.Depth == 0)
                {
                    break;
                }

                if (reader.NodeType != XmlNodeType.Element)
                {
                    continue;
                }

                CheckDepth(reader, options);
                switch (reader.Name)
                {
                    case "point" when reader.Depth == 1:
                        if (point is not null)
                        {
                            throw new CotParseException("duplicate element 'point'");
                        }

                        point = ReadPoint(reader);
                        SkipContent(reader, options);
                        break;

                    case "detail" when reader.Depth == 1:
                        if (sawDetail)
                        {
                            throw new CotParseException("duplicate element 'detail'");
                        }

                        sawDetail = true;
                        detail = DetailCanonicalizer.Read(reader, options.MaxDepth, depthOffset: 0, options.MaxDocumentBytes);
                        break;

                    default:
                        SkipContent(reader, options);
                        break;
                }
            }
        }

        // Reading on to the end rejects a second root element or trailing garbage.
        while (reader.Read())
        {
        }

        return new CotEvent
        {
            Uid = required.Uid,
            Type = required.Type,
            How = NullIfEmpty(how),
            Time = required.Time,
            Start = required.Start,
            Stale = required.Stale,
            Version = string.IsNullOrEmpty(version) ? "2.0" : version,
            Access = NullIfEmpty(access),
            Qos = NullIfEmpty(qos),
            Opex = NullIfEmpty(opex),
            Point = point ?? throw new CotParseException("missing element 'point'"),
            Detail = detail,
        };
    }

    private static CotPoint ReadPoint(XmlReader reader)
    {
        string? lat = null, lon = null, hae = null, ce = null, le = null;
        if (reader.MoveToFirstAttribute())
        {
            do
            {
                switch (reader.Name)
                {
                    case "lat": lat = reader.Value; break;
                    case "lon": lon = reader.Value; break;
                    case "hae": hae = reader.Value; break;
                    case "ce": ce = reader.Value; break;
                    case "le": le = reader.Value; break;
                    default: break;
                }
            }
            while (reader.MoveToNextAttribute());
            reader.MoveToElement();
        }

        var latitude = Number("latitude", "lat", lat, required: true);
        var longitude = Number("longitude", "lon", lon, required: true);
        var height = Number("hae", "hae", hae, required: false);
        var circularError = Number("ce", "ce", ce, required: false);
        var linearError = Number("le", "le", le, required: false);
        if (CotPoint.Validate(latitude, longitude, height, circularError, linearError) is { } problem)
        {
            throw new CotParseException(problem);
        }

        return new CotPoint(latitude, longitude, height, circularError, linearError);
    }

    private static double Number(string what, string attribute, string? text, bool required)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return required ? throw new CotParseException("missing attribute '" + attribute + "'") : CotPoint.NoValue;
        }

        return CotNumber.TryParse(text, out var value)
            ? value
            : throw new CotParseException(what + " '" + CotNumber.Describe(text) + "' is not a number");
    }

    private static void SkipContent(XmlReader reader, CotParseOptions options)
    {
        if (reader.IsEmptyElement)
        {
            return;
        }

        var depth = reader.Depth;
        while (reader.Read())
        {
            if (reader.NodeType == XmlNodeType.Element)
            {
                CheckDepth(reader, options);
            }
            else if (reader.NodeType == XmlNodeType.EndElement && reader.Depth == depth)
            {
                return;
            }
        }
    }

    private static void CheckDepth(XmlReader reader, CotParseOptions options)
    {
        if (reader.Depth + 1 > options.MaxDepth)
        {
            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"element nesting exceeds {options.MaxDepth} levels"));
        }
    }

    private static string Required(string attribute, string? value) =>
        string.IsNullOrEmpty(value) ? throw new CotParseException("missing attribute '" + attribute + "'") : value;

    private static DateTimeOffset RequiredTime(string attribute, string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new CotParseException("missing attribute '" + attribute + "'");
        }

        return CotTime.TryParse(value, out var time)
            ? time
            : throw new CotParseException("invalid time '" + Shorten(value) + "' in attribute '" + attribute + "'");
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static string Shorten(string value) => value.Length <= 40 ? value : string.Concat(value.AsSpan(0, 40), "…");

    private readonly record struct CotEventAttributes(string Uid, string Type, DateTimeOffset Time, DateTimeOffset Start, DateTimeOffset Stale);
}

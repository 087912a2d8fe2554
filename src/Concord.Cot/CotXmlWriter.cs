using System.Buffers;

namespace Concord.Cot;

// Compact, double-quoted, no XML declaration: what TAK servers put on the wire.
internal static class CotXmlWriter
{
    internal static void Write(CotEvent cotEvent, IBufferWriter<byte> output)
    {
        output.Write("<event"u8);
        Attribute(output, "version"u8, cotEvent.Version);
        Attribute(output, "uid"u8, cotEvent.Uid);
        Attribute(output, "type"u8, cotEvent.Type);
        Attribute(output, "how"u8, cotEvent.How);
        Time(output, "time"u8, cotEvent.Time);
        Time(output, "start"u8, cotEvent.Start);
        Time(output, "stale"u8, cotEvent.Stale);
        Attribute(output, "access"u8, cotEvent.Access);
        Attribute(output, "qos"u8, cotEvent.Qos);
        Attribute(output, "opex"u8, cotEvent.Opex);
        output.Write("><point"u8);
        var point = cotEvent.Point;
        Number(output, "lat"u8, point.Lat);
        Number(output, "lon"u8, point.Lon);
        Number(output, "hae"u8, point.Hae);
        Number(output, "ce"u8, point.Ce);
        Number(output, "le"u8, point.Le);
        output.Write("/>"u8);
        var detail = cotEvent.Detail.Xml;
        if (detail.Length == 0)
        {
            output.Write("<detail/>"u8);
        }
        else
        {
            // Canonical detail XML was produced by our own writer from parsed XML, so it goes out as is.
            output.Write("<detail>"u8);
            XmlText.WriteUtf8(output, detail);
            output.Write("</detail>"u8);
        }

        output.Write("</event>"u8);
    }

    private static void Attribute(IBufferWriter<byte> output, ReadOnlySpan<byte> name, string? value)
    {
        if (value is null)
        {
            return;
        }

        Name(output, name);
        XmlText.WriteAttributeValue(output, value);
        output.Write("\""u8);
    }

    private static void Time(IBufferWriter<byte> output, ReadOnlySpan<byte> name, DateTimeOffset value)
    {
        Name(output, name);
        var span = output.GetSpan(CotTime.MaxBytes + 1);
        var written = CotTime.Format(value, span);
        span[written++] = (byte)'"';
        output.Advance(written);
    }

    private static void Number(IBufferWriter<byte> output, ReadOnlySpan<byte> name, double value)
    {
        Name(output, name);
        Span<char> chars = stackalloc char[CotNumber.MaxChars];
        var length = CotNumber.Format(value, chars);
        XmlText.WriteAscii(output, chars[..length]);
        output.Write("\""u8);
    }

    private static void Name(IBufferWriter<byte> output, ReadOnlySpan<byte> name)
    {
        var span = output.GetSpan(name.Length + 3);
        span[0] = (byte)' ';
        name.CopyTo(span[1..]);
        span[name.Length + 1] = (byte)'=';
        span[name.Length + 2] = (byte)'"';
        output.Advance(name.Length + 3);
    }
}

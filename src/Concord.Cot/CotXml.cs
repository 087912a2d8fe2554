using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Concord.Cot;

/// <summary>Cursor-on-Target XML: safe parsing of untrusted events and compact serialisation.</summary>
public static class CotXml
{
    /// <summary>Parses one UTF-8 &lt;event&gt; document (an optional &lt;?xml …?&gt; prefix is allowed).</summary>
    /// <exception cref="CotParseException">The document is not an acceptable CoT event; the reason says why.</exception>
    public static CotEvent Parse(ReadOnlyMemory<byte> utf8Document, CotParseOptions? options = null) =>
        CotXmlParser.Parse(utf8Document, options ?? CotParseOptions.Default);

    /// <inheritdoc cref="Parse(ReadOnlyMemory{byte}, CotParseOptions?)"/>
    public static CotEvent Parse(string document, CotParseOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(document);
        return CotXmlParser.Parse(document, options ?? CotParseOptions.Default);
    }

    /// <summary>Like <see cref="Parse(ReadOnlyMemory{byte}, CotParseOptions?)"/>, returning the reason instead of throwing.</summary>
    public static bool TryParse(
        ReadOnlyMemory<byte> utf8Document,
        [NotNullWhen(true)] out CotEvent? cotEvent,
        [NotNullWhen(false)] out string? reason,
        CotParseOptions? options = null)
    {
        try
        {
            cotEvent = Parse(utf8Document, options);
            reason = null;
            return true;
        }
        catch (CotParseException e)
        {
            cotEvent = null;
            reason = e.Reason;
            return false;
        }
    }

    /// <summary>Writes the event as compact UTF-8 XML (double quotes, no XML declaration).</summary>
    public static void Serialize(CotEvent cotEvent, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(cotEvent);
        ArgumentNullException.ThrowIfNull(output);
        CotXmlWriter.Write(cotEvent, output);
    }

    public static byte[] SerializeToUtf8Bytes(CotEvent cotEvent)
    {
        var output = new ArrayBufferWriter<byte>(1024);
        Serialize(cotEvent, output);
        return output.WrittenSpan.ToArray();
    }

    public static string Serialize(CotEvent cotEvent)
    {
        var output = new ArrayBufferWriter<byte>(1024);
        Serialize(cotEvent, output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }
}

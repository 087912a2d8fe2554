using System.Buffers;
using System.Globalization;

namespace Concord.Cot;

/// <summary>
/// TAK protocol v1 framing. Streaming (TAK server connections): 0xbf, varint payload length, payload.
/// Mesh (one UDP datagram): 0xbf, varint protocol version (1), 0xbf, payload. The payload is a
/// protobuf <see cref="TakMessage"/>.
/// </summary>
public static class TakFraming
{
    public const byte Magic = 0xBF;

    /// <summary>The only TAK protocol payload version that exists besides 0 (XML).</summary>
    public const uint ProtocolVersion = 1;

    public static byte[] EncodeStreamFrame(TakMessage message)
    {
        var output = new ArrayBufferWriter<byte>(512);
        WriteStreamFrame(message, output);
        return output.WrittenSpan.ToArray();
    }

    public static void WriteStreamFrame(TakMessage message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var length = TakProtobuf.GetEncodedLength(message);
        var header = 1 + ProtoWriter.VarintSize((ulong)length);
        var span = output.GetSpan(header + length);
        span[0] = Magic;
        var writer = new ProtoWriter(span[1..]);
        writer.Varint((ulong)length);
        TakProtobuf.Encode(message, span[header..]);
        output.Advance(header + length);
    }

    public static byte[] EncodeMeshDatagram(TakMessage message)
    {
        var length = TakProtobuf.GetEncodedLength(message);
        var bytes = new byte[3 + length];
        bytes[0] = Magic;
        bytes[1] = (byte)ProtocolVersion;
        bytes[2] = Magic;
        TakProtobuf.Encode(message, bytes.AsSpan(3));
        return bytes;
    }

    /// <summary>Decodes one mesh datagram (UDP keeps datagram boundaries, so no buffering is needed).</summary>
    /// <exception cref="CotFramingException">The header is not 0xbf version 0xbf, or the version is not 1.</exception>
    /// <exception cref="CotParseException">The payload is not a valid TakMessage.</exception>
    public static TakMessage DecodeMeshDatagram(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < 3 || datagram[0] != Magic)
        {
            throw new CotFramingException("mesh datagram does not start with the TAK protocol header 0xbf");
        }

        ulong version = 0;
        var at = 1;
        for (var shift = 0; ; shift += 7)
        {
            if (at >= datagram.Length || shift >= 64)
            {
                throw new CotFramingException("mesh datagram has a malformed protocol version");
            }

            var b = datagram[at++];
            version |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                break;
            }
        }

        if (at >= datagram.Length || datagram[at] != Magic)
        {
            throw new CotFramingException("mesh datagram header is not terminated by 0xbf");
        }

        if (version != ProtocolVersion)
        {
            throw new CotFramingException(string.Create(CultureInfo.InvariantCulture, $"unsupported TAK protocol version {version}"));
        }

        return TakProtobuf.Decode(datagram[(at + 1)..]);
    }
}

using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Concord.Cot;

internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

// Proto3 encoding rules: scalar fields at their default value are not written, present sub-messages
// always are, fields go out in field-number order. That makes the encoding canonical.
internal ref struct ProtoWriter(Span<byte> destination)
{
    private readonly Span<byte> _destination = destination;

    public int Position { get; private set; }

    public static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }

        return size;
    }

    public static int TagSize(int field) => VarintSize((ulong)field << 3);

    public static int StringSize(int field, string value)
    {
        if (value.Length == 0)
        {
            return 0;
        }

        var length = Encoding.UTF8.GetByteCount(value);
        return TagSize(field) + VarintSize((ulong)length) + length;
    }

    public static int VarintFieldSize(int field, ulong value) => value == 0 ? 0 : TagSize(field) + VarintSize(value);

    public static int DoubleFieldSize(int field, double value) => IsDefault(value) ? 0 : TagSize(field) + 8;

    public static int MessageFieldSize(int field, int length) => TagSize(field) + VarintSize((ulong)length) + length;

    public static bool IsDefault(double value) => BitConverter.DoubleToUInt64Bits(value) == 0;

    public void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _destination[Position++] = (byte)(value | 0x80);
            value >>= 7;
        }

        _destination[Position++] = (byte)value;
    }

    public void Tag(int field, WireType wireType) => Varint(((ulong)field << 3) | (uint)wireType);

    public void String(int field, string value)
    {
        if (value.Length == 0)
        {
            return;
        }

        Tag(field, WireType.LengthDelimited);
        Varint((ulong)Encoding.UTF8.GetByteCount(value));
        Position += Encoding.UTF8.GetBytes(value, _destination[Position..]);
    }

    public void VarintField(int field, ulong value)
    {
        if (value == 0)
        {
            return;
        }

        Tag(field, WireType.Varint);
        Varint(value);
    }

    public void DoubleField(int field, double value)
    {
        if (IsDefault(value))
        {
            return;
        }

        Tag(field, WireType.Fixed64);
        BinaryPrimitives.WriteDoubleLittleEndian(_destination[Position..], value);
        Position += 8;
    }

    public void MessageHeader(int field, int length)
    {
        Tag(field, WireType.LengthDelimited);
        Varint((ulong)length);
    }
}

internal ref struct ProtoReader(ReadOnlySpan<byte> source, string message)
{
    private static UTF8Encoding StrictUtf8 { get; } = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _source = source;
    private readonly string _message = message;
    private int _position;

    public readonly bool End => _position >= _source.Length;

    // Returns the field number; 0 never occurs in valid protobuf and is rejected.
    public int ReadTag(out WireType wireType)
    {
        var tag = ReadVarint();
        var field = tag >> 3;
        wireType = (WireType)(tag & 7);
        if (field == 0 || field > 536_870_911)
        {
            throw Error(string.Create(CultureInfo.InvariantCulture, $"invalid field number {field}"));
        }

        return (int)field;
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (_position >= _source.Length)
            {
                throw Error("truncated varint");
            }

            var b = _source[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw Error("varint longer than 10 bytes");
    }

    public double ReadDouble()
    {
        if (_source.Length - _position < 8)
        {
            throw Error("truncated fixed64");
        }

        var value = BinaryPrimitives.ReadDoubleLittleEndian(_source[_position..]);
        _position += 8;
        return value;
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        var length = ReadVarint();
        if (length > (ulong)(_source.Length - _position))
        {
            throw Error(string.Create(CultureInfo.InvariantCulture, $"length {length} runs past the end of the message"));
        }

        var bytes = _source.Slice(_position, (int)length);
        _position += (int)length;
        return bytes;
    }

    public string ReadString(int field)
    {
        var bytes = ReadBytes();
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"protobuf {_message}: invalid UTF-8 in field {field}"), e);
        }
    }

    public void Expect(int field, WireType actual, WireType expected)
    {
        if (actual != expected)
        {
            throw Error(string.Create(CultureInfo.InvariantCulture, $"field {field} has wire type {(int)actual}, expected {(int)expected}"));
        }
    }

    public void Skip(int field, WireType wireType)
    {
        switch (wireType)
        {
            case WireType.Varint:
                ReadVarint();
                break;
            case WireType.Fixed64:
                ReadDouble();
                break;
            case WireType.LengthDelimited:
                ReadBytes();
                break;
            case WireType.Fixed32:
                if (_source.Length - _position < 4)
                {
                    throw Error("truncated fixed32");
                }

                _position += 4;
                break;
            default:
                throw Error(string.Create(CultureInfo.InvariantCulture, $"field {field} has unsupported wire type {(int)wireType}"));
        }
    }

    public readonly CotParseException Error(string problem) => new("protobuf " + _message + ": " + problem);
}

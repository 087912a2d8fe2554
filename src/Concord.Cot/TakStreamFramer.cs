using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Concord.Cot;

/// <summary>
/// Splits a TAK protocol v1 stream (0xbf, varint length, protobuf payload, repeated) into payloads.
/// Feed it with <see cref="Append"/>, then call <see cref="TryReadPayload"/> or
/// <see cref="TryReadMessage"/> until they return false.
/// </summary>
/// <remarks>
/// <para>A frame longer than <see cref="MaxPayloadBytes"/> raises <see cref="CotFramingException"/> once and
/// its bytes are skipped as they arrive (never buffered), so the stream stays in step. A frame that does
/// not start with 0xbf, or whose length varint is malformed, leaves no way to find the next frame: the
/// framer faults and every later call throws; close the connection.</para>
/// <para>The memory returned by <see cref="TryReadPayload"/> is valid until the next <see cref="Append"/>.</para>
/// </remarks>
public sealed class TakStreamFramer
{
    private byte[] _buffer;
    private int _start;
    private int _end;
    private ulong _skipRemaining;
    private string? _fault;

    public TakStreamFramer(int maxPayloadBytes = CotParseOptions.DefaultMaxDocumentBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPayloadBytes, 16);
        MaxPayloadBytes = maxPayloadBytes;
        // (maxPayloadBytes + 16 overflowed for int.MaxValue.)
        _buffer = new byte[Math.Min(maxPayloadBytes, 8192 - 16) + 16];
    }

    public int MaxPayloadBytes { get; }

    public int BufferedBytes => _end - _start;

    public bool IsFaulted => _fault is not null;

    public void Append(ReadOnlySpan<byte> data)
    {
        if (_skipRemaining > 0)
        {
            var skip = (int)Math.Min(_skipRemaining, (ulong)data.Length);
            _skipRemaining -= (ulong)skip;
            data = data[skip..];
        }

        if (data.IsEmpty || _fault is not null)
        {
            return;
        }

        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_start > 0 && _end + data.Length > _buffer.Length)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end + data.Length > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_end + data.Length, _buffer.Length * 2));
        }

        data.CopyTo(_buffer.AsSpan(_end));
        _end += data.Length;
    }

    /// <summary>The next complete payload (a serialized TakMessage), or false when more bytes are needed.</summary>
    /// <exception cref="CotFramingException">Oversize frame (skipped) or a broken header (faulted).</exception>
    public bool TryReadPayload(out ReadOnlyMemory<byte> payload)
    {
        payload = default;
        if (_fault is not null)
        {
            throw new CotFramingException(_fault);
        }

        var data = _buffer.AsSpan(_start, _end - _start);
        if (data.IsEmpty)
        {
            return false;
        }

        if (data[0] != TakFraming.Magic)
        {
            throw Fault(string.Create(CultureInfo.InvariantCulture, $"expected TAK protocol magic byte 0xbf, found 0x{data[0]:x2}"));
        }

        ulong length = 0;
        var at = 1;
        for (var shift = 0; ; shift += 7)
        {
            if (at >= data.Length)
            {
                return false;
            }

            if (shift >= 64)
            {
                throw Fault("TAK protocol frame length varint is longer than 10 bytes");
            }

            var b = data[at++];
            if (shift == 63 && b is > 1 and < 0x80)
            {
                throw Fault("TAK protocol frame length varint exceeds 64 bits");
            }

            length |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                break;
            }
        }

        // No protobuf message is 2 GiB or more: such a length is noise, not a frame to skip (skipping it would swallow the
        // rest of the connection, frame after frame, without a word).
        if (length > int.MaxValue)
        {
            throw Fault(string.Create(CultureInfo.InvariantCulture, $"TAK protocol frame length {length} is not a frame's"));
        }

        if (length > (ulong)MaxPayloadBytes)
        {
            var available = (ulong)(data.Length - at);
            var skipNow = Math.Min(length, available);
            _start += at + (int)skipNow;
            _skipRemaining = length - skipNow;
            throw new CotFramingException(string.Create(CultureInfo.InvariantCulture, $"TAK protocol frame of {length} bytes exceeds {MaxPayloadBytes} bytes"));
        }

        if ((ulong)(data.Length - at) < length)
        {
            return false;
        }

        payload = _buffer.AsMemory(_start + at, (int)length);
        _start += at + (int)length;
        return true;
    }

    /// <summary>The next complete message, decoded.</summary>
    /// <exception cref="CotFramingException">As <see cref="TryReadPayload"/>.</exception>
    /// <exception cref="CotParseException">The frame was intact but its payload is not a TakMessage; the framer stays in step.</exception>
    public bool TryReadMessage([NotNullWhen(true)] out TakMessage? message)
    {
        if (!TryReadPayload(out var payload))
        {
            message = null;
            return false;
        }

        message = TakProtobuf.Decode(payload.Span);
        return true;
    }

    private CotFramingException Fault(string reason)
    {
        _fault = reason;
        _start = _end = 0;
        return new CotFramingException(reason);
    }
}

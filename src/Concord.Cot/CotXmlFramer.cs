using System.Buffers;
using System.Globalization;

namespace Concord.Cot;

/// <summary>
/// Splits a TAK protocol version 0 stream (CoT XML events one after another over TCP/TLS) into
/// complete &lt;event&gt; documents. Feed it whatever the socket returns with <see cref="Append"/>, then
/// call <see cref="TryReadEvent"/> until it returns false.
/// </summary>
/// <remarks>
/// <para>The framer works on bytes (all XML markup is ASCII, and UTF-8 continuation bytes never are), so
/// chunks may split events and multi-byte characters anywhere. &lt;?xml …?&gt; declarations, comments and
/// whitespace between events are skipped. It follows tags, quoted attribute values, comments, CDATA
/// sections and processing instructions, so an "&lt;/event&gt;" inside any of them does not end an event,
/// and nested &lt;event&gt; elements are counted. It does not check well-formedness: that is the parser's job.</para>
/// <para>Errors: bytes that cannot start an event (garbage, a DTD, a TAK protocol v1 frame) and events
/// longer than <see cref="MaxEventBytes"/> raise <see cref="CotFramingException"/> from
/// <see cref="TryReadEvent"/>. The offending bytes are discarded and the framer resynchronises on the
/// next "&lt;event" or "&lt;?xml", so the caller may log and go on reading, or close the connection.
/// Memory stays bounded by <see cref="MaxEventBytes"/> plus one appended chunk.</para>
/// <para>The memory returned by <see cref="TryReadEvent"/> points into the framer's buffer and is valid
/// until the next call to <see cref="Append"/>; parse or copy it before appending more.</para>
/// </remarks>
public sealed class CotXmlFramer
{
    private static SearchValues<byte> StartTagNameEnd { get; } = SearchValues.Create(" \t\r\n/><"u8);
    private static SearchValues<byte> EndTagNameEnd { get; } = SearchValues.Create(" \t\r\n><"u8);
    private static SearchValues<byte> TagSpecials { get; } = SearchValues.Create(">\"'"u8);

    private static ReadOnlySpan<byte> EventName => "event"u8;

    private byte[] _buffer;
    private int _start;
    private int _end;
    private int _scan;
    private int _eventStart = -1;
    private State _state;
    private byte _quote;
    private bool _tagIsEvent;
    private int _eventNesting;
    private int _skipped;

    public CotXmlFramer(int maxEventBytes = CotParseOptions.DefaultMaxDocumentBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEventBytes, 16);
        MaxEventBytes = maxEventBytes;
        _buffer = new byte[Math.Min(maxEventBytes, 8192)];
    }

    private enum State
    {
        BetweenEvents,
        DeclarationBetweenEvents,
        CommentBetweenEvents,
        Resync,
        Content,
        StartTag,
        AttributeValue,
        EndTag,
        Comment,
        CData,
        ProcessingInstruction,
        Markup,
    }

    public int MaxEventBytes { get; }

    /// <summary>Bytes appended but not yet returned or discarded.</summary>
    public int BufferedBytes => _end - _start;

    public void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        if (_start == _end && _eventStart < 0)
        {
            _start = _end = _scan = 0;
        }
        else if (_start > 0 && _end + data.Length > _buffer.Length)
        {
            var length = _end - _start;
            _buffer.AsSpan(_start, length).CopyTo(_buffer);
            _scan -= _start;
            if (_eventStart >= 0)
            {
                _eventStart -= _start;
            }

            _end = length;
            _start = 0;
        }

        if (_end + data.Length > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_end + data.Length, _buffer.Length * 2));
        }

        data.CopyTo(_buffer.AsSpan(_end));
        _end += data.Length;
    }

    /// <summary>Returns the next complete event document, or false when more bytes are needed.</summary>
    /// <exception cref="CotFramingException">Garbage or an oversize event; the framer has resynchronised.</exception>
    public bool TryReadEvent(out ReadOnlyMemory<byte> document)
    {
        document = default;
        while (true)
        {
            var p = _scan;
            if (p >= _end)
            {
                return Wait();
            }

            var data = _buffer.AsSpan(0, _end);
            switch (_state)
            {
                case State.BetweenEvents:
                    if (!StepBetweenEvents(data, p))
                    {
                        return Wait();
                    }

                    break;

                case State.DeclarationBetweenEvents:
                case State.CommentBetweenEvents:
                    {
                        var terminator = _state == State.DeclarationBetweenEvents ? "?>"u8 : "-->"u8;
                        var found = data[p..].IndexOf(terminator);
                        if (found >= 0)
                        {
                            _scan = _start = p + found + terminator.Length;
                            _state = State.BetweenEvents;
                            break;
                        }

                        // Keep a possible partial terminator; drop the rest as we go.
                        var keep = Math.Min(terminator.Length - 1, _end - p);
                        _skipped += _end - keep - p;
                        _scan = _start = _end - keep;
                        if (_skipped > MaxEventBytes)
                        {
                            throw Garbage(_scan, string.Create(CultureInfo.InvariantCulture, $"markup between events exceeds {MaxEventBytes} bytes"));
                        }

                        return false;
                    }

                case State.Resync:
                    {
                        var found = data[p..].IndexOf((byte)'<');
                        if (found < 0)
                        {
                            _scan = _start = _end;
                            return false;
                        }

                        var at = p + found;
                        var candidate = data[at..];
                        if (IsEventStart(candidate) || candidate.StartsWith("<?xml"u8))
                        {
                            _scan = _start = at;
                            _state = State.BetweenEvents;
                            break;
                        }

                        if (candidate.Length < 7 && ("<event"u8.StartsWith(candidate) || "<?xml"u8.StartsWith(candidate)))
                        {
                            _scan = _start = at;
                            return false;
                        }

                        _scan = _start = at + 1;
                        break;
                    }

                case State.Content:
                    if (!StepContent(data, p))
                    {
                        return Wait();
                    }

                    break;

                case State.StartTag:
                    {
                        var found = data[p..].IndexOfAny(TagSpecials);
                        if (found < 0)
                        {
                            _scan = _end;
                            return Wait();
                        }

                        var at = p + found;
                        var c = data[at];
                        _scan = at + 1;
                        if (c != (byte)'>')
                        {
                            _quote = c;
                            _state = State.AttributeValue;
                            break;
                        }

                        var selfClosing = data[at - 1] == (byte)'/';
                        if (_tagIsEvent && !selfClosing)
                        {
                            _eventNesting++;
                        }

                        if (_eventNesting == 0)
                        {
                            return Complete(out document);
                        }

                        _state = State.Content;
                        break;
                    }

                case State.AttributeValue:
                    {
                        var found = data[p..].IndexOf(_quote);
                        if (found < 0)
                        {
                            _scan = _end;
                            return Wait();
                        }

                        _scan = p + found + 1;
                        _state = State.StartTag;
                        break;
                    }

                case State.EndTag:
                    {
                        var found = data[p..].IndexOf((byte)'>');
                        if (found < 0)
                        {
                            _scan = _end;
                            return Wait();
                        }

                        _scan = p + found + 1;
                        _state = State.Content;
                        if (_tagIsEvent && --_eventNesting <= 0)
                        {
                            return Complete(out document);
                        }

                        break;
                    }

                case State.Comment:
                case State.CData:
                case State.ProcessingInstruction:
                case State.Markup:
                    {
                        var terminator = _state switch
                        {
                            State.Comment => "-->"u8,
                            State.CData => "]]>"u8,
                            State.ProcessingInstruction => "?>"u8,
                            _ => ">"u8,
                        };
                        var found = data[p..].IndexOf(terminator);
                        if (found < 0)
                        {
                            _scan = Math.Max(p, _end - (terminator.Length - 1));
                            return Wait();
                        }

                        _scan = p + found + terminator.Length;
                        _state = State.Content;
                        break;
                    }

                default:
                    throw new InvalidOperationException("unknown framer state");
            }
        }
    }

    /// <summary>
    /// Hands over the bytes appended but not yet framed and empties the framer: used when a connection
    /// switches to TAK protocol v1 after version negotiation.
    /// </summary>
    public byte[] TakeBufferedBytes()
    {
        var rest = _buffer.AsSpan(_start, _end - _start).ToArray();
        _start = _end = _scan = 0;
        _eventStart = -1;
        _state = State.BetweenEvents;
        return rest;
    }

    // True when the bytes hold the start of an event that never completes: the parser's way of telling
    // "truncated document" from other malformed XML.
    internal static bool IsTruncated(ReadOnlySpan<byte> document)
    {
        var framer = new CotXmlFramer(Math.Max(16, document.Length + 1));
        framer.Append(document);
        try
        {
            return !framer.TryReadEvent(out _);
        }
        catch (CotFramingException)
        {
            return false;
        }
    }

    private static bool IsEventStart(ReadOnlySpan<byte> data) =>
        data.Length >= 7 && data.StartsWith("<event"u8) && data[6] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or (byte)'>' or (byte)'/';

    private static string Preview(ReadOnlySpan<byte> data)
    {
        var length = Math.Min(data.Length, 16);
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            var b = data[i];
            chars[i] = b is >= 0x20 and < 0x7f ? (char)b : '.';
        }

        return new string(chars);
    }

    private bool StepBetweenEvents(ReadOnlySpan<byte> data, int p)
    {
        var b = data[p];
        if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            _scan = _start = p + 1;
            return true;
        }

        var available = data[p..];
        if (b == 0xEF)
        {
            // A UTF-8 byte order mark, as some clients send at the start of a connection.
            if (available.Length < 3)
            {
                return false;
            }

            if (available[1] == 0xBB && available[2] == 0xBF)
            {
                _scan = _start = p + 3;
                return true;
            }
        }

        if (b != (byte)'<')
        {
            throw Garbage(p, b == 0xBF
                ? "TAK protocol v1 frame (0xbf) on an XML stream"
                : string.Create(CultureInfo.InvariantCulture, $"unexpected byte 0x{b:x2} between events ('{Preview(available)}')"));
        }

        if (available.Length < 2)
        {
            return false;
        }

        switch (available[1])
        {
            case (byte)'?':
                _state = State.DeclarationBetweenEvents;
                _scan = p + 2;
                _skipped = 2;
                return true;

            case (byte)'!':
                if (available.StartsWith("<!--"u8))
                {
                    _state = State.CommentBetweenEvents;
                    _scan = p + 4;
                    _skipped = 4;
                    return true;
                }

                if (available.StartsWith("<!DOCTYPE"u8))
                {
                    throw Garbage(p, "DTD is not allowed");
                }

                if (available.Length < 9 && ("<!--"u8.StartsWith(available) || "<!DOCTYPE"u8.StartsWith(available)))
                {
                    return false;
                }

                throw Garbage(p, "unexpected markup between events ('" + Preview(available) + "')");

            default:
                if (IsEventStart(available))
                {
                    _eventStart = p;
                    _eventNesting = 0;
                    _tagIsEvent = true;
                    _state = State.StartTag;
                    _scan = p + 6;
                    return true;
                }

                if (available.Length < 7 && "<event"u8.StartsWith(available))
                {
                    return false;
                }

                throw Garbage(p, "expected <event>, found '" + Preview(available) + "'");
        }
    }

    private bool StepContent(ReadOnlySpan<byte> data, int p)
    {
        var found = data[p..].IndexOf((byte)'<');
        if (found < 0)
        {
            _scan = _end;
            return false;
        }

        var at = p + found;
        _scan = at;
        var tag = data[at..];
        if (tag.Length < 2)
        {
            return false;
        }

        switch (tag[1])
        {
            case (byte)'/':
                {
                    var nameEnd = tag[2..].IndexOfAny(EndTagNameEnd);
                    if (nameEnd < 0)
                    {
                        // Longer than "event" already, it is not that name: the tag's end is looked for from here on, not
                        // from its '<' again at every read (a long name arriving a byte at a time was scanned quadratically).
                        if (tag.Length - 2 > EventName.Length)
                        {
                            _tagIsEvent = false;
                            _state = State.EndTag;
                            _scan = at + tag.Length;
                            return true;
                        }

                        return false;
                    }

                    _tagIsEvent = tag.Slice(2, nameEnd).SequenceEqual("event"u8);
                    _state = State.EndTag;
                    _scan = at + 2 + nameEnd;
                    return true;
                }

            case (byte)'!':
                if (tag.StartsWith("<!--"u8))
                {
                    _state = State.Comment;
                    _scan = at + 4;
                    return true;
                }

                if (tag.StartsWith("<![CDATA["u8))
                {
                    _state = State.CData;
                    _scan = at + 9;
                    return true;
                }

                if (tag.Length < 9 && ("<!--"u8.StartsWith(tag) || "<![CDATA["u8.StartsWith(tag)))
                {
                    return false;
                }

                _state = State.Markup;
                _scan = at + 2;
                return true;

            case (byte)'?':
                _state = State.ProcessingInstruction;
                _scan = at + 2;
                return true;

            default:
                {
                    var nameEnd = tag[1..].IndexOfAny(StartTagNameEnd);
                    if (nameEnd < 0)
                    {
                        // As for an end tag; a quote in the partial name (no name holds one) keeps the old way, so that it is
                        // not taken for an attribute's.
                        if (tag.Length - 1 > EventName.Length && tag[1..].IndexOfAny(TagSpecials) < 0)
                        {
                            _tagIsEvent = false;
                            _state = State.StartTag;
                            _scan = at + tag.Length;
                            return true;
                        }

                        return false;
                    }

                    _tagIsEvent = tag.Slice(1, nameEnd).SequenceEqual("event"u8);
                    _state = State.StartTag;
                    _scan = at + 1 + nameEnd;
                    return true;
                }
        }
    }

    private bool Complete(out ReadOnlyMemory<byte> document)
    {
        var length = _scan - _eventStart;
        var start = _eventStart;
        _start = _scan;
        _eventStart = -1;
        _state = State.BetweenEvents;
        if (length > MaxEventBytes)
        {
            document = default;
            throw Oversize();
        }

        document = _buffer.AsMemory(start, length);
        return true;
    }

    private bool Wait()
    {
        if (_eventStart >= 0 && _end - _eventStart > MaxEventBytes)
        {
            // Drop what we have of the event and look for the next one.
            _scan = _start = _end;
            _eventStart = -1;
            _state = State.Resync;
            throw Oversize();
        }

        return false;
    }

    private CotFramingException Oversize() =>
        new(string.Create(CultureInfo.InvariantCulture, $"event exceeds {MaxEventBytes} bytes"));

    private CotFramingException Garbage(int at, string reason)
    {
        _scan = _start = Math.Min(at + 1, _end);
        _eventStart = -1;
        _state = State.Resync;
        return new CotFramingException(reason);
    }
}

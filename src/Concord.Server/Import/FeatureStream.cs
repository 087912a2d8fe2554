using System.Text;
using System.Text.Json;

namespace Concord.Server.Import;

/// <summary>
/// The features of a GeoJSON FeatureCollection, one at a time, from a text of any length: the reader keeps the
/// unread part of the document in a buffer that grows only to the largest feature (a larger one is skipped by its
/// brackets, whatever it holds; no single value over eight times <c>maxFeatureBytes</c> is held), so a file of a million features costs no
/// more memory than one. Members of the collection other than
/// <c>features</c> (type, name, crs, bbox, …) are skipped wherever they stand.
/// </summary>
/// <remarks>
/// The text comes decoded (the importer's reader detects a byte-order mark), and is encoded to UTF-8 again for
/// <see cref="Utf8JsonReader"/>. Bytes that were not UTF-8 in the file decode to U+FFFD: a feature holding one is
/// returned with a reason, as a CSV row holding one is rejected, rather than imported with its words garbled.
/// </remarks>
internal sealed class FeatureStream(TextReader text, int maxFeatureBytes)
{
    public enum StepKind
    {
        /// <summary>The next feature: <see cref="Step.Feature"/>, or <see cref="Step.Reason"/> when it cannot be imported as it is.</summary>
        Feature,

        /// <summary>The collection has no more features.</summary>
        End,

        /// <summary>The rest of the document cannot be read, for <see cref="Step.Reason"/>.</summary>
        Broken,
    }

    public readonly record struct Step(StepKind Kind, JsonDocument? Feature = null, string? Reason = null);

    private enum Phase
    {
        Start,
        Collection,
        Features,
        Oversized,
        Trailing,
        Done,
    }

    private const int ChunkChars = 16 * 1024;

    /// <summary>The most the reader holds, in features' worth: a single value (one long string) may be longer than a feature.</summary>
    private const int MaxHeld = 8;
    private static readonly JsonReaderOptions Options = new() { MaxDepth = 64 };

    private readonly char[] _chars = new char[ChunkChars];
    private readonly Encoder _encoder = new UTF8Encoding(false).GetEncoder();
    private byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private bool _final;
    private JsonReaderState _state = new(Options);
    private Phase _phase = Phase.Start;
    private bool _sawFeatures;

    /// <summary>Where the feature being read starts, after the unit committed last; -1 when none has started.</summary>
    private int _featureStart = -1;

    /// <summary>Where the element of the features array being read starts, after the unit committed last; -1 between elements.</summary>
    private int _element = -1;

    /// <summary>Where the value of the collection's member being read starts (after its name), after the unit committed last; -1 when none is.</summary>
    private int _member = -1;

    /// <summary>Why the element being read again (an empty object standing in for it) could not be read, until it is returned.</summary>
    private string? _unreadable;

    /// <summary>The bytes the reader holds now: bounded by the largest feature read, not by the document.</summary>
    internal int BufferBytes => _buffer.Length;

    public Step Next()
    {
        while (_phase != Phase.Done)
        {
            if (_phase == Phase.Oversized)
            {
                if (SkipOversized() is { } broken)
                {
                    return broken;
                }

                continue;
            }

            var reader = new Utf8JsonReader(_buffer.AsSpan(_start, _end - _start), _final, _state);
            Outcome outcome;
            try
            {
                outcome = Advance(ref reader, out var step);
                if (outcome == Outcome.Produced)
                {
                    return step;
                }
            }
            catch (JsonException) when (_phase == Phase.Collection && _member >= 0 && PutMemberAside())
            {
                continue;
            }
            catch (JsonException e)
            {
                switch (_phase == Phase.Features && _element >= 0 ? EndOfElement(_buffer.AsSpan(_start + _element, _end - _start - _element)) : NoEnd)
                {
                    case > 0 and var end:
                        // One feature that is not JSON (NaN where a figure is missing, as Python writes it; nesting deeper
                        // than the reader goes) costs only itself: it is put out of the reader's way and read again as an
                        // empty object, which the next round returns rejected with the reason.
                        var element = _buffer.AsSpan(_start + _element, end);
                        element.Fill((byte)' ');
                        element[0] = (byte)'{';
                        element[1] = (byte)'}';
                        _unreadable = "feature is not valid JSON: " + Plain(e.Message);
                        continue;
                    case NotYet when !_final && _end - (_start + _element) <= maxFeatureBytes:
                        Refill();
                        continue;
                    case NotYet when _end - (_start + _element) > maxFeatureBytes && StartSkipping():
                        // Too large to hold, and not JSON inside: skipped by its brackets as any feature too large is.
                        continue;
                    default:
                        _phase = Phase.Done;
                        return new Step(StepKind.Broken, Reason: "not valid JSON: " + Plain(e.Message));
                }
            }

            if (outcome == Outcome.NeedMore)
            {
                if (_final)
                {
                    _phase = Phase.Done;
                    return new Step(StepKind.Broken, Reason: "not valid JSON: the document ends before the feature collection does");
                }

                if (_phase == Phase.Features && _featureStart >= 0 && _end - (_start + _featureStart) > maxFeatureBytes && StartSkipping())
                {
                    // A feature larger than the limit: skipped by its brackets, never held whole.
                    continue;
                }

                if (_end - _start > (long)MaxHeld * maxFeatureBytes)
                {
                    // Anything else that long without an end (a member of the collection, one string in a feature being
                    // skipped, a run of white space): the rest cannot be read without holding it.
                    _phase = Phase.Done;
                    return new Step(StepKind.Broken, Reason: $"more than {MaxHeld * maxFeatureBytes / 1024} KB without the end of a value; the rest of the document is not read");
                }

                Refill();
            }
        }

        return new Step(StepKind.End);
    }

    private string TooLarge => $"feature is larger than {maxFeatureBytes / 1024} KB; it was skipped";

    private enum Outcome
    {
        Produced,
        Continue,
        NeedMore,
    }

    /// <summary>Reads one unit (a member of the collection, a feature, a token of an oversized feature) and commits it.</summary>
    private Outcome Advance(ref Utf8JsonReader reader, out Step step)
    {
        step = default;
        switch (_phase)
        {
            case Phase.Start:
                if (!reader.Read())
                {
                    return Outcome.NeedMore;
                }

                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    return Fail(out step, "not a GeoJSON FeatureCollection: the document is not an object");
                }

                Commit(ref reader, Phase.Collection);
                return Outcome.Continue;

            case Phase.Collection:
                _member = -1;
                (_memberScanned, _memberScan) = (0, default);
                if (!reader.Read())
                {
                    return Outcome.NeedMore;
                }

                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    if (!_sawFeatures)
                    {
                        return Fail(out step, "not a GeoJSON FeatureCollection: no 'features' array");
                    }

                    Commit(ref reader, Phase.Trailing);
                    return Outcome.Continue;
                }

                if (reader.ValueTextEquals("features"u8) && _sawFeatures)
                {
                    // JSON leaves a repeated member to the reader (most take the last): which list was meant is not known.
                    return Fail(out step, "a second 'features' member: its features are not read (one list per collection)");
                }

                var features = reader.ValueTextEquals("features"u8);
                _member = (int)reader.BytesConsumed;
                if (!reader.Read())
                {
                    return Outcome.NeedMore;
                }

                if (features)
                {
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return Fail(out step, "not a GeoJSON FeatureCollection: 'features' is not an array");
                    }

                    _sawFeatures = true;
                    Commit(ref reader, Phase.Features);
                    return Outcome.Continue;
                }

                if (!reader.TrySkip())
                {
                    return Outcome.NeedMore;
                }

                Commit(ref reader, Phase.Collection);
                return Outcome.Continue;

            case Phase.Features:
                _featureStart = -1;
                _element = -1;
                if (!reader.Read())
                {
                    return Outcome.NeedMore;
                }

                if (reader.TokenType == JsonTokenType.EndArray)
                {
                    Commit(ref reader, Phase.Collection);
                    return Outcome.Continue;
                }

                var from = (int)reader.TokenStartIndex;
                _element = from;
                if (!reader.TrySkip())
                {
                    _featureStart = from;
                    return Outcome.NeedMore;
                }

                if (_unreadable is { } unreadable)
                {
                    _unreadable = null;
                    Commit(ref reader, Phase.Features);
                    step = new Step(StepKind.Feature, Reason: unreadable);
                    return Outcome.Produced;
                }

                var bytes = _buffer.AsSpan(_start + from, (int)reader.BytesConsumed - from);
                if (bytes.Length > maxFeatureBytes)
                {
                    Commit(ref reader, Phase.Features);
                    step = new Step(StepKind.Feature, Reason: TooLarge);
                    return Outcome.Produced;
                }

                var feature = JsonDocument.Parse(bytes.ToArray(), new JsonDocumentOptions { MaxDepth = Options.MaxDepth });
                var invalid = bytes.IndexOf("\uFFFD"u8) >= 0 ? "feature holds text that is not UTF-8 (GeoJSON files must be UTF-8)" : null;
                Commit(ref reader, Phase.Features);
                step = new Step(StepKind.Feature, feature, invalid);
                return Outcome.Produced;

            case Phase.Trailing:
                // After the collection only white space: two documents run together (files joined with cat) or anything
                // else after it is not read, and is said so rather than dropped unseen.
                if (_buffer.AsSpan(_start, _end - _start).IndexOfAnyExcept(" \t\r\n"u8) >= 0)
                {
                    return Fail(out step, "more text after the end of the feature collection (a second document?): it is not read");
                }

                _start = _end;
                if (!_final)
                {
                    return Outcome.NeedMore;
                }

                _phase = Phase.Done;
                step = new Step(StepKind.End);
                return Outcome.Produced;

            default:
                // Phase.Oversized is read by SkipOversized, without the JSON reader.
                throw new InvalidOperationException("the oversized feature is skipped by its brackets");
        }
    }

    /// <summary>The bytes between the unit committed last and the oversized feature (a comma, white space), kept for after it.</summary>
    private byte[]? _separator;

    /// <summary>Where the oversized feature's scan stands (its depth, inside a string or not) between refills.</summary>
    private BracketScan _skip;

    /// <summary>
    /// Starts skipping the element of the features array being read (too large to hold) by its brackets and strings alone,
    /// as <see cref="EndOfElement"/> finds an element's end: nothing inside it need be JSON (NaN, nesting deeper than the
    /// reader goes), and none of it is held. False for an element that is neither an object, an array nor a string.
    /// </summary>
    private bool StartSkipping()
    {
        if (_element < 0 || _element > maxFeatureBytes || _buffer[_start + _element] is not ((byte)'{' or (byte)'[' or (byte)'"'))
        {
            return false;
        }

        _separator = _buffer.AsSpan(_start, _element).ToArray();
        _skip = default;
        _start += _element;
        _phase = Phase.Oversized;
        return true;
    }

    /// <summary>
    /// Reads on to the end of the oversized feature; there, an empty object stands in for it after the bytes that came
    /// before it, so that the reader goes on from its state before the feature, and the next round returns the feature
    /// with the reason. A step only when the document ends inside the feature.
    /// </summary>
    private Step? SkipOversized()
    {
        var end = _skip.Find(_buffer.AsSpan(_start, _end - _start));
        if (end < 0)
        {
            if (_final)
            {
                _phase = Phase.Done;
                return new Step(StepKind.Broken, Reason: "not valid JSON: the document ends inside a feature");
            }

            _start = _end;
            Refill();
            return null;
        }

        var rest = _end - (_start + end);
        var stand = _separator!.Length + 2;
        var target = _buffer.Length >= stand + rest ? _buffer : new byte[stand + rest];
        _buffer.AsSpan(_start + end, rest).CopyTo(target.AsSpan(stand));
        _buffer = target;
        _separator.CopyTo(_buffer.AsSpan());
        _buffer[stand - 2] = (byte)'{';
        _buffer[stand - 1] = (byte)'}';
        (_start, _end, _separator) = (0, stand + rest, null);
        _unreadable = TooLarge;
        _phase = Phase.Features;
        return null;
    }

    /// <summary>
    /// A member of the collection other than its features that is not JSON (a <c>bbox</c> of NaN, as Python writes a
    /// missing figure; a <c>crs</c> nested deeper than the reader goes) is not read anyway: it is put out of the reader's
    /// way as a 0 and the collection is read on, rather than losing every feature after it. True when the reader can go
    /// on (the value replaced, or more text read to find its end); false when the document is broken there.
    /// </summary>
    private bool PutMemberAside()
    {
        var member = _buffer.AsSpan(_start + _member, _end - _start - _member);
        var from = member.IndexOfAnyExcept(" \t\r\n"u8);
        if (from >= 0 && member[from] == ':')
        {
            from += 1 + member[(from + 1)..].IndexOfAnyExcept(" \t\r\n"u8);
        }

        var end = NotYet;
        if (from >= 0 && from < member.Length && member[from] != ':')
        {
            if (member[from] is (byte)'{' or (byte)'[' or (byte)'"')
            {
                // Scanned on from where the last refill left it: a long member is read once, not again from its start.
                var at = from + _memberScanned;
                end = _memberScan.Find(member[at..]) is var found and >= 0 ? at + found : NotYet;
                _memberScanned = end >= 0 ? 0 : member.Length - from;
            }
            else
            {
                // A bare word: it ends where the collection's next member or end does. Only the words Python writes for a
                // figure that is not a number; anything else there is no JSON to skip, and the document is broken.
                end = member[from..].IndexOfAny(EndOfWord) is var found and >= 0 ? from + found : NotYet;
                if (end >= 0 && !member[from..end].SequenceEqual("NaN"u8) && !member[from..end].SequenceEqual("Infinity"u8) && !member[from..end].SequenceEqual("-Infinity"u8))
                {
                    return false;
                }
            }
        }

        if (end >= 0)
        {
            var value = member[from..end];
            value.Fill((byte)' ');
            value[0] = (byte)'0';
            return true;
        }

        if (!_final && _end - _start <= (long)MaxHeld * maxFeatureBytes)
        {
            Refill();
            return true;
        }

        return false;
    }

    /// <summary>How far the member being put aside was scanned before the text held ran out, and the scan's state there.</summary>
    private int _memberScanned;

    private BracketScan _memberScan;

    private static readonly System.Buffers.SearchValues<byte> EndOfWord = System.Buffers.SearchValues.Create(",} \t\r\n"u8);

    private const int NoEnd = -2;
    private const int NotYet = -1;

    /// <summary>
    /// Where the object or array that <paramref name="bytes"/> start with ends, by its brackets and strings alone (a value
    /// the reader refused need not be JSON inside): <see cref="NotYet"/> when the bytes held end first, <see cref="NoEnd"/>
    /// when they do not start with one.
    /// </summary>
    private static int EndOfElement(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty || bytes[0] is not ((byte)'{' or (byte)'['))
        {
            return NoEnd;
        }

        var scan = default(BracketScan);
        return scan.Find(bytes) is var end and >= 0 ? end : NotYet;
    }

    /// <summary>
    /// Finds the end of a JSON value that starts an object, an array or a string by its brackets and strings alone (what
    /// is inside need not be JSON), over as many pieces of the text as it takes: the state is kept between calls.
    /// </summary>
    private struct BracketScan
    {
        private int _depth;
        private bool _inString;
        private bool _escaped;

        /// <summary>Where the value ends in <paramref name="bytes"/> (the index after it), or −1 when it goes on after them.</summary>
        public int Find(ReadOnlySpan<byte> bytes)
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                var b = bytes[i];
                if (_inString)
                {
                    if (_escaped)
                    {
                        _escaped = false;
                    }
                    else if (b == '\\')
                    {
                        _escaped = true;
                    }
                    else if (b == '"')
                    {
                        _inString = false;
                        if (_depth == 0)
                        {
                            return i + 1;
                        }
                    }
                }
                else if (b == '"')
                {
                    _inString = true;
                }
                else if (b is (byte)'{' or (byte)'[')
                {
                    _depth++;
                }
                else if (b is (byte)'}' or (byte)']' && --_depth == 0)
                {
                    return i + 1;
                }
            }

            return -1;
        }
    }

    /// <summary>The reader's message without its position, which counts from the part of the document held, not from its start.</summary>
    private static string Plain(string message) => message.Split(" LineNumber:", 2)[0].Trim();

    private Outcome Fail(out Step step, string reason)
    {
        _phase = Phase.Done;
        step = new Step(StepKind.Broken, Reason: reason);
        return Outcome.Produced;
    }

    /// <summary>What the reader has read is done with: the next unit starts after it.</summary>
    private void Commit(ref Utf8JsonReader reader, Phase next)
    {
        _start += (int)reader.BytesConsumed;
        _state = reader.CurrentState;
        _phase = next;
        reader = new Utf8JsonReader(_buffer.AsSpan(_start, _end - _start), _final, _state);
    }

    /// <summary>Moves the unread bytes to the front (growing the buffer when they fill it) and appends the next chunk of text.</summary>
    private void Refill()
    {
        var unread = _end - _start;
        var room = Encoding.UTF8.GetMaxByteCount(ChunkChars);
        if (_buffer.Length - unread < room)
        {
            var larger = new byte[Math.Max(_buffer.Length * 2, unread + room)];
            _buffer.AsSpan(_start, unread).CopyTo(larger);
            _buffer = larger;
        }
        else
        {
            _buffer.AsSpan(_start, unread).CopyTo(_buffer);
        }

        _start = 0;
        _end = unread;
        var read = text.Read(_chars, 0, _chars.Length);
        _final = read == 0;
        // The encoder keeps the first half of a surrogate pair split between two chunks for the next one.
        _end += _encoder.GetBytes(_chars.AsSpan(0, read), _buffer.AsSpan(_end), flush: _final);
    }
}

using System.Buffers;
using System.Text;

namespace Concord.Cot;

// Escaping for the canonical form we write: the characters that attribute-value normalisation would otherwise eat
// (tab, CR, LF) written as character references, and no character escaped that XML lets stand, so that what was read
// within a limit is written back within it.
internal static class XmlText
{
    private static SearchValues<char> AttributeSpecials { get; } = SearchValues.Create(SpecialChars(attribute: true));
    private static SearchValues<char> TextSpecials { get; } = SearchValues.Create(SpecialChars(attribute: false));

    private static SearchValues<char> InvalidCandidates { get; } = SearchValues.Create(InvalidCandidateChars());

    // Index of the first character XML 1.0 cannot carry (even escaped), or -1.
    internal static int IndexOfInvalid(ReadOnlySpan<char> value)
    {
        var offset = 0;
        while (true)
        {
            var at = value[offset..].IndexOfAny(InvalidCandidates);
            if (at < 0)
            {
                return -1;
            }

            at += offset;
            var c = value[at];
            if (char.IsHighSurrogate(c) && at + 1 < value.Length && char.IsLowSurrogate(value[at + 1]))
            {
                offset = at + 2;
                continue;
            }

            return at;
        }
    }

    internal static string DescribeCharacter(char c) =>
        string.Concat("U+", ((int)c).ToString("X4", System.Globalization.CultureInfo.InvariantCulture));

    internal static void AppendAttribute(StringBuilder builder, string name, string value)
    {
        var quote = QuoteFor(value);
        builder.Append(' ').Append(name).Append('=').Append(quote);
        Append(builder, value, quote);
        builder.Append(quote);
    }

    /// <summary>
    /// The quote a detail attribute is written in: the one the value holds fewer of ('"' on a tie), each written as a
    /// five-character reference. A value read from an attribute is then written no longer than it was read: a raw quote
    /// in it came from an attribute in the other quote, and the quote it was read in needed a reference at least as long.
    /// </summary>
    internal static char QuoteFor(ReadOnlySpan<char> value) => value.Count('\'') < value.Count('"') ? '\'' : '"';

    internal static void AppendEscaped(StringBuilder builder, ReadOnlySpan<char> value, bool attribute) => Append(builder, value, attribute ? '"' : Text);

    // The quote of an attribute, or Text for character data.
    private const char Text = '\0';

    private static void Append(StringBuilder builder, ReadOnlySpan<char> value, char quote)
    {
        var specials = quote == Text ? TextSpecials : AttributeSpecials;
        var start = 0;
        while (true)
        {
            var found = value[start..].IndexOfAny(specials);
            if (found < 0)
            {
                builder.Append(value[start..]);
                return;
            }

            var at = start + found;
            builder.Append(value[start..at]);
            var c = value[at];
            var consumed = 1;
            switch (c)
            {
                case '&': builder.Append("&amp;"); break;
                case '<': builder.Append("&lt;"); break;
                // Legal as it is in text but after "]]" (the end of a CDATA section): escaped, the 64 KiB a device may send
                // grew fourfold and could no longer be read back under the same limit. What was written before is looked
                // at, not this value alone: a text comes in pieces (its CDATA sections, its character references).
                case '>': builder.Append(builder.Length >= 2 && builder[^1] == ']' && builder[^2] == ']' ? "&gt;" : ">"); break;
                case '"': builder.Append(quote == '"' ? "&#34;" : "\""); break;
                case '\'': builder.Append(quote == '\'' ? "&#39;" : "'"); break;
                case '\t': builder.Append(quote != Text ? "&#9;" : "\t"); break;
                case '\n': builder.Append(quote != Text ? "&#10;" : "\n"); break;
                case '\r': builder.Append("&#13;"); break;
                default:
                    if (char.IsHighSurrogate(c) && at + 1 < value.Length && char.IsLowSurrogate(value[at + 1]))
                    {
                        builder.Append(value.Slice(at, 2));
                        consumed = 2;
                        break;
                    }

                    throw new ArgumentException(InvalidCharacter(c), nameof(value));
            }

            start = at + consumed;
        }
    }

    // Utf8 variant for the serializer's hot path: the event's own attributes, always in double quotes.
    internal static void WriteAttributeValue(IBufferWriter<byte> output, ReadOnlySpan<char> value)
    {
        var specials = AttributeSpecials;
        while (true)
        {
            var at = value.IndexOfAny(specials);
            if (at < 0)
            {
                WriteUtf8(output, value);
                return;
            }

            WriteUtf8(output, value[..at]);
            var c = value[at];
            var consumed = 1;
            switch (c)
            {
                case '&': output.Write("&amp;"u8); break;
                case '<': output.Write("&lt;"u8); break;
                case '"': output.Write("&#34;"u8); break;
                case '\'': output.Write("'"u8); break;
                case '\t': output.Write("&#9;"u8); break;
                case '\n': output.Write("&#10;"u8); break;
                case '\r': output.Write("&#13;"u8); break;
                default:
                    if (char.IsHighSurrogate(c) && at + 1 < value.Length && char.IsLowSurrogate(value[at + 1]))
                    {
                        WriteUtf8(output, value.Slice(at, 2));
                        consumed = 2;
                        break;
                    }

                    throw new ArgumentException(InvalidCharacter(c), nameof(value));
            }

            value = value[(at + consumed)..];
        }
    }

    internal static void WriteUtf8(IBufferWriter<byte> output, ReadOnlySpan<char> value)
    {
        if (value.IsEmpty)
        {
            return;
        }

        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(value.Length));
        output.Advance(Encoding.UTF8.GetBytes(value, span));
    }

    internal static void WriteAscii(IBufferWriter<byte> output, ReadOnlySpan<char> value)
    {
        var span = output.GetSpan(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            span[i] = (byte)value[i];
        }

        output.Advance(value.Length);
    }

    private static string InvalidCharacter(char c) => string.Concat("character ", DescribeCharacter(c), " is not allowed in XML");

    private static string InvalidCandidateChars()
    {
        var chars = new StringBuilder();
        for (var c = '\0'; c < ' '; c++)
        {
            if (c is not ('\t' or '\n' or '\r'))
            {
                chars.Append(c);
            }
        }

        for (var c = '\uD800'; c <= '\uDFFF'; c++)
        {
            chars.Append(c);
        }

        return chars.Append('\uFFFE').Append('\uFFFF').ToString();
    }

    private static string SpecialChars(bool attribute)
    {
        var chars = new StringBuilder();
        for (var c = '\0'; c < ' '; c++)
        {
            chars.Append(c);
        }

        // '>' needs no reference in an attribute, and in text only after "]]".
        chars.Append(attribute ? "&<\"'" : "&<>");

        for (var c = '\uD800'; c <= '\uDFFF'; c++)
        {
            chars.Append(c);
        }

        chars.Append('\uFFFE').Append('\uFFFF');
        return chars.ToString();
    }
}

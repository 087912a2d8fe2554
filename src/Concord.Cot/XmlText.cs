using System.Buffers;
using System.Text;

namespace Concord.Cot;

// Escaping for the canonical form we write: attribute values double-quoted, with the characters that
// attribute-value normalisation would otherwise eat (tab, CR, LF) written as character references.
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
        builder.Append(' ').Append(name).Append("=\"");
        AppendEscaped(builder, value, attribute: true);
        builder.Append('"');
    }

    internal static void AppendEscaped(StringBuilder builder, ReadOnlySpan<char> value, bool attribute)
    {
        var specials = attribute ? AttributeSpecials : TextSpecials;
        while (true)
        {
            var at = value.IndexOfAny(specials);
            if (at < 0)
            {
                builder.Append(value);
                return;
            }

            builder.Append(value[..at]);
            var c = value[at];
            var consumed = 1;
            switch (c)
            {
                case '&': builder.Append("&amp;"); break;
                case '<': builder.Append("&lt;"); break;
                case '>': builder.Append("&gt;"); break;
                case '"': builder.Append("&quot;"); break;
                case '\t': builder.Append(attribute ? "&#9;" : "\t"); break;
                case '\n': builder.Append(attribute ? "&#10;" : "\n"); break;
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

            value = value[(at + consumed)..];
        }
    }

    // Utf8 variant for the serializer's hot path.
    internal static void WriteEscaped(IBufferWriter<byte> output, ReadOnlySpan<char> value, bool attribute)
    {
        var specials = attribute ? AttributeSpecials : TextSpecials;
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
                case '>': output.Write("&gt;"u8); break;
                case '"': output.Write("&quot;"u8); break;
                case '\t': output.Write(attribute ? "&#9;"u8 : "\t"u8); break;
                case '\n': output.Write(attribute ? "&#10;"u8 : "\n"u8); break;
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

        chars.Append("&<>");
        if (attribute)
        {
            chars.Append('"');
        }

        for (var c = '\uD800'; c <= '\uDFFF'; c++)
        {
            chars.Append(c);
        }

        chars.Append('\uFFFE').Append('\uFFFF');
        return chars.ToString();
    }
}

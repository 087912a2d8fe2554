namespace Concord.Cot;

/// <summary>Text that Concord puts into the events it originates, from what it stores.</summary>
public static class CotText
{
    /// <summary>
    /// <paramref name="text"/> with every character XML 1.0 cannot carry, even escaped (control characters other than tab
    /// and line breaks, a surrogate without its pair, U+FFFE and U+FFFF), replaced by U+FFFD; the same string when it has
    /// none. Text stored by other paths (an API, an import) may hold such a character, and one of them must not stop an
    /// event from being sent.
    /// </summary>
    public static string Printable(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var at = XmlText.IndexOfInvalid(text);
        if (at < 0)
        {
            return text;
        }

        var chars = text.ToCharArray();
        var offset = 0;
        while (at >= 0)
        {
            chars[offset + at] = '\uFFFD';
            offset += at + 1;
            at = XmlText.IndexOfInvalid(chars.AsSpan(offset));
        }

        return new string(chars);
    }
}

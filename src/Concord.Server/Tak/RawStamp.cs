using System.Text;

namespace Concord.Server.Tak;

/// <summary>
/// Adds Concord's marking and flow tag to an event by inserting into its XML bytes: <c> access="…"</c> into the start tag,
/// <c>&lt;__concord marking="…"/&gt;&lt;_flow-tags_ …/&gt;</c> at the end of the detail. Returns null whenever the event is
/// not in the simple shape this handles (it already has an access attribute, flow tags or a marking, a comment, CDATA or a
/// processing instruction, no detail element or more than one, or a self-closing event); the caller then rebuilds it from
/// the parsed event.
/// </summary>
internal static class RawStamp
{
    private static readonly byte[] EventStart = "<event"u8.ToArray();
    private static readonly byte[] DetailEnd = "</detail>"u8.ToArray();
    private static readonly byte[] EmptyDetail = "<detail/>"u8.ToArray();

    public static byte[]? TryInsert(ReadOnlySpan<byte> raw, string label, string flowTag, string stamp)
    {
        // Text matching is safe only where nothing can hide what it looks for: any "access" (XML allows `access = "…"`),
        // or a comment or CDATA section (which may hold a "</detail>" the parser ignores) sends the event to the rebuild.
        if (raw.IsEmpty || raw.IndexOf("_flow-tags_"u8) >= 0 || raw.IndexOf("__concord"u8) >= 0 || raw.IndexOf("access"u8) >= 0
            || raw.IndexOf("<!--"u8) >= 0 || raw.IndexOf("<![CDATA["u8) >= 0)
        {
            return null;
        }

        var start = raw.IndexOf(EventStart);
        if (start < 0)
        {
            return null;
        }

        var tagEnd = EndOfStartTag(raw, start + EventStart.Length);
        if (tagEnd < 0 || raw[tagEnd - 1] == (byte)'/')
        {
            return null;
        }

        var extra = Encoding.UTF8.GetBytes($"<__concord marking=\"{Escape(label)}\"/><_flow-tags_ {flowTag}=\"{stamp}\"/>");
        var access = Encoding.UTF8.GetBytes($" access=\"{Escape(label)}\"");
        var detailEnd = raw.LastIndexOf(DetailEnd);
        var empty = detailEnd < 0 ? raw.LastIndexOf(EmptyDetail) : -1;
        if (detailEnd < tagEnd && empty < tagEnd)
        {
            return null;
        }

        // The event's own detail must be the only one, and nothing inside the event may be a processing instruction (whose
        // text may hold "</detail>"): otherwise the stamp could land in an element devices ignore.
        var rest = raw[tagEnd..];
        var firstDetail = rest.IndexOf("<detail"u8);
        if (firstDetail < 0 || rest[(firstDetail + 1)..].IndexOf("<detail"u8) >= 0 || rest.IndexOf("<?"u8) >= 0)
        {
            return null;
        }

        // And it must be the event's child, not an element's further down (<x><detail/></x>), which devices and the
        // parser ignore: the marking would travel where nobody reads it.
        if (!AllClosed(rest[1..firstDetail]))
        {
            return null;
        }

        var body = raw[start..];
        var output = new byte[body.Length + access.Length + extra.Length + DetailEnd.Length + 8 + 1];
        var at = 0;
        void Put(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(output.AsSpan(at));
            at += bytes.Length;
        }

        Put(raw[start..tagEnd]);
        Put(access);
        if (detailEnd >= 0)
        {
            Put(raw[tagEnd..detailEnd]);
            Put(extra);
            Put(raw[detailEnd..]);
        }
        else
        {
            Put(raw[tagEnd..empty]);
            Put("<detail>"u8);
            Put(extra);
            Put(DetailEnd);
            Put(raw[(empty + EmptyDetail.Length)..]);
        }

        Put("\n"u8);
        return output.AsSpan(0, at).ToArray();
    }

    /// <summary>Whether every element opened in <paramref name="content"/> (no comment, CDATA or processing instruction) is closed in it.</summary>
    private static bool AllClosed(ReadOnlySpan<byte> content)
    {
        var open = 0;
        var at = content.IndexOf((byte)'<');
        while (at >= 0)
        {
            if (at + 1 < content.Length && content[at + 1] == (byte)'/')
            {
                open--;
                at++;
            }
            else
            {
                var end = EndOfStartTag(content, at + 1);
                if (end < 0)
                {
                    return false;
                }

                open += content[end - 1] == (byte)'/' ? 0 : 1;
                at = end;
            }

            var next = content[(at + 1)..].IndexOf((byte)'<');
            at = next < 0 ? -1 : at + 1 + next;
        }

        return open == 0;
    }

    /// <summary>The index of the '>' that closes the start tag, skipping quoted attribute values.</summary>
    private static int EndOfStartTag(ReadOnlySpan<byte> raw, int from)
    {
        byte quote = 0;
        for (var i = from; i < raw.Length; i++)
        {
            var b = raw[i];
            if (quote != 0)
            {
                if (b == quote)
                {
                    quote = 0;
                }
            }
            else if (b is (byte)'"' or (byte)'\'')
            {
                quote = b;
            }
            else if (b == (byte)'>')
            {
                return i;
            }
        }

        return -1;
    }

    private static string Escape(string text) =>
        text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);
}

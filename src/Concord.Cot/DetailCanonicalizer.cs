using System.Globalization;
using System.Text;
using System.Xml;

namespace Concord.Cot;

// Walks the content of <detail> once, writing it back in canonical form (compact, double-quoted, no
// whitespace between elements, comments dropped) and noting what the typed accessors need. Unknown
// elements are kept whole, so nothing a client sent is lost on the way through.
internal static class DetailCanonicalizer
{
    [ThreadStatic]
    private static StringBuilder? _cachedBuilder;

    private enum Previous
    {
        StartTag,
        EndTag,
        Text,
    }

    /// <summary>
    /// How much longer than the document it came from a canonical detail may be: escaping grows text (a '"' in a
    /// single-quoted value is written as six characters), and a namespace declared on &lt;event&gt; travels with each
    /// element using it. Beyond this the input was built to make the copy huge, not sent by a device.
    /// </summary>
    internal const int MaxGrowth = 8;

    // The reader is on the <detail> start tag; on return it is on the matching end tag.
    // depthOffset is the absolute depth of <detail> minus reader.Depth, so limits count from <event>.
    // maxDocumentCharacters is the limit the document was read under: the canonical detail stays within MaxGrowth times it.
    internal static CotDetail Read(XmlReader reader, int maxDepth, int depthOffset, int maxDocumentCharacters)
    {
        if (reader.IsEmptyElement)
        {
            return CotDetail.Empty;
        }

        var detailDepth = reader.Depth;
        var xml = _cachedBuilder ?? new StringBuilder(1024);
        _cachedBuilder = null;
        xml.Clear();
        try
        {
            var state = new WalkState();
            var maxCharacters = (long)maxDocumentCharacters * MaxGrowth;
            while (reader.Read())
            {
                if (xml.Length > maxCharacters)
                {
                    throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"detail exceeds {maxCharacters} characters once written out"));
                }

                var level = reader.Depth - detailDepth;
                switch (reader.NodeType)
                {
                    case XmlNodeType.Element:
                        if (reader.Depth + depthOffset + 1 > maxDepth)
                        {
                            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"element nesting exceeds {maxDepth} levels"));
                        }

                        if (reader.LocalName == "event")
                        {
                            // Written out, its end tag would cut the event on every TAK client (see CotXmlParser.EndInside).
                            throw new CotParseException("an 'event' element inside a detail: TAK clients would read it as an event of its own");
                        }

                        if (state.Previous == Previous.Text)
                        {
                            state.FlushWhitespace(xml);
                        }

                        state.PendingWhitespace = null;
                        StartElement(reader, xml, level, ref state);
                        break;

                    case XmlNodeType.EndElement:
                        if (level == 0)
                        {
                            var text = xml.ToString();
                            return text.Length == 0 ? CotDetail.Empty : new CotDetail(text, state.Nodes.ToArray(), state.Remarks?.ToString(), state.FlowTagChildren);
                        }

                        if (state.Previous != Previous.EndTag)
                        {
                            state.FlushWhitespace(xml);
                        }

                        state.PendingWhitespace = null;
                        xml.Append("</").Append(reader.Name).Append('>');
                        if (level == 1)
                        {
                            state.EndChild(xml.Length);
                        }
                        else if (level == 2 && state.InFlowTags && state.FlowTagName is not null)
                        {
                            (state.FlowTagChildren ??= []).Add(new(state.FlowTagName, state.FlowTagText?.ToString() ?? string.Empty));
                            state.FlowTagName = null;
                        }

                        state.Previous = Previous.EndTag;
                        break;

                    case XmlNodeType.Text:
                    case XmlNodeType.CDATA:
                    case XmlNodeType.SignificantWhitespace:
                        state.FlushWhitespace(xml);
                        state.AppendText(xml, reader.Value);
                        break;

                    case XmlNodeType.Whitespace:
                        // Gathered, not concatenated: comments and processing instructions split a run of whitespace
                        // into thousands of nodes, and each concatenation copied the whole run again.
                        (state.PendingWhitespace ??= new StringBuilder()).Append(reader.Value);
                        break;

                    default:
                        break;
                }
            }

            throw new CotParseException("truncated document");
        }
        finally
        {
            if (xml.Capacity <= 64 * 1024)
            {
                _cachedBuilder = xml;
            }
        }
    }

    private static void StartElement(XmlReader reader, StringBuilder xml, int level, ref WalkState state)
    {
        var name = reader.Name;
        var empty = reader.IsEmptyElement;
        if (level == 1)
        {
            state.ChildStart = xml.Length;
            state.ChildName = name;
            state.ChildHasContent = !empty;
        }

        // Declarations of elements that are not this one's ancestors go out of scope (each child of <detail> stands alone).
        state.Declared?.RemoveAll(d => d.Level >= level);
        xml.Append('<').Append(name);
        var interpret = level == 1 && DetailNode.IsInterpreted(name);
        List<KeyValuePair<string, string>>? attributes = interpret ? [] : null;
        // Prefixes this element and its attributes use: a prefix declared further up (on <event> or <detail>) must travel
        // with the element, or the detail would not read again on its own.
        List<string>? used = reader.Prefix.Length > 0 ? [reader.Prefix] : null;
        if (reader.MoveToFirstAttribute())
        {
            do
            {
                var attributeName = reader.Name;
                var value = reader.Value;
                XmlText.AppendAttribute(xml, attributeName, value);
                attributes?.Add(new(attributeName, value));
                if (reader.Prefix == "xmlns")
                {
                    (state.Declared ??= []).Add((level, reader.LocalName));
                }
                else if (reader.Prefix.Length > 0)
                {
                    (used ??= []).Add(reader.Prefix);
                }
            }
            while (reader.MoveToNextAttribute());
            reader.MoveToElement();
        }

        if (used is not null)
        {
            foreach (var prefix in used.Distinct(StringComparer.Ordinal))
            {
                // Not where this element or an ancestor in the written detail declares it: its scope holds the same namespace.
                if (prefix != "xml" && state.Declared?.Exists(d => d.Prefix == prefix) != true && reader.LookupNamespace(prefix) is { } uri)
                {
                    XmlText.AppendAttribute(xml, "xmlns:" + prefix, uri);
                    (state.Declared ??= []).Add((level, prefix));
                }
            }
        }

        if (level == 1)
        {
            state.ChildAttributes = attributes?.ToArray();
            if (!empty && name == "remarks" && !state.RemarksSeen)
            {
                state.InRemarks = true;
            }

            state.RemarksSeen |= name == "remarks";
            if (!empty && name == "_flow-tags_" && !state.FlowTagsSeen)
            {
                state.InFlowTags = true;
            }

            state.FlowTagsSeen |= name == "_flow-tags_";
        }
        else if (level == 2 && state.InFlowTags)
        {
            if (empty)
            {
                (state.FlowTagChildren ??= []).Add(new(name, string.Empty));
            }
            else
            {
                state.FlowTagName = name;
                state.FlowTagText = null;
            }
        }

        if (empty)
        {
            xml.Append("/>");
            if (level == 1)
            {
                state.EndChild(xml.Length);
            }

            state.Previous = Previous.EndTag;
        }
        else
        {
            xml.Append('>');
            state.Previous = Previous.StartTag;
        }
    }

    private struct WalkState
    {
        public WalkState()
        {
        }

        public List<DetailNode> Nodes { get; } = [];

        /// <summary>The namespace prefixes declared in the written detail on the current element and its ancestors, by level.</summary>
        public List<(int Level, string Prefix)>? Declared { get; set; }

        public Previous Previous { get; set; } = Previous.StartTag;

        public StringBuilder? PendingWhitespace { get; set; }

        public int ChildStart { get; set; }

        public string? ChildName { get; set; }

        public bool ChildHasContent { get; set; }

        public KeyValuePair<string, string>[]? ChildAttributes { get; set; }

        public bool RemarksSeen { get; set; }

        public bool InRemarks { get; set; }

        public StringBuilder? Remarks { get; set; }

        public bool FlowTagsSeen { get; set; }

        public bool InFlowTags { get; set; }

        public string? FlowTagName { get; set; }

        public StringBuilder? FlowTagText { get; set; }

        public List<KeyValuePair<string, string>>? FlowTagChildren { get; set; }

        public void EndChild(int end)
        {
            if (ChildName is not null)
            {
                Nodes.Add(new DetailNode(ChildName, ChildStart, end - ChildStart, ChildAttributes, ChildHasContent));
                if (InRemarks || ChildName == "remarks")
                {
                    Remarks ??= new StringBuilder();
                }
            }

            ChildName = null;
            ChildAttributes = null;
            InRemarks = false;
            InFlowTags = false;
        }

        public void FlushWhitespace(StringBuilder xml)
        {
            if (PendingWhitespace?.ToString() is { } whitespace)
            {
                PendingWhitespace = null;
                AppendCapturedText(whitespace);
                XmlText.AppendEscaped(xml, whitespace, attribute: false);
                Previous = Previous.Text;
            }
        }

        // Text directly under <detail> (level 1) is kept in the XML but belongs to no element.
        public void AppendText(StringBuilder xml, string text)
        {
            AppendCapturedText(text);
            XmlText.AppendEscaped(xml, text, attribute: false);
            Previous = Previous.Text;
        }

        private void AppendCapturedText(string text)
        {
            if (InRemarks)
            {
                (Remarks ??= new StringBuilder()).Append(text);
            }

            if (InFlowTags && FlowTagName is not null)
            {
                (FlowTagText ??= new StringBuilder()).Append(text);
            }
        }
    }
}

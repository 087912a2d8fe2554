using System.Collections.ObjectModel;
using System.Globalization;
using System.Text;
using System.Xml;

namespace Concord.Cot;

/// <summary>
/// The content of a CoT &lt;detail&gt;, kept whole as canonical XML (compact, double-quoted, no whitespace
/// between elements) so that unknown elements survive routing, with typed accessors for the children
/// Concord reads. Equality is on the canonical XML.
/// </summary>
public sealed class CotDetail : IEquatable<CotDetail>
{
    internal CotDetail(string xml, DetailNode[] nodes, string? remarks, List<KeyValuePair<string, string>>? flowTagChildren)
    {
        Xml = xml;
        Nodes = nodes;
        Remarks = remarks;
        List<CotLink>? links = null;
        Dictionary<string, string>? flowTags = null;
        foreach (var node in nodes)
        {
            switch (node.Name)
            {
                case "contact" when Contact is null:
                    Contact = new CotContact(node.Attribute("callsign"), node.Attribute("endpoint"));
                    break;
                case "__group" when Group is null:
                    Group = new CotGroup(node.Attribute("name"), node.Attribute("role"));
                    break;
                case "__chat" when Chat is null:
                    Chat = ChatOf(node);
                    break;
                case "__chatreceipt" when ChatReceipt is null:
                    ChatReceipt = ChatOf(node);
                    break;
                case "link":
                    (links ??= []).Add(new CotLink(node.Attribute("uid"), node.Attribute("type"), node.Attribute("relation"), node.Attribute("parent_callsign")));
                    break;
                case "status" when Status is null:
                    Status = new CotStatus(ParseInt(node.Attribute("battery")), ParseBool(node.Attribute("readiness")));
                    break;
                case "track" when Track is null:
                    Track = new CotTrack(ParseDouble(node.Attribute("course")), ParseDouble(node.Attribute("speed")));
                    break;
                case "takv" when Takv is null:
                    Takv = new CotTakv(node.Attribute("device"), node.Attribute("platform"), node.Attribute("os"), node.Attribute("version"));
                    break;
                case "precisionlocation" when PrecisionLocation is null:
                    PrecisionLocation = new CotPrecisionLocation(node.Attribute("geopointsrc"), node.Attribute("altsrc"));
                    break;
                case "__concord" when Marking is null:
                    Marking = node.Attribute("marking");
                    break;
                case "_flow-tags_" when node.Attributes is not null:
                    foreach (var attribute in node.Attributes)
                    {
                        (flowTags ??= new(StringComparer.Ordinal)).TryAdd(attribute.Key, attribute.Value);
                    }

                    break;
                default:
                    break;
            }
        }

        foreach (var child in flowTagChildren ?? [])
        {
            (flowTags ??= new(StringComparer.Ordinal)).TryAdd(child.Key, child.Value);
        }

        Links = links is null ? [] : links.AsReadOnly();
        FlowTags = flowTags is null ? ReadOnlyDictionary<string, string>.Empty : flowTags.AsReadOnly();
    }

    public static CotDetail Empty { get; } = new(string.Empty, [], null, null);

    /// <summary>The canonical XML of the children of &lt;detail&gt;, without the &lt;detail&gt; tags.</summary>
    public string Xml { get; }

    public bool IsEmpty => Xml.Length == 0;

    public CotContact? Contact { get; }

    public CotGroup? Group { get; }

    /// <summary>Text of the first &lt;remarks&gt;; empty for &lt;remarks/&gt;, null when there is none.</summary>
    public string? Remarks { get; }

    public CotChat? Chat { get; }

    /// <summary>
    /// &lt;__chatreceipt&gt; of a GeoChat receipt (b-t-f-d delivered, b-t-f-r read) as ATAK writes it: the attributes of the
    /// message it answers, its chat group being the receipt's sender (uid0) and the message's (uid1). WinTAK writes a
    /// receipt's &lt;__chat&gt; instead (<see cref="Chat"/>).
    /// </summary>
    public CotChat? ChatReceipt { get; }

    /// <summary>The message's &lt;__chat&gt;, or else a receipt's &lt;__chatreceipt&gt;: the chat an event belongs to.</summary>
    public CotChat? ChatOrReceipt => Chat ?? ChatReceipt;

    private static CotChat ChatOf(DetailNode node) =>
        new(node.Attribute("chatroom"), node.Attribute("senderCallsign"), node.Attribute("id"), node.Attribute("parent"));

    public IReadOnlyList<CotLink> Links { get; }

    /// <summary>
    /// &lt;_flow-tags_&gt; entries: its attributes (TAK Server style, name = time) and its child elements
    /// (node-cot style, element name = text).
    /// </summary>
    public IReadOnlyDictionary<string, string> FlowTags { get; }

    public CotStatus? Status { get; }

    public CotTrack? Track { get; }

    public CotTakv? Takv { get; }

    public CotPrecisionLocation? PrecisionLocation { get; }

    /// <summary>Concord's security marking, from &lt;__concord marking="…"/&gt;.</summary>
    public string? Marking { get; }

    /// <summary>Names of the direct children of &lt;detail&gt;, in document order.</summary>
    public IEnumerable<string> ElementNames => Nodes.Select(node => node.Name);

    internal DetailNode[] Nodes { get; }

    /// <summary>Parses untrusted detail XML (the children of &lt;detail&gt;) into canonical form.</summary>
    /// <exception cref="CotParseException">The XML is malformed, too large, too deep or carries a DTD.</exception>
    public static CotDetail Parse(string xml, CotParseOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(xml);
        options ??= CotParseOptions.Default;
        if (string.IsNullOrWhiteSpace(xml))
        {
            return Empty;
        }

        if (xml.Length > options.MaxDocumentBytes)
        {
            throw new CotParseException(string.Create(CultureInfo.InvariantCulture, $"detail exceeds {options.MaxDocumentBytes} characters"));
        }

        if (xml.Contains("<!DOCTYPE", StringComparison.Ordinal))
        {
            throw new CotParseException("DTD is not allowed");
        }

        try
        {
            using var reader = XmlReader.Create(new StringReader(string.Concat("<detail>", xml, "</detail>")), options.ThreadReaderSettings());
            reader.MoveToContent();
            var detail = DetailCanonicalizer.Read(reader, options.MaxDepth, depthOffset: 1, options.MaxDocumentBytes);
            while (reader.Read())
            {
            }

            return detail;
        }
        catch (XmlException e)
        {
            throw new CotParseException("malformed detail XML: " + e.Message, e);
        }
    }

    public bool Contains(string elementName) => Array.Exists(Nodes, node => node.Name == elementName);

    /// <summary>An attribute of the first &lt;remarks&gt; (GeoChat's <c>source</c>, <c>sourceID</c>, <c>to</c>, <c>time</c>), or null.</summary>
    public string? RemarksAttribute(string name)
    {
        foreach (var node in Nodes)
        {
            if (node.Name == "remarks")
            {
                return node.Attribute(name);
            }
        }

        return null;
    }

    /// <summary>The addressees in &lt;marti&gt;&lt;dest .../&gt;&lt;/marti&gt;; empty when the event names none (it is for everyone).</summary>
    public IReadOnlyList<CotDestination> Destinations => _destinations ??= ChildAttributes("marti", "dest")
        .Select(a => new CotDestination(Find(a, "callsign"), Find(a, "uid")))
        .Where(d => !string.IsNullOrEmpty(d.Callsign) || !string.IsNullOrEmpty(d.Uid))
        .ToList().AsReadOnly();

    /// <summary>
    /// The uids of a GeoChat group's members (&lt;__chat&gt;&lt;chatgrp uid0 uid1 …/&gt;, or a receipt's
    /// &lt;__chatreceipt&gt;&lt;chatgrp …/&gt; when there is no &lt;__chat&gt;): for a direct message, the sender and the
    /// addressee; empty when there is no such element.
    /// </summary>
    public IReadOnlyList<string> ChatGroupUids => _chatGroup ??= ChildAttributes(Chat is not null ? "__chat" : "__chatreceipt", "chatgrp")
        .Take(1)
        .SelectMany(a => a.Where(p => p.Key.StartsWith("uid", StringComparison.Ordinal) && p.Key.Length > 3 && p.Key[3..].All(char.IsAsciiDigit)))
        .Select(p => p.Value)
        .Where(v => v.Length > 0)
        .ToList().AsReadOnly();

    private IReadOnlyList<CotDestination>? _destinations;
    private IReadOnlyList<string>? _chatGroup;

    private static string? Find(KeyValuePair<string, string>[] attributes, string name)
    {
        foreach (var attribute in attributes)
        {
            if (attribute.Key == name)
            {
                return attribute.Value;
            }
        }

        return null;
    }

    /// <summary>The attributes of each <paramref name="child"/> element directly under the top-level <paramref name="parent"/> elements.</summary>
    private List<KeyValuePair<string, string>[]> ChildAttributes(string parent, string child)
    {
        var found = new List<KeyValuePair<string, string>[]>();
        foreach (var node in Nodes)
        {
            if (node.Name != parent || !node.HasContent)
            {
                continue;
            }

            // The canonical XML was parsed safely once already; it holds no DTD and no entity references.
            using var reader = XmlReader.Create(new StringReader(Xml.Substring(node.Start, node.Length)), new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            reader.MoveToContent();
            var depth = reader.Depth;
            while (reader.Read())
            {
                if (reader.NodeType == XmlNodeType.Element && reader.Depth == depth + 1 && reader.LocalName == child)
                {
                    var attributes = new List<KeyValuePair<string, string>>();
                    while (reader.MoveToNextAttribute())
                    {
                        attributes.Add(new(reader.LocalName, reader.Value));
                    }

                    reader.MoveToElement();
                    found.Add([.. attributes]);
                }
            }
        }

        return found;
    }

    /// <summary>A copy whose &lt;__concord&gt; marking is <paramref name="marking"/> (none when null).</summary>
    public CotDetail WithMarking(string? marking)
    {
        var xml = new StringBuilder(Xml.Length + 64);
        AppendWithout(xml, "__concord");
        if (marking is not null)
        {
            xml.Append("<__concord");
            XmlText.AppendAttribute(xml, "marking", marking);
            xml.Append("/>");
        }

        return Reparse(xml.ToString());
    }

    /// <summary>
    /// A copy with <paramref name="elementXml"/> (one or more elements, as XML) appended. The result is parsed again, as a
    /// whole, under the depth limit but not the size limit: this detail was read under that limit, and its canonical form
    /// (with '&gt;' and quotes escaped) can be several times longer than what the device sent.
    /// </summary>
    /// <exception cref="CotParseException"><paramref name="elementXml"/> is malformed or too deep.</exception>
    public CotDetail With(string elementXml)
    {
        ArgumentNullException.ThrowIfNull(elementXml);
        return Reparse(Xml + elementXml);
    }

    /// <summary>A copy without any direct child named <paramref name="elementName"/>.</summary>
    public CotDetail Without(string elementName)
    {
        if (!Contains(elementName))
        {
            return this;
        }

        var xml = new StringBuilder(Xml.Length);
        AppendWithout(xml, elementName);
        return Reparse(xml.ToString());
    }

    // A rewrite of a detail already accepted: its canonical form may exceed the size the device's XML was read under.
    // (The reader's limit counts the <detail> wrapper the parse adds.)
    internal static CotDetail Reparse(string xml, CotParseOptions? options = null)
    {
        options ??= CotParseOptions.Default;
        return Parse(xml, xml.Length <= options.MaxDocumentBytes - 64 ? options : new CotParseOptions { MaxDocumentBytes = xml.Length + 64, MaxDepth = options.MaxDepth });
    }

    public bool Equals(CotDetail? other) => other is not null && string.Equals(Xml, other.Xml, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as CotDetail);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Xml);

    public override string ToString() => Xml;

    internal void AppendWithout(StringBuilder xml, string elementName)
    {
        var at = 0;
        foreach (var node in Nodes)
        {
            if (node.Name == elementName)
            {
                xml.Append(Xml, at, node.Start - at);
                at = node.Start + node.Length;
            }
        }

        xml.Append(Xml, at, Xml.Length - at);
    }

    private static int? ParseInt(string? text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static double? ParseDouble(string? text) =>
        text is not null && CotNumber.TryParse(text, out var value) && double.IsFinite(value) ? value : null;

    private static bool? ParseBool(string? text) => text switch
    {
        "true" or "True" or "TRUE" or "1" => true,
        "false" or "False" or "FALSE" or "0" => false,
        _ => null,
    };
}

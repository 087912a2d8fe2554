using System.Text;

namespace Concord.Cot.Tests;

public sealed class HostileInputTests
{
    private const string Head = "<event version=\"2.0\" uid=\"U-1\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2024-01-01T12:00:00Z\" start=\"2024-01-01T12:00:00Z\" stale=\"2024-01-01T12:05:00Z\">";

    private static string Event(string lat = "4.39", string lon = "18.55", string detail = "<detail/>") =>
        Head + "<point lat=\"" + lat + "\" lon=\"" + lon + "\" hae=\"350\" ce=\"9999999.0\" le=\"9999999.0\"/>" + detail + "</event>";

    private static string ReasonFor(string xml)
    {
        var fromString = Assert.Throws<CotParseException>(() => CotXml.Parse(xml));
        var fromBytes = Assert.Throws<CotParseException>(() => CotXml.Parse(Encoding.UTF8.GetBytes(xml)));
        Assert.Equal(fromString.Reason, fromBytes.Reason);
        Assert.Equal(fromString.Reason, fromString.Message);
        return fromBytes.Reason;
    }

    [Theory]
    [InlineData("<detail><event></event><event uid=\"concord.incident.1\" type=\"t-x-d-d\"><detail><__forcedelete/></detail></event></detail>", "an 'event' element inside a detail")]
    [InlineData("<detail><remarks><![CDATA[</event><event uid=\"x\" type=\"t-x-d-d\">]]></remarks></detail>", "'</event>' inside the event")]
    [InlineData("<detail><remarks>a<!-- </event> --></remarks></detail>", "'</event>' inside the event")]
    [InlineData("<other><event uid=\"inner\"><point/></event></other><detail/>", "'</event>' inside the event")]
    public void An_end_of_event_inside_an_event_is_refused_as_TAK_clients_would_cut_the_stream_there(string inside, string reason)
    {
        // Clients split a stream at each "</event>": what follows one inside an event becomes an event of its own on every
        // device the outer event is passed to, one no check has seen (here, the deletion of an incident).
        Assert.StartsWith(reason, ReasonFor(Event(detail: inside)), StringComparison.Ordinal);
    }

    [Fact]
    public void An_event_element_inside_a_detail_is_refused_also_from_a_protobuf_xml_detail()
    {
        // Self-closed it has no end tag to cut at, but the detail is written out again (to XML devices): refused as well.
        Assert.Contains("'event' element inside a detail", ReasonFor(Event(detail: "<detail><event uid=\"inner\"/></detail>")), StringComparison.Ordinal);
        var proto = new TakCotEvent
        {
            Uid = "u",
            Type = "a-f-G",
            SendTime = 1,
            StartTime = 1,
            StaleTime = 2,
            Detail = new TakDetail { XmlDetail = "<contact callsign=\"A\"/><event uid=\"concord.incident.1\" type=\"t-x-d-d\"><detail/></event>" },
        };
        var refused = Assert.Throws<CotParseException>(() => proto.ToCotEvent());
        Assert.Contains("'event' element inside a detail", refused.Message, StringComparison.Ordinal);
        // Text that merely says so is no element, and is written escaped.
        Assert.Equal("x </event> y", CotXml.Parse(Event(detail: "<detail><remarks>x &lt;/event> y</remarks></detail>")).Detail.Remarks);
    }

    [Fact]
    public void Billion_laughs_dtd_is_refused()
    {
        const string laughs = "<?xml version=\"1.0\"?><!DOCTYPE event [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
            + "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]>";

        Assert.Equal("DTD is not allowed", ReasonFor(laughs + Event(detail: "<detail><remarks>&lol9;</remarks></detail>")));
    }

    [Fact]
    public void External_entity_is_refused()
    {
        Assert.Equal("DTD is not allowed", ReasonFor("<!DOCTYPE event [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>" + Event(detail: "<detail><remarks>&xxe;</remarks></detail>")));
    }

    [Fact]
    public void A_namespace_copied_to_each_element_cannot_make_the_detail_many_times_the_event()
    {
        // A hundred children of <detail> use a prefix <event> declares with a 32,000-character name: each child stands
        // alone, so each carries the declaration, and the written detail would be a hundred times the 33 kB event.
        var uri = "urn:" + new string('a', 32_000);
        var xml = Event(detail: "<detail>" + string.Concat(Enumerable.Repeat("<p:a/>", 100)) + "</detail>").Replace("<event ", $"<event xmlns:p=\"{uri}\" ", StringComparison.Ordinal);

        Assert.Equal("detail exceeds 524288 characters once written out", ReasonFor(xml));
    }

    [Fact]
    public void A_namespace_from_the_event_is_declared_once_on_each_child_of_detail_that_uses_it()
    {
        var xml = Event(detail: "<detail><p:a><p:b/><c><p:d x=\"1\"/></c></p:a><p:e/></detail>").Replace("<event ", "<event xmlns:p=\"urn:x\" ", StringComparison.Ordinal);

        var detail = CotXml.Parse(xml).Detail;

        Assert.Equal("<p:a xmlns:p=\"urn:x\"><p:b/><c><p:d x=\"1\"/></c></p:a><p:e xmlns:p=\"urn:x\"/>", detail.Xml);
        Assert.Equal(detail, CotDetail.Parse(detail.Xml));
    }

    [Fact]
    public void Undeclared_entity_is_malformed_xml()
    {
        Assert.StartsWith("malformed XML: ", ReasonFor(Event(detail: "<detail><remarks>&xxe;</remarks></detail>")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    [InlineData(200)]
    [InlineData(400)]
    [InlineData(-2)]
    [InlineData(-1)]
    public void Truncated_document_is_refused(int cut)
    {
        var xml = Captures.Text("samples", "chat_b-t-f_geochat.xml");
        var truncated = cut > 0 ? xml[..cut] : xml[..^-cut];

        Assert.Equal("truncated document", ReasonFor(truncated));
    }

    [Fact]
    public void Oversized_document_is_refused_before_parsing()
    {
        var big = Event(detail: "<detail><remarks>" + new string('x', 70_000) + "</remarks></detail>");

        Assert.Equal("event exceeds 65536 bytes", Assert.Throws<CotParseException>(() => CotXml.Parse(Encoding.UTF8.GetBytes(big))).Reason);
        Assert.Equal("event exceeds 65536 characters", Assert.Throws<CotParseException>(() => CotXml.Parse(big)).Reason);
        var small = new CotParseOptions { MaxDocumentBytes = 200 };
        Assert.Equal("event exceeds 200 bytes", Assert.Throws<CotParseException>(() => CotXml.Parse(Encoding.UTF8.GetBytes(Event()), small)).Reason);
    }

    [Fact]
    public void Depth_bomb_is_refused()
    {
        var bomb = string.Concat(Enumerable.Repeat("<a>", 1000)) + string.Concat(Enumerable.Repeat("</a>", 1000));

        Assert.Equal("element nesting exceeds 32 levels", ReasonFor(Event(detail: "<detail>" + bomb + "</detail>")));
        Assert.Equal("element nesting exceeds 32 levels", ReasonFor(Head + bomb + "</event>"));
        Assert.Equal("element nesting exceeds 8 levels", Assert.Throws<CotParseException>(() => CotXml.Parse(Event(detail: "<detail><a><b><c><d><e><f><g/></f></e></d></c></b></a></detail>"), new CotParseOptions { MaxDepth = 8 })).Reason);
        Assert.NotNull(CotXml.Parse(Event(detail: "<detail><a><b><c><d><e><f/></e></d></c></b></a></detail>"), new CotParseOptions { MaxDepth = 8 }));
    }

    [Theory]
    [InlineData("91", "18.55", "latitude 91 out of range [-90,90]")]
    [InlineData("123.4", "18.55", "latitude 123.4 out of range [-90,90]")]
    [InlineData("-90.0001", "18.55", "latitude -90.0001 out of range [-90,90]")]
    [InlineData("4.39", "181", "longitude 181 out of range [-180,180]")]
    [InlineData("4.39", "-180.5", "longitude -180.5 out of range [-180,180]")]
    [InlineData("NaN", "18.55", "latitude NaN is not a finite number")]
    [InlineData("4.39", "Infinity", "longitude Infinity is not a finite number")]
    [InlineData("abc", "18.55", "latitude 'abc' is not a number")]
    [InlineData("4,39", "18.55", "latitude '4,39' is not a number")]
    [InlineData("", "18.55", "missing attribute 'lat'")]
    public void Invalid_coordinates_are_refused_with_the_value(string lat, string lon, string reason)
    {
        Assert.Equal(reason, ReasonFor(Event(lat, lon)));
    }

    [Theory]
    [InlineData(" uid=\"U-1\"", "missing attribute 'uid'")]
    [InlineData(" type=\"a-f-G-U-C\"", "missing attribute 'type'")]
    [InlineData(" time=\"2024-01-01T12:00:00Z\"", "missing attribute 'time'")]
    [InlineData(" stale=\"2024-01-01T12:05:00Z\"", "missing attribute 'stale'")]
    public void Missing_required_attributes_are_named(string attribute, string reason)
    {
        Assert.Equal(reason, ReasonFor(Event().Replace(attribute, "", StringComparison.Ordinal)));
    }

    [Fact]
    public void Empty_uid_is_as_good_as_missing()
    {
        Assert.Equal("missing attribute 'uid'", ReasonFor(Event().Replace("uid=\"U-1\"", "uid=\"\"", StringComparison.Ordinal)));
    }

    [Fact]
    public void Structural_problems_are_named()
    {
        Assert.Equal("missing element 'point'", ReasonFor(Head + "<detail/></event>"));
        Assert.Equal("duplicate element 'point'", ReasonFor(Event().Replace("<detail/>", "<point lat=\"1\" lon=\"1\"/><detail/>", StringComparison.Ordinal)));
        Assert.Equal("duplicate element 'detail'", ReasonFor(Event(detail: "<detail/><detail/>")));
        Assert.Equal("root element is 'message', expected 'event'", ReasonFor("<message uid=\"x\"/>"));
        Assert.Equal("empty document", ReasonFor("  \n "));
        Assert.StartsWith("malformed XML: ", ReasonFor(Event() + Event()), StringComparison.Ordinal);
        Assert.StartsWith("malformed XML: ", ReasonFor(Event() + "trailing"), StringComparison.Ordinal);
        Assert.StartsWith("malformed XML: ", ReasonFor(Event().Replace("</event>", "</evnt>", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    [Fact]
    public void Garbage_bytes_are_refused_with_a_reason()
    {
        var random = new Random(5);
        for (var i = 0; i < 200; i++)
        {
            var garbage = new byte[random.Next(1, 300)];
            random.NextBytes(garbage);
            var e = Assert.Throws<CotParseException>(() => CotXml.Parse(garbage));
            Assert.False(string.IsNullOrWhiteSpace(e.Reason));
        }

        Assert.StartsWith("malformed XML: ", Assert.Throws<CotParseException>(() => CotXml.Parse(new byte[] { 0x00, 0xff, 0x10, 0x80 })).Reason, StringComparison.Ordinal);
        Assert.StartsWith("malformed XML: ", Assert.Throws<CotParseException>(() => CotXml.Parse(Encoding.UTF8.GetBytes(Event())[..100].Concat(new byte[] { 0xff, 0xfe }).Concat(Encoding.UTF8.GetBytes(Event())[100..]).ToArray())).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Hostile_detail_set_by_hand_is_refused()
    {
        var valid = CotXml.Parse(Event());

        Assert.Equal("DTD is not allowed", Assert.Throws<CotParseException>(() => valid with { DetailXml = "<!DOCTYPE x [<!ENTITY a \"b\">]><a/>" }).Reason);
        Assert.StartsWith("malformed detail XML: ", Assert.Throws<CotParseException>(() => valid with { DetailXml = "</detail><evil/><detail>" }).Reason, StringComparison.Ordinal);
        Assert.StartsWith("malformed detail XML: ", Assert.Throws<CotParseException>(() => valid with { DetailXml = "<a>" }).Reason, StringComparison.Ordinal);
    }
}

using System.Globalization;
using System.Text;

namespace Concord.Cot.Tests;

public sealed class ParserTests
{
    private const string Point = "<point lat=\"4.3947\" lon=\"18.5582\" hae=\"350\" ce=\"9999999.0\" le=\"9999999.0\"/>";

    private static string Event(string detail = "<detail/>", string attributes = "", string point = Point) =>
        "<event version=\"2.0\" uid=\"U-1\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2024-01-01T12:00:00Z\" start=\"2024-01-01T12:00:00Z\" stale=\"2024-01-01T12:05:00Z\"" + attributes + ">"
        + point + detail + "</event>";

    [Fact]
    public void Single_and_double_quoted_attributes_read_alike()
    {
        var single = CotXml.Parse("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n" + Event().Replace('"', '\''));
        var dual = CotXml.Parse(Event());

        Assert.Equal(dual, single);
        Assert.Equal("U-1", single.Uid);
        Assert.Equal(350, single.Point.Hae);
    }

    [Theory]
    [InlineData("2020-02-08T18:10:46.207Z", 637167822462070000)]
    [InlineData("2020-02-08T18:10:46Z", 637167822460000000)]
    [InlineData("2020-02-08T18:10:46", 637167822460000000)]
    [InlineData("2020-02-08T18:10:46.2Z", 637167822462000000)]
    [InlineData("2020-02-08T18:10:46.123456789Z", 637167822461234567)]
    [InlineData("2020-02-08T19:10:46.207+01:00", 637167822462070000)]
    [InlineData("2020-02-08T17:10:46.207-0100", 637167822462070000)]
    public void Iso_times_with_or_without_fraction_and_zone_are_read_as_utc(string text, long ticks)
    {
        var parsed = CotXml.Parse(Event().Replace("time=\"2024-01-01T12:00:00Z\"", "time=\"" + text + "\"", StringComparison.Ordinal));

        Assert.Equal(ticks, parsed.Time.UtcTicks);
        Assert.Equal(TimeSpan.Zero, parsed.Time.Offset);
    }

    [Theory]
    [InlineData("yesterday")]
    [InlineData("2020-13-08T18:10:46Z")]
    [InlineData("2020-02-30T18:10:46Z")]
    [InlineData("2020-02-08T24:00:00Z")]
    [InlineData("2020-02-08T18:10:46.Z")]
    [InlineData("2020-02-08T18:10:46Q")]
    public void Invalid_times_are_rejected_naming_the_attribute(string text)
    {
        var e = Assert.Throws<CotParseException>(() => CotXml.Parse(Event().Replace("start=\"2024-01-01T12:00:00Z\"", "start=\"" + text + "\"", StringComparison.Ordinal)));
        Assert.Equal("invalid time '" + text + "' in attribute 'start'", e.Reason);
    }

    [Fact]
    public void Times_are_written_in_milliseconds_and_sub_millisecond_times_round_trip()
    {
        var whole = CotXml.Parse(Event());
        var precise = whole with { Time = new DateTimeOffset(637167822461234567, TimeSpan.Zero) };

        Assert.Contains("time=\"2024-01-01T12:00:00.000Z\"", CotXml.Serialize(whole), StringComparison.Ordinal);
        Assert.Contains("time=\"2020-02-08T18:10:46.1234567Z\"", CotXml.Serialize(precise), StringComparison.Ordinal);
        Assert.Equal(precise, CotXml.Parse(CotXml.Serialize(precise)));
    }

    [Fact]
    public void Point_after_detail_and_unknown_event_children_are_accepted()
    {
        var parsed = CotXml.Parse("<event uid='p' type='t-x-c-t' how='h-g-i-g-o' time='2026-11-22T00:57:20.229Z' start='2026-11-22T00:57:20.229Z' stale='2026-11-22T00:57:40.229Z'>"
            + "<extension><nested a='1'/></extension><detail><_flow-tags_ TAK-Server-e87a0e02='2026-11-22T00:57:20Z'/></detail>"
            + "<point lat='0.000000' lon='0.000000' hae='0.0' ce='9999999.0' le='9999999.0'/></event>");

        Assert.Equal("t-x-c-t", parsed.Type);
        Assert.Equal(0, parsed.Point.Lat);
        Assert.Equal("2026-11-22T00:57:20Z", parsed.Detail.FlowTags["TAK-Server-e87a0e02"]);
        Assert.Equal("2.0", parsed.Version);
    }

    [Fact]
    public void Flow_tags_are_read_from_attributes_and_from_child_elements()
    {
        var parsed = CotXml.Parse(Event("<detail><_flow-tags_ TAK-Server-1=\"2024-01-01T12:00:01Z\"><NodeCoT-12.23.0>2026-11-22T00:57:45.233Z</NodeCoT-12.23.0></_flow-tags_></detail>"));

        Assert.Equal(2, parsed.Detail.FlowTags.Count);
        Assert.Equal("2024-01-01T12:00:01Z", parsed.Detail.FlowTags["TAK-Server-1"]);
        Assert.Equal("2026-11-22T00:57:45.233Z", parsed.Detail.FlowTags["NodeCoT-12.23.0"]);
    }

    [Fact]
    public void Access_carries_a_classification_and_the_concord_marking_is_typed()
    {
        var parsed = CotXml.Parse(Event("<detail><contact callsign=\"A\"/><__concord marking=\"UN RESTRICTED//REL MINUSCA\"/></detail>", " access=\"UNCLASSIFIED\""));

        Assert.Equal("UNCLASSIFIED", parsed.Access);
        Assert.Equal("UN RESTRICTED//REL MINUSCA", parsed.Detail.Marking);

        var remarked = parsed with { Detail = parsed.Detail.WithMarking("UN CONFIDENTIAL") };
        Assert.Equal("UN CONFIDENTIAL", remarked.Detail.Marking);
        Assert.Equal("<contact callsign=\"A\"/><__concord marking=\"UN CONFIDENTIAL\"/>", remarked.Detail.Xml);
        Assert.Equal(remarked, CotXml.Parse(CotXml.Serialize(remarked)));
        Assert.Null(remarked.Detail.WithMarking(null).Marking);
        Assert.Contains(" access=\"UNCLASSIFIED\"", CotXml.Serialize(parsed), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("<detail><contact callsign=\"A\"/><a:foo a:bar=\"1\"/></detail>", " xmlns:a=\"urn:x\"")]
    [InlineData("<detail xmlns:a=\"urn:x\"><contact callsign=\"A\"/><a:foo a:bar=\"1\"/></detail>", "")]
    public void A_namespace_declared_above_an_element_of_the_detail_travels_with_it(string detail, string eventAttributes)
    {
        var parsed = CotXml.Parse(Event(detail, eventAttributes));

        Assert.Contains("<a:foo a:bar=\"1\" xmlns:a=\"urn:x\"/>", parsed.Detail.Xml, StringComparison.Ordinal);
        // What a server does with the detail on its own: mark it, rebuild it for TAK protocol v1.
        Assert.Equal("UNCLASSIFIED", parsed.Detail.WithMarking("UNCLASSIFIED").Marking);
        Assert.Equal(parsed, CotXml.Parse(CotXml.Serialize(parsed)));
        Assert.Contains("<a:foo a:bar=\"1\" xmlns:a=\"urn:x\"/>", parsed.ToTakMessage().CotEvent!.ToCotEvent().Detail.Xml, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_optional_attributes_read_as_absent()
    {
        var parsed = CotXml.Parse(Event(attributes: " qos=\"\" opex=\"\" access=\"\""));

        Assert.Null(parsed.Access);
        Assert.Null(parsed.Qos);
        Assert.Null(parsed.Opex);
        Assert.Equal(CotXml.Parse(Event()), parsed);
    }

    [Fact]
    public void Detail_whitespace_between_elements_is_dropped_but_text_is_kept()
    {
        var parsed = CotXml.Parse(Event("<detail>\n  <remarks>  two  spaces  </remarks>\r\n\t<empty>   </empty>\n  <c><![CDATA[a < b & c]]></c><!-- dropped --></detail>"));

        Assert.Equal("<remarks>  two  spaces  </remarks><empty>   </empty><c>a &lt; b &amp; c</c>", parsed.Detail.Xml);
        Assert.Equal("  two  spaces  ", parsed.Detail.Remarks);
        Assert.Equal(parsed, CotXml.Parse(CotXml.Serialize(parsed)));
    }

    [Theory]
    [InlineData("<detail><remarks>{0}</remarks></detail>", '>')]
    [InlineData("<detail><contact callsign='{0}'/></detail>", '"')]
    [InlineData("<detail><contact callsign=\"{0}\"/></detail>", '\'')]
    [InlineData("<detail><link relation='{0}'/></detail>", '>')]
    public void An_event_read_within_the_limit_is_written_back_within_it(string detail, char repeated)
    {
        // Characters XML lets stand were escaped when written back ('>' as "&gt;", a '"' inside a single-quoted attribute
        // as "&quot;"): an event read within the 64 KiB limit came back four to six times longer, refused by the
        // library's own parser, framer and protobuf reader.
        var input = Encoding.UTF8.GetBytes(Event(string.Format(CultureInfo.InvariantCulture, detail, new string(repeated, 60_000))));
        Assert.True(input.Length <= CotParseOptions.DefaultMaxDocumentBytes);
        var parsed = CotXml.Parse(input);

        var written = CotXml.SerializeToUtf8Bytes(parsed);

        // (The event's own attributes and point are written in their canonical form: a few bytes more or less.)
        Assert.True(written.Length <= input.Length + 64, $"{written.Length} bytes written for {input.Length} read");
        Assert.Equal(parsed, CotXml.Parse(written));
    }

    [Fact]
    public void The_end_of_a_cdata_section_in_a_text_is_written_escaped()
    {
        var parsed = CotXml.Parse(Event("<detail><remarks><![CDATA[a]]]]><![CDATA[>b]]> c > d</remarks></detail>"));
        Assert.Equal("a]]>b c > d", parsed.Detail.Remarks);

        var written = CotXml.Serialize(parsed);

        Assert.True(written.Contains("a]]&gt;b c > d", StringComparison.Ordinal), written);
        Assert.Equal(parsed, CotXml.Parse(written));
    }

    [Fact]
    public void Attribute_values_with_newlines_quotes_and_markup_survive_a_round_trip()
    {
        var parsed = CotXml.Parse(Event("<detail><remarks source=\"a&#10;b&#9;c &quot;q&quot; &lt;/event&gt;\">x</remarks></detail>"));
        var again = CotXml.Parse(CotXml.Serialize(parsed));

        Assert.Equal(parsed, again);
        // In the quote the value holds fewer of, and '>' as it is: written no longer than it was read.
        Assert.Contains("source='a&#10;b&#9;c \"q\" &lt;/event>'", again.Detail.Xml, StringComparison.Ordinal);
    }

    [Fact]
    public void Detail_set_by_hand_is_canonicalised_and_compared_by_value()
    {
        var parsed = CotXml.Parse(Event("<detail><contact callsign=\"Ops &amp; Co\"/><track course=\"90\" speed=\"1.5\"/></detail>"));
        var byHand = parsed with { DetailXml = "\n  <contact callsign='Ops &amp; Co' />\n  <track course='90' speed='1.5'></track>\n" };

        Assert.Equal("<contact callsign=\"Ops &amp; Co\"/><track course=\"90\" speed=\"1.5\"></track>", byHand.DetailXml);
        Assert.Equal(new CotTrack(90, 1.5), byHand.Detail.Track);
        Assert.NotEqual(parsed, parsed with { DetailXml = "<contact callsign=\"Other\"/>" });
        Assert.Equal(parsed with { DetailXml = "<a/><b/>" }, parsed with { DetailXml = "<a/>\n<b></b>".Replace("<b></b>", "<b/>", StringComparison.Ordinal) });
    }

    [Fact]
    public void Built_detail_is_escaped_and_typed()
    {
        var detail = new CotDetailBuilder()
            .Contact("Bravo <2>", "10.0.0.1:4242:tcp")
            .Group("Cyan", "Team Lead")
            .Remarks("Road & bridge \"closed\"")
            .Track(271.5, 3.25)
            .Status(87)
            .Marking("UN RESTRICTED")
            .Build();

        Assert.Equal(new CotContact("Bravo <2>", "10.0.0.1:4242:tcp"), detail.Contact);
        Assert.Equal(new CotGroup("Cyan", "Team Lead"), detail.Group);
        Assert.Equal("Road & bridge \"closed\"", detail.Remarks);
        Assert.Equal(new CotTrack(271.5, 3.25), detail.Track);
        Assert.Equal(87, detail.Status?.Battery);
        Assert.Equal("UN RESTRICTED", detail.Marking);
        Assert.Throws<ArgumentException>(() => new CotDetailBuilder().Element("not a name"));
    }

    [Fact]
    public void Numbers_are_written_invariant_without_exponents_and_round_trip()
    {
        var parsed = CotXml.Parse(Event(point: "<point lat=\"1E-7\" lon=\"-179.99999999999997\" hae=\"1.5e15\" ce=\"0.1\" le=\"-0\"/>"));
        var xml = CotXml.Serialize(parsed);

        Assert.Contains("lat=\"0.0000001\"", xml, StringComparison.Ordinal);
        Assert.Contains("lon=\"-179.99999999999997\"", xml, StringComparison.Ordinal);
        Assert.Contains("hae=\"1500000000000000\"", xml, StringComparison.Ordinal);
        Assert.DoesNotContain("E", xml.Replace("EVENT", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(parsed, CotXml.Parse(xml));
    }

    [Fact]
    public void Missing_height_and_errors_default_to_no_value()
    {
        var parsed = CotXml.Parse(Event(point: "<point lat=\"1\" lon=\"2\"/>"));

        Assert.Equal(new CotPoint(1, 2), parsed.Point);
        Assert.Equal(CotPoint.NoValue, parsed.Point.Le);
    }

    [Fact]
    public void Serialized_event_is_compact_double_quoted_and_has_no_declaration()
    {
        var parsed = CotXml.Parse(Event("<detail><contact callsign=\"A\"/></detail>"));

        Assert.Equal(
            "<event version=\"2.0\" uid=\"U-1\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2024-01-01T12:00:00.000Z\" start=\"2024-01-01T12:00:00.000Z\" stale=\"2024-01-01T12:05:00.000Z\">"
            + "<point lat=\"4.3947\" lon=\"18.5582\" hae=\"350\" ce=\"9999999\" le=\"9999999\"/><detail><contact callsign=\"A\"/></detail></event>",
            CotXml.Serialize(parsed));
        Assert.Equal(Encoding.UTF8.GetBytes(CotXml.Serialize(parsed)), CotXml.SerializeToUtf8Bytes(parsed));
    }

    [Fact]
    public void Non_ascii_text_round_trips_through_utf8()
    {
        var parsed = CotXml.Parse(Encoding.UTF8.GetBytes(Event("<detail><contact callsign=\"Équipe Ñandú 🚁\"/><remarks>Бангі</remarks></detail>")));

        Assert.Equal("Équipe Ñandú 🚁", parsed.Detail.Contact?.Callsign);
        Assert.Equal(parsed, CotXml.Parse(CotXml.SerializeToUtf8Bytes(parsed)));
    }

    [Fact]
    public void Try_parse_reports_the_reason_instead_of_throwing()
    {
        Assert.True(CotXml.TryParse(Encoding.UTF8.GetBytes(Event()), out var parsed, out var reason));
        Assert.Equal("U-1", parsed.Uid);
        Assert.Null(reason);

        Assert.False(CotXml.TryParse(Encoding.UTF8.GetBytes(Event().Replace(" uid=\"U-1\"", "", StringComparison.Ordinal)), out parsed, out reason));
        Assert.Null(parsed);
        Assert.Equal("missing attribute 'uid'", reason);
    }

    [Fact]
    public void Stale_is_judged_against_the_given_clock()
    {
        var parsed = CotXml.Parse(Event());

        Assert.False(parsed.IsStaleAt(new DateTimeOffset(2024, 1, 1, 12, 4, 59, TimeSpan.Zero)));
        Assert.True(parsed.IsStaleAt(new DateTimeOffset(2024, 1, 1, 12, 5, 0, TimeSpan.Zero)));
    }

    [Fact]
    public void Events_built_by_hand_refuse_what_xml_cannot_carry()
    {
        var valid = CotXml.Parse(Event());

        Assert.Throws<ArgumentException>(() => valid with { Uid = "" });
        Assert.Throws<ArgumentException>(() => valid with { Type = "a\u0001" });
        Assert.Throws<ArgumentException>(() => valid with { Access = "\uFFFF" });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CotPoint(95, 0));
        Assert.Equal("🚁", (valid with { How = "🚁" }).How);
    }
}

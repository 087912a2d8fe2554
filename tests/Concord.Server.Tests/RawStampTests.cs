using System.Text;
using Concord.Cot;
using Concord.Server.Tak;

namespace Concord.Server.Tests;

public sealed class RawStampTests
{
    private const string Label = "UNCLASSIFIED//REL TO KIND:MILITARY";

    [Theory]
    [InlineData("<event version='2.0' uid='A' type='a-f-G-U-C' time='2020-02-08T18:10:44.000Z' start='2020-02-08T18:10:44.000Z' stale='2020-02-08T18:11:44.000Z' how='h-e'><point lat='1' lon='2' hae='0' ce='9' le='9'/><detail><contact callsign='X &amp; Y'/></detail></event>")]
    [InlineData("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n<event version=\"2.0\" uid=\"A\" type=\"a-f-G\" time=\"2020-02-08T18:10:44Z\" start=\"2020-02-08T18:10:44Z\" stale=\"2020-02-08T18:11:44Z\" how=\"m-g\">\n  <point lat=\"1\" lon=\"2\" hae=\"0\" ce=\"9\" le=\"9\"/>\n  <detail/>\n</event>")]
    [InlineData("<event version='2.0' uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z' how='m-g'><detail><remarks>a &gt; b</remarks></detail><point lat='1' lon='2' hae='0' ce='9' le='9'/></event>")]
    [InlineData("<event version='2.0' uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z' how='m-g'><point lat='1' lon='2' hae='0' ce='9' le='9'><x/></point><y a='/>'></y><detail><remarks>a</remarks></detail></event>")]
    public void Inserting_into_the_bytes_gives_the_same_event_as_rebuilding_it(string xml)
    {
        var original = CotXml.Parse(xml);

        var stamped = RawStamp.TryInsert(Encoding.UTF8.GetBytes(xml), Label, "concord-test", "2026-11-22T00:00:00.000Z");

        Assert.NotNull(stamped);
        var parsed = CotXml.Parse(stamped);
        Assert.Equal(Label, parsed.Access);
        Assert.Equal(Label, parsed.Detail.Marking);
        Assert.Equal("2026-11-22T00:00:00.000Z", parsed.Detail.FlowTags["concord-test"]);
        Assert.Equal(original.Uid, parsed.Uid);
        Assert.Equal(original.Point, parsed.Point);
        Assert.Equal(original.Detail.Contact, parsed.Detail.Contact);
        Assert.Equal(original.Detail.Remarks, parsed.Detail.Remarks);
    }

    [Theory]
    [InlineData("<event uid='A' type='a-f-G' access='Unclassified' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail/></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail><_flow-tags_ TAK-Server-1='2020-02-08T18:10:44Z'/></detail></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'/>")]
    [InlineData("<event uid='A' type='a-f-G' access = 'Unclassified' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail/></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail><contact callsign='A'/></detail><!-- </detail> --></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail><remarks><![CDATA[</detail>]]></remarks></detail></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail><contact callsign='A'/></detail><x><detail></detail></x></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail><contact callsign='A'/></detail><?note </detail> ?></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail/><x><detail></detail></x></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><detail/><x><detail/></x></event>")]
    // The only detail is not the event's own but an element's further down, which devices and the parser ignore.
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><point lat='1' lon='2'/><x><detail/></x></event>")]
    [InlineData("<event uid='A' type='a-f-G' time='2020-02-08T18:10:44Z' start='2020-02-08T18:10:44Z' stale='2020-02-08T18:11:44Z'><x a='>'><y/><detail><contact callsign='A'/></detail></x></event>")]
    public void Events_of_another_shape_are_left_to_the_full_rebuild(string xml) =>
        Assert.Null(RawStamp.TryInsert(Encoding.UTF8.GetBytes(xml), Label, "concord-test", "2026-11-22T00:00:00.000Z"));
}

namespace Concord.Cot.Tests;

public sealed class SampleTests
{
    public static TheoryData<string> Samples => new(Captures.SampleNames);

    [Theory]
    [MemberData(nameof(Samples))]
    public void Every_sample_parses_and_round_trips(string sample)
    {
        var parsed = CotXml.Parse(Captures.Bytes("samples", sample));
        var serialized = CotXml.Serialize(parsed);

        Assert.Equal(parsed, CotXml.Parse(serialized));
        Assert.Equal(parsed, CotXml.Parse(Captures.Text("samples", sample)));
        Assert.StartsWith("<event version=\"2.0\" uid=", serialized, StringComparison.Ordinal);
        Assert.DoesNotContain("<?xml", serialized, StringComparison.Ordinal);
        Assert.DoesNotContain('\'', serialized.Replace("&apos;", "", StringComparison.Ordinal));
    }

    [Fact]
    public void There_are_seven_samples() => Assert.Equal(7, Captures.SampleNames.Count());

    [Fact]
    public void Pretty_printed_marker_reads_like_a_compact_one()
    {
        var pretty = CotXml.Parse(Captures.Bytes("samples", "marker_a-f-G_pretty-printed.xml"));

        Assert.Equal("a-f-G", pretty.Type);
        Assert.Equal(44.2198868, pretty.Point.Lat);
        Assert.Equal(-13.62, pretty.Point.Hae);
        Assert.Equal("F.1.184814", pretty.Detail.Contact?.Callsign);
        Assert.Equal(["link", "archive", "usericon", "precisionlocation", "contact"], pretty.Detail.ElementNames);
        Assert.DoesNotContain('\n', pretty.Detail.Xml);
        Assert.DoesNotContain('\t', pretty.Detail.Xml);
    }

    [Fact]
    public void Hostile_marker_keeps_the_ampersand_in_its_callsign()
    {
        var hostile = CotXml.Parse(Captures.Bytes("samples", "marker_a-h-G_hostile.xml"));

        Assert.Equal("Command & Control Team", hostile.Detail.Contact?.Callsign);
        Assert.Contains("callsign=\"Command &amp; Control Team\"", CotXml.Serialize(hostile), StringComparison.Ordinal);
        Assert.Equal(new CotLink("aa0b0312-b5cd-4c2c-bbbc-9c4c70216261", "a-h-G", "p-p", "Eliopoli HQ"), Assert.Single(hostile.Detail.Links));
    }

    [Fact]
    public void Geochat_exposes_room_sender_remarks_and_link()
    {
        var chat = CotXml.Parse(Captures.Bytes("samples", "chat_b-t-f_geochat.xml"));

        Assert.Equal("b-t-f", chat.Type);
        Assert.Equal(new CotChat("Eliopoli HQ", "corvTab", "aa0b0312-b5cd-4c2c-bbbc-9c4c70216261", "RootContactGroup"), chat.Detail.Chat);
        Assert.Equal("need supoort", chat.Detail.Remarks);
        Assert.Equal("ANDROID-R52JB0CDC4E", Assert.Single(chat.Detail.Links).Uid);
        Assert.Contains("<chatgrp uid0=\"ANDROID-R52JB0CDC4E\"", chat.Detail.Xml, StringComparison.Ordinal);
        Assert.Contains("<__serverdestination destinations=", chat.Detail.Xml, StringComparison.Ordinal);
        Assert.Equal(new DateTimeOffset(2020, 2, 8, 18, 11, 3, 516, TimeSpan.Zero), chat.Time);
        Assert.Equal(new DateTimeOffset(2020, 2, 9, 18, 11, 3, 516, TimeSpan.Zero), chat.Stale);
        Assert.Equal(["ANDROID-R52JB0CDC4E", "aa0b0312-b5cd-4c2c-bbbc-9c4c70216261"], chat.Detail.ChatGroupUids);
        Assert.Empty(chat.Detail.Destinations);
    }

    [Fact]
    public void A_chat_receipt_names_the_message_it_answers_and_its_chat_group()
    {
        // As ATAK writes a delivery receipt: <__chatreceipt> with the message's attributes, its sender first in the group.
        var receipt = CotDetail.Parse("<__chatreceipt parent='RootContactGroup' groupOwner='false' messageId='4de0262c' chatroom='Alpha' id='ANDROID-a' senderCallsign='Bravo'>" +
            "<chatgrp uid0='ANDROID-b' uid1='ANDROID-a' id='ANDROID-a'/></__chatreceipt><link uid='ANDROID-b' type='a-f-G-U-C' relation='p-p'/><marti><dest callsign='Alpha'/></marti>");

        Assert.Null(receipt.Chat);
        Assert.Equal(new CotChat("Alpha", "Bravo", "ANDROID-a", "RootContactGroup"), receipt.ChatReceipt);
        Assert.Equal(["ANDROID-b", "ANDROID-a"], receipt.ChatGroupUids);
        // A message's own group comes first when an event holds both.
        Assert.Equal(["ANDROID-c"], CotDetail.Parse("<__chatreceipt id='x'><chatgrp uid0='ANDROID-b'/></__chatreceipt><__chat id='y'><chatgrp uid0='ANDROID-c'/></__chat>").ChatGroupUids);
    }

    [Fact]
    public void Marti_destinations_name_the_devices_an_event_is_for()
    {
        var detail = CotDetail.Parse("<contact callsign='x'/><marti><dest callsign='Bravo 1'/><dest uid='ANDROID-b'/><other/></marti>");

        Assert.Equal([new CotDestination("Bravo 1", null), new CotDestination(null, "ANDROID-b")], detail.Destinations);
        Assert.Empty(CotDetail.Parse("<marti/>").Destinations);
        Assert.Empty(CotDetail.Empty.ChatGroupUids);
    }

    [Fact]
    public void Wintak_vehicle_exposes_group_status_takv_and_track()
    {
        var vehicle = CotXml.Parse(Captures.Bytes("samples", "pli_a-f-G-E-V-C_vehicle.xml"));

        Assert.Equal("h-e", vehicle.How);
        Assert.Equal(new CotContact("Eliopoli HQ", "192.168.1.10:4242:tcp"), vehicle.Detail.Contact);
        Assert.Equal(new CotGroup("Yellow", "HQ"), vehicle.Detail.Group);
        Assert.Equal(new CotStatus(100, null), vehicle.Detail.Status);
        Assert.Equal(new CotTakv("LENOVO 20QV0007US", "WinTAK-CIV", "Microsoft Windows 10 Home", "1.10.0.137"), vehicle.Detail.Takv);
        Assert.Equal(new CotTrack(0, 0), vehicle.Detail.Track);
        Assert.Null(vehicle.Detail.Remarks);
        Assert.Null(vehicle.Detail.Marking);
    }

    [Fact]
    public void Atak_position_keeps_unknown_height_and_precision_location()
    {
        var pli = CotXml.Parse(Captures.Bytes("samples", "pli_a-f-G-U-C_atak-civ-3.12.xml"));

        Assert.Equal(CotPoint.NoValue, pli.Point.Hae);
        Assert.Equal(-0.004287826538927404, pli.Point.Lat);
        Assert.Equal(-0.0076812372022802555, pli.Point.Lon);
        Assert.Equal(new CotPrecisionLocation("USER", "???"), pli.Detail.PrecisionLocation);
        Assert.Equal(new CotStatus(53, null), pli.Detail.Status);
        Assert.Contains("<uid Droid=\"corvTab\"/>", pli.Detail.Xml, StringComparison.Ordinal);
        Assert.Contains("lat=\"-0.004287826538927404\"", CotXml.Serialize(pli), StringComparison.Ordinal);
    }

    [Fact]
    public void Air_and_spot_markers_keep_repeated_and_unknown_elements()
    {
        var air = CotXml.Parse(Captures.Bytes("samples", "marker_a-u-A-M-F_air.xml"));
        var spot = CotXml.Parse(Captures.Bytes("samples", "marker_b-m-p-s-m_spot.xml"));

        Assert.Equal(2, air.Detail.ElementNames.Count(n => n == "archive"));
        Assert.Equal(new CotStatus(null, true), air.Detail.Status);
        Assert.Contains("<color argb=\"-1\"/>", air.Detail.Xml, StringComparison.Ordinal);
        Assert.Equal("Y 1", spot.Detail.Contact?.Callsign);
        Assert.Equal(new CotPrecisionLocation(null, "???"), spot.Detail.PrecisionLocation);
    }
}

namespace Concord.Cot.Tests;

public sealed class TakProtocolTests
{
    // node-cot writes Track speed=0 and course=0 explicitly; canonical proto3 leaves defaults out.
    private const string NodeCotExplicitZeroTrack = "3a12090000000000000000110000000000000000";

    public static TheoryData<string> Vectors => new(Captures.VectorNames);

    private static byte[] Hex(string vector, string field) => Captures.FromHex(Captures.Vector(vector).GetProperty(field).GetString()!);

    private static string Text(string vector, string field) => Captures.Vector(vector).GetProperty(field).GetString()!;

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Node_cot_vectors_decode_to_the_event_node_cot_reads(string vector)
    {
        var payload = Hex(vector, "takmessage_v1_hex");
        Assert.Equal(Captures.Vector(vector).GetProperty("payload_len").GetInt32(), payload.Length);

        var mine = TakProtobuf.Decode(payload).CotEvent!.ToCotEvent();

        // node-cot writes '&' unescaped in attribute values ("Command & Control Team"): its bug, fixed up here.
        var theirs = CotXml.Parse(Text(vector, "roundtrip_xml_by_node_cot").Replace("& ", "&amp; ", StringComparison.Ordinal));
        Assert.Equal(theirs with { Detail = CotDetail.Empty }, mine with { Detail = CotDetail.Empty });

        // node-cot stamps a fresh _flow-tags_ time when it decodes, and drops the <metadata/> it added when encoding.
        Assert.Equal(Captures.Elements(theirs.Detail, "_flow-tags_"), Captures.Elements(mine.Detail, "_flow-tags_", "metadata"));
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Node_cot_vectors_keep_the_source_event_except_for_node_cot_losses(string vector)
    {
        var source = CotXml.Parse(Text(vector, "source_xml"));
        var mine = TakProtobuf.Decode(Hex(vector, "takmessage_v1_hex")).CotEvent!.ToCotEvent();

        Assert.Equal(source with { Detail = CotDetail.Empty }, mine with { Detail = CotDetail.Empty });

        // Documented node-cot differences: it drops <precisionlocation>, turns <status readiness> into
        // battery 0, adds _flow-tags_ and <metadata/>, and sends <__group> in xmlDetail (which reads the same).
        string[] lost = source.Detail.Status is { Battery: null } ? ["precisionlocation", "status"] : ["precisionlocation"];
        Assert.Equal(Captures.Elements(source.Detail, lost), Captures.Elements(mine.Detail, [.. lost, "_flow-tags_", "metadata"]));
        Assert.Equal(source.Detail.Group, mine.Detail.Group);
    }

    [Theory]
    [InlineData("chat")]
    [InlineData("hostile")]
    [InlineData("spot")]
    public void Canonical_node_cot_vectors_re_encode_to_identical_bytes(string vector)
    {
        var payload = Hex(vector, "takmessage_v1_hex");
        var message = TakProtobuf.Decode(payload);

        Assert.Equal(payload, TakProtobuf.Encode(message));
        Assert.Equal(Hex(vector, "stream_frame_hex"), TakFraming.EncodeStreamFrame(message));
        Assert.Equal(Hex(vector, "mesh_frame_hex"), TakFraming.EncodeMeshDatagram(message));
        Assert.Equal(message, TakFraming.DecodeMeshDatagram(Hex(vector, "mesh_frame_hex")));
    }

    [Fact]
    public void Pli_vector_re_encodes_canonically_without_node_cots_explicit_zero_track()
    {
        var payload = Hex("pli", "takmessage_v1_hex");
        var message = TakProtobuf.Decode(payload);
        var canonical = TakProtobuf.Encode(message);

        Assert.Contains(NodeCotExplicitZeroTrack, Convert.ToHexStringLower(payload), StringComparison.Ordinal);
        Assert.EndsWith("3a00", Convert.ToHexStringLower(canonical), StringComparison.Ordinal);
        Assert.Equal(payload.Length - 18, canonical.Length);
        Assert.Equal(message, TakProtobuf.Decode(canonical));
        Assert.Equal(new TakTrack(), message.CotEvent?.Detail?.Track);
        Assert.Equal(new TakStatus { Battery = 53 }, message.CotEvent?.Detail?.Status);
        Assert.Equal(message, TakFraming.DecodeMeshDatagram(Hex("pli", "mesh_frame_hex")));
    }

    [Fact]
    public void A_stream_framer_with_no_practical_limit_is_made_and_reads_a_frame()
    {
        // Its first buffer was sized as limit + 16, which overflowed for int.MaxValue.
        var framer = new TakStreamFramer(int.MaxValue);
        framer.Append(Hex("pli", "stream_frame_hex"));

        Assert.True(framer.TryReadPayload(out var payload));
        Assert.Equal(Hex("pli", "takmessage_v1_hex"), payload.ToArray());
    }

    [Fact]
    public void Stream_framer_splits_every_vector_out_of_random_chunks()
    {
        var stream = Captures.VectorNames.SelectMany(v => Hex(v, "stream_frame_hex")).ToArray();
        var expected = Captures.VectorNames.Select(v => Hex(v, "takmessage_v1_hex")).ToList();
        for (var seed = 0; seed < 100; seed++)
        {
            var random = new Random(seed);
            var framer = new TakStreamFramer();
            var payloads = new List<byte[]>();
            var at = 0;
            while (at < stream.Length)
            {
                var size = Math.Min(random.Next(1, 200), stream.Length - at);
                framer.Append(stream.AsSpan(at, size));
                at += size;
                while (framer.TryReadPayload(out var payload))
                {
                    payloads.Add(payload.ToArray());
                }
            }

            Assert.Equal(expected, payloads);
            Assert.Equal(0, framer.BufferedBytes);
        }
    }

    [Fact]
    public void Xml_to_protobuf_uses_typed_fields_only_for_whole_single_elements()
    {
        var pli = CotXml.Parse(Captures.Bytes("samples", "pli_a-f-G-U-C_atak-civ-3.12.xml")).ToTakCotEvent();

        Assert.Equal("<uid Droid=\"corvTab\"/>", pli.Detail?.XmlDetail);
        Assert.Equal(new TakContact { Endpoint = "192.168.1.9:4242:tcp", Callsign = "corvTab" }, pli.Detail?.Contact);
        Assert.Equal(new TakGroup { Name = "Yellow", Role = "Team Member" }, pli.Detail?.Group);
        Assert.Equal(new TakPrecisionLocation { Geopointsrc = "USER", Altsrc = "???" }, pli.Detail?.PrecisionLocation);
        Assert.Equal(new TakStatus { Battery = 53 }, pli.Detail?.Status);
        Assert.Equal(new TakTakv { Device = "SAMSUNG SM-T560NU", Platform = "ATAK-CIV", Os = "25", Version = "3.12.0-45691.45691-CIV" }, pli.Detail?.Takv);
        Assert.Equal(new TakTrack(), pli.Detail?.Track);
        Assert.Equal(1581185446207ul, pli.SendTime);
        Assert.Equal("h-e", pli.How);

        var marker = CotXml.Parse(Captures.Bytes("samples", "marker_a-u-A-M-F_air.xml")).ToTakCotEvent();
        Assert.Equal(new TakPrecisionLocation { Geopointsrc = "Calc", Altsrc = "DTED0" }, marker.Detail?.PrecisionLocation);
        Assert.Null(marker.Detail?.Status);
        Assert.StartsWith("<status readiness=\"true\"/><archive/><link ", marker.Detail?.XmlDetail, StringComparison.Ordinal);

        var pretty = CotXml.Parse(Captures.Bytes("samples", "marker_a-f-G_pretty-printed.xml")).ToTakCotEvent();
        Assert.Null(pretty.Detail?.PrecisionLocation);
        Assert.Contains("<precisionlocation altsrc=\"DTED0\"/>", pretty.Detail?.XmlDetail, StringComparison.Ordinal);
        Assert.Equal(new TakContact { Callsign = "ISR2 2" }, marker.Detail?.Contact);
    }

    [Fact]
    public void Repeated_elements_and_elements_with_content_stay_in_xml_detail()
    {
        var e = CotXml.Parse(Captures.Text("samples", "marker_a-h-G_hostile.xml"))
            with
        { DetailXml = "<contact callsign=\"A\"/><contact callsign=\"B\"/><__group name=\"Red\" role=\"HQ\"><x/></__group><track speed=\"fast\" course=\"1\"/>" };
        var proto = e.ToTakCotEvent();

        Assert.Null(proto.Detail?.Contact);
        Assert.Null(proto.Detail?.Group);
        Assert.Null(proto.Detail?.Track);
        Assert.Equal(e.DetailXml, proto.Detail?.XmlDetail);
        Assert.Equal(e, proto.ToCotEvent());
    }

    [Fact]
    public void Typed_field_is_ignored_when_xml_detail_carries_the_same_element()
    {
        var proto = new TakCotEvent
        {
            Uid = "u",
            Type = "a-f-G",
            SendTime = 1,
            StartTime = 1,
            StaleTime = 2,
            Detail = new TakDetail { XmlDetail = "<contact callsign=\"from xml\"/>", Contact = new TakContact { Callsign = "typed" }, Status = new TakStatus { Battery = 7 } },
        };

        var e = proto.ToCotEvent();
        Assert.Equal("from xml", e.Detail.Contact?.Callsign);
        Assert.Equal(["contact", "status"], e.Detail.ElementNames);
        Assert.Equal(7, e.Detail.Status?.Battery);
    }

    [Fact]
    public void Tak_control_round_trips()
    {
        var message = new TakMessage { TakControl = new TakControl { MinProtoVersion = 1, MaxProtoVersion = 1, ContactUid = "ANDROID-1" } };
        var bytes = TakProtobuf.Encode(message);

        Assert.Equal("0a0f080110011a09414e44524f49442d31", Convert.ToHexStringLower(bytes));
        Assert.Equal(message, TakProtobuf.Decode(bytes));
        Assert.Equal(new TakMessage(), TakProtobuf.Decode([]));
    }

    [Fact]
    public void Unknown_fields_are_skipped()
    {
        var payload = Hex("chat", "takmessage_v1_hex");
        byte[] unknown = [0x18, 0x96, 0x01, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2a, 0x02, 0x41, 0x42, 0x35, 1, 2, 3, 4];

        Assert.Equal(TakProtobuf.Decode(payload), TakProtobuf.Decode([.. unknown, .. payload, .. unknown]));
    }

    [Theory]
    [InlineData("1280", "protobuf TakMessage: truncated varint")]
    [InlineData("120501", "protobuf TakMessage: length 5 runs past the end of the message")]
    [InlineData("1001", "protobuf TakMessage: field 2 has wire type 0, expected 2")]
    [InlineData("00", "protobuf TakMessage: invalid field number 0")]
    [InlineData("4b", "protobuf TakMessage: field 9 has unsupported wire type 3")]
    [InlineData("ffffffffffffffffffff01", "protobuf TakMessage: varint longer than 10 bytes")]
    [InlineData("12030a01ff", "protobuf CotEvent: invalid UTF-8 in field 1")]
    [InlineData("12055109000000", "protobuf CotEvent: truncated fixed64")]
    [InlineData("12037a05ff", "protobuf CotEvent: length 5 runs past the end of the message")]
    [InlineData("12037a01ff", "protobuf Detail: truncated varint")]
    [InlineData("12077a0512031201ff", "protobuf Contact: invalid UTF-8 in field 2")]
    public void Malformed_protobuf_is_refused_with_a_reason(string hex, string reason)
    {
        Assert.Equal(reason, Assert.Throws<CotParseException>(() => TakProtobuf.Decode(Convert.FromHexString(hex))).Reason);
    }

    [Fact]
    public void A_detail_that_escaping_makes_longer_than_the_limit_is_kept_when_typed_fields_are_added()
    {
        // 17,000 '>' in the remarks are 68,000 characters written out: accepted from XML, so from protobuf with a contact too.
        var valid = TakProtobuf.Decode(Hex("spot", "takmessage_v1_hex")).CotEvent!;
        var remarks = new string('>', 17_000);

        var cot = (valid with { Detail = new TakDetail { XmlDetail = "<remarks>" + remarks + "</remarks>", Contact = new TakContact { Callsign = "ALPHA-1" } } }).ToCotEvent();

        Assert.Equal(remarks, cot.Detail.Remarks);
        Assert.True(cot.Detail.Contains("contact"));

        // Read again under the caller's limits, not the defaults: a detail nested deeper than 32 levels, allowed 40.
        var deep = string.Concat(Enumerable.Repeat("<n>", 34)) + string.Concat(Enumerable.Repeat("</n>", 34));
        var nested = (valid with { Detail = new TakDetail { XmlDetail = deep, Contact = new TakContact { Callsign = "ALPHA-1" } } }).ToCotEvent(new CotParseOptions { MaxDepth = 40 });
        Assert.True(nested.Detail.Contains("n") && nested.Detail.Contains("contact"));
    }

    [Fact]
    public void Invalid_events_are_refused_when_mapped_to_xml()
    {
        var valid = TakProtobuf.Decode(Hex("spot", "takmessage_v1_hex")).CotEvent!;

        Assert.Equal("missing field 'uid'", Assert.Throws<CotParseException>(() => (valid with { Uid = "" }).ToCotEvent()).Reason);
        Assert.Equal("missing field 'type'", Assert.Throws<CotParseException>(() => (valid with { Type = "" }).ToCotEvent()).Reason);
        Assert.Equal("latitude 91 out of range [-90,90]", Assert.Throws<CotParseException>(() => (valid with { Lat = 91 }).ToCotEvent()).Reason);
        Assert.Equal("longitude NaN is not a finite number", Assert.Throws<CotParseException>(() => (valid with { Lon = double.NaN }).ToCotEvent()).Reason);
        Assert.Equal("sendTime 18446744073709551615 is out of range", Assert.Throws<CotParseException>(() => (valid with { SendTime = ulong.MaxValue }).ToCotEvent()).Reason);
        Assert.Equal("DTD is not allowed", Assert.Throws<CotParseException>(() => (valid with { Detail = new TakDetail { XmlDetail = "<!DOCTYPE a [<!ENTITY b SYSTEM \"file:///etc/passwd\">]><a>&b;</a>" } }).ToCotEvent()).Reason);
        Assert.StartsWith("malformed detail XML", Assert.Throws<CotParseException>(() => (valid with { Detail = new TakDetail { XmlDetail = "<a>" } }).ToCotEvent()).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Oversize_frame_is_skipped_and_the_stream_stays_in_step()
    {
        var framer = new TakStreamFramer(100);
        var big = TakFraming.EncodeStreamFrame(new TakMessage { TakControl = new TakControl { ContactUid = new string('x', 500) } });
        var small = TakFraming.EncodeStreamFrame(new TakMessage { TakControl = new TakControl { MaxProtoVersion = 1 } });
        byte[] stream = [.. big, .. small];
        var errors = new List<string>();
        var messages = new List<TakMessage>();
        for (var at = 0; at < stream.Length; at += 7)
        {
            framer.Append(stream.AsSpan(at, Math.Min(7, stream.Length - at)));
            while (true)
            {
                try
                {
                    if (!framer.TryReadMessage(out var message))
                    {
                        break;
                    }

                    messages.Add(message);
                }
                catch (CotFramingException e)
                {
                    errors.Add(e.Reason);
                }
            }

            Assert.True(framer.BufferedBytes <= 110);
        }

        Assert.Equal(["TAK protocol frame of 506 bytes exceeds 100 bytes"], errors);
        Assert.Equal(1u, Assert.Single(messages).TakControl?.MaxProtoVersion);
    }

    [Fact]
    public void Broken_stream_header_faults_the_framer()
    {
        var framer = new TakStreamFramer();
        framer.Append("<event"u8);

        Assert.Equal("expected TAK protocol magic byte 0xbf, found 0x3c", Assert.Throws<CotFramingException>(() => framer.TryReadPayload(out _)).Reason);
        Assert.True(framer.IsFaulted);
        framer.Append(TakFraming.EncodeStreamFrame(new TakMessage()));
        Assert.Throws<CotFramingException>(() => framer.TryReadPayload(out _));

        var overlong = new TakStreamFramer();
        overlong.Append([0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        Assert.Equal("TAK protocol frame length varint is longer than 10 bytes", Assert.Throws<CotFramingException>(() => overlong.TryReadPayload(out _)).Reason);

        // A length no frame has (2^64 - 1) faults rather than skipping the rest of the stream unseen; so do bits past 64.
        var endless = new TakStreamFramer();
        endless.Append([0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        Assert.Equal("TAK protocol frame length 18446744073709551615 is not a frame's", Assert.Throws<CotFramingException>(() => endless.TryReadPayload(out _)).Reason);
        Assert.True(endless.IsFaulted);
        var wide = new TakStreamFramer();
        wide.Append([0xbf, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]);
        Assert.Equal("TAK protocol frame length varint exceeds 64 bits", Assert.Throws<CotFramingException>(() => wide.TryReadPayload(out _)).Reason);
    }

    [Fact]
    public void Mesh_datagrams_with_a_bad_header_are_refused()
    {
        Assert.Equal("mesh datagram does not start with the TAK protocol header 0xbf", Assert.Throws<CotFramingException>(() => TakFraming.DecodeMeshDatagram("<event/>"u8)).Reason);
        Assert.Equal("unsupported TAK protocol version 2", Assert.Throws<CotFramingException>(() => TakFraming.DecodeMeshDatagram([0xbf, 0x02, 0xbf])).Reason);
        Assert.Equal("mesh datagram header is not terminated by 0xbf", Assert.Throws<CotFramingException>(() => TakFraming.DecodeMeshDatagram([0xbf, 0x01, 0x12])).Reason);
        Assert.Equal(new TakMessage(), TakFraming.DecodeMeshDatagram([0xbf, 0x01, 0xbf]));
    }
}

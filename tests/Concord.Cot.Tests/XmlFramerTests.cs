using System.Text;

namespace Concord.Cot.Tests;

public sealed class XmlFramerTests
{
    private const string Tiny = "<event uid=\"u\" type=\"a-f-G\" time=\"2024-01-01T12:00:00Z\" start=\"2024-01-01T12:00:00Z\" stale=\"2024-01-01T12:05:00Z\"><point lat=\"1\" lon=\"2\"/><detail/></event>";

    private static List<string> FrameAll(string stream, CotXmlFramer? framer = null)
    {
        framer ??= new CotXmlFramer();
        framer.Append(Encoding.UTF8.GetBytes(stream));
        var documents = new List<string>();
        while (framer.TryReadEvent(out var document))
        {
            documents.Add(Encoding.UTF8.GetString(document.Span));
        }

        return documents;
    }

    [Fact]
    public void Tls_capture_in_random_chunks_yields_three_positions_and_two_pings()
    {
        var capture = Captures.Bytes("node-tak-capture", "node-tak-8.3.0_tls_client_to_server.bin");
        for (var seed = 0; seed < 200; seed++)
        {
            var random = new Random(seed);
            var documents = Captures.FrameInChunks(new CotXmlFramer(), capture, random, random.Next(1, 300));
            var events = documents.Select(d => CotXml.Parse(d)).ToList();

            Assert.Equal(["a-f-G-U-C", "a-f-G-U-C", "a-f-G-U-C", "t-x-c-t", "t-x-c-t"], events.Select(e => e.Type));
            Assert.Equal([4.3947, 4.399, 4.4031], events.Take(3).Select(e => e.Point.Lat));
            Assert.All(events.Take(3), e => Assert.Equal("DEMO-1", e.Detail.Contact?.Callsign));
            Assert.True(CotControl.IsPing(events[3]));
        }
    }

    [Fact]
    public void Plain_tcp_capture_in_random_chunks_yields_three_positions()
    {
        var capture = Captures.Bytes("node-tak-capture", "node-cot_plain_tcp_client_to_server.bin");
        for (var seed = 0; seed < 200; seed++)
        {
            var random = new Random(seed);
            var framer = new CotXmlFramer();
            var events = Captures.FrameInChunks(framer, capture, random, random.Next(1, 64)).Select(d => CotXml.Parse(d)).ToList();

            Assert.Equal(3, events.Count);
            Assert.All(events, e => Assert.Equal("DEMO-UNIT-1", e.Uid));
            Assert.Equal(
                [new DateTimeOffset(2024, 1, 1, 12, 0, 0, TimeSpan.Zero), new DateTimeOffset(2024, 1, 1, 12, 0, 10, TimeSpan.Zero), new DateTimeOffset(2024, 1, 1, 12, 0, 20, TimeSpan.Zero)],
                events.Select(e => e.Time));
            Assert.Equal(0, framer.BufferedBytes);
        }
    }

    [Fact]
    public void Server_reply_with_xml_declarations_yields_the_pong_and_the_chat()
    {
        var events = FrameAll(Captures.Text("node-tak-capture", "server_to_client_reply.txt")).Select(d => CotXml.Parse(d)).ToList();

        Assert.Equal(["t-x-c-t-r", "b-t-f"], events.Select(e => e.Type));
        Assert.Equal(CotControl.PongUid, events[0].Uid);
    }

    [Fact]
    public void Every_real_capture_framed_back_to_back_in_random_chunks_comes_out_whole()
    {
        var archive = Captures.FreeTakServerArchive;
        var stream = archive.SelectMany(c => c.Bytes.Concat("\r\n"u8.ToArray())).ToArray();
        var documents = Captures.FrameInChunks(new CotXmlFramer(), stream, new Random(42), 4096);

        Assert.Equal(archive.Count, documents.Count);
        for (var i = 0; i < documents.Count; i++)
        {
            Assert.Equal(CotXml.Parse(archive[i].Bytes), CotXml.Parse(documents[i]));
        }
    }

    [Fact]
    public void Multi_byte_utf8_split_across_chunks_is_reassembled()
    {
        var stream = Encoding.UTF8.GetBytes("<?xml version=\"1.0\"?>\n" + Tiny.Replace("<detail/>", "<detail><contact callsign=\"Équipe 🚁 Бангі\"/></detail>", StringComparison.Ordinal));
        var framer = new CotXmlFramer();
        var documents = new List<byte[]>();
        foreach (var b in stream)
        {
            framer.Append([b]);
            while (framer.TryReadEvent(out var document))
            {
                documents.Add(document.ToArray());
            }
        }

        Assert.Equal("Équipe 🚁 Бангі", CotXml.Parse(Assert.Single(documents)).Detail.Contact?.Callsign);
    }

    [Fact]
    public void End_tag_inside_attributes_comments_cdata_and_instructions_does_not_end_the_event()
    {
        // '<' cannot appear in an attribute value, but '>' and "/>" can, and fool naive scanners.
        var tricky = Tiny.Replace("uid=\"u\"", "uid=\"u/>\" how='a>b'", StringComparison.Ordinal).Replace(
            "<detail/>",
            "<detail><remarks source='&lt;/event>' to=\"/>\">x<!-- </event> --><![CDATA[</event>]]><?pi </event>?></remarks><event uid='inner'/><event><x/></event></detail>",
            StringComparison.Ordinal);
        var documents = FrameAll("<!-- leading comment --> " + tricky + "\n" + Tiny);

        Assert.Equal([tricky, Tiny], documents);
        // Framed whole, it is then refused: TAK clients cut a stream at each "</event>", wherever it stands.
        Assert.StartsWith("an 'event' element inside a detail", Assert.Throws<CotParseException>(() => CotXml.Parse(documents[0])).Reason, StringComparison.Ordinal);
        Assert.StartsWith("'</event>' inside the event", Assert.Throws<CotParseException>(() => CotXml.Parse(documents[0].Replace("<event uid='inner'/><event><x/></event>", "", StringComparison.Ordinal))).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Long_names_and_names_that_begin_with_event_arriving_a_byte_at_a_time_are_not_events()
    {
        // A start or end tag's name longer than "event" is known not to be it before it ends: the framer scans the rest of
        // the tag from there rather than from its '<' again at every read; a name like "eventually" must not nest.
        var longName = "x" + new string('a', 5_000);
        var stream = Tiny.Replace("<detail/>", $"<detail><eventually a='1>'>x</eventually><{longName} b=\"2\"/><eventful/><{longName}>y</{longName}\n></detail>", StringComparison.Ordinal) + Tiny;
        var framer = new CotXmlFramer();
        var documents = new List<string>();
        foreach (var b in Encoding.UTF8.GetBytes(stream))
        {
            framer.Append([b]);
            while (framer.TryReadEvent(out var document))
            {
                documents.Add(Encoding.UTF8.GetString(document.Span));
            }
        }

        Assert.Equal([stream[..^Tiny.Length], Tiny], documents);
    }

    [Fact]
    public void Self_closing_event_is_a_whole_document()
    {
        Assert.Equal(["<event uid='x' type='t'/>", Tiny], FrameAll("<event uid='x' type='t'/>" + Tiny));
    }

    [Fact]
    public void Incomplete_event_waits_for_more_bytes()
    {
        var framer = new CotXmlFramer();
        framer.Append(Encoding.UTF8.GetBytes(Tiny[..^3]));

        Assert.False(framer.TryReadEvent(out _));
        Assert.Equal(Tiny.Length - 3, framer.BufferedBytes);
        framer.Append("nt>"u8);
        Assert.True(framer.TryReadEvent(out var document));
        Assert.Equal(Tiny, Encoding.UTF8.GetString(document.Span));
    }

    [Fact]
    public void Oversize_event_is_refused_and_the_framer_resyncs_on_the_next_event()
    {
        var framer = new CotXmlFramer(1024);
        var huge = Tiny.Replace("<detail/>", "<detail><remarks>" + new string('x', 5000) + "</remarks></detail>", StringComparison.Ordinal);
        var bytes = Encoding.UTF8.GetBytes(huge + Tiny);
        var documents = new List<string>();
        var errors = new List<string>();
        for (var at = 0; at < bytes.Length; at += 100)
        {
            framer.Append(bytes.AsSpan(at, Math.Min(100, bytes.Length - at)));
            while (true)
            {
                try
                {
                    if (!framer.TryReadEvent(out var document))
                    {
                        break;
                    }

                    documents.Add(Encoding.UTF8.GetString(document.Span));
                }
                catch (CotFramingException e)
                {
                    errors.Add(e.Reason);
                }
            }

            Assert.True(framer.BufferedBytes <= 1024 + 100);
        }

        Assert.Equal(["event exceeds 1024 bytes"], errors);
        Assert.Equal([Tiny], documents);
    }

    [Fact]
    public void Complete_oversize_event_in_one_chunk_is_refused_and_skipped_exactly()
    {
        var framer = new CotXmlFramer(256);
        var huge = Tiny.Replace("<detail/>", "<detail><remarks>" + new string('x', 500) + "</remarks></detail>", StringComparison.Ordinal);
        framer.Append(Encoding.UTF8.GetBytes(huge + Tiny));

        Assert.Equal("event exceeds 256 bytes", Assert.Throws<CotFramingException>(() => framer.TryReadEvent(out _)).Reason);
        Assert.True(framer.TryReadEvent(out var document));
        Assert.Equal(Tiny, Encoding.UTF8.GetString(document.Span));
    }

    [Theory]
    [InlineData("hello world", "unexpected byte 0x68 between events ('hello world<?xml')")]
    [InlineData("<message/>", "expected <event>, found '<message/><?xml '")]
    [InlineData("<!DOCTYPE event [<!ENTITY a \"b\">]>", "DTD is not allowed")]
    [InlineData("\u00bf", "unexpected byte 0xc2 between events ('..<?xml version=')")]
    public void Garbage_between_events_is_refused_and_the_framer_resyncs(string garbage, string reason)
    {
        var framer = new CotXmlFramer();
        framer.Append(Encoding.UTF8.GetBytes(Tiny + garbage + "<?xml version='1.0'?>" + Tiny));

        Assert.True(framer.TryReadEvent(out _));
        Assert.Equal(reason, Assert.Throws<CotFramingException>(() => framer.TryReadEvent(out _)).Reason);
        Assert.True(framer.TryReadEvent(out var document));
        Assert.Equal(Tiny, Encoding.UTF8.GetString(document.Span));
        Assert.False(framer.TryReadEvent(out _));
    }

    [Fact]
    public void Tak_protocol_frame_on_an_xml_stream_is_named()
    {
        var framer = new CotXmlFramer();
        framer.Append([0xbf, 0x03, 0x12, 0x01, 0x00]);

        Assert.Equal("TAK protocol v1 frame (0xbf) on an XML stream", Assert.Throws<CotFramingException>(() => framer.TryReadEvent(out _)).Reason);
        Assert.False(framer.TryReadEvent(out _));
    }

    [Fact]
    public void Byte_order_mark_and_whitespace_between_events_are_skipped()
    {
        Assert.Equal([Tiny, Tiny], FrameAll("\uFEFF" + Tiny + " \r\n\t\n" + Tiny + "\n\n"));
    }

    [Fact]
    public void Bytes_after_negotiation_are_handed_over_for_the_protocol_switch()
    {
        var framer = new CotXmlFramer();
        var request = CotXml.SerializeToUtf8Bytes(CotControl.CreateVersionRequest("proto-1", DateTimeOffset.UnixEpoch, 1));
        var frame = TakFraming.EncodeStreamFrame(new TakMessage { TakControl = new TakControl { MinProtoVersion = 1, MaxProtoVersion = 1 } });
        framer.Append(request);
        framer.Append(frame);

        Assert.True(framer.TryReadEvent(out var document));
        Assert.True(CotControl.TryGetRequestedVersion(CotXml.Parse(document), out var version));
        Assert.Equal(1, version);

        var protobuf = new TakStreamFramer();
        protobuf.Append(framer.TakeBufferedBytes());
        Assert.True(protobuf.TryReadMessage(out var message));
        Assert.Equal(1u, message.TakControl?.MaxProtoVersion);
        Assert.Equal(0, framer.BufferedBytes);
    }
}

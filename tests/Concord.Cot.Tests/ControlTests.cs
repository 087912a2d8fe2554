namespace Concord.Cot.Tests;

public sealed class ControlTests
{
    private static DateTimeOffset Now { get; } = new(2026, 11, 22, 0, 57, 20, TimeSpan.Zero);

    [Fact]
    public void Server_announces_its_protocol_versions()
    {
        var announcement = CotControl.CreateVersionSupport("proto-7", Now, 1);
        var xml = CotXml.Serialize(announcement);

        Assert.Contains("type=\"t-x-takp-v\"", xml, StringComparison.Ordinal);
        Assert.Contains("<detail><TakControl><TakProtocolSupport version=\"1\"/></TakControl></detail>", xml, StringComparison.Ordinal);
        Assert.True(CotControl.TryGetSupportedVersions(CotXml.Parse(xml), out var versions));
        Assert.Equal([1], versions);
        Assert.True(CotControl.TryGetSupportedVersions(CotControl.CreateVersionSupport("p", Now, 1, 2), out versions));
        Assert.Equal([1, 2], versions);
    }

    [Fact]
    public void Client_request_and_server_response_are_built_and_recognised()
    {
        var request = CotXml.Parse(CotXml.Serialize(CotControl.CreateVersionRequest("proto-7", Now, 1)));
        var accepted = CotXml.Parse(CotXml.Serialize(CotControl.CreateVersionResponse("proto-7", Now, accepted: true)));
        var refused = CotControl.CreateVersionResponse("proto-7", Now, accepted: false);

        Assert.Equal("t-x-takp-q", request.Type);
        Assert.Equal("<TakControl><TakRequest version=\"1\"/></TakControl>", request.DetailXml);
        Assert.True(CotControl.TryGetRequestedVersion(request, out var version));
        Assert.Equal(1, version);
        Assert.Equal("<TakControl><TakResponse status=\"true\"/></TakControl>", accepted.DetailXml);
        Assert.True(CotControl.TryGetResponse(accepted, out var isAccepted));
        Assert.True(isAccepted);
        Assert.True(CotControl.TryGetResponse(refused, out isAccepted));
        Assert.False(isAccepted);
        Assert.Equal("m-g", request.How);
        Assert.Equal(Now.AddMinutes(1), request.Stale);
    }

    [Fact]
    public void Negotiation_as_written_in_the_tak_protocol_readme_is_recognised()
    {
        var offer = CotXml.Parse("""
            <event version='2.0' uid='protouid' type='t-x-takp-v' time='2024-01-01T00:00:00Z' start='2024-01-01T00:00:00Z' stale='2024-01-01T00:01:00Z' how='m-g'>
              <point lat='0.0' lon='0.0' hae='0.0' ce='999999' le='999999'/>
              <detail>
                <TakControl>
                  <TakProtocolSupport version="1"/>
                  <TakServerVersionInfo serverVersion="4.8-RELEASE"/>
                </TakControl>
              </detail>
            </event>
            """);

        Assert.True(CotControl.TryGetSupportedVersions(offer, out var versions));
        Assert.Equal([1], versions);
        Assert.False(CotControl.TryGetRequestedVersion(offer, out _));
        Assert.False(CotControl.TryGetResponse(offer, out _));
    }

    [Fact]
    public void A_version_request_whose_detail_grows_past_the_limit_when_written_is_no_request_rather_than_an_error()
    {
        // A namespace declared once on the detail is declared again on each child that uses it (each child stands on
        // its own): 40 children under a 2,000-character namespace are 80,000 characters, past the reader's limit.
        var request = CotXml.Parse(
            "<event version='2.0' uid='big' type='t-x-takp-q' time='2024-01-01T00:00:00Z' start='2024-01-01T00:00:00Z' stale='2024-01-01T00:01:00Z' how='m-g'>" +
            "<point lat='0' lon='0' hae='0' ce='0' le='0'/><detail xmlns:a='urn:" + new string('n', 2_000) + "'>" + string.Concat(Enumerable.Repeat("<a:x/>", 40)) +
            "<TakControl><TakRequest version='1'/></TakControl></detail></event>");
        Assert.True(request.Detail.Xml.Length > CotParseOptions.DefaultMaxDocumentBytes);

        Assert.False(CotControl.TryGetRequestedVersion(request, out _));
    }

    [Fact]
    public void A_version_request_with_a_text_full_of_greater_than_signs_is_read_as_one()
    {
        // 20,000 '>' are legal in a text; written back as "&gt;" they were 80,000 characters, and the request was lost.
        var request = CotXml.Parse(
            "<event version='2.0' uid='big' type='t-x-takp-q' time='2024-01-01T00:00:00Z' start='2024-01-01T00:00:00Z' stale='2024-01-01T00:01:00Z' how='m-g'>" +
            "<point lat='0' lon='0' hae='0' ce='0' le='0'/><detail><remarks>" + new string('>', 20_000) + "</remarks><TakControl><TakRequest version='1'/></TakControl></detail></event>");

        Assert.True(CotControl.TryGetRequestedVersion(request, out var version));
        Assert.Equal(1, version);
    }

    [Fact]
    public void Ordinary_events_are_not_mistaken_for_control_messages()
    {
        var chat = CotXml.Parse(Captures.Bytes("samples", "chat_b-t-f_geochat.xml"));
        var spoofed = chat with { Type = CotControl.VersionRequestType };

        Assert.False(CotControl.TryGetSupportedVersions(chat, out _));
        Assert.False(CotControl.TryGetRequestedVersion(spoofed, out _));
        Assert.False(CotControl.IsPing(chat));
        Assert.False(CotControl.IsPong(chat));
    }

    [Fact]
    public void Ping_from_the_tls_capture_is_answered_with_a_takpong()
    {
        var framer = new CotXmlFramer();
        framer.Append(Captures.Bytes("node-tak-capture", "node-tak-8.3.0_tls_client_to_server.bin"));
        var pings = new List<CotEvent>();
        while (framer.TryReadEvent(out var document))
        {
            var e = CotXml.Parse(document);
            if (CotControl.IsPing(e))
            {
                pings.Add(e);
            }
        }

        Assert.Equal(2, pings.Count);
        var pong = CotControl.CreatePong(pings[0].Time);
        var xml = CotXml.Serialize(pong);
        Assert.True(CotControl.IsPong(CotXml.Parse(xml)));
        Assert.Equal(
            "<event version=\"2.0\" uid=\"takPong\" type=\"t-x-c-t-r\" how=\"h-g-i-g-o\" time=\"2026-11-22T00:57:20.229Z\" start=\"2026-11-22T00:57:20.229Z\" stale=\"2026-11-22T00:57:40.229Z\">"
            + "<point lat=\"0\" lon=\"0\" hae=\"0\" ce=\"9999999\" le=\"9999999\"/><detail/></event>",
            xml);

        var reply = Captures.Text("node-tak-capture", "server_to_client_reply.txt");
        var reference = CotXml.Parse(reply[..reply.IndexOf("<?xml", 10, StringComparison.Ordinal)]);
        Assert.Equal(reference with { Time = pong.Time, Start = pong.Start, Stale = pong.Stale }, pong);
    }
}

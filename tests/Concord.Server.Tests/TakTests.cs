using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Concord.Cot;
using Concord.Server.Reports;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

public abstract class TakTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    private static string Now(double offsetSeconds = 0) =>
        DateTimeOffset.UtcNow.AddSeconds(offsetSeconds).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>A position report as ATAK sends it (single quotes, takv, contact endpoint).</summary>
    private static string Pli(string uid, string callsign, double lat, double lon, string? time = null) =>
        $"<event version='2.0' uid='{uid}' type='a-f-G-U-C' time='{time ?? Now()}' start='{time ?? Now()}' stale='{Now(120)}' how='h-e'>" +
        $"<point lat='{lat.ToString(CultureInfo.InvariantCulture)}' lon='{lon.ToString(CultureInfo.InvariantCulture)}' hae='9999999.0' ce='9999999.0' le='9999999.0'/>" +
        $"<detail><takv os='29' version='4.8.1' device='SAMSUNG SM-T560NU' platform='ATAK-CIV'/><contact endpoint='*:-1:stcp' callsign='{callsign}'/>" +
        "<__group role='Team Member' name='Cyan'/><track course='90.0' speed='2.5'/></detail></event>";

    private async Task<string> ForceColleagueAsync()
    {
        var name = "f" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await server.ClientFor("jocadmin").PostJson("/api/organizations/FORCE/members", new { userName = name, password = "a-long-password", roles = new[] { "reporter" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return name;
    }

    [Fact]
    public async Task A_position_reaches_devices_whose_members_may_see_it_and_no_other()
    {
        var colleague = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await using var outsider = await server.ConnectTakAsync(await server.IssueDeviceAsync("unpol"));
        await Task.Delay(300);
        var uid = "ANDROID-" + Guid.NewGuid().ToString("N")[..12];

        await sender.SendAsync(Pli(uid, "VIPER 1-1", 5.7612, 20.6724));
        var received = await receiver.WaitForAsync(e => e.Uid == uid);
        var leaked = await outsider.WaitForAsync(e => e.Uid == uid, TimeSpan.FromSeconds(1.5));

        Assert.NotNull(received);
        Assert.Equal("VIPER 1-1", received.Detail.Contact?.Callsign);
        Assert.Equal(5.7612, received.Point.Lat);
        Assert.Equal("UNCLASSIFIED//REL TO ORG:FORCE", received.Access);
        Assert.Equal("UNCLASSIFIED//REL TO ORG:FORCE", received.Detail.Marking);
        Assert.Contains(received.Detail.FlowTags.Keys, k => k.StartsWith("concord-", StringComparison.Ordinal));
        Assert.Null(leaked);

        // The same event again (a replay) is not routed a second time; a newer one is.
        await sender.SendAsync(Pli(uid, "VIPER 1-1", 5.7612, 20.6724, received.Time.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)));
        Assert.Null(await receiver.WaitForAsync(e => e.Uid == uid, TimeSpan.FromSeconds(1)));
        await sender.SendAsync(Pli(uid, "VIPER 1-1", 5.80, 20.70, Now(1)));
        Assert.Equal(5.80, (await receiver.WaitForAsync(e => e.Uid == uid))?.Point.Lat);

        // The track is on the common picture for those who may see it.
        await Task.Delay(TrackStore.FlushInterval * 2);
        var (_, mine) = await server.ClientFor("force").GetJson("/api/tracks/geojson");
        var (_, theirs) = await server.ClientFor("unpol").GetJson("/api/tracks/geojson");
        var feature = mine.GetProperty("features").EnumerateArray().Single(f => f.GetProperty("id").GetString() == uid);
        Assert.Equal(5.80, feature.GetProperty("geometry").GetProperty("coordinates")[1].GetDouble());
        Assert.Equal(1, feature.GetProperty("properties").GetProperty("history").GetArrayLength());
        Assert.DoesNotContain(theirs.GetProperty("features").EnumerateArray(), f => f.GetProperty("id").GetString() == uid);
    }

    [Fact]
    public async Task A_ping_is_answered_with_a_pong_and_the_protocol_is_announced()
    {
        await using var device = await server.ConnectTakAsync(await server.IssueDeviceAsync("rwabatt"));

        var announced = await device.WaitForAsync(e => e.Type == CotControl.VersionSupportType);
        await device.SendAsync($"<event version='2.0' uid='ANDROID-x-ping' type='t-x-c-t' time='{Now()}' start='{Now()}' stale='{Now(10)}' how='h-g-i-g-o'><point lat='0' lon='0' hae='0' ce='9999999' le='9999999'/><detail/></event>");

        Assert.NotNull(announced);
        Assert.True(CotControl.TryGetSupportedVersions(announced, out var versions) && versions.Contains(1));
        Assert.NotNull(await device.WaitForAsync(e => e.Type == CotControl.PongType));
    }

    [Fact]
    public async Task A_hostile_marker_becomes_a_report_and_reaches_other_devices()
    {
        var colleague = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await Task.Delay(300);
        var uid = Guid.NewGuid().ToString();

        await sender.SendAsync($"<event version='2.0' uid='{uid}' type='a-h-G' time='{Now()}' start='{Now()}' stale='{Now(3600)}' how='h-g-i-g-o'>" +
            "<point lat='6.01' lon='20.51' hae='9999999.0' ce='9999999.0' le='9999999.0'/><detail><contact callsign='Checkpoint &amp; roadblock'/>" +
            "<remarks>Armed men at an illegal checkpoint, about 12</remarks><link uid='ANDROID-x' type='a-f-G-U-C' relation='p-p'/></detail></event>");

        var forwarded = await receiver.WaitForAsync(e => e.Uid == uid);
        Assert.NotNull(forwarded);
        Report? report = null;
        for (var i = 0; i < 50 && report is null; i++)
        {
            await Task.Delay(100);
            report = await server.WithDbAsync(db => db.Reports.AsNoTracking().SingleOrDefaultAsync(r => r.ExternalRef == "tak:" + uid));
        }

        Assert.NotNull(report);
        Assert.Equal("field.hostile", report.Category);
        Assert.Equal("Checkpoint & roadblock — Armed men at an illegal checkpoint, about 12", report.Narrative);
        Assert.Equal(6.01, report.Latitude);
        Assert.Equal("|org:FORCE|", report.ReleasableTo);
    }

    [Fact]
    public async Task GeoChat_is_stored_and_routed()
    {
        var colleague = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await Task.Delay(300);
        var uid = "GeoChat.ANDROID-x.All Chat Rooms." + Guid.NewGuid();
        var text = "Convoy delayed at PK12 " + Guid.NewGuid().ToString("N")[..6];

        await sender.SendAsync($"<event version='2.0' uid='{uid}' type='b-t-f' time='{Now()}' start='{Now()}' stale='{Now(86400)}' how='h-g-i-g-o'>" +
            "<point lat='4.36' lon='18.58' hae='9999999.0' ce='9999999.0' le='9999999.0'/><detail>" +
            "<__chat parent='RootContactGroup' groupOwner='false' chatroom='All Chat Rooms' id='All Chat Rooms' senderCallsign='VIPER 1-1'><chatgrp uid0='ANDROID-x' id='All Chat Rooms'/></__chat>" +
            $"<remarks source='BAO.F.ATAK.ANDROID-x' to='All Chat Rooms' time='{Now()}'>{text}</remarks></detail></event>");

        Assert.NotNull(await receiver.WaitForAsync(e => e.Uid == uid));
        ChatMessage? stored = null;
        for (var i = 0; i < 50 && stored is null; i++)
        {
            await Task.Delay(100);
            stored = await server.WithDbAsync(db => db.Messages.AsNoTracking().SingleOrDefaultAsync(m => m.Text == text));
        }

        Assert.NotNull(stored);
        Assert.Equal("VIPER 1-1", stored.Sender);
        Assert.Equal("All Chat Rooms", stored.Chatroom);
    }

    [Fact]
    public async Task Incidents_go_out_on_connect_and_live_only_to_devices_that_may_see_them()
    {
        var (_, before) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(narrative: "Incident known before the device connects", marking: Api.Marking("UNCLASSIFIED", ["kind:military"])));
        await using var military = await server.ConnectTakAsync(await server.IssueDeviceAsync("rwabatt"));
        await using var police = await server.ConnectTakAsync(await server.IssueDeviceAsync("unpol2"));

        var initial = await military.WaitForAsync(e => e.Uid == CotMapping.IncidentUidPrefix + before.GetProperty("incidentId").GetGuid());
        var (_, live) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(narrative: "Incident created while the device is connected", marking: Api.Marking("UNCLASSIFIED", ["kind:military"])));
        var liveUid = CotMapping.IncidentUidPrefix + live.GetProperty("incidentId").GetGuid();
        var update = await military.WaitForAsync(e => e.Uid == liveUid);
        var leaked = await police.WaitForAsync(e => e.Uid.StartsWith(CotMapping.IncidentUidPrefix, StringComparison.Ordinal) && (e.Uid == liveUid || e.Uid.EndsWith(before.GetProperty("incidentId").GetGuid().ToString(), StringComparison.Ordinal)), TimeSpan.FromSeconds(2));

        Assert.NotNull(initial);
        Assert.Equal("a-h-G", initial.Type);
        Assert.StartsWith("Incident known before", initial.Detail.Remarks);
        Assert.NotNull(update);
        Assert.Equal("UNCLASSIFIED//REL TO KIND:MILITARY, ORG:FORCE", update.Access);
        Assert.Null(leaked);
    }

    [Fact]
    public async Task A_device_may_switch_to_TAK_protocol_version_1()
    {
        var colleague = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await Task.Delay(300);
        var uid = "ANDROID-pb-" + Guid.NewGuid().ToString("N")[..8];

        sender.UseProtobuf();
        await sender.SendAsync(CotXml.Serialize(CotControl.CreateVersionRequest("ANDROID-pb", DateTimeOffset.UtcNow, 1)));
        var response = await sender.WaitForAsync(e => e.Type == CotControl.VersionResponseType);
        await sender.SendProtobufAsync(CotXml.Parse(Pli(uid, "PROTO 1", 4.5, 18.5)));

        Assert.NotNull(response);
        Assert.True(CotControl.TryGetResponse(response, out var accepted) && accepted);
        var received = await receiver.WaitForAsync(e => e.Uid == uid);
        Assert.NotNull(received);
        Assert.Equal("PROTO 1", received.Detail.Contact?.Callsign);
    }

    [Fact]
    public async Task Certificates_not_issued_to_a_member_are_refused()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=intruder", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var selfSigned = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var strangerRefused = false;
        try
        {
            await using var stranger = await server.ConnectTakAsync(selfSigned);
            strangerRefused = await stranger.WaitForAsync(_ => true, TimeSpan.FromSeconds(2)) is null;
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            strangerRefused = true;
        }

        // Signed by the deployment's CA but never recorded against a member (or revoked): refused too.
        using var unrecorded = server.Services.GetRequiredService<TakCertificates>().IssueClient("nobody", TimeSpan.FromDays(1));
        await using var orphan = await server.ConnectTakAsync(unrecorded);

        Assert.True(strangerRefused);
        Assert.Null(await orphan.WaitForAsync(_ => true, TimeSpan.FromSeconds(2)));
    }

    [Fact]
    public async Task A_reconnecting_device_replaces_its_older_session()
    {
        var certificate = await server.IssueDeviceAsync("ocha");
        await using var first = await server.ConnectTakAsync(certificate);
        Assert.NotNull(await first.WaitForAsync(e => e.Type == CotControl.VersionSupportType));
        await using var second = await server.ConnectTakAsync(certificate);
        Assert.NotNull(await second.WaitForAsync(e => e.Type == CotControl.VersionSupportType));

        for (var i = 0; i < 50 && !first.Closed; i++)
        {
            await Task.Delay(100);
        }

        Assert.True(first.Closed);
        Assert.False(second.Closed);
    }

    [Fact]
    public async Task A_device_that_stops_reading_does_not_hold_up_the_others()
    {
        var colleague = await ForceColleagueAsync();
        var sleepy = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await using var stalled = await server.ConnectTakAsync(await server.IssueDeviceAsync(sleepy), read: false);
        await Task.Delay(300);
        var uid = "ANDROID-flood-" + Guid.NewGuid().ToString("N")[..8];
        var padding = new string('x', 1000);
        var now = DateTimeOffset.UtcNow;
        var start = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), TimeSpan.Zero);

        // About 20 MB of positions: far more than the stalled device's socket buffers and queue hold.
        for (var batch = 0; batch < 100; batch++)
        {
            var events = new System.Text.StringBuilder();
            for (var i = 0; i < 200; i++)
            {
                var time = start.AddMilliseconds((batch * 200) + i).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                events.Append(Pli(uid, "FLOOD", 5.0, 20.0, time).Replace("<track ", $"<remarks>{padding}</remarks><track ", StringComparison.Ordinal)).Append('\n');
            }

            await sender.SendAsync(events.ToString());
        }

        var lastTime = start.AddMilliseconds(19_999);
        var seen = 0;
        DateTimeOffset latest = default;
        var last = await receiver.WaitForAsync(e =>
        {
            if (e.Uid == uid)
            {
                seen++;
                latest = e.Time;
            }

            return e.Uid == uid && e.Time == lastTime;
        }, TimeSpan.FromSeconds(20));
        Assert.True(last is not null, $"received {seen} positions, the latest of {latest:O}; expected {lastTime:O}");
        var sessions = server.Services.GetRequiredService<TakRouter>().Sessions;

        Assert.NotNull(last);
        Assert.Contains(sessions, s => s.Viewer.UserName == sleepy && s.Dropped > 0);
    }

    [Fact]
    public async Task A_device_that_cannot_take_its_alerts_is_cut_and_the_others_go_on()
    {
        var colleague = await ForceColleagueAsync();
        var sleepy = await ForceColleagueAsync();
        await using var sender = await server.ConnectTakAsync(await server.IssueDeviceAsync("force"));
        await using var receiver = await server.ConnectTakAsync(await server.IssueDeviceAsync(colleague));
        await using var stalled = await server.ConnectTakAsync(await server.IssueDeviceAsync(sleepy), read: false);
        await Task.Delay(300);
        var router = server.Services.GetRequiredService<TakRouter>();
        Assert.Contains(router.Sessions, s => s.Viewer.UserName == sleepy);
        var padding = new string('r', 50_000);
        var lastUid = "";

        // Spot markers are never dropped: about 15 MB of them is more than the stalled device's socket and queue hold.
        for (var i = 0; i < 300; i++)
        {
            lastUid = Guid.NewGuid().ToString();
            await sender.SendAsync($"<event version='2.0' uid='{lastUid}' type='b-m-p-s-m' time='{Now()}' start='{Now()}' stale='{Now(3600)}' how='h-g-i-g-o'>" +
                $"<point lat='5.1' lon='20.1' hae='9999999.0' ce='9999999.0' le='9999999.0'/><detail><contact callsign='spot {i}'/><remarks>{padding}</remarks></detail></event>");
        }

        var uid = lastUid;
        Assert.NotNull(await receiver.WaitForAsync(e => e.Uid == uid, TimeSpan.FromSeconds(30)));
        for (var i = 0; i < 100 && router.Sessions.Any(s => s.Viewer.UserName == sleepy); i++)
        {
            await Task.Delay(100);
        }

        Assert.DoesNotContain(router.Sessions, s => s.Viewer.UserName == sleepy);
    }

    [Fact]
    public async Task Plain_TCP_acts_as_the_named_low_privilege_member()
    {
        await using var plain = await server.ConnectTakAsync(null);
        var (_, secret) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(narrative: "Only for the Force", marking: Api.Marking("UNCLASSIFIED", ["org:FORCE"])));

        Assert.NotNull(await plain.WaitForAsync(e => e.Type == CotControl.VersionSupportType));
        Assert.Null(await plain.WaitForAsync(e => e.Uid == CotMapping.IncidentUidPrefix + secret.GetProperty("incidentId").GetGuid(), TimeSpan.FromSeconds(2)));
    }
}

public sealed class TakTests_Sqlite(SqliteServer server) : TakTests<SqliteServer>(server);

public sealed class TakTests_Postgres(PostgresServer server) : TakTests<PostgresServer>(server);

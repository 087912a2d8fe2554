using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tests;

/// <summary>
/// TAK devices follow their members' access as soon as the change feed shows it changed, not only at the periodic check.
/// On these servers the clock stands still, so the periodic check (on that clock) never runs.
/// </summary>
public abstract class TakAccessTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer, IClockServer
{
    [Fact]
    public async Task A_device_is_cut_as_soon_as_the_change_feed_shows_its_member_disabled()
    {
        var name = "f" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("jocadmin");
        var (created, body) = await admin.PostJson("/api/organizations/FORCE/members", new { userName = name, password = "a-long-password", roles = new[] { "reporter" } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        var certificate = await server.IssueDeviceAsync(name);
        await using var device = await server.ConnectTakAsync(certificate);
        await Task.Delay(500);
        Assert.False(device.Closed);

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        for (var i = 0; i < 50 && !device.Closed; i++)
        {
            await Task.Delay(100);
        }

        Assert.True(device.Closed, "the disabled member's device is still connected");

        // The disable revoked the device's certificate (the audit names it): enabled again, the member does not get the
        // device back (one taken from them, say); a new certificate is issued for a device they hold.
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false })).StatusCode);
        var thumbprint = Tak.TakCertificates.Thumbprint(certificate);
        Assert.NotNull(await server.WithDbAsync(db => db.DeviceCertificates.Where(c => c.Thumbprint == thumbprint).Select(c => c.RevokedAt).SingleAsync()));
        Assert.Contains(await server.WithDbAsync(db => db.Audit.Where(e => e.Entity == "member" && e.Detail.Contains("\"disabled\":true")).Select(e => e.Detail).ToListAsync()),
            detail => detail.Contains(thumbprint, StringComparison.Ordinal));
        await using var again = await server.ConnectTakAsync(certificate, attached: false);
        Assert.Null(await again.WaitForAsync(e => e.Type == Cot.CotControl.VersionSupportType, TimeSpan.FromSeconds(2)));
        await using var renewed = await server.ConnectTakAsync(await server.IssueDeviceAsync(name));
        Assert.NotNull(await renewed.WaitForAsync(e => e.Type == Cot.CotControl.VersionSupportType));
    }
}

public sealed class TakAccessTests_Sqlite(SqliteClockServer server) : TakAccessTests<SqliteClockServer>(server);

public sealed class TakAccessTests_Postgres(PostgresClockServer server) : TakAccessTests<PostgresClockServer>(server);

using System.Net;
using System.Net.Http.Json;

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
        using var admin = server.ClientFor("jocadmin");
        var (created, body) = await admin.PostJson("/api/organizations/FORCE/members", new { userName = name, password = "a-long-password", roles = new[] { "reporter" } });
        Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        await using var device = await server.ConnectTakAsync(await server.IssueDeviceAsync(name));
        await Task.Delay(500);
        Assert.False(device.Closed);

        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        for (var i = 0; i < 50 && !device.Closed; i++)
        {
            await Task.Delay(100);
        }

        Assert.True(device.Closed, "the disabled member's device is still connected");
    }
}

public sealed class TakAccessTests_Sqlite(SqliteClockServer server) : TakAccessTests<SqliteClockServer>(server);

public sealed class TakAccessTests_Postgres(PostgresClockServer server) : TakAccessTests<PostgresClockServer>(server);

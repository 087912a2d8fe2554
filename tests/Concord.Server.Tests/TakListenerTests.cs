using System.Net.Sockets;
using Concord.Server.Tak;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>The TAK listener under a flood of connections: it holds at most its cap and goes on accepting after.</summary>
public sealed class TakListenerTests
{
    [Fact]
    public async Task Connections_above_the_cap_are_closed_at_once_and_accepted_again_when_one_has_gone()
    {
        await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--tak-port", "0"],
            options => options with { MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Error, Tak = options.Tak with { MaxConnections = 2 } });
        var tak = server.App.Services.GetRequiredService<TakServer>();
        await tak.Listening;
        var port = tak.BoundTlsPort!.Value;

        // Two connections that never start their TLS handshake hold both places.
        using var first = await ConnectAsync(port);
        using var second = await ConnectAsync(port);
        using var third = await ConnectAsync(port);
        // Closed at once by the server; five seconds allowed for a loaded machine (a held connection waits 15 s).
        Assert.True(await ClosedByServerAsync(third, TimeSpan.FromSeconds(5)), "a third connection is closed at once");
        Assert.False(await ClosedByServerAsync(second), "the second connection is held (its handshake may take 15 s)");

        first.Dispose();
        // The server frees the place when it sees the first connection's end, which on a loaded machine takes a moment:
        // new connections are tried for up to ten seconds (each one refused at once until then).
        var accepted = false;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!accepted && DateTime.UtcNow < until)
        {
            using var next = await ConnectAsync(port);
            accepted = !await ClosedByServerAsync(next);
            if (!accepted)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(accepted, "once a connection has gone, a new one is held again");
    }

    [Fact]
    public async Task One_address_opening_handshakes_it_never_finishes_cannot_take_the_places_of_others()
    {
        // Connections that never start TLS are held 15 s each: one host holds at most its share of handshakes, and all
        // hosts together at most the handshake budget, whatever places are left for sessions.
        await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--tak-port", "0"],
            options => options with
            {
                MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Error,
                Tak = options.Tak with { MaxConnections = 100, MaxHandshakes = 3, MaxHandshakesPerAddress = 2 },
            });
        var tak = server.App.Services.GetRequiredService<TakServer>();
        await tak.Listening;
        var port = tak.BoundTlsPort!.Value;

        using var first = await ConnectAsync(port, "127.0.0.2");
        using var second = await ConnectAsync(port, "127.0.0.2");
        using var third = await ConnectAsync(port, "127.0.0.2");
        Assert.True(await ClosedByServerAsync(third, TimeSpan.FromSeconds(5)), "a third handshake from one address is closed at once");
        using var other = await ConnectAsync(port, "127.0.0.3");
        Assert.False(await ClosedByServerAsync(other), "another address still gets a handshake place");
        using var fourth = await ConnectAsync(port, "127.0.0.4");
        Assert.True(await ClosedByServerAsync(fourth, TimeSpan.FromSeconds(5)), "past the handshake budget a connection is closed at once");

        // A handshake that ends (here: the peer goes) gives its place back.
        first.Dispose();
        var accepted = false;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!accepted && DateTime.UtcNow < until)
        {
            using var next = await ConnectAsync(port, "127.0.0.2");
            accepted = !await ClosedByServerAsync(next);
            if (!accepted)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(accepted, "once a handshake has ended, its address gets a place again");
    }

    private static async Task<TcpClient> ConnectAsync(int port, string from = "127.0.0.1")
    {
        // Any 127.x address is this machine's: a connection bound to one stands for another host.
        var client = new TcpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(from), 0));
        await client.ConnectAsync("127.0.0.1", port);
        return client;
    }

    /// <summary>Whether the server closes the connection within <paramref name="within"/> (default half a second; a held connection sends nothing).</summary>
    private static async Task<bool> ClosedByServerAsync(TcpClient client, TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? TimeSpan.FromMilliseconds(500));
        try
        {
            return await client.GetStream().ReadAsync(new byte[1], timeout.Token) == 0;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }
}

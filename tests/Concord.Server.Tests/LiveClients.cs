using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>Live-hub clients for server tests (the browser tests use the page's own).</summary>
internal static class LiveClients
{
    /// <summary>A started connection to the live hub, the ids it was pushed, and a task that ends when the server closes it.</summary>
    public static async Task<(HubConnection Live, System.Collections.Concurrent.ConcurrentQueue<Guid> Changes, Task Closed)> OpenLiveAsync(
        this TestServer server, Action<Microsoft.AspNetCore.Http.Connections.Client.HttpConnectionOptions> authenticate)
    {
        var changes = new System.Collections.Concurrent.ConcurrentQueue<Guid>();
        var closed = new TaskCompletionSource();
        var live = new HubConnectionBuilder().WithUrl(new Uri(server.BaseAddress, "/hubs/live"), authenticate).Build();
        live.On<List<System.Text.Json.JsonElement>>("changes", batch =>
        {
            foreach (var change in batch)
            {
                changes.Enqueue(change.GetProperty("id").GetGuid());
            }
        });
        live.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        await live.StartAsync();
        // The client's start returns once the handshake is answered, before the hub has joined the connection to the feed;
        // a change published before the join is never pushed to it.
        var feed = server.Services.GetRequiredService<Realtime.LiveFeed>();
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !feed.Has(live.ConnectionId!); await Task.Delay(20))
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new TimeoutException("the live connection did not join the feed within 10 s");
            }
        }

        return (live, changes, closed.Task);
    }
}

using System.Collections.Concurrent;
using System.Net;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Realtime;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Concord.Server.Tests;

/// <summary>The browsers' live feed sends each connection its changes on its own: one that does not read holds up nobody.</summary>
public abstract class LiveFeedSendTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task A_connection_that_does_not_take_its_changes_is_closed_without_holding_up_the_others()
    {
        // A frozen tab (or a script that opened the channel and stopped reading): its sends never finish. The round hands
        // every connection its message, waits a bounded time, closes the frozen one (it reconnects and reads its view
        // again), and the next round goes to the others at once.
        var delivered = new ConcurrentQueue<string>();
        var hub = new Hub((id, cancellationToken) =>
        {
            if (id == "frozen")
            {
                return Task.Delay(Timeout.Infinite, cancellationToken);
            }

            delivered.Enqueue(id);
            return Task.CompletedTask;
        });
        var services = server.Services;
        var feed = new LiveFeed(hub, services.GetRequiredService<IServiceScopeFactory>(), services.GetRequiredService<ViewerDirectory>(), services.GetRequiredService<MissionDirectory>(),
            services.GetRequiredService<ChangeSignal>(), services.GetRequiredService<TimeProvider>(), services.GetRequiredService<SessionActivity>(),
            services.GetRequiredService<ILogger<LiveFeed>>())
        { SendTimeout = TimeSpan.FromMilliseconds(300) };
        var closed = new ConcurrentQueue<string>();
        foreach (var (id, user) in new[] { ("frozen", "joc"), ("awake", "force") })
        {
            var viewer = server.ViewerOf(user);
            feed.Join(id, new LiveConnection(viewer.MemberId, null, ConcordAuthentication.SessionPrincipal(viewer, DateTimeOffset.UtcNow), () => closed.Enqueue(id)));
        }

        using var unpol = server.ClientFor("unpol");
        async Task<long> RoundAsync(long after)
        {
            var (created, _) = await unpol.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var round = feed.PublishAsync(after, CancellationToken.None);
            Assert.True(await Task.WhenAny(round, Task.Delay(TimeSpan.FromSeconds(20))) == round, "the round waited for the connection that does not read");
            return await round;
        }

        var start = await server.WithDbAsync(db => db.Changes.MaxAsync(c => (long?)c.Sequence)) ?? 0;
        var first = await RoundAsync(start);
        Assert.Equal(["awake"], delivered);
        Assert.Equal(["frozen"], closed);
        Assert.False(feed.Has("frozen"));
        Assert.True(feed.Has("awake"));

        await RoundAsync(first);
        Assert.Equal(["awake", "awake"], delivered);
        Assert.Equal(["frozen"], closed);
    }

    /// <summary>A hub whose connections take their messages as <paramref name="send"/> says (by connection id).</summary>
    private sealed class Hub(Func<string, CancellationToken, Task> send) : IHubContext<LiveHub>
    {
        public IHubClients Clients { get; } = new HubClients(send);

        public IGroupManager Groups => throw new NotSupportedException();
    }

    private sealed class HubClients(Func<string, CancellationToken, Task> send) : IHubClients
    {
        public IClientProxy All => throw new NotSupportedException();

        public IClientProxy AllExcept(IReadOnlyList<string> excludedConnectionIds) => throw new NotSupportedException();

        public ISingleClientProxy Client(string connectionId) => new Proxy([connectionId], send);

        IClientProxy IHubClients<IClientProxy>.Client(string connectionId) => Client(connectionId);

        // Several connections at once are sent to in turn, as a lifetime manager's send waits for each.
        public IClientProxy Clients(IReadOnlyList<string> connectionIds) => new Proxy(connectionIds, send);

        public IClientProxy Group(string groupName) => throw new NotSupportedException();

        public IClientProxy GroupExcept(string groupName, IReadOnlyList<string> excludedConnectionIds) => throw new NotSupportedException();

        public IClientProxy Groups(IReadOnlyList<string> groupNames) => throw new NotSupportedException();

        public IClientProxy User(string userId) => throw new NotSupportedException();

        public IClientProxy Users(IReadOnlyList<string> userIds) => throw new NotSupportedException();
    }

    private sealed class Proxy(IReadOnlyList<string> ids, Func<string, CancellationToken, Task> send) : ISingleClientProxy
    {
        public async Task SendCoreAsync(string method, object?[] args, CancellationToken cancellationToken = default)
        {
            foreach (var id in ids)
            {
                await send(id, cancellationToken);
            }
        }

        public Task<T> InvokeCoreAsync<T>(string method, object?[] args, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}

public sealed class LiveFeedSendTests_Sqlite(SqliteServer server) : LiveFeedSendTests<SqliteServer>(server);

public sealed class LiveFeedSendTests_Postgres(PostgresServer server) : LiveFeedSendTests<PostgresServer>(server);

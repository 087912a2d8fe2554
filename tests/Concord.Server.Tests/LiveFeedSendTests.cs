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
        var hub = new Hub((id, _, _, cancellationToken) =>
        {
            if (id == "frozen")
            {
                return Task.Delay(Timeout.Infinite, cancellationToken);
            }

            delivered.Enqueue(id);
            return Task.CompletedTask;
        });
        var feed = NewFeed(hub, TimeSpan.FromMilliseconds(300));
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

    [Fact]
    public async Task A_round_with_more_ids_than_one_push_carries_tells_the_page_to_read_its_view_again_instead()
    {
        // An import of 250 events is one transaction: one round holds 500 visible changes (a report and an incident each),
        // about 48 KB of ids, which a field office's weak link takes longer than the round's time. The page is told to read
        // its view again; a small round after it carries ids as before.
        var sent = new ConcurrentQueue<(string Method, object? Argument)>();
        var hub = new Hub((_, method, args, _) =>
        {
            sent.Enqueue((method, args.Single()));
            return Task.CompletedTask;
        });
        var feed = NewFeed(hub, TimeSpan.FromSeconds(5));
        var viewer = server.ViewerOf("force");
        feed.Join("office", new LiveConnection(viewer.MemberId, null, ConcordAuthentication.SessionPrincipal(viewer, DateTimeOffset.UtcNow), () => { }));

        var tag = Guid.NewGuid().ToString("N")[..8];
        var features = string.Join(",", Enumerable.Range(0, 250).Select(i => $$"""
            { "type": "Feature", "id": "{{tag}}-{{i}}", "geometry": { "type": "Point", "coordinates": [{{16 + i * 0.01:0.00}}, 6.5] },
              "properties": { "observedAt": "2024-10-03T10:00:00Z", "category": "poc.forced-displacement", "narrative": "burst {{tag}} {{i}}",
                              "precisionMeters": 500, "reliability": "C", "credibility": 3 } }
            """));
        var start = await server.WithDbAsync(db => db.Changes.MaxAsync(c => (long?)c.Sequence)) ?? 0;
        using var joc = server.ClientFor("joc");
        var imported = await joc.PostAsync($"/api/imports?format=geojson&source=burst-{tag}&classification=UNCLASSIFIED&releasableTo=mission",
            new StringContent($$"""{ "type": "FeatureCollection", "features": [{{features}}] }""", System.Text.Encoding.UTF8, "application/geo+json"));
        Assert.True(imported.StatusCode == HttpStatusCode.OK, await imported.Content.ReadAsStringAsync());
        var visible = await server.WithDbAsync(db => db.Changes.CountAsync(c => c.Sequence > start));
        Assert.True(visible > LiveFeed.MostIds, $"{visible} changes");

        var first = await feed.PublishAsync(start, CancellationToken.None);
        Assert.Equal([(LiveHub.ResyncMethod, (object?)false)], sent);

        // An access change (a new sharing group) in a large round: the page reads again as after any access change.
        using var police = server.ClientFor("unpoladmin");
        Assert.Equal(HttpStatusCode.Created, (await police.PostJson("/api/groups", new { code = "WG" + tag.ToUpperInvariant(), name = "Burst working group" })).Response.StatusCode);
        imported = await joc.PostAsync($"/api/imports?format=geojson&source=burst2-{tag}&classification=UNCLASSIFIED&releasableTo=mission",
            new StringContent($$"""{ "type": "FeatureCollection", "features": [{{features.Replace(tag + "-", tag + "-b", StringComparison.Ordinal)}}] }""", System.Text.Encoding.UTF8, "application/geo+json"));
        Assert.True(imported.StatusCode == HttpStatusCode.OK, await imported.Content.ReadAsStringAsync());
        sent.Clear();
        var second = await feed.PublishAsync(first, CancellationToken.None);
        Assert.Equal([(LiveHub.ResyncMethod, (object?)true)], sent);

        sent.Clear();
        var (created, report) = await joc.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        await feed.PublishAsync(second, CancellationToken.None);
        var (method, ids) = Assert.Single(sent);
        Assert.Equal(LiveHub.ChangesMethod, method);
        Assert.Contains(((IEnumerable<LiveChange>)ids!), c => c.Id == report.GetProperty("id").GetGuid());
    }

    private LiveFeed NewFeed(IHubContext<LiveHub> hub, TimeSpan sendTimeout)
    {
        var services = server.Services;
        return new LiveFeed(hub, services.GetRequiredService<IServiceScopeFactory>(), services.GetRequiredService<ViewerDirectory>(), services.GetRequiredService<MissionDirectory>(),
            services.GetRequiredService<ChangeSignal>(), services.GetRequiredService<TimeProvider>(), services.GetRequiredService<SessionActivity>(),
            services.GetRequiredService<ILogger<LiveFeed>>())
        { SendTimeout = sendTimeout };
    }

    /// <summary>A hub whose connections take their messages as <paramref name="send"/> says (by connection id, method and arguments).</summary>
    private sealed class Hub(Func<string, string, object?[], CancellationToken, Task> send) : IHubContext<LiveHub>
    {
        public IHubClients Clients { get; } = new HubClients(send);

        public IGroupManager Groups => throw new NotSupportedException();
    }

    private sealed class HubClients(Func<string, string, object?[], CancellationToken, Task> send) : IHubClients
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

    private sealed class Proxy(IReadOnlyList<string> ids, Func<string, string, object?[], CancellationToken, Task> send) : ISingleClientProxy
    {
        public async Task SendCoreAsync(string method, object?[] args, CancellationToken cancellationToken = default)
        {
            foreach (var id in ids)
            {
                await send(id, method, args, cancellationToken);
            }
        }

        public Task<T> InvokeCoreAsync<T>(string method, object?[] args, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}

public sealed class LiveFeedSendTests_Sqlite(SqliteServer server) : LiveFeedSendTests<SqliteServer>(server);

public sealed class LiveFeedSendTests_Postgres(PostgresServer server) : LiveFeedSendTests<PostgresServer>(server);

using System.Collections.Concurrent;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Realtime;

/// <summary>What a browser is told of a change: the record's kind and id, never its content.</summary>
internal sealed record LiveChange(long Sequence, string Entity, Guid Id, string Operation)
{
    public static LiveChange Of(Change change) => new(change.Sequence, change.Entity, change.EntityId, change.Operation);
}

/// <summary>
/// The browser's live channel (<c>/hubs/live</c>). It only ever pushes ids of records the connected member may see; the page
/// then reads them through the API, so the access predicate holds for live updates exactly as for everything else.
/// </summary>
[Authorize]
internal sealed class LiveHub(LiveFeed feed) : Hub
{
    public const string Path = "/hubs/live";

    public const string ChangesMethod = "changes";

    /// <summary>
    /// Sent instead of <see cref="ChangesMethod"/> when a round holds more ids for a member than one message should carry
    /// (<see cref="LiveFeed.MostIds"/>): the page reads its whole view again, as on reconnecting. Its argument says whether
    /// the round held an access change (a member, an organisation, a group, an agreement).
    /// </summary>
    public const string ResyncMethod = "resync";

    public override Task OnConnectedAsync()
    {
        if (Guid.TryParse(Context.User?.FindFirst(ConcordAuthentication.MemberIdClaim)?.Value, out var member))
        {
            feed.Join(Context.ConnectionId, new LiveConnection(member, Context.User!.FindFirst(ConcordAuthentication.TokenHashClaim)?.Value, Context.User, Context.Abort));
        }
        else
        {
            Context.Abort();
        }

        return base.OnConnectedAsync();
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        feed.Leave(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }
}

/// <summary>
/// A browser's (or a script's) live connection: its member, the hash of the access token it was opened with (null for a
/// signed-in session), the principal it was opened with (a session's version and sign-in time), and how to close it once
/// that member, token or session may no longer read.
/// </summary>
internal sealed record LiveConnection(Guid Member, string? TokenHash, System.Security.Claims.ClaimsPrincipal User, Action Abort);

/// <summary>
/// Tails the change feed for the connected browsers: each batch of changes is filtered once per connected member with the
/// visibility predicate, and only the visible ids go to that member's connections. Idle when nobody is connected.
/// </summary>
internal sealed class LiveFeed(IHubContext<LiveHub> hub, IServiceScopeFactory scopes, ViewerDirectory viewers, MissionDirectory directory, ChangeSignal signal, TimeProvider time,
    Accounts.SessionActivity activity, ILogger<LiveFeed> logger)
    : BackgroundService
{
    /// <summary>The shortest gap between two reads of the feed: under load, the changes of this long go out together.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    /// <summary>How often the feed is read when this process commits nothing (for writes by other processes).</summary>
    public static readonly TimeSpan Fallback = TimeSpan.FromSeconds(1);

    private const int Window = 1000;

    /// <summary>
    /// The most ids one push carries (about 19 KB of JSON). A round that has more for a member (an import, a large
    /// merge) sends that member's browsers a short <see cref="LiveHub.ResyncMethod"/> instead: a field office on a link of
    /// 64 kbit/s takes this many within the round's <see cref="SendTimeout"/>, where a full window's ids (about 95 KB) would
    /// get its connection cut, and cut again after each reconnect while the burst lasts.
    /// </summary>
    internal const int MostIds = 200;

    /// <summary>
    /// How long the connections of a round have, once the round has handed out its messages, to take them: a browser that
    /// does not read (a frozen tab, a script) would otherwise hold up every later round for everyone. Cut at this, it
    /// reconnects and reads its whole view again. (Ids are small: a weak link takes a round's in well under this.)
    /// </summary>
    internal TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, LiveConnection> _connections = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<Subscription, Guid> _subscriptions = new();

    /// <summary>Whether the last read stopped before committed changes waiting on a gap (read again soon, not at the fallback).</summary>
    private volatile bool _held;

    /// <summary>Whether the last read stopped at its window's end with more of the feed to read.</summary>
    private volatile bool _behind;

    private long _position = -1;

    /// <summary>
    /// The last sequence of the feed this tailer has examined (−1 before its first round): every change after it is still to be
    /// told to the subscribers of the moment. While anyone listens, it does not pass a gap on PostgreSQL that a running
    /// transaction may still fill (a bare maximum of the feed could); while nobody does, it follows the end of the feed.
    /// </summary>
    public long Position => Interlocked.Read(ref _position);

    public int Connections => _connections.Count;

    private int _waits;

    /// <summary>How many times the feed has waited between rounds (for tests: a backlog is read without waits).</summary>
    internal int Waits => Volatile.Read(ref _waits);

    public void Join(string connectionId, LiveConnection connection) => _connections[connectionId] = connection;

    /// <summary>Whether the connection is being told (a client's start returns before the hub has joined it here).</summary>
    public bool Has(string connectionId) => _connections.ContainsKey(connectionId);

    public void Leave(string connectionId) => _connections.TryRemove(connectionId, out _);

    /// <summary>
    /// Closes this node's live connections opened with a session that has just signed out, at once: checked only in a round
    /// that had changes to tell, they stayed open (and the pages behind them on screen) until something changed.
    /// </summary>
    public void EndSession(Guid sessionId)
    {
        foreach (var (id, connection) in _connections)
        {
            if (connection.TokenHash is null && ConcordAuthentication.SessionId(connection.User) == sessionId && _connections.TryRemove(id, out _))
            {
                connection.Abort();
            }
        }
    }

    /// <summary>
    /// An in-process listener (a page rendered in a server circuit) told the same visible ids as the member's browsers.
    /// The callback must return quickly (schedule work, do not do it); disposing the result ends the subscription.
    /// </summary>
    public IDisposable Subscribe(Guid member, Action<IReadOnlyList<LiveChange>> onChanges)
    {
        var subscription = new Subscription(this, onChanges);
        _subscriptions[subscription] = member;
        return subscription;
    }

    private readonly Hosting.FailureRun _failures = new(logger, "sending live changes to browsers");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        long after = -1;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var next = signal.Next;
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    // Set by a read that was held at a gap; a round that fails before reading waits the fallback.
                    _held = false;
                    do
                    {
                        // A full window: the rest is read at once, not after a wait (a backlog written by another process
                        // wakes nobody here, and would otherwise drain one window a second).
                        _behind = false;
                        after = await PublishAsync(after, stoppingToken);
                        Interlocked.Exchange(ref _position, after);
                    }
                    while (_behind && !stoppingToken.IsCancellationRequested);
                    _failures.Succeeded();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (_failures.Failed(e))
                    {
                        logger.LogWarning(e, "sending live changes to browsers failed; retrying");
                    }
                }

                Interlocked.Increment(ref _waits);
                await ChangeSignal.WaitAsync(next, Fallback, Interval, started, _held, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// The changes after <paramref name="after"/> that <paramref name="member"/> may see, as a round of this feed would tell
    /// them (access changes among them taken in first, the member as they now are), for a page that starts listening late.
    /// Null when they cannot be told change by change and the page must read its whole view again: more than a round holds,
    /// a read held at a gap (an idle feed may already have passed the committed changes beyond it without telling anyone),
    /// or a member no longer enabled.
    /// </summary>
    internal async Task<List<LiveChange>?> SinceAsync(Guid member, long after, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var (window, held) = await ChangeWindows.ReadHeldAsync(db, after, Window + 1, time.GetUtcNow().UtcDateTime, cancellationToken);
        if (held || window.Count > Window)
        {
            return null;
        }

        if (window.Count == 0)
        {
            return [];
        }

        await AccessChanges.RefreshAsync(window, directory, viewers, cancellationToken);
        return await viewers.ForMemberAsync(member, cancellationToken) is { } viewer
            ? [.. (await ChangeVisibility.VisibleAsync(db, viewer, window, cancellationToken)).Select(LiveChange.Of)]
            : null;
    }

    /// <summary>Sends the changes after <paramref name="after"/> (−1: start from now) and returns the last sequence examined.</summary>
    internal async Task<long> PublishAsync(long after, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        if (after < 0 || (_connections.IsEmpty && _subscriptions.IsEmpty))
        {
            // Nobody to tell (or just started): move to the end of the feed so that nothing old is sent later, but not past a
            // change still being written: a page that starts listening from here must hear of it.
            (var end, _held, _behind) = await ChangeWindows.SettledEndAsync(db, after, time.GetUtcNow().UtcDateTime, cancellationToken);
            if (after >= 0 && !(_connections.IsEmpty && _subscriptions.IsEmpty))
            {
                // Someone started listening while the feed was read: what this round passed may have been committed after
                // they did (after their catch-up read), and would be told to nobody. Read again at once, telling them.
                _behind = true;
                return after;
            }

            return end;
        }

        (var window, _held) = await ChangeWindows.ReadHeldAsync(db, after, Window, time.GetUtcNow().UtcDateTime, cancellationToken);
        _behind = window.Count == Window;
        if (window.Count == 0)
        {
            return after;
        }

        // Pages told of an access change must read with what a member holds now, or a lowered clearance would leave what
        // it no longer reaches on screen until the next change.
        await AccessChanges.RefreshAsync(window, directory, viewers, cancellationToken);

        var connections = _connections.ToLookup(c => c.Value.Member);
        var subscriptions = _subscriptions.ToLookup(s => s.Value, s => s.Key);
        // Each connection is sent its message on its own, all at once: one that does not read waits alone, and is cut once
        // the round's time is up (SignalR's send waits while a connection's buffer is full).
        using var sending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sends = new List<(string Id, LiveConnection Connection, Task Send)>();
        foreach (var member in connections.Select(c => c.Key).Union(subscriptions.Select(s => s.Key)))
        {
            var viewer = await viewers.ForMemberAsync(member, cancellationToken);
            // A connection is checked again before anything goes out on it: a disabled member's connections, those opened
            // with a token since revoked or expired, and those of a session a new password, its lifetime or its idle limit ended, are closed instead
            // (within the viewer cache's lifetime).
            var open = new List<(string Id, LiveConnection Connection)>();
            foreach (var (id, connection) in connections[member])
            {
                if (viewer is not null && (connection.TokenHash is null
                    ? ConcordAuthentication.SessionValid(connection.User, viewer, time.GetUtcNow()) && !activity.Idle(connection.User, time.GetUtcNow())
                    : await viewers.ForTokenHashAsync(connection.TokenHash, cancellationToken) is not null))
                {
                    open.Add((id, connection));
                }
                else if (_connections.TryRemove(id, out _))
                {
                    connection.Abort();
                }
            }

            if (viewer is null)
            {
                // Disabled or removed: the member's pages in server circuits read their view once more (and find nothing
                // they may show), then hear no more.
                foreach (var subscription in subscriptions[member])
                {
                    subscription.Notify([new LiveChange(window[^1].Sequence, "member", member, "updated")], logger);
                    subscription.Dispose();
                }

                continue;
            }

            var visible = await ChangeVisibility.VisibleAsync(db, viewer, window, cancellationToken);
            if (visible.Count == 0)
            {
                continue;
            }

            var message = visible.Select(LiveChange.Of).ToList();
            var access = message.Count > MostIds && message.Any(c => AccessChanges.Concerns(c.Entity));
            foreach (var (id, connection) in open)
            {
                sends.Add((id, connection, message.Count > MostIds
                    ? hub.Clients.Client(id).SendAsync(LiveHub.ResyncMethod, access, sending.Token)
                    : hub.Clients.Client(id).SendAsync(LiveHub.ChangesMethod, message, sending.Token)));
            }

            foreach (var subscription in subscriptions[member])
            {
                subscription.Notify(message, logger);
            }
        }

        await DeliveredAsync(sends, sending, cancellationToken);
        return window[^1].Sequence;
    }

    /// <summary>Waits for the round's sends, up to <see cref="SendTimeout"/>; a connection whose send failed or did not finish is closed.</summary>
    private async Task DeliveredAsync(List<(string Id, LiveConnection Connection, Task Send)> sends, CancellationTokenSource sending, CancellationToken cancellationToken)
    {
        if (sends.Count == 0)
        {
            return;
        }

        sending.CancelAfter(SendTimeout);
        foreach (var (id, connection, send) in sends)
        {
            try
            {
                await send;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // It reconnects (its page's channel does so by itself) and reads its whole view again.
                logger.LogInformation(e is OperationCanceledException ? null : e, "a live connection that did not take its changes within {Timeout} was closed", SendTimeout);
                if (_connections.TryRemove(id, out _))
                {
                    connection.Abort();
                }
            }
        }
    }

    private sealed class Subscription(LiveFeed feed, Action<IReadOnlyList<LiveChange>> onChanges) : IDisposable
    {
        public void Notify(IReadOnlyList<LiveChange> changes, ILogger logger)
        {
            try
            {
                onChanges(changes);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "a live page failed to take its changes");
            }
        }

        public void Dispose() => feed._subscriptions.TryRemove(this, out _);
    }
}

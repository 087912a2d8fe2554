using System.Collections.Concurrent;
using System.Security.Claims;

namespace Concord.Server.Accounts;

/// <summary>
/// When this node last saw each browser session at work (a request under its cookie), so that a live connection, which
/// outlives the request that opened it, ends with its session's idle limit (<see cref="ConcordAuthentication.IdleLifetime"/>)
/// as the cookie does. A session this node has not seen (since a restart, or used through another node) is not judged
/// idle here: its connection is checked as before, and its page's next read meets the cookie's own limit.
/// </summary>
internal sealed class SessionActivity
{
    private readonly ConcurrentDictionary<Guid, long> _lastSeen = new();
    private int _seen;

    public void Seen(ClaimsPrincipal session, DateTimeOffset at)
    {
        if (ConcordAuthentication.SessionId(session) is not { } id)
        {
            return;
        }

        _lastSeen[id] = at.UtcTicks;
        // Sessions end a day after their sign-in at the latest: entries older than that are forgotten now and then.
        if (Interlocked.Increment(ref _seen) % 1000 == 0)
        {
            var before = (at - ConcordAuthentication.SessionLifetime).UtcTicks;
            foreach (var (old, ticks) in _lastSeen)
            {
                if (ticks < before)
                {
                    _lastSeen.TryRemove(new KeyValuePair<Guid, long>(old, ticks));
                }
            }
        }
    }

    /// <summary>Whether <paramref name="session"/> was last seen here longer than the idle limit ago.</summary>
    public bool Idle(ClaimsPrincipal session, DateTimeOffset now) =>
        ConcordAuthentication.SessionId(session) is { } id && _lastSeen.TryGetValue(id, out var ticks)
        && now.UtcTicks - ticks > ConcordAuthentication.IdleLifetime.Ticks;
}

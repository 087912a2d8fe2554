using System.Collections.Concurrent;
using System.Security.Claims;

namespace Concord.Server.Accounts;

/// <summary>
/// When each browser session's cookie, as this node last sent or accepted it, expires: a session left unused ends with its
/// cookie (<see cref="ConcordAuthentication.IdleLifetime"/> after the cookie was last renewed, which happens once half of
/// it has gone, not at every request), and a live connection or a live page, which outlive the request that opened them,
/// end then too. A session this node has not seen (since a restart, or used through another node) is not judged idle
/// here: its connection is checked as before, and its page's next read meets the cookie's own limit.
/// </summary>
internal sealed class SessionActivity
{
    private readonly ConcurrentDictionary<Guid, long> _expires = new();
    private int _seen;

    /// <summary>The session <paramref name="session"/> was used in a request whose answer leaves its cookie expiring at <paramref name="cookieExpires"/>.</summary>
    public void Seen(ClaimsPrincipal session, DateTimeOffset cookieExpires, DateTimeOffset now)
    {
        if (ConcordAuthentication.SessionId(session) is not { } id)
        {
            return;
        }

        _expires[id] = cookieExpires.UtcTicks;
        // Expired entries are forgotten now and then (a session's cookie expires a day after its sign-in at the latest).
        if (Interlocked.Increment(ref _seen) % 1000 == 0)
        {
            foreach (var (old, ticks) in _expires)
            {
                if (ticks < now.UtcTicks)
                {
                    _expires.TryRemove(new KeyValuePair<Guid, long>(old, ticks));
                }
            }
        }
    }

    /// <summary>Whether the cookie of <paramref name="session"/>, as this node last saw it, has expired.</summary>
    public bool Idle(ClaimsPrincipal session, DateTimeOffset now) =>
        ConcordAuthentication.SessionId(session) is { } id && _expires.TryGetValue(id, out var ticks) && now.UtcTicks >= ticks;
}

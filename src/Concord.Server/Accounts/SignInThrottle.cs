namespace Concord.Server.Accounts;

/// <summary>
/// Limits failed sign-ins: after <see cref="MaxFailures"/> failures within <see cref="Window"/> for one account or one address,
/// further attempts are refused until the window has passed. Kept in memory: a restart forgets, which only helps the user.
/// </summary>
/// <remarks>
/// An attempt counts as a failure from the moment it is let through (<see cref="Begin"/>) until it succeeds, under one
/// lock: attempts made in parallel cannot all pass the check before any of them is counted. Account names are compared
/// as sign-in compares them (trimmed, lower case), so " Name " is the same account as "name".
/// </remarks>
internal sealed class SignInThrottle(TimeProvider time)
{
    /// <summary>Forgets every failure (tests that sign in after a lockout test on the same loopback address).</summary>
    internal void Clear()
    {
        lock (_lock)
        {
            _failures.Clear();
        }
    }

    /// <summary>How many keys (accounts and addresses) are remembered (for tests).</summary>
    internal int Remembered
    {
        get
        {
            lock (_lock)
            {
                return _failures.Count;
            }
        }
    }

    public const int MaxFailures = 5;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(15);

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Queue<DateTimeOffset>> _failures = new(StringComparer.Ordinal);

    /// <summary>Names longer than this are no member's (and are kept only this long as keys).</summary>
    public const int MaxNameLength = 100;

    /// <summary>The account key sign-in uses for a name as typed.</summary>
    public static string Normalize(string userName) => userName.Trim().ToLowerInvariant();

    private static string UserKey(string userName)
    {
        var name = Normalize(userName);
        return "user:" + (name.Length > MaxNameLength + 1 ? name[..(MaxNameLength + 1)] : name);
    }

    private DateTimeOffset _sweptAt;

    /// <summary>
    /// Zero when the attempt may go ahead (and then counts as a failure until <see cref="Succeeded"/>); otherwise how long
    /// the caller must wait.
    /// </summary>
    public TimeSpan Begin(string userName, string address)
    {
        var now = time.GetUtcNow();
        var user = UserKey(userName);
        var addr = "addr:" + address;
        lock (_lock)
        {
            if (now - _sweptAt > Window)
            {
                // Keys are otherwise pruned only when asked for again: names tried once, from addresses seen once, would stay.
                _sweptAt = now;
                foreach (var (key, queue) in _failures.ToList())
                {
                    Prune(queue, now);
                    if (queue.Count == 0)
                    {
                        _failures.Remove(key);
                    }
                }
            }

            var wait = Max(Wait(user, now), Wait(addr, now));
            if (wait > TimeSpan.Zero)
            {
                return wait;
            }

            Record(user, now);
            Record(addr, now);
            return TimeSpan.Zero;
        }
    }

    /// <summary>The attempt let through by <see cref="Begin"/> succeeded: the account's failures are forgotten, and this attempt no longer counts against the address.</summary>
    public void Succeeded(string userName, string address)
    {
        lock (_lock)
        {
            _failures.Remove(UserKey(userName));
            if (_failures.TryGetValue("addr:" + address, out var queue) && queue.Count > 0)
            {
                // The queue is in time order and this attempt was recorded last but for those begun since: drop one entry.
                var kept = queue.ToArray()[..^1];
                queue.Clear();
                foreach (var at in kept)
                {
                    queue.Enqueue(at);
                }
            }
        }
    }

    private TimeSpan Wait(string key, DateTimeOffset now)
    {
        if (!_failures.TryGetValue(key, out var queue))
        {
            return TimeSpan.Zero;
        }

        Prune(queue, now);
        if (queue.Count == 0)
        {
            _failures.Remove(key);
            return TimeSpan.Zero;
        }

        return queue.Count >= MaxFailures ? queue.Peek() + Window - now : TimeSpan.Zero;
    }

    private void Record(string key, DateTimeOffset now)
    {
        if (!_failures.TryGetValue(key, out var queue))
        {
            _failures[key] = queue = new Queue<DateTimeOffset>();
        }

        queue.Enqueue(now);
    }

    private static void Prune(Queue<DateTimeOffset> queue, DateTimeOffset now)
    {
        while (queue.Count > 0 && queue.Peek() + Window <= now)
        {
            queue.Dequeue();
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}

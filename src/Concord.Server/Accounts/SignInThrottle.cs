using System.Collections.Concurrent;

namespace Concord.Server.Accounts;

/// <summary>
/// Limits failed sign-ins: after <see cref="MaxFailures"/> failures within <see cref="Window"/> for one account or one address,
/// further attempts are refused until the window has passed. Kept in memory: a restart forgets, which only helps the user.
/// </summary>
internal sealed class SignInThrottle(TimeProvider time)
{
    public const int MaxFailures = 5;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(15);

    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _failures = new(StringComparer.Ordinal);

    /// <summary>How long the caller must wait, or zero when an attempt is allowed.</summary>
    public TimeSpan RetryAfter(string userName, string address)
    {
        var now = time.GetUtcNow();
        return Max(Wait("user:" + userName.ToLowerInvariant(), now), Wait("addr:" + address, now));
    }

    public void Failed(string userName, string address)
    {
        var now = time.GetUtcNow();
        Record("user:" + userName.ToLowerInvariant(), now);
        Record("addr:" + address, now);
    }

    public void Succeeded(string userName) => _failures.TryRemove("user:" + userName.ToLowerInvariant(), out _);

    private TimeSpan Wait(string key, DateTimeOffset now)
    {
        if (!_failures.TryGetValue(key, out var queue))
        {
            return TimeSpan.Zero;
        }

        lock (queue)
        {
            Prune(queue, now);
            return queue.Count >= MaxFailures ? queue.Peek() + Window - now : TimeSpan.Zero;
        }
    }

    private void Record(string key, DateTimeOffset now)
    {
        var queue = _failures.GetOrAdd(key, _ => new Queue<DateTimeOffset>());
        lock (queue)
        {
            Prune(queue, now);
            queue.Enqueue(now);
        }
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

using System.Net;
using System.Net.Sockets;

namespace Concord.Server.Accounts;

/// <summary>
/// Limits failed sign-ins within <see cref="Window"/> on three counts: one name from one address (<see cref="PairLimit"/>),
/// one name from anywhere (<see cref="AccountLimit"/>: guessing spread over many addresses) and one address for any names
/// (<see cref="AddressLimit"/>: one password tried on many accounts). Past a limit, attempts it covers are refused until the
/// window has passed. Kept in memory: a restart forgets, which only helps the user.
/// </summary>
/// <remarks>
/// <para>
/// Why three counts and not one per name and one per address: with a low limit per name anyone could lock any member out
/// by typing wrong passwords for that name, and with a low limit per address the five typing mistakes of one officer would
/// lock every colleague behind the same headquarters' router out. A member's own address is therefore limited by the pair;
/// the name's count, set four times higher, only stops guessing spread over addresses, and does not apply at an address the
/// member signed in from successfully in the last <see cref="KnownFor"/>, so even then the member keeps signing in from
/// where they work. The address's count is ten times the pair's: a whole office mistyping does not reach it, one address
/// trying a password on every account does.
/// </para>
/// <para>
/// An attempt counts as a failure from the moment it is let through (<see cref="Begin"/>) until it succeeds, under one
/// lock: attempts made in parallel cannot all pass the check before any of them is counted. Account names are compared
/// as sign-in compares them (trimmed, lower case), so " Name " is the same account as "name". IPv6 addresses count by their
/// /64 network, which one host is commonly given whole (each of its addresses would otherwise get its own guesses).
/// </para>
/// </remarks>
internal sealed class SignInThrottle(TimeProvider time)
{
    /// <summary>Forgets every failure and known address (tests that sign in after a lockout test on the same loopback address).</summary>
    internal void Clear()
    {
        lock (_lock)
        {
            _failures.Clear();
            _known.Clear();
        }
    }

    /// <summary>How many keys (pairs, accounts and addresses) are remembered (for tests).</summary>
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

    /// <summary>Failures of one name from one address.</summary>
    public const int PairLimit = 5;

    /// <summary>Failures of one name from anywhere (not counted at an address the member is known to sign in from).</summary>
    public const int AccountLimit = 20;

    /// <summary>Failures from one address, whatever the names.</summary>
    public const int AddressLimit = 50;

    public static readonly TimeSpan Window = TimeSpan.FromMinutes(15);

    /// <summary>How long a successful sign-in makes its address a known one for the account.</summary>
    public static readonly TimeSpan KnownFor = TimeSpan.FromDays(30);

    /// <summary>Known addresses kept per account (the most recent).</summary>
    public const int KnownPerAccount = 8;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Queue<DateTimeOffset>> _failures = new(StringComparer.Ordinal);

    /// <summary>Per account key, the addresses it signed in from and when it last did.</summary>
    private readonly Dictionary<string, Dictionary<string, DateTimeOffset>> _known = new(StringComparer.Ordinal);

    /// <summary>Names longer than this are no member's (and are kept only this long as keys).</summary>
    public const int MaxNameLength = 100;

    /// <summary>The account key sign-in uses for a name as typed.</summary>
    public static string Normalize(string userName) => userName.Trim().ToLowerInvariant();

    /// <summary>The address key of a connection: IPv4 as it is (also when mapped into IPv6), IPv6 by its /64 network.</summary>
    public static string AddressOf(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6 || IPAddress.IsLoopback(address))
        {
            return address.ToString();
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }

    private static string UserKey(string userName)
    {
        var name = Normalize(userName);
        return "user:" + (name.Length > MaxNameLength + 1 ? name[..(MaxNameLength + 1)] : name);
    }

    private static string PairKey(string user, string address) => "pair:" + address + "\n" + user;

    private DateTimeOffset _sweptAt;

    private static string DeviceKey(string device) => "device:" + device;

    /// <summary>
    /// Zero when the attempt may go ahead (and then counts as a failure until <see cref="Succeeded"/>); otherwise how long
    /// the caller must wait. <paramref name="device"/>: the browser's device for this name (<see cref="SignInDevices"/>),
    /// or null. A device the member signed in from is limited by its own failures only, as a pair is: whoever shares its
    /// address (an office behind one router, a whole network's /64) cannot lock the member out of it by typing wrong
    /// passwords for their name, nor by trying many names.
    /// </summary>
    public TimeSpan Begin(string userName, string address, string? device = null)
    {
        var now = time.GetUtcNow();
        var user = UserKey(userName);
        var addr = "addr:" + address;
        var pair = PairKey(user, address);
        lock (_lock)
        {
            if (now - _sweptAt > Window)
            {
                Sweep(now);
            }

            if (device is not null)
            {
                var deviceWait = Wait(DeviceKey(device), PairLimit, now);
                if (deviceWait > TimeSpan.Zero)
                {
                    return deviceWait;
                }

                Record(DeviceKey(device), now);
                return TimeSpan.Zero;
            }

            var wait = Max(Wait(pair, PairLimit, now), Wait(addr, AddressLimit, now));
            if (!IsKnown(user, address, now))
            {
                wait = Max(wait, Wait(user, AccountLimit, now));
            }

            if (wait > TimeSpan.Zero)
            {
                return wait;
            }

            Record(pair, now);
            Record(user, now);
            Record(addr, now);
            return TimeSpan.Zero;
        }
    }

    /// <summary>
    /// The attempt let through by <see cref="Begin"/> succeeded: the name's failures are forgotten (from this address and
    /// from anywhere), this attempt no longer counts against the address, and the address becomes a known one for the name.
    /// </summary>
    public void Succeeded(string userName, string address, string? device = null)
    {
        var now = time.GetUtcNow();
        var user = UserKey(userName);
        lock (_lock)
        {
            _failures.Remove(PairKey(user, address));
            _failures.Remove(user);
            if (device is not null)
            {
                // Its attempt was counted against the device only, not the address.
                _failures.Remove(DeviceKey(device));
            }
            else if (_failures.TryGetValue("addr:" + address, out var queue) && queue.Count > 0)
            {
                // The queue is in time order and this attempt was recorded last but for those begun since: drop one entry.
                var kept = queue.ToArray()[..^1];
                queue.Clear();
                foreach (var at in kept)
                {
                    queue.Enqueue(at);
                }
            }

            // A known address whichever way the member signed in: a browser with a device cookie signing in day after day
            // from the desk kept that desk's address unknown, and a stranger's guesses at the name then locked the member
            // out there once the cookie was gone (a password reset ends it).
            if (!_known.TryGetValue(user, out var addresses))
            {
                _known[user] = addresses = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
            }

            addresses[address] = now;
            if (addresses.Count > KnownPerAccount)
            {
                addresses.Remove(addresses.MinBy(a => a.Value).Key);
            }
        }
    }

    private bool IsKnown(string user, string address, DateTimeOffset now) =>
        _known.TryGetValue(user, out var addresses) && addresses.TryGetValue(address, out var at) && now - at < KnownFor;

    /// <summary>Keys are otherwise pruned only when asked for again: names tried once, from addresses seen once, would stay.</summary>
    private void Sweep(DateTimeOffset now)
    {
        _sweptAt = now;
        foreach (var (key, queue) in _failures.ToList())
        {
            Prune(queue, now);
            if (queue.Count == 0)
            {
                _failures.Remove(key);
            }
        }

        foreach (var (user, addresses) in _known.ToList())
        {
            foreach (var (address, at) in addresses.ToList())
            {
                if (now - at >= KnownFor)
                {
                    addresses.Remove(address);
                }
            }

            if (addresses.Count == 0)
            {
                _known.Remove(user);
            }
        }
    }

    private TimeSpan Wait(string key, int limit, DateTimeOffset now)
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

        // The oldest failures leave the window first: the wait ends when the count falls below the limit again.
        return queue.Count >= limit ? queue.ElementAt(queue.Count - limit) + Window - now : TimeSpan.Zero;
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

using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Concord.Cot;
using Concord.Server.Access;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>
/// Device positions: the latest of each device and a bounded history, held in memory for routing and written to the
/// store once a second (write-behind), so a thousand positions a second cost one small transaction, not a thousand.
/// </summary>
internal sealed class TrackStore(IServiceScopeFactory scopes, Access.MarkingFormat markings, TimeProvider time, ILogger<TrackStore> logger) : BackgroundService
{
    private readonly Hosting.FailureRun _failures = new(logger, "writing tracks");

    public static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Entry> _tracks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _dirty = new(StringComparer.Ordinal);

    private sealed class Entry(Track track)
    {
        public Track Track { get; } = track;

        public Queue<(double Lat, double Lon, long Ms)> History { get; } = new();

        public Outbound? Last { get; set; }

        /// <summary>Whether <see cref="Track"/> holds a position already (the next one pushes it into the history).</summary>
        public bool HasPosition { get; set; }

        /// <summary>Taken out of memory by <see cref="Sweep"/>: an update that finds it so starts a new entry.</summary>
        public bool Evicted { get; set; }
    }

    /// <summary>
    /// How long a track stays in memory after it went stale. Every uid a device ever sent stayed in memory for the life of
    /// the server, so devices coming and going, or one inventing uids, grew it without bound. A track stale for longer
    /// than this is only in the store (it is not current, so nobody is sent it and nobody owns its uid); a device that
    /// comes back starts a new route, and its first position replaces the stored row.
    /// </summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(1);

    /// <summary>
    /// How long the store keeps a track after it went stale. Nothing reads a stale track (maps, patrols and devices get
    /// current ones; a restart loads current ones), but its row stayed for ever: devices that came and went, or one inventing
    /// uids an hour apart, grew the table without bound. A month keeps the last position and route of a device away on leave
    /// or rotation for whoever looks into the table.
    /// </summary>
    public static readonly TimeSpan StoredRetention = TimeSpan.FromDays(30);

    /// <summary>How often the flushing loop looks for tracks to forget.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    private DateTime _nextSweep;

    public IEnumerable<(Track Track, Outbound? Event)> Current =>
        _tracks.Values.Where(e => e.Track.StaleAt > time.GetUtcNow().UtcDateTime).Select(e => (e.Track, e.Last));

    public int Count => _tracks.Count;

    /// <summary>
    /// The last events of the current tracks <paramref name="viewer"/> may read, for a device that has just connected.
    /// Each event is taken together with the marking it went out under, under its entry's lock: a track whose marking
    /// changes meanwhile never pairs the old event with the new marking.
    /// </summary>
    public List<(string Uid, int Classification, long Caveats, Outbound Last)> LastEventsFor(Viewer viewer)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var events = new List<(string, int, long, Outbound)>();
        foreach (var entry in _tracks.Values)
        {
            lock (entry)
            {
                if (entry.Track.StaleAt > now && entry.Last is { } last && Marking.AllowsRead(entry.Track, viewer))
                {
                    events.Add((entry.Track.Uid, entry.Track.Classification, entry.Track.Caveats, last));
                }
            }
        }

        return events;
    }

    /// <summary>
    /// How long a position keeps its track current, at most: a device names its own stale time, and one naming the year
    /// 9999 would otherwise hold its uid (and keep other members from taking it over once it is theirs) for ever.
    /// </summary>
    public static readonly TimeSpan MaxStale = TimeSpan.FromHours(1);

    private static DateTime StaleOf(CotEvent e)
    {
        var stale = e.Stale.UtcDateTime;
        var latest = e.Time.UtcDateTime + MaxStale;
        return stale > latest ? latest : stale;
    }

    /// <summary>
    /// How many tracks of <paramref name="memberId"/>'s devices memory holds, current or stale within <see cref="Retention"/>:
    /// a scan, for the rare moment a device names a uid it has not sent before. Stale tracks count too, since they stay in
    /// memory (and in every scan) for the retention: a device sending each uid once with a stale time seconds ahead would
    /// otherwise never hold many current tracks while memory filled with millions.
    /// </summary>
    public int HeldBy(Guid memberId)
    {
        // Enumerating the dictionary itself takes no lock (its Values property would take every bucket's and copy them).
        var count = 0;
        foreach (var (_, entry) in _tracks)
        {
            count += entry.Track.MemberId == memberId ? 1 : 0;
        }

        return count;
    }

    /// <summary>The member whose track <paramref name="uid"/> memory holds, current or stale, if any.</summary>
    public Guid? HolderOf(string uid) => _tracks.TryGetValue(uid, out var entry) ? entry.Track.MemberId : null;

    /// <summary>The member whose current (not stale) track <paramref name="uid"/> is, if any.</summary>
    public Guid? OwnerOf(string uid, DateTime now) =>
        _tracks.TryGetValue(uid, out var entry) && entry.Track.StaleAt > now ? entry.Track.MemberId : null;

    /// <summary>
    /// Records a device's position. False, and nothing changes, when the uid is the current (not stale) track of another
    /// member: a device cannot take over another member's track. A stale track may pass to another member (a device handed
    /// on), and then starts with no history, so that the new member's organisation never sees the old member's route.
    /// </summary>
    public bool Update(CotEvent e, Guid memberId, MarkingDefault marking, Outbound stamped)
    {
        var now = time.GetUtcNow().UtcDateTime;
        bool? updated;
        do
        {
            var entry = _tracks.GetOrAdd(e.Uid, uid => New(uid, e, memberId, marking, now));
            BetweenLookupAndApply?.Invoke();
            updated = Apply(entry, e, memberId, marking, stamped, now, _dirty);
        }
        while (updated is null);

        return updated.Value;
    }

    /// <summary>
    /// For tests: runs after an update has found its entry and before it takes the entry's lock, the moment a sweep can
    /// evict that entry under it.
    /// </summary>
    internal Action? BetweenLookupAndApply { get; set; }

    private static Entry New(string uid, CotEvent e, Guid memberId, MarkingDefault marking, DateTime now) =>
        new(new Track
        {
            Uid = uid,
            MemberId = memberId,
            Callsign = "",
            CotType = e.Type,
            Latitude = e.Point.Lat,
            Longitude = e.Point.Lon,
            Hae = e.Point.Hae,
            ObservedAt = e.Time.UtcDateTime,
            StaleAt = StaleOf(e),
            HistoryJson = "[]",
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
            UpdatedAt = now,
        });

    /// <summary>
    /// Applies a position to an entry and marks its uid for the next flush, under the entry's lock so that a sweep never
    /// finds it changed and not yet marked. Null when the entry was evicted meanwhile (the caller takes the new one).
    /// </summary>
    private static bool? Apply(Entry entry, CotEvent e, Guid memberId, MarkingDefault marking, Outbound stamped, DateTime now, ConcurrentDictionary<string, byte> dirty)
    {
        lock (entry)
        {
            if (entry.Evicted)
            {
                return null;
            }

            var t = entry.Track;
            if (t.MemberId != memberId)
            {
                if (t.StaleAt > now)
                {
                    return false;
                }

                entry.History.Clear();
                entry.HasPosition = false;
            }
            else if (t.Classification != marking.Classification || t.ReleasableTo != marking.ReleasableTo || t.Caveats != marking.Caveats)
            {
                // The same member under another marking (an agreement changed, the member moved): the route recorded under
                // the old marking must not reach the new marking's audience.
                entry.History.Clear();
                entry.HasPosition = false;
            }

            if (entry.HasPosition)
            {
                entry.History.Enqueue((t.Latitude, t.Longitude, new DateTimeOffset(t.ObservedAt).ToUnixTimeMilliseconds()));
                while (entry.History.Count > Track.HistoryLength)
                {
                    entry.History.Dequeue();
                }
            }

            t.MemberId = memberId;
            t.Callsign = Reports.ReportRules.Truncate(e.Detail.Contact?.Callsign ?? e.Uid, Track.CallsignLength);
            t.CotType = e.Type;
            t.Latitude = e.Point.Lat;
            t.Longitude = e.Point.Lon;
            t.Hae = e.Point.Hae;
            t.Course = e.Detail.Track?.Course;
            t.Speed = e.Detail.Track?.Speed;
            t.ObservedAt = e.Time.UtcDateTime;
            t.StaleAt = StaleOf(e);
            t.Classification = marking.Classification;
            t.ReleasableTo = marking.ReleasableTo;
            t.Caveats = marking.Caveats;
            t.UpdatedAt = now;
            entry.Last = stamped;
            entry.HasPosition = true;
            // Written once a second: a uid already waiting needs no second mark (and setting it takes a lock of the dictionary).
            if (!dirty.ContainsKey(e.Uid))
            {
                dirty.TryAdd(e.Uid, 0);
            }

            return true;
        }
    }

    /// <summary>
    /// Forgets the tracks stale for longer than <see cref="Retention"/>; the number forgotten. The store has them as the last
    /// flush wrote them: a track waiting to be written (a position that came already long stale, or any position while the
    /// store cannot take writes) stays until a flush has written it, so no position a device sent is lost.
    /// Runs on the flushing loop, between flushes (a flush takes the uids it writes off the waiting list before writing).
    /// </summary>
    public int Sweep()
    {
        var cutoff = time.GetUtcNow().UtcDateTime - Retention;
        var forgotten = 0;
        foreach (var (uid, entry) in _tracks)
        {
            lock (entry)
            {
                if (entry.Track.StaleAt >= cutoff || _dirty.ContainsKey(uid))
                {
                    continue;
                }

                entry.Evicted = true;
                forgotten += _tracks.TryRemove(new KeyValuePair<string, Entry>(uid, entry)) ? 1 : 0;
            }
        }

        return forgotten;
    }

    /// <summary>
    /// The devices that reported a position within the last <see cref="MaxStale"/> plus <see cref="Retention"/> (two
    /// hours), with their member and organisation and the time of that position: after a restart, as before it, another
    /// organisation's device may not take such a device's uid (TakRouter.LoadDevices).
    /// </summary>
    public async Task<List<(string Uid, DateTime At, Guid Member, Guid Organization)>> RecentDevicesAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var since = time.GetUtcNow().UtcDateTime - (MaxStale + Retention);
        var rows = await db.Tracks.AsNoTracking().Where(t => t.ObservedAt > since)
            .Join(db.Members.AsNoTracking(), t => t.MemberId, m => m.Id, (t, m) => new { t.Uid, t.ObservedAt, t.MemberId, m.OrganizationId })
            .ToListAsync(cancellationToken);
        return [.. rows.Select(r => (r.Uid, DateTime.SpecifyKind(r.ObservedAt, DateTimeKind.Utc), r.MemberId, r.OrganizationId))];
    }

    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var now = time.GetUtcNow().UtcDateTime;
        foreach (var track in await db.Tracks.AsNoTracking().Where(t => t.StaleAt > now).ToListAsync(cancellationToken))
        {
            // After a restart a track keeps its history, and devices that connect get it as it was last sent. A track that
            // cannot be sent again costs only itself: the listener must start whatever a device once stored.
            CotEvent cot;
            try
            {
                cot = ToCot(track);
            }
            catch (Exception e) when (e is CotParseException or ArgumentException)
            {
                logger.LogWarning(e, "track {Uid} could not be loaded; it is shown again when its device next reports", track.Uid);
                continue;
            }

            var entry = new Entry(track) { HasPosition = true, Last = new Outbound(cot, droppable: true) };
            foreach (var point in ParseHistory(track.HistoryJson))
            {
                entry.History.Enqueue(point);
            }

            _tracks.TryAdd(track.Uid, entry);
        }
    }

    /// <summary>A stored track as the position event devices get, with its marking.</summary>
    private CotEvent ToCot(Track t)
    {
        var label = markings.ToDto(t.Classification, t.ReleasableTo, t.Caveats).Label!;
        // Stored before callsigns were cut, or by a path that did not check its characters: sent as it may be.
        var detail = new CotDetailBuilder().Contact(CotText.Printable(Reports.ReportRules.Truncate(t.Callsign, Track.CallsignLength)));
        if (t.Course is { } course && t.Speed is { } speed)
        {
            detail.Track(course, speed);
        }

        var observed = new DateTimeOffset(DateTime.SpecifyKind(t.ObservedAt, DateTimeKind.Utc));
        return new CotEvent
        {
            Uid = t.Uid,
            Type = t.CotType,
            How = "m-g",
            Time = observed,
            Start = observed,
            Stale = new DateTimeOffset(DateTime.SpecifyKind(t.StaleAt, DateTimeKind.Utc)),
            Access = label,
            Point = new CotPoint(t.Latitude, t.Longitude, t.Hae, CotPoint.NoValue, CotPoint.NoValue),
            Detail = detail.Marking(label).Build(),
        };
    }

    /// <summary>The history as <see cref="History(Entry)"/> writes it: [[lat,lon,ms],…]; what does not read so is skipped.</summary>
    private static IEnumerable<(double Lat, double Lon, long Ms)> ParseHistory(string json)
    {
        List<(double, double, long)> points = [];
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            foreach (var point in document.RootElement.EnumerateArray())
            {
                if (point.ValueKind == System.Text.Json.JsonValueKind.Array && point.GetArrayLength() == 3
                    && point[0].TryGetDouble(out var lat) && point[1].TryGetDouble(out var lon) && point[2].TryGetInt64(out var ms))
                {
                    points.Add((lat, lon, ms));
                }
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return points.TakeLast(Track.HistoryLength);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(CancellationToken.None);
                var now = time.GetUtcNow().UtcDateTime;
                if (now >= _nextSweep)
                {
                    _nextSweep = now + SweepInterval;
                    var forgotten = Sweep();
                    if (forgotten > 0)
                    {
                        logger.LogDebug("forgot {Count} tracks stale for over {Retention}", forgotten, Retention);
                    }

                    try
                    {
                        // Between flushes: a row deleted here that a later position brings back is written anew.
                        if (await PruneAsync(CancellationToken.None) is > 0 and var pruned)
                        {
                            logger.LogInformation("deleted {Count} stored tracks stale for over {Retention}", pruned, StoredRetention);
                        }
                    }
                    catch (Exception e)
                    {
                        logger.LogWarning(e, "deleting stored tracks stale for over {Retention} failed; trying again at the next sweep", StoredRetention);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await FlushAsync(CancellationToken.None);
    }

    /// <summary>Deletes the stored tracks stale for longer than <see cref="StoredRetention"/>; returns how many.</summary>
    public async Task<int> PruneAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow().UtcDateTime - StoredRetention;
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<ConcordDb>().Tracks.Where(t => t.StaleAt < cutoff).ExecuteDeleteAsync(cancellationToken);
    }

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_dirty.IsEmpty)
        {
            return;
        }

        var uids = _dirty.Keys.ToList();
        foreach (var uid in uids)
        {
            _dirty.TryRemove(uid, out _);
        }

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var stored = await db.Tracks.Where(t => uids.Contains(t.Uid)).ToDictionaryAsync(t => t.Uid, cancellationToken);
            foreach (var uid in uids)
            {
                if (!_tracks.TryGetValue(uid, out var entry))
                {
                    continue;
                }

                lock (entry)
                {
                    var t = entry.Track;
                    var history = History(entry);
                    if (stored.TryGetValue(uid, out var row))
                    {
                        row.MemberId = t.MemberId;
                        row.Callsign = t.Callsign;
                        row.CotType = t.CotType;
                        row.Latitude = t.Latitude;
                        row.Longitude = t.Longitude;
                        row.Hae = t.Hae;
                        row.Course = t.Course;
                        row.Speed = t.Speed;
                        row.ObservedAt = t.ObservedAt;
                        row.StaleAt = t.StaleAt;
                        row.HistoryJson = history;
                        row.Classification = t.Classification;
                        row.ReleasableTo = t.ReleasableTo;
                        row.Caveats = t.Caveats;
                        row.UpdatedAt = t.UpdatedAt;
                    }
                    else
                    {
                        db.Tracks.Add(new Track
                        {
                            Uid = uid,
                            MemberId = t.MemberId,
                            Callsign = t.Callsign,
                            CotType = t.CotType,
                            Latitude = t.Latitude,
                            Longitude = t.Longitude,
                            Hae = t.Hae,
                            Course = t.Course,
                            Speed = t.Speed,
                            ObservedAt = t.ObservedAt,
                            StaleAt = t.StaleAt,
                            HistoryJson = history,
                            Classification = t.Classification,
                            ReleasableTo = t.ReleasableTo,
                            Caveats = t.Caveats,
                            UpdatedAt = t.UpdatedAt,
                        });
                    }
                }
            }

            await db.SaveChangesAsync(cancellationToken);
            _failures.Succeeded();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Any failure of the store (a constraint, a connection lost while PostgreSQL restarts) costs a retry at the next
            // flush, never the flushing loop: an exception leaving ExecuteAsync would stop the whole server.
            if (_failures.Failed(e))
            {
                logger.LogWarning(e, "writing {Count} tracks failed; they will be written at the next flush", uids.Count);
            }

            foreach (var uid in uids)
            {
                _dirty[uid] = 0;
            }
        }
    }

    private static string History(Entry entry)
    {
        var json = new StringBuilder("[");
        foreach (var (lat, lon, ms) in entry.History)
        {
            if (json.Length > 1)
            {
                json.Append(',');
            }

            json.Append(CultureInfo.InvariantCulture, $"[{lat},{lon},{ms}]");
        }

        return json.Append(']').ToString();
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using Concord.Cot;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>
/// Routes what devices send. Every event is checked once: duplicates and replays (same uid, no newer time) are dropped;
/// a device's own positions update its track and go to every session whose member may see the device's marking;
/// markers and spot reports become Concord reports (and go to those sessions at once); GeoChat is stored and routed the
/// same way. Each event is stamped with the marking (CoT <c>access</c> and a <c>__concord</c> detail) and Concord's flow tag.
/// </summary>
internal sealed class TakRouter(IServiceScopeFactory scopes, TrackStore tracks, DeviceMarkings markings, TimeProvider time, ILogger<TakRouter> logger,
    RelayAuditor? relayAudit = null)
{
    /// <summary>The flow tag this node adds; an event coming back with it and no newer time is a loop.</summary>
    public string FlowTag { get; } = "concord-" + Guid.NewGuid().ToString("N")[..8];

    // Connected sessions as an array replaced on every attach and detach: routing reads it for every event, and a
    // concurrent dictionary's key list takes every lock of the dictionary and copies it each time.
    private readonly Lock _attaching = new();
    private volatile TakSession[] _sessions = [];
    private readonly ConcurrentDictionary<string, TakSession> _byDevice = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TakSession> _byCertificate = new(StringComparer.Ordinal);
    // The time of the newest event routed for each uid, in a box compared and swapped in place: updating the
    // dictionary's value would take one of its locks for every event.
    private readonly ConcurrentDictionary<string, Latest> _latest = new(StringComparer.Ordinal);

    // How many uids _latest holds, kept beside it: the dictionary's own count takes all its locks.
    private int _latestCount;
    private long _forgotAt;
    private long _routed;
    private long _ignored;

    // Incidents sent to devices, with the markings that let each device have them: a deleted incident (merged into
    // another, or emptied when its last report moved to another) is withdrawn from exactly the devices that may have it, with nothing of it but its uid.
    private readonly ConcurrentDictionary<Guid, (MarkingDefault[] Markings, long At)> _incidentsSent = new();

    /// <summary>How many incidents the withdrawal list holds at most; when full of incidents sent within the week, the tenth sent longest ago are forgotten.</summary>
    public const int MaxRememberedIncidents = 100_000;

    private long _prunedAt;

    // Items relayed to devices (markers, drawings, routes, alerts) with the markings they went out under: a device whose
    // member loses access to one is told to remove it before it is cut, as for incidents (devices keep markers, archived,
    // across their own restarts). With each, its latest version as it went out, for the opening picture of devices that
    // connect later. Bounded: when full, those relayed more than a day ago are forgotten, and when still full the tenth
    // relayed longest ago. Changed under _itemsGate (items are few: a person places a few a minute), read without it.
    private readonly ConcurrentDictionary<string, RelayedItem> _itemsSent = new(StringComparer.Ordinal);
    private readonly Lock _itemsGate = new();
    private long _itemsPrunedAt;
    private long _itemBytes;
    private long _itemBytesFreedAt;

    /// <summary>How many relayed items the withdrawal list holds at most.</summary>
    public const int MaxRememberedItems = 100_000;

    /// <summary>The bytes of relayed items' latest versions held for opening pictures.</summary>
    public long RememberedItemBytes
    {
        get
        {
            lock (_itemsGate)
            {
                return _itemBytes;
            }
        }
    }

    /// <summary>
    /// How many bytes of relayed items' latest versions are kept for opening pictures at most (an event is at most 64 KiB).
    /// When full, at most once a minute, the versions of items gone stale are let go, then those relayed longest ago until
    /// a quarter is free; an item whose version finds no room is still withdrawn when access narrows, but goes to no device
    /// that connects later.
    /// </summary>
    public const long MaxRememberedItemBytes = 64L * 1024 * 1024;

    /// <summary>
    /// An item relayed to devices: the markings its versions went out under (the latest version's last), when it was last
    /// relayed (or deleted), the member whose device sent it first (its organisation's item), and its latest version: the
    /// bytes as they went out (null when that version went only to the devices it named, or found no room in
    /// <see cref="MaxRememberedItemBytes"/>), its time and stale time, and the certificate of the device that sent it.
    /// <paramref name="Deleted"/>: a deletion of it was routed since to every device that may see it.
    /// <paramref name="Edited"/>: a version of it came from another member's device (a teammate's edit, a re-share): its
    /// first sender's devices may hold what they did not write, and are told to remove it when they may no longer read it.
    /// </summary>
    internal sealed record RelayedItem(MarkingDefault[] Markings, long At, Guid Sender, byte[]? Latest, long Time, long Stale, string From, bool Deleted = false,
        bool Edited = false);

    // The uids whose item changed (or was forgotten) since the store last wrote them (see TakItemStore).
    private readonly ConcurrentDictionary<string, byte> _itemsChanged = new(StringComparer.Ordinal);

    // The callsigns of devices whose session ended, with their member and device uid (under _attaching): see Claim.
    private readonly Dictionary<string, (Guid Member, string Device)> _droppedCallsigns = new(StringComparer.Ordinal);

    /// <summary>How often a device whose callsign claim was refused is judged again, on its positions.</summary>
    public static readonly TimeSpan ClaimRetry = TimeSpan.FromSeconds(1);

    /// <summary>How many callsigns of devices gone are held at most; those whose track is no longer current are let go first.</summary>
    public const int MaxDroppedCallsigns = 10_000;

    public IReadOnlyCollection<TakSession> Sessions => _sessions;

    /// <summary>
    /// The markings the versions of the one item <paramref name="uids"/> name went out under, as remembered; none when they
    /// name no remembered item, or several (a deletion of several, sent under the markings of each, would tell each one's
    /// readers the uids of the others: it goes as before).
    /// </summary>
    private List<MarkingDefault> SentUnder(IEnumerable<string> uids)
    {
        lock (_itemsGate)
        {
            var items = uids.Distinct(StringComparer.Ordinal).Select(uid => _itemsSent.TryGetValue(uid, out var item) && !item.Deleted ? item : null).OfType<RelayedItem>().ToList();
            return items is [var only] ? [.. only.Markings.Distinct()] : [];
        }
    }

    /// <summary>
    /// Records that an item <paramref name="sender"/>'s device (with certificate <paramref name="from"/>) sent was relayed
    /// under <paramref name="marking"/>, as <paramref name="sent"/>: to everyone who may see it, or only to the devices it
    /// names (<see cref="ForEveryone"/>).
    /// </summary>
    internal void RememberItem(CotEvent e, MarkingDefault marking, Guid sender, string from, Outbound sent)
    {
        var now = time.GetUtcNow().UtcTicks;
        lock (_itemsGate)
        {
            _itemsSent.TryGetValue(e.Uid, out var known);
            if (known is null && _itemsSent.Count >= MaxRememberedItems)
            {
                // A full list is scanned at most once a minute; within that minute new items go unremembered.
                if (now - _itemsPrunedAt < TimeSpan.TicksPerMinute)
                {
                    return;
                }

                _itemsPrunedAt = now;
                foreach (var (uid, entry) in _itemsSent)
                {
                    if (now - entry.At > TimeSpan.TicksPerDay)
                    {
                        RemoveItem(uid, entry);
                    }
                }

                if (_itemsSent.Count >= MaxRememberedItems)
                {
                    // Still full of items relayed within the day (devices drawing all day, a gateway relaying a fleet's
                    // markers): the tenth relayed longest ago make room, rather than every item relayed from now on going
                    // unremembered, and so never withdrawn from a device whose member loses access to it, for the rest of the day.
                    foreach (var (uid, entry) in _itemsSent.OrderBy(e => e.Value.At).Take(MaxRememberedItems / 10).ToList())
                    {
                        RemoveItem(uid, entry);
                    }
                }
            }

            if (known is { Deleted: false } && known.Time > e.Time.UtcTicks)
            {
                // Two devices of one organisation editing an item at once may be routed out of order: the newer version
                // stays, and its marking stays the last (devices may still hold the older under its own).
                Replace(e.Uid, known, known with
                {
                    Markings = Same(known.Markings[^1], marking) ? known.Markings : [.. known.Markings[..^1].Where(k => !Same(k, marking)), marking, known.Markings[^1]],
                    At = now,
                    Edited = known.Edited || sender != known.Sender,
                });
                return;
            }

            if (known?.Latest is not null)
            {
                // Its room given back first, so that making room below does not count it twice.
                var without = known with { Latest = null };
                Replace(e.Uid, known, without);
                known = without;
            }

            // A version sent to named devices only is for them: a device connecting later is sent none of the item.
            var latest = ForEveryone(e.Detail) && sent.Xml is var xml && Room(xml.Length, now) ? xml : null;
            // The markings it went out under, the latest last: a device holds the latest version its member could read.
            // Its sender stays the member who sent it first, also when it comes back after a deletion or after memory
            // forgot it (a teammate re-sharing it): the replay check knows them, and after a restart learns them from it.
            var owner = known?.Sender ?? (_latest.TryGetValue(e.Uid, out var first) ? first.Owner : sender);
            Replace(e.Uid, known, known is { Deleted: false }
                ? known with
                {
                    Markings = WithLatest(known.Markings, marking),
                    At = now,
                    Latest = latest,
                    Time = e.Time.UtcTicks,
                    Stale = e.Stale.UtcTicks,
                    From = from,
                    Edited = known.Edited || sender != owner,
                }
                : new RelayedItem([marking], now, owner, latest, e.Time.UtcTicks, e.Stale.UtcTicks, from, Edited: (known?.Edited ?? false) || sender != owner));
        }
    }

    /// <summary>
    /// Whether <paramref name="bytes"/> more of items' latest versions fit in <see cref="MaxRememberedItemBytes"/>, making
    /// room when full (at most once a minute): first from items gone stale, then from those relayed longest ago. Under _itemsGate.
    /// </summary>
    private bool Room(long bytes, long now)
    {
        if (_itemBytes + bytes <= MaxRememberedItemBytes)
        {
            return true;
        }

        if (now - _itemBytesFreedAt < TimeSpan.TicksPerMinute)
        {
            return false;
        }

        _itemBytesFreedAt = now;
        foreach (var (uid, entry) in _itemsSent)
        {
            if (entry.Latest is not null && entry.Stale <= now)
            {
                Replace(uid, entry, entry with { Latest = null });
            }
        }

        const long Target = MaxRememberedItemBytes / 4 * 3;
        if (_itemBytes + bytes > Target)
        {
            foreach (var (uid, entry) in _itemsSent.Where(e => e.Value.Latest is not null).OrderBy(e => e.Value.At).ToList())
            {
                Replace(uid, entry, entry with { Latest = null });
                if (_itemBytes + bytes <= Target)
                {
                    break;
                }
            }
        }

        return _itemBytes + bytes <= MaxRememberedItemBytes;
    }

    /// <summary>
    /// Records that a deletion of <paramref name="uid"/> was routed to every device that may see it: devices no longer
    /// hold it, so there is nothing to withdraw or send.
    /// </summary>
    internal void ItemDeleted(string uid)
    {
        lock (_itemsGate)
        {
            if (_itemsSent.TryGetValue(uid, out var known))
            {
                // Kept as deleted, since when (until pruned as any other), for an opening picture that sent it meanwhile
                // (CurrentItem) and for devices that were away (ItemsGoneSince).
                Replace(uid, known, known with { Latest = null, Deleted = true, At = time.GetUtcNow().UtcTicks });
            }
        }
    }

    /// <summary>Puts <paramref name="entry"/> in place of <paramref name="known"/> (none before it: null), counting the room their latest versions take. Under _itemsGate.</summary>
    private void Replace(string uid, RelayedItem? known, RelayedItem entry)
    {
        _itemBytes += (entry.Latest?.Length ?? 0) - (known?.Latest?.Length ?? 0);
        _itemsSent[uid] = entry;
        _itemsChanged[uid] = 0;
    }

    private void RemoveItem(string uid, RelayedItem entry)
    {
        if (_itemsSent.TryRemove(KeyValuePair.Create(uid, entry)))
        {
            _itemBytes -= entry.Latest?.Length ?? 0;
            _itemsChanged[uid] = 0;
        }
    }

    /// <summary>
    /// The items changed or forgotten (null) since this was last called, as they are now, for the store to write. Read
    /// without the gate: an item changed again meanwhile is given again by the next call.
    /// </summary>
    internal List<(string Uid, RelayedItem? Item)> TakeChangedItems()
    {
        var changed = new List<(string, RelayedItem?)>();
        foreach (var uid in _itemsChanged.Keys)
        {
            if (_itemsChanged.TryRemove(uid, out _))
            {
                changed.Add((uid, _itemsSent.TryGetValue(uid, out var item) ? item : null));
            }
        }

        return changed;
    }

    /// <summary>Gives <paramref name="uids"/> to the next <see cref="TakeChangedItems"/> again (writing them failed).</summary>
    internal void ItemsNotStored(IEnumerable<string> uids)
    {
        foreach (var uid in uids)
        {
            _itemsChanged[uid] = 0;
        }
    }

    /// <summary>
    /// Takes the items stored before a restart into memory (before any device connects), the
    /// <see cref="MaxRememberedItems"/> relayed most recently; the latest versions of those not stale, relayed most
    /// recently first, while they fit in <see cref="MaxRememberedItemBytes"/>. What is left out is forgotten in the store too.
    /// The replay check learns each item's latest time and owner (its first sender and their organisation), as it knew
    /// them: an older version replayed after the restart is dropped, and a drawing stays its organisation's.
    /// </summary>
    /// <summary>
    /// At start, the devices that reported within the last two hours (TrackStore.RecentDevicesAsync): the replay check
    /// learns each one's latest position and owner, so that another organisation's device is refused their uid for as long
    /// as before the restart (<see cref="Refused"/>), and an older position replayed is dropped.
    /// </summary>
    internal void LoadDevices(IEnumerable<(string Uid, DateTime At, Guid Member, Guid Organization)> devices)
    {
        foreach (var (uid, at, member, organization) in devices)
        {
            if (_latest.TryAdd(uid, new Latest(at.Ticks, member, organization, item: false)))
            {
                Interlocked.Increment(ref _latestCount);
            }
        }
    }

    /// <summary>
    /// At start every link has dropped: the callsigns of the current tracks are held for their devices as
    /// <see cref="Detach"/> holds them (see <see cref="Claim"/>), the newest first. Forgotten, the first device back
    /// claiming another member's callsign took it, and the direct messages addressed to it. A callsign on current tracks
    /// of two members (one was refused it, and its track still says it) is held for neither: which one held it is not stored.
    /// </summary>
    internal void LoadCallsigns(IEnumerable<Track> current)
    {
        var held = current.Where(t => t.Callsign.Length > 0).GroupBy(t => t.Callsign, StringComparer.Ordinal)
            .Where(g => g.Select(t => t.MemberId).Distinct().Count() == 1)
            .Select(g => g.MaxBy(t => t.ObservedAt)!).OrderByDescending(t => t.ObservedAt);
        lock (_attaching)
        {
            foreach (var track in held)
            {
                if (_droppedCallsigns.Count >= MaxDroppedCallsigns)
                {
                    break;
                }

                _droppedCallsigns.TryAdd(track.Callsign, (track.MemberId, track.Uid));
            }
        }
    }

    internal void LoadItems(IEnumerable<(string Uid, RelayedItem Item, Guid SenderOrganization)> stored)
    {
        var now = time.GetUtcNow().UtcTicks;
        lock (_itemsGate)
        {
            var kept = 0;
            foreach (var (uid, item, organization) in stored.OrderByDescending(s => s.Item.At))
            {
                if (kept++ >= MaxRememberedItems)
                {
                    _itemsChanged[uid] = 0;
                    continue;
                }

                var fits = item.Latest is { } latest && item.Stale > now && _itemBytes + latest.Length <= MaxRememberedItemBytes;
                var entry = fits ? item : item with { Latest = null };
                if (entry.Latest is null && item.Latest is not null)
                {
                    _itemsChanged[uid] = 0;
                }

                _itemBytes += entry.Latest?.Length ?? 0;
                _itemsSent[uid] = entry;
                if (_latest.TryAdd(uid, new Latest(item.Time, item.Sender, organization, item: true)))
                {
                    Interlocked.Increment(ref _latestCount);
                }
            }
        }
    }

    /// <summary>
    /// The latest versions of the items other devices sent that <paramref name="viewer"/> may see now, not yet stale, that
    /// went to every device that may see them: the <paramref name="limit"/> relayed most recently, for the opening picture
    /// of the device with certificate <paramref name="device"/> connecting after they went out.
    /// </summary>
    public List<(string Uid, byte[] Xml, MarkingDefault Marking)> CurrentItemsFor(Viewer viewer, string device, DateTimeOffset now, int limit) =>
        [.. _itemsSent.Select(e => (e.Key, e.Value, Xml: CurrentFor(e.Value, viewer, device, now)))
            .Where(e => e.Xml is not null)
            .OrderByDescending(e => e.Value.At).Take(limit)
            .Select(e => (e.Key, e.Xml!, e.Value.Markings[^1]))];

    /// <summary>The latest version of <paramref name="uid"/> for the device, as <see cref="CurrentItemsFor"/> would give it, or null.</summary>
    public byte[]? CurrentItemFor(string uid, Viewer viewer, string device, DateTimeOffset now) =>
        _itemsSent.TryGetValue(uid, out var entry) ? CurrentFor(entry, viewer, device, now) : null;

    /// <summary>
    /// What a device of <paramref name="viewer"/> should hold of <paramref name="uid"/> now, for an opening picture that
    /// sent <paramref name="sent"/>: null when that is still it (or the item is forgotten), its latest version when it
    /// changed since (with its bytes), or a deletion when it was deleted since or relayed since under a marking they may not read.
    /// </summary>
    public (Outbound Send, byte[]? Latest)? CurrentItem(string uid, byte[] sent, Viewer viewer, string device, DateTimeOffset now)
    {
        if (!_itemsSent.TryGetValue(uid, out var entry) || ReferenceEquals(entry.Latest, sent))
        {
            return null;
        }

        if (CurrentFor(entry, viewer, device, now) is { } latest)
        {
            return (ItemOutbound(uid, latest), latest);
        }

        // A version since that went to named devices only (or found no room in memory) leaves the device with the one it
        // has, as it leaves the devices connected then.
        var marking = entry.Markings[^1];
        return entry.Deleted || !marking.ReadableBy(viewer)
            ? (ItemDeletion(uid, now), null)
            : null;
    }

    /// <summary>A deletion of an item for a device that may hold it (the latest event of the item's uid in its queue).</summary>
    public static Outbound ItemDeletion(string uid, DateTimeOffset at) => new(CotControl.CreateDelete(uid, at), droppable: false) { Uid = uid };

    /// <summary>An item's latest version as it went out, sent again (parsed again only for a device speaking protobuf).</summary>
    public static Outbound ItemOutbound(string uid, byte[] xml) => new(xml, () => ParseKept(xml), droppable: false) { Uid = uid };

    /// <summary>An item's version as it was kept (written by this server, so read whatever its size).</summary>
    private static CotEvent ParseKept(byte[] xml) =>
        CotXml.Parse(xml, new CotParseOptions { MaxDocumentBytes = Math.Max(xml.Length, CotParseOptions.DefaultMaxDocumentBytes) });

    private static byte[]? CurrentFor(RelayedItem entry, Viewer viewer, string device, DateTimeOffset now) =>
        entry is { Deleted: false, Latest: { } latest } && entry.From != device && entry.Stale > now.UtcTicks
            && entry.Markings[^1] is var marking && marking.ReadableBy(viewer)
            ? latest
            : null;

    /// <summary>
    /// The items other members' devices sent (or edited) that a device of <paramref name="viewer"/> may hold (the latest version
    /// relayed under a marking they may read) and <paramref name="now"/> may not read (all of them when
    /// <paramref name="now"/> is null: access withdrawn), the <paramref name="limit"/> relayed most recently.
    /// </summary>
    public List<string> ItemsNoLongerReadable(Viewer viewer, Viewer? now, int limit) =>
        [.. _itemsSent.Where(e => !e.Value.Deleted && (e.Value.Sender != viewer.MemberId || e.Value.Edited)
                && e.Value.Markings.LastOrDefault(m => m.ReadableBy(viewer)) is { } held
                && (now is null || !held.ReadableBy(now)))
            .OrderByDescending(e => e.Value.At).Take(limit).Select(e => e.Key)];

    /// <summary>
    /// What a device of the member, connecting as <paramref name="now"/>, may still hold of what other devices sent since its
    /// last connection began (<paramref name="began"/>, as <paramref name="before"/>): the items deleted since that it may
    /// have had (a version relayed under a marking <paramref name="before"/> or <paramref name="now"/> may read) and, when
    /// access <paramref name="narrowed"/>, those relayed under a marking they could read and may no longer; the
    /// <paramref name="limit"/> relayed or deleted most recently. Deleted items are known only from a connection that
    /// recorded when it began.
    /// </summary>
    public List<string> ItemsGoneSince(Viewer before, Viewer now, DateTimeOffset? began, bool narrowed, int limit)
    {
        var deleted = began is { } since
            ? _itemsSent.Where(e => e.Value.Deleted && e.Value.At >= since.UtcTicks
                    && e.Value.Markings.Any(m => m.ReadableBy(before) || m.ReadableBy(now)))
                .OrderByDescending(e => e.Value.At).Take(limit).Select(e => e.Key).ToList()
            : [];
        return narrowed ? [.. deleted, .. ItemsNoLongerReadable(before, now, limit - deleted.Count)] : deleted;
    }

    /// <summary>
    /// Checks the connected devices' access again at once and cuts those whose access has gone or changed (set by the TAK
    /// server when it starts): the incident feed calls it when the change feed shows a change to a member, an
    /// organisation, a group or an agreement, before it sends anything of that round.
    /// </summary>
    public Func<CancellationToken, Task>? CheckAccess { get; set; }

    /// <summary>How many uids the replay check remembers.</summary>
    public int RememberedUids => Volatile.Read(ref _latestCount);

    /// <summary>Records that an incident went out under <paramref name="marking"/>.</summary>
    public void Remember(Guid incidentId, MarkingDefault marking)
    {
        var now = time.GetUtcNow().UtcTicks;
        if (_incidentsSent.Count >= MaxRememberedIncidents && !_incidentsSent.ContainsKey(incidentId))
        {
            // Devices drop an incident a week after it was sent (its stale time): older entries need no withdrawal. A full
            // list of recent entries would otherwise be scanned for every incident sent: at most once a minute.
            var last = Interlocked.Read(ref _prunedAt);
            if (now - last < TimeSpan.TicksPerMinute || Interlocked.CompareExchange(ref _prunedAt, now, last) != last)
            {
                return;
            }

            foreach (var (id, entry) in _incidentsSent)
            {
                if (now - entry.At > CotMapping.IncidentLifetime.Ticks)
                {
                    _incidentsSent.TryRemove(id, out _);
                }
            }

            if (_incidentsSent.Count >= MaxRememberedIncidents)
            {
                // Still full of incidents sent within the week (a bulk import with devices connected): the tenth sent
                // longest ago make room, rather than every incident sent from now on going unremembered, and so never
                // withdrawn, for a week. Devices keep those until they go stale.
                foreach (var id in _incidentsSent.OrderBy(e => e.Value.At).Take(MaxRememberedIncidents / 10).Select(e => e.Key).ToList())
                {
                    _incidentsSent.TryRemove(id, out _);
                }
            }
        }

        _incidentsSent.AddOrUpdate(incidentId, ([marking], now), (_, known) => (WithLatest(known.Markings, marking), now));
    }

    /// <summary>The markings something went out under, with <paramref name="marking"/> as the latest (last, once).</summary>
    private static MarkingDefault[] WithLatest(MarkingDefault[] known, MarkingDefault marking) =>
        known is [.., var last] && Same(last, marking)
            ? known
            : [.. known.Where(k => !Same(k, marking)), marking];

    private static bool Same(MarkingDefault a, MarkingDefault b) => (a.Classification, a.ReleasableTo, a.Caveats) == (b.Classification, b.ReleasableTo, b.Caveats);

    /// <summary>
    /// Records that <paramref name="viewer"/>'s device was sent <paramref name="view"/>, the incident as built from the
    /// reports they may see. The view's own marking will not do for a mixed incident: it takes the releasability its
    /// reports share, which may be empty although the viewer may read each report (one for the military, one for their
    /// nation), and a device remembered under it would never be told when the incident is gone for it. What is
    /// remembered instead is the view's level and caveats for the viewer's organisation: the viewer passes it, and so does
    /// any colleague who may read every report the view was built from, whose device got the same view.
    /// </summary>
    public void RememberSent(Guid incidentId, Incident view, Viewer viewer) =>
        Remember(incidentId, new MarkingDefault(view.Classification, Releasability.Encode([Community.Organization(viewer.OrganizationCode)]), view.Caveats, ""));

    /// <summary>Whether a device of <paramref name="viewer"/> may have been sent the incident (under a marking they may read).</summary>
    public bool MayHave(Guid incidentId, Viewer viewer) =>
        _incidentsSent.TryGetValue(incidentId, out var sent) && sent.Markings.Any(m => m.ReadableBy(viewer));

    /// <summary>
    /// The incidents a device of <paramref name="viewer"/> may have been sent, the <paramref name="limit"/> sent most
    /// recently (a scan, for the rare moment a member's access changes).
    /// </summary>
    public List<Guid> MayHaveLatest(Viewer viewer, int limit) =>
        [.. _incidentsSent.Where(e => e.Value.Markings.Any(m => m.ReadableBy(viewer)))
            .OrderByDescending(e => e.Value.At).Take(limit).Select(e => e.Key)];

    /// <summary>Whether some device may have been sent the incident, under any marking.</summary>
    public bool MayHaveAny(Guid incidentId) => _incidentsSent.ContainsKey(incidentId);

    /// <summary>Forgets a deleted incident that no device is connected to be told of.</summary>
    public void Forget(Guid incidentId) => _incidentsSent.TryRemove(incidentId, out _);

    public bool RemembersIncidents => !_incidentsSent.IsEmpty;

    private long _told;

    /// <summary>
    /// The position of the change feed up to which the incident feed has withdrawn deleted incidents from the connected
    /// devices (0 before its first read). A device connecting after it is told of later deletions live; of those up to it
    /// that came after its last connection, on connecting (TakServer).
    /// </summary>
    public long Told
    {
        get => Interlocked.Read(ref _told);
        set => Interlocked.Exchange(ref _told, value);
    }

    /// <summary>
    /// Tells the devices that may have a deleted incident to remove it (t-x-d-d): those this server remembers sending it
    /// to, and those whose members <paramref name="held"/> says may read a report it held (which covers an incident
    /// sent before a restart). The number of devices told.
    /// </summary>
    public int Withdraw(Guid incidentId, DateTimeOffset now, Func<Viewer, bool>? held = null)
    {
        MarkingDefault[] markings = _incidentsSent.TryRemove(incidentId, out var sentWith) ? sentWith.Markings : [];
        if (markings.Length == 0 && held is null)
        {
            return 0;
        }

        var delete = CotMapping.Withdrawal(incidentId, now);
        var sent = 0;
        foreach (var session in _sessions)
        {
            if ((markings.Any(m => m.ReadableBy(session.Viewer)) || held?.Invoke(session.Viewer) == true)
                && session.Send(delete))
            {
                // A session still sending its opening picture reconciles this incident at its end (TakServer).
                session.NoteLiveIncident(incidentId);
                sent++;
            }
        }

        return sent;
    }

    public long Routed => Interlocked.Read(ref _routed);

    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>One live session per certificate: a reconnecting device replaces its older session.</summary>
    public void Attach(TakSession session)
    {
        List<TakSession> replaced = [];
        lock (_attaching)
        {
            // Chosen under the lock, so that of two connections attaching at once the later one stays (each choosing
            // outside it, they could close each other).
            if (!session.Certificate.StartsWith("tcp:", StringComparison.Ordinal))
            {
                replaced = [.. _sessions.Where(s => s.Certificate == session.Certificate)];
                _byCertificate[session.Certificate] = session;
            }

            _sessions = [.. _sessions, session];
        }

        foreach (var other in replaced)
        {
            other.Close("replaced by a newer connection with the same certificate");
        }
    }

    public void Detach(TakSession session)
    {
        lock (_attaching)
        {
            _sessions = [.. _sessions.Where(s => s != session)];
            if (session.Callsign is { } callsign && session.DeviceUid is { } device)
            {
                // Held for the device while its track is current (see Claim): a link that drops for a minute must not give
                // its callsign, and the direct messages addressed to it, to another member's device.
                if (_droppedCallsigns.Count >= MaxDroppedCallsigns)
                {
                    var now = time.GetUtcNow().UtcDateTime;
                    foreach (var known in _droppedCallsigns.Where(d => tracks.OwnerOf(d.Value.Device, now) != d.Value.Member).Select(d => d.Key).ToList())
                    {
                        _droppedCallsigns.Remove(known);
                    }
                }

                if (_droppedCallsigns.Count < MaxDroppedCallsigns)
                {
                    _droppedCallsigns[callsign] = (session.Viewer.MemberId, device);
                }
            }
        }

        _byCertificate.TryRemove(new KeyValuePair<string, TakSession>(session.Certificate, session));
        if (session.DeviceUid is { } uid)
        {
            _byDevice.TryRemove(new KeyValuePair<string, TakSession>(uid, session));
        }
    }

    /// <summary>
    /// Routes one event from <paramref name="from"/>. Positions queued for other devices wait in
    /// <paramref name="deliveries"/>, when given, until the caller rings them (after the rest of its read); alerts,
    /// markers and chat are always sent at once.
    /// </summary>
    public async ValueTask OnEventAsync(TakSession from, CotEvent e, ReadOnlyMemory<byte> raw = default, Deliveries? deliveries = null)
    {
        if (from.Draining)
        {
            // Its access was withdrawn or narrowed: what it still sends until the cut is not handled.
            return;
        }

        var now = time.GetUtcNow();
        if (CotControl.IsPing(e))
        {
            from.SendControl(new Outbound(CotControl.CreatePong(now), droppable: false));
            return;
        }

        if (e.Type == CotControl.VersionRequestType)
        {
            var accepted = CotControl.TryGetRequestedVersion(e, out var version) && version == 1;
            if (from.SwitchRequested)
            {
                // Asked again once the stream is protobuf (or switching to it): answered in the stream's format, switching
                // nothing. Written as the switch, its XML would land in a stream the device reads as frames, and cut it.
                from.SendControl(new Outbound(CotControl.CreateVersionResponse("concord", now, accepted), droppable: false));
                return;
            }

            from.SwitchRequested = accepted;
            from.SendControl(new Outbound(CotControl.CreateVersionResponse("concord", now, accepted), droppable: false) { SwitchesToProtobuf = accepted });
            return;
        }

        if (from.ReceiveOnly)
        {
            Refuse(from, e, "the plain TCP listener only sends to devices");
            return;
        }

        if (e.Type.StartsWith("t-", StringComparison.Ordinal) && e.Type != CotMapping.DeleteType)
        {
            return;
        }

        // What the event becomes, decided before anything is remembered of it: an event Concord does not route leaves no
        // trace, so a device inventing uids of types nobody takes cannot grow the replay check's memory.
        var (route, category) = RouteOf(from, e);
        if (route == Route.None)
        {
            Interlocked.Increment(ref _ignored);
            return;
        }

        if (e.Uid.Length > MaxUidLength)
        {
            Refuse(from, e, $"its uid is longer than {MaxUidLength} characters");
            return;
        }

        // The event's own attributes are kept with it (a track's type, a marker's event sent to every device that connects,
        // the map's tracks): padded, they would get round the limits on what a device may send, as a padded detail would.
        if (LongAttribute(e) is { } attribute)
        {
            Refuse(from, e, $"its {attribute.Name} is {attribute.Length} characters long; at most {attribute.Max} are allowed");
            return;
        }

        if (route == Route.Position && e.Detail.Xml.Length > MaxPositionDetailLength)
        {
            Refuse(from, e, $"its detail is longer than the {MaxPositionDetailLength} characters a position may carry");
            return;
        }

        // A callsign is claimed (messages are addressed by it) and remembered after the device's link drops: one longer than a
        // track keeps could be made as long as a frame, each held for an hour.
        if (route == Route.Position && e.Detail.Contact?.Callsign is { Length: > Track.CallsignLength } longCallsign)
        {
            Refuse(from, e, $"its callsign is {longCallsign.Length} characters long; at most {Track.CallsignLength} are allowed");
            return;
        }

        // A device whose clock runs ahead would otherwise freeze its uid: nothing older than that time would pass again.
        if (e.Time > now + ReportRules.ClockSkew)
        {
            Refuse(from, e, $"its time {e.Time:O} is in the future beyond the {ReportRules.ClockSkew.TotalMinutes:0} minutes allowed for clock skew");
            return;
        }

        // Replays, duplicates and loops: nothing newer than what was already routed for this uid. A re-sent event that
        // carries our flow tag but a newer time is a legitimate edit and goes through.
        // An event already stale is a replay (or a very late delivery) that no device should display. Said in the log
        // (sampled, as every refusal): a device whose clock runs behind sends nothing but such events, and its patrol
        // would otherwise be missing from the picture with nothing telling the operators why.
        var instantaneous = Instantaneous(e, route);
        if (instantaneous ? e.Time < now - InstantLifetime : e.IsStaleAt(now))
        {
            Refuse(from, e, instantaneous
                ? $"it was sent at {e.Time.UtcDateTime:O}, more than {InstantLifetime.TotalMinutes:0} minutes before the server's time {now.UtcDateTime:O}: a replay, a late delivery, or a device clock running behind"
                : $"it was stale on arrival (stale at {e.Stale.UtcDateTime:O}, the server's time {now.UtcDateTime:O}): a replay, a late delivery, or a device clock running behind");
            return;
        }

        if (route == Route.Receipt)
        {
            // Nothing of a receipt is kept or remembered (its uid is the message's id, which every member of a group answers
            // under): it goes to the message's sender, or is dropped. One that cannot be handled costs only itself.
            try
            {
                Receipt(from, e);
            }
            catch (Exception failure) when (failure is not OperationCanceledException)
            {
                logger.LogWarning(failure, "TAK receipt {Uid} from {User} could not be handled; the device stays connected", e.Uid, from.Viewer.UserName);
            }

            return;
        }

        if (Volatile.Read(ref _latestCount) is var count && count > TrackedUidLimit
            && now.UtcTicks - Interlocked.Read(ref _forgotAt) > (count > 2 * TrackedUidLimit ? TimeSpan.TicksPerSecond : TimeSpan.TicksPerMinute))
        {
            // At most once a minute (when every uid was seen within the day, forgetting finds nothing to forget), or once a
            // second while a flood of new uids holds twice the limit.
            Interlocked.Exchange(ref _forgotAt, now.UtcTicks);
            Forget(now);
        }

        // Before the replay check, which would otherwise record the time of an event that is then refused: a device must
        // not freeze, relabel or delete what belongs to another member, nor speak for Concord's own incidents.
        var refusal = Refused(from, e, route, now);
        var known = _latest.TryGetValue(e.Uid, out var seen);
        if (refusal is null && known && e.Time.UtcTicks <= Interlocked.Read(ref seen!.Ticks))
        {
            // A replay, dropped before anything is asked of the store (the replay check below would drop it too, after a
            // deletion's query of who owns what it names: a device looping one deletion would cost a query a copy).
            Interlocked.Increment(ref _ignored);
            return;
        }

        MarkingDefault? itemMarking = null;
        try
        {
            refusal ??= e.Type == CotMapping.DeleteType ? await DeletesItemOfAnotherAsync(from, e, m => itemMarking = m)
                : !known ? await MarkerOfAnotherOrganisationAsync(from, e) : null;
        }
        catch (Exception failure) when (failure is not OperationCanceledException)
        {
            // Whose item a deletion names is asked of the store, which may fail (busy, restarting): the event costs only
            // itself, and the device stays connected. Nothing was recorded, so the device may send it again.
            logger.LogWarning(failure, "TAK event {Uid} ({Type}) from {User} could not be checked; the device stays connected", e.Uid, e.Type, from.Viewer.UserName);
            return;
        }

        if (refusal is not null)
        {
            Refuse(from, e, refusal);
            return;
        }

        if (!Newer(e.Uid, e.Time, from.Viewer, item: route != Route.Position, out var previous))
        {
            Interlocked.Increment(ref _ignored);
            return;
        }

        try
        {
            switch (route)
            {
                case Route.Chat:
                    await ChatAsync(from, e, previous);
                    break;
                case Route.Position:
                    Position(from, e, raw, deliveries);
                    break;
                case Route.Marker:
                    await MarkerAsync(from, e, category!, raw, previous);
                    break;
                default:
                    // Emergencies, CASEVAC requests, drawings, routes and deletions: passed on to the devices that may see them, never
                    // dropped. A deletion of markers stored as reports goes where the markers went, under their marking.
                    var marking = itemMarking ?? from.Marking;
                    // Read before the deletion is recorded below: the markings the versions of what it deletes went out under.
                    var sentUnder = e.Type == CotMapping.DeleteType && ForEveryone(e.Detail)
                        ? SentUnder(e.Detail.Links.Select(l => l.Uid).OfType<string>().Append(e.Uid)) : [];
                    if (e.Type == CotMapping.DeleteType && ForEveryone(e.Detail))
                    {
                        // Gone from the devices (a deletion for named devices only leaves the others holding it): nothing
                        // to withdraw any more.
                        foreach (var uid in e.Detail.Links.Select(l => l.Uid).OfType<string>().Append(e.Uid))
                        {
                            ItemDeleted(uid);
                        }
                    }

                    var relayed = Stamped(e, raw, marking, droppable: false);
                    if (e.Type != CotMapping.DeleteType)
                    {
                        RememberItem(e, marking, from.Viewer.MemberId, from.Certificate, relayed);
                    }

                    // A deletion names what it deletes, and reads nothing of it: it waits only behind the events of those uids.
                    if (e.Type == CotMapping.DeleteType)
                    {
                        var named = e.Detail.Links.Select(l => l.Uid).OfType<string>().Append(e.Uid).ToList();
                        if (sentUnder.Count > 0)
                        {
                            // Each version of an item went to the readers of its own marking (a suspect marker edited to
                            // hostile went first to every force, then to the battalion): the deletion goes to the readers of
                            // each, under that marking, each device once, so that none is left holding a version. (Not to
                            // the readers of the device's positions: they may never have seen the item, nor may learn its uid.)
                            var told = new HashSet<TakSession>();
                            foreach (var under in (itemMarking is null ? sentUnder : sentUnder.Append(itemMarking)).Distinct())
                            {
                                Broadcast(Stamped(e, raw, under, droppable: false), under, from, named[0], null, alsoUids: named, already: told);
                            }
                        }
                        else
                        {
                            Deliver(relayed, marking, from, e.Detail, named[0], null, named);
                        }
                    }
                    else
                    {
                        Deliver(relayed, marking, from, e.Detail, e.Uid, RelayEntities.Item);
                    }

                    break;
            }
        }
        catch (Exception failure)
        {
            Failed(from, e, previous, failure);
        }
    }

    /// <summary>
    /// An event that could not be handled costs only itself: the device stays connected, and the event is forgotten by the
    /// replay check, so that the device sending it again (after a restart of the server, or once the store is back) is not
    /// taken for a replay.
    /// </summary>
    private void Failed(TakSession from, CotEvent e, long previous, Exception failure)
    {
        Unrecord(e.Uid, e.Time, previous);
        if (failure is not OperationCanceledException)
        {
            logger.LogWarning(failure, "TAK event {Uid} ({Type}) from {User} could not be handled; the device stays connected", e.Uid, e.Type, from.Viewer.UserName);
        }
    }

    /// <summary>
    /// Stores what an event becomes (a report, a message) after the device's earlier stores and without holding up its later
    /// events: the other devices already have the event, and an emergency sent after a marker must not wait for the report
    /// writer (busy with an import, or a store failing over).
    /// </summary>
    private ValueTask StoreAsync(TakSession from, CotEvent e, long previous, Func<Task> store) => from.Allowance.StoreAsync(async () =>
    {
        try
        {
            await store();
        }
        catch (Exception failure)
        {
            Failed(from, e, previous, failure);
        }
    });

    /// <summary>
    /// Forgets that <paramref name="uid"/> was routed at <paramref name="time"/>, unless a newer event has been since: an
    /// edit puts back the time it replaced (the item keeps its owner); the first event of a uid takes its entry with it.
    /// </summary>
    private void Unrecord(string uid, DateTimeOffset time, long previous)
    {
        if (!_latest.TryGetValue(uid, out var latest))
        {
            return;
        }

        if (previous != 0)
        {
            Interlocked.CompareExchange(ref latest.Ticks, previous, time.UtcTicks);
        }
        else if (Interlocked.Read(ref latest.Ticks) == time.UtcTicks && _latest.TryRemove(new KeyValuePair<string, Latest>(uid, latest)))
        {
            Interlocked.Decrement(ref _latestCount);
        }
    }

    /// <summary>The longest uid routed: real devices' uids (GeoChat's are the longest) are under 100 characters.</summary>
    public const int MaxUidLength = 256;

    /// <summary>The longest CoT type routed: real types (a-f-G-U-C-I, b-m-p-s-m, u-d-f) are under 40 characters.</summary>
    public const int MaxTypeLength = 64;

    /// <summary>The longest <c>how</c>, <c>version</c>, <c>qos</c> or <c>opex</c> routed: real ones are a few characters.</summary>
    public const int MaxShortAttributeLength = 128;

    /// <summary>The first of the event's own attributes longer than Concord keeps, or null.</summary>
    private static (string Name, int Length, int Max)? LongAttribute(CotEvent e) =>
        e.Type.Length > MaxTypeLength ? ("type", e.Type.Length, MaxTypeLength)
        : e.How?.Length > MaxShortAttributeLength ? ("how", e.How.Length, MaxShortAttributeLength)
        : e.Version.Length > MaxShortAttributeLength ? ("version", e.Version.Length, MaxShortAttributeLength)
        : e.Qos?.Length > MaxShortAttributeLength ? ("qos", e.Qos.Length, MaxShortAttributeLength)
        : e.Opex?.Length > MaxShortAttributeLength ? ("opex", e.Opex.Length, MaxShortAttributeLength)
        : null;

    /// <summary>
    /// The largest detail of a position, in characters: real devices' are under 2,000. Each track keeps its last position
    /// for up to two hours and sends it to every device that connects; positions padded to the frame's limit under new
    /// uids (up to <see cref="MaxTracksPerMember"/>) would hold hundreds of megabytes for one member.
    /// </summary>
    public const int MaxPositionDetailLength = 8_192;

    /// <summary>
    /// How much larger than its canonical detail an event's bytes may be and still be passed on as they came: the event's
    /// own attributes and point as clients write them (some 300 bytes), with room for a pretty-printed event's indentation.
    /// </summary>
    private const int RawSlack = 2_048;

    /// <summary>
    /// How long after it was sent a message or a deletion that is stale as soon as it starts is still routed (see
    /// <see cref="Instantaneous"/>): as long as a device's clock may run ahead.
    /// </summary>
    public static readonly TimeSpan InstantLifetime = ReportRules.ClockSkew;

    /// <summary>
    /// A GeoChat message or a deletion whose stale time is not after its start: news when it is sent, not something to
    /// display until a stale time. WearTAK sends its messages so, and the deletion most ATAK plugins send sets stale,
    /// start and time alike; judged by their stale time they were all dropped as stale on arrival. Judged by their time.
    /// </summary>
    private static bool Instantaneous(CotEvent e, Route route) =>
        (route == Route.Chat || e.Type == CotMapping.DeleteType) && e.Stale <= e.Start;

    private enum Route
    {
        None,
        Chat,
        Receipt,
        Position,
        Marker,
        Relayed,
    }

    private static (Route Route, string? Category) RouteOf(TakSession from, CotEvent e) =>
        e.Type == CotMapping.ChatType ? (Route.Chat, null)
        : CotMapping.IsChatReceipt(e.Type) ? (Route.Receipt, null)
        : CotMapping.IsPosition(e, from.DeviceUid) ? (Route.Position, null)
        : CotMapping.MarkerCategory(e.Type) is { } category ? (Route.Marker, (string?)category)
        : CotMapping.IsRelayed(e.Type) ? (Route.Relayed, null)
        : (Route.None, null);

    private void Refuse(TakSession from, CotEvent e, string reason)
    {
        Interlocked.Increment(ref _ignored);
        if (from.ShouldLogRefused())
        {
            logger.LogInformation("TAK event {Uid} ({Type}) from {User} ({Remote}) not routed: {Reason}", e.Uid, e.Type, from.Viewer.UserName, from.Remote, reason);
        }
    }

    /// <summary>
    /// Whether an event is for every device that may see it: it names no &lt;marti&gt; destination and is not a GeoChat
    /// message (or receipt) to a group (see <see cref="Deliver"/>).
    /// </summary>
    internal static bool ForEveryone(CotDetail detail) =>
        detail.Destinations.Count == 0 && (detail.ChatOrReceipt?.Id is not { } room || room == CotMapping.AllChatRooms || detail.ChatGroupUids.Count == 0);

    /// <summary>
    /// Sends an event to the devices it is for: those its &lt;marti&gt; destinations name (by uid or callsign), or, for a
    /// GeoChat message to a group, the group's members; otherwise every device. Always only those whose member may see
    /// <paramref name="marking"/>.
    /// </summary>
    private int Deliver(Outbound item, MarkingDefault marking, TakSession from, CotDetail detail, string uid, string? entity, IReadOnlyList<string>? alsoUids = null)
    {
        if (ForEveryone(detail))
        {
            return Broadcast(item, marking, from, uid, entity, alsoUids: alsoUids);
        }

        var record = entity is null ? null : RelayRecord.Of(entity, uid, marking);

        var destinations = detail.Destinations;
        var group = destinations.Count == 0 ? detail.ChatGroupUids : [];

        var sent = 0;
        foreach (var session in _sessions)
        {
            var addressed = destinations.Count > 0
                ? destinations.Any(d => (d.Uid is { Length: > 0 } uid && uid == session.DeviceUid) || (d.Callsign is { Length: > 0 } callsign && callsign == session.Callsign))
                : session.DeviceUid is { } deviceUid && group.Contains(deviceUid);
            if (session != from && addressed && marking.ReadableBy(session.Viewer) && Relay(session, item, uid, record, ring: true, alsoUids))
            {
                sent++;
            }
        }

        Interlocked.Increment(ref _routed);
        return sent;
    }

    /// <summary>What ATAK adds to its device's uid for the uid of that device's emergency alert.</summary>
    private const string EmergencySuffix = "-9-1-1";

    /// <summary>
    /// Why an event from <paramref name="from"/> may not be routed, or null: its uid (or, for a deletion, the uid it
    /// deletes) is Concord's incident, another member's live device or current track, or an item another member sent first.
    /// </summary>
    private string? Refused(TakSession from, CotEvent e, Route route, DateTimeOffset now)
    {
        if (e.Uid.StartsWith(CotMapping.IncidentUidPrefix, StringComparison.Ordinal))
        {
            return "the uid is one of Concord's incidents";
        }

        if (OtherOwner(from, e.Uid, now) is { } owner)
        {
            return $"the uid is the device of another member ({owner})";
        }

        // A device's emergency goes out under its own uid and "-9-1-1" (ATAK): the uid is that device's, whoever sent it first.
        // Another member's device may not take it (and so block the real alert later); the device itself always may.
        var ownEmergency = false;
        if (e.Uid.EndsWith(EmergencySuffix, StringComparison.Ordinal) && e.Uid[..^EmergencySuffix.Length] is { Length: > 0 } emergencyOf)
        {
            if (emergencyOf == from.DeviceUid)
            {
                ownEmergency = true;
            }
            else if (OtherOwner(from, emergencyOf, now) is { } holder)
            {
                return $"the uid is the emergency of another member's device ({holder})";
            }
        }

        // An emergency or CASEVAC request names the device it comes from (<link relation="p-p">), and clients show it as that
        // device's: it may not name another member's.
        if (CotMapping.IsAlert(e.Type)
            && e.Detail.Links.FirstOrDefault(l => l.Relation == "p-p" && l.Uid is { Length: > 0 } uid && uid != from.DeviceUid && OtherOwner(from, uid, now) is not null) is { } named)
        {
            return $"it names as its sender the device {named.Uid} of another member (live, or its track current)";
        }

        if (route == Route.Position && !from.PositionUids.Contains(e.Uid) && TooManyTracks(from, e.Uid, now) is { } tooMany)
        {
            return tooMany;
        }

        // An item (a marker, a drawing, a message) is its sender's organisation's: its members edit it together, as a team
        // does, but another organisation's device re-sending it under the same uid would replace it on every device under
        // its own marking, and freeze the owner's own edits until its time passed.
        // A position naming an item's uid (an event of type a-… with takv or a contact endpoint, as any device can write)
        // is judged as an edit of that item: as a position it would become another organisation's track under the item's
        // uid, owned by them, and lock the item's owners out of their own marker.
        // A device's own uid passes to another member of its organisation once its track is no longer current and no live
        // session holds it (OtherOwner: a device handed on within a unit), but not to another organisation's: a device
        // whose link dropped for half a minute would otherwise come back to find its uid, callsign and direct messages
        // taken, and every position it sends refused. For as long as its track may be kept (current for up to an hour, then
        // kept an hour: two hours after its last position): a device handed to another organisation's member passes after that.
        if (e.Type != CotMapping.DeleteType && !ownEmergency && _latest.TryGetValue(e.Uid, out var latest) && latest.OwnerOrganization != from.Viewer.OrganizationId
            && (latest.Item || now.UtcTicks - Interlocked.Read(ref latest.Ticks) < (TrackStore.MaxStale + TrackStore.Retention).Ticks))
        {
            return latest.Item ? "the uid is an item another organisation sent first" : "the uid is the device of another organisation's member";
        }

        // Each new item (marker, drawing, message) is remembered by the replay check: a device inventing uids as fast as it
        // can send would grow the server's memory. A person places a few a minute; a device past the limit is refused new
        // ones until the minute is over (edits of its items still pass). Emergencies and CASEVAC requests count apart, against
        // a minute of their own that no person reaches: another item never holds one back. A deletion counts as a new item:
        // devices give each one a uid of its own, remembered as any other (and asked of the store before it passes).
        if (route != Route.Position && !_latest.ContainsKey(e.Uid))
        {
            if (!CotMapping.IsAlert(e.Type) && !from.Allowance.TakeNewItem(now))
            {
                return $"more than {MaxNewItemsPerMinute} new items in a minute from one device";
            }

            if (CotMapping.IsAlert(e.Type) && !from.Allowance.TakeNewAlert(now))
            {
                return $"more than {MaxNewAlertsPerMinute} new emergencies or CASEVAC requests in a minute from one device";
            }
        }
        else if (route != Route.Position && !CotMapping.IsAlert(e.Type) && _latest.TryGetValue(e.Uid, out var edited) && e.Time.UtcTicks > Interlocked.Read(ref edited.Ticks)
            && !from.Allowance.TakeEdit(now))
        {
            // Edits have a minute of their own: each goes to every device that may see the item, and each edit of a marker
            // is stored as a report, so a device re-sending its markers as fast as it can would otherwise fill the store at
            // the writer's pace. A person moves a few markers a minute. Counted only when newer than what passed (a replay is
            // dropped by the check below, costing nothing); an emergency re-sent under its uid always passes.
            return $"more than {MaxEditsPerMinute} edits of items in a minute from one device";
        }

        if (e.Type == CotMapping.DeleteType)
        {
            foreach (var link in e.Detail.Links)
            {
                // Items (who sent one first) are judged by DeletesItemOfAnotherAsync, from the store first.
                if (link.Uid is { Length: > 0 } target && (target.StartsWith(CotMapping.IncidentUidPrefix, StringComparison.Ordinal) || OtherOwner(from, target, now) is not null))
                {
                    return $"it deletes {target}, which is not the device's member's to delete";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Tracks one member's devices may hold together in memory, current or stale within the hour a stale track is kept:
    /// a device sends its own position, a gateway relays a radio net's or a fleet's. Reconnecting does not start a new count.
    /// </summary>
    public const int MaxTracksPerMember = 2_000;

    /// <summary>
    /// Why a position naming a uid its device has not sent before may not start a track, or null. Every track is held in
    /// memory for up to two hours and sent to every device that connects: a device inventing uids would otherwise grow
    /// both as fast as it can send. Counting is a scan of the tracks, so a device refused once is refused new uids
    /// without one for the next ten seconds.
    /// </summary>
    private string? TooManyTracks(TakSession from, string uid, DateTimeOffset now)
    {
        var at = now.UtcDateTime;
        // A track the member's devices already hold, even gone stale (a gateway back after a lost link), is not a new one.
        if (tracks.HolderOf(uid) == from.Viewer.MemberId)
        {
            return null;
        }

        if (from.TracksFullUntil > at || tracks.HeldBy(from.Viewer.MemberId) >= MaxTracksPerMember)
        {
            from.TracksFullUntil = from.TracksFullUntil > at ? from.TracksFullUntil : at.AddSeconds(10);
            return $"the member's devices hold {MaxTracksPerMember} tracks already (current, or stale within the hour)";
        }

        return null;
    }

    /// <summary>
    /// Why an event whose uid memory does not hold (a new uid, or any after a restart, or one not seen for a day) may not
    /// be routed because the uid is a marker another organisation sent first, or null. Memory takes as owner whoever sends a
    /// uid first, whatever they send; the store knows who did before (the marker's first report), so another organisation's
    /// device cannot take over a marker once the server has forgotten it (with a marker, a drawing, a message or a position
    /// under its uid), replace it on every device under its own marking, and lock its owners' edits out. One query per uid
    /// not in memory: a device's first position, each new item.
    /// </summary>
    private async ValueTask<string?> MarkerOfAnotherOrganisationAsync(TakSession from, CotEvent e) =>
        FirstOf(await StoredItemsAsync([e.Uid])).Values.SingleOrDefault() is { } first && first.OrganizationId != from.Viewer.OrganizationId
            ? "the uid is an item another organisation sent first"
            : null;

    private sealed record StoredItem(string ExternalRef, DateTime ReceivedAt, long Number, Guid MemberId, Guid OrganizationId, int Classification, string ReleasableTo, long Caveats);

    /// <summary>The reports the store holds of the items <paramref name="uids"/> (a marker's each edit is one).</summary>
    private async Task<List<StoredItem>> StoredItemsAsync(IReadOnlyCollection<string> uids)
    {
        var items = uids.Select(CotMapping.ItemRef).ToList();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        // The partial index of schema 13 holds only reports from TAK items; the query repeats its condition so that SQLite uses it.
        return await db.Reports.AsNoTracking()
            .Where(r => items.Contains(r.ExternalRef!) && EF.Functions.Like(r.ExternalRef, CotMapping.ItemRefPrefix + "%"))
            .Select(r => new StoredItem(r.ExternalRef!, r.ReceivedAt, r.Number, r.MemberId, r.OrganizationId, r.Classification, r.ReleasableTo, r.Caveats))
            .ToListAsync(CancellationToken.None);
    }

    /// <summary>Each stored item's first report, by its reference: who sent it first is its owner.</summary>
    private static Dictionary<string, StoredItem> FirstOf(List<StoredItem> reports) =>
        reports.GroupBy(r => r.ExternalRef).ToDictionary(g => g.Key, g => g.MinBy(r => (r.ReceivedAt, r.Number))!);

    /// <summary>How many items one deletion may name: a device deletes one at a time; each is looked up in the store.</summary>
    public const int MaxDeletedItems = 16;

    /// <summary>
    /// Why a deletion may not be routed because it deletes an item another member sent first, or null. A marker or spot
    /// report became a report, so the member who sent an item's first report is its owner, whatever memory says: memory
    /// (<see cref="Newer"/>) forgets uids not seen for a day, and takes as owner whoever sends a uid it does not hold
    /// first, whatever they send (after a restart it holds the relayed items read back from the store, not every uid).
    /// For items the store holds no report of (drawings and routes) memory is all there is. One query for all the items a
    /// deletion names.
    /// </summary>
    private async ValueTask<string?> DeletesItemOfAnotherAsync(TakSession from, CotEvent e, Action<MarkingDefault> itemMarking)
    {
        var uids = e.Detail.Links.Select(l => l.Uid).OfType<string>().Where(u => u.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        // The items it names: its links, or (node-cot's force delete) its own uid.
        List<string> named = uids.Count > 0 ? [.. uids] : [e.Uid];
        if (uids.Count > MaxDeletedItems)
        {
            return $"it deletes {uids.Count} items at once; at most {MaxDeletedItems}";
        }

        // The deletion's own uid too: some clients give it the item's uid (node-cot's force delete, with or without a link),
        // and clients that delete by event uid remove that item. Routed, it would also record its time against the item,
        // freezing the owner's edits until then, and after a restart make its sender the item's owner.
        // But a deletion that names its items by links and whose own uid is no item (stored, or remembered as relayed) is
        // judged by its links alone: many clients send every deletion under one uid (the ATAK plugins' "any_uid_is_good",
        // pytak's "takPing"), and memory took the first member to send one for that uid's owner, refusing everyone
        // else's deletions for a day.
        var ownUidNamesNoItem = false;
        if (!uids.Contains(e.Uid, StringComparer.Ordinal))
        {
            ownUidNamesNoItem = uids.Count > 0 && !RemembersItem(e.Uid);
            uids.Add(e.Uid);
        }

        var reports = await StoredItemsAsync(uids);
        var firstSender = FirstOf(reports);
        foreach (var uid in uids)
        {
            var owner = firstSender.TryGetValue(CotMapping.ItemRef(uid), out var stored) ? stored.MemberId
                : ownUidNamesNoItem && uid == e.Uid ? from.Viewer.MemberId
                : _latest.TryGetValue(uid, out var latest) ? latest.Owner : from.Viewer.MemberId;
            if (owner != from.Viewer.MemberId)
            {
                return $"it deletes {uid}, an item another member sent first";
            }
        }

        // Markers went out under the marking of the reports they became, not the device's marking for positions: their
        // deletion goes to the same devices (told to others, it would name a marker they may not see, and devices that see
        // the marker but not the positions would keep it). Items of several markings, or not stored, keep the positions'.
        var namedRefs = named.Select(CotMapping.ItemRef).ToHashSet(StringComparer.Ordinal);
        var found = reports.Where(r => namedRefs.Contains(r.ExternalRef)).ToList();
        if (namedRefs.All(firstSender.ContainsKey)
            && found.Select(r => (r.Classification, r.ReleasableTo, r.Caveats)).Distinct().ToList() is [var only])
        {
            itemMarking(markings.Of(only.Classification, only.ReleasableTo, only.Caveats));
        }

        return null;
    }

    /// <summary>
    /// Who other than <paramref name="from"/>'s member holds <paramref name="uid"/>: a live session's device or a current
    /// track (items are judged by <see cref="DeletesItemOfAnotherAsync"/>).
    /// </summary>
    private string? OtherOwner(TakSession from, string uid, DateTimeOffset now)
    {
        var member = from.Viewer.MemberId;
        if (_byDevice.TryGetValue(uid, out var holder) && holder.Viewer.MemberId != member && !holder.Closing.IsCancellationRequested)
        {
            return holder.Viewer.UserName;
        }

        return tracks.OwnerOf(uid, now.UtcDateTime) is { } owner && owner != member ? "a current track" : null;
    }

    /// <summary>
    /// Records <paramref name="time"/> as the latest of <paramref name="uid"/> unless an event as new was routed already;
    /// <paramref name="previous"/> is the time it replaced (0 for a uid not seen before).
    /// </summary>
    private bool Newer(string uid, DateTimeOffset time, Viewer sender, bool item, out long previous)
    {
        var ticks = time.UtcTicks;
        previous = 0;
        if (!_latest.TryGetValue(uid, out var latest))
        {
            var first = new Latest(ticks, sender.MemberId, sender.OrganizationId, item);
            latest = _latest.GetOrAdd(uid, first);
            if (ReferenceEquals(latest, first))
            {
                Interlocked.Increment(ref _latestCount);
                return true;
            }
        }

        while (true)
        {
            previous = Interlocked.Read(ref latest.Ticks);
            if (ticks <= previous)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref latest.Ticks, ticks, previous) == previous)
            {
                return true;
            }
        }
    }

    private sealed class Latest(long ticks, Guid owner, Guid ownerOrganization, bool item)
    {
        public long Ticks = ticks;

        /// <summary>First routed as an item rather than a device's position.</summary>
        public readonly bool Item = item;

        /// <summary>The member whose device first sent this uid.</summary>
        public readonly Guid Owner = owner;

        /// <summary>Their organisation: its members' devices may edit the item (a team works on its markers together).</summary>
        public readonly Guid OwnerOrganization = ownerOrganization;
    }

    /// <summary>New items (uids not seen before) one device may send in a minute.</summary>
    public const int MaxNewItemsPerMinute = 600;

    /// <summary>Edits of items (a marker, drawing or message sent again under its uid with a newer time) one device may send in a minute.</summary>
    public const int MaxEditsPerMinute = 600;

    /// <summary>New emergencies and CASEVAC requests (uids not seen before) one device may send in a minute: a device re-sends its emergency under one uid.</summary>
    public const int MaxNewAlertsPerMinute = 60;

    /// <summary>How many uids the replay check remembers before it forgets those not seen for a day (markers each have their own uid).</summary>
    public const int MaxTrackedUids = 200_000;

    /// <summary>The limit in force: <see cref="MaxTrackedUids"/>, lower in a test.</summary>
    internal int TrackedUidLimit { get; set; } = MaxTrackedUids;

    /// <summary>
    /// Forgets uids not seen for a day; when a flood of new uids was all seen within the day, those not seen for an hour,
    /// then ten minutes, then a minute, so that memory stays bounded (a replay older than that then passes once more).
    /// With each device held to <see cref="MaxNewItemsPerMinute"/> new items and each member to
    /// <see cref="MaxTracksPerMember"/> tracks, what a minute adds is bounded by the devices connected.
    /// </summary>
    private void Forget(DateTimeOffset now)
    {
        foreach (var horizon in (ReadOnlySpan<TimeSpan>)[TimeSpan.FromDays(1), TimeSpan.FromHours(1), TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(1)])
        {
            var before = (now - horizon).UtcTicks;
            foreach (var (uid, latest) in _latest)
            {
                if (Interlocked.Read(ref latest.Ticks) < before && _latest.TryRemove(new KeyValuePair<string, Latest>(uid, latest)))
                {
                    Interlocked.Decrement(ref _latestCount);
                }
            }

            if (Volatile.Read(ref _latestCount) <= TrackedUidLimit / 2)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Sends to every other session whose member may see <paramref name="marking"/>; with <paramref name="deliveries"/>
    /// the sessions are woken when the caller rings them.
    /// </summary>
    public int Broadcast(Outbound item, MarkingDefault marking, TakSession? except, string uid, string? entity, Deliveries? deliveries = null, IReadOnlyList<string>? alsoUids = null,
        HashSet<TakSession>? already = null)
    {
        var record = entity is null ? null : RelayRecord.Of(entity, uid, marking);
        var sent = 0;
        foreach (var session in _sessions)
        {
            if (session != except && already?.Contains(session) != true && marking.ReadableBy(session.Viewer)
                && Relay(session, item, uid, record, ring: deliveries is null, alsoUids))
            {
                deliveries?.Add(session);
                already?.Add(session);
                sent++;
            }
        }

        Interlocked.Increment(ref _routed);
        return sent;
    }

    /// <summary>
    /// Queues an event of <paramref name="uid"/> (and <paramref name="alsoUids"/>) for <paramref name="session"/>: at once,
    /// or (a classified record its member was not yet relayed on this connection, or an event of a uid one such waits
    /// for) once the read is in the audit.
    /// </summary>
    private bool Relay(TakSession session, Outbound item, string uid, RelayRecord? record, bool ring, IReadOnlyList<string>? alsoUids = null) =>
        relayAudit is null || (record is null && !session.Relays.Holding)
            ? session.Send(item, ring)
            : session.Relays.Send(session, item, uid, record, ring, _auditRelays!, alsoUids);

    private readonly Action<TakSession>? _auditRelays = relayAudit is null ? null : relayAudit.Enqueue;

    /// <summary>
    /// The event as it goes out. The usual case — an event with a detail and no access attribute, flow tags or marking of
    /// its own — is stamped by inserting into the bytes the device sent, which spares a second parse and a serialisation
    /// for every event routed; anything else goes through <see cref="Stamp"/>.
    /// </summary>
    public Outbound Stamped(CotEvent e, ReadOnlyMemory<byte> raw, MarkingDefault marking, bool droppable)
    {
        var stamp = time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        // Alerts carry their uid, so that a slow device's queue keeps only the latest edit of a marker or drawing.
        var uid = droppable ? null : e.Uid;
        // Bytes much larger than what the event holds (padding in attributes or elements the parser drops, or whitespace)
        // are rebuilt, not passed on: the limits on what a device may send (a position's detail) count what it holds.
        var padded = raw.Length > e.Detail.Xml.Length + RawSlack;
        return !padded && RawStamp.TryInsert(raw.Span, marking.Label, FlowTag, stamp) is { } xml
            ? new Outbound(xml, () => Stamp(e, marking), droppable) { Uid = uid }
            : new Outbound(Stamp(e, marking), droppable) { Uid = uid };
    }

    public CotEvent Stamp(CotEvent e, MarkingDefault marking)
    {
        // Tags named with a namespace prefix (declared on the event or its detail, not on the tags element rebuilt here)
        // would make the detail unreadable, and the event with it: they are left out; loops are told by unprefixed tags.
        var tags = string.Join(' ', e.Detail.FlowTags.Where(t => t.Key != FlowTag && PlainName(t.Key))
            .Select(t => $"{t.Key}=\"{System.Security.SecurityElement.Escape(t.Value)}\""));
        var stamp = time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        var detail = e.Detail.WithMarking(marking.Label).Without("_flow-tags_").With($"<_flow-tags_ {tags} {FlowTag}=\"{stamp}\"/>");
        return e with { Access = marking.Label, Detail = detail };
    }

    /// <summary>A name an attribute may have without a namespace: no prefix, not a namespace declaration.</summary>
    private static bool PlainName(string name) =>
        name.Length > 0 && name != "xmlns" && System.Xml.XmlConvert.IsStartNCNameChar(name[0]) && name.All(System.Xml.XmlConvert.IsNCNameChar);

    private void Position(TakSession from, CotEvent e, ReadOnlyMemory<byte> raw, Deliveries? deliveries)
    {
        var stamped = Stamped(e, raw, from.Marking, droppable: true);
        if (!tracks.Update(e, from.Viewer.MemberId, from.Marking, stamped))
        {
            Refuse(from, e, "the uid is the current track of another member");
            return;
        }

        if (from.PositionUids.Add(e.Uid) && from.PositionUids.Count > 2 * MaxTracksPerMember)
        {
            // A gateway's uids come and go over days: those of tracks long stale are counted again when they come back.
            from.PositionUids.Clear();
        }

        if (from.DeviceUid is null)
        {
            from.DeviceUid = e.Uid;
            _byDevice[e.Uid] = from;
            // The same member's device on a new connection (a reconnect, or a new certificate): the older session goes.
            foreach (var other in _sessions.Where(s => s != from && s.DeviceUid == e.Uid && s.Viewer.MemberId == from.Viewer.MemberId))
            {
                other.Close("replaced by a newer connection of the same device");
            }
        }

        // A refused claim is judged again on the device's later positions, at most once per ClaimRetry: the holder may
        // have let the callsign go (reported another, or its track is no longer current after its link dropped).
        if (e.Uid == from.DeviceUid && e.Detail.Contact?.Callsign is { Length: > 0 } callsign
            && (callsign != from.ClaimedCallsign || (callsign != from.Callsign && time.GetUtcNow().UtcTicks - from.ClaimJudgedAt >= ClaimRetry.Ticks)))
        {
            Claim(from, e, callsign);
        }

        Broadcast(stamped, from.Marking, from, e.Uid, RelayEntities.Track, deliveries);
    }

    /// <summary>
    /// Why a GeoChat message (or a receipt of one) may not go out as it is: it names as its sender (<c>chatgrp uid0</c>)
    /// another member's device, or a callsign such a device holds, while that device is live or, its link dropped, its
    /// track is current (as it keeps its uid and callsign: see <see cref="Claim"/>). Devices file a message under its
    /// sender: passed on, one member could write in another's name. Null when the message speaks for its own device.
    /// </summary>
    private string? Impersonation(TakSession from, CotEvent e)
    {
        var member = from.Viewer.MemberId;
        var now = time.GetUtcNow();
        foreach (var sender in ChatSenders(e, receipt: CotMapping.IsChatReceipt(e.Type)).Distinct(StringComparer.Ordinal))
        {
            if (sender != from.DeviceUid && OtherOwner(from, sender, now) is not null)
            {
                return $"it names as its sender {sender}, a device of another member (live, or its track current)";
            }
        }

        if (e.Detail.ChatOrReceipt?.SenderCallsign is { Length: > 0 } callsign && callsign != from.Callsign)
        {
            if (_sessions.Any(s => s != from && s.Callsign == callsign && s.Viewer.MemberId != member && !s.Closing.IsCancellationRequested))
            {
                return $"its sender's callsign {callsign} is held by a live device of another member";
            }

            lock (_attaching)
            {
                if (DroppedHolder(callsign, member, now) is { } device)
                {
                    return $"its sender's callsign {callsign} is held by the device {device} of another member, whose link dropped while its track is current";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Every place a GeoChat client reads a message's sender from (ATAK files it under the first it finds): the event's uid
    /// (<c>GeoChat.SENDER.ROOM.ID</c>), <c>&lt;remarks sourceID&gt;</c> and <c>source</c> (<c>BAO.F.ATAK.SENDER</c>),
    /// <c>&lt;link relation="p-p"&gt;</c> and the chat group's first member. A receipt (<paramref name="receipt"/>) carries
    /// the uid of the message it answers, which names that message's sender: only its link and chat group name its own.
    /// </summary>
    internal static IEnumerable<string> ChatSenders(CotEvent e, bool receipt)
    {
        if (!receipt)
        {
            if (e.Uid.StartsWith("GeoChat.", StringComparison.Ordinal) && e.Uid.Split('.') is [_, { Length: > 0 } inUid, ..])
            {
                yield return inUid;
            }

            if (e.Detail.RemarksAttribute("sourceID") is { Length: > 0 } sourceId)
            {
                yield return sourceId;
            }

            // "BAO.F.ATAK.uid", "BAO.F.WinTAK.uid": the uid after the client's name.
            if (e.Detail.RemarksAttribute("source") is { Length: > 0 } source)
            {
                yield return source.StartsWith("BAO.F.", StringComparison.Ordinal) && source.IndexOf('.', 6) is var dot and > 6 ? source[(dot + 1)..] : source;
            }
        }

        foreach (var link in e.Detail.Links)
        {
            if (link.Relation == "p-p" && link.Uid is { Length: > 0 } linked)
            {
                yield return linked;
            }
        }

        if (e.Detail.ChatGroupUids is [var first, ..])
        {
            yield return first;
        }
    }

    /// <summary>
    /// The device of another member than <paramref name="member"/> that holds <paramref name="callsign"/> though its link
    /// dropped, its track still current; null when none does. Under _attaching.
    /// </summary>
    private string? DroppedHolder(string callsign, Guid member, DateTimeOffset now) =>
        _droppedCallsigns.TryGetValue(callsign, out var dropped) && dropped.Member != member && tracks.OwnerOf(dropped.Device, now.UtcDateTime) == dropped.Member
            ? dropped.Device
            : null;

    /// <summary>
    /// Gives a device the callsign it reports, judged once per new claim and under the attaching lock (two devices claiming
    /// one callsign at once are judged in turn). Messages addressed by callsign go to the session holding it: a device of
    /// another member claiming a callsign a live device already has would receive that device's direct messages. The
    /// first holder keeps it.
    /// </summary>
    private void Claim(TakSession from, CotEvent e, string callsign)
    {
        lock (_attaching)
        {
            // A claim judged again is logged once, when it was new.
            var again = callsign == from.ClaimedCallsign;
            from.ClaimedCallsign = callsign;
            from.ClaimJudgedAt = time.GetUtcNow().UtcTicks;
            // A device whose link dropped holds its callsign while its track is current, as it holds its uid: it would
            // otherwise come back to find its direct messages going to another member's device.
            // (A session closing, not yet detached, holds it too: its callsign goes to the list of dropped ones as it detaches.)
            var holder = _sessions.FirstOrDefault(s => s != from && s.Callsign == callsign && s.Viewer.MemberId != from.Viewer.MemberId)?.Viewer.UserName;
            if (holder is null && _droppedCallsigns.ContainsKey(callsign))
            {
                if (DroppedHolder(callsign, from.Viewer.MemberId, time.GetUtcNow()) is { } device)
                {
                    holder = $"the device {device}, whose link dropped while its track is current";
                }
                else
                {
                    _droppedCallsigns.Remove(callsign);
                }
            }

            if (holder is not null)
            {
                if (!again && from.ShouldLogRefused())
                {
                    logger.LogInformation("TAK device {Uid} of {User} ({Remote}) claims callsign {Callsign}, held by {Holder}: messages to that callsign are not delivered to it",
                        e.Uid, from.Viewer.UserName, from.Remote, callsign, holder);
                }
            }
            else
            {
                from.Callsign = callsign;
            }
        }
    }

    private async Task MarkerAsync(TakSession from, CotEvent e, string category, ReadOnlyMemory<byte> raw, long previous)
    {
        // The marker goes out under the marking of the report it becomes (its category's agreement default), not under the
        // device's marking for positions: no device may receive a marker whose report its member could not read.
        // Under the server's stopping token, not the session's: a device that reconnects (replacing this session), or is
        // cut, while its marker is being stored must not lose the report of a marker the other devices were already sent.
        var (marking, decision) = await markings.DecideAsync(from.Viewer, category, from.ServerStopping);
        if (!ReportIntake.AuthorMayRead(from.Viewer, marking.Classification, marking.Caveats))
        {
            // The report would be one its author could not read back, which the intake refuses (as the API does): the
            // marker then goes nowhere, rather than to other devices as a marker of no report, and is not remembered: once
            // the member is cleared (or the agreement changes), the device sending it again is no replay.
            Unrecord(e.Uid, e.Time, previous);
            Refuse(from, e, $"its category's agreement marks it {marking.Label}, which its member may not read");
            return;
        }

        // The report is marked by the agreement decision the marker goes out under: stored later (behind the device's earlier
        // stores and the writer), it would otherwise be marked by the agreement as it is then, and devices could hold a marker
        // whose report their members may not read (or one with no report, refused under a tighter marking). A marker that
        // would not be a valid report goes nowhere, as one its author could not read.
        var report = CotMapping.ToReport(e, category, from.Viewer.UserName) with { MarkedBy = decision };
        var invalid = new Dictionary<string, string[]>(StringComparer.Ordinal);
        ReportRules.Validate(report, time.GetUtcNow(), _ => true, invalid);
        if (invalid.Count > 0)
        {
            Unrecord(e.Uid, e.Time, previous);
            Refuse(from, e, "it would not be a valid report: " + Described(invalid));
            return;
        }

        // ATAK and WinTAK send their markers again unchanged every minute or so, each time with a new time: relayed as
        // before, but no new report (a thousand a day of one roadblock, each joining its incident). A new place, type,
        // callsign or remarks is what a source newly says, and is one. Judged against the version devices were last sent
        // (kept across restarts); one sent to named devices only is not kept, and each of those is a report, as before.
        var unchanged = PreviousVersion(e) is { } before && CotMapping.SameReport(before, e);
        var relayed = Stamped(e, raw, marking, droppable: false);
        RememberItem(e, marking, from.Viewer.MemberId, from.Certificate, relayed);
        Deliver(relayed, marking, from, e.Detail, e.Uid, RelayEntities.Item);
        if (unchanged)
        {
            return;
        }

        await StoreAsync(from, e, previous, async () =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var intake = scope.ServiceProvider.GetRequiredService<ReportIntake>();
            var outcome = await intake.CreateAsync(report, from.Viewer, from.ServerStopping, idMadeByServer: true);
            if (outcome is ReportIntake.Outcome.Invalid invalid)
            {
                logger.LogInformation("marker {Uid} from {User} was not taken as a report: {Errors}", e.Uid, from.Viewer.UserName, Described(invalid.Errors));
            }
        });
    }

    /// <summary>Whether <paramref name="uid"/> is an item relayed and remembered (a marker, drawing or route), not deleted.</summary>
    private bool RemembersItem(string uid)
    {
        lock (_itemsGate)
        {
            return _itemsSent.TryGetValue(uid, out var known) && !known.Deleted;
        }
    }

    /// <summary>The version of <paramref name="e"/>'s item devices were last sent, when it is kept and older than it.</summary>
    private CotEvent? PreviousVersion(CotEvent e)
    {
        byte[]? latest;
        lock (_itemsGate)
        {
            latest = _itemsSent.TryGetValue(e.Uid, out var known) && known is { Deleted: false } && known.Time < e.Time.UtcTicks ? known.Latest : null;
        }

        if (latest is null)
        {
            return null;
        }

        try
        {
            return ParseKept(latest);
        }
        catch (CotParseException)
        {
            return null;
        }
    }

    /// <summary>A report's refusal for the log: each field with its reasons.</summary>
    private static string Described(Dictionary<string, string[]> errors) => string.Join("; ", errors.Select(x => $"{x.Key}: {string.Join(' ', x.Value)}"));

    /// <summary>
    /// A GeoChat receipt goes back to the devices it names: as ATAK sends one, the message's sender in &lt;marti&gt;; as WinTAK
    /// does, the chat group's other member. Never to everyone (a receipt naming nobody, or All Chat Rooms, is dropped), and
    /// like the message only to devices whose member may see the sender's field marking. Nothing is stored; a lost receipt
    /// costs a tick on the sender's screen, so it may be dropped from a full queue as a position is.
    /// </summary>
    private void Receipt(TakSession from, CotEvent e)
    {
        if (Impersonation(from, e) is { } reason)
        {
            Refuse(from, e, reason);
            return;
        }

        if (e.Detail.Destinations.Count == 0 && (e.Detail.ChatOrReceipt?.Id is not { } room || room == CotMapping.AllChatRooms || e.Detail.ChatGroupUids.Count == 0))
        {
            Refuse(from, e, "a chat receipt names nobody it is for (no <marti> destination, no chat group)");
            return;
        }

        // Its uid is the message's: never another member's device or track, nor one of Concord's incidents, which a
        // device would replace with it.
        if (e.Uid.StartsWith(CotMapping.IncidentUidPrefix, StringComparison.Ordinal) || e.Uid.EndsWith(EmergencySuffix, StringComparison.Ordinal)
            || _itemsSent.ContainsKey(e.Uid) || OtherOwner(from, e.Uid, time.GetUtcNow()) is not null)
        {
            Refuse(from, e, "its uid is a device, an item or an emergency, or a Concord incident (a receipt's uid is the message's)");
            return;
        }

        // A receipt says only that a message arrived: it carries what says from whom and for whom, nothing else (words put
        // in it would be a message neither stored nor audited).
        var detail = e.Detail;
        foreach (var name in e.Detail.ElementNames.Distinct(StringComparer.Ordinal).Where(n => !ReceiptElements.Contains(n)).ToList())
        {
            detail = detail.Without(name);
        }

        Deliver(new Outbound(Stamp(e with { Detail = detail }, from.Marking), droppable: true), from.Marking, from, detail, e.Uid, null);
    }

    /// <summary>What a chat receipt carries on: its chat element (ATAK's or WinTAK's), the message's sender, and where it goes.</summary>
    private static readonly HashSet<string> ReceiptElements = new(StringComparer.Ordinal) { "__chat", "__chatreceipt", "link", "marti", "__serverdestination", "_flow-tags_" };

    private async Task ChatAsync(TakSession from, CotEvent e, long previous)
    {
        if (Impersonation(from, e) is { } reason)
        {
            Refuse(from, e, reason);
            return;
        }

        // A direct or group message goes only to the devices it names; a message to All Chat Rooms to every device.
        Deliver(new Outbound(Stamp(e, from.Marking), droppable: false), from.Marking, from, e.Detail, e.Uid, RelayEntities.Chat);
        await StoreAsync(from, e, previous, async () =>
        {
            var text = e.Detail.Remarks ?? "";
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var message = new ChatMessage
            {
                Id = Guid.CreateVersion7(),
                MemberId = from.Viewer.MemberId,
                // Names, kept as long as a callsign is: the rest of the frame is not theirs to fill.
                Chatroom = ReportRules.Truncate(e.Detail.Chat?.Chatroom ?? "All Chat Rooms", Track.CallsignLength),
                Sender = ReportRules.Truncate(e.Detail.Chat?.SenderCallsign ?? from.Viewer.UserName, Track.CallsignLength),
                Text = ReportRules.Truncate(text, 4000),
                SentAt = e.Time.UtcDateTime,
                Classification = from.Marking.Classification,
                ReleasableTo = from.Marking.ReleasableTo,
                Caveats = from.Marking.Caveats,
            };
            db.Messages.Add(message);
            // Stored as every marked record is: with its audit entry, in the same transaction (who stored what, under which marking).
            await scope.ServiceProvider.GetRequiredService<AuditChain>().SaveAsync(db,
                [Audits.Entry(from.Viewer, AuditActions.Create, "message", message.Id, AuditMarking.Of(message), time.GetUtcNow().UtcDateTime,
                    // The chat room's name is members' words (a group's name, an addressee's callsign): its length only, as for
                    // every record; so the device is named by its own uid, not the message's (GeoChat.sender.room.id holds the room).
                    Audits.Detail(new { device = from.DeviceUid, chatroom = Audits.Words(message.Chatroom), marking = from.Marking.Label }))], CancellationToken.None);
        });
    }
}

/// <summary>
/// The sessions one reader has queued positions for and not yet woken. A device's read often holds many events (a
/// burst, or the events of a whole interval); waking each receiving device once for all of them means one TLS write
/// per device per read instead of one per event, which on a busy server is most of routing's cost.
/// </summary>
internal sealed class Deliveries
{
    private readonly HashSet<TakSession> _waiting = [];

    public void Add(TakSession session) => _waiting.Add(session);

    /// <summary>Wakes every session queued for since the last ring; false when there was none.</summary>
    public bool Ring()
    {
        if (_waiting.Count == 0)
        {
            return false;
        }

        foreach (var session in _waiting)
        {
            session.Ring();
        }

        _waiting.Clear();
        return true;
    }
}

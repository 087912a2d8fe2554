using System.Threading.Channels;
using Concord.Server.Audit;

namespace Concord.Server.Tak;

/// <summary>What the audit calls the records relayed between devices.</summary>
internal static class RelayEntities
{
    /// <summary>A device's position report: its track, as the opening picture and the tracks API name it.</summary>
    public const string Track = "track";

    /// <summary>A marker, drawing, route or alert, as the opening picture names it.</summary>
    public const string Item = "tak-item";

    /// <summary>A GeoChat message, by the uid of its event.</summary>
    public const string Chat = "tak-chat";
}

/// <summary>A classified record a device was relayed: what it is (a track, an item, a chat message), its uid and its marking.</summary>
internal readonly record struct RelayRecord(string Entity, string Uid, int Level, long Caveats)
{
    /// <summary>The record of <paramref name="uid"/> under <paramref name="marking"/>, or null when its relay is not audited (unclassified, no caveat).</summary>
    public static RelayRecord? Of(string entity, string uid, MarkingDefault marking) => Of(entity, uid, marking.Classification, marking.Caveats);

    /// <summary>The record of <paramref name="uid"/> at <paramref name="level"/> under <paramref name="caveats"/>, or null when its reads are not audited.</summary>
    public static RelayRecord? Of(string entity, string uid, int level, long caveats) =>
        Audits.IsAudited(level, caveats) ? new RelayRecord(entity, uid, level, caveats) : null;
}

/// <summary>
/// One device's relayed classified records: those already named in the audit as read by its member on this connection, and
/// what waits for its entry. A classified track, item or message goes to a device only once its member's read of it is in
/// the audit (as the opening picture's and the incidents' are); the first relay of each waits for one round of the
/// <see cref="RelayAuditor"/>, the later ones (the next positions of the same track) go out at once. Events of a uid that
/// has one waiting wait behind it, so that a device never gets a uid's events out of order.
/// </summary>
internal sealed class RelayHold
{
    /// <summary>The most records remembered as audited; past it the memory starts again (and each record's next relay is audited again).</summary>
    public const int MaxAudited = 20_000;

    /// <summary>The most events waiting for an entry (a store failing for a while): past it positions are dropped, and an alert cuts the device as a full queue does.</summary>
    public const int MaxHeld = 4_096;

    private readonly Lock _gate = new();
    private readonly HashSet<RelayRecord> _audited = [];
    private readonly HashSet<RelayRecord> _unaudited = [];
    // In the order they came, with the uids each waits behind (one; a deletion's every uid it names); Record is the
    // entry each waits for (null: it waits only behind earlier events of its uids).
    private readonly List<(Outbound Item, string[] Uids, RelayRecord? Record)> _held = [];
    private readonly Dictionary<string, int> _heldUids = new(StringComparer.Ordinal);
    private bool _queued;
    private long _dropped;
    private volatile int _heldCount;

    /// <summary>Whether events wait: then every event goes through <see cref="Send"/>, so that none overtakes one of its uid.</summary>
    public bool Holding => _heldCount > 0;

    /// <summary>Positions dropped while waiting for their entry.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Events waiting for their entry.</summary>
    public int Held
    {
        get
        {
            lock (_gate)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="item"/> (an event of <paramref name="uid"/>, and of <paramref name="alsoUids"/> for a deletion
    /// naming several; <paramref name="record"/> when its relay is audited)
    /// to <paramref name="session"/> now, or holds it until the record is audited (and calls <paramref name="audit"/> when the
    /// session needs a round); false when it was not queued (the session is closing, or too much waits).
    /// </summary>
    public bool Send(TakSession session, Outbound item, string uid, RelayRecord? record, bool ring, Action<TakSession> audit, IReadOnlyList<string>? alsoUids = null)
    {
        bool wake;
        lock (_gate)
        {
            // Nothing more is queued for a device whose end has begun (what waited goes with TakeAll).
            if (session.Stopped)
            {
                return false;
            }

            if (!_heldUids.ContainsKey(uid) && (alsoUids is null || !alsoUids.Any(_heldUids.ContainsKey)) && (record is not { } r || _audited.Contains(r)))
            {
                return session.Send(item, ring);
            }

            if (_held.Count >= MaxHeld)
            {
                if (item.Droppable)
                {
                    Interlocked.Increment(ref _dropped);
                    return false;
                }

                session.Close($"too slow: over {MaxHeld:N0} relayed events wait for their audit entry");
                return false;
            }

            // Held with its record only when that still needs an entry: one audited already waits for its uid alone (and
            // must not wait for an entry again if the memory of audited records starts again meanwhile).
            var unaudited = record is { } waiting && !_audited.Contains(waiting) ? record : null;
            string[] uids = alsoUids is null ? [uid] : [uid, .. alsoUids.Where(u => u != uid).Distinct(StringComparer.Ordinal)];
            _held.Add((item, uids, unaudited));
            _heldCount = _held.Count;
            foreach (var behind in uids)
            {
                _heldUids[behind] = _heldUids.GetValueOrDefault(behind) + 1;
            }

            if (unaudited is { } needed)
            {
                _unaudited.Add(needed);
            }

            wake = !_queued && _unaudited.Count > 0;
            _queued |= wake;
        }

        if (wake)
        {
            audit(session);
        }

        return true;
    }

    /// <summary>Records now in the audit as read on this connection (its opening picture's): their relays go out at once.</summary>
    public void MarkAudited(IEnumerable<RelayRecord> records)
    {
        lock (_gate)
        {
            foreach (var record in records)
            {
                AddAudited(record);
            }
        }
    }

    /// <summary>The records waiting for an entry, for one round of the auditor; the session may be queued again from here on.</summary>
    public List<RelayRecord> TakeUnaudited()
    {
        lock (_gate)
        {
            _queued = false;
            return [.. _unaudited];
        }
    }

    /// <summary>Whether the session is to be queued for another round: records still wait (a round whose entry could not be written).</summary>
    public bool Requeue()
    {
        lock (_gate)
        {
            _queued = _unaudited.Count > 0;
            return _queued;
        }
    }

    /// <summary>A round for this session failed: it waits for the auditor's retry, not for the next event relayed to it.</summary>
    public void Failed()
    {
        lock (_gate)
        {
            _queued = true;
        }
    }

    /// <summary>Records the round's entries were written for: the events waiting for them go out, in the order they came.</summary>
    public void Audited(TakSession session, IReadOnlyCollection<RelayRecord> records)
    {
        lock (_gate)
        {
            foreach (var record in records)
            {
                _unaudited.Remove(record);
                AddAudited(record);
            }

            foreach (var item in Release(all: false))
            {
                session.Send(item);
            }
        }
    }

    /// <summary>
    /// Everything waiting, for a device whose end has begun with its queue kept (its member's access grew, or its positions'
    /// marking changed): the records that still need their entry, and every waiting event in order. Nothing waits after.
    /// </summary>
    public (List<RelayRecord> Records, List<Outbound> Held) TakeAll()
    {
        lock (_gate)
        {
            var records = _unaudited.ToList();
            _unaudited.Clear();
            return (records, Release(all: true));
        }
    }

    /// <summary>Takes off the waiting list the events free to go (all of them with <paramref name="all"/>), in order. Under the lock.</summary>
    private List<Outbound> Release(bool all)
    {
        // Each uid's events in order: one still waiting holds every later one of its uids.
        var released = new List<Outbound>();
        var blocked = new HashSet<string>(StringComparer.Ordinal);
        var kept = 0;
        for (var i = 0; i < _held.Count; i++)
        {
            var (item, uids, record) = _held[i];
            if (all || (!uids.Any(blocked.Contains) && (record is not { } r || !_unaudited.Contains(r))))
            {
                released.Add(item);
                foreach (var uid in uids)
                {
                    if (--_heldUids[uid] == 0)
                    {
                        _heldUids.Remove(uid);
                    }
                }
            }
            else
            {
                blocked.UnionWith(uids);
                _held[kept++] = _held[i];
            }
        }

        _held.RemoveRange(kept, _held.Count - kept);
        _heldCount = _held.Count;
        return released;
    }

    private void AddAudited(RelayRecord record)
    {
        // A message is relayed once: remembering it would only fill the memory of tracks and items.
        if (record.Entity == RelayEntities.Chat)
        {
            return;
        }

        if (_audited.Count >= MaxAudited)
        {
            _audited.Clear();
        }

        _audited.Add(record);
    }
}

/// <summary>
/// Writes the audit entries of classified records relayed between devices (tracks, markers, drawings, alerts, chat), one
/// round at a time for every device that has some waiting: per device, one entry per kind of record and marking naming
/// them (<see cref="Audits.Read"/>, path <c>tak:relay</c> and the device's address), then lets the waiting events go. A
/// device whose entry cannot be written (the store failing for a moment) keeps them waiting and is tried again a second
/// later; the others are not held up.
/// </summary>
internal sealed class RelayAuditor : IAsyncDisposable
{
    public static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);

    private readonly Channel<TakSession> _queue = Channel.CreateUnbounded<TakSession>(new UnboundedChannelOptions { SingleReader = true });
    private readonly AuditWriter _audit;
    private readonly TimeProvider _time;
    private readonly ILogger<RelayAuditor> _logger;
    private readonly Hosting.FailureRun _failures;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;

    public RelayAuditor(AuditWriter audit, TimeProvider time, ILogger<RelayAuditor> logger)
    {
        _audit = audit;
        _time = time;
        _logger = logger;
        _failures = new Hosting.FailureRun(logger, "auditing relays to TAK devices");
        _loop = Task.Run(RunAsync);
    }

    public void Enqueue(TakSession session) => _queue.Writer.TryWrite(session);

    private async Task RunAsync()
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(_stopping.Token))
            {
                var sessions = new HashSet<TakSession>();
                while (_queue.Reader.TryRead(out var session))
                {
                    sessions.Add(session);
                }

                try
                {
                    await RoundAsync(sessions);
                }
                catch (Exception e) when (e is not OperationCanceledException || !_stopping.IsCancellationRequested)
                {
                    // Nothing may stop the rounds (each device's part has its own failure path; this is the last line).
                    _logger.LogError(e, "a round of TAK relay audits failed; its devices are tried again");
                    foreach (var session in sessions.Where(s => !s.Stopped))
                    {
                        session.Relays.Failed();
                    }

                    _ = RetryAsync([.. sessions]);
                }

            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// One round: each device's entries queued before any is awaited (so that the audit writer stores the round in one
    /// batch), then each device's waiting events let go as its entries are stored. Each device apart: one whose entry
    /// fails (or whose part fails in any way) waits for the retry, the others go on.
    /// </summary>
    private async Task RoundAsync(IEnumerable<TakSession> sessions)
    {
        var at = _time.GetUtcNow().UtcDateTime;
        var rounds = new List<(TakSession Session, List<RelayRecord> Records, Task Written)>();
        var failed = new List<TakSession>();
        foreach (var session in sessions)
        {
            // A device gone, or whose end has begun, is sent nothing more from here (its end takes what waited: TakeAll).
            if (session.Stopped)
            {
                continue;
            }

            try
            {
                var records = session.Relays.TakeUnaudited();
                if (records.Count > 0)
                {
                    rounds.Add((session, records, Write(session, records, at)));
                }
            }
            catch (Exception e)
            {
                Failed(session, e, failed);
            }
        }

        foreach (var (session, records, written) in rounds)
        {
            try
            {
                await written;
                session.Relays.Audited(session, records);
                _failures.Succeeded();
            }
            catch (Exception e)
            {
                Failed(session, e, failed);
            }
        }

        if (failed.Count > 0)
        {
            _ = RetryAsync(failed);
        }
    }

    /// <summary>
    /// Writes the entries of what waits for a device whose end has begun with its queue kept (<paramref name="keep"/>;
    /// otherwise drops it), and gives back its waiting events to be written as its last; none (they are dropped, and the device gets the tracks and items among them again
    /// in its next opening picture) when the entries cannot be written.
    /// </summary>
    public async Task<List<Outbound>> TakeForLastAsync(TakSession session, bool keep = true)
    {
        var (records, held) = session.Relays.TakeAll();
        if (!keep)
        {
            // A narrowing: they go with the queue, unread.
            return [];
        }

        if (records.Count == 0)
        {
            return held;
        }

        try
        {
            await Write(session, records, _time.GetUtcNow().UtcDateTime);
            return held;
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "the relays waiting for the TAK device of {User} ({Remote}) at its cut could not be audited; they are not sent", session.Viewer.UserName, session.Remote);
            return [];
        }
    }

    private Task Write(TakSession session, List<RelayRecord> records, DateTime at)
    {
        var path = $"tak:relay {session.Remote}";
        // Not given up with the session: an entry written is a read recorded, whether or not the device is still there.
        return Task.WhenAll(records.GroupBy(r => r.Entity).Select(kind =>
            _audit.RecordReadAsync(session.Viewer, kind.Key, kind.Select(r => (r.Uid, r.Level, r.Caveats)).ToList(), path, at, CancellationToken.None)));
    }

    private void Failed(TakSession session, Exception e, List<TakSession> failed)
    {
        if (session.Stopped)
        {
            return;
        }

        // With the audit log down every device fails every round: the first failure is logged whole, the rest summed up.
        if (_failures.Failed(e))
        {
            _logger.LogWarning(e, "the relays to the TAK device of {User} ({Remote}) could not be audited; they wait for the next round", session.Viewer.UserName, session.Remote);
        }

        session.Relays.Failed();
        failed.Add(session);
    }

    private async Task RetryAsync(List<TakSession> sessions)
    {
        try
        {
            await Task.Delay(Retry, _time, _stopping.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        foreach (var session in sessions.Where(s => !s.Stopped && s.Relays.Requeue()))
        {
            Enqueue(session);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stopping.CancelAsync();
        await _loop;
        _stopping.Dispose();
    }
}

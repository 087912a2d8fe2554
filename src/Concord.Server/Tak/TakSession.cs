using System.Buffers;
using System.Collections.Concurrent;
using Concord.Cot;
using Concord.Server.Access;

namespace Concord.Server.Tak;

/// <summary>An event on its way to devices, serialised at most once per wire format whatever the number of receivers.</summary>
internal sealed class Outbound
{
    private readonly Func<CotEvent>? _build;
    private CotEvent? _event;
    private byte[]? _xml;
    private byte[]? _protobuf;

    public Outbound(CotEvent cotEvent, bool droppable)
    {
        _event = cotEvent;
        Droppable = droppable;
    }

    /// <summary>An event whose XML is already written; the event itself is built only if a protobuf device needs it.</summary>
    public Outbound(byte[] xml, Func<CotEvent> build, bool droppable)
    {
        _xml = xml;
        _build = build;
        Droppable = droppable;
    }

    public CotEvent Event => _event ??= _build!();

    /// <summary>Positions may be dropped (oldest first) for a slow device; alerts, markers and chat never are.</summary>
    public bool Droppable { get; }

    /// <summary>The answer to a protocol request: sent as XML, after which the session speaks TAK protocol v1.</summary>
    public bool SwitchesToProtobuf { get; init; }

    /// <summary>
    /// The uid of what this event is the latest state of (an item, an incident), or null. A device keeps one thing per
    /// uid, the latest event's: so an alert still queued for a device when a newer one of the same uid is queued is not
    /// written at all, and a slow link carries each thing's latest state rather than every edit on the way to it.
    /// </summary>
    public string? Uid { get; init; }

    public byte[] Xml => _xml ??= Serialize(Event);

    public byte[] Protobuf => _protobuf ??= TakFraming.EncodeStreamFrame(Event.ToTakMessage());

    private static byte[] Serialize(CotEvent e)
    {
        var bytes = CotXml.SerializeToUtf8Bytes(e);
        var framed = new byte[bytes.Length + 1];
        bytes.CopyTo(framed, 0);
        framed[^1] = (byte)'\n';
        return framed;
    }
}

/// <summary>
/// One connected device. A reader turns the byte stream into events (XML, or TAK protocol v1 once negotiated); a writer
/// drains two bounded queues — alerts first, never dropped, then positions, oldest dropped when the device falls behind.
/// A device that cannot take its alerts, or stalls a write, is cut; the others never wait for it.
/// </summary>
internal sealed class TakSession : IAsyncDisposable
{
    public const int DefaultPositionQueue = 1024;
    public const int DefaultAlertQueue = 8192;

    /// <summary>
    /// The most a device's queues hold, in bytes of XML: the counts alone would let a slow device hold thousands of events
    /// of up to 64 KB each (a drawing flood), gigabytes across devices. Positions beyond it go, oldest first; an alert that
    /// does not fit cuts the device as too slow.
    /// </summary>
    public const int DefaultMaxQueuedBytes = 16 * 1024 * 1024;
    public static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(15);

    private readonly Stream _stream;
    // Lock-free queues: the router (one thread per sending device) queues while the writer drains; with locked queues
    // the two spun on each queue's lock for a third of their time under load.
    private readonly ConcurrentQueue<Outbound> _control = new();
    private readonly ConcurrentQueue<Queued> _alerts = new();

    // The alert queued last for each uid that has one still queued (Outbound.Uid).
    private readonly ConcurrentDictionary<string, Queued> _queuedByUid = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<Outbound> _positions = new();
    private int _controlCount;
    private readonly Doorbell _doorbell = new();
    private readonly Doorbell _room = new();
    private readonly int _positionQueue;
    private readonly int _alertQueue;
    private readonly long _maxQueuedBytes;
    private long _queuedBytes;
    private readonly CancellationTokenSource _closing;
    private readonly CancellationTokenSource _ending;
    private int _positionCount;
    private int _alertCount;
    private long _dropped;

    // The markers of WrittenAsync the writer has passed in its current batch: done once that batch is written.
    private readonly List<TaskCompletionSource<bool>> _batchMarkers = [];
    private long _superseded;

    // Alerts in the queue, superseded ones included (which _alertCount no longer counts), and the most of those per place.
    private int _alertEntries;
    private const int MaxEntriesPerAlert = 4;
    private long _unwritable;
    private volatile bool _protobuf;
    private int _malformedLogged;
    private int _refusedLogged;

    public TakSession(Stream stream, Viewer viewer, string certificate, string remote, MarkingDefault marking, CancellationToken serverStopping,
        int positionQueue = DefaultPositionQueue, int alertQueue = DefaultAlertQueue, int maxQueuedBytes = DefaultMaxQueuedBytes, DeviceAllowance? allowance = null)
    {
        Allowance = allowance ?? new DeviceAllowance();
        _positionQueue = positionQueue;
        _alertQueue = alertQueue;
        _maxQueuedBytes = maxQueuedBytes;
        _stream = stream;
        Viewer = viewer;
        Certificate = certificate;
        Remote = remote;
        Marking = marking;
        ServerStopping = serverStopping;
        _closing = CancellationTokenSource.CreateLinkedTokenSource(serverStopping);
        _ending = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
    }

    /// <summary>
    /// Cancelled once the server has stopped and given devices' stores their grace (<see cref="TakServer.StoreGrace"/>):
    /// what a device sent is finished under it, even if the session closes first.
    /// </summary>
    public CancellationToken ServerStopping { get; }

    public Viewer Viewer { get; }

    /// <summary>The client certificate's thumbprint (or "tcp:" for the plain listener).</summary>
    public string Certificate { get; }

    public string Remote { get; }

    /// <summary>The marking this member's device records get (their organisation's agreement default).</summary>
    public MarkingDefault Marking { get; }

    /// <summary>The uid of the device's own position reports, once it has sent one.</summary>
    public string? DeviceUid { get; set; }

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Events skipped because they could not be written in this device's format.</summary>
    public long Unwritable => Interlocked.Read(ref _unwritable);

    /// <summary>Alerts not written because a newer event of the same uid was queued after them (<see cref="Outbound.Uid"/>).</summary>
    public long Superseded => Interlocked.Read(ref _superseded);

    public CancellationToken Closing => _closing.Token;

    /// <summary>
    /// Cancelled when the session closes or begins its end (<see cref="StopSending"/>): work done only for what the device
    /// will be sent (its opening picture's queries and their audit) stops, as nothing more reaches it.
    /// </summary>
    public CancellationToken Ending => _ending.Token;

    public string? CloseReason { get; private set; }

    private volatile string? _closeWhenWritten;

    // Sends checking and queuing at this moment (see StopSending).
    private int _sending;
    private volatile bool _lastQueued;

    public bool UsesProtobuf => _protobuf;

    /// <summary>
    /// A plain TCP connection: nobody proved who is on the other end, so it receives what its low-privilege member may see
    /// and what it sends is ignored (but for pings and the protocol negotiation).
    /// </summary>
    public bool ReceiveOnly { get; init; }

    /// <summary>True once the opening picture (current tracks and incidents) has gone to the device's queues.</summary>
    public bool Opened { get; set; }

    /// <summary>The callsign of the device's own position reports, once it has sent one: GeoChat addresses devices by it.</summary>
    public string? Callsign { get; set; }

    /// <summary>
    /// The callsign the device last reported, whether or not it was given (<see cref="Callsign"/>): judged when it is new,
    /// and while refused again at most once per <see cref="TakRouter.ClaimRetry"/> (at <see cref="ClaimJudgedAt"/>, in ticks).
    /// </summary>
    public string? ClaimedCallsign { get; set; }

    public long ClaimJudgedAt { get; set; }

    /// <summary>The uids this device has sent positions for (its own, and those it relays): bounded by the router.</summary>
    public HashSet<string> PositionUids { get; } = new(StringComparer.Ordinal);

    /// <summary>The classified records relayed to the device on this connection that are in the audit, and those waiting for it.</summary>
    public RelayHold Relays { get; } = new();

    /// <summary>What the device's certificate may still send this minute, and its stores under way (kept across its connections).</summary>
    public DeviceAllowance Allowance { get; }

    // Incidents the live feed sent this device (or withdrew from it) while its opening picture was going out; null after.
    private ConcurrentDictionary<Guid, byte>? _liveWhileOpening = new();

    /// <summary>Notes that the live feed sent or withdrew an incident, for the opening picture to reconcile (see <see cref="TakeLiveIncidents"/>).</summary>
    public void NoteLiveIncident(Guid incidentId) => _liveWhileOpening?.TryAdd(incidentId, 0);

    /// <summary>
    /// The incidents the live feed sent or withdrew since the opening picture began (or since the last call), which the
    /// picture (queried before) may have overtaken with an older view, or sent after their withdrawal. With
    /// <paramref name="last"/> the session stops noting them.
    /// </summary>
    public ICollection<Guid> TakeLiveIncidents(bool last) => Interlocked.Exchange(ref _liveWhileOpening, last ? null : new())?.Keys ?? [];

    /// <summary>Until when new position uids of this device are refused without counting its member's tracks again.</summary>
    public DateTime TracksFullUntil { get; set; }

    /// <summary>Whether to log the next malformed event of this device: the first ten, then one in a hundred.</summary>
    public bool ShouldLogMalformed() => Sample(ref _malformedLogged);

    /// <summary>Whether to log the next event of this device that routing refused (not its uid, from the future, receive-only).</summary>
    public bool ShouldLogRefused() => Sample(ref _refusedLogged);

    private static bool Sample(ref int count)
    {
        var n = Interlocked.Increment(ref count);
        return n <= 10 || n % 100 == 0;
    }

    /// <summary>Set when the device asked for TAK protocol v1 and was told yes: what it sends next is protobuf.</summary>
    public bool SwitchRequested { get; set; }

    /// <summary>
    /// Queues an event; false when the device is too slow to take an alert and is being cut. Without
    /// <paramref name="ring"/> the writer is not woken: the caller queues more (the rest of what one device sent in a
    /// read) and then rings once, so that the device gets them in one write rather than in one write each.
    /// </summary>
    public bool Send(Outbound item, bool ring = true)
    {
        // Counted while it checks and queues: StopSending waits for sends under way before it drops the queues, so that an
        // event that passed the check under the old access cannot be queued after the session's last events.
        Interlocked.Increment(ref _sending);
        try
        {
            return SendCounted(item, ring);
        }
        finally
        {
            Interlocked.Decrement(ref _sending);
        }
    }

    private bool SendCounted(Outbound item, bool ring)
    {
        if (_closing.IsCancellationRequested || _closeWhenWritten is not null)
        {
            return false;
        }

        if (item.Droppable)
        {
            _positions.Enqueue(item);
            Interlocked.Add(ref _queuedBytes, item.Xml.Length);
            if (Interlocked.Increment(ref _positionCount) > _positionQueue)
            {
                // The device falls behind: its oldest position goes, a newer one of the same device may well follow.
                DropOldestPosition();
            }

            while (Interlocked.Read(ref _queuedBytes) > _maxQueuedBytes && DropOldestPosition())
            {
            }
        }
        else
        {
            // Positions make room for an alert before the device is cut for it.
            while (Interlocked.Read(ref _queuedBytes) + item.Xml.Length > _maxQueuedBytes && DropOldestPosition())
            {
            }

            if (Interlocked.Read(ref _queuedBytes) + item.Xml.Length > _maxQueuedBytes)
            {
                Close(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"too slow: over {_maxQueuedBytes:N0} bytes queued"));
                return false;
            }

            if (!TryQueueAlert(item))
            {
                Close("too slow: its alert queue is full");
                return false;
            }
        }

        if (ring)
        {
            Ring();
        }

        return true;
    }

    /// <summary>
    /// The most protocol answers (pongs, the version switch's answer) a session holds unwritten: a device asks again only
    /// after an answer, so more is a device pinging faster than it reads, and the extra pongs are dropped.
    /// </summary>
    public const int MaxControl = 16;

    /// <summary>
    /// Queues an answer to the device's own protocol request, ahead of everything else: a device waiting for the answer
    /// to its version request sends nothing meanwhile (not even pings), and gives up after a minute, which an opening
    /// picture queued before the answer could take on a slow link. Which format the events after it go out in is decided
    /// as each is written, so overtaking them is safe.
    /// </summary>
    public void SendControl(Outbound item)
    {
        if (_closing.IsCancellationRequested || _closeWhenWritten is not null)
        {
            return;
        }

        // The answer that switches the stream to protobuf is never dropped (once a session): the stream switches when it is
        // written, and a device that never had it would go on speaking XML into a protobuf stream.
        if (Interlocked.Increment(ref _controlCount) > MaxControl && !item.SwitchesToProtobuf)
        {
            Interlocked.Decrement(ref _controlCount);
            return;
        }

        _control.Enqueue(item);
        Interlocked.Add(ref _queuedBytes, item.Xml.Length);
        Ring();
    }

    /// <summary>Drops the oldest queued position; false when there is none.</summary>
    private bool DropOldestPosition()
    {
        if (!_positions.TryDequeue(out var dropped))
        {
            return false;
        }

        Interlocked.Decrement(ref _positionCount);
        Interlocked.Add(ref _queuedBytes, -dropped.Xml.Length);
        Interlocked.Increment(ref _dropped);
        return true;
    }

    /// <summary>Queues an alert if its queue holds fewer than <paramref name="limit"/> (by default, its length).</summary>
    private bool TryQueueAlert(Outbound item, int? limit = null)
    {
        // Superseded alerts leave the count at once but the queue only when the writer passes them: a flood of edits of
        // one marker towards a link slower than the flood is bounded here (a session's last events are not).
        if (limit != int.MaxValue && Volatile.Read(ref _alertEntries) >= MaxEntriesPerAlert * (long)_alertQueue)
        {
            return false;
        }

        if (Interlocked.Increment(ref _alertCount) <= (limit ?? _alertQueue))
        {
            var queued = new Queued(item);
            Interlocked.Increment(ref _alertEntries);
            Interlocked.Add(ref _queuedBytes, item.Xml.Length);
            if (item.Uid is { } uid)
            {
                // Queued and made the uid's latest in one step: two events of one uid queued at once (the opening picture
                // and the live feed) must leave the later in the queue as the latest, never the earlier.
                lock (_queuedByUid)
                {
                    _alerts.Enqueue(queued);
                    Supersede(uid, queued);
                }
            }
            else
            {
                _alerts.Enqueue(queued);
            }

            return true;
        }

        Interlocked.Decrement(ref _alertCount);
        return false;
    }

    /// <summary>Makes <paramref name="queued"/> the latest of <paramref name="uid"/>, and gives up the one before if still queued.</summary>
    private void Supersede(string uid, Queued queued)
    {
        Remember(uid, queued);

        // Taken by the writer before it was remembered: forgotten again, or it would stay until the uid's next event.
        if (Volatile.Read(ref queued.State) != Queued.Waiting)
        {
            _queuedByUid.TryRemove(KeyValuePair.Create(uid, queued));
        }
    }

    private void Remember(string uid, Queued queued)
    {
        while (true)
        {
            if (_queuedByUid.TryGetValue(uid, out var previous))
            {
                if (!_queuedByUid.TryUpdate(uid, queued, previous))
                {
                    continue;
                }

                // Taken by the writer meanwhile (or dropped), it is no longer queued: nothing to give up. Its place is given
                // up at once; its bytes only when the writer passes it (they are held until then: the byte bound is the
                // memory bound).
                if (Interlocked.CompareExchange(ref previous.State, Queued.Superseded, Queued.Waiting) == Queued.Waiting)
                {
                    Interlocked.Decrement(ref _alertCount);
                    Interlocked.Increment(ref _superseded);
                    _room.Ring();
                }

                return;
            }

            if (_queuedByUid.TryAdd(uid, queued))
            {
                return;
            }
        }
    }

    /// <summary>
    /// Takes <paramref name="queued"/> (an event, not a marker) off the queue's count and bytes; false when it was
    /// superseded (off the count already, its bytes now, not to be written).
    /// </summary>
    private bool Take(Queued queued)
    {
        Interlocked.Add(ref _queuedBytes, -queued.Item!.Xml.Length);
        if (Interlocked.CompareExchange(ref queued.State, Queued.Taken, Queued.Waiting) != Queued.Waiting)
        {
            return false;
        }

        Interlocked.Decrement(ref _alertCount);
        if (queued.Item.Uid is { } uid)
        {
            _queuedByUid.TryRemove(KeyValuePair.Create(uid, queued));
        }

        return true;
    }

    /// <summary>
    /// An alert in a session's queue (waiting, taken by the writer or dropped, or superseded by a newer one), or a marker of
    /// <see cref="WrittenAsync"/> (no event: done when the writer has written everything queued before it).
    /// </summary>
    private sealed class Queued(Outbound? item, TaskCompletionSource<bool>? marker = null)
    {
        public const int Waiting = 0;
        public const int Taken = 1;
        public const int Superseded = 2;

        public readonly Outbound? Item = item;
        public readonly TaskCompletionSource<bool>? Marker = marker;
        public int State;
    }

    /// <summary>Wakes the writer for what was queued without ringing.</summary>
    public void Ring() => _doorbell.Ring();

    /// <summary>
    /// Queues an alert, waiting for room: for the initial picture, which may be larger than the queue. It fills the queue
    /// to three quarters at most, so that live alerts arriving meanwhile (a marker, a message, an incident's change) find
    /// room rather than cutting the device as too slow. One caller at a time (the session's initial picture).
    /// </summary>
    public async Task SendWaitingAsync(Outbound item)
    {
        var limit = Math.Max(1, _alertQueue - (_alertQueue / 4));
        var bytes = _maxQueuedBytes - (_maxQueuedBytes / 4);
        while (true)
        {
            Interlocked.Increment(ref _sending);
            try
            {
                if (_closing.IsCancellationRequested || _closeWhenWritten is not null)
                {
                    return;
                }

                if (Interlocked.Read(ref _queuedBytes) + item.Xml.Length <= bytes && TryQueueAlert(item, limit))
                {
                    Ring();
                    return;
                }
            }
            finally
            {
                Interlocked.Decrement(ref _sending);
            }

            await _room.WaitAsync();
        }
    }

    /// <summary>
    /// Begins the end of a session whose access was withdrawn or narrowed: from now on nothing more is queued for the device
    /// and nothing it sends is handled; <see cref="SendLast"/> then queues its last events (deletions of what it may no
    /// longer see), and the session closes once they are written, or after <paramref name="within"/> whatever is left.
    /// </summary>
    public void StopSending(string reason, TimeSpan within, bool dropQueued)
    {
        if (_closeWhenWritten is not null)
        {
            return;
        }

        _keptQueue = !dropQueued;
        _closeWhenWritten = reason;
        Interlocked.MemoryBarrier();
        // Sends that checked before the line above finish queuing first (they never wait), so the queues dropped below
        // hold them too.
        SpinWait.SpinUntil(() => Volatile.Read(ref _sending) == 0);
        // What is queued was queued under the old access (a backlog of a slow device: thousands of alerts, a thousand
        // positions): when that access was withdrawn or narrowed none of it is written, only the last events. A device
        // whose access only grew keeps its backlog (a teammate's emergency in it would otherwise be lost).
        if (dropQueued)
        {
            DropQueued();
        }

        // The opening picture, if it is still waiting for room, sees the end when it wakes.
        Cancel(_ending);
        _room.Ring();
        _ = CloseAfterAsync(reason, within);
    }

    private void DropQueued()
    {
        while (_alerts.TryDequeue(out var alert))
        {
            Interlocked.Decrement(ref _alertEntries);
            if (alert.Marker is { } marker)
            {
                marker.TrySetResult(false);
            }
            else
            {
                Take(alert);
            }
        }

        while (_positions.TryDequeue(out var position))
        {
            Interlocked.Decrement(ref _positionCount);
            Interlocked.Add(ref _queuedBytes, -position.Xml.Length);
        }
    }

    /// <summary>
    /// True once every alert queued before the call (an opening picture and its withdrawals) has been written to the
    /// device's connection; false when the session closes or begins its end first, its queue dropped or not written.
    /// One caller at a time, and not while <see cref="SendWaitingAsync"/> waits (the opening picture calls both in turn).
    /// </summary>
    public async Task<bool> WrittenAsync()
    {
        if (_closing.IsCancellationRequested || _closeWhenWritten is not null)
        {
            return false;
        }

        // A marker in the alert queue, behind what was queued before it: the writer says when it has written up to it.
        // (A count of alerts written would be moved by alerts queued later, and skipped ones, too.)
        var marker = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Increment(ref _alertEntries);
        _alerts.Enqueue(new Queued(null, marker));
        Ring();
        try
        {
            return await marker.Task.WaitAsync(_closing.Token) && _closeWhenWritten is null;
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>True once <see cref="StopSending"/> was called: the session is on its way out.</summary>
    public bool Draining => _closeWhenWritten is not null;

    /// <summary>
    /// Draining with the queue its member's access filled kept (the access only grew, or where its positions go changed):
    /// a withdrawal or narrowing while it is written must still drop it (<see cref="SendLast"/> with dropQueued).
    /// </summary>
    public bool DrainingWithQueue => _closeWhenWritten is not null && _keptQueue;

    private volatile bool _keptQueue;

    /// <summary>What is queued for the device, in bytes (positions and alerts).</summary>
    internal long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>How many positions are queued for the device.</summary>
    internal int QueuedPositions => Volatile.Read(ref _positionCount);

    /// <summary>Closed, or draining: nothing more is queued for the device. Safe to read after the session is disposed.</summary>
    public bool Stopped => _closeWhenWritten is not null || _closing.IsCancellationRequested;

    /// <summary>Queues the last events of a draining session, past the queues' limits (they are its last), and lets it close once they are written.</summary>
    public void SendLast(IReadOnlyCollection<Outbound> last, bool dropQueued)
    {
        if (dropQueued)
        {
            _keptQueue = false;
            // Again: a Send that checked before StopSending may have queued since.
            DropQueued();
        }

        foreach (var item in last)
        {
            TryQueueAlert(item, int.MaxValue);
        }

        _lastQueued = true;
        Ring();
    }

    private async Task CloseAfterAsync(string reason, TimeSpan within)
    {
        try
        {
            await Task.Delay(within, _closing.Token);
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        Close(reason);
    }

    public void Close(string reason)
    {
        CloseReason ??= reason;
        Cancel(_closing);

        // The writer and a sender waiting for room see the closing when they wake.
        _doorbell.Ring();
        _room.Ring();
    }

    /// <summary>Writes queued events until the session closes, batching what is ready into one write.</summary>
    public async Task WriteLoopAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        var token = _closing.Token;
        // One timeout source for every write, re-armed before each and reset after: no allocation per write.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        try
        {
            while (!token.IsCancellationRequested)
            {
                if (!Fill(buffer))
                {
                    // Markers passed with nothing left to write: what was queued before them went out in earlier writes.
                    CompleteMarkers();
                    if (_lastQueued && _closeWhenWritten is { } last)
                    {
                        Close(last);
                        return;
                    }

                    await _doorbell.WaitAsync();
                    continue;
                }

                _room.Ring();

                timeout.CancelAfter(WriteTimeout);
                try
                {
                    await _stream.WriteAsync(buffer.WrittenMemory, timeout.Token);
                    await _stream.FlushAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (!token.IsCancellationRequested)
                {
                    Close($"a write stalled for {WriteTimeout.TotalSeconds:0} s");
                    return;
                }

                if (!timeout.TryReset())
                {
                    // The timeout fired just as the write completed: treat it as the stall it nearly was.
                    Close($"a write stalled for {WriteTimeout.TotalSeconds:0} s");
                    return;
                }

                buffer.ResetWrittenCount();
                CompleteMarkers();
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
            Close("the connection broke");
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            // Anything else (an event that cannot be written in this device's format) must not leave the session attached
            // with no writer: the device is cut, reconnects, and gets a fresh picture.
            Close($"its writer failed: {e.GetType().Name}: {e.Message}");
        }
    }

    private bool Fill(ArrayBufferWriter<byte> buffer)
    {
        const int BatchBytes = 64 * 1024;
        while (buffer.WrittenCount < BatchBytes && Take() is { } item)
        {
            if (item.SwitchesToProtobuf)
            {
                // The last XML event goes without its trailing newline: the next byte the device reads is a frame.
                buffer.Write(item.Xml.AsSpan(0, item.Xml.Length - 1));
                _protobuf = true;
            }
            else if (Encoded(item) is { } bytes)
            {
                buffer.Write(bytes);
            }
        }

        return buffer.WrittenCount > 0;
    }

    /// <summary>
    /// The event in this device's format, or null when it cannot be written in it: that one event is skipped (and counted)
    /// rather than the device cut, since the event came from another device and would cut every device of that format.
    /// </summary>
    private byte[]? Encoded(Outbound item)
    {
        try
        {
            return _protobuf ? item.Protobuf : item.Xml;
        }
        catch (CotParseException)
        {
            Interlocked.Increment(ref _unwritable);
            return null;
        }
    }

    /// <summary>The next event to write: protocol answers first, then alerts, then positions.</summary>
    private Outbound? Take()
    {
        if (_control.TryDequeue(out var answer))
        {
            Interlocked.Decrement(ref _controlCount);
            Interlocked.Add(ref _queuedBytes, -answer.Xml.Length);
            return answer;
        }

        while (_alerts.TryDequeue(out var alert))
        {
            Interlocked.Decrement(ref _alertEntries);
            if (alert.Marker is { } marker)
            {
                _batchMarkers.Add(marker);
            }
            else if (Take(alert))
            {
                return alert.Item;
            }
        }

        if (_positions.TryDequeue(out var position))
        {
            Interlocked.Decrement(ref _positionCount);
            Interlocked.Add(ref _queuedBytes, -position.Xml.Length);
            return position;
        }

        return null;
    }

    private void CompleteMarkers()
    {
        foreach (var marker in _batchMarkers)
        {
            marker.TrySetResult(true);
        }

        _batchMarkers.Clear();
    }

    private static void Cancel(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        Close("closed");
        await _stream.DisposeAsync();
        _ending.Dispose();
        _closing.Dispose();
    }
}

/// <summary>The marking a device's records get, as stored columns and as the label sent in CoT.</summary>
internal sealed record MarkingDefault(int Classification, string ReleasableTo, long Caveats, string Label)
{
    /// <summary>Whether <paramref name="viewer"/> may read what goes out under this marking.</summary>
    public bool ReadableBy(Access.Viewer viewer) => Access.Marking.AllowsRead(Classification, ReleasableTo, Caveats, viewer);
}

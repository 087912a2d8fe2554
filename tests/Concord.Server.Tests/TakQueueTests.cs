using System.Collections.Concurrent;
using System.Text;
using Concord.Server.Tak;

namespace Concord.Server.Tests;

/// <summary>A device's send queues and the doorbell that wakes its writer, without a network in between.</summary>
public sealed class TakQueueTests
{
    private static readonly MarkingDefault Unclassified = new(0, "mission", 0, "UNCLASSIFIED");

    [Fact]
    public async Task The_doorbell_never_loses_a_ring_between_threads()
    {
        // Four threads queue and ring as fast as they can while one task drains and waits: a ring lost while the
        // waiter goes to sleep would leave items in the queue with nobody awake to take them.
        const int PerProducer = 100_000;
        var bell = new Doorbell();
        var queue = new ConcurrentQueue<int>();
        var taken = 0;
        var consumer = Task.Run(async () =>
        {
            while (taken < 4 * PerProducer)
            {
                while (queue.TryDequeue(out _))
                {
                    taken++;
                }

                if (taken < 4 * PerProducer)
                {
                    await bell.WaitAsync();
                }
            }
        });
        var producers = Enumerable.Range(0, 4).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                queue.Enqueue(i);
                bell.Ring();
            }
        })).ToArray();

        await Task.WhenAll(producers);
        await consumer.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(4 * PerProducer, taken);
    }

    [Fact]
    public async Task A_ring_before_the_wait_is_kept_and_many_rings_count_as_one()
    {
        var bell = new Doorbell();
        bell.Ring();
        bell.Ring();
        Assert.True(bell.WaitAsync().AsTask().IsCompleted);

        var next = bell.WaitAsync().AsTask();
        Assert.False(next.IsCompleted);
        bell.Ring();
        await next.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Alerts_go_first_and_a_device_that_falls_behind_loses_its_oldest_positions()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        for (var i = 0; i < 10; i++)
        {
            Assert.True(session.Send(Item($"p{i}", droppable: true), ring: false));
        }

        Assert.True(session.Send(Item("a0", droppable: false), ring: false));
        Assert.True(session.Send(Item("a1", droppable: false), ring: false));
        Assert.Equal(6, session.Dropped);

        var writer = session.WriteLoopAsync();
        session.Ring();
        Assert.Equal("a0;a1;p6;p7;p8;p9;", await wire.WaitForAsync(6));
        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_slow_device_is_written_only_the_latest_queued_event_of_each_uid_in_the_order_of_the_latest()
    {
        // A device keeps one thing per uid: a marker edited ten times while a slow link was busy goes out once, as it is
        // now, and the edits it skipped free their places (a queue of 4 takes ten edits of one marker without cutting).
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 4);
        Assert.True(session.Send(Item("marker-0", droppable: false, uid: "marker"), ring: false));
        Assert.True(session.Send(Item("drawing-0", droppable: false, uid: "drawing"), ring: false));
        for (var i = 1; i < 10; i++)
        {
            Assert.True(session.Send(Item($"marker-{i}", droppable: false, uid: "marker"), ring: false));
        }

        // Without a uid (a chat message) nothing is superseded.
        Assert.True(session.Send(Item("chat", droppable: false), ring: false));
        Assert.Null(session.CloseReason);
        Assert.Equal(9, session.Superseded);
        var written = session.WrittenAsync();

        var writer = session.WriteLoopAsync();
        session.Ring();
        Assert.Equal("drawing-0;marker-9;chat;", await wire.WaitForAsync(3));
        Assert.True(await written.WaitAsync(TimeSpan.FromSeconds(5)));

        // Once written, a newer edit goes out again.
        Assert.True(session.Send(Item("marker-10", droppable: false, uid: "marker")));
        Assert.Equal("drawing-0;marker-9;chat;marker-10;", await wire.WaitForAsync(4));
        Assert.Equal(9, session.Superseded);
        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));

        // Skipped edits leave the queue only as the writer passes them: a flood towards a device that is not writing is
        // bounded at four entries per place, and cuts it as a full queue does.
        await using var flooded = Session(new Wire(), positionQueue: 4, alertQueue: 2);
        for (var i = 0; i < 8; i++)
        {
            Assert.True(flooded.Send(Item($"edit-{i}", droppable: false, uid: "marker"), ring: false));
        }

        Assert.False(flooded.Send(Item("edit-8", droppable: false, uid: "marker"), ring: false));
        Assert.Equal("too slow: its alert queue is full", flooded.CloseReason);

        // And their bytes count until the writer passes them: the byte bound stays the bound on memory.
        await using var heavy = Session(new Wire(), positionQueue: 4, alertQueue: 100, maxQueuedBytes: 50);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(heavy.Send(Item($"edit{i}---", droppable: false, uid: "marker"), ring: false));
        }

        Assert.False(heavy.Send(Item("edit5---", droppable: false, uid: "marker"), ring: false));
        Assert.Equal("too slow: over 50 bytes queued", heavy.CloseReason);
    }

    [Fact]
    public async Task A_device_whose_alert_queue_is_full_is_cut()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(session.Send(Item($"a{i}", droppable: false)));
        }

        Assert.False(session.Send(Item("a3", droppable: false)));
        Assert.Equal("too slow: its alert queue is full", session.CloseReason);
        Assert.True(session.Closing.IsCancellationRequested);
        Assert.False(session.Send(Item("p0", droppable: true)));
    }

    [Fact]
    public async Task Queues_are_bounded_in_bytes_positions_go_first_and_an_alert_that_does_not_fit_cuts_the_device()
    {
        // Items of 10 bytes ("p0;\n" padded), a budget of 50: positions beyond it go oldest first.
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 100, alertQueue: 100, maxQueuedBytes: 50);
        for (var i = 0; i < 8; i++)
        {
            Assert.True(session.Send(Item($"p{i}------", droppable: true), ring: false));
        }

        Assert.Equal(3, session.Dropped);

        // An alert takes the room of the oldest positions; one that cannot fit even then cuts the device.
        Assert.True(session.Send(Item("a0------", droppable: false), ring: false));
        Assert.Equal(4, session.Dropped);
        Assert.True(session.Send(Item("a1------", droppable: false), ring: false));
        Assert.True(session.Send(Item("a2------", droppable: false), ring: false));
        Assert.True(session.Send(Item("a3------", droppable: false), ring: false));
        Assert.True(session.Send(Item("a4------", droppable: false), ring: false));
        Assert.Equal(8, session.Dropped);
        Assert.False(session.Send(Item("a5------", droppable: false), ring: false));
        Assert.Equal("too slow: over 50 bytes queued", session.CloseReason);
    }

    [Fact]
    public async Task A_session_on_its_way_out_takes_nothing_more_writes_its_last_events_past_the_limits_then_closes()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 2);
        Assert.True(session.Send(Item("before", droppable: false), ring: false));
        var writer = session.WriteLoopAsync();

        session.StopSending("access changed", TimeSpan.FromSeconds(30), dropQueued: false);
        Assert.True(session.Draining);
        Assert.False(session.Send(Item("after", droppable: false)));
        await session.SendWaitingAsync(Item("picture", droppable: false)).WaitAsync(TimeSpan.FromSeconds(1));
        // The writer has written what was queued, and waits for the last events rather than closing without them.
        Assert.Equal("before;", await wire.WaitForAsync(1));
        await Task.Delay(200);
        Assert.False(session.Closing.IsCancellationRequested);

        session.SendLast([Item("d0", droppable: false), Item("d1", droppable: false), Item("d2", droppable: false)], dropQueued: false);
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("before;d0;d1;d2;", await wire.WaitForAsync(4));
        Assert.Equal("access changed", session.CloseReason);
    }

    [Fact]
    public async Task A_session_whose_access_narrowed_writes_nothing_it_had_queued_only_its_last_events()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        // A slow device's backlog, queued under the access it had.
        Assert.True(session.Send(Item("alert", droppable: false), ring: false));
        Assert.True(session.Send(Item("position", droppable: true), ring: false));

        session.StopSending("access narrowed", TimeSpan.FromSeconds(30), dropQueued: true);
        session.SendLast([Item("d0", droppable: false)], dropQueued: true);
        var writer = session.WriteLoopAsync();
        await writer.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal("d0;", await wire.WaitForAsync(1));
        Assert.Equal("access narrowed", session.CloseReason);
    }

    [Fact]
    public async Task An_event_sent_as_the_access_narrows_is_dropped_or_refused_never_written_after_the_last_events()
    {
        // Events routed under the old access race the cut: one that passed the session's check just before it must still
        // be dropped with the queue, not queued after the withdrawals and written to a device that may no longer see it.
        for (var round = 0; round < 300; round++)
        {
            var wire = new Wire();
            // Positions: a full queue drops its oldest rather than cutting the device, so the senders go on until the cut.
            await using var session = Session(wire, positionQueue: 1024, alertQueue: 8);
            using var go = new ManualResetEventSlim();
            var senders = Enumerable.Range(0, 2).Select(t => Task.Run(() =>
            {
                go.Wait();
                for (var i = 0; session.Send(Item($"old{t}-{i}", droppable: true), ring: false); i++)
                {
                }
            })).ToArray();
            go.Set();
            await Task.Delay(round % 3);
            session.StopSending("access narrowed", TimeSpan.FromSeconds(30), dropQueued: true);
            session.SendLast([Item("last", droppable: false)], dropQueued: true);
            await Task.WhenAll(senders).WaitAsync(TimeSpan.FromSeconds(30));

            await session.WriteLoopAsync().WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal("last;", await wire.WaitForAsync(1));
        }
    }

    [Fact]
    public async Task A_session_on_its_way_out_closes_after_its_time_even_without_its_last_events()
    {
        await using var session = Session(new Wire(), positionQueue: 4, alertQueue: 2);
        var writer = session.WriteLoopAsync();

        session.StopSending("access withdrawn", TimeSpan.FromMilliseconds(200), dropQueued: true);

        await writer.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("access withdrawn", session.CloseReason);
    }

    [Fact]
    public async Task The_initial_picture_waits_for_room_instead_of_cutting_the_device()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 2);
        var writer = session.WriteLoopAsync();
        for (var i = 0; i < 50; i++)
        {
            await session.SendWaitingAsync(Item($"i{i}", droppable: false)).WaitAsync(TimeSpan.FromSeconds(5));
        }

        Assert.Equal(string.Concat(Enumerable.Range(0, 50).Select(i => $"i{i};")), await wire.WaitForAsync(50));
        Assert.Null(session.CloseReason);
        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_opening_picture_counts_as_written_only_once_the_writer_wrote_it_and_never_when_the_session_ends_first()
    {
        // A device's access is recorded as told only when its withdrawals are on the wire: queued is not sent.
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        await session.SendWaitingAsync(Item("withdraw", droppable: false));
        await session.SendWaitingAsync(Item("picture", droppable: false));
        var written = session.WrittenAsync();
        // Events queued after it, and edits skipped for newer ones, do not make the picture written.
        for (var i = 0; i < 5; i++)
        {
            Assert.True(session.Send(Item($"drawing-{i}", droppable: false, uid: "drawing"), ring: false));
        }

        await Task.Delay(100);
        Assert.False(written.IsCompleted);

        var writer = session.WriteLoopAsync();
        Assert.True(await written.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.StartsWith("withdraw;picture;", await wire.WaitForAsync(3), StringComparison.Ordinal);

        // Narrowed access drops what was queued: it was never written, and is not said to be.
        await using var narrowed = Session(new Wire(), positionQueue: 4, alertQueue: 8);
        await narrowed.SendWaitingAsync(Item("withdraw", droppable: false));
        var never = narrowed.WrittenAsync();
        narrowed.StopSending("access narrowed", TimeSpan.FromSeconds(30), dropQueued: true);
        Assert.False(await never.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(await narrowed.WrittenAsync());

        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_initial_picture_leaves_room_for_live_alerts()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        for (var i = 0; i < 6; i++)
        {
            Assert.True(session.SendWaitingAsync(Item($"i{i}", droppable: false)).IsCompletedSuccessfully);
        }

        // Three quarters full: the picture waits, and alerts arriving meanwhile still find room.
        var waiting = session.SendWaitingAsync(Item("i6", droppable: false));
        Assert.False(waiting.IsCompleted);
        Assert.True(session.Send(Item("live0", droppable: false)));
        Assert.True(session.Send(Item("live1", droppable: false)));
        Assert.Null(session.CloseReason);

        var writer = session.WriteLoopAsync();
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("i0;i1;i2;i3;i4;i5;live0;live1;i6;", await wire.WaitForAsync(9));
        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Answers_to_the_devices_own_requests_overtake_its_opening_picture_and_a_ping_flood_is_bounded()
    {
        // A device that asked to switch to protobuf sends nothing until it has the answer and gives up after a minute: on
        // a slow link the answer queued behind thousands of incidents came too late, and the device reconnected for ever.
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(session.Send(Item($"picture{i}", droppable: false), ring: false));
        }

        Assert.True(session.Send(Item("position", droppable: true), ring: false));
        for (var i = 0; i < TakSession.MaxControl + 4; i++)
        {
            session.SendControl(Item($"pong{i}", droppable: false));
        }

        var writer = session.WriteLoopAsync();
        var written = await wire.WaitForAsync(TakSession.MaxControl + 6);
        var expected = string.Concat(Enumerable.Range(0, TakSession.MaxControl).Select(i => $"pong{i};"))
            + string.Concat(Enumerable.Range(0, 5).Select(i => $"picture{i};")) + "position;";
        Assert.Equal(expected, written);

        session.Close("done");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_answer_that_switches_to_protobuf_is_never_dropped_by_a_ping_flood()
    {
        // Dropped behind a flood of unwritten pongs, the answer never came while the server switched anyway: the device,
        // still speaking XML, was cut as a broken protobuf stream.
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 4, alertQueue: 8);
        for (var i = 0; i < TakSession.MaxControl; i++)
        {
            session.SendControl(Item($"pong{i}", droppable: false));
        }

        session.SendControl(new Outbound(Encoding.UTF8.GetBytes("switch;\n"), () => throw new InvalidOperationException("XML only"), droppable: false) { SwitchesToProtobuf = true });

        var writer = session.WriteLoopAsync();
        Assert.EndsWith("pong15;switch;", await wire.WaitForAsync(TakSession.MaxControl + 1));
        session.Close("done");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_classified_relay_waits_for_its_audit_entry_and_holds_the_later_events_of_its_uid_but_no_other()
    {
        var wire = new Wire();
        await using var session = Session(wire, positionQueue: 16, alertQueue: 16);
        var rounds = new List<TakSession>();
        var confidential = new RelayRecord(RelayEntities.Track, "alpha", 1, 0);

        // Alpha's first classified position waits; its next event (even one needing no entry) waits behind it; bravo's goes.
        Assert.True(session.Relays.Send(session, Item("alpha-1", droppable: true), "alpha", confidential, ring: false, rounds.Add));
        Assert.True(session.Relays.Send(session, Item("alpha-1b", droppable: true), "alpha", null, ring: false, rounds.Add));
        Assert.True(session.Relays.Send(session, Item("bravo-1", droppable: true), "bravo", null, ring: false, rounds.Add));
        Assert.True(session.Relays.Holding);
        Assert.Equal(2, session.Relays.Held);
        Assert.Same(session, Assert.Single(rounds));

        var writer = session.WriteLoopAsync();
        session.Ring();
        Assert.Equal("bravo-1;", await wire.WaitForAsync(1));

        // A round that failed leaves them waiting; the session is queued again.
        var records = session.Relays.TakeUnaudited();
        Assert.Equal([confidential], records);
        Assert.True(session.Relays.Requeue());
        Assert.Equal(2, session.Relays.Held);

        // Written: alpha's events go out in the order they came; its later positions go at once, without another round.
        session.Relays.Audited(session, session.Relays.TakeUnaudited());
        Assert.False(session.Relays.Holding);
        Assert.True(session.Relays.Send(session, Item("alpha-2", droppable: true), "alpha", confidential, ring: true, rounds.Add));
        Assert.Equal("bravo-1;alpha-1;alpha-1b;alpha-2;", await wire.WaitForAsync(4));
        Assert.Single(rounds);

        // Under another marking the same uid is another read.
        Assert.True(session.Relays.Send(session, Item("alpha-3", droppable: true), "alpha", confidential with { Caveats = 1 }, ring: true, rounds.Add));
        Assert.Equal(1, session.Relays.Held);
        Assert.Equal(2, rounds.Count);
        session.Close("test over");
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task After_a_failed_round_a_device_waits_for_the_retry_and_at_its_end_gives_up_what_waited_in_order()
    {
        await using var session = Session(new Wire(), positionQueue: 16, alertQueue: 16);
        var rounds = 0;
        var alpha = new RelayRecord(RelayEntities.Track, "alpha", 1, 0);
        Assert.True(session.Relays.Send(session, Item("alpha-1", droppable: true), "alpha", alpha, ring: false, _ => rounds++));
        Assert.Equal(1, rounds);

        // The round fails: more events for the device do not start another at once (the store is failing), the retry does.
        Assert.Equal([alpha], session.Relays.TakeUnaudited());
        session.Relays.Failed();
        Assert.True(session.Relays.Send(session, Item("bravo-1", droppable: true), "bravo", alpha with { Uid = "bravo" }, ring: false, _ => rounds++));
        Assert.Equal(1, rounds);
        Assert.True(session.Relays.Requeue());

        // A deletion naming alpha and charlie waits behind alpha; a later event of charlie waits behind the deletion.
        Assert.True(session.Relays.Send(session, Item("delete", droppable: false), "alpha", null, ring: false, _ => rounds++, ["charlie", "delete-uid"]));
        Assert.True(session.Relays.Send(session, Item("charlie-1", droppable: true), "charlie", null, ring: false, _ => rounds++));
        Assert.Equal(4, session.Relays.Held);

        // The device's end begins with its queue kept: everything that waited is given up, in order, with what needs an entry.
        var (records, held) = session.Relays.TakeAll();
        Assert.Equal(2, records.Count);
        Assert.Equal(["alpha-1;\n", "bravo-1;\n", "delete;\n", "charlie-1;\n"], held.Select(h => System.Text.Encoding.UTF8.GetString(h.Xml)));
        Assert.False(session.Relays.Holding);
        Assert.False(session.Relays.Requeue());

        // Once it is stopping nothing more waits for it.
        session.StopSending("test over", TimeSpan.FromSeconds(1), dropQueued: false);
        Assert.False(session.Relays.Send(session, Item("alpha-2", droppable: true), "alpha", alpha, ring: false, _ => rounds++));
        Assert.Equal(0, session.Relays.Held);
    }

    [Fact]
    public async Task Relays_waiting_for_an_audit_that_cannot_be_written_are_bounded()
    {
        await using var session = Session(new Wire(), positionQueue: 16, alertQueue: 16);
        for (var i = 0; i < RelayHold.MaxHeld; i++)
        {
            Assert.True(session.Relays.Send(session, Item($"p{i}", droppable: true), $"u{i}", new RelayRecord(RelayEntities.Track, $"u{i}", 1, 0), ring: false, _ => { }));
        }

        // A position past the bound is dropped; an alert cuts the device, as a full alert queue does.
        Assert.False(session.Relays.Send(session, Item("late", droppable: true), "late", new RelayRecord(RelayEntities.Track, "late", 1, 0), ring: false, _ => { }));
        Assert.Equal(1, session.Relays.Dropped);
        Assert.Null(session.CloseReason);
        Assert.False(session.Relays.Send(session, Item("alert", droppable: false), "alert", new RelayRecord(RelayEntities.Item, "alert", 1, 0), ring: false, _ => { }));
        Assert.Contains("audit", session.CloseReason, StringComparison.Ordinal);
    }

    private static TakSession Session(Stream wire, int positionQueue, int alertQueue, int maxQueuedBytes = TakSession.DefaultMaxQueuedBytes) =>
        new(wire, Viewers.OfForce("patrol", 0), "certificate", "test", Unclassified, CancellationToken.None, positionQueue, alertQueue, maxQueuedBytes);

    private static Outbound Item(string text, bool droppable, string? uid = null) =>
        new(Encoding.UTF8.GetBytes(text + ";\n"), () => throw new InvalidOperationException("XML only"), droppable) { Uid = uid };

    /// <summary>A write-only stream that records what the session wrote, one item per line.</summary>
    private sealed class Wire : Stream
    {
        private readonly StringBuilder _written = new();
        private readonly SemaphoreSlim _wrote = new(0);

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public async Task<string> WaitForAsync(int items)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                lock (_written)
                {
                    var text = _written.ToString().Replace("\n", "", StringComparison.Ordinal);
                    if (text.Count(c => c == ';') >= items || DateTime.UtcNow > deadline)
                    {
                        return text;
                    }
                }

                await _wrote.WaitAsync(TimeSpan.FromMilliseconds(100));
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (_written)
            {
                _written.Append(Encoding.UTF8.GetString(buffer, offset, count));
            }

            _wrote.Release();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _wrote.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

using Concord.Cot;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Tak;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>The router's memory of the incidents devices were sent, without a network or a store.</summary>
public sealed class TakRouterTests
{
    [Fact]
    public void A_full_withdrawal_list_forgets_the_incidents_sent_longest_ago_rather_than_every_new_one()
    {
        // Only Remember is exercised: the router's store, tracks and markings are not needed for it.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var router = new TakRouter(null!, null!, null!, clock, NullLogger<TakRouter>.Instance);
        var marking = new MarkingDefault(0, "mission", 0, "UNCLASSIFIED");
        var sent = Enumerable.Range(0, TakRouter.MaxRememberedIncidents).Select(_ => Guid.NewGuid()).ToList();
        foreach (var id in sent)
        {
            router.Remember(id, marking);
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        // All sent within the week, so none has gone stale on the devices: an incident sent now must still be withdrawable
        // later (a merge), and makes room by forgetting the ones sent longest ago.
        clock.Advance(TimeSpan.FromMinutes(2));
        var late = Guid.NewGuid();
        router.Remember(late, marking);
        Assert.True(router.MayHaveAny(late));
        Assert.False(router.MayHaveAny(sent[0]));
        Assert.False(router.MayHaveAny(sent[(TakRouter.MaxRememberedIncidents / 10) - 1]));
        Assert.True(router.MayHaveAny(sent[TakRouter.MaxRememberedIncidents / 10]));
        Assert.True(router.MayHaveAny(sent[^1]));
    }

    [Fact]
    public void A_full_list_of_relayed_items_forgets_those_relayed_longest_ago_rather_than_every_new_one()
    {
        // Devices drawing all day fill the list within the day: an item relayed then must still be withdrawn from a device
        // whose member loses access to it (it was left unremembered for the rest of the day).
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var router = new TakRouter(null!, null!, null!, clock, NullLogger<TakRouter>.Instance);
        var marking = new MarkingDefault(0, Concord.Server.Access.Releasability.Encode(["mission"]), 0, "UNCLASSIFIED");
        var sender = Guid.NewGuid();
        var item = Item("item", clock.GetUtcNow());
        for (var i = 0; i < TakRouter.MaxRememberedItems; i++)
        {
            Relay(router, item with { Uid = $"item-{i}" }, marking, sender);
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        clock.Advance(TimeSpan.FromMinutes(2));
        Relay(router, item with { Uid = "late" }, marking, sender);
        var held = router.ItemsNoLongerReadable(Viewers.OfForce("watcher", 0), null, int.MaxValue).ToHashSet();
        Assert.Contains("late", held);
        Assert.DoesNotContain("item-0", held);
        Assert.DoesNotContain($"item-{(TakRouter.MaxRememberedItems / 10) - 1}", held);
        Assert.Contains($"item-{TakRouter.MaxRememberedItems / 10}", held);
        Assert.Contains($"item-{TakRouter.MaxRememberedItems - 1}", held);
    }

    /// <summary>A drawing as a device sends it, valid for <paramref name="stale"/> (an hour by default).</summary>
    private static CotEvent Item(string uid, DateTimeOffset at, string detail = "", TimeSpan? stale = null) =>
        CotXml.Parse($"<event version='2.0' uid='{uid}' type='u-d-f' time='{at:O}' start='{at:O}' stale='{at + (stale ?? TimeSpan.FromHours(1)):O}' how='h-e'>" +
            $"<point lat='4.36' lon='18.55' hae='0' ce='10' le='10'/><detail>{detail}</detail></event>");

    /// <summary>A router on a clock of its own, without a store or devices: its memory of relayed items alone.</summary>
    private static (FakeTimeProvider Clock, TakRouter Router) ItemRouter()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        return (clock, new TakRouter(null!, null!, null!, clock, NullLogger<TakRouter>.Instance));
    }

    private static readonly MarkingDefault Open = new(0, Concord.Server.Access.Releasability.Encode(["mission"]), 0, "UNCLASSIFIED");
    private static readonly MarkingDefault Secret = new(1, Concord.Server.Access.Releasability.Encode(["mission"]), 0, "CONFIDENTIAL");

    /// <summary>What the router does with an item a device (by its certificate) relays: remembers it as it goes out.</summary>
    private static Outbound Relay(TakRouter router, CotEvent e, MarkingDefault marking, Guid sender, string device = "sender-device")
    {
        var sent = new Outbound(e, droppable: false) { Uid = e.Uid };
        router.RememberItem(e, marking, sender, device, sent);
        return sent;
    }

    [Fact]
    public void A_device_connecting_later_is_sent_the_latest_version_of_each_current_item_its_member_may_see()
    {
        var (clock, router) = ItemRouter();
        var viewer = Viewers.OfForce("watcher", 0);
        const string Device = "watcher-device";
        var sender = Guid.NewGuid();
        var now = clock.GetUtcNow();

        Relay(router, Item("edited", now.AddSeconds(-10), "<remarks>v1</remarks>"), Open, sender);
        var edited = Relay(router, Item("edited", now.AddSeconds(-5), "<remarks>v2</remarks>"), Open, sender);
        // An older version routed late (two devices of the team editing at once) does not replace the newer one.
        Relay(router, Item("edited", now.AddSeconds(-8), "<remarks>v0</remarks>"), Open, sender);
        Relay(router, Item("secret", now), Secret, sender);
        Relay(router, Item("short", now, stale: TimeSpan.FromMinutes(1)), Open, sender);
        Relay(router, Item("named", now, "<marti><dest callsign='VIPER 2'/></marti>"), Open, sender);
        // An alert for a GeoChat group goes to the group's devices only, as a message to the group does.
        Relay(router, Item("grouped", now, "<__chat id='grp-1' chatroom='Patrol'><chatgrp uid0='ANDROID-1' uid1='ANDROID-2' id='grp-1'/></__chat>"), Open, sender);
        Relay(router, Item("deleted", now), Open, sender);
        router.ItemDeleted("deleted");
        // The connecting device's own item (it has it); another device of its member is another matter.
        Relay(router, Item("own", now), Open, viewer.MemberId, Device);
        Relay(router, Item("colleague", now), Open, viewer.MemberId, "tablet");
        clock.Advance(TimeSpan.FromMinutes(2));

        // The latest edit, as it went out; not what the member may not read, what went stale, what went to named devices
        // only, what was deleted, nor what this device sent.
        var current = router.CurrentItemsFor(viewer, Device, clock.GetUtcNow(), 100);
        Assert.Equal(["colleague", "edited"], current.Select(c => c.Uid).Order(StringComparer.Ordinal));
        var (uid, xml, marking) = current.Single(c => c.Uid == "edited");
        Assert.Same(edited.Xml, xml);
        Assert.Equal(Open, marking);
        var again = TakRouter.ItemOutbound(uid, xml);
        Assert.Equal("v2", again.Event.Detail.Remarks);
        Assert.NotEmpty(again.Protobuf);
        Assert.Equal(["colleague", "edited", "own", "secret"], router.CurrentItemsFor(Viewers.OfForce("cleared", 1), "other", clock.GetUtcNow(), 100).Select(c => c.Uid).Order(StringComparer.Ordinal));

        // An opening picture that sent it, checking after: nothing while it is the latest; the newer version once edited;
        // a deletion once deleted, or once relayed under a marking the member may not read.
        Assert.Null(router.CurrentItem("edited", xml, viewer, Device, clock.GetUtcNow()));
        var v3 = Relay(router, Item("edited", clock.GetUtcNow(), "<remarks>v3</remarks>"), Open, sender);
        var (newer, latest) = router.CurrentItem("edited", xml, viewer, Device, clock.GetUtcNow())!.Value;
        Assert.Same(v3.Xml, latest);
        Assert.Equal("v3", newer.Event.Detail.Remarks);
        router.ItemDeleted("edited");
        var (deletion, none) = router.CurrentItem("edited", latest!, viewer, Device, clock.GetUtcNow())!.Value;
        Assert.Equal(CotControl.DeleteType, deletion.Event.Type);
        Assert.Equal("edited", Assert.Single(deletion.Event.Detail.Links).Uid);
        Assert.Null(none);
        var sentOpen = Relay(router, Item("regraded", clock.GetUtcNow()), Open, sender).Xml;
        Relay(router, Item("regraded", clock.GetUtcNow().AddSeconds(1)), Secret, sender);
        Assert.Equal(CotControl.DeleteType, router.CurrentItem("regraded", sentOpen, viewer, Device, clock.GetUtcNow())!.Value.Send.Event.Type);
        Assert.Equal(["colleague"], router.CurrentItemsFor(viewer, Device, clock.GetUtcNow(), 100).Select(c => c.Uid));
    }

    [Fact]
    public void Items_read_back_after_a_restart_keep_the_memorys_bounds_and_the_store_lets_go_of_what_they_leave_out()
    {
        var (clock, router) = ItemRouter();
        var now = clock.GetUtcNow();
        var sender = Guid.NewGuid();
        var version = new byte[1024 * 1024];
        // One more item than memory holds, relayed a millisecond apart (item-0 last); the 70 relayed last with a version of
        // 1 MiB each (more than the 64 MiB kept), and one of them stale.
        var stored = Enumerable.Range(0, TakRouter.MaxRememberedItems + 1).Select(i => ($"item-{i}",
                new TakRouter.RelayedItem([Open], (now - TimeSpan.FromMilliseconds(i)).UtcTicks, sender, i < 70 ? version : null, now.UtcTicks,
                    (i == 3 ? now.AddMinutes(-1) : now.AddHours(1)).UtcTicks, "device"),
                Guid.NewGuid()))
            .Reverse();
        router.LoadItems(stored);

        // What the store is to be told: the item relayed longest ago is forgotten; versions beyond the budget (those
        // relayed longest ago) and the stale one's are let go. Nothing else changed.
        var changed = router.TakeChangedItems().ToDictionary(c => c.Uid, c => c.Item);
        Assert.Null(changed[$"item-{TakRouter.MaxRememberedItems}"]);
        Assert.Null(changed["item-3"]!.Latest);
        Assert.Equal(Enumerable.Range(65, 5).Select(i => $"item-{i}").Append("item-3").Append($"item-{TakRouter.MaxRememberedItems}").Order(StringComparer.Ordinal),
            changed.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(64L * version.Length, router.RememberedItemBytes);
        var current = router.CurrentItemsFor(Viewers.OfForce("watcher", 0), "other", clock.GetUtcNow(), int.MaxValue).Select(c => c.Uid).ToHashSet();
        Assert.Equal(64, current.Count);
        Assert.Contains("item-64", current);
        Assert.DoesNotContain("item-3", current);
        Assert.Empty(router.TakeChangedItems());
    }

    [Fact]
    public void A_members_own_item_a_teammate_edited_is_withdrawn_from_their_devices_when_they_may_no_longer_read_the_edit()
    {
        // A member's own items were never withdrawn from their devices (they wrote them), also when a teammate's edit had
        // added what they may no longer read: their clearance lowered, or their lost device's certificate revoked.
        var (clock, router) = ItemRouter();
        var member = Viewers.OfForce("patrol", 1);
        var teammate = Guid.NewGuid();
        Relay(router, Item("edited-by-teammate", clock.GetUtcNow(), "<remarks>v1</remarks>"), Open, member.MemberId, "patrol-device");
        Relay(router, Item("own-only", clock.GetUtcNow(), "<remarks>mine</remarks>"), Secret, member.MemberId, "patrol-device");
        clock.Advance(TimeSpan.FromSeconds(5));
        Relay(router, Item("edited-by-teammate", clock.GetUtcNow(), "<remarks>v2: two armed men seen</remarks>"), Secret, teammate, "teammate-device");

        var lowered = router.ItemsNoLongerReadable(member, member with { Clearance = 0 }, int.MaxValue);
        var revoked = router.ItemsNoLongerReadable(member, null, int.MaxValue);

        Assert.Equal(["edited-by-teammate"], lowered);
        Assert.Equal(["edited-by-teammate"], revoked);
        // Remembered as edited through the store, for after a restart.
        var changed = router.TakeChangedItems().ToDictionary(c => c.Uid, c => c.Item);
        Assert.True(changed["edited-by-teammate"]!.Edited);
        Assert.False(changed["own-only"]!.Edited);
    }

    [Fact]
    public void An_event_whose_flow_tags_are_named_with_a_namespace_prefix_is_stamped_without_them()
    {
        // Rebuilt without the prefix's declaration, such a tag made the stamped detail unreadable: the event was lost, and
        // a chat receipt carrying one closed its sender's connection.
        var (clock, router) = ItemRouter();
        var at = clock.GetUtcNow();
        var e = CotXml.Parse($"<event version='2.0' xmlns:p='urn:example:relay' uid='tagged' type='b-t-f-d' time='{at:O}' start='{at:O}' stale='{at.AddMinutes(5):O}' how='h-g-i-g-o'>" +
            "<point lat='4.36' lon='18.55' hae='0' ce='10' le='10'/><detail><_flow-tags_ p:relay='2026-12-05T10:00:00Z' gateway-a='2026-12-05T10:00:01Z'/></detail></event>");

        var stamped = router.Stamp(e, Open);

        var again = CotXml.Parse(CotXml.Serialize(stamped));
        Assert.Equal("2026-12-05T10:00:01Z", again.Detail.FlowTags["gateway-a"]);
        Assert.True(again.Detail.FlowTags.ContainsKey(router.FlowTag));
        Assert.DoesNotContain(again.Detail.FlowTags.Keys, k => k.Contains(':', StringComparison.Ordinal));
    }

    [Fact]
    public void An_item_sent_again_after_its_deletion_stays_its_first_senders()
    {
        // A team member deletes a drawing and a teammate's device shares it again (devices keep deleted items archived): it
        // is still the first sender's, as the replay check holds, and so it is stored and read back after a restart.
        var (clock, router) = ItemRouter();
        var (first, teammate) = (Guid.NewGuid(), Guid.NewGuid());
        Relay(router, Item("drawing", clock.GetUtcNow()), Open, first);
        router.ItemDeleted("drawing");
        clock.Advance(TimeSpan.FromSeconds(5));
        Relay(router, Item("drawing", clock.GetUtcNow()), Open, teammate, "teammate-device");

        var (_, item) = Assert.Single(router.TakeChangedItems());
        Assert.Equal(first, item!.Sender);
        Assert.False(item.Deleted);
        Assert.Equal("teammate-device", item.From);
    }

    [Fact]
    public void An_older_version_routed_late_leaves_the_newer_one_with_its_own_marking()
    {
        // A teammate re-types a marker hostile (CONFIDENTIAL) while another's older edit (UNCLASSIFIED) is still on its way:
        // the older arrives last. A device connecting later is judged by the marking of the version it would be sent.
        var (clock, router) = ItemRouter();
        var now = clock.GetUtcNow();
        var hostile = Relay(router, Item("marker", now, "<remarks>hostile</remarks>"), Secret, Guid.NewGuid());
        Relay(router, Item("marker", now.AddSeconds(-1), "<remarks>friendly</remarks>"), Open, Guid.NewGuid());

        Assert.Empty(router.CurrentItemsFor(Viewers.OfForce("uncleared", 0), "device", clock.GetUtcNow(), 100));
        var (_, xml, marking) = Assert.Single(router.CurrentItemsFor(Viewers.OfForce("cleared", 1), "device", clock.GetUtcNow(), 100));
        Assert.Same(hostile.Xml, xml);
        Assert.Equal(Secret, marking);
    }

    [Fact]
    public void The_memorys_budget_makes_room_from_stale_items_then_those_relayed_longest_ago()
    {
        var (clock, router) = ItemRouter();
        var viewer = Viewers.OfForce("watcher", 0);
        var remarks = $"<remarks>{new string('x', 60_000)}</remarks>";
        CotEvent Large(string uid, TimeSpan stale) => Item(uid, clock.GetUtcNow(), remarks, stale);
        var size = new Outbound(Large("probe", TimeSpan.FromDays(1)), droppable: false).Xml.Length;
        List<string> Current() => [.. router.CurrentItemsFor(viewer, "device", clock.GetUtcNow(), int.MaxValue).Select(c => c.Uid)];
        // Exactly full; two in five valid for a minute only, the rest for a day.
        var count = (int)(TakRouter.MaxRememberedItemBytes / size);
        for (var i = 0; i < count; i++)
        {
            Relay(router, Large($"large-{i}", i % 5 < 2 ? TimeSpan.FromMinutes(1) : TimeSpan.FromDays(1)), Open, Guid.NewGuid());
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(count, Current().Count);

        // One more finds no room: nothing is stale yet, so those relayed longest ago give theirs until a quarter is free.
        Relay(router, Large("over", TimeSpan.FromDays(1)), Open, Guid.NewGuid());
        var current = Current();
        Assert.Contains("over", current);
        Assert.DoesNotContain("large-0", current);
        Assert.Contains($"large-{count - 1}", current);
        Assert.InRange(router.RememberedItemBytes, (TakRouter.MaxRememberedItemBytes / 4 * 3) - size, (TakRouter.MaxRememberedItemBytes / 4 * 3) + size);

        // Within the same minute, once full again, a new item finds no room: it is still withdrawn when access narrows.
        var added = 0;
        while (Current().Contains($"more-{added - 1}") || added == 0)
        {
            Relay(router, Large($"more-{added++}", TimeSpan.FromDays(1)), Open, Guid.NewGuid());
            Assert.True(added < count, "the memory filled up");
        }

        Assert.Contains($"more-{added - 1}", router.ItemsNoLongerReadable(viewer, null, int.MaxValue));

        // Two minutes on, the items valid for a minute have gone stale: their room is enough, and no current item loses its own.
        clock.Advance(TimeSpan.FromMinutes(2));
        var before = Current();
        Relay(router, Large("later", TimeSpan.FromDays(1)), Open, Guid.NewGuid());
        var later = Current();
        Assert.Contains("later", later);
        Assert.Empty(before.Except(later));
        Assert.True(router.RememberedItemBytes <= TakRouter.MaxRememberedItemBytes / 4 * 3, $"{router.RememberedItemBytes} bytes kept");
    }

    [Fact]
    public async Task An_event_stale_on_arrival_is_not_routed_and_the_log_says_why()
    {
        // A patrol's device whose clock runs ten minutes behind: each position it sends is stale (two minutes after its
        // time) before it arrives. Nothing of it is routed, and the log tells the operators why their patrol is missing.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var log = new Lines();
        var router = new TakRouter(null!, null!, null!, clock, log);
        await using var device = new TakSession(new MemoryStream(), Viewers.OfForce("patrol", 0), "certificate", "device", new MarkingDefault(0, "mission", 0, "UNCLASSIFIED"),
            CancellationToken.None);
        var behind = clock.GetUtcNow().AddMinutes(-10);
        var e = CotXml.Parse($"<event version='2.0' uid='ANDROID-behind' type='a-f-G-U-C' time='{behind:O}' start='{behind:O}' stale='{behind.AddMinutes(2):O}' how='m-g'>" +
            "<point lat='4.36' lon='18.55' hae='0' ce='10' le='10'/><detail><contact callsign='VIPER 1' endpoint='*:-1:stcp'/></detail></event>");

        await router.OnEventAsync(device, e);

        Assert.Equal(1, router.Ignored);
        var line = Assert.Single(log.Written);
        Assert.Contains("ANDROID-behind", line, StringComparison.Ordinal);
        Assert.Contains("stale on arrival (stale at 2026-12-04T11:52:00.0000000Z, the server's time 2026-12-04T12:00:00.0000000Z)", line, StringComparison.Ordinal);
        Assert.Contains("device clock running behind", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_device_may_edit_its_items_600_times_a_minute_and_replays_cost_it_nothing()
    {
        // A drawing sent, then edited over and over (a device re-sending its items as fast as it can): each edit would go
        // to every device, and a marker's to the store as a report.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var log = new Lines();
        // The tracks in memory only, which the router asks who owns a uid (no store behind them); an empty store of its
        // own, which it asks whether a new uid is another organisation's marker.
        using var tracks = new TrackStore(null!, null!, clock, NullLogger<TrackStore>.Instance);
        await using var store = await RouterStore.CreateAsync();
        var router = new TakRouter(store.Scopes, tracks, null!, clock, log);
        await using var device = new TakSession(new MemoryStream(), Viewers.OfForce("patrol", 0), "certificate", "device", new MarkingDefault(0, "mission", 0, "UNCLASSIFIED"),
            CancellationToken.None);
        var edits = 0;
        CotEvent Drawing()
        {
            var at = clock.GetUtcNow().AddSeconds(-50).AddMilliseconds(edits++);
            return CotXml.Parse($"<event version='2.0' uid='drawing-1' type='u-d-f' time='{at:O}' start='{at:O}' stale='{at.AddDays(1):O}' how='h-e'>" +
                "<point lat='4.36' lon='18.55' hae='0' ce='10' le='10'/><detail><contact callsign='Checkpoint line'/></detail></event>");
        }

        await router.OnEventAsync(device, Drawing());
        for (var i = 0; i < TakRouter.MaxEditsPerMinute; i++)
        {
            var edit = Drawing();
            await router.OnEventAsync(device, edit);
            // The same edit again (a loop, a replay) is dropped by the replay check and does not count as an edit.
            await router.OnEventAsync(device, edit);
        }

        var replays = router.Ignored;
        await router.OnEventAsync(device, Drawing());
        var refused = router.Ignored;
        clock.Advance(TimeSpan.FromMinutes(1));
        await router.OnEventAsync(device, Drawing());

        Assert.Equal(TakRouter.MaxEditsPerMinute, replays);
        Assert.Equal(replays + 1, refused);
        Assert.Equal(refused, router.Ignored);
        Assert.Contains($"more than {TakRouter.MaxEditsPerMinute} edits of items in a minute from one device", Assert.Single(log.Written), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replayed_deletion_is_dropped_without_asking_the_store()
    {
        // Whose items a deletion names is asked of the store, once: a device looping the same deletion (a replay, the same
        // uid and time) must not cost a query a copy.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        using var tracks = new TrackStore(null!, null!, clock, NullLogger<TrackStore>.Instance);
        await using var store = await RouterStore.CreateAsync();
        var scopes = new CountedScopes(store.Scopes);
        var router = new TakRouter(scopes, tracks, null!, clock, NullLogger<TakRouter>.Instance);
        await using var device = new TakSession(new MemoryStream(), Viewers.OfForce("patrol", 0), "certificate", "device", new MarkingDefault(0, "mission", 0, "UNCLASSIFIED"),
            CancellationToken.None);
        var at = clock.GetUtcNow().AddSeconds(-5);
        var deletion = CotXml.Parse($"<event version='2.0' uid='deletion-1' type='t-x-d-d' time='{at:O}' start='{at:O}' stale='{at.AddMinutes(10):O}' how='h-e'>" +
            "<point lat='0' lon='0' hae='0' ce='10' le='10'/><detail><link uid='drawing-1' relation='none' type='u-d-f'/><__forcedelete/></detail></event>");

        await router.OnEventAsync(device, deletion);
        var asked = scopes.Created;
        for (var i = 0; i < 100; i++)
        {
            await router.OnEventAsync(device, deletion);
        }

        Assert.Equal(1, asked);
        Assert.Equal(asked, scopes.Created);
        Assert.Equal(100, router.Ignored);
    }

    /// <summary>An empty SQLite store of a test's own, which the router asks who sent an item first; gone when disposed.</summary>
    private sealed class RouterStore(ServiceProvider services, DirectoryInfo directory) : IAsyncDisposable
    {
        public IServiceScopeFactory Scopes => services.GetRequiredService<IServiceScopeFactory>();

        public static async Task<RouterStore> CreateAsync()
        {
            var directory = Directory.CreateTempSubdirectory("concord-router-");
            var collection = new ServiceCollection();
            collection.AddLogging();
            collection.AddConcordCore(new ServerOptions { Store = StoreOptions.Sqlite(directory.FullName) });
            var services = collection.BuildServiceProvider();
            await services.PrepareStoreAsync(CancellationToken.None);
            return new RouterStore(services, directory);
        }

        public async ValueTask DisposeAsync()
        {
            await services.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    /// <summary>Counts the scopes the router opens: one per question to the store.</summary>
    private sealed class CountedScopes(IServiceScopeFactory inner) : IServiceScopeFactory
    {
        private int _created;

        public int Created => Volatile.Read(ref _created);

        public IServiceScope CreateScope()
        {
            Interlocked.Increment(ref _created);
            return inner.CreateScope();
        }
    }

    /// <summary>The lines a router logs.</summary>
    private sealed class Lines : ILogger<TakRouter>
    {
        public List<string> Written { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Written.Add(formatter(state, exception));
    }
}

using System.Globalization;
using Concord.Cot;
using Concord.Server.Access;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>
/// Device tracks in memory: how long a track is kept, that a device coming back is taken in again, and that a track
/// leaves memory only once the store holds it. Each test runs its own track store, on a fake clock, over the server's store.
/// </summary>
public abstract class TrackStoreTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    private static readonly MarkingDefault Unclassified = new(0, "|mission|", 0, "UNCLASSIFIED");

    private static CotEvent Position(string uid, DateTimeOffset at, TimeSpan staleAfter, double latitude = 4.36, string? callsign = null) => CotXml.Parse(
        $"<event version=\"2.0\" uid=\"{uid}\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"{Stamp(at)}\" start=\"{Stamp(at)}\" stale=\"{Stamp(at + staleAfter)}\">"
        + $"<point lat=\"{latitude.ToString(CultureInfo.InvariantCulture)}\" lon=\"18.55\" hae=\"0\" ce=\"10\" le=\"10\"/><detail><contact callsign=\"{callsign ?? uid}\"/></detail></event>");

    private static string Stamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static bool Update(TrackStore tracks, CotEvent e, Guid member) => tracks.Update(e, member, Unclassified, new Outbound(e, droppable: true));

    private TrackStore NewStore(TimeProvider clock) => new(
        server.Services.GetRequiredService<IServiceScopeFactory>(), server.Services.GetRequiredService<MarkingFormat>(), clock, NullLogger<TrackStore>.Instance);

    private Task<Guid> MemberAsync(string user) => server.WithDbAsync(db => db.Members.Where(m => m.UserName == user).Select(m => m.Id).SingleAsync());

    private static string Prefix() => "ts-" + Guid.NewGuid().ToString("N")[..8] + "-";

    [Fact]
    public async Task Tracks_stale_for_longer_than_the_retention_leave_memory_and_their_uid_can_come_back()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var tracks = NewStore(clock);
        var member = await MemberAsync("force");
        var other = await MemberAsync("unpol");
        var prefix = Prefix();

        // A hundred devices report once; one keeps reporting.
        for (var n = 0; n < 100; n++)
        {
            Assert.True(Update(tracks, Position($"{prefix}{n}", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        }

        await tracks.FlushAsync(CancellationToken.None);
        Assert.Equal(100, tracks.Count);
        clock.Advance(TimeSpan.FromMinutes(30));
        Assert.True(Update(tracks, Position($"{prefix}0", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));

        // Stale, but not for long: still held (a device pausing keeps its route).
        Assert.Equal(0, tracks.Sweep());
        Assert.Equal(100, tracks.Count);

        clock.Advance(TrackStore.Retention);
        Assert.True(Update(tracks, Position($"{prefix}0", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        Assert.Equal(99, tracks.Sweep());
        Assert.Equal(1, tracks.Count);
        Assert.Equal($"{prefix}0", Assert.Single(tracks.Current).Track.Uid);

        // A forgotten uid is anyone's once more, and starts afresh.
        Assert.True(Update(tracks, Position($"{prefix}7", clock.GetUtcNow(), TimeSpan.FromMinutes(5), latitude: 4.5), other));
        var back = Assert.Single(tracks.Current, t => t.Track.Uid == $"{prefix}7");
        Assert.Equal(other, back.Track.MemberId);
        Assert.Equal(4.5, back.Track.Latitude);
        Assert.Equal(2, tracks.Count);
    }

    [Fact]
    public async Task Stored_tracks_stale_for_longer_than_a_month_are_deleted_and_a_device_coming_back_is_stored_again()
    {
        // From the real time: the server's own track store prunes by it too (the row 31 days stale may go by either).
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var tracks = NewStore(clock);
        var member = await MemberAsync("force");
        var prefix = Prefix();

        // One device last seen 31 days ago, one 29 days ago, one now.
        Assert.True(Update(tracks, Position(prefix + "gone", clock.GetUtcNow() - TimeSpan.FromDays(31), TimeSpan.FromMinutes(5)), member));
        Assert.True(Update(tracks, Position(prefix + "away", clock.GetUtcNow() - TimeSpan.FromDays(29), TimeSpan.FromMinutes(5)), member));
        Assert.True(Update(tracks, Position(prefix + "here", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        await tracks.FlushAsync(CancellationToken.None);
        Task<List<string>> StoredAsync() => server.WithDbAsync(db => db.Tracks.Where(t => t.Uid.StartsWith(prefix)).Select(t => t.Uid).OrderBy(u => u).ToListAsync());
        Assert.Contains(prefix + "away", await StoredAsync());

        await tracks.PruneAsync(CancellationToken.None);
        Assert.Equal([prefix + "away", prefix + "here"], await StoredAsync());

        // The device gone for a month reports again: its track is stored afresh.
        Assert.Equal(2, tracks.Sweep());
        Assert.True(Update(tracks, Position(prefix + "gone", clock.GetUtcNow(), TimeSpan.FromMinutes(5), latitude: 4.6), member));
        await tracks.FlushAsync(CancellationToken.None);
        Assert.Equal(4.6, await server.WithDbAsync(db => db.Tracks.Where(t => t.Uid == prefix + "gone").Select(t => t.Latitude).SingleAsync()));

        // Two days on, the one away for 29 days is 31 days stale.
        clock.Advance(TimeSpan.FromDays(2));
        await tracks.PruneAsync(CancellationToken.None);
        Assert.Equal([prefix + "gone", prefix + "here"], await StoredAsync());
    }

    [Fact]
    public async Task A_track_leaves_memory_only_once_the_store_holds_its_last_position()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var tracks = NewStore(clock);
        var member = await MemberAsync("force");
        var uid = Prefix() + "late";

        // A device delivers a position it held back for hours: stale by more than the retention when it comes.
        var sent = clock.GetUtcNow() - TrackStore.Retention - TimeSpan.FromHours(2);
        Assert.True(Update(tracks, Position(uid, sent, TimeSpan.FromMinutes(5), latitude: 4.41), member));
        Assert.Equal(0, tracks.Sweep());

        // Written once the store takes it, and only then forgotten.
        await tracks.FlushAsync(CancellationToken.None);
        var stored = await server.WithDbAsync(db => db.Tracks.AsNoTracking().SingleAsync(t => t.Uid == uid));
        Assert.Equal(4.41, stored.Latitude);
        Assert.Equal(1, tracks.Sweep());
        Assert.Equal(0, tracks.Count);
    }

    [Fact]
    public async Task Tracks_the_store_cannot_take_are_not_forgotten_however_long_it_is_away()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        // A store that fails every write (no services to write with), as one that is down for hours.
        using var tracks = new TrackStore(null!, null!, clock, NullLogger<TrackStore>.Instance);
        var member = await MemberAsync("force");
        Assert.True(Update(tracks, Position(Prefix() + "away", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        for (var hour = 0; hour < 3; hour++)
        {
            await tracks.FlushAsync(CancellationToken.None);
            clock.Advance(TimeSpan.FromHours(1));
            Assert.Equal(0, tracks.Sweep());
        }

        Assert.Equal(1, tracks.Count);
    }

    [Fact]
    public async Task A_position_whose_track_the_sweep_evicts_under_it_starts_a_new_track()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var tracks = NewStore(clock);
        var member = await MemberAsync("force");
        var uid = Prefix() + "racer";
        Assert.True(Update(tracks, Position(uid, clock.GetUtcNow() - TrackStore.Retention - TimeSpan.FromHours(1), TimeSpan.FromMinutes(1)), member));
        await tracks.FlushAsync(CancellationToken.None);

        // The sweep runs after the next position found the long-stale entry and before it took the entry's lock.
        var swept = 0;
        tracks.BetweenLookupAndApply = () =>
        {
            if (swept == 0)
            {
                swept = tracks.Sweep();
            }
        };
        Assert.True(Update(tracks, Position(uid, clock.GetUtcNow(), TimeSpan.FromMinutes(5), latitude: 4.6), member));
        tracks.BetweenLookupAndApply = null;

        // The position went to a new entry, not to the evicted one: it is current and will be written.
        Assert.Equal(1, swept);
        Assert.Equal(4.6, Assert.Single(tracks.Current).Track.Latitude);
        await tracks.FlushAsync(CancellationToken.None);
        Assert.Equal(4.6, (await server.WithDbAsync(db => db.Tracks.AsNoTracking().SingleAsync(t => t.Uid == uid))).Latitude);
    }

    [Fact]
    public async Task A_callsign_is_cut_and_a_track_stored_with_one_too_long_to_send_still_loads()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var member = await MemberAsync("force");
        var cut = Prefix() + "cut";
        var old = Prefix() + "old";
        using (var tracks = NewStore(clock))
        {
            // A callsign of 20,000 characters (the listener refuses those over 128; a store written before kept them).
            Assert.True(Update(tracks, Position(cut, clock.GetUtcNow(), TimeSpan.FromHours(1), callsign: new string('>', 20_000)), member));
            Assert.True(Update(tracks, Position(old, clock.GetUtcNow(), TimeSpan.FromHours(1)), member));
            await tracks.FlushAsync(CancellationToken.None);
        }

        Assert.Equal(new string('>', Track.CallsignLength), await server.WithDbAsync(db => db.Tracks.Where(t => t.Uid == cut).Select(t => t.Callsign).SingleAsync()));

        // A track stored before callsigns were cut, with a character XML cannot carry: the listener loads it all the same.
        await server.WithDbAsync(db => db.Tracks.Where(t => t.Uid == old).ExecuteUpdateAsync(u => u.SetProperty(t => t.Callsign, "\uFFFF" + new string('>', 20_000))));
        using var restarted = NewStore(clock);
        await restarted.LoadAsync(CancellationToken.None);

        var loaded = Assert.Single(restarted.Current, t => t.Track.Uid == old);
        Assert.Equal("\uFFFD" + new string('>', Track.CallsignLength - 1), loaded.Event!.Event.Detail.Contact!.Callsign);
        Assert.Contains(restarted.Current, t => t.Track.Uid == cut);
    }
}

public sealed class TrackStoreTests_Sqlite(SqliteServer server) : TrackStoreTests<SqliteServer>(server);

public sealed class TrackStoreTests_Postgres(PostgresServer server) : TrackStoreTests<PostgresServer>(server);

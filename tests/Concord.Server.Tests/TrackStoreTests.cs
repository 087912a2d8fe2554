using System.Globalization;
using Concord.Cot;
using Concord.Server.Tak;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>Device tracks in memory: how long a track is kept, and that a device coming back is taken in again.</summary>
public sealed class TrackStoreTests
{
    private static readonly MarkingDefault Unclassified = new(0, "mission", 0, "UNCLASSIFIED");

    private static CotEvent Position(string uid, DateTimeOffset at, TimeSpan staleAfter, double latitude = 4.36) => CotXml.Parse(
        $"<event version=\"2.0\" uid=\"{uid}\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"{Stamp(at)}\" start=\"{Stamp(at)}\" stale=\"{Stamp(at + staleAfter)}\">"
        + $"<point lat=\"{latitude.ToString(CultureInfo.InvariantCulture)}\" lon=\"18.55\" hae=\"0\" ce=\"10\" le=\"10\"/><detail><contact callsign=\"{uid}\"/></detail></event>");

    private static string Stamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static bool Update(TrackStore tracks, CotEvent e, Guid member) => tracks.Update(e, member, Unclassified, new Outbound(e, droppable: true));

    [Fact]
    public void Tracks_stale_for_longer_than_the_retention_leave_memory_and_their_uid_can_come_back()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 8, 0, 0, TimeSpan.Zero));
        using var tracks = new TrackStore(null!, null!, clock, NullLogger<TrackStore>.Instance);
        var member = Guid.NewGuid();
        var other = Guid.NewGuid();

        // A thousand devices report once; one keeps reporting.
        for (var n = 0; n < 1000; n++)
        {
            Assert.True(Update(tracks, Position($"device-{n}", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        }

        Assert.Equal(1000, tracks.Count);
        clock.Advance(TimeSpan.FromMinutes(30));
        Assert.True(Update(tracks, Position("device-0", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));

        // Stale, but not for long: still held (a device pausing keeps its route).
        Assert.Equal(0, tracks.Sweep());
        Assert.Equal(1000, tracks.Count);

        clock.Advance(TrackStore.Retention);
        Assert.True(Update(tracks, Position("device-0", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
        Assert.Equal(999, tracks.Sweep());
        Assert.Equal(1, tracks.Count);
        Assert.Equal("device-0", Assert.Single(tracks.Current).Track.Uid);

        // A forgotten uid is anyone's once more, and starts afresh.
        Assert.True(Update(tracks, Position("device-7", clock.GetUtcNow(), TimeSpan.FromMinutes(5), latitude: 4.5), other));
        var back = Assert.Single(tracks.Current, t => t.Track.Uid == "device-7");
        Assert.Equal(other, back.Track.MemberId);
        Assert.Equal(4.5, back.Track.Latitude);
        Assert.Equal(2, tracks.Count);
    }

    [Fact]
    public async Task Fresh_positions_racing_the_sweep_stay_current()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 8, 0, 0, TimeSpan.Zero));
        using var tracks = new TrackStore(null!, null!, clock, NullLogger<TrackStore>.Instance);
        var member = Guid.NewGuid();
        var old = clock.GetUtcNow() - TrackStore.Retention - TimeSpan.FromHours(1);
        for (var round = 0; round < 200; round++)
        {
            // Long-stale tracks: each round the sweep and a fresh position of the same uids race.
            for (var n = 0; n < 50; n++)
            {
                Update(tracks, Position($"racer-{n}", old, TimeSpan.FromMinutes(1)), member);
            }

            var sweep = Task.Run(tracks.Sweep);
            var fresh = Task.Run(() =>
            {
                for (var n = 0; n < 50; n++)
                {
                    Assert.True(Update(tracks, Position($"racer-{n}", clock.GetUtcNow(), TimeSpan.FromMinutes(5)), member));
                }
            });
            await Task.WhenAll(sweep, fresh);

            // Every fresh position is current, whichever went first.
            Assert.Equal(50, tracks.Current.Count(t => t.Track.Uid.StartsWith("racer-", StringComparison.Ordinal)));
        }
    }
}

using System.Net;
using Concord.Server.Data;
using Concord.Server.Realtime;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Concord.Server.Tests;

/// <summary>
/// On PostgreSQL, changes commit out of sequence order when two transactions write at once: the feed must not let a
/// reader move past a number a transaction still holds. (SQLite writes one transaction at a time: nothing to test there.)
/// </summary>
public sealed class ChangeFeedOrderTests_Postgres(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_change_that_commits_after_a_later_one_is_still_read()
    {
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var after = await server.WithDbAsync(async db => await db.Changes.MaxAsync(c => (long?)c.Sequence) ?? 0);
        var client = server.ClientFor("joc");

        // A write that has drawn its number and not yet committed (a slow transaction of another node or process)…
        await using var slow = new NpgsqlConnection(connection);
        await slow.OpenAsync();
        await using var transaction = await slow.BeginTransactionAsync();
        await using var insert = new NpgsqlCommand("INSERT INTO changes (entity, entity_id, operation, at) VALUES ('organization', gen_random_uuid(), 'updated', now()) RETURNING sequence", slow, transaction);
        var held = (long)(await insert.ExecuteScalarAsync())!;

        // …and one that commits meanwhile with a later number.
        var (created, report) = await client.PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var (_, early) = await client.GetJson($"/api/changes?after={after}&limit=1000");
        Assert.True(early.GetProperty("next").GetInt64() < held, $"the feed moved to {early.GetProperty("next").GetInt64()}, past {held}, which is not committed yet");
        Assert.True(early.GetProperty("held").GetBoolean(), "the answer says that committed changes wait behind the gap");

        await transaction.CommitAsync();
        var (_, late) = await client.GetJson($"/api/changes?after={early.GetProperty("next").GetInt64()}&limit=1000");
        Assert.False(late.GetProperty("held").GetBoolean());
        var sequences = late.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("sequence").GetInt64()).ToList();
        Assert.Contains(held, sequences);
        Assert.Contains(late.GetProperty("items").EnumerateArray(), c => c.GetProperty("id").GetGuid() == report.GetProperty("id").GetGuid());
    }

    [Fact]
    public async Task A_rolled_back_write_holds_readers_only_until_the_transactions_then_running_have_ended()
    {
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var after = await server.WithDbAsync(async db => await db.Changes.MaxAsync(c => (long?)c.Sequence) ?? 0);
        // Readers' clock stands still: the gap's age alone (GapGrace) never settles it.
        var now = DateTime.UtcNow;

        await AssertRolledBackGapPassedAsync(connection, after, now);
    }

    [Fact]
    public async Task A_long_write_in_another_database_of_the_cluster_does_not_hold_a_rolled_back_gap()
    {
        // Another application (or another Concord) shares the PostgreSQL server and keeps a write transaction open.
        var other = new PostgresDatabase();
        var otherConnection = await other.CreateAsync();
        try
        {
            await using var elsewhere = new NpgsqlConnection(otherConnection);
            await elsewhere.OpenAsync();
            await using var running = await elsewhere.BeginTransactionAsync();
            await using (var begin = new NpgsqlCommand("SELECT pg_current_xact_id()", elsewhere, running))
            {
                await begin.ExecuteScalarAsync();
            }

            var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
            var after = await server.WithDbAsync(async db => await db.Changes.MaxAsync(c => (long?)c.Sequence) ?? 0);
            var now = DateTime.UtcNow;
            await AssertRolledBackGapPassedAsync(connection, after, now);
            await running.RollbackAsync();
        }
        finally
        {
            await other.DropAsync();
        }
    }

    [Fact]
    public async Task The_oldest_running_transaction_is_found_while_several_are_running()
    {
        // Ids of transactions still running may be above the snapshot's xmax (one past the last that ended): widened against
        // it, the second of two running writes came out below zero, and every reader judging a gap then failed.
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var held = new List<(NpgsqlConnection Connection, NpgsqlTransaction Transaction)>();
        try
        {
            var ids = new List<ulong>();
            for (var i = 0; i < 3; i++)
            {
                var open = new NpgsqlConnection(connection);
                await open.OpenAsync();
                var transaction = await open.BeginTransactionAsync();
                held.Add((open, transaction));
                await using var begin = new NpgsqlCommand("SELECT pg_current_xact_id()::text", open, transaction);
                ids.Add(ulong.Parse((string)(await begin.ExecuteScalarAsync())!, System.Globalization.CultureInfo.InvariantCulture));
            }

            // The server's own writers may hold an older id for a moment: the oldest is the first of these once they are done.
            ulong oldest = 0;
            for (var tries = 0; tries < 50 && oldest != ids[0]; tries++, await Task.Delay(100))
            {
                oldest = await server.WithDbAsync(db => ChangeWindows.OldestRunningAsync(db, CancellationToken.None));
                Assert.True(oldest <= ids[0], $"the oldest running transaction is said to be {oldest}, past {ids[0]}, which is running");
            }

            Assert.Equal(ids[0], oldest);
        }
        finally
        {
            foreach (var (open, transaction) in held)
            {
                await transaction.DisposeAsync();
                await open.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_gap_held_by_a_running_transaction_is_never_passed_and_is_read_once_it_commits()
    {
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var after = await server.WithDbAsync(async db => await db.Changes.MaxAsync(c => (long?)c.Sequence) ?? 0);
        var now = DateTime.UtcNow;

        // The writer that commits first began first: its transaction id is older than the holder's, so the last
        // transaction to have ended is just below the holder's (a snapshot's xmax is the holder's own id).
        await using var committed = new NpgsqlConnection(connection);
        await committed.OpenAsync();
        await using var first = await committed.BeginTransactionAsync();
        await using (var begin = new NpgsqlCommand("SELECT pg_current_xact_id()", committed, first))
        {
            await begin.ExecuteScalarAsync();
        }

        await using var slow = new NpgsqlConnection(connection);
        await slow.OpenAsync();
        await using var transaction = await slow.BeginTransactionAsync();
        var held = await InsertChangeAsync(slow, transaction);
        var later = await InsertChangeAsync(committed, first);
        await first.CommitAsync();

        // Read again and again for well past the moment a reader notes the running transactions.
        var read = await ReadUntilAsync(after, now, w => w.Contains(later), ChangeWindows.GapNotice * 10);
        Assert.DoesNotContain(later, read);
        Assert.DoesNotContain(held, read);

        await transaction.CommitAsync();
        read = await ReadUntilAsync(after, now, w => w.Contains(later), TimeSpan.FromSeconds(5));
        Assert.Contains(held, read);
        Assert.Contains(later, read);
        Assert.True(read.IndexOf(held) < read.IndexOf(later));
    }

    [Fact]
    public async Task Followers_with_nobody_to_tell_do_not_move_past_a_change_still_being_written()
    {
        // With no page or device listening, the browser feed and the TAK incident feed follow the end of the feed; a page
        // or device that starts listening from there must still hear of a change whose write was running meanwhile.
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var feed = server.Services.GetRequiredService<LiveFeed>();
        var tak = server.Services.GetRequiredService<Tak.TakRouter>();
        // Both have started (a follower's first read starts from the end of the feed: a page that listens before then catches
        // up from where it noted the feed stood, LiveComponent).
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); feed.Position < 0 || tak.Told == 0; await Task.Delay(20))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "the followers did not start within 30 s");
        }

        await using var slow = new NpgsqlConnection(connection);
        await slow.OpenAsync();
        await using var transaction = await slow.BeginTransactionAsync();
        var organization = Guid.NewGuid();
        long held;
        await using (var insert = new NpgsqlCommand("INSERT INTO changes (entity, entity_id, operation, at) VALUES ('organization', @id, 'updated', now()) RETURNING sequence", slow, transaction))
        {
            insert.Parameters.AddWithValue("id", organization);
            held = (long)(await insert.ExecuteScalarAsync())!;
        }

        await using var committed = new NpgsqlConnection(connection);
        await committed.OpenAsync();
        var later = await InsertChangeAsync(committed, null);

        // Both followers read at least once a second when this process writes nothing (and sooner behind a gap).
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.True(feed.Position < held, $"the idle browser feed moved to {feed.Position}, past {held}, which is not committed yet");
        Assert.True(tak.Told < held, $"the idle TAK incident feed moved to {tak.Told}, past {held}, which is not committed yet");

        var joc = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == "joc").Select(m => m.Id).SingleAsync());
        var told = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var page = feed.Subscribe(joc, changes =>
        {
            if (changes.Any(c => c.Id == organization))
            {
                told.TrySetResult();
            }
        });
        var position = feed.Position;
        await transaction.CommitAsync();
        Assert.True(await Task.WhenAny(told.Task, Task.Delay(TimeSpan.FromSeconds(10))) == told.Task,
            $"the change {held} committed late was not told (the feed stood at {position} before it was committed, at {feed.Position} now)");
    }

    [Fact]
    public async Task A_backlog_written_by_another_process_is_told_without_a_wait_between_windows()
    {
        // Another process's commits wake nobody here: the feed finds them at its fallback read. It then reads window after
        // window until it has caught up, rather than one window per fallback (a second for each thousand changes).
        var connection = await server.WithDbAsync(db => Task.FromResult(db.Database.GetConnectionString()!));
        var feed = server.Services.GetRequiredService<LiveFeed>();
        var joc = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == "joc").Select(m => m.Id).SingleAsync());
        var told = new System.Collections.Concurrent.ConcurrentDictionary<Guid, bool>();
        using var page = feed.Subscribe(joc, changes =>
        {
            foreach (var change in changes.Where(c => c.Entity == "organization"))
            {
                told[change.Id] = true;
            }
        });
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); feed.Position < 0; await Task.Delay(20))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "the feed did not start within 30 s");
        }

        var written = new List<Guid>();
        await using (var other = new NpgsqlConnection(connection))
        {
            await other.OpenAsync();
            await using var insert = new NpgsqlCommand(
                "INSERT INTO changes (entity, entity_id, operation, at) SELECT 'organization', gen_random_uuid(), 'updated', now() FROM generate_series(1, 3500) RETURNING entity_id", other);
            await using var reader = await insert.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                written.Add(reader.GetGuid(0));
            }
        }

        var waits = feed.Waits;
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); !written.All(told.ContainsKey); await Task.Delay(20))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(60), $"{written.Count(told.ContainsKey)} of {written.Count} changes told after a minute");
        }

        // At most the wait it was in when they were committed and one that began just before: four windows' worth.
        Assert.InRange(feed.Waits - waits, 0, 2);
    }

    /// <summary>A write that draws its number and rolls back (a refused save), then one that commits: a reader is given the second within 5 s.</summary>
    private async Task AssertRolledBackGapPassedAsync(string connection, long after, DateTime now)
    {
        long refused;
        await using (var failed = new NpgsqlConnection(connection))
        {
            await failed.OpenAsync();
            await using var transaction = await failed.BeginTransactionAsync();
            refused = await InsertChangeAsync(failed, transaction);
            await transaction.RollbackAsync();
        }

        await using var committed = new NpgsqlConnection(connection);
        await committed.OpenAsync();
        var later = await InsertChangeAsync(committed, null);

        var read = await ReadUntilAsync(after, now, w => w.Contains(later), TimeSpan.FromSeconds(5));
        Assert.Contains(later, read);
        Assert.DoesNotContain(refused, read);
    }

    private static async Task<long> InsertChangeAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction)
    {
        await using var insert = new NpgsqlCommand("INSERT INTO changes (entity, entity_id, operation, at) VALUES ('organization', gen_random_uuid(), 'updated', now()) RETURNING sequence", connection, transaction);
        return (long)(await insert.ExecuteScalarAsync())!;
    }

    /// <summary>The sequence numbers a reader at <paramref name="after"/> is given, read every 50 ms until <paramref name="done"/> or <paramref name="limit"/> has passed.</summary>
    private async Task<List<long>> ReadUntilAsync(long after, DateTime now, Func<List<long>, bool> done, TimeSpan limit)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var read = await server.WithDbAsync(async db => (await ChangeWindows.ReadAsync(db, after, 10_000, now, CancellationToken.None)).Select(c => c.Sequence).ToList());
            if (done(read) || waited.Elapsed > limit)
            {
                return read;
            }

            await Task.Delay(50);
        }
    }

    [Fact]
    public void A_gap_older_than_any_transaction_is_a_rollback_and_is_passed()
    {
        var now = new DateTime(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);
        Change Row(long sequence, TimeSpan age) => new() { Sequence = sequence, Entity = "report", EntityId = Guid.NewGuid(), Operation = "created", At = now - age };

        List<Change> fresh = [Row(11, TimeSpan.Zero), Row(13, TimeSpan.FromSeconds(1)), Row(14, TimeSpan.Zero)];
        Assert.Equal([11L], ChangeWindows.Settled(fresh, 10, now).Select(c => c.Sequence));
        List<Change> old = [Row(11, TimeSpan.Zero), Row(13, ChangeWindows.GapGrace + TimeSpan.FromSeconds(1)), Row(14, TimeSpan.Zero)];
        Assert.Equal([11L, 13L, 14L], ChangeWindows.Settled(old, 10, now).Select(c => c.Sequence));
        Assert.Empty(ChangeWindows.Settled([Row(12, TimeSpan.Zero)], 10, now));
    }
}

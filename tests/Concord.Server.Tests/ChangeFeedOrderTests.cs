using System.Net;
using Concord.Server.Data;
using Concord.Server.Realtime;
using Microsoft.EntityFrameworkCore;
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

        await transaction.CommitAsync();
        var (_, late) = await client.GetJson($"/api/changes?after={early.GetProperty("next").GetInt64()}&limit=1000");
        var sequences = late.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("sequence").GetInt64()).ToList();
        Assert.Contains(held, sequences);
        Assert.Contains(late.GetProperty("items").EnumerateArray(), c => c.GetProperty("id").GetGuid() == report.GetProperty("id").GetGuid());
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

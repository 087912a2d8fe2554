using Concord.Server.Audit;

namespace Concord.Server.Tests;

public sealed class AuditChainTests
{
    /// <summary>
    /// The hash an auditor recomputes outside Concord (docs/sharing.md, §7): SHA-256 of the fields joined by line feeds, as
    /// UTF-8, in lower-case hex. The expected value was computed with Python's hashlib from the same fields, so a change of
    /// how the bytes are built cannot break the chains already stored.
    /// </summary>
    [Fact]
    public void An_entry_hashes_as_its_fields_joined_by_line_feeds_in_utf8()
    {
        var entry = new AuditEntry
        {
            ChainIndex = 7,
            At = new DateTime(2026, 12, 2, 10, 11, 12, DateTimeKind.Utc).AddTicks(1_234_567),
            MemberId = Guid.Parse("3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
            Actor = "force.g2",
            Action = "read",
            Entity = "incident",
            EntityId = null,
            Classification = 2,
            Detail = """{"path":"/api/incidents/geojson?bbox=18,7,19,8","ids":["Bangui – Bambari 😀 é"]}""",
            PreviousHash = new string('0', 64),
        };

        Assert.Equal("e6af69f6994b09360f2b6fef1f2d0b09512079a0fe8dc7736eba91de8e17afed", AuditChain.Compute(entry));

        // Under caveats (bits 0 and 2), their number is a field after the level; without, the hash above is unchanged,
        // so chains written before caveats were recorded still verify.
        var caveated = new AuditEntry
        {
            ChainIndex = entry.ChainIndex,
            At = entry.At,
            MemberId = entry.MemberId,
            Actor = entry.Actor,
            Action = entry.Action,
            Entity = entry.Entity,
            Classification = entry.Classification,
            Caveats = 5,
            Detail = entry.Detail,
            PreviousHash = entry.PreviousHash,
        };
        Assert.Equal("184f6515cf787728cb92e889a9287b76fa61f0807f7c27b1f8b8b58c2d31ddfa", AuditChain.Compute(caveated));
    }
}

public sealed class AuditReadTests
{
    private static readonly Access.Viewer Analyst = Viewers.OfForce("force.g2", 2);

    [Fact]
    public void A_read_of_more_records_than_one_entry_holds_is_recorded_in_parts_naming_every_one()
    {
        // An export of 12,001 classified reports (and one unclassified, which is not named): the 12,000 CONFIDENTIAL
        // ones in three parts, the one STRICTLY CONFIDENTIAL in an entry of its own, marked as it is.
        var records = Enumerable.Range(0, Audits.MaxIdsPerEntry * 2 + 2001).Select(i => (Id: Guid.NewGuid(), Classification: i == 7 ? 2 : 1, Caveats: 0L)).ToList();
        records.Add((Guid.NewGuid(), 0, 0L));

        var entries = Audits.Read(Analyst, "report", records, "/api/exports/reports.csv?audience=mission", DateTime.UtcNow);

        Assert.Equal([1, 1, 1, 2], entries.Select(e => e.Classification));
        var details = entries.Select(e => System.Text.Json.JsonDocument.Parse(e.Detail).RootElement).ToList();
        Assert.Equal([1, 2, 3], details.Take(3).Select(d => d.GetProperty("part").GetInt32()));
        Assert.All(details.Take(3), d => Assert.Equal(3, d.GetProperty("parts").GetInt32()));
        Assert.All(details.Take(3), d => Assert.Equal(12_000, d.GetProperty("count").GetInt32()));
        Assert.All(entries.Take(3), e => Assert.Null(e.EntityId));
        Assert.False(details[3].TryGetProperty("part", out _));
        Assert.Equal(1, details[3].GetProperty("count").GetInt32());
        Assert.Equal(records[7].Id, entries[3].EntityId);
        var named = details.SelectMany(d => d.GetProperty("ids").EnumerateArray().Select(i => i.GetGuid())).ToList();
        Assert.Equal(records.Where(r => r.Classification > 0).Select(r => r.Id).Order(), named.Order());
        Assert.Equal(records.Where(r => r.Classification == 1).Select(r => r.Id), named.Take(12_000));
    }

    [Fact]
    public void A_read_of_few_records_is_one_entry_and_of_unclassified_ones_none()
    {
        var one = Guid.NewGuid();
        var entry = Assert.Single(Audits.Read(Analyst, "incident", [(one, 1, 0L), (Guid.NewGuid(), 0, 0L)], "/api/incidents", DateTime.UtcNow));
        Assert.Equal(one, entry.EntityId);
        Assert.False(System.Text.Json.JsonDocument.Parse(entry.Detail).RootElement.TryGetProperty("part", out _));
        Assert.Empty(Audits.Read(Analyst, "incident", [(Guid.NewGuid(), 0, 0L)], "/api/incidents", DateTime.UtcNow));

        // Unclassified under a caveat (a humanitarian DECONFLICTION-ONLY site): named, at the lowest level.
        var caveated = Guid.NewGuid();
        var underCaveat = Assert.Single(Audits.Read(Analyst, "report", [(caveated, 0, 4L), (Guid.NewGuid(), 0, 0L)], "/api/reports", DateTime.UtcNow));
        Assert.Equal((caveated, 0, 4L), (underCaveat.EntityId, underCaveat.Classification, underCaveat.Caveats));

        // Records of several markings: one entry per marking, each marked as its records are, so that an auditor who may
        // see one marking finds its reads without learning of the others (not even how many there were).
        List<(Guid Id, int Classification, long Caveats)> mixed = [(Guid.NewGuid(), 1, 0L), (Guid.NewGuid(), 1, 4L), (Guid.NewGuid(), 1, 0L), (Guid.NewGuid(), 0, 4L), (Guid.NewGuid(), 1, 6L)];
        var entries = Audits.Read(Analyst, "report", mixed, "/api/reports", DateTime.UtcNow);
        Assert.Equal([(0, 4L), (1, 0L), (1, 4L), (1, 6L)], entries.Select(e => (e.Classification, e.Caveats)));
        Assert.Equal([mixed[0].Id, mixed[2].Id], System.Text.Json.JsonDocument.Parse(entries[1].Detail).RootElement.GetProperty("ids").EnumerateArray().Select(i => i.GetGuid()));
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(entries[1].Detail).RootElement.GetProperty("count").GetInt32());
        Assert.Equal([mixed[3].Id, null, mixed[1].Id, mixed[4].Id], entries.Select(e => e.EntityId));
    }
}

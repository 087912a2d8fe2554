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
    }
}

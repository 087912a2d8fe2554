using Concord.Server.Access;
using Concord.Server.Organizations;

namespace Concord.Server.Tests;

/// <summary>Which communities hold which: what an agreement's default allows a marking to name.</summary>
public sealed class CommunityTests
{
    private static readonly Organization[] Organizations =
    [
        new() { Id = Guid.NewGuid(), Code = "RWABATT", Name = "Rwandan battalion", Kind = OrganizationKind.Military, Nation = "RWA", CreatedAt = DateTime.UnixEpoch },
        new() { Id = Guid.NewGuid(), Code = "OCHA", Name = "OCHA", Kind = OrganizationKind.Humanitarian, CreatedAt = DateTime.UnixEpoch },
    ];

    private static Organization? ByCode(string code) => Organizations.FirstOrDefault(o => o.Code == code);

    [Theory]
    [InlineData("mission", "org:RWABATT", true)]
    [InlineData("mission", "kind:humanitarian", true)]
    [InlineData("mission", "nation:RWA", true)]
    [InlineData("kind:military", "org:RWABATT", true)]
    [InlineData("nation:RWA", "org:RWABATT", true)]
    [InlineData("org:RWABATT", "org:RWABATT", true)]
    [InlineData("group:PWG", "group:PWG", true)]
    // Narrower never holds wider, a kind never holds another kind's organisation, and a group is only itself.
    [InlineData("org:RWABATT", "mission", false)]
    [InlineData("org:RWABATT", "kind:military", false)]
    [InlineData("kind:military", "org:OCHA", false)]
    [InlineData("nation:RWA", "org:OCHA", false)]
    [InlineData("mission", "group:PWG", false)]
    [InlineData("kind:military", "org:UNKNOWN", false)]
    public void A_community_holds_those_within_it(string wide, string narrow, bool covers) =>
        Assert.Equal(covers, Community.Covers(wide, narrow, ByCode));
}

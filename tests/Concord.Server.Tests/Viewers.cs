using Concord.Server.Access;

namespace Concord.Server.Tests;

/// <summary>Viewers built in memory, for tests of parts that take one without a store behind them.</summary>
internal static class Viewers
{
    public static Viewer OfForce(string userName, int clearance) => new()
    {
        MemberId = Guid.NewGuid(),
        UserName = userName,
        DisplayName = userName,
        OrganizationId = Guid.NewGuid(),
        OrganizationCode = "force",
        OrganizationName = "Force",
        OrganizationKind = OrganizationKind.Military,
        Clearance = clearance,
        CaveatBits = 0,
        Roles = new HashSet<string>(StringComparer.Ordinal),
    };
}

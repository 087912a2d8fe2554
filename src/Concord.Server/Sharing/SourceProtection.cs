using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Sharing;

/// <summary>
/// Who may see a report's protected source (an informant, a community contact): members of the reporting organisation who
/// hold the SOURCE-PROTECTED caveat. Everyone else who may see the report sees it without the source identity.
/// </summary>
internal static class SourceProtection
{
    public static bool MaySeeSource(Report report, Viewer viewer, CaveatRegistry caveats) =>
        report.ProtectedSource is not null
        && viewer.OrganizationId == report.OrganizationId
        && TryGetBit(caveats, out var bit)
        && (viewer.CaveatBits & bit) == bit;

    /// <summary>The bit of the caveat that protects sources (shown sources raise the banners to it), when the mission has it.</summary>
    public static bool TryGetBit(CaveatRegistry caveats, out long bit) => caveats.TryGetBits([Caveat.SourceProtected], out bit, out _);
}

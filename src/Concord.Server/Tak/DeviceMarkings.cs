using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Sharing;

namespace Concord.Server.Tak;

/// <summary>
/// The marking a device's records get for a category: its organisation's agreement default, or its own organisation only,
/// exactly as <see cref="Reports.ReportIntake"/> marks a report that names no marking. Positions and chat use
/// <see cref="Positions"/>; a marker goes out under the marking of the report it becomes, so that no device receives a
/// marker whose report its member may not read.
/// </summary>
internal sealed class DeviceMarkings(MissionDirectory directory, MarkingFormat markings)
{
    public const string Positions = "field.position";

    /// <summary>A stored record's marking as devices are sent it, labelled.</summary>
    public MarkingDefault Of(int classification, string releasableTo, long caveats) =>
        new(classification, releasableTo, caveats, markings.ToDto(classification, releasableTo, caveats).Label!);

    public async Task<MarkingDefault> ForAsync(Viewer viewer, string category, CancellationToken cancellationToken) =>
        (await DecideAsync(viewer, category, cancellationToken)).Marking;

    /// <summary>The marking, and the agreement decision it comes from: a marker's report is stored under that decision.</summary>
    public async Task<(MarkingDefault Marking, Reports.MarkedBy Decision)> DecideAsync(Viewer viewer, string category, CancellationToken cancellationToken)
    {
        var resolved = AgreementDecisions.Resolve(await directory.AgreementsAsync(cancellationToken), viewer.OrganizationCode, viewer.OrganizationKind, category, markings.Scheme);
        var (classification, releasable, caveats) = AgreementDecisions.Marks(resolved, viewer.OrganizationCode, markings.Caveats);
        return (new MarkingDefault(classification, releasable, caveats, markings.ToDto(classification, releasable, caveats).Label!), new(resolved));
    }
}

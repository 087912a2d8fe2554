using System.Text.Json;
using Concord.Server.Ucdp;

namespace Concord.Server.Reports;

/// <summary>
/// Ids of imported reports. Each derives from its source record's id (<c>ucdp-ged:12345</c>), so that importing a file
/// again finds what is there instead of adding it twice. The first organisation to import a record gets the plain
/// derived id; any other organisation importing the same record gets an id derived from the record and itself, and its
/// copy joins the incident the first copy is in. Both are found again on every later import, in that order, so each
/// organisation's import stays idempotent and none is told that another holds the record.
/// </summary>
internal static class SourceIds
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The id of the first copy of a source record.</summary>
    public static Guid Of(string externalRef) => GedMapping.NameBasedGuid(externalRef);

    /// <summary>The id of an organisation's copy of a source record another organisation holds under <see cref="Of"/>.</summary>
    public static Guid For(Guid organizationId, string externalRef) => GedMapping.NameBasedGuid($"{externalRef}@{organizationId:N}");

    /// <summary>Whether a request's id is the one its source record gives (an import's row).</summary>
    public static bool IsSourceKeyed(CreateReport request) => request.ExternalRef is { } reference && request.Id == Of(reference);

    /// <summary>Whether two stored reports are imported copies of one source record (each under an id <see cref="Of"/> or <see cref="For"/> gives).</summary>
    public static bool AreCopies(Report a, Report b) => a.ExternalRef is { } reference && b.ExternalRef == reference && IsCopy(a) && IsCopy(b);

    private static bool IsCopy(Report report) => report.Id == Of(report.ExternalRef!) || report.Id == For(report.OrganizationId, report.ExternalRef!);

    /// <summary>What a same-record link records in place of fusion's scores.</summary>
    public static string SameRecordDetail(string externalRef) => JsonSerializer.Serialize(new { total = 1.0, sameRecord = externalRef }, Json);
}

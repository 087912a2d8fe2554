using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Concord.Server.Ucdp;

namespace Concord.Server.Reports;

/// <summary>
/// Ids of imported reports. Each derives from its source record's id (<c>ucdp-ged:12345</c>) and a secret of the
/// deployment (<see cref="Data.DeploymentKeys"/>), so that importing a file again finds what is there instead of adding
/// it twice, and so that nobody can work out the id of a record someone imported: no member can ask the API, with an id of
/// their own making, whether an organisation holds a record, nor take the id of a record before its importer does.
/// The first organisation to import a record gets <see cref="Of"/>; any other organisation importing the same record gets
/// <see cref="For"/> (the record and itself), and its copy joins the incident the first copy is in. Readers give every
/// row its <see cref="Unkeyed"/> id, which the intake replaces; stores from before schema 12 hold imported reports under
/// that id, and imports find them there too.
/// </summary>
internal static class SourceIds
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The id a reader gives a row, and that imports gave reports before schema 12.</summary>
    public static Guid Unkeyed(string externalRef) => GedMapping.NameBasedGuid(externalRef);

    /// <summary>The id of the first copy of a source record.</summary>
    public static Guid Of(byte[] key, string externalRef) => Keyed(key, externalRef);

    /// <summary>
    /// The id of an organisation's copy of a source record another organisation holds under <see cref="Of"/>. Its name
    /// begins with NUL, which no stored reference holds (texts with control characters are refused), so no record's
    /// <see cref="Of"/> can be a copy's id.
    /// </summary>
    public static Guid For(byte[] key, Guid organizationId, string externalRef) => Keyed(key, $"\0copy\0{organizationId:N}\0{externalRef}");

    /// <summary>
    /// The id copies had until 2026-12-04, looked up so that importing again finds them. A reference crafted as
    /// <c>X@organisation</c> took it as its own <see cref="Of"/>, and the organisation's copy of X was refused as a clash.
    /// </summary>
    public static Guid LegacyFor(byte[] key, Guid organizationId, string externalRef) => Keyed(key, $"{externalRef}@{organizationId:N}");

    /// <summary>The id of a joint patrol's report (no source record has a name of this form).</summary>
    public static Guid OfPatrol(byte[] key, Guid patrolId) => Keyed(key, $"concord-patrol-report:{patrolId:N}");

    /// <summary>Whether a request's id is the one a reader gives its source record (an import's row).</summary>
    public static bool IsSourceKeyed(CreateReport request) => request.ExternalRef is { } reference && request.Id == Unkeyed(reference);

    /// <summary>What a same-record link records in place of fusion's scores.</summary>
    public static string SameRecordDetail(string externalRef) => JsonSerializer.Serialize(new { total = 1.0, sameRecord = externalRef }, Json);

    /// <summary>HMAC-SHA-256 of the name under the key, as a version 8 UUID like every name-based id here.</summary>
    private static Guid Keyed(byte[] key, string name) => GedMapping.Version8(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(name)));
}

using Concord.Server.Access;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>A client certificate issued to a member for a TAK device; the certificate's SHA-256 thumbprint identifies the member.</summary>
internal sealed class DeviceCertificate
{
    public required string Thumbprint { get; init; }

    public required Guid MemberId { get; init; }

    public required string Subject { get; init; }

    public required string Serial { get; init; }

    public required DateTime IssuedAt { get; init; }

    public required DateTime ExpiresAt { get; init; }

    public DateTime? RevokedAt { get; set; }

    /// <summary>What the member could read when the device last connected (<see cref="DeviceAccess"/> as JSON); null before.</summary>
    public string? LastAccess { get; set; }
}

/// <summary>
/// What decides a member's reads, as a device's last connection knew it, and <paramref name="Told"/>: the position of the
/// change feed up to which the TAK incident feed had told connected devices of deleted incidents when that connection
/// began (null when not known: recorded before it was kept, or the feed had not read yet), and <paramref name="Began"/>:
/// when that connection began, from which on it was sent deletions of items live (null when recorded before it was kept).
/// </summary>
internal sealed record DeviceAccess(int Clearance, long CaveatBits, Guid OrganizationId, string OrganizationCode, Access.OrganizationKind OrganizationKind,
    string? Nation, IReadOnlyList<string> Groups, long? Told = null, DateTimeOffset? Began = null)
{
    /// <summary>The access recorded as JSON; null when none was, or it cannot be read (a device must still connect).</summary>
    public static DeviceAccess? Read(string? json)
    {
        try
        {
            return json is null ? null : System.Text.Json.JsonSerializer.Deserialize<DeviceAccess>(json);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    public static DeviceAccess Of(Access.Viewer viewer, long? told, DateTimeOffset began) =>
        new(viewer.Clearance, viewer.CaveatBits, viewer.OrganizationId, viewer.OrganizationCode, viewer.OrganizationKind, viewer.Nation, [.. viewer.Groups], told, began);

    /// <summary><paramref name="member"/> as this access was (a new viewer: a copy would carry the member's cached communities).</summary>
    public Access.Viewer As(Access.Viewer member) => new()
    {
        MemberId = member.MemberId,
        UserName = member.UserName,
        DisplayName = member.DisplayName,
        OrganizationId = OrganizationId,
        OrganizationCode = OrganizationCode,
        OrganizationName = OrganizationCode,
        OrganizationKind = OrganizationKind,
        Nation = Nation,
        Clearance = Clearance,
        CaveatBits = CaveatBits,
        Roles = new HashSet<string>(),
        Groups = Groups,
    };
}

/// <summary>The latest position of a field device, with its recent history, marked like any record.</summary>
internal sealed class Track : MarkedRecord
{
    public const int HistoryLength = 100;

    /// <summary>
    /// The longest callsign kept: real ones are a few words. A longer one is cut, as a device could otherwise store one
    /// too large to send again (an event's detail is limited) and stop the server from loading its tracks at start.
    /// </summary>
    public const int CallsignLength = 128;

    public required string Uid { get; init; }

    public required Guid MemberId { get; set; }

    public required string Callsign { get; set; }

    public required string CotType { get; set; }

    public required double Latitude { get; set; }

    public required double Longitude { get; set; }

    public required double Hae { get; set; }

    public double? Course { get; set; }

    public double? Speed { get; set; }

    public required DateTime ObservedAt { get; set; }

    public required DateTime StaleAt { get; set; }

    /// <summary>Up to <see cref="HistoryLength"/> earlier positions, as JSON <c>[[lat, lon, unixMs], …]</c>, newest last.</summary>
    public required string HistoryJson { get; set; }

    public required DateTime UpdatedAt { get; set; }
}

/// <summary>A GeoChat message from a TAK device.</summary>
internal sealed class ChatMessage : MarkedRecord
{
    public required Guid Id { get; init; }

    public required Guid MemberId { get; init; }

    public required string Chatroom { get; init; }

    public required string Sender { get; init; }

    public required string Text { get; init; }

    public required DateTime SentAt { get; init; }

}

/// <summary>
/// A marker, drawing, route or alert relayed to devices, as the TAK router remembers it (see <see cref="TakRouter"/>),
/// stored so that a restart keeps what devices connecting later are sent and what devices are told to remove.
/// </summary>
internal sealed class TakItem
{
    public required string Uid { get; init; }

    /// <summary>The markings its versions went out under, the latest version's last, as JSON.</summary>
    public required string Markings { get; set; }

    /// <summary>When it was last relayed, or deleted.</summary>
    public required DateTime RelayedAt { get; set; }

    /// <summary>The member whose device sent it first.</summary>
    public required Guid SenderId { get; set; }

    /// <summary>Its latest version as it went out (null: that version went to named devices only, or found no room).</summary>
    public byte[]? Latest { get; set; }

    public required DateTime EventTime { get; set; }

    public required DateTime StaleAt { get; set; }

    /// <summary>The thumbprint of the certificate of the device that sent its latest version.</summary>
    public required string FromCertificate { get; set; }

    public required bool Deleted { get; set; }

    /// <summary>A version came from another member's device than its first sender's (schema version 28).</summary>
    public bool EditedByOthers { get; set; }
}

/// <summary>The member's device certificates, as a whole.</summary>
internal static class DeviceCertificates
{
    /// <summary>
    /// Revokes (in the context, not yet saved) every certificate of the member not revoked yet, and returns their
    /// thumbprints. A disable does this: the certificates of a member who leaves, or whose device was taken, must not
    /// connect again when the member is enabled later.
    /// </summary>
    public static async Task<List<string>> RevokeAllAsync(Data.ConcordDb db, Guid memberId, TimeProvider time, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var revoked = new List<string>();
        await db.DeviceCertificates.Where(c => c.MemberId == memberId && c.RevokedAt == null).ForEachAsync(c =>
        {
            c.RevokedAt = now;
            revoked.Add(c.Thumbprint);
        }, cancellationToken);
        return revoked;
    }
}

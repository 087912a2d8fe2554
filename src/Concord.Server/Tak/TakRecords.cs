using Concord.Server.Access;

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

namespace Concord.Cot;

/// <summary>&lt;contact callsign endpoint&gt;.</summary>
public sealed record CotContact(string? Callsign, string? Endpoint);

/// <summary>&lt;__group name role&gt;: the team colour and role of a TAK user.</summary>
public sealed record CotGroup(string? Name, string? Role);

/// <summary>&lt;__chat chatroom senderCallsign id parent&gt; of a GeoChat message.</summary>
public sealed record CotChat(string? Chatroom, string? SenderCallsign, string? Id, string? Parent);

/// <summary>
/// One addressee of an event, from &lt;marti&gt;&lt;dest callsign uid/&gt;&lt;/marti&gt;: TAK clients name the devices a
/// direct message or a marker sent to chosen contacts is for.
/// </summary>
public sealed record CotDestination(string? Callsign, string? Uid);

/// <summary>&lt;link uid type relation parent_callsign&gt;.</summary>
public sealed record CotLink(string? Uid, string? Type, string? Relation, string? ParentCallsign);

/// <summary>&lt;status battery readiness&gt;; values that do not parse read as null.</summary>
public sealed record CotStatus(int? Battery, bool? Readiness);

/// <summary>&lt;track course speed&gt;: degrees true and metres per second; values that do not parse read as null.</summary>
public sealed record CotTrack(double? Course, double? Speed);

/// <summary>&lt;takv device platform os version&gt;.</summary>
public sealed record CotTakv(string? Device, string? Platform, string? Os, string? Version);

/// <summary>&lt;precisionlocation geopointsrc altsrc&gt;.</summary>
public sealed record CotPrecisionLocation(string? GeopointSource, string? AltitudeSource);

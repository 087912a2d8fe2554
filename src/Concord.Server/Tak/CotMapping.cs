using System.Globalization;
using Concord.Cot;
using Concord.Server.Incidents;
using Concord.Server.Reports;

namespace Concord.Server.Tak;

/// <summary>What each CoT type becomes in Concord, and how Concord records go out as CoT.</summary>
internal static class CotMapping
{
    public const string ChatType = "b-t-f";
    public const string DeleteType = CotControl.DeleteType;
    public const string AllChatRooms = "All Chat Rooms";

    /// <summary>A GeoChat receipt: the message was delivered to (b-t-f-d) or read on (b-t-f-r) the device sending it.</summary>
    public static bool IsChatReceipt(string type) => type is "b-t-f-d" or "b-t-f-r";

    /// <summary>How long devices keep an incident after it was sent (its CoT stale time).</summary>
    public static readonly TimeSpan IncidentLifetime = TimeSpan.FromDays(7);

    /// <summary>An emergency (b-a-…) or a CASEVAC request: never dropped, never held back.</summary>
    public static bool IsAlert(string type) =>
        type.StartsWith("b-a-", StringComparison.Ordinal) || type == "b-a" || type.StartsWith("b-r-f-h-c", StringComparison.Ordinal);

    /// <summary>
    /// Types passed on to other devices as they are, without becoming Concord records: emergency alerts (b-a-…: 911,
    /// ring the bell, geofence, cancel), CASEVAC/MEDEVAC requests (b-r-f-h-c), drawings and shapes (u-d-…), routes
    /// (b-m-r) and deletions (t-x-d-d).
    /// </summary>
    public static bool IsRelayed(string type) =>
        type.StartsWith("b-a-", StringComparison.Ordinal) || type == "b-a"
        || type.StartsWith("b-r-f-h-c", StringComparison.Ordinal)
        || type.StartsWith("u-d-", StringComparison.Ordinal)
        || type == "u-rb-a"
        || type == "b-m-r" || type.StartsWith("b-m-r-", StringComparison.Ordinal)
        || type == DeleteType;
    public const string IncidentUidPrefix = "concord.incident.";

    /// <summary>A device's own position report: it names the device (takv, or a contact endpoint) or repeats its known uid.</summary>
    public static bool IsPosition(CotEvent e, string? deviceUid) =>
        e.Type.StartsWith("a-", StringComparison.Ordinal)
        && (e.Uid == deviceUid || e.Detail.Takv is not null || e.Detail.Contact?.Endpoint is { Length: > 0 });

    /// <summary>The report category for a marker or spot report, or null for types Concord does not take as reports.</summary>
    public static string? MarkerCategory(string type)
    {
        if (type.StartsWith("b-m-p", StringComparison.Ordinal))
        {
            return "field.spot-report";
        }

        if (type.Length < 3 || !type.StartsWith("a-", StringComparison.Ordinal))
        {
            return null;
        }

        return type[2] switch
        {
            'h' => "field.hostile",
            'u' or 's' or 'j' or 'k' or 'p' => "field.suspect",
            'n' => "field.neutral",
            'f' or 'a' => "field.friendly",
            _ => null,
        };
    }

    /// <summary>What the reports from a TAK item (marker, spot report) hold as their source: the item's uid.</summary>
    public const string ItemRefPrefix = "tak:";

    public static string ItemRef(string uid) => ItemRefPrefix + uid;

    /// <summary>Whether a report came from a TAK item (<see cref="ItemRef"/>).</summary>
    public static bool IsFromItem(Reports.Report report) => IsItemRef(report.ExternalRef);

    /// <summary>Whether a report's source reference is a TAK item's (a marker or spot report a device sent).</summary>
    public static bool IsItemRef(string? externalRef) => externalRef?.StartsWith(ItemRefPrefix, StringComparison.Ordinal) == true;

    /// <summary>A marker as a report request; its id comes from the marker's uid and time, so a replay is the same report.</summary>
    public static CreateReport ToReport(CotEvent e, string category, string author)
    {
        var callsign = e.Detail.Contact?.Callsign;
        var remarks = e.Detail.Remarks;
        var narrative = string.Join(" — ", new[] { callsign, remarks }.Where(t => !string.IsNullOrWhiteSpace(t)));
        if (narrative.Length == 0)
        {
            narrative = $"{category} marked by {author} ({e.Type})";
        }

        return new CreateReport
        {
            Id = Ucdp.GedMapping.NameBasedGuid($"tak:{e.Uid}:{e.Time.UtcTicks.ToString(CultureInfo.InvariantCulture)}"),
            ObservedAt = e.Time,
            ObservedPrecision = "exact",
            Location = new LocationInput(e.Point.Lat, e.Point.Lon, e.Point.Ce is > 0 and < CotPoint.NoValue ? Math.Min(e.Point.Ce, 1_000_000) : 50, null),
            Category = category,
            // A control character in a callsign or remarks (a C1 code from text decoded as the wrong code page) is legal XML
            // but no report's text: shown as U+FFFD rather than costing the marker its report.
            Narrative = ReportRules.Truncate(ReportRules.Printable(narrative), ReportRules.MaxNarrativeLength),
            Language = "en",
            Source = new SourceInput("F", 6, $"TAK marker by {author}", null),
            ExternalRef = ItemRef(e.Uid),
        };
    }

    /// <summary>
    /// Whether two versions of a marker say the same as reports (<see cref="ToReport"/>): the same type, place and
    /// precision, callsign and remarks; only their times differ.
    /// </summary>
    public static bool SameReport(CotEvent a, CotEvent b) =>
        a.Type == b.Type && a.Point.Lat.Equals(b.Point.Lat) && a.Point.Lon.Equals(b.Point.Lon) && a.Point.Ce.Equals(b.Point.Ce)
        && a.Detail.Contact?.Callsign == b.Detail.Contact?.Callsign && a.Detail.Remarks == b.Detail.Remarks;

    /// <summary>The CoT type an incident goes out as: violence hostile, unrest unknown, the rest neutral.</summary>
    public static string IncidentType(string category) => category switch
    {
        _ when category.StartsWith("acled.protests", StringComparison.Ordinal) || category.StartsWith("acled.riots", StringComparison.Ordinal) => "a-u-G",
        _ when category.StartsWith("acled.strategic", StringComparison.Ordinal) || category.StartsWith("ocha-access", StringComparison.Ordinal) => "a-n-G",
        _ when category.StartsWith("field.friendly", StringComparison.Ordinal) => "a-f-G",
        _ when category.StartsWith("field.neutral", StringComparison.Ordinal) => "a-n-G",
        _ when category.StartsWith("field.suspect", StringComparison.Ordinal) || category.StartsWith("field.spot", StringComparison.Ordinal) => "a-u-G",
        _ => "a-h-G",
    };

    /// <summary>An incident as it goes out to devices (never dropped), marked as <paramref name="markings"/> labels it.</summary>
    public static Outbound Outgoing(Incident incident, Access.MarkingFormat markings, DateTimeOffset now) =>
        new(ToCot(incident, markings.ToDto(incident).Label!, Sharing.Tlps.Label(incident.Tlp), now), droppable: false) { Uid = IncidentUidPrefix + incident.Id.ToString("D") };

    /// <summary>Tells devices to remove an incident (t-x-d-d with its uid), never dropped.</summary>
    public static Outbound Withdrawal(Guid incidentId, DateTimeOffset now) =>
        new(CotControl.CreateDelete(IncidentUidPrefix + incidentId.ToString("D"), now), droppable: false);

    public static CotEvent ToCot(Incident i, string markingLabel, string tlpLabel, DateTimeOffset now)
    {
        // Stored text may hold characters XML cannot carry (a narrative with U+FFFF came in through the API): they go out
        // replaced, as one incident that cannot be written would stop the feed for every device.
        var full = CotText.Printable(i.Title);
        var title = full.Length > 48 ? ReportRules.Truncate(full, 47) + "…" : full;
        var range = i.KilledLow is { } low && i.KilledHigh is { } high && low != high ? string.Create(CultureInfo.InvariantCulture, $" ({low}–{high})") : "";
        var killed = i.KilledBest is { } k ? string.Create(CultureInfo.InvariantCulture, $"{k}{range} killed; ") : "";
        var remarks = string.Create(CultureInfo.InvariantCulture,
            $"{full}\n{i.Category}; {i.Status.ToString().ToLowerInvariant()}; {killed}{i.ReportCount} report(s); {i.StartsAt:yyyy-MM-dd HH:mm}Z\n{markingLabel} {tlpLabel}");
        var detail = new CotDetailBuilder().Contact(title).Remarks(remarks).Marking(markingLabel).Build();
        return new CotEvent
        {
            Uid = IncidentUidPrefix + i.Id.ToString("D"),
            Type = IncidentType(i.Category),
            How = "h-g-i-g-o",
            Time = now,
            Start = now,
            Stale = now + IncidentLifetime,
            Access = markingLabel,
            Point = new CotPoint(i.Latitude, i.Longitude, CotPoint.NoValue, i.LocationPrecisionMeters > 0 ? i.LocationPrecisionMeters : CotPoint.NoValue, CotPoint.NoValue),
            Detail = detail,
        };
    }
}

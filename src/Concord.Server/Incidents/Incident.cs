using Concord.Server.Access;
using Concord.Server.Realtime;
using Concord.Server.Sharing;

namespace Concord.Server.Incidents;

/// <summary>The shared understanding of an event, built from one or more reports.</summary>
internal sealed class Incident : MarkedRecord, IFeedEntity
{
    public string FeedName => "incident";

    public long Number { get; init; }

    /// <summary>
    /// Orders incidents that sort alike (the same start, the same number of reports): a random number, fixed when the
    /// incident is opened. The store number would tell in which order they were opened, and so whether a report hidden
    /// from a viewer opened an incident before the viewer's own report joined it. Never negative (cursors hold it). Drawn
    /// where incidents are opened (<see cref="IncidentSummary.OpenFor"/>), not here: incidents read from the store would
    /// each draw one only to have it replaced.
    /// </summary>
    public long Tie { get; init; }

    public static long NewTie() => System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)) & long.MaxValue;

    public required Guid Id { get; init; }

    public required string Category { get; set; }

    public required DateTime StartsAt { get; set; }

    public required DateTime EndsAt { get; set; }

    public required double Latitude { get; set; }

    public required double Longitude { get; set; }

    /// <summary>
    /// The half-degree map square of the location (<see cref="MapCells"/>), stored because the map index leads with it.
    /// Always derived from the location: what the store holds is written from here and never read back into anything.
    /// </summary>
    public int Cell
    {
        get => MapCells.Of(Latitude, Longitude);
        private init { }
    }

    public required double LocationPrecisionMeters { get; set; }

    /// <summary>
    /// The box holding every linked report's place (south, north, west, east). A viewer's copy of a mixed incident lies
    /// where one of its reports does, so a viewport that misses the box misses every copy: the store tests it before
    /// looking for a visible report in the viewport. Never shown.
    /// </summary>
    public double South { get; set; }

    public double North { get; set; }

    public double West { get; set; }

    public double East { get; set; }

    public Guid? AreaId { get; set; }

    public required IncidentStatus Status { get; set; }

    public required string Title { get; set; }

    public int? KilledBest { get; set; }

    public int? InjuredBest { get; set; }

    /// <summary>The lowest killed figure any linked report gives (its low estimate, else its best).</summary>
    public int? KilledLow { get; set; }

    /// <summary>The highest killed figure any linked report gives (its high estimate, else its best).</summary>
    public int? KilledHigh { get; set; }

    public int? InjuredLow { get; set; }

    public int? InjuredHigh { get; set; }

    public required int ReportCount { get; set; }

    /// <summary>Actors named by the reports, encoded like releasability (|a|b|): what fusion compares.</summary>
    public string Actors { get; set; } = "";

    /// <summary>The most frequent words of the reports' narratives (|w|w|), for fusion's text similarity.</summary>
    public string Keywords { get; set; } = "";

    /// <summary>Imported datasets among the reports (|ucdp-ged|): one dataset never reports the same event twice.</summary>
    public string Datasets { get; set; } = "";

    public required Tlp Tlp { get; set; }

    /// <summary>True when the linked reports carry different markings: each viewer then gets the incident as built from the reports they may see.</summary>
    public bool Mixed { get; set; }

    /// <summary>
    /// Set on the copy of a mixed incident rebuilt for one viewer (which may then hold one marking and no longer be mixed):
    /// the list filters must be checked again on it. Never stored.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public bool RebuiltForViewer { get; set; }

    /// <summary>The reports whose joining or leaving is being written (see <see cref="IFeedEntity.Causes"/>); not stored.</summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public ICollection<Guid> Causes { get; } = [];

    /// <summary>The reports whose leaving is being written (see <see cref="IFeedEntity.Departed"/>); not stored.</summary>
    [System.ComponentModel.DataAnnotations.Schema.NotMapped]
    public ICollection<Guid> Departed { get; } = [];

    public required DateTime CreatedAt { get; set; }

    public required DateTime UpdatedAt { get; set; }

    /// <summary>When an analyst last moved the status (null if never): part of what a viewer of a mixed incident sees as its last change.</summary>
    public DateTime? StatusChangedAt { get; set; }

    /// <summary>reported → verified → closed; a closed incident may be reopened as verified.</summary>
    public static bool CanMove(IncidentStatus from, IncidentStatus to) => (from, to) switch
    {
        (IncidentStatus.Reported, IncidentStatus.Verified) => true,
        (IncidentStatus.Reported, IncidentStatus.Closed) => true,
        (IncidentStatus.Verified, IncidentStatus.Closed) => true,
        (IncidentStatus.Closed, IncidentStatus.Verified) => true,
        _ => false,
    };
}

internal enum IncidentStatus
{
    Reported,
    Verified,
    Closed,
}

/// <summary>A report's link to the incident it was fused into, with how much it contributed.</summary>
internal sealed class IncidentReport
{
    public required Guid IncidentId { get; init; }

    public required Guid ReportId { get; init; }

    public required double Contribution { get; set; }

    public required DateTime LinkedAt { get; set; }

    /// <summary>How the report came here: new (opened the incident), fused (scored above the threshold), accepted (an analyst accepted a proposal), merged, split.</summary>
    public string Decision { get; set; } = LinkDecisions.New;

    /// <summary>Fusion's scores for this link as JSON (null when the report opened the incident).</summary>
    public string? ScoreDetail { get; set; }
}

internal static class LinkDecisions
{
    public const string New = "new";
    public const string Fused = "fused";
    public const string Accepted = "accepted";
    public const string Merged = "merged";
    public const string Split = "split";

    /// <summary>Another organisation's copy of a source record (the same GED or ACLED event imported again) joined its incident.</summary>
    public const string SameRecord = "same-record";

    /// <summary>
    /// What a viewer is told of a link that fusion's scorer would not make between the reports the viewer may see (the
    /// incident holds them together through reports the viewer may not see): it is in the incident, and no more is said.
    /// </summary>
    public const string Withheld = "linked";
}

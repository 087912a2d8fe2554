using System.Linq.Expressions;
using Concord.Server.Sharing;

namespace Concord.Server.Incidents;

/// <summary>What a map point or a GeoJSON feature shows of an incident, read without the columns it does not show.</summary>
internal sealed record IncidentPoint(
    long Tie,
    Guid Id,
    double Latitude,
    double Longitude,
    string Category,
    IncidentStatus Status,
    string Title,
    DateTime StartsAt,
    DateTime EndsAt,
    int? KilledBest,
    int ReportCount,
    int Classification,
    string ReleasableTo,
    long Caveats,
    Tlp Tlp,
    bool Mixed)
{
    /// <summary>The projection the store runs.</summary>
    public static readonly Expression<Func<Incident, IncidentPoint>> Of = i => new IncidentPoint(
        i.Tie, i.Id, i.Latitude, i.Longitude, i.Category, i.Status, i.Title, i.StartsAt, i.EndsAt, i.KilledBest, i.ReportCount,
        i.Classification, i.ReleasableTo, i.Caveats, i.Tlp, i.Mixed);

    private static readonly Func<Incident, IncidentPoint> Compiled = Of.Compile();

    /// <summary>The same projection in memory (for incidents rebuilt for a viewer).</summary>
    public static IncidentPoint From(Incident incident) => Compiled(incident);
}

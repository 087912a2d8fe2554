using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Incidents;

/// <summary>Builds an incident's summary from its reports. Until fusion exists, each report opens its own incident.</summary>
internal static class IncidentSummary
{
    public const int TitleLength = 120;

    /// <summary>How many ids one query names at most: SQLite takes up to 32,766 parameters, and an incident may hold more reports.</summary>
    private const int IdsPerQuery = 1_000;

    /// <summary>
    /// The reports of <paramref name="ids"/> (an incident's, to rebuild its summary), in store order, read a thousand ids
    /// at a time: a query naming every id of a very large incident failed on SQLite ("too many SQL variables").
    /// </summary>
    public static async Task<List<Report>> ReportsAsync(Data.ConcordDb db, IEnumerable<Guid> ids, CancellationToken cancellationToken)
    {
        var reports = new List<Report>();
        foreach (var chunk in ids.Distinct().Chunk(IdsPerQuery))
        {
            reports.AddRange(await db.Reports.AsNoTracking().Where(r => chunk.Contains(r.Id)).ToListAsync(cancellationToken));
        }

        reports.Sort((a, b) => a.Number.CompareTo(b.Number));
        return reports;
    }

    /// <summary>
    /// A new incident for one report. The report is its creation's cause: the change feed announces the new incident
    /// only to those who may see the report, so that when a report they may see joins it later, nobody learns that it
    /// existed before (opened by a report hidden from them).
    /// </summary>
    public static Incident OpenFor(Report report, DateTime now)
    {
        var incident = Open(report, now);
        incident.Causes.Add(report.Id);
        return incident;
    }

    private static Incident Open(Report report, DateTime now) => new()
    {
        // Random, not time-ordered: an incident's id must not tell when it was opened, which may be by a report hidden
        // from someone who sees the incident (a version 7 id carries its creation time).
        Id = Guid.NewGuid(),
        Tie = Incident.NewTie(),
        Category = report.Category,
        StartsAt = report.ObservedAt,
        EndsAt = report.ObservedAt + TimePrecisions.Span(report.ObservedPrecision),
        Latitude = report.Latitude,
        Longitude = report.Longitude,
        LocationPrecisionMeters = report.LocationPrecisionMeters,
        South = report.Latitude,
        North = report.Latitude,
        West = report.Longitude,
        East = report.Longitude,
        AreaId = report.AreaId,
        Status = IncidentStatus.Reported,
        Title = Title(report.Narrative),
        KilledBest = Sum(report.KilledCivilianBest, report.KilledOtherBest),
        InjuredBest = Sum(report.InjuredCivilianBest, report.InjuredOtherBest),
        KilledLow = KilledLow(report),
        KilledHigh = KilledHigh(report),
        InjuredLow = InjuredLow(report),
        InjuredHigh = InjuredHigh(report),
        ReportCount = 1,
        Classification = report.Classification,
        ReleasableTo = report.ReleasableTo,
        Caveats = report.Caveats,
        Tlp = report.Tlp,
        Actors = report.Actors,
        Keywords = Fusion.FusionFeatures.KeywordsOf(report.Narrative),
        Datasets = Fusion.FusionFeatures.Dataset(report.ExternalRef) is { } dataset ? Access.Releasability.Encode([dataset]) : "",
        CreatedAt = now,
        UpdatedAt = now,
    };

    /// <summary>
    /// Rebuilds an incident's summary from reports: the time window they span, the title and category of the earliest,
    /// the location of the most precise one, the
    /// median of their casualty estimates (sources disagree; the median resists one outlier) and the range from the lowest
    /// to the highest figure any of them gives, the most restrictive marking
    /// and TLP among them, and whether their markings differ.
    /// </summary>
    public static void Summarise(Incident incident, IReadOnlyList<Report> reports)
    {
        if (reports.Count == 0)
        {
            throw new ArgumentException("an incident needs at least one report", nameof(reports));
        }

        var first = reports.MinBy(r => r.ObservedAt)!;
        var precise = reports.MinBy(r => r.LocationPrecisionMeters)!;
        incident.StartsAt = first.ObservedAt;
        incident.EndsAt = reports.Max(r => r.ObservedAt + TimePrecisions.Span(r.ObservedPrecision));
        incident.Latitude = precise.Latitude;
        incident.Longitude = precise.Longitude;
        incident.LocationPrecisionMeters = precise.LocationPrecisionMeters;
        incident.AreaId = precise.AreaId;
        incident.South = reports.Min(r => r.Latitude);
        incident.North = reports.Max(r => r.Latitude);
        incident.West = reports.Min(r => r.Longitude);
        incident.East = reports.Max(r => r.Longitude);
        // Title and category are the earliest report's: never a report's that has left the incident (a split, a moved
        // report), whose category could be one hidden from those who see the incident now.
        incident.Title = Title(first.Narrative);
        incident.Category = first.Category;
        incident.KilledBest = Median(reports.Select(r => Sum(r.KilledCivilianBest, r.KilledOtherBest)));
        incident.InjuredBest = Median(reports.Select(r => Sum(r.InjuredCivilianBest, r.InjuredOtherBest)));
        incident.KilledLow = reports.Min(KilledLow);
        incident.KilledHigh = reports.Max(KilledHigh);
        incident.InjuredLow = reports.Min(InjuredLow);
        incident.InjuredHigh = reports.Max(InjuredHigh);
        incident.ReportCount = reports.Count;
        incident.Classification = reports.Max(r => r.Classification);
        incident.Caveats = reports.Aggregate(0L, (bits, r) => bits | r.Caveats);
        // Those who may see every input: the communities all the reports are released to.
        var common = reports.Select(r => Access.Releasability.Decode(r.ReleasableTo).ToHashSet(StringComparer.Ordinal))
            .Aggregate((a, b) =>
            {
                a.IntersectWith(b);
                return a;
            });
        incident.ReleasableTo = Access.Releasability.Encode(common);
        incident.Tlp = reports.Max(r => r.Tlp);
        incident.Mixed = reports.Select(r => (r.Classification, r.ReleasableTo, r.Caveats)).Distinct().Count() > 1;
    }

    /// <summary>
    /// Rebuilds a stored incident: the summary and what fusion compares (actors, keywords, datasets). Per-viewer views
    /// use <see cref="Summarise"/> alone: they are never matched against, so they skip reading every narrative.
    /// </summary>
    public static void Rebuild(Incident incident, IReadOnlyList<Report> reports)
    {
        Summarise(incident, reports);
        Fusion.FusionFeatures.Describe(incident, reports);
    }

    /// <summary>
    /// Adds one report to a large incident's summary without reading all its reports again: window, place, marking,
    /// TLP, actors, keywords and datasets grow from the summary itself; the casualty medians come from
    /// <paramref name="casualties"/> (every linked report's killed and injured best estimates, a light read).
    /// </summary>
    public static void Add(Incident incident, Report report, IReadOnlyList<(int? Killed, int? Injured)> casualties)
    {
        if (report.ObservedAt < incident.StartsAt)
        {
            // The earliest report now: its title and category, as a rebuild gives them.
            incident.StartsAt = report.ObservedAt;
            incident.Title = Title(report.Narrative);
            incident.Category = report.Category;
        }

        var end = report.ObservedAt + TimePrecisions.Span(report.ObservedPrecision);
        incident.EndsAt = end > incident.EndsAt ? end : incident.EndsAt;
        if (report.LocationPrecisionMeters < incident.LocationPrecisionMeters)
        {
            incident.Latitude = report.Latitude;
            incident.Longitude = report.Longitude;
            incident.LocationPrecisionMeters = report.LocationPrecisionMeters;
            incident.AreaId = report.AreaId;
        }

        incident.South = Math.Min(incident.South, report.Latitude);
        incident.North = Math.Max(incident.North, report.Latitude);
        incident.West = Math.Min(incident.West, report.Longitude);
        incident.East = Math.Max(incident.East, report.Longitude);
        var killed = Sum(report.KilledCivilianBest, report.KilledOtherBest);
        var injured = Sum(report.InjuredCivilianBest, report.InjuredOtherBest);
        incident.KilledBest = Median(casualties.Select(c => c.Killed).Append(killed));
        incident.InjuredBest = Median(casualties.Select(c => c.Injured).Append(injured));
        incident.KilledLow = Lower(incident.KilledLow, KilledLow(report));
        incident.KilledHigh = Higher(incident.KilledHigh, KilledHigh(report));
        incident.InjuredLow = Lower(incident.InjuredLow, InjuredLow(report));
        incident.InjuredHigh = Higher(incident.InjuredHigh, InjuredHigh(report));
        incident.ReportCount++;
        incident.Mixed |= (report.Classification, report.ReleasableTo, report.Caveats) != (incident.Classification, incident.ReleasableTo, incident.Caveats);
        incident.Classification = Math.Max(incident.Classification, report.Classification);
        incident.Caveats |= report.Caveats;
        var common = Access.Releasability.Decode(incident.ReleasableTo).Intersect(Access.Releasability.Decode(report.ReleasableTo), StringComparer.Ordinal);
        incident.ReleasableTo = Access.Releasability.Encode(common);
        incident.Tlp = report.Tlp > incident.Tlp ? report.Tlp : incident.Tlp;
        incident.Actors = Access.Releasability.Encode(Access.Releasability.Decode(incident.Actors).Concat(Access.Releasability.Decode(report.Actors)));
        incident.Keywords = Fusion.FusionFeatures.Encode(Access.Releasability.Decode(incident.Keywords)
            .Concat(Fusion.FusionFeatures.Tokens(report.Narrative)).Distinct(StringComparer.Ordinal).Take(Fusion.FusionFeatures.MaxKeywords));
        if (Fusion.FusionFeatures.Dataset(report.ExternalRef) is { } dataset)
        {
            incident.Datasets = Access.Releasability.Encode(Access.Releasability.Decode(incident.Datasets).Append(dataset));
        }
    }

    /// <summary>
    /// A mixed incident as one viewer sees it: summarised from <paramref name="visible"/> (the reports they may see, at
    /// least one), so its title and category are those of the earliest of them (the stored ones may be a hidden report's).
    /// A status set before the first of those reports joined (<paramref name="linkedAt"/>) was decided on reports this
    /// viewer may not see, and showing it would tell them such reports exist: for them the incident is as reported. But
    /// for a closing: a closed incident takes no reports, but for a release's copy of one of its reports, which its
    /// releaser made knowing it closed; shown open to those who see only the copy, one of them moving it on would reopen
    /// what an analyst closed, unwarned (and it would be routed again to every organisation).
    /// </summary>
    public static Incident ViewFor(Incident incident, IReadOnlyList<Report> visible, IEnumerable<DateTime> linkedAt)
    {
        var view = Copy(incident);
        Summarise(view, visible);
        view.RebuiltForViewer = true;
        if (view.Status != IncidentStatus.Closed)
        {
            ForgetStatusDecidedBefore(view, linkedAt);
        }

        return view;
    }

    /// <summary>
    /// Takes an incident back to <c>reported</c> when its status was set before any of the reports of
    /// <paramref name="linkedAt"/> joined it: it was decided on other reports. For one viewer's copy of a mixed incident,
    /// those are reports hidden from them (<see cref="ViewFor"/>); for a stored incident after a split or a move, reports
    /// that have left it, and a status kept would be shown to viewers of what remains as if decided on it.
    /// </summary>
    public static void ForgetStatusDecidedBefore(Incident incident, IEnumerable<DateTime> linkedAt)
    {
        if (incident.StatusChangedAt is { } changed && linkedAt.DefaultIfEmpty(DateTime.MaxValue).Min() > changed)
        {
            incident.Status = IncidentStatus.Reported;
            incident.StatusChangedAt = null;
        }
    }

    /// <summary>
    /// When an incident last changed as anyone who may see the given links' reports can tell: the latest of those
    /// reports joining it and its status moving. A stored incident's <see cref="Incident.UpdatedAt"/> is this over all its
    /// links; a viewer's copy of a mixed incident, this over the links they may see.
    /// </summary>
    public static DateTime LastChange(Incident incident, IEnumerable<DateTime> linkedAt)
    {
        var last = incident.StatusChangedAt ?? DateTime.MinValue;
        foreach (var at in linkedAt)
        {
            last = at > last ? at : last;
        }

        return last == DateTime.MinValue ? incident.CreatedAt : last;
    }

    public static Incident Copy(Incident i) => new()
    {
        Number = i.Number,
        Tie = i.Tie,
        Id = i.Id,
        Category = i.Category,
        StartsAt = i.StartsAt,
        EndsAt = i.EndsAt,
        Latitude = i.Latitude,
        Longitude = i.Longitude,
        LocationPrecisionMeters = i.LocationPrecisionMeters,
        South = i.South,
        North = i.North,
        West = i.West,
        East = i.East,
        AreaId = i.AreaId,
        Status = i.Status,
        Title = i.Title,
        KilledBest = i.KilledBest,
        InjuredBest = i.InjuredBest,
        KilledLow = i.KilledLow,
        KilledHigh = i.KilledHigh,
        InjuredLow = i.InjuredLow,
        InjuredHigh = i.InjuredHigh,
        ReportCount = i.ReportCount,
        Classification = i.Classification,
        ReleasableTo = i.ReleasableTo,
        Caveats = i.Caveats,
        Tlp = i.Tlp,
        Mixed = i.Mixed,
        Actors = i.Actors,
        Keywords = i.Keywords,
        Datasets = i.Datasets,
        CreatedAt = i.CreatedAt,
        UpdatedAt = i.UpdatedAt,
        StatusChangedAt = i.StatusChangedAt,
    };

    private static int? Median(IEnumerable<int?> values)
    {
        var known = values.Where(v => v is not null).Select(v => v!.Value).Order().ToList();
        return known.Count == 0 ? null : known[(known.Count - 1) / 2];
    }

    public static string Title(string narrative)
    {
        var firstLine = narrative.AsSpan().Trim();
        var end = firstLine.IndexOfAny('\n', '\r');
        if (end >= 0)
        {
            firstLine = firstLine[..end];
        }

        // Never between the halves of a surrogate pair (an emoji): PostgreSQL refuses the half left as text that is not UTF-8.
        return firstLine.Length <= TitleLength ? firstLine.ToString()
            : string.Concat(firstLine[..(char.IsHighSurrogate(firstLine[TitleLength - 2]) ? TitleLength - 2 : TitleLength - 1)], "…");
    }

    /// <summary>A report's best estimates of killed and injured, civilians and others together: what a large incident's medians are taken from.</summary>
    internal static (int? Killed, int? Injured) Figures(Report report) =>
        (Sum(report.KilledCivilianBest, report.KilledOtherBest), Sum(report.InjuredCivilianBest, report.InjuredOtherBest));

    internal static int? Sum(int? a, int? b) => a is null && b is null ? null : (a ?? 0) + (b ?? 0);

    // A report's casualty range: each part's low (or high) estimate where it gives one, else its best, else its other end.
    // A part given as "at least 3" (a low alone) counts 3 at both ends, as "at most 5" counts 5: taken at one end only, it
    // made the range's low exceed its high (3 civilians at least and 1 other: 4 to 1), or left no range at all.
    private static int? KilledLow(Report r) => Sum(LowEnd(r.KilledCivilianLow, r.KilledCivilianBest, r.KilledCivilianHigh), LowEnd(r.KilledOtherLow, r.KilledOtherBest, r.KilledOtherHigh));

    private static int? KilledHigh(Report r) => Sum(HighEnd(r.KilledCivilianLow, r.KilledCivilianBest, r.KilledCivilianHigh), HighEnd(r.KilledOtherLow, r.KilledOtherBest, r.KilledOtherHigh));

    private static int? InjuredLow(Report r) => Sum(LowEnd(r.InjuredCivilianLow, r.InjuredCivilianBest, r.InjuredCivilianHigh), LowEnd(r.InjuredOtherLow, r.InjuredOtherBest, r.InjuredOtherHigh));

    private static int? InjuredHigh(Report r) => Sum(HighEnd(r.InjuredCivilianLow, r.InjuredCivilianBest, r.InjuredCivilianHigh), HighEnd(r.InjuredOtherLow, r.InjuredOtherBest, r.InjuredOtherHigh));

    private static int? LowEnd(int? low, int? best, int? high) => low ?? best ?? high;

    private static int? HighEnd(int? low, int? best, int? high) => high ?? best ?? low;

    private static int? Lower(int? a, int? b) => a is { } x && b is { } y ? Math.Min(x, y) : a ?? b;

    private static int? Higher(int? a, int? b) => a is { } x && b is { } y ? Math.Max(x, y) : a ?? b;
}

using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.EarlyWarning;

internal sealed record HotspotDto(string Key, string Name, double Latitude, double Longitude, int Incidents, long Killed);

internal sealed record HotspotsDto(string By, DateTimeOffset? From, DateTimeOffset? To, string Classification, IReadOnlyList<string> Caveats, IReadOnlyList<HotspotDto> Items);

internal sealed record ForecastDto(int Gid, double Latitude, double Longitude, double Expected, double AtLeastOne, double Low, double High, string Marking);

internal sealed record AreaForecastDto(string Area, string Name, DateTimeOffset Month, double Expected, double AtLeastOne, double Low, double High, string Marking);

internal sealed record ForecastsDto(DateTimeOffset? Month, DateTimeOffset? ComputedAt, IReadOnlyList<ForecastDto> Items);

internal sealed record SkillRowDto(string Model, double Crps, double Brier);

internal sealed record SkillDto(string Data, int From, int To, IReadOnlyList<SkillRowDto> Models);

internal sealed record SpikeDto(string Area, string Name, int Recent, int Baseline, double? Expected, double? Probability, bool Alert);

/// <param name="BaselineObservedDays">
/// The days of the baseline the caller's incidents cover: fewer than <paramref name="BaselineDays"/> when the earliest
/// incident they may see in it came later (a mission that began reporting recently). The rate is taken over these.
/// </param>
internal sealed record SpikesDto(DateTimeOffset At, int Days, int BaselineDays, int BaselineObservedDays, double Threshold, string Classification,
    IReadOnlyList<string> Caveats, IReadOnlyList<SpikeDto> Items);

/// <summary>
/// Hotspots and spikes over the incidents the caller may see (mixed incidents as rebuilt for the caller): a viewer's
/// early warning never counts what that viewer may not see, and each answer names the highest classification it was
/// computed from.
/// </summary>
internal static class EarlyWarningEndpoints
{
    public static void MapEarlyWarning(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/early-warning").WithTags("Early warning").RequireAuthorization();
        group.MapGet("/hotspots", Hotspots).WithListParameters(incidents: true, limit: $"at most this many hotspots (1–{MaxHotspots})")
            .WithQueryParameter("by", "cell (0.5° PRIO-GRID, the default) or area (the mission's areas)").WithSummary("Incidents and fatalities per 0.5° PRIO-GRID cell or per area over a window (by=cell|area; the list filters apply).");
        group.MapGet("/skill", Skill).TakesQuery().WithSummary("The forecast's latest back-test on the bundled real UCDP data: mean CRPS and Brier of Concord and the benchmarks.");
        group.MapGet("/forecasts/areas", AreaForecasts).WithSummary("The forecast month's figures per admin-1 area (its cells' distributions added up), as far as you may see them.");
        group.MapGet("/forecasts", Forecasts).WithQueryParameter("bbox", "west,south,east,north in degrees (WGS 84): only cells whose centre is inside").WithSummary("The forecast month's figures per PRIO-GRID cell (expected fatalities, P(≥ 1), 90 % interval), as far as you may see them; month says which month.");
        group.MapGet("/spikes", Spikes)
            .WithQueryParameter("days", "the recent window in days (1–366; default 30)", Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithQueryParameter("baselineDays", "the baseline before it in days (7–3660, at least days; default 365)", Microsoft.OpenApi.JsonSchemaType.Integer)
            .WithQueryParameter("threshold", "the alert's probability, between 0 and 1 (default 0.01)", Microsoft.OpenApi.JsonSchemaType.Number)
            .WithQueryParameter("at", "the end of the recent window (ISO 8601; default: the start of the latest incident you may see, or now if that is earlier)")
            .WithSummary("Areas whose recent incident count departs from their own baseline: Poisson upper-tail probability, alert below the threshold.");
    }

    // The back-test of the bundled data, run once; a run that failed (a reference file missing or unreadable) is run again
    // by the next request instead of failing until the server restarts.
    private static readonly OnceUnlessFailed<SkillDto> Evaluation = new(() => Task.Run(() => Evaluate(Demo.DemoMission.ReferenceDirectory)));

    private static Task<Results<Ok<SkillDto>, ProblemHttpResult>> Skill(ILogger<SkillDto> logger) => SkillAnswerAsync(SkillAsync(), logger);

    /// <summary>
    /// The back-test's figures, or a 503 saying why it could not run (a reference file missing or unreadable): the next
    /// request runs it again. It answered a bare 500.
    /// </summary>
    internal static async Task<Results<Ok<SkillDto>, ProblemHttpResult>> SkillAnswerAsync(Task<SkillDto> evaluation, ILogger logger)
    {
        try
        {
            return TypedResults.Ok(await evaluation);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or FormatException or ForecastEvaluation.Refused)
        {
            logger.LogWarning(e, "The back-test of the bundled reference data failed");
            // Why is in the server's log: the reason names the server's files (paths, the account's access), not for members.
            return TypedResults.Problem("the back-test of the bundled reference data could not run (the server's log says why); it is tried again at the next request",
                statusCode: StatusCodes.Status503ServiceUnavailable, title: "The forecast's skill is not available.");
        }
    }

    internal static Task<SkillDto> SkillAsync() => Evaluation.Value;

    internal static SkillDto Evaluate(string reference)
    {
        var result = ForecastEvaluation.Run(Path.Combine(reference, "ucdp", "ged231_caf_events.csv"), Path.Combine(reference, "geo", "ne10m_admin1_caf.geojson"), 2015, 2022);
        return new SkillDto("UCDP GED 23.1, Central African Republic", 2015, 2022, result.Scores.GroupBy(s => s.Model)
            .Select(g => new SkillRowDto(g.Key, Math.Round(g.Average(s => s.Crps), 4), Math.Round(g.Average(s => s.Brier), 4))).ToList());
    }

    private static async Task<Results<Ok<ForecastsDto>, ProblemHttpResult>> Forecasts(HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        if (!ListQuery.TryParse(context.Request.Query, null, out var query, out var errors, ["bbox"]))
        {
            return Problems.Invalid(errors);
        }

        var forecasts = db.Forecasts.AsNoTracking();
        if (query.Bbox is { } box)
        {
            forecasts = forecasts.Where(f => f.Latitude >= box.South && f.Latitude <= box.North && f.Longitude >= box.West && f.Longitude <= box.East);
        }

        var rows = await forecasts.VisibleTo(viewer).OrderByDescending(f => f.AtLeastOne).ToListAsync(context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "forecast", Audits.CountMarkings(rows.Select(f => (f.Classification, f.Caveats))), context, time.GetUtcNow().UtcDateTime);
        return TypedResults.Ok(new ForecastsDto(
            rows.Count == 0 ? null : new DateTimeOffset(DateTime.SpecifyKind(rows[0].Month, DateTimeKind.Utc)),
            rows.Count == 0 ? null : new DateTimeOffset(DateTime.SpecifyKind(rows.Max(r => r.ComputedAt), DateTimeKind.Utc)),
            rows.Select(f => new ForecastDto(f.Gid, f.Latitude, f.Longitude, Math.Round(f.Expected, 3), Math.Round(f.AtLeastOne, 4), f.Low, f.High, markings.ToDto(f).Label ?? "")).ToList()));
    }

    private static async Task<Results<Ok<List<AreaForecastDto>>, ProblemHttpResult>> AreaForecasts(HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        // No filter: a bbox (or anything else) given here would otherwise answer with every area as if it had been applied.
        var refused = new Dictionary<string, string[]>(StringComparer.Ordinal);
        QueryReader.RefuseOthers(context.Request.Query, [], "the area forecasts", refused);
        if (refused.Count > 0)
        {
            return Problems.Invalid(refused);
        }

        var rows = await db.AreaForecasts.AsNoTracking().VisibleTo(viewer).OrderByDescending(f => f.AtLeastOne).ToListAsync(context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "forecast", Audits.CountMarkings(rows.Select(f => (f.Classification, f.Caveats))), context, time.GetUtcNow().UtcDateTime);
        return TypedResults.Ok(rows.Select(f => new AreaForecastDto(directory.Area(f.AreaId)?.Code ?? "?", directory.Area(f.AreaId)?.Name ?? "?",
            new DateTimeOffset(DateTime.SpecifyKind(f.Month, DateTimeKind.Utc)), Math.Round(f.Expected, 3), Math.Round(f.AtLeastOne, 4), f.Low, f.High, markings.ToDto(f).Label ?? "")).ToList());
    }

    private sealed record Row(double Latitude, double Longitude, Guid? AreaId, DateTime StartsAt, int? Killed, int Classification, long Caveats);

    /// <summary>The selected incidents, with mixed ones rebuilt for the viewer.</summary>
    private static Task<List<Row>> RowsAsync(IncidentSelection selection, CancellationToken cancellationToken) =>
        selection.RowsAsync(i => new Row(i.Latitude, i.Longitude, i.AreaId, i.StartsAt, i.KilledBest, i.Classification, i.Caveats), cancellationToken);

    private static async Task<Results<Ok<HotspotsDto>, ProblemHttpResult>> Hotspots(
        HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        // Every bad parameter named at once, the limit with this answer's own bound (a listing's is larger).
        _ = ListQuery.TryParse(context.Request.Query, null, out var query, out var errors, [.. ListQuery.IncidentFilters, "by", "limit"]);
        var by = context.Request.Query["by"].ToString() is { Length: > 0 } b ? b : "cell";
        if (by is not ("cell" or "area"))
        {
            errors["by"] = ["must be cell or area"];
        }

        if (errors.ContainsKey("limit") || query.Limit > MaxHotspots)
        {
            errors["limit"] = [$"must be a whole number from 1 to {MaxHotspots}: at most {MaxHotspots} hotspots are listed"];
        }

        // The filters' values (status, category, organisation…) are judged as the selection is built, beside the others
        // (a parameter the query could not read is left out of it, and named by its own reason).
        var (visible, filterErrors) = await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), query, viewer, directory, markings, context.RequestAborted);
        foreach (var (field, reasons) in filterErrors)
        {
            errors.TryAdd(field, reasons);
        }

        if (errors.Count > 0 || visible is null)
        {
            return Problems.Invalid(errors);
        }

        var (hotspots, counted) = await HotspotsAsync(directory, markings, visible, by, context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "incident", counted, context, time.GetUtcNow().UtcDateTime);
        return TypedResults.Ok(hotspots);
    }

    /// <summary>The most hotspots one answer lists.</summary>
    public const int MaxHotspots = 500;

    /// <summary>Hotspots over a visible query (the API and the early-warning page).</summary>
    internal static async Task<(HotspotsDto Answer, List<(int Level, long Caveats, long Count)> Counted)> HotspotsAsync(
        MissionDirectory directory, MarkingFormat markings, IncidentSelection visible, string by, CancellationToken cancellationToken)
    {
        var tallies = await TalliesAsync(visible, by == "cell", cancellationToken);
        var query = visible.Query;
        var items = (by == "cell"
                ? tallies.GroupBy(t => PrioGrid.OfFloors(t.Row, t.Column)).Select(g =>
                {
                    var (lat, lon) = PrioGrid.Centre(g.Key);
                    return new HotspotDto(g.Key.ToString(CultureInfo.InvariantCulture), $"PRIO-GRID {g.Key}", lat, lon, g.Sum(t => t.Count), g.Sum(t => t.Killed));
                })
                : tallies.GroupBy(t => t.AreaId).Select(g =>
                {
                    var area = directory.Area(g.Key);
                    var count = g.Sum(t => t.Count);
                    return new HotspotDto(area?.Code ?? "-", area?.Name ?? "outside the mission's areas",
                        area is null ? g.Sum(t => t.Latitude * t.Count) / count : (area.MinLatitude + area.MaxLatitude) / 2,
                        area is null ? g.Sum(t => t.Longitude * t.Count) / count : (area.MinLongitude + area.MaxLongitude) / 2, count, g.Sum(t => t.Killed));
                }))
            // Ties broken by the key: which of equal places make the cut must not follow the store's grouping order.
            .OrderByDescending(h => h.Incidents).ThenByDescending(h => h.Killed).ThenBy(h => h.Key, StringComparer.Ordinal).Take(Math.Min(query.Limit, MaxHotspots)).ToList();
        var counted = tallies.GroupBy(t => (t.Classification, t.Caveats)).Select(g => (g.Key.Classification, g.Key.Caveats, (long)g.Sum(t => t.Count))).ToList();
        var (classification, caveats) = markings.Figures(tallies.Select(t => (t.Classification, t.Caveats)));
        return (new HotspotsDto(by, Utc(query.From), Utc(query.To), classification, caveats, items), counted);
    }

    /// <summary>
    /// Incidents counted together: in one cell (the floors <see cref="PrioGrid.OfFloors"/> takes) or one area,
    /// under one marking, with their deaths and (for an area) mean place.
    /// </summary>
    private sealed record HotspotTally(double Row, double Column, Guid? AreaId, int Classification, long Caveats, int Count, long Killed, double Latitude, double Longitude);

    /// <summary>
    /// The selection's incidents counted by cell or area and marking: plain ones in the store (a year of a large mission is
    /// hundreds of thousands of incidents, none of which needs reading), mixed ones as the viewer sees them, one by one.
    /// </summary>
    private static async Task<List<HotspotTally>> TalliesAsync(IncidentSelection visible, bool byCell, CancellationToken cancellationToken)
    {
        var tallies = byCell
            ? await visible.Plain
                .GroupBy(i => new { Row = Math.Floor((i.Latitude + 90) / PrioGrid.Size), Column = Math.Floor((i.Longitude + 180) / PrioGrid.Size), i.Classification, i.Caveats })
                .Select(g => new HotspotTally(g.Key.Row, g.Key.Column, null, g.Key.Classification, g.Key.Caveats, g.Count(), g.Sum(i => (long)(i.KilledBest ?? 0)), 0, 0))
                .ToListAsync(cancellationToken)
            : await visible.Plain
                .GroupBy(i => new { i.AreaId, i.Classification, i.Caveats })
                .Select(g => new HotspotTally(0, 0, g.Key.AreaId, g.Key.Classification, g.Key.Caveats, g.Count(), g.Sum(i => (long)(i.KilledBest ?? 0)),
                    g.Average(i => i.Latitude), g.Average(i => i.Longitude)))
                .ToListAsync(cancellationToken);
        tallies.AddRange((await visible.MixedAsSeenAsync(null, cancellationToken)).Select(i => new HotspotTally(
            Math.Floor((i.Latitude + 90) / PrioGrid.Size), Math.Floor((i.Longitude + 180) / PrioGrid.Size), i.AreaId, i.Classification, i.Caveats, 1, i.KilledBest ?? 0,
            i.Latitude, i.Longitude)));
        return tallies;
    }

    private static async Task<Results<Ok<SpikesDto>, ProblemHttpResult>> Spikes(
        HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditWriter audit, TimeProvider time)
    {
        var q = context.Request.Query;
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        int Whole(string name, int fallback, int min, int max)
        {
            if (q[name].ToString() is not { Length: > 0 } text)
            {
                return fallback;
            }

            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max)
            {
                return v;
            }

            errors[name] = [$"must be a whole number from {min} to {max}"];
            return fallback;
        }

        var days = Whole("days", 30, 1, 366);
        var baselineDays = Whole("baselineDays", 365, 7, 3660);
        if (!errors.ContainsKey("days") && !errors.ContainsKey("baselineDays") && baselineDays < days)
        {
            // A baseline shorter than the window watched raises no alert (see SpikesAsync): refused rather than silent.
            errors["baselineDays"] = [$"must be at least days ({days}): a rate is judged against a baseline as long as the window at least"];
        }
        var threshold = 0.01;
        if (q["threshold"].ToString() is { Length: > 0 } t && (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out threshold) || !double.IsFinite(threshold) || threshold is <= 0 or >= 1))
        {
            errors["threshold"] = ["must be a probability between 0 and 1, e.g. 0.01"];
        }

        DateTime? at = null;
        if (q["at"].ToString() is { Length: > 0 })
        {
            // A day alone is the whole of that day, as "to" is elsewhere (its midnight would leave its incidents out of the
            // window), and today alone is up to now.
            var reader = new QueryReader(q, new Dictionary<string, string[]>(StringComparer.Ordinal));
            var (now, from, until) = (time.GetUtcNow(), reader.Time("at"), reader.Until("at"));
            if ((until > now && from <= now ? now : until) is { } parsed && parsed >= Reports.ReportRules.Earliest && parsed <= now + Reports.ReportRules.ClockSkew)
            {
                // A client's clock a little ahead (within the skew reports are allowed) ends the window now: after now it
                // would count minutes not yet reported.
                at = (parsed > now ? now : parsed).UtcDateTime;
            }
            else
            {
                // A window ending in the future holds fewer days of incidents than it counts: judged against a full rate,
                // every area would look quiet, and alerts would be lost without a word.
                errors["at"] = [$"must be an ISO 8601 time from {Reports.ReportRules.Earliest:yyyy} on, and not in the future"];
            }
        }

        // Spikes are per area over the whole mission: a filter (bbox, category, from) would look applied and not be.
        QueryReader.RefuseOthers(q, ["days", "baselineDays", "threshold", "at"], "spikes", errors);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var (spikes, counted) = await SpikesAsync(db, directory, markings, viewer, days, baselineDays, threshold, at, time.GetUtcNow().UtcDateTime, context.RequestAborted);
        await audit.RecordAggregateAsync(viewer, "incident", counted, context, time.GetUtcNow().UtcDateTime);
        return TypedResults.Ok(spikes);
    }

    /// <summary>How long a mission may show no incident before a spike baseline and still have its whole baseline counted as quiet.</summary>
    public const int MinimumReportingGapDays = 365;

    /// <summary>Spikes per area for a viewer (the API and the early-warning page).</summary>
    internal static async Task<(SpikesDto Answer, List<(int Level, long Caveats, long Count)> Counted)> SpikesAsync(
        ConcordDb db, MissionDirectory directory, MarkingFormat markings, Viewer viewer, int days, int baselineDays, double threshold, DateTime? at, DateTime now,
        CancellationToken cancellationToken)
    {
        // Without 'at', the window ends with the latest incident the viewer may see (imported history is often old), as they
        // see it, and never after now: a report dated by its day may start up to 14 hours ahead (the UTC+14 allowance), and
        // a window ending then would count hours not yet lived against a full day's rate (as an explicit 'at' ahead is refused).
        var end = at ?? (await (await Selection(new ListQuery())).LatestStartAsync(cancellationToken) is { } latest && latest < now ? latest : now);
        var recentFrom = end.AddDays(-days);
        var baselineFrom = recentFrom.AddDays(-baselineDays);
        var window = (await Selection(new ListQuery { From = baselineFrom, To = end })).NarrowPlain(i => i.StartsAt >= baselineFrom);
        // Counted by the database per area, window part and marking (a baseline of years holds every incident of those
        // years: read one by one, each request held them all in memory); mixed incidents, rebuilt for the viewer, one by one.
        var tallies = await window.Plain
            .GroupBy(i => new { i.AreaId, Recent = i.StartsAt > recentFrom, i.Classification, i.Caveats })
            .Select(g => new SpikeTally(g.Key.AreaId, g.Key.Recent, g.Key.Classification, g.Key.Caveats, g.Count(), g.Min(i => i.StartsAt)))
            .ToListAsync(cancellationToken);
        tallies.AddRange((await window.MixedAsSeenAsync(null, cancellationToken)).Where(i => i.StartsAt >= baselineFrom)
            .Select(i => new SpikeTally(i.AreaId, i.StartsAt > recentFrom, i.Classification, i.Caveats, 1, i.StartsAt)));

        async Task<IncidentSelection> Selection(ListQuery query) =>
            (await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), query, viewer, directory, markings, cancellationToken)).Incidents!;
        // A caller who may see nothing in the baseline's length (at least a year) before it began has reporting only from
        // the earliest incident they may see in it (in any area): before that, nothing was reported, which says nothing of
        // any area's rate, and scaling a month of data as if it were a year would make every active area alarm. Reporting
        // that stopped longer ago than that is a gap, not a quiet spell (a dataset's history ending in 2022, a mission's
        // own reports from 2026 on); a quiet week or month before a short baseline is a quiet spell. With an incident in sight in that time, the whole baseline counts, quiet spells included
        // (a mission gone quiet is when a surge matters). Alerts need a baseline at least as long as the recent window.
        // Whether there is such an incident is told from the least marked one (its marking is the answer's too, and it is
        // counted in the audit). With nothing in sight, in the window or before it, no day is covered: no rate, no figure.
        // An incident is in that time by its start, as in the window: a list's filter takes any incident overlapping it, and
        // one dated only to its year (an imported event of long ago) overlaps a year after it began.
        var lookBackFrom = baselineFrom.AddDays(-Math.Max(baselineDays, MinimumReportingGapDays));
        var before = await (await Selection(new ListQuery { From = lookBackFrom, To = baselineFrom.AddTicks(-1) }))
            .NarrowPlain(i => i.StartsAt >= lookBackFrom)
            .LeastMarkedAsync(cancellationToken, i => i.StartsAt >= lookBackFrom);
        var reportingBefore = before is not null;
        var firstSeen = reportingBefore ? baselineFrom : tallies.Count == 0 ? recentFrom : tallies.Min(t => t.First);
        var observed = Math.Max(0, (int)Math.Floor((recentFrom - (firstSeen > baselineFrom ? firstSeen : baselineFrom)).TotalDays));
        var perArea = new Dictionary<Guid, (int Recent, int Total)>();
        foreach (var tally in tallies)
        {
            if (tally.AreaId is { } areaId)
            {
                var (recentSoFar, totalSoFar) = perArea.GetValueOrDefault(areaId);
                perArea[areaId] = (recentSoFar + (tally.Recent ? tally.Count : 0), totalSoFar + tally.Count);
            }
        }

        var items = directory.Areas.Select(a => a.Area).Select(area =>
            {
                var (recent, total) = perArea.GetValueOrDefault(area.Id);
                var baseline = total - recent;
                // Half an event of prior: an area never seen active still needs more than one event to alarm. The rate is
                // that of the days covered (scaled as if they were the recent window's length would understate it); with
                // none covered there is no rate to judge by, and no figure is given.
                if (observed == 0)
                {
                    return new SpikeDto(area.Code, area.Name, recent, baseline, null, null, false);
                }

                var expected = (baseline + 0.5) * days / observed;
                var p = PoissonUpperTail(recent, expected);
                return new SpikeDto(area.Code, area.Name, recent, baseline, Math.Round(expected, 3), p, recent >= 3 && p < threshold && observed >= days);
            })
            // Equal places in the code's order: which of them make a cut (the page shows the first twelve) must not follow the
            // order the store holds the areas in (their ids, random per store), as for hotspots.
            .OrderBy(s => s.Probability ?? 2).ThenBy(s => s.Area, StringComparer.Ordinal).ToList();
        // The answer is marked with, and counts in the audit, the incidents it was computed from: caveats too (a count tells
        // of what it counts), and the one that decided the baseline.
        List<(int Level, long Caveats, long Count)> from = [.. tallies.Select(t => (t.Classification, t.Caveats, (long)t.Count)),
            .. before is { } decided ? [(decided.Classification, decided.Caveats, 1L)] : Array.Empty<(int, long, long)>()];
        var (classification, caveats) = markings.Figures(from.Select(f => (f.Level, f.Caveats)));
        var counted = from.GroupBy(f => (f.Level, f.Caveats)).Select(g => (g.Key.Level, g.Key.Caveats, g.Sum(f => f.Count))).ToList();
        return (new SpikesDto(new DateTimeOffset(end, TimeSpan.Zero), days, baselineDays, observed, threshold, classification, caveats, items), counted);
    }

    /// <summary>Incidents of one area, window part (recent or baseline) and marking: how many, and the earliest start among them.</summary>
    private sealed record SpikeTally(Guid? AreaId, bool Recent, int Classification, long Caveats, int Count, DateTime First);

    /// <summary>P(X ≥ k) for X ~ Poisson(λ), summed in log space.</summary>
    public static double PoissonUpperTail(int k, double lambda)
    {
        if (k <= 0)
        {
            return 1;
        }

        if (k > lambda)
        {
            // Far in the tail, 1 − P(X < k) loses every digit: sum the tail itself from k up.
            var logTerm = -lambda + (k * Math.Log(lambda)) - LogFactorial(k);
            double tail = 0;
            for (var i = k; i < k + 10_000; i++)
            {
                var term = Math.Exp(logTerm);
                tail += term;
                if (term < tail * 1e-17)
                {
                    break;
                }

                logTerm += Math.Log(lambda) - Math.Log(i + 1);
            }

            return Math.Clamp(tail, 0, 1);
        }

        double below = 0;
        var log = -lambda;
        for (var i = 0; i < k; i++)
        {
            below += Math.Exp(log);
            log += Math.Log(lambda) - Math.Log(i + 1);
        }

        return Math.Clamp(1 - below, 0, 1);
    }

    private static double LogFactorial(int n)
    {
        double sum = 0;
        for (var i = 2; i <= n; i++)
        {
            sum += Math.Log(i);
        }

        return sum;
    }

    private static DateTimeOffset? Utc(DateTime? at) => at is { } value ? new DateTimeOffset(DateTime.SpecifyKind(value, DateTimeKind.Utc)) : null;
}

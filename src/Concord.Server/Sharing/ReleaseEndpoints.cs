using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Sharing;

/// <summary>What a sanitised copy is released as; its actors are only those given here (the original's may name sources).</summary>
internal sealed record ReleaseRequest(MarkingDto? Marking, string? Tlp, double? GridDegrees, string? Narrative, string? Reason, IReadOnlyList<string>? Actors = null,
    string? TimePrecision = null, string? Language = null);

/// <summary>
/// Sanitised release ("tearline"): a releaser of the reporting organisation publishes a copy of a report at a lower marking,
/// with the place coarsened to a grid cell, the source removed and the narrative rewritten. The original stays untouched;
/// the copy points to it, joins the same incident, and the release is audited with its reason.
/// </summary>
internal static class ReleaseEndpoints
{
    public const double MinGrid = 0.01;
    public const double MaxGrid = 5.0;

    public static void MapReleases(this IEndpointRouteBuilder app) =>
        app.MapPost("/api/reports/{id:guid}/releases", Release).WithTags("Sharing").RequireAuthorization(Policies.Releaser)
            .WithJsonBody<ReleaseRequest>()
            .WithSummary("Publish a sanitised copy of a report at a lower marking (releasers of the reporting organisation).");

    /// <summary>The start of the hour, day (a few days: their first), week (from Monday), month or year <paramref name="at"/> falls in (UTC).</summary>
    internal static DateTime Truncate(DateTime at, TimePrecision precision) => precision switch
    {
        TimePrecision.Hour => new DateTime(at.Year, at.Month, at.Day, at.Hour, 0, 0, DateTimeKind.Utc),
        TimePrecision.Day or TimePrecision.Days => new DateTime(at.Year, at.Month, at.Day, 0, 0, 0, DateTimeKind.Utc),
        TimePrecision.Year => new DateTime(at.Year, 1, 1, 0, 0, 0, DateTimeKind.Utc),
        TimePrecision.Week => new DateTime(at.Year, at.Month, at.Day, 0, 0, 0, DateTimeKind.Utc).AddDays(-(((int)at.DayOfWeek + 6) % 7)),
        TimePrecision.Month => new DateTime(at.Year, at.Month, 1, 0, 0, 0, DateTimeKind.Utc),
        _ => at,
    };

    /// <summary>
    /// The period a time of this precision stands for, read as the calendar hour, day, week or month it falls in (a report
    /// "of the month" dated the 19th is of that month; a few days run six days from their first).
    /// </summary>
    internal static (DateTime From, DateTime To) Period(DateTime at, TimePrecision precision)
    {
        var from = Truncate(at, precision);
        // Calendar months and years: not the 31 and 366 days fusion allows for (February released as a month ran to 3 March).
        return (from, precision switch
        {
            TimePrecision.Month => from.AddMonths(1),
            TimePrecision.Year => from.AddYears(1),
            _ => from + TimePrecisions.Span(precision),
        });
    }

    /// <summary>
    /// The original's period as <see cref="Period"/> reads it, and, for a week, the seven days from its time too: a week
    /// may be given by its first day rather than the calendar week it falls in (an ACLED week, from its importer).
    /// </summary>
    internal static (DateTime From, DateTime To) OriginalPeriod(DateTime at, TimePrecision precision)
    {
        var (from, to) = Period(at, precision);
        return precision == TimePrecision.Week && at + TimePrecisions.Span(precision) > to ? (from, at + TimePrecisions.Span(precision)) : (from, to);
    }

    /// <summary>
    /// The finest precision from <paramref name="asked"/> up whose period, where the original's time falls, holds the whole
    /// of the original's: a week running into the next month, released by month, is released by year (a copy of November
    /// would leave out the days of December the event may be on, and partners would count it in the wrong month); null when
    /// none does (a period running into another year).
    /// </summary>
    internal static TimePrecision? Holding(DateTime at, TimePrecision original, TimePrecision asked)
    {
        var (from, to) = OriginalPeriod(at, original);
        foreach (var precision in new[] { asked, TimePrecision.Week, TimePrecision.Month, TimePrecision.Year })
        {
            // A week may start in the month before: both ends are held.
            if (TimePrecisions.Span(precision) >= TimePrecisions.Span(asked) && Period(at, precision) is var held && held.From <= from && held.To >= to)
            {
                return precision;
            }
        }

        return null;
    }

    /// <summary>The centre of the grid cell a coordinate falls in.</summary>
    public static double Snap(double value, double grid) => (Math.Floor(value / grid) * grid) + (grid / 2);

    private static async Task<Results<Created<ReportDto>, Ok<ReportDto>, NotFound, ProblemHttpResult>> Release(
        Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditChain chain, TimeProvider time, Fusion.FusionEngine fusion,
        IncidentGate gate, AuditWriter audit)
    {
        var original = await db.Reports.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(r => r.Id == id, context.RequestAborted);
        if (original is null)
        {
            return TypedResults.NotFound();
        }

        if (original.OrganizationId != viewer.OrganizationId)
        {
            return Problems.Forbidden("only a releaser of the reporting organisation may release its report");
        }

        var (body, problem) = await JsonBody.ReadAsync<ReleaseRequest>(context, ReportEndpoints.MaxBodyBytes);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(body!.Narrative))
        {
            errors["narrative"] = ["is required: a release is rewritten for its wider audience"];
        }
        else if (body.Narrative.Length > ReportRules.MaxNarrativeLength)
        {
            errors["narrative"] = [$"at most {ReportRules.MaxNarrativeLength} characters are allowed"];
        }

        if (string.IsNullOrWhiteSpace(body.Reason) || body.Reason.Length > 1000)
        {
            errors["reason"] = ["is required (at most 1,000 characters): the copy keeps why it was released, for those who may read the original"];
        }

        ReportRules.RejectControlCharacters(body.Narrative, "narrative", errors);
        ReportRules.RejectControlCharacters(body.Reason, "reason", errors);
        ReportRules.CheckActors(body.Actors, errors);
        if (body.Language is not null && !ReportRules.IsLanguageTag(body.Language))
        {
            errors["language"] = [$"'{Http.QueryReader.Shown(body.Language)}' is not a language tag such as en, fr or sg"];
        }

        // The time coarsened as the place is, when the releaser asks: to the hour, the day, the week or the month.
        var precision = original.ObservedPrecision;
        if (body.TimePrecision is { } asked)
        {
            if (!Enum.TryParse<TimePrecision>(asked, ignoreCase: true, out var coarser) || asked.Any(c => !char.IsAsciiLetter(c))
                || coarser is not (TimePrecision.Hour or TimePrecision.Day or TimePrecision.Week or TimePrecision.Month))
            {
                errors["timePrecision"] = ["must be one of hour, day, week, month"];
            }
            else
            {
                if (TimePrecisions.Span(coarser) > TimePrecisions.Span(precision))
                {
                    precision = coarser;
                }

                if (Holding(original.ObservedAt, original.ObservedPrecision, precision) is { } holding)
                {
                    precision = holding;
                }
                else
                {
                    var (from, to) = OriginalPeriod(original.ObservedAt, original.ObservedPrecision);
                    errors["timePrecision"] = [string.Create(CultureInfo.InvariantCulture,
                        $"the original's time ({from:yyyy-MM-dd} to {to.AddTicks(-1):yyyy-MM-dd}) runs into another year: no release time both coarsens it and holds it")];
                }
            }
        }

        var grid = body.GridDegrees ?? 0.1;
        if (!double.IsFinite(grid) || grid < MinGrid || grid > MaxGrid)
        {
            errors["gridDegrees"] = [$"must be between {MinGrid} and {MaxGrid} degrees"];
        }

        // The original's TLP unless the releaser gives another: a copy of a TLP:RED report is not TLP:AMBER by omission.
        var tlp = original.Tlp;
        if (body.Tlp is not null && !Tlps.TryParse(body.Tlp, out tlp))
        {
            errors["tlp"] = ["must be one of clear, green, amber, amber+strict, red"];
        }

        int classification = 0;
        string releasableTo = "";
        long caveats = 0;
        if (body.Marking is null)
        {
            errors["marking"] = ["is required: the marking the sanitised copy is released at"];
        }
        else
        {
            await directory.KnowCaveatsAsync(body.Marking.Caveats, context.RequestAborted);
            markings.TryRead(body.Marking, viewer, "marking", errors, out classification, out releasableTo, out caveats);
            if (await directory.UnknownCommunityAsync(releasableTo, context.RequestAborted) is { } unknown)
            {
                errors["marking.releasableTo"] = [unknown];
            }
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var now = AuditChain.Now(time);
        var latitude = Math.Clamp(Snap(original.Latitude, grid), -90, 90);
        var longitude = Math.Clamp(Snap(original.Longitude, grid), -180, 180);
        // Half the cell's diagonal, so the precision covers wherever in the cell the event was.
        var cellMeters = grid * 111_320 * Math.Sqrt(2) / 2;
        var copy = new Report
        {
            Id = Guid.CreateVersion7(),
            OrganizationId = viewer.OrganizationId,
            MemberId = viewer.MemberId,
            // Coarsened whenever asked, whatever the original's precision said: intake keeps a time as it was sent (a report
            // "of the day" may carry its time to the second), and that second, with the category and figures, matches the
            // copy to other reporting of the event.
            ObservedAt = body.TimePrecision is null ? original.ObservedAt : Truncate(original.ObservedAt, precision),
            ObservedPrecision = precision,
            Latitude = latitude,
            Longitude = longitude,
            LocationPrecisionMeters = Math.Max(original.LocationPrecisionMeters, cellMeters),
            AreaId = directory.AreaAt(latitude, longitude)?.Id,
            Category = original.Category,
            KilledCivilianLow = original.KilledCivilianLow,
            KilledCivilianBest = original.KilledCivilianBest,
            KilledCivilianHigh = original.KilledCivilianHigh,
            KilledOtherLow = original.KilledOtherLow,
            KilledOtherBest = original.KilledOtherBest,
            KilledOtherHigh = original.KilledOtherHigh,
            InjuredCivilianLow = original.InjuredCivilianLow,
            InjuredCivilianBest = original.InjuredCivilianBest,
            InjuredCivilianHigh = original.InjuredCivilianHigh,
            InjuredOtherLow = original.InjuredOtherLow,
            InjuredOtherBest = original.InjuredOtherBest,
            InjuredOtherHigh = original.InjuredOtherHigh,
            Narrative = body.Narrative!.Trim(),
            // The language of the narrative the releaser wrote, as a report's is: not the original's, which would mislabel
            // the copy and tell its readers what the source reported in (a language can point to a community).
            NarrativeLanguage = body.Language ?? ReportRules.DefaultLanguage,
            // Named actors can identify a source or an operation as surely as a narrative: the releaser names them again.
            Actors = Releasability.Encode(body.Actors?.Select(a => a.Trim()) ?? []),
            SourceReliability = original.SourceReliability,
            SourceCredibility = original.SourceCredibility,
            // Removed, not replaced by a word of the release: to those who may not read the original, the copy must not
            // tell that a report of a higher marking lies behind it (as releasedFrom is not shown to them).
            SourceDescription = null,
            ProtectedSource = null,
            Classification = classification,
            ReleasableTo = releasableTo,
            Caveats = caveats,
            Tlp = tlp,
            ReleasedFrom = original.Id,
            ReleaseReason = body.Reason!.Trim(),
            ReceivedAt = now,
            RequestHash = Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(body, JsonBody.Options))),
        };
        // The release joins the original's incident: no report fuses into it and no merge removes it meanwhile.
        using var held = await gate.EnterAsync(context.RequestAborted);
        // Linked at a time read inside the gate: a status change stored while this request waited for it is older than the
        // link, so that a viewer who sees only the copy is not shown a status judged on reports they may not see.
        var linkedAt = AuditChain.Now(time);
        var incidentId = await db.IncidentReports.Where(l => l.ReportId == original.Id).Select(l => (Guid?)l.IncidentId).FirstOrDefaultAsync(context.RequestAborted);
        // The same release sent again by its releaser (a double click, a resend after an answer lost on a weak link) is the
        // copy already made, not a second one: viewers who see only the copies would see an incident of two reports. Looked
        // for among the original's copies (inside the gate: two sends at once make one copy).
        if (await db.Reports.VisibleTo(viewer)
                .Where(r => r.ReleasedFrom == original.Id && r.MemberId == viewer.MemberId && r.RequestHash == copy.RequestHash)
                .Join(db.IncidentReports, r => r.Id, l => l.ReportId, (r, l) => new { Report = r, l.IncidentId })
                .AsNoTracking().FirstOrDefaultAsync(context.RequestAborted) is { } found)
        {
            var (sent, joined) = (found.Report, found.IncidentId);
            held.Dispose();
            // Answered with the copy: a read of it, audited as any other (as a report sent again is), but marked as the
            // original too: the entry's path and the answer's releasedFrom name it (the copy has no protected source).
            await audit.RecordReadAsync(viewer, "report", [(sent.Id, Math.Max(sent.Classification, original.Classification), sent.Caveats | original.Caveats)],
                context.Request.Path + context.Request.QueryString, time.GetUtcNow().UtcDateTime, context.RequestAborted);
            return TypedResults.Ok(sent.ToDto(joined, viewer, directory, markings, new HashSet<Guid> { original.Id }));
        }

        db.Reports.Add(copy);
        // Into a closed incident too, which is shown closed to those who see only the copy (IncidentSummary.ViewFor): a
        // copy opening an incident of its own would be routed to every organisation, and counted twice by those who see both.
        if (incidentId is { } existing)
        {
            await IncidentEndpoints.LinkAsync(db, existing, copy, linkedAt, context.RequestAborted);
        }
        else
        {
            var incident = IncidentSummary.OpenFor(copy, linkedAt);
            db.Incidents.Add(incident);
            db.IncidentReports.Add(new IncidentReport { IncidentId = incident.Id, ReportId = copy.Id, Contribution = 1.0, LinkedAt = linkedAt });
            incidentId = incident.Id;
        }

        await chain.SaveAsync(db,
        [
            Audits.Entry(viewer, AuditActions.Release, "report", original.Id, AuditMarking.Of(original).With(copy), now, Audits.Detail(new
            {
                release = copy.Id,
                reason = Audits.Words(body.Reason!.Trim()),
                gridDegrees = grid,
                from = markings.ToDto(original).Label,
                to = markings.ToDto(copy).Label,
                tlp = Tlps.Label(tlp),
            })),
            Audits.Created(viewer, copy, markings, now),
        ], CancellationToken.None);
        // The release joined or opened an incident outside the report writer: fusion's index learns of it (and of the
        // copy's words, when anyone may read it).
        fusion.Changed(await db.Incidents.AsNoTracking().SingleAsync(i => i.Id == incidentId, CancellationToken.None));
        fusion.Stored([copy]);
        held.Dispose();
        // The releaser may read the original (a release needs it): the copy names it.
        return TypedResults.Created($"/api/reports/{copy.Id}", copy.ToDto(incidentId, viewer, directory, markings, new HashSet<Guid> { original.Id }));
    }
}

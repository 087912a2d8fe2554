using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Fusion;

internal sealed record ProvenanceLinkDto(Guid ReportId, string Organization, DateTimeOffset ObservedAt, string Category, string Decision, double? Contribution, JsonElement? Scores, DateTimeOffset LinkedAt);

/// <summary>
/// A grey-band proposal. When the proposed incident holds reports the viewer may not see, the score is worked out again
/// against the incident as built from those the viewer may see (null when fusion's hard rules rule that out).
/// </summary>
internal sealed record ProposalDto(Guid Id, Guid ReportId, Guid IncidentId, Guid? ReportIncidentId, double? Score, JsonElement? Scores, DateTimeOffset CreatedAt);

internal sealed record ProvenanceDto(Guid IncidentId, IReadOnlyList<ProvenanceLinkDto> Reports, IReadOnlyList<ProposalDto> Proposals);

internal sealed record SplitIncident(IReadOnlyList<Guid>? Reports);

internal sealed record DecideProposal(string? Decision);

/// <summary>
/// Why reports are in an incident (provenance with fusion's scores), the analyst's corrections (split; merge is with the
/// incidents), and the grey-band proposals. Everything shown is limited to reports and incidents the viewer may see: a
/// proposal or link involving anything invisible to the viewer is left out, never hinted at.
/// </summary>
internal static class FusionEndpoints
{
    public static void MapFusion(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/incidents/{id:guid}/provenance", Provenance).TakesQuery().WithTags("Fusion").RequireAuthorization()
            .WithSummary("The reports you may see in an incident, how each came there (opened, fused with its scores, merged, split, accepted) and pending proposals.");
        app.MapPost("/api/incidents/{id:guid}/split", Split).WithJsonBody<SplitIncident>().WithTags("Fusion").RequireAuthorization(Policies.Analyst)
            .WithSummary("Move some of an incident's reports into a new incident (analysts).");
        app.MapGet("/api/fusion/proposals", Proposals).TakesQuery().WithTags("Fusion").RequireAuthorization(Policies.Analyst)
            .WithSummary("Reports fusion was unsure about, waiting for an analyst (those whose report and incident you may see).");
        app.MapPost("/api/fusion/proposals/{id:guid}", Decide).WithJsonBody<DecideProposal>().WithTags("Fusion").RequireAuthorization(Policies.Analyst)
            .WithSummary("Accept (the report moves to the proposed incident) or reject a proposal (analysts).");
    }

    private static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement.Clone();

    private static async Task<Results<Ok<ProvenanceDto>, NotFound>> Provenance(Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, AuditWriter audit, TimeProvider time)
    {
        var answer = await ProvenanceOf(id, context, viewer, db, directory);
        if (answer.Result is Ok<ProvenanceDto> { Value: { } provenance })
        {
            await AuditReadAsync(db, audit, viewer, provenance.Reports.Select(r => r.ReportId).Concat(provenance.Proposals.Select(p => p.ReportId)),
                provenance.Proposals.Select(p => p.IncidentId).Append(id), context, time);
        }

        return answer;
    }

    /// <summary>An incident's provenance as the viewer may see it (unaudited: a split answers with it inside its correction, which is audited).</summary>
    private static async Task<Results<Ok<ProvenanceDto>, NotFound>> ProvenanceOf(Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory)
    {
        if (!await db.VisibleIncidents(db.Incidents.AsNoTracking(), viewer).AnyAsync(i => i.Id == id, context.RequestAborted))
        {
            return TypedResults.NotFound();
        }

        var links = await LinksAsSeenAsync(db, viewer, id, RarityOf(context), context.RequestAborted);
        if (links.Count == 0)
        {
            // Merged away, or its visible reports moved, by another analyst since it was read.
            return TypedResults.NotFound();
        }

        var reportIds = links.Select(l => l.Report.Id).ToList();
        var proposals = await VisibleProposals(db, viewer, db.FusionProposals.AsNoTracking().Where(p => p.DecidedAt == null && (p.IncidentId == id || reportIds.Contains(p.ReportId))), RarityOf(context), context.RequestAborted);
        return TypedResults.Ok(new ProvenanceDto(
            id,
            links.Select(l => new ProvenanceLinkDto(l.Report.Id, directory.Organization(l.Report.OrganizationId)?.Code ?? "?", Utc(l.Report.ObservedAt), l.Report.Category,
                l.Decision, l.Contribution is { } c ? Math.Round(c, 4) : null, l.Scores is { } detail ? Parse(detail) : null, Utc(l.LinkedAt))).ToList(),
            proposals));
    }

    /// <summary>One link of an incident as a viewer may know it.</summary>
    internal sealed record LinkAsSeen(Report Report, string Decision, double? Contribution, string? Scores, DateTime LinkedAt);

    /// <summary>
    /// The links of an incident to the reports <paramref name="viewer"/> may see, oldest observation first. The stored
    /// decisions and scores may have been reached against reports the viewer may not see (a "fused" report implies an
    /// earlier one; a casualty score hints at its figures), or against reports that have left the incident since (split
    /// out, moved), so they are always worked out again from the visible reports in it now, in the order they were
    /// linked: the first opened the incident, each later one is scored against the incident built from those before it
    /// (an analyst's merge, split or acceptance keeps its name, a copy of a record an earlier one holds is "same-record").
    /// What the viewer is told then depends only on what they may see, and never on what was there before.
    /// </summary>
    internal static async Task<List<LinkAsSeen>> LinksAsSeenAsync(ConcordDb db, Viewer viewer, Guid incidentId, WordRarity rarity, CancellationToken cancellationToken)
    {
        var rows = await db.IncidentReports.AsNoTracking().Where(l => l.IncidentId == incidentId)
            .Join(db.Reports.AsNoTracking().VisibleTo(viewer), l => l.ReportId, r => r.Id, (l, r) => new { Link = l, Report = r })
            .ToListAsync(cancellationToken);
        if (rows.Count == 0)
        {
            return [];
        }

        // Merged away or emptied by another analyst between the two reads: gone for this answer too.
        if (await db.Incidents.AsNoTracking().SingleOrDefaultAsync(i => i.Id == incidentId, cancellationToken) is not { } incident)
        {
            return [];
        }

        var before = new List<Report>();
        var records = new HashSet<string>(StringComparer.Ordinal);
        // The incident as built from the reports seen so far, and their casualty figures (see below).
        FusionFeatures? features = null;
        Incident? view = null;
        var figures = new List<(int? Killed, int? Injured)>();
        var seen = new List<LinkAsSeen>();
        // Links of one writer batch (an import's) share their time: among them the store's order is the order they were
        // linked (by observation, the second of a file's two accounts could be shown as the one that opened the incident).
        foreach (var x in rows.OrderBy(x => x.Link.LinkedAt).ThenBy(x => x.Report.Number))
        {
            var analyst = x.Link.Decision is LinkDecisions.Merged or LinkDecisions.Split or LinkDecisions.Accepted;
            if (before.Count == 0)
            {
                // The first report the viewer may see opened the incident as they see it, however it came there: "merged"
                // or "split" would say the incident held (or was cut from) reports before it, which may be hidden ones.
                seen.Add(new LinkAsSeen(x.Report, LinkDecisions.New, 1.0, null, x.Link.LinkedAt));
            }
            else if (x.Link.Decision == LinkDecisions.SameRecord && x.Report.ExternalRef is { } record && records.Contains(record))
            {
                // A copy of a source record an earlier report the viewer may see also holds.
                seen.Add(new LinkAsSeen(x.Report, LinkDecisions.SameRecord, 1.0, SourceIds.SameRecordDetail(x.Report.ExternalRef!), x.Link.LinkedAt));
            }
            else
            {
                // Fusion's link, scored against what the viewer sees of the incident: under the join threshold (or not
                // scored at all) it was made through reports the viewer may not see, and is shown as linked, without scores.
                var score = FusionScorer.Score(FusionFeatures.Of(x.Report), features!, rarity);
                if (!analyst && score is not { Total: >= FusionScorer.JoinThreshold })
                {
                    score = null;
                }

                seen.Add(new LinkAsSeen(x.Report, analyst ? x.Link.Decision : score is null ? LinkDecisions.Withheld : LinkDecisions.Fused,
                    score?.Total, score?.ToJson(), x.Link.LinkedAt));
            }

            before.Add(x.Report);
            if (x.Report.ExternalRef is { } external)
            {
                records.Add(external);
            }

            // Rebuilt from every report seen so far while the incident is small; from then on grown report by report, as
            // the report writer grows a large incident (a rebuild per link made a large incident's provenance, and every
            // read of its page, quadratic in its reports).
            if (view is null || before.Count <= ReportWriter.LargeIncident)
            {
                view = IncidentSummary.Copy(incident);
                IncidentSummary.Rebuild(view, before);
            }
            else
            {
                IncidentSummary.Add(view, x.Report, figures);
            }

            figures.Add(IncidentSummary.Figures(x.Report));
            features = FusionFeatures.Of(view);
        }

        return [.. seen.OrderBy(l => l.Report.ObservedAt)];
    }

    /// <summary>What fusion compares of <paramref name="incident"/> as built from <paramref name="reports"/> only.</summary>
    private static FusionFeatures FeaturesAsBuiltFrom(Incident incident, IReadOnlyList<Report> reports)
    {
        var view = IncidentSummary.Copy(incident);
        IncidentSummary.Rebuild(view, reports);
        return FusionFeatures.Of(view);
    }

    /// <summary>Pending proposals at most, newest first, ordered then by their score as the viewer sees it.</summary>
    public const int MaxProposalsListed = 500;

    /// <summary>
    /// Pending proposals the viewer may see. Which ones are listed depends only on what the viewer may see (visibility
    /// first, then the newest <see cref="MaxProposalsListed"/>), and they are ordered by the score shown: ordered by the
    /// stored score, or cut before the visibility check, the list would tell how many proposals there are that the
    /// viewer may not see, and which shown score a hidden report raised.
    /// </summary>
    private static async Task<Ok<List<ProposalDto>>> Proposals(HttpContext context, Viewer viewer, ConcordDb db, AuditWriter audit, TimeProvider time)
    {
        var pending = db.FusionProposals.AsNoTracking().Where(p => p.DecidedAt == null);
        var listed = await VisibleProposals(db, viewer, pending, RarityOf(context), context.RequestAborted, newest: MaxProposalsListed);
        // Each score is computed from the proposed incident's reports the viewer may see: the incidents are read too.
        await AuditReadAsync(db, audit, viewer, listed.Select(p => p.ReportId), listed.Select(p => p.IncidentId), context, time);
        return TypedResults.Ok(listed.OrderByDescending(p => p.Score ?? -1).ThenByDescending(p => p.CreatedAt).ToList());
    }

    /// <summary>The words' rarity fusion decides with, for scores worked out again for a viewer (from records anyone may read).</summary>
    private static WordRarity RarityOf(HttpContext context) => context.RequestServices.GetRequiredService<FusionEngine>().Rarity;

    /// <summary>
    /// Audits the records a fusion answer names or scores against, as listing them would: its reports (ids,
    /// organisations, times, categories, scores) and the incidents they are proposed for or linked in. Incidents are
    /// audited at their marking as the viewer sees them (a mixed incident's stored marking counts reports hidden from them,
    /// as GET /api/incidents/{id} audits it).
    /// </summary>
    private static async Task AuditReadAsync(ConcordDb db, AuditWriter audit, Viewer viewer, IEnumerable<Guid> reportIds, IEnumerable<Guid> incidentIds, HttpContext context, TimeProvider time)
    {
        var reports = reportIds.Distinct().ToList();
        var incidents = incidentIds.Distinct().ToList();
        var path = context.Request.Path + context.Request.QueryString;
        if (reports.Count > 0)
        {
            var read = await db.Reports.AsNoTracking().Where(r => reports.Contains(r.Id)).Select(r => new { r.Id, r.Classification, r.Caveats }).ToListAsync(context.RequestAborted);
            await audit.RecordReadAsync(viewer, "report", read.Select(r => (r.Id, r.Classification, r.Caveats)).ToList(), path, time.GetUtcNow().UtcDateTime, context.RequestAborted);
        }

        if (incidents.Count > 0)
        {
            var stored = await db.Incidents.AsNoTracking().Where(i => incidents.Contains(i.Id)).ToListAsync(context.RequestAborted);
            var seen = await db.AsSeenByAsync(stored, viewer, context.RequestAborted);
            await audit.RecordReadAsync(viewer, "incident", Audits.Named(seen), path, time.GetUtcNow().UtcDateTime, context.RequestAborted);
        }
    }

    /// <summary>How many pages of proposals a listing scans for those the viewer is shown.</summary>
    public const int MaxPagesScanned = 20;

    /// <summary>
    /// Proposals whose report and proposed incident the viewer may both see, with the incident the report is in now, and
    /// the score worked out again from the reports of the proposed incident the viewer may see: the stored one was reached
    /// against every report the incident held then, some of which the viewer may not see or which have left it since
    /// (split out, moved by an accepted proposal). With <paramref name="newest"/>, only that many, newest first.
    /// </summary>
    private static async Task<List<ProposalDto>> VisibleProposals(ConcordDb db, Viewer viewer, IQueryable<FusionProposal> source, WordRarity rarity, CancellationToken cancellationToken, int? newest = null)
    {
        var reports = db.Reports.VisibleTo(viewer);
        var incidents = db.VisibleIncidents(db.Incidents, viewer);
        var visible = source.Where(p => reports.Any(r => r.Id == p.ReportId) && incidents.Any(i => i.Id == p.IncidentId));
        if (newest is not { } count)
        {
            return await ScoredAsync(db, reports, visible, rarity, cancellationToken);
        }

        // The newest that stay once scored, page by page: cutting before scoring would let proposals the viewer is not
        // shown take places in the list.
        var listed = new List<ProposalDto>();
        var read = new List<Guid>();
        DateTime? below = null;
        // At most MaxPagesScanned pages: pending proposals the viewer is not shown (their incidents hold reports they may
        // not see, and they score under the threshold against the others) could otherwise take every page of a long queue,
        // each query longer than the last (it names every proposal read before).
        for (var pages = 0; listed.Count < count && pages < MaxPagesScanned; pages++)
        {
            // Pages by time, never reading a proposal twice: those the writer adds meanwhile are newer than every page.
            var page = below is { } at ? visible.Where(p => p.CreatedAt <= at && !read.Contains(p.Id)) : visible;
            var keys = await page.OrderByDescending(p => p.CreatedAt).ThenByDescending(p => p.Id).Take(count)
                .Select(p => new { p.Id, p.CreatedAt }).ToListAsync(cancellationToken);
            if (keys.Count == 0)
            {
                break;
            }

            var ids = keys.Select(k => k.Id).ToList();
            read.AddRange(ids);
            // Read again under the same conditions: one decided (or merged away) since its key was read is no longer listed as pending.
            listed.AddRange((await ScoredAsync(db, reports, visible.Where(p => ids.Contains(p.Id)), rarity, cancellationToken)).OrderByDescending(p => p.CreatedAt));
            below = keys[^1].CreatedAt;
            if (keys.Count < count)
            {
                break;
            }
        }

        return listed.Take(count).ToList();
    }

    /// <summary>
    /// The proposals of <paramref name="visible"/> scored against their incidents as the viewer sees them. A pending
    /// proposal against an incident some of whose reports the viewer may not see is left out when it scores under the
    /// proposing threshold against the others (or fusion's rules rule it out): fusion proposes nothing under it, so the
    /// proposal would tell that the incident holds reports the viewer may not see. (A viewer who sees every report of the
    /// incident is shown such a proposal with its low or null score: analysts' merges and splits since it was made
    /// explain it.) Nor is one shown that was made before the first of the incident's reports the viewer may see joined
    /// it: its date would tell that the incident was there before, built from reports they may not see.
    /// </summary>
    private static async Task<List<ProposalDto>> ScoredAsync(ConcordDb db, IQueryable<Report> reports, IQueryable<FusionProposal> visible, WordRarity rarity, CancellationToken cancellationToken)
    {
        var rows = await visible
            .Select(p => new
            {
                Proposal = p,
                Current = db.IncidentReports.Where(l => l.ReportId == p.ReportId).Select(l => (Guid?)l.IncidentId).FirstOrDefault(),
            })
            .ToListAsync(cancellationToken);
        if (rows.Count == 0)
        {
            return [];
        }

        var incidentIds = rows.Select(x => x.Proposal.IncidentId).Distinct().ToList();
        var proposalReports = rows.Select(x => x.Proposal.ReportId).Distinct().ToList();
        var stored = new Dictionary<Guid, Incident>();
        var linked = new Dictionary<Guid, List<Report>>();
        // Every report linked to each incident, counted in the statement that reads the visible ones: counted apart (the
        // incident's report count, read before), a report the viewer may see joining in between made a partial view look
        // whole, and a proposal that tells of hidden reports was shown.
        var links = new Dictionary<Guid, int>();
        // When the first report the viewer may see in each incident joined it.
        var firstSeenLink = new Dictionary<Guid, DateTime>();
        foreach (var chunk in incidentIds.Chunk(500))
        {
            foreach (var incident in await db.Incidents.AsNoTracking().Where(i => chunk.Contains(i.Id)).ToListAsync(cancellationToken))
            {
                stored[incident.Id] = incident;
            }

            // Every link, with its report when the viewer may see it (a left join on the visible reports).
            foreach (var x in await db.IncidentReports.AsNoTracking().Where(l => chunk.Contains(l.IncidentId))
                .GroupJoin(reports.AsNoTracking(), l => l.ReportId, r => r.Id, (l, seen) => new { l.IncidentId, l.LinkedAt, seen })
                .SelectMany(x => x.seen.DefaultIfEmpty(), (x, r) => new { x.IncidentId, x.LinkedAt, Report = r })
                .ToListAsync(cancellationToken))
            {
                links[x.IncidentId] = links.GetValueOrDefault(x.IncidentId) + 1;
                if (x.Report is { } report)
                {
                    (linked.TryGetValue(x.IncidentId, out var list) ? list : linked[x.IncidentId] = []).Add(report);
                    if (!firstSeenLink.TryGetValue(x.IncidentId, out var first) || x.LinkedAt < first)
                    {
                        firstSeenLink[x.IncidentId] = x.LinkedAt;
                    }
                }
            }
        }

        var proposed = new Dictionary<Guid, Report>();
        foreach (var chunk in proposalReports.Chunk(500))
        {
            foreach (var report in await reports.AsNoTracking().Where(r => chunk.Contains(r.Id)).ToListAsync(cancellationToken))
            {
                proposed[report.Id] = report;
            }
        }

        // Each proposed incident is built once for the viewer, however many proposals name it.
        var built = stored.Values.Where(i => linked.TryGetValue(i.Id, out var seen) && seen.Count > 0)
            .ToDictionary(i => i.Id, i => FeaturesAsBuiltFrom(i, [.. linked[i.Id].OrderBy(r => r.Number)]));
        var scored = new List<ProposalDto>(rows.Count);
        foreach (var x in rows)
        {
            // Null when fusion's rules rule the pair out against what the viewer may see.
            var score = built.TryGetValue(x.Proposal.IncidentId, out var incident) && proposed.TryGetValue(x.Proposal.ReportId, out var report)
                ? FusionScorer.Score(FusionFeatures.Of(report), incident, rarity)
                : null;
            var partial = !linked.TryGetValue(x.Proposal.IncidentId, out var seen) || seen.Count < links.GetValueOrDefault(x.Proposal.IncidentId);
            if (x.Proposal.DecidedAt is null && partial
                && (score is not { Total: >= FusionScorer.ProposeThreshold } || x.Proposal.CreatedAt < firstSeenLink.GetValueOrDefault(x.Proposal.IncidentId)))
            {
                continue;
            }

            scored.Add(new ProposalDto(x.Proposal.Id, x.Proposal.ReportId, x.Proposal.IncidentId, x.Current,
                score is null ? null : Math.Round(score.Total, 4), score is null ? null : Parse(score.ToJson()), Utc(x.Proposal.CreatedAt)));
        }

        return scored;
    }

    private static async Task<Results<Ok<ProvenanceDto>, NotFound, ProblemHttpResult>> Split(
        Guid id, HttpContext context, Viewer viewer, ConcordDb db, MissionDirectory directory, IncidentCorrections corrections, AuditWriter audit, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<SplitIncident>(context, 64 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        Ok<ProvenanceDto>? answer = null;
        var outcome = await corrections.SplitAsync(viewer, id, body!.Reports, context.RequestAborted,
            async split => answer = (await ProvenanceOf(split.Id, context, viewer, db, directory)).Result as Ok<ProvenanceDto>);
        if (outcome.Incident is null)
        {
            return outcome.Field is null ? TypedResults.NotFound() : Problems.Field(outcome.Field, outcome.Reason!, outcome.Status);
        }

        if (answer is not { } ok)
        {
            return TypedResults.NotFound();
        }

        // The split's own entry names the incidents and the reports it moved; the answer also scores the moved reports
        // against the other incidents they are proposed for, read as GET provenance reads them.
        if (ok.Value!.Proposals.Where(p => p.IncidentId != ok.Value.IncidentId).ToList() is { Count: > 0 } elsewhere)
        {
            await AuditReadAsync(db, audit, viewer, elsewhere.Select(p => p.ReportId), elsewhere.Select(p => p.IncidentId), context, time);
        }

        return ok;
    }

    private static async Task<Results<Ok<ProposalDto>, NotFound, ProblemHttpResult>> Decide(
        Guid id, HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, FusionEngine fusion, IncidentGate gate, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<DecideProposal>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (body!.Decision is not ("accept" or "reject"))
        {
            return Problems.Field("decision", "must be accept or reject");
        }

        // An accepted proposal moves a report between incidents: no report fuses into either meanwhile.
        using var held = await gate.EnterAsync(context.RequestAborted);
        var visible = await VisibleProposals(db, viewer, db.FusionProposals.AsNoTracking().Where(p => p.Id == id), fusion.Rarity, context.RequestAborted);
        if (visible.Count == 0)
        {
            return TypedResults.NotFound();
        }

        var proposal = await db.FusionProposals.SingleAsync(p => p.Id == id, context.RequestAborted);
        if (proposal.DecidedAt is not null)
        {
            return Problems.Field("decision", $"this proposal was already {proposal.Decision}", StatusCodes.Status409Conflict);
        }

        // A closed incident takes no reports, as fusion gives it none. Judged from the status the analyst is shown: one
        // decided on reports hidden from them is not theirs to be refused by (IncidentSummary.ViewFor).
        IncidentReport? current = null;
        if (body.Decision == "accept")
        {
            var target = await db.Incidents.AsNoTracking().SingleAsync(i => i.Id == proposal.IncidentId, context.RequestAborted);
            if ((await db.AsSeenByAsync([target], viewer, context.RequestAborted)).Single().Status == IncidentStatus.Closed)
            {
                return Problems.Field("decision", "the proposed incident is closed: reopen it (set its status) before a report joins it", StatusCodes.Status409Conflict);
            }

            // Nor does a report leave a closed incident (as a closed incident is neither split nor merged into another: the
            // report would be open to fusion again, the closing lost for it).
            current = await db.IncidentReports.SingleAsync(l => l.ReportId == proposal.ReportId, context.RequestAborted);
            if (current.IncidentId != proposal.IncidentId
                && await db.Incidents.AsNoTracking().SingleAsync(i => i.Id == current.IncidentId, context.RequestAborted) is var leaving
                && (await db.AsSeenByAsync([leaving], viewer, context.RequestAborted)).Single().Status == IncidentStatus.Closed)
            {
                return Problems.Field("decision", "the report's incident is closed: reopen it (set its status) before the report leaves it", StatusCodes.Status409Conflict);
            }
        }

        var now = time.GetUtcNow().UtcDateTime;
        proposal.DecidedAt = now;
        proposal.DecidedBy = viewer.MemberId;
        proposal.Decision = body.Decision == "accept" ? "accepted" : "rejected";
        (Incident From, bool FromRemoved, Incident To)? moved = null;
        List<AuditEntry> relinked = [];
        List<FusionProposal> alsoRejected = [];
        if (body.Decision == "accept")
        {
            // A report tells of one event: the other incidents it is proposed for (a near-tie's alternatives), those this
            // analyst is shown, are rejected by the same choice. Those they are not shown stay for an analyst who is.
            var others = (await VisibleProposals(db, viewer, db.FusionProposals.AsNoTracking()
                .Where(p => p.ReportId == proposal.ReportId && p.Id != proposal.Id && p.DecidedAt == null), fusion.Rarity, context.RequestAborted)).Select(p => p.Id).ToList();
            alsoRejected = await db.FusionProposals.Where(p => others.Contains(p.Id)).ToListAsync(context.RequestAborted);
            foreach (var other in alsoRejected)
            {
                other.DecidedAt = now;
                other.DecidedBy = viewer.MemberId;
                other.Decision = "rejected";
            }

            if (current!.IncidentId != proposal.IncidentId)
            {
                moved = await MoveAsync(db, current, proposal, now, context.RequestAborted);
                if (moved.Value.FromRemoved)
                {
                    // Proposals to join the incident the report left go with the report, as after a merge.
                    await IncidentCorrections.RetargetProposalsAsync(db, viewer, proposal.IncidentId, [current.IncidentId], [proposal.ReportId], now, context.RequestAborted);
                    relinked = await IncidentCorrections.RelinkCoordinationAsync(db, viewer, moved.Value.To, [current.IncidentId], now, context.RequestAborted);
                }
            }
        }

        // The entry names the incident as well as the report: it is marked as both (as a merge's and a split's are), so that
        // an auditor cleared for the report alone does not learn of a classified incident it was matched against.
        var marking = (await db.Reports.Where(r => r.Id == proposal.ReportId).Select(r => new AuditMarking(r.Classification, r.Caveats)).SingleAsync(context.RequestAborted))
            .With(await db.Incidents.Where(i => i.Id == proposal.IncidentId).Select(i => new AuditMarking(i.Classification, i.Caveats)).SingleAsync(context.RequestAborted));
        // An accepted proposal also names the incident the report left (and whether it went, its last report gone), as a
        // merge names the incidents it removed: the audit says where every incident went. Marked as that incident too.
        if (moved is var (left, _, _))
        {
            marking = marking.With(AuditMarking.Of(left));
        }

        // And the proposals it rejected with it, marked as their incidents too.
        var rejectedIncidents = alsoRejected.Select(p => p.IncidentId).Distinct().ToList();
        foreach (var other in await db.Incidents.Where(i => rejectedIncidents.Contains(i.Id)).Select(i => new AuditMarking(i.Classification, i.Caveats)).ToListAsync(context.RequestAborted))
        {
            marking = marking.With(other);
        }

        await chain.SaveAsync(db, [Audits.Entry(viewer, AuditActions.FusionDecision, "incident", proposal.IncidentId, marking, now,
            Audits.Detail(new
            {
                proposal = proposal.Id,
                report = proposal.ReportId,
                decision = proposal.Decision,
                from = moved?.From.Id,
                removed = moved?.FromRemoved,
                rejected = alsoRejected.Count == 0 ? null : alsoRejected.Select(p => new { proposal = p.Id, incident = p.IncidentId }),
            })), .. relinked], CancellationToken.None);
        if (moved is var (from, fromRemoved, to))
        {
            // Both incidents changed; the one the report left is gone when it was its only report.
            fusion.Changed(IncidentSummary.Copy(to));
            if (fromRemoved)
            {
                fusion.Removed(from.Id);
            }
            else
            {
                fusion.Changed(IncidentSummary.Copy(from));
            }
        }

        // Built before the gate opens: another analyst's merge or split could otherwise take the proposal's incident away first.
        var decided = (await VisibleProposals(db, viewer, db.FusionProposals.AsNoTracking().Where(p => p.Id == id), fusion.Rarity, context.RequestAborted)).Single();
        held.Dispose();
        return TypedResults.Ok(decided);
    }

    /// <summary>Moves the report to the proposed incident; the incident it leaves is rebuilt, or removed when it is left empty.</summary>
    private static async Task<(Incident From, bool FromRemoved, Incident To)> MoveAsync(ConcordDb db, IncidentReport current, FusionProposal proposal, DateTime now, CancellationToken cancellationToken)
    {
        var from = await db.Incidents.SingleAsync(i => i.Id == current.IncidentId, cancellationToken);
        var to = await db.Incidents.SingleAsync(i => i.Id == proposal.IncidentId, cancellationToken);
        db.IncidentReports.Remove(current);
        db.IncidentReports.Add(new IncidentReport
        {
            IncidentId = to.Id,
            ReportId = proposal.ReportId,
            Contribution = proposal.Score,
            LinkedAt = now,
            Decision = LinkDecisions.Accepted,
            ScoreDetail = proposal.ScoreDetail,
        });
        var staying = await db.IncidentReports.Where(l => l.IncidentId == from.Id && l.ReportId != proposal.ReportId).Select(l => new { l.ReportId, l.LinkedAt }).ToListAsync(cancellationToken);
        var remaining = staying.Select(l => l.ReportId).ToList();
        if (remaining.Count == 0)
        {
            // The change row of its deletion names the report it held (Change.Causes).
            from.Causes.Add(proposal.ReportId);
            db.Incidents.Remove(from);
        }
        else
        {
            IncidentSummary.Rebuild(from, await IncidentSummary.ReportsAsync(db, remaining, cancellationToken));
            IncidentSummary.ForgetStatusDecidedBefore(from, staying.Select(l => l.LinkedAt));
            // A report leaving is not a change of the time: for a viewer who may not see it, nothing happened.
            from.UpdatedAt = IncidentSummary.LastChange(from, staying.Select(l => l.LinkedAt));
            from.Departed.Add(proposal.ReportId);
        }

        var joined = await db.IncidentReports.Where(l => l.IncidentId == to.Id).Select(l => l.ReportId).ToListAsync(cancellationToken);
        joined.Add(proposal.ReportId);
        IncidentSummary.Rebuild(to, await IncidentSummary.ReportsAsync(db, joined, cancellationToken));
        to.UpdatedAt = now;
        to.Causes.Add(proposal.ReportId);
        return (from, remaining.Count == 0, to);
    }

    private static DateTimeOffset Utc(DateTime at) => new(DateTime.SpecifyKind(at, DateTimeKind.Utc));
}

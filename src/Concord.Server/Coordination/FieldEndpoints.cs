using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Http;
using Concord.Server.Organizations;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>Joint patrols, coordination meetings (with action items that become tasks) and the liaison log.</summary>
internal static class FieldEndpoints
{
    /// <summary>Members one patrol names: each is looked up in the store.</summary>
    public const int MaxPatrolMembers = 50;

    /// <summary>Action items one meeting records: each becomes a task.</summary>
    public const int MaxActionItems = 100;

    public static void MapCoordinationField(this IEndpointRouteBuilder app)
    {
        var patrols = app.MapGroup("/api/patrols").WithTags("Coordination").RequireAuthorization();
        patrols.MapGet("/", ListPatrols)
            .WithQueryParameter("from", "only patrols ending at or after this time (ISO 8601)")
            .WithQueryParameter("to", "only patrols starting at or before this time (ISO 8601)")
            .WithPage()
            .TakesQuery(["from", "to", .. CoordinationPages.Parameters])
            .WithSummary("Joint patrols you may see, the latest start first, a page at a time.");
        patrols.MapGet("/{id:guid}", GetPatrol).WithSummary("One patrol with the latest TAK tracks of its members that you may see.");
        patrols.MapPost("/", CreatePatrol).WithJsonBody<NewPatrol>().WithSummary("Plan a joint patrol: organisations, members, route, schedule.");
        patrols.MapPost("/{id:guid}/status", SetPatrolStatus).WithJsonBody<StatusChange>().WithSummary("Move a patrol: planned → under-way, or cancelled (participants).");
        patrols.MapPost("/{id:guid}/report", ReportPatrol).WithJsonBody<PatrolReport>().WithSummary("File the patrol report: it becomes a Concord report and completes the patrol.");

        var meetings = app.MapGroup("/api/meetings").WithTags("Coordination").RequireAuthorization();
        meetings.MapGet("/", ListMeetings).WithPage().TakesQuery(CoordinationPages.Parameters).WithSummary("Coordination meetings you may see, newest first, a page at a time.");
        meetings.MapGet("/{id:guid}", GetMeeting).WithSummary("One meeting with its decisions and action items.");
        meetings.MapPost("/", CreateMeeting).WithJsonBody<NewMeeting>().WithSummary("Record a meeting: participants, decisions; each action item becomes a task.");

        var liaison = app.MapGroup("/api/liaison").WithTags("Coordination").RequireAuthorization();
        liaison.MapGet("/", ListLiaison).WithPage().TakesQuery(["organization", .. CoordinationPages.Parameters])
            .WithSummary("The liaison log you may see, newest first (optionally with one organisation), a page at a time.");
        liaison.MapGet("/{id:guid}", GetLiaison).WithSummary("One entry of the liaison log, if you may see it.");
        liaison.MapPost("/", CreateLiaison).WithJsonBody<NewLiaison>().WithSummary("Log a contact with another organisation or a local counterpart.");
    }

    /// <summary>A patrol as its viewer sees it: its report named only if they may read it (read first: <see cref="CoordinationDesk.SeeReportsAsync"/>).</summary>
    private static PatrolDto ToDto(Patrol p, CoordinationDesk desk, IReadOnlyList<PatrolTrackDto>? tracks = null) => new(
        p.Id, p.Name, CoordinationDesk.Codes(p.Organizations), Releasability.Decode(p.Members), JsonSerializer.Deserialize<List<double[]>>(p.RouteJson) ?? [],
        CoordinationDesk.Utc(p.StartsAt), CoordinationDesk.Utc(p.EndsAt), p.Status, p.Reason, desk.Link(CoordinationDesk.LinkKind.Report, p.ReportId), p.CreatedBy, CoordinationDesk.Utc(p.UpdatedAt),
        desk.Markings.ToDto(p), tracks);

    private static async Task<Results<Ok<Page<PatrolDto>>, ProblemHttpResult>> ListPatrols(HttpContext context, Viewer viewer, CoordinationDesk desk, CursorKeys cursors)
    {
        var query = new QueryReader(context.Request.Query);
        var (from, to) = (query.Time("from"), query.Until("to"));
        var (limit, after) = CoordinationPages.Read(query, cursors.For(CursorListings.Patrols));
        if (from > to)
        {
            query.Errors["from"] = ["must not be after 'to'"];
        }

        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var patrols = desk.Db.Patrols.AsNoTracking().VisibleTo(viewer);
        patrols = from is { } f ? patrols.Where(p => p.EndsAt >= f.UtcDateTime) : patrols;
        patrols = to is { } t ? patrols.Where(p => p.StartsAt <= t.UtcDateTime) : patrols;
        if (after is { At: var at, Number: var number })
        {
            patrols = patrols.Where(p => p.StartsAt < at || (p.StartsAt == at && p.Number < number));
        }

        var (page, next) = await CoordinationPages.TakeAsync(patrols.OrderByDescending(p => p.StartsAt).ThenByDescending(p => p.Number), limit,
            p => new Cursor(p.StartsAt, p.Number), context.RequestAborted);
        await desk.AuditReadAsync(viewer, "patrol", Audits.Named(page), context);
        await desk.SeeReportsAsync(viewer, page, context.RequestAborted);
        return TypedResults.Ok(new Page<PatrolDto>(page.Select(p => ToDto(p, desk)).ToList(), next?.Encode(cursors.For(CursorListings.Patrols))));
    }

    private static async Task<Results<Ok<PatrolDto>, NotFound>> GetPatrol(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var patrol = await desk.Db.Patrols.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(p => p.Id == id, context.RequestAborted);
        if (patrol is null)
        {
            return TypedResults.NotFound();
        }

        // The patrol's tracks are its members' current TAK tracks (as on the map: a stale one is no position), each shown
        // only if the viewer may see it, and read like any track: classified ones named in the audit.
        var names = Releasability.Decode(patrol.Members).ToList();
        var now = desk.Now;
        var tracks = await desk.Db.Tracks.AsNoTracking().Where(t => t.StaleAt > now).VisibleTo(viewer)
            .Join(desk.Db.Members.Where(m => names.Contains(m.UserName)), t => t.MemberId, m => m.Id, (t, m) => new { t, m.UserName })
            .ToListAsync(context.RequestAborted);
        await desk.AuditReadAsync(viewer, "patrol", Audits.Named([patrol]), context);
        await desk.AuditReadAsync(viewer, "track", tracks.Select(x => (x.t.Uid, x.t.Classification, x.t.Caveats)).ToList(), context);
        await desk.SeeReportsAsync(viewer, [patrol], context.RequestAborted);
        return TypedResults.Ok(ToDto(patrol, desk, tracks.Select(x => new PatrolTrackDto(x.t.Uid, x.t.Callsign, x.UserName, x.t.Latitude, x.t.Longitude,
            CoordinationDesk.Utc(x.t.ObservedAt))).ToList()));
    }

    private static async Task<Results<Created<PatrolDto>, Ok<PatrolDto>, ProblemHttpResult>> CreatePatrol(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewPatrol>(context, 256 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        return await ClientIds.OnceAsync(body!.Id, badId => badId, () => PatrolRetriedAsync(desk, body, viewer, context), () => CreatePatrolAsync(context, viewer, desk, body));
    }

    /// <summary>The answer to a patrol whose id is stored already: the stored patrol when this member planned it with the same name and schedule; else a 409 on <c>id</c>.</summary>
    private static async Task<Results<Created<PatrolDto>, Ok<PatrolDto>, ProblemHttpResult>?> PatrolRetriedAsync(CoordinationDesk desk, NewPatrol body, Viewer viewer, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        if (body.Id is not { } id || await desk.Db.Patrols.AsNoTracking().SingleOrDefaultAsync(p => p.Id == id, cancellationToken) is not { } stored)
        {
            return null;
        }

        if (!ClientIds.IsRetry(stored, viewer, stored.CreatedBy == viewer.UserName && stored.Name == body.Name?.Trim()
            && ClientIds.SameTime(stored.StartsAt, body.StartsAt) && ClientIds.SameTime(stored.EndsAt, body.EndsAt)
            && ClientIds.SameOrganizations(stored.Organizations, body.Organizations, viewer)))
        {
            return ClientIds.Taken("patrol");
        }

        await desk.AuditReadAsync(viewer, "patrol", Audits.Named([stored]), context);
        await desk.SeeReportsAsync(viewer, [stored], context.RequestAborted);
        return TypedResults.Ok(ToDto(stored, desk));
    }

    /// <summary>
    /// The viewer's own organisation; the directory is read again (at once: a signed-in member's organisation is in the store)
    /// when it does not hold it yet.
    /// </summary>
    private static async Task<Organization> OwnOrganizationAsync(Viewer viewer, CoordinationDesk desk, CancellationToken cancellationToken)
    {
        if (desk.Directory.Organization(viewer.OrganizationId) is { } known)
        {
            return known;
        }

        await desk.Directory.ReloadAsync(force: true, cancellationToken);
        return desk.Directory.Organization(viewer.OrganizationId)
            ?? throw new InvalidOperationException($"the organisation {viewer.OrganizationCode} of a signed-in member is not in the store");
    }

    private static async Task<Results<Created<PatrolDto>, Ok<PatrolDto>, ProblemHttpResult>> CreatePatrolAsync(HttpContext context, Viewer viewer, CoordinationDesk desk, NewPatrol body)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        CoordinationDesk.TryText(body.Name, "name", 3, 200, errors, out var name);
        var organizations = await OrganizationsAsync(body.Organizations, "organizations", desk, errors, context.RequestAborted);
        if (!organizations.Any(o => o.Id == viewer.OrganizationId))
        {
            // By code: one by id is not reloaded, and an organisation added by another node or the command line moments ago
            // is not in the directory yet (the insert of a null failed as a server error).
            organizations.Insert(0, await OwnOrganizationAsync(viewer, desk, context.RequestAborted));
        }

        var members = new List<string>();
        string? notMember = null;
        if (body.Members?.Count > MaxPatrolMembers)
        {
            errors["members"] = [$"at most {MaxPatrolMembers} members"];
        }

        foreach (var given in (body.Members ?? []).Take(MaxPatrolMembers))
        {
            // Sign-in names are kept in lower case (as the member directory reads them): "Alice" is alice.
            var user = given?.Trim().ToLowerInvariant() ?? "";
            // PostgreSQL refuses a NUL in a query's text (a 500): a name with a control character names nobody.
            var member = Reports.ReportRules.ControlCharacterProblem(user) is null
                ? await desk.Db.Members.AsNoTracking().SingleOrDefaultAsync(m => m.UserName == user, context.RequestAborted)
                : null;
            if (member is null || member.Disabled || organizations.All(o => o.Id != member.OrganizationId))
            {
                notMember ??= user;
            }
            else
            {
                members.Add(member.UserName);
            }
        }

        var route = CoordinationDesk.RouteJson(body.Route, "route", errors);
        if (body.Route is null)
        {
            errors["route"] = ["is required: 2 to 500 points [longitude, latitude]"];
        }

        if (body.StartsAt is null)
        {
            errors["startsAt"] = ["is required"];
        }

        desk.CheckTime(body.StartsAt, "startsAt", errors);
        if (body.EndsAt is null || body.EndsAt <= body.StartsAt || body.EndsAt - body.StartsAt > TimeSpan.FromDays(30))
        {
            errors["endsAt"] = ["is required, after startsAt and within 30 days of it"];
        }

        // (An end after a start refused is within days of it: only the start is named.)
        if (!errors.ContainsKey("startsAt"))
        {
            desk.CheckTime(body.EndsAt, "endsAt", errors);
        }

        var (markingOk, marking) = await desk.TryMarkingAsync(body.Marking, viewer, organizations.Select(o => Community.Organization(o.Code)),
            organizations.Select(o => (o, "organizations")).ToList(), errors, context.RequestAborted, judgeReaders: notMember is null);
        // The members are judged last, once everything else would be accepted, with one refusal whatever the reason (no such
        // name, another organisation's member, a disabled account), as a task's assignee is: judged alongside other errors,
        // a request bound to fail would tell who is an active member of an organisation without making anything.
        if (markingOk && errors.Count == 0 && notMember is not null)
        {
            errors["members"] = [$"'{notMember}' is not an active member of a participating organisation"];
        }

        if (!markingOk || errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var now = desk.Now;
        var patrol = new Patrol
        {
            Id = body.Id ?? Guid.CreateVersion7(),
            Name = name,
            Organizations = Releasability.Encode(organizations.Select(o => Community.Organization(o.Code))),
            Members = Releasability.Encode(members),
            RouteJson = route!,
            StartsAt = AuditChain.Truncate(body.StartsAt!.Value.UtcDateTime),
            EndsAt = AuditChain.Truncate(body.EndsAt!.Value.UtcDateTime),
            Status = PatrolStatuses.Planned,
            CreatedBy = viewer.UserName,
            CreatedAt = now,
            UpdatedAt = now,
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
        };
        desk.Db.Patrols.Add(patrol);
        await desk.SaveAsync([desk.Audit(viewer, AuditActions.Create, "patrol", patrol.Id, AuditMarking.Of(patrol), new { name = Audits.Words(name), organizations = organizations.Select(o => o.Code), members })], context.RequestAborted);
        return TypedResults.Created($"/api/patrols/{patrol.Id}", ToDto(patrol, desk));
    }

    private static async Task<Results<Ok<PatrolDto>, NotFound, ProblemHttpResult>> SetPatrolStatus(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<StatusChange>(context, 16 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var patrol = await desk.Db.Patrols.VisibleTo(viewer).SingleOrDefaultAsync(p => p.Id == id, context.RequestAborted);
        if (patrol is null)
        {
            return TypedResults.NotFound();
        }

        var to = body!.Status ?? "";
        if (to is not (PatrolStatuses.UnderWay or PatrolStatuses.Cancelled))
        {
            return Problems.Field("status", "must be under-way or cancelled (a patrol completes with its report)");
        }

        if (!Participates(patrol, viewer))
        {
            return Problems.Forbidden("only participating organisations move a patrol");
        }

        if (!PatrolStatuses.CanMove(patrol.Status, to))
        {
            return Problems.Field("status", $"a patrol cannot go from {patrol.Status} to {to}", StatusCodes.Status409Conflict);
        }

        if (CoordinationDesk.ReasonProblem(body.Reason, declining: false, "patrol", out var reason) is { } refused)
        {
            return refused;
        }

        var from = patrol.Status;
        patrol.Status = to;
        // The reason of this move (none given: none shown, rather than the last move's under this one).
        patrol.Reason = string.IsNullOrEmpty(reason) ? null : reason;
        patrol.UpdatedAt = desk.Now;
        await desk.SaveAsync([desk.Audit(viewer, AuditActions.Status, "patrol", patrol.Id, AuditMarking.Of(patrol), new { from, to, reason = Audits.Words(reason) })], context.RequestAborted);
        await desk.SeeReportsAsync(viewer, [patrol], context.RequestAborted);
        return TypedResults.Ok(ToDto(patrol, desk));
    }

    private static async Task<Results<Created<PatrolDto>, NotFound, ProblemHttpResult>> ReportPatrol(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk, ReportIntake intake, Data.DeploymentKeys keys)
    {
        var (body, problem) = await JsonBody.ReadAsync<PatrolReport>(context, 64 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var patrol = await desk.Db.Patrols.VisibleTo(viewer).SingleOrDefaultAsync(p => p.Id == id, context.RequestAborted);
        if (patrol is null)
        {
            return TypedResults.NotFound();
        }

        // No administrator's exception here: the report becomes one of the reporting organisation's, with its account.
        if (!Participates(patrol, viewer, administratorsToo: false))
        {
            return Problems.Forbidden("only participating organisations report on a patrol");
        }

        if (!PatrolStatuses.CanMove(patrol.Status, PatrolStatuses.Completed))
        {
            return Problems.Field("status", $"the patrol is {patrol.Status}; its report was filed or it was cancelled", StatusCodes.Status409Conflict);
        }

        // The report is a Concord report like any other (validated, marked, fused); by default it is placed at the route's end
        // and marked as the patrol is. Its id derives from the patrol's, so a resubmission after a dropped link finds the same
        // report, under the deployment's key, so that nobody who sees the patrol can take the id first (and block its report).
        var route = JsonSerializer.Deserialize<List<double[]>>(patrol.RouteJson)!;
        var last = route[^1];
        var report = new CreateReport
        {
            Id = SourceIds.OfPatrol(await keys.SourceIdsAsync(context.RequestAborted), patrol.Id),
            ObservedAt = body!.ObservedAt ?? desk.Now,
            ObservedPrecision = "hour",
            Location = new LocationInput(body.Location?.Latitude ?? last[1], body.Location?.Longitude ?? last[0], 1000, null),
            Category = body.Category,
            Narrative = $"Patrol {patrol.Name}: {body.Narrative}",
            Language = body.Language ?? "en",
            Source = new SourceInput("B", 2, $"joint patrol {patrol.Name}", null),
            Marking = desk.Markings.ToDto(patrol),
        };
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        CoordinationDesk.TryText(body.Narrative, "narrative", 3, CoordinationDesk.MaxText, errors, out _);
        // A place given is given whole: half of one completed from the route's end would be a place nobody reported.
        if (body.Location is { Latitude: null } or { Longitude: null })
        {
            errors[body.Location.Latitude is null ? "location.latitude" : "location.longitude"] = ["is required when location is given (or leave location out: the route's end)"];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        // The report is stored first, then the patrol completed: a request cut in between (a dropped link) left the report
        // filed and the patrol open. Only this endpoint makes the patrol's report id, so a report with it is that report,
        // whoever sends again and whatever their narrative or time now: the patrol is completed with it.
        var reportId = report.Id!.Value;
        if (!await desk.Db.Reports.AnyAsync(r => r.Id == reportId, context.RequestAborted))
        {
            var outcome = await intake.CreateAsync(report, viewer, context.RequestAborted, idMadeByServer: true);
            if (outcome is ReportIntake.Outcome.Invalid { Errors: var refused } && refused.Keys.SequenceEqual(["marking"])
                && await StricterOfBothAsync(report.Marking!, body.Category, viewer, desk, context.RequestAborted) is { } both)
            {
                // The patrol's marking is looser than the author's organisation agreed for reports of this category, and
                // only a releaser may loosen it: the report takes the stricter of the two in every part (the caller has no
                // marking to give, and the patrol is not to stay open for it). Never the agreement's alone: a patrol
                // marked higher or for fewer than the agreement would see its report go lower or wider.
                outcome = await intake.CreateAsync(report with { Marking = both }, viewer, context.RequestAborted, idMadeByServer: true);
            }

            switch (outcome)
            {
                case ReportIntake.Outcome.Created or ReportIntake.Outcome.Existing:
                    break;
                case ReportIntake.Outcome.Invalid invalid:
                    return Problems.Invalid(invalid.Errors);
                case ReportIntake.Outcome.Conflict conflict:
                    if (!await desk.Db.Reports.AnyAsync(r => r.Id == reportId, context.RequestAborted))
                    {
                        return Problems.Conflict(conflict.Reason);
                    }

                    // Another participant's request filed it a moment ago.
                    break;
                default:
                    throw new InvalidOperationException("unknown outcome");
            }
        }

        patrol.Status = PatrolStatuses.Completed;
        // A move of its own: the last move's reason (left late) is not this one's.
        patrol.Reason = null;
        patrol.ReportId = reportId;
        patrol.UpdatedAt = desk.Now;
        // The entry names the report: marked as it too (it may be marked stricter than the patrol), so that an auditor who
        // may read the patrol and not the report does not read its id.
        var filed = await desk.Db.Reports.AsNoTracking().Where(r => r.Id == reportId).Select(r => new { r.Classification, r.Caveats }).SingleAsync(CancellationToken.None);
        // Not cancelled with the request once the report is stored: the patrol is completed with it.
        try
        {
            await desk.SaveAsync([desk.Audit(viewer, AuditActions.Status, "patrol", patrol.Id, AuditMarking.Of(patrol).With(new AuditMarking(filed.Classification, filed.Caveats)),
                new { to = PatrolStatuses.Completed, report = reportId })], CancellationToken.None);
        }
        catch (DbUpdateConcurrencyException)
        {
            // Moved meanwhile. Completed with this report by another participant filing it at the same moment: that is this
            // request's outcome too. Cancelled (or anything else): a 409 (the report stays filed, as a report).
            var now = await desk.Db.Patrols.AsNoTracking().SingleAsync(p => p.Id == patrol.Id, CancellationToken.None);
            if (now.Status != PatrolStatuses.Completed || now.ReportId != reportId)
            {
                throw;
            }

            await desk.SeeReportsAsync(viewer, [now], CancellationToken.None);
            return TypedResults.Created(FiledAt(now, desk), ToDto(now, desk));
        }

        await desk.SeeReportsAsync(viewer, [patrol], CancellationToken.None);
        return TypedResults.Created(FiledAt(patrol, desk), ToDto(patrol, desk));
    }

    /// <summary>
    /// Where a filed patrol report is: the report, to those who may read it; else the patrol (filing again after a dropped
    /// link finds the report another participant filed, which may be marked stricter than the patrol).
    /// </summary>
    private static string FiledAt(Patrol patrol, CoordinationDesk desk) => desk.Link(CoordinationDesk.LinkKind.Report, patrol.ReportId) is { } report ? $"/api/reports/{report}" : $"/api/patrols/{patrol.Id}";

    /// <summary>Whether the viewer's organisation takes part in the patrol (or, to move it, the viewer is a mission administrator).</summary>
    private static bool Participates(Patrol patrol, Viewer viewer, bool administratorsToo = true) =>
        patrol.Organizations.Contains(Releasability.Pattern(Community.Organization(viewer.OrganizationCode)), StringComparison.Ordinal)
        || (administratorsToo && viewer.HasRole(MemberRoles.MissionAdmin));

    private static async Task<List<Organization>> OrganizationsAsync(IReadOnlyList<string>? codes, string field, CoordinationDesk desk, Dictionary<string, string[]> errors, CancellationToken cancellationToken)
    {
        var organizations = new List<Organization>();
        foreach (var code in codes ?? [])
        {
            if (string.IsNullOrWhiteSpace(code))
            {
                errors[field] = ["holds an empty organisation code (or null)"];
            }
            else if (await desk.Directory.OrganizationAsync(code, cancellationToken) is { } organization)
            {
                if (!organizations.Contains(organization))
                {
                    organizations.Add(organization);
                }
            }
            else
            {
                errors[field] = [$"no organisation has the code '{code}'"];
            }
        }

        return organizations;
    }

    /// <summary>
    /// The marking no looser than the patrol's nor than the one the author's organisation agreed for reports of
    /// <paramref name="category"/>: the higher level, every caveat of both, and the communities one of them names that the
    /// other holds (<see cref="Community.Covers"/>). Null when no agreement applies or no community is in both.
    /// </summary>
    private static async Task<MarkingDto?> StricterOfBothAsync(MarkingDto patrol, string? category, Viewer viewer, CoordinationDesk desk, CancellationToken cancellationToken)
    {
        var scheme = desk.Markings.Scheme;
        if (category is null || !scheme.TryParse(patrol.Classification, out var level)
            || Sharing.AgreementDecisions.Resolve(await desk.Directory.AgreementsAsync(cancellationToken), viewer.OrganizationCode, viewer.OrganizationKind, category, scheme) is not { } agreed)
        {
            return null;
        }

        Organizations.Organization? ByCode(string code) => desk.Directory.Organizations.FirstOrDefault(o => o.Code == code);
        var communities = patrol.ReleasableTo.Where(p => agreed.ReleasableTo.Any(a => Community.Covers(a, p, ByCode)))
            .Concat(agreed.ReleasableTo.Where(a => patrol.ReleasableTo.Any(p => Community.Covers(p, a, ByCode))))
            .Distinct(StringComparer.Ordinal).ToList();
        return communities.Count == 0 ? null
            : new MarkingDto(scheme.Label(Math.Max(level, agreed.Classification)), communities, patrol.Caveats.Union(agreed.Caveats, StringComparer.OrdinalIgnoreCase).ToList());
    }

    private static MeetingDto ToDto(Meeting m, CoordinationDesk desk, IReadOnlyList<TaskDto>? actions = null) => new(
        m.Id, m.Title, CoordinationDesk.Utc(m.HeldAt), m.Place, CoordinationDesk.Codes(m.Participants),
        JsonSerializer.Deserialize<List<string>>(m.DecisionsJson) ?? [], m.CreatedBy, desk.Markings.ToDto(m), actions);

    private static async Task<Results<Ok<Page<MeetingDto>>, ProblemHttpResult>> ListMeetings(HttpContext context, Viewer viewer, CoordinationDesk desk, CursorKeys cursors)
    {
        var query = new QueryReader(context.Request.Query);
        var (limit, after) = CoordinationPages.Read(query, cursors.For(CursorListings.Meetings));
        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var meetings = desk.Db.Meetings.AsNoTracking().VisibleTo(viewer);
        if (after is { At: var at, Number: var number })
        {
            meetings = meetings.Where(m => m.HeldAt < at || (m.HeldAt == at && m.Number < number));
        }

        var (page, next) = await CoordinationPages.TakeAsync(meetings.OrderByDescending(m => m.HeldAt).ThenByDescending(m => m.Number), limit,
            m => new Cursor(m.HeldAt, m.Number), context.RequestAborted);
        await desk.AuditReadAsync(viewer, "meeting", Audits.Named(page), context);
        return TypedResults.Ok(new Page<MeetingDto>(page.Select(m => ToDto(m, desk)).ToList(), next?.Encode(cursors.For(CursorListings.Meetings))));
    }

    private static async Task<Results<Ok<MeetingDto>, NotFound>> GetMeeting(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var meeting = await desk.Db.Meetings.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(m => m.Id == id, context.RequestAborted);
        if (meeting is null)
        {
            return TypedResults.NotFound();
        }

        var tasks = await desk.Db.Tasks.AsNoTracking().VisibleTo(viewer).Where(t => t.MeetingId == id).OrderBy(t => t.Number).ToListAsync(context.RequestAborted);
        await desk.AuditReadAsync(viewer, "meeting", Audits.Named([meeting]), context);
        // The meeting's action items are tasks, shown with it: read like tasks.
        await desk.AuditReadAsync(viewer, "task", Audits.Named(tasks), context);
        await desk.SeeLinksAsync(viewer, tasks, [], context.RequestAborted);
        return TypedResults.Ok(ToDto(meeting, desk, tasks.Select(t => desk.ToDto(t, viewer, new Dictionary<Guid, string>())).ToList()));
    }

    private static async Task<Results<Created<MeetingDto>, Ok<MeetingDto>, ProblemHttpResult>> CreateMeeting(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewMeeting>(context, 256 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        return await ClientIds.OnceAsync<Results<Created<MeetingDto>, Ok<MeetingDto>, ProblemHttpResult>>(body!.Id, badId => badId, () => MeetingRetriedAsync(desk, body, viewer, context), async () =>
            {
                var (meeting, tasks, refused) = await CreateMeetingAsync(desk, body, viewer, context.RequestAborted);
                if (refused is not null)
                {
                    return refused;
                }

                await desk.SeeLinksAsync(viewer, tasks, [], context.RequestAborted);
                return TypedResults.Created($"/api/meetings/{meeting!.Id}", ToDto(meeting, desk, tasks.Select(t => desk.ToDto(t, viewer, new Dictionary<Guid, string>())).ToList()));
            });
    }

    /// <summary>
    /// The answer to a meeting whose id is stored already: the stored meeting with its action items when this member
    /// recorded it with the same title and time; else a 409 on <c>id</c>.
    /// </summary>
    private static async Task<Results<Created<MeetingDto>, Ok<MeetingDto>, ProblemHttpResult>?> MeetingRetriedAsync(CoordinationDesk desk, NewMeeting body, Viewer viewer, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        if (body.Id is not { } id || await desk.Db.Meetings.AsNoTracking().SingleOrDefaultAsync(m => m.Id == id, cancellationToken) is not { } stored)
        {
            return null;
        }

        if (!ClientIds.IsRetry(stored, viewer, stored.CreatedBy == viewer.UserName && stored.Title == body.Title?.Trim() && ClientIds.SameTime(stored.HeldAt, body.HeldAt)
            && ClientIds.SameOrganizations(stored.Participants, body.Participants, viewer)))
        {
            return ClientIds.Taken("meeting");
        }

        var tasks = await desk.Db.Tasks.AsNoTracking().VisibleTo(viewer).Where(t => t.MeetingId == id).OrderBy(t => t.Number).ToListAsync(cancellationToken);
        await desk.AuditReadAsync(viewer, "meeting", Audits.Named([stored]), context);
        await desk.AuditReadAsync(viewer, "task", Audits.Named(tasks), context);
        await desk.SeeLinksAsync(viewer, tasks, [], cancellationToken);
        return TypedResults.Ok(ToDto(stored, desk, tasks.Select(t => desk.ToDto(t, viewer, new Dictionary<Guid, string>())).ToList()));
    }

    /// <summary>Validates and stores a meeting with a task per action item (the API's and the demo's way in).</summary>
    internal static async Task<(Meeting? Meeting, List<CoordinationTask> Tasks, ProblemHttpResult? Problem)> CreateMeetingAsync(
        CoordinationDesk desk, NewMeeting body, Viewer viewer, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        CoordinationDesk.TryText(body.Title, "title", 3, 300, errors, out var title);
        CoordinationDesk.TryText(body.Place, "place", 0, 300, errors, out var place);
        if (body.HeldAt is null)
        {
            errors["heldAt"] = ["is required"];
        }

        desk.CheckTime(body.HeldAt, "heldAt", errors);

        var participants = await OrganizationsAsync(body.Participants, "participants", desk, errors, cancellationToken);
        if (!participants.Any(o => o.Id == viewer.OrganizationId))
        {
            participants.Insert(0, await OwnOrganizationAsync(viewer, desk, cancellationToken));
        }

        var decisions = (body.Decisions ?? []).Select(d => d?.Trim() ?? "").ToList();
        if (decisions.Count > 100 || decisions.Any(d => d.Length is 0 or > CoordinationDesk.MaxText))
        {
            errors["decisions"] = [$"at most 100 decisions, each 1 to {CoordinationDesk.MaxText} characters"];
        }

        for (var i = 0; i < decisions.Count; i++)
        {
            Reports.ReportRules.RejectControlCharacters(decisions[i], $"decisions[{i}]", errors);
        }

        var now = desk.Now;
        var items = body.ActionItems ?? [];
        if (items.Count > MaxActionItems)
        {
            errors["actionItems"] = [$"at most {MaxActionItems} action items (each becomes a task)"];
            items = [.. items.Take(MaxActionItems)];
        }

        var assignees = new List<Organization>();
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            CoordinationDesk.TryText(item.Title, $"actionItems[{i}].title", 3, 300, errors, out _);
            if (await desk.Directory.OrganizationAsync(item.Organization ?? "", cancellationToken) is { } organization)
            {
                assignees.Add(organization);
            }
            else
            {
                errors[$"actionItems[{i}].organization"] = [$"no organisation has the code '{item.Organization}'"];
            }

            if (item.DueAt is { } due && due.UtcDateTime <= now)
            {
                errors[$"actionItems[{i}].dueAt"] = ["must be in the future"];
            }

            desk.CheckTime(item.DueAt, $"actionItems[{i}].dueAt", errors);
        }

        var mustSee = participants.Select(o => (o, "participants")).Concat(assignees.Select(o => (o, "actionItems"))).ToList();
        var (markingOk, marking) = await desk.TryMarkingAsync(body.Marking, viewer, participants.Concat(assignees).Select(o => Community.Organization(o.Code)), mustSee, errors, cancellationToken);
        if (!markingOk || errors.Count > 0)
        {
            return (null, [], Problems.Invalid(errors));
        }

        var meeting = new Meeting
        {
            Id = body.Id ?? Guid.CreateVersion7(),
            Title = title,
            HeldAt = AuditChain.Truncate(body.HeldAt!.Value.UtcDateTime),
            Place = place,
            Participants = Releasability.Encode(participants.Select(o => Community.Organization(o.Code))),
            DecisionsJson = JsonSerializer.Serialize(decisions),
            CreatedBy = viewer.UserName,
            CreatedAt = now,
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
        };
        desk.Db.Meetings.Add(meeting);
        var audit = new List<AuditEntry> { desk.Audit(viewer, AuditActions.Create, "meeting", meeting.Id, AuditMarking.Of(meeting), new { title = Audits.Words(title), participants = participants.Select(o => o.Code), decisions = decisions.Count }) };
        var tasks = new List<CoordinationTask>();
        for (var i = 0; i < items.Count; i++)
        {
            var task = new CoordinationTask
            {
                Id = Guid.CreateVersion7(),
                Title = items[i].Title!.Trim(),
                Description = $"Action item of {title}",
                OrganizationId = assignees[i].Id,
                Role = TaskRoles.Action,
                Status = TaskStatuses.Open,
                MeetingId = meeting.Id,
                RespondBy = items[i].DueAt is { } due ? AuditChain.Truncate(due.UtcDateTime) : null,
                CreatedBy = viewer.UserName,
                CreatedAt = now,
                UpdatedAt = now,
                Classification = marking.Classification,
                ReleasableTo = marking.ReleasableTo,
                Caveats = marking.Caveats,
            };
            task.Reschedule();
            tasks.Add(task);
            desk.Db.Tasks.Add(task);
            audit.Add(desk.Audit(viewer, AuditActions.Create, "task", task.Id, AuditMarking.Of(task), new { meeting = meeting.Id, organization = assignees[i].Code, task.RespondBy }));
        }

        await desk.SaveAsync(audit, cancellationToken);
        desk.WakeScheduler();
        return (meeting, tasks, null);
    }

    private static async Task<Results<Ok<Page<LiaisonDto>>, ProblemHttpResult>> ListLiaison(HttpContext context, Viewer viewer, CoordinationDesk desk, CursorKeys cursors, string? organization)
    {
        var query = new QueryReader(context.Request.Query);
        var (limit, after) = CoordinationPages.Read(query, cursors.For(CursorListings.Liaison));
        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var log = desk.Db.LiaisonLog.AsNoTracking().VisibleTo(viewer);
        if (organization is not null)
        {
            if (await desk.Directory.OrganizationAsync(organization, context.RequestAborted) is not { } org)
            {
                return Problems.Field("organization", $"no organisation has the code '{organization}'");
            }

            log = log.Where(l => l.OrganizationId == org.Id || l.CounterpartOrganizationId == org.Id);
        }

        if (after is { At: var at, Number: var number })
        {
            log = log.Where(l => l.At < at || (l.At == at && l.Number < number));
        }

        var (page, next) = await CoordinationPages.TakeAsync(log.OrderByDescending(l => l.At).ThenByDescending(l => l.Number), limit,
            l => new Cursor(l.At, l.Number), context.RequestAborted);
        await desk.AuditReadAsync(viewer, "liaison", Audits.Named(page), context);
        var members = await desk.MemberNamesAsync(page.Select(l => (Guid?)l.MemberId), context.RequestAborted);
        return TypedResults.Ok(new Page<LiaisonDto>(page.Select(l => ToDto(l, desk, members)).ToList(), next?.Encode(cursors.For(CursorListings.Liaison))));
    }

    private static async Task<Results<Ok<LiaisonDto>, NotFound>> GetLiaison(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var entry = await desk.Db.LiaisonLog.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(l => l.Id == id, context.RequestAborted);
        if (entry is null)
        {
            return TypedResults.NotFound();
        }

        await desk.AuditReadAsync(viewer, "liaison", Audits.Named([entry]), context);
        return TypedResults.Ok(ToDto(entry, desk, await desk.MemberNamesAsync([entry.MemberId], context.RequestAborted)));
    }

    private static LiaisonDto ToDto(LiaisonEntry l, CoordinationDesk desk, IReadOnlyDictionary<Guid, string> members) => new(
        l.Id, CoordinationDesk.Utc(l.At), desk.OrganizationCode(l.OrganizationId), members.GetValueOrDefault(l.MemberId, "?"),
        l.CounterpartOrganizationId is { } c ? desk.OrganizationCode(c) : null, l.Counterpart, l.Channel, l.Summary, desk.Markings.ToDto(l));

    private static async Task<Results<Created<LiaisonDto>, Ok<LiaisonDto>, ProblemHttpResult>> CreateLiaison(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewLiaison>(context, 64 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        return await ClientIds.OnceAsync(body!.Id, badId => badId, () => LiaisonRetriedAsync(desk, body, viewer, context), () => CreateLiaisonAsync(context, viewer, desk, body));
    }

    /// <summary>
    /// The answer to a liaison entry whose id is stored already: the stored entry when this member logged it with the same
    /// channel and summary (and time, when one was given); else a 409 on <c>id</c>.
    /// </summary>
    private static async Task<Results<Created<LiaisonDto>, Ok<LiaisonDto>, ProblemHttpResult>?> LiaisonRetriedAsync(CoordinationDesk desk, NewLiaison body, Viewer viewer, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        if (body.Id is not { } id || await desk.Db.LiaisonLog.AsNoTracking().SingleOrDefaultAsync(l => l.Id == id, cancellationToken) is not { } stored)
        {
            return null;
        }

        // The counterpart too: a resend corrected to another organisation is another contact, not the one stored.
        var counterpartOrganization = body.CounterpartOrganization is { } code ? (await desk.Directory.OrganizationAsync(code, cancellationToken))?.Id ?? Guid.Empty : (Guid?)null;
        if (!ClientIds.IsRetry(stored, viewer, stored.MemberId == viewer.MemberId && stored.Channel == body.Channel && stored.Summary == body.Summary?.Trim()
            && (body.At is null || ClientIds.SameTime(stored.At, body.At))
            && stored.CounterpartOrganizationId == counterpartOrganization && (body.Counterpart is null || stored.Counterpart == body.Counterpart.Trim())))
        {
            return ClientIds.Taken("liaison entry");
        }

        await desk.AuditReadAsync(viewer, "liaison", Audits.Named([stored]), context);
        return TypedResults.Ok(ToDto(stored, desk, new Dictionary<Guid, string> { [viewer.MemberId] = viewer.UserName }));
    }

    private static async Task<Results<Created<LiaisonDto>, Ok<LiaisonDto>, ProblemHttpResult>> CreateLiaisonAsync(HttpContext context, Viewer viewer, CoordinationDesk desk, NewLiaison body)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var now = desk.Now;
        var at = body.At is { } given ? AuditChain.Truncate(given.UtcDateTime) : now;
        if (at > now + TimeSpan.FromMinutes(5))
        {
            errors["at"] = ["a contact is logged after it happened, not in the future"];
        }

        desk.CheckTime(body.At, "at", errors);

        Organization? counterpartOrganization = null;
        if (body.CounterpartOrganization is { } code)
        {
            counterpartOrganization = await desk.Directory.OrganizationAsync(code, context.RequestAborted);
            if (counterpartOrganization is null)
            {
                errors["counterpartOrganization"] = [$"no organisation has the code '{code}'"];
            }
        }

        CoordinationDesk.TryText(body.Counterpart ?? counterpartOrganization?.Name, "counterpart", 2, 300, errors, out var counterpart);
        if (!LiaisonChannels.All.Contains(body.Channel ?? ""))
        {
            errors["channel"] = [$"must be one of {string.Join(", ", LiaisonChannels.All)}"];
        }

        CoordinationDesk.TryText(body.Summary, "summary", 3, CoordinationDesk.MaxText, errors, out var summary);
        var concerned = counterpartOrganization is null ? [] : new[] { Community.Organization(counterpartOrganization.Code) };
        var (markingOk, marking) = await desk.TryMarkingAsync(body.Marking, viewer, concerned, [], errors, context.RequestAborted);
        if (!markingOk || errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var entry = new LiaisonEntry
        {
            Id = body.Id ?? Guid.CreateVersion7(),
            At = at,
            OrganizationId = viewer.OrganizationId,
            MemberId = viewer.MemberId,
            CounterpartOrganizationId = counterpartOrganization?.Id,
            Counterpart = counterpart,
            Channel = body.Channel!,
            Summary = summary,
            CreatedAt = now,
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
        };
        desk.Db.LiaisonLog.Add(entry);
        await desk.SaveAsync([desk.Audit(viewer, AuditActions.Create, "liaison", entry.Id, AuditMarking.Of(entry), new { counterpart = counterpartOrganization?.Code ?? Audits.Words(counterpart), entry.Channel })], context.RequestAborted);
        return TypedResults.Created($"/api/liaison/{entry.Id}", ToDto(entry, desk, new Dictionary<Guid, string> { [viewer.MemberId] = viewer.UserName }));
    }
}

using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Concord.Server.Organizations;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.OpenApi;

namespace Concord.Server.Coordination;

/// <summary>Requests for assistance between organisations, with the civil–military criteria, deadlines and a lifecycle.</summary>
internal static class RequestEndpoints
{
    public static readonly TimeSpan MaximumWindow = TimeSpan.FromDays(90);

    public static void MapRequests(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/requests").WithTags("Coordination").RequireAuthorization();
        group.MapGet("/", List)
            .WithQueryParameter("overdue", "true: only requests past a deadline", JsonSchemaType.Boolean)
            .WithQueryParameter("open", "true: only requests not yet completed, declined or cancelled; false: only those", JsonSchemaType.Boolean)
            .WithPage()
            .TakesQuery(["direction", "status", "type", "overdue", "open", .. CoordinationPages.Parameters])
            .WithSummary("Requests you may see, newest first, a page at a time: incoming (to your organisation or its kind), outgoing (from it), or all; by status, type, overdue.");
        group.MapGet("/{id:guid}", Get).WithSummary("One request, with the criteria its requester stated and the moves open to you.");
        group.MapPost("/", Create).WithJsonBody<NewRequest>().WithSummary("Request assistance from an organisation (code) or a kind of organisation (kind:military).");
        group.MapPost("/{id:guid}/status", SetStatus).WithJsonBody<StatusChange>()
            .WithSummary("Move a request: the addressee acknowledges, accepts or declines (with a reason), starts and completes it; the requester may cancel.");
    }

    private static async Task<Results<Ok<Page<RequestDto>>, ProblemHttpResult>> List(
        HttpContext context, Viewer viewer, CoordinationDesk desk, CursorKeys cursors, string? direction, string? status, string? type)
    {
        var query = new QueryReader(context.Request.Query);
        var (overdue, open) = (query.Bool("overdue"), query.Bool("open"));
        var (limit, after) = CoordinationPages.Read(query, cursors.For(CursorListings.Requests));
        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var requests = desk.Db.Requests.AsNoTracking().VisibleTo(viewer);
        var myKind = OrganizationKinds.Token(viewer.OrganizationKind);
        switch (direction)
        {
            case null or "all":
                break;
            case "incoming":
                requests = requests.Where(r => r.AssignedOrganizationId == viewer.OrganizationId
                    || (r.AssignedOrganizationId == null && (r.AddresseeOrganizationId == viewer.OrganizationId
                        || (r.AddresseeKind == myKind && r.RequesterOrganizationId != viewer.OrganizationId))));
                break;
            case "outgoing":
                requests = requests.Where(r => r.RequesterOrganizationId == viewer.OrganizationId);
                break;
            default:
                return Problems.Field("direction", "must be incoming, outgoing or all");
        }

        if (status is not null)
        {
            if (!RequestStatuses.All.Contains(status))
            {
                return Problems.Field("status", $"must be one of {string.Join(", ", RequestStatuses.All)}");
            }

            requests = requests.Where(r => r.Status == status);
        }

        if (type is not null)
        {
            if (!RequestTypes.All.Contains(type))
            {
                return Problems.Field("type", $"must be one of {string.Join(", ", RequestTypes.All)}");
            }

            requests = requests.Where(r => r.Type == type);
        }

        var closed = new[] { RequestStatuses.Declined, RequestStatuses.Completed, RequestStatuses.Cancelled };
        if (open is { } wantOpen)
        {
            requests = wantOpen ? requests.Where(r => !closed.Contains(r.Status)) : requests.Where(r => closed.Contains(r.Status));
        }

        var now = desk.Now;
        if (overdue is { } wanted)
        {
            // overdue=false lists those that are not (it was taken and ignored, listing the overdue ones too).
            requests = requests.Where(r => (!closed.Contains(r.Status)
                && ((r.RespondBy != null && r.RespondedAt == null && r.RespondBy <= now)
                    || (r.AcknowledgeBy != null && r.AcknowledgedAt == null && r.RespondedAt == null && r.AcknowledgeBy <= now))) == wanted);
        }

        if (after is { Number: var number })
        {
            requests = requests.Where(r => r.Number < number);
        }

        var (page, next) = await CoordinationPages.TakeAsync(requests.OrderByDescending(r => r.Number), limit, r => new Cursor(DateTime.MinValue, r.Number), context.RequestAborted);
        await desk.AuditReadAsync(viewer, "request", Audits.Named(page), context);
        var members = await desk.MemberNamesAsync(page.Select(r => (Guid?)r.RequesterMemberId), context.RequestAborted);
        await desk.SeeLinksAsync(viewer, [], page, context.RequestAborted);
        return TypedResults.Ok(new Page<RequestDto>(page.Select(r => desk.ToDto(r, viewer, members)).ToList(), next?.Encode(cursors.For(CursorListings.Requests))));
    }

    private static async Task<Results<Ok<RequestDto>, NotFound>> Get(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var request = await desk.Db.Requests.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(r => r.Id == id, context.RequestAborted);
        if (request is null)
        {
            return TypedResults.NotFound();
        }

        await desk.AuditReadAsync(viewer, "request", Audits.Named([request]), context);
        await desk.SeeLinksAsync(viewer, [], [request], context.RequestAborted);
        return TypedResults.Ok(desk.ToDto(request, viewer, await desk.MemberNamesAsync([request.RequesterMemberId], context.RequestAborted)));
    }

    private static async Task<Results<Created<RequestDto>, Ok<RequestDto>, ProblemHttpResult>> Create(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewRequest>(context, 128 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        return await ClientIds.OnceAsync<Results<Created<RequestDto>, Ok<RequestDto>, ProblemHttpResult>>(body!.Id, badId => badId, () => RetriedAsync(desk, body, viewer, context), async () =>
        {
            var (request, refused) = await CreateAsync(desk, body, viewer, context.RequestAborted);
            if (refused is not null)
            {
                return refused;
            }

            await desk.SeeLinksAsync(viewer, [], [request!], context.RequestAborted);
            return TypedResults.Created($"/api/requests/{request!.Id}", desk.ToDto(request, viewer, new Dictionary<Guid, string> { [viewer.MemberId] = viewer.UserName }));
        });
    }

    /// <summary>
    /// The answer to a send of a request whose id is stored already: the stored request when it is this member's with the
    /// same type, title, addressee and window (a retry after a lost answer), else a 409 on <c>id</c>; null when the id is new.
    /// </summary>
    private static async Task<Results<Created<RequestDto>, Ok<RequestDto>, ProblemHttpResult>?> RetriedAsync(CoordinationDesk desk, NewRequest body, Viewer viewer, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        if (body.Id is not { } id)
        {
            return null;
        }

        if (await desk.Db.Requests.AsNoTracking().SingleOrDefaultAsync(r => r.Id == id, cancellationToken) is not { } stored)
        {
            // Escalations, their notices and the records they answer tell tasks and requests apart by their ids.
            if (await desk.Db.Tasks.AnyAsync(t => t.Id == id, cancellationToken))
            {
                return ClientIds.TakenByOther("task");
            }

            return null;
        }

        var addressee = body.Addressee?.Trim() ?? "";
        var sameAddressee = addressee.StartsWith("kind:", StringComparison.OrdinalIgnoreCase)
            ? stored.AddresseeOrganizationId is null && OrganizationKinds.TryParse(addressee[5..], out var kind) && stored.AddresseeKind == OrganizationKinds.Token(kind)
            : stored.AddresseeOrganizationId is { } to && (await desk.Directory.OrganizationAsync(addressee, cancellationToken))?.Id == to;
        if (!ClientIds.IsRetry(stored, viewer, stored.RequesterMemberId == viewer.MemberId && sameAddressee && stored.Type == body.Type
            && stored.Title == body.Title?.Trim() && ClientIds.SameTime(stored.WindowStart, body.WindowStart) && ClientIds.SameTime(stored.WindowEnd, body.WindowEnd)))
        {
            return ClientIds.Taken("request");
        }

        // The request as it is now (accepted since, with a reason): read, as a GET of it would be.
        await desk.AuditReadAsync(viewer, "request", Audits.Named([stored]), context);
        await desk.SeeLinksAsync(viewer, [], [stored], cancellationToken);
        return TypedResults.Ok(desk.ToDto(stored, viewer, new Dictionary<Guid, string> { [viewer.MemberId] = viewer.UserName }));
    }

    /// <summary>Validates and stores a request (the API's and the demo's way in).</summary>
    internal static async Task<(AssistanceRequest? Request, ProblemHttpResult? Problem)> CreateAsync(CoordinationDesk desk, NewRequest body, Viewer viewer, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var type = body.Type ?? "";
        if (!RequestTypes.All.Contains(type))
        {
            errors["type"] = [$"must be one of {string.Join(", ", RequestTypes.All)}"];
        }

        var priority = body.Priority ?? "";
        if (!RequestPriorities.All.Contains(priority))
        {
            errors["priority"] = [$"must be one of {string.Join(", ", RequestPriorities.All)}"];
        }

        CoordinationDesk.TryText(body.Title, "title", 3, 300, errors, out var title);
        CoordinationDesk.TryText(body.Details, "details", 0, CoordinationDesk.MaxText, errors, out var details);

        // The addressee: an organisation by code, or kind:KIND for whichever organisation of that kind takes it up.
        Organization? addressee = null;
        OrganizationKind? addresseeKind = null;
        var addresseeText = body.Addressee?.Trim() ?? "";
        if (addresseeText.StartsWith("kind:", StringComparison.OrdinalIgnoreCase))
        {
            if (OrganizationKinds.TryParse(addresseeText[5..], out var kind))
            {
                addresseeKind = kind;
                // Answered by an organisation of that kind other than the requester's: with none in the mission, nobody
                // could acknowledge or accept it, and it would wait, overdue, on a queue no one reads.
                if (!await AnyOtherOfKindAsync(desk.Directory, kind, viewer.OrganizationId, cancellationToken))
                {
                    errors["addressee"] = [$"no organisation of the mission other than yours is of kind {OrganizationKinds.Token(kind)}: nobody could answer the request"];
                }
            }
            else
            {
                errors["addressee"] = [$"'{addresseeText}' is not a kind of organisation"];
            }
        }
        else if (await desk.Directory.OrganizationAsync(addresseeText, cancellationToken) is { } organization)
        {
            addressee = organization;
            addresseeKind = organization.Kind;
            if (organization.Id == viewer.OrganizationId)
            {
                errors["addressee"] = ["a request goes to another organisation"];
            }
        }
        else
        {
            errors["addressee"] = [$"give an organisation code or kind:KIND ('{addresseeText}' is neither)"];
        }

        double? latitude = null, longitude = null;
        if (body.Location is { } location)
        {
            if (location.Latitude is not (>= -90 and <= 90) || location.Longitude is not (>= -180 and <= 180))
            {
                errors["location"] = ["latitude must be in −90…90 and longitude in −180…180"];
            }

            (latitude, longitude) = (location.Latitude, location.Longitude);
        }

        var routeJson = CoordinationDesk.RouteJson(body.Route, "route", errors);
        if (type != RequestTypes.Information && body.Location is null && body.Route is null)
        {
            errors["location"] = ["give the place (location) or the route (route) where assistance is needed"];
        }

        var start = body.WindowStart is { } s ? AuditChain.Truncate(s.UtcDateTime) : (DateTime?)null;
        var end = body.WindowEnd is { } e ? AuditChain.Truncate(e.UtcDateTime) : (DateTime?)null;
        if (start is null)
        {
            errors["windowStart"] = ["is required"];
        }

        desk.CheckTime(body.WindowStart, "windowStart", errors);

        if (end is null)
        {
            errors["windowEnd"] = ["is required"];
        }
        else if (start is not null && (end <= start || end - start > MaximumWindow))
        {
            errors["windowEnd"] = [$"must be after windowStart, within {MaximumWindow.TotalDays} days of it"];
        }
        else if (end < desk.Now && !errors.ContainsKey("windowStart"))
        {
            // Assistance is asked for a time to come (or under way): a window already over would get deadlines, escalate as
            // the addressee's miss, and nobody could give it.
            errors["windowEnd"] = ["is in the past: assistance is asked for a time still to come (or under way)"];
        }

        // (An end after a start refused is within days of it: only the start is named.)
        if (!errors.ContainsKey("windowStart"))
        {
            desk.CheckTime(body.WindowEnd, "windowEnd", errors);
        }

        if (body.Incident is { } incident && !await desk.Db.VisibleIncidents(desk.Db.Incidents.Where(i => i.Id == incident), viewer).AnyAsync(cancellationToken))
        {
            errors["incident"] = ["no incident you may see has this id"];
        }

        var lastResort = RequestRules.NeedsLastResort(viewer.OrganizationKind, addresseeKind);
        var escort = RequestRules.NeedsEscortCriteria(type);
        RequestRules.Check(body.Criteria, lastResort, escort, errors);

        // By default the request is released to the requester and the addressee (or the kind asked).
        var concerned = addressee is not null ? [Community.Organization(addressee.Code)] : addresseeKind is { } k ? new[] { Community.Kind(k) } : [];
        var mustSee = addressee is not null ? new List<(Organization, string)> { (addressee, "addressee") } : [];
        var (markingOk, marking) = await desk.TryMarkingAsync(body.Marking, viewer, concerned, mustSee, errors, cancellationToken);
        if (!markingOk || errors.Count > 0)
        {
            return (null, Problems.Invalid(errors));
        }

        if (addressee is null && addresseeKind is { } askedKind && !Releases(marking.ReleasableTo, askedKind))
        {
            return (null, Problems.Field("marking.releasableTo", $"does not release the request to kind:{OrganizationKinds.Token(askedKind)}, named in addressee"));
        }

        var now = desk.Now;
        var terms = Responsibilities.ForRequest(await desk.Directory.AgreementsAsync(cancellationToken), viewer.OrganizationCode, type, priority, addressee?.Code, addresseeKind,
            code => desk.Directory.OrganizationByCode(code)?.Kind);
        var escalateTo = terms.EscalateTo is { } code ? await desk.Directory.OrganizationAsync(code, cancellationToken) : null;
        var criteria = new RequestCriteria(lastResort ? Trimmed(body.Criteria!.LastResort!) : null, escort ? Trimmed(body.Criteria!.Escort!) : null);
        var request = new AssistanceRequest
        {
            Id = body.Id ?? Guid.CreateVersion7(),
            Type = type,
            Title = title,
            Details = details,
            Priority = priority,
            RequesterOrganizationId = viewer.OrganizationId,
            RequesterMemberId = viewer.MemberId,
            AddresseeOrganizationId = addressee?.Id,
            AddresseeKind = addressee is null && addresseeKind is { } ak ? OrganizationKinds.Token(ak) : null,
            Latitude = latitude,
            Longitude = longitude,
            RouteJson = routeJson,
            WindowStart = start!.Value,
            WindowEnd = end!.Value,
            Status = RequestStatuses.Requested,
            CriteriaJson = JsonSerializer.Serialize(criteria, JsonSerializerOptions.Web),
            IncidentId = body.Incident,
            AgreementCode = terms.AgreementCode,
            AcknowledgeBy = now + terms.Acknowledge,
            RespondBy = now + terms.Respond,
            EscalateToOrganizationId = escalateTo?.Id,
            CreatedAt = now,
            UpdatedAt = now,
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
        };
        request.Reschedule();
        desk.Db.Requests.Add(request);
        try
        {
            await desk.SaveAboutAsync(request.IncidentId, [desk.Audit(viewer, AuditActions.Create, "request", request.Id, AuditMarking.Of(request),
                new { type, priority, addressee = addressee?.Code ?? request.AddresseeKind, agreement = terms.AgreementCode, request.AcknowledgeBy, request.RespondBy, lastResort, escort })], cancellationToken);
        }
        catch (IncidentGoneException)
        {
            desk.Db.Entry(request).State = EntityState.Detached;
            return (null, CoordinationDesk.IncidentGone());
        }

        desk.WakeScheduler();
        return (request, null);
    }

    private static async Task<Results<Ok<RequestDto>, NotFound, ProblemHttpResult>> SetStatus(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<StatusChange>(context, 16 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var request = await desk.Db.Requests.VisibleTo(viewer).SingleOrDefaultAsync(r => r.Id == id, context.RequestAborted);
        if (request is null)
        {
            return TypedResults.NotFound();
        }

        var refused = await MoveAsync(desk, request, body!, viewer, context.RequestAborted);
        if (refused is not null)
        {
            return refused;
        }

        await desk.SeeLinksAsync(viewer, [], [request], context.RequestAborted);
        return TypedResults.Ok(desk.ToDto(request, viewer, await desk.MemberNamesAsync([request.RequesterMemberId], context.RequestAborted)));
    }

    /// <summary>Moves a request the viewer may see along its lifecycle, or says why not (the API's and the demo's way).</summary>
    internal static async Task<ProblemHttpResult?> MoveAsync(CoordinationDesk desk, AssistanceRequest request, StatusChange body, Viewer viewer, CancellationToken cancellationToken)
    {
        var to = body.Status ?? "";
        if (!RequestStatuses.All.Contains(to) || to == RequestStatuses.Requested)
        {
            return Problems.Field("status", $"must be one of {string.Join(", ", RequestStatuses.All.Skip(1))}");
        }

        if (CoordinationDesk.ReasonProblem(body.Reason, to == RequestStatuses.Declined, "request", out var reason) is { } refused)
        {
            return refused;
        }

        var requester = request.RequesterOrganizationId == viewer.OrganizationId;
        if (to == RequestStatuses.Cancelled ? !requester : !CoordinationDesk.Answers(request, viewer))
        {
            return Problems.Forbidden(to == RequestStatuses.Cancelled
                ? "only the requesting organisation cancels a request"
                : "only the organisation the request is addressed to (or that accepted it) answers it");
        }

        if (!RequestStatuses.CanMove(request.Status, to))
        {
            return Problems.Field("status", $"a request cannot go from {request.Status} to {to}", StatusCodes.Status409Conflict);
        }

        var from = request.Status;
        var now = desk.Now;
        request.Status = to;
        switch (to)
        {
            case RequestStatuses.Acknowledged:
                request.AcknowledgedAt = now;
                break;
            case RequestStatuses.Accepted or RequestStatuses.Declined:
                request.RespondedAt = now;
                request.AssignedOrganizationId = to == RequestStatuses.Accepted ? viewer.OrganizationId : request.AssignedOrganizationId;
                break;
            case RequestStatuses.Completed or RequestStatuses.Cancelled:
                request.CompletedAt = now;
                break;
        }

        // The reason of this move (none given: none shown, rather than an earlier move's under this one, as for patrols).
        request.Reason = reason is { Length: > 0 } ? reason : null;
        request.UpdatedAt = now;
        request.Reschedule();
        await desk.SaveAsync([desk.Audit(viewer, AuditActions.Status, "request", request.Id, AuditMarking.Of(request), new { from, to, reason = Audits.Words(reason) })], cancellationToken);
        // Not given up with the request: the move is stored, and its notices are to close whether or not the caller waits.
        await desk.CloseAnsweredNoticesAsync(request, request.Id, "request", to, CancellationToken.None);
        return null;
    }

    private static bool Releases(string releasableTo, OrganizationKind kind) =>
        releasableTo.Contains(Releasability.Pattern(Community.Mission), StringComparison.Ordinal)
        || releasableTo.Contains(Releasability.Pattern(Community.Kind(kind)), StringComparison.Ordinal);

    private static LastResortCriteria Trimmed(LastResortCriteria c) => new(c.NoCivilianAlternative!.Trim(), c.CriticalNeed!.Trim(), c.LimitedInTimeAndScale!.Trim());

    private static EscortCriteria Trimmed(EscortCriteria c) => new(c.HumanitarianNeed!.Trim(), c.ResponsibleAuthorities!.Trim(), c.SafetyAndSecurity!.Trim(), c.Sustainability!.Trim());

    /// <summary>Whether an organisation other than <paramref name="requester"/> is of <paramref name="kind"/> (read again once if none is: one may just have been added).</summary>
    private static async Task<bool> AnyOtherOfKindAsync(MissionDirectory directory, OrganizationKind kind, Guid requester, CancellationToken cancellationToken)
    {
        bool Any() => directory.Organizations.Any(o => o.Kind == kind && o.Id != requester);
        if (Any())
        {
            return true;
        }

        await directory.ReloadAsync(force: false, cancellationToken);
        return Any();
    }
}

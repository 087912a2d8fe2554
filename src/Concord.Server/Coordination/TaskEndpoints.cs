using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Http;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.OpenApi;

namespace Concord.Server.Coordination;

/// <summary>Tasks: work owed by an organisation, with deadlines, status, comments and links. Everything filtered by marking.</summary>
internal static class TaskEndpoints
{
    public static void MapTasks(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/tasks").WithTags("Coordination").RequireAuthorization();
        group.MapGet("/", List)
            .WithQueryParameter("incident", "only tasks for this incident (id)")
            .WithQueryParameter("request", "only tasks for this request (id)")
            .WithQueryParameter("meeting", "only tasks from this meeting (id)")
            .WithQueryParameter("overdue", "true: only tasks past a deadline", JsonSchemaType.Boolean)
            .WithQueryParameter("open", "true: only tasks not done or declined; false: only those", JsonSchemaType.Boolean)
            .WithPage()
            .TakesQuery(["organization", "status", "incident", "request", "meeting", "overdue", "open", .. CoordinationPages.Parameters])
            .WithSummary("Tasks you may see, most urgent first, a page at a time: filter by organisation, status, incident, request, meeting or overdue.");
        group.MapGet("/{id:guid}", Get).WithSummary("One task with its comments.");
        group.MapPost("/", Create).WithJsonBody<NewTask>().WithSummary("Assign a task to an organisation (or one of its members).");
        group.MapPost("/{id:guid}/status", SetStatus).WithJsonBody<StatusChange>().WithSummary("Move a task: open → acknowledged → in-progress → done, or declined with a reason (members of the assignee).");
        group.MapPost("/{id:guid}/comments", Comment).WithJsonBody<NewComment>().WithSummary("Comment on a task you may see.");
    }

    private static async Task<Results<Ok<Page<TaskDto>>, ProblemHttpResult>> List(
        HttpContext context, Viewer viewer, CoordinationDesk desk, CursorKeys cursors, string? organization, string? status)
    {
        var query = new QueryReader(context.Request.Query);
        var (incident, request, meeting) = (query.Id("incident"), query.Id("request"), query.Id("meeting"));
        var (overdue, open) = (query.Bool("overdue"), query.Bool("open"));
        var (limit, after) = CoordinationPages.Read(query, cursors.For(CursorListings.Tasks));
        if (query.Errors.Count > 0)
        {
            return Problems.Invalid(query.Errors);
        }

        var tasks = desk.Db.Tasks.AsNoTracking().VisibleTo(viewer);
        if (organization is not null)
        {
            if (await desk.Directory.OrganizationAsync(organization, context.RequestAborted) is not { } org)
            {
                return Problems.Field("organization", $"no organisation has the code '{organization}'");
            }

            tasks = tasks.Where(t => t.OrganizationId == org.Id);
        }

        if (status is not null)
        {
            if (!TaskStatuses.All.Contains(status))
            {
                return Problems.Field("status", $"must be one of {string.Join(", ", TaskStatuses.All)}");
            }

            tasks = tasks.Where(t => t.Status == status);
        }

        if (open is { } wantOpen)
        {
            tasks = wantOpen
                ? tasks.Where(t => t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined)
                : tasks.Where(t => t.Status == TaskStatuses.Done || t.Status == TaskStatuses.Declined);
        }

        // A filter on a link matches only as the answers name links: those the viewer may see (and an escalation notice's
        // incident, which it names to its readers). Matching the others would tell that a task is linked to a record the
        // viewer may not see, which its answer leaves out.
        if (incident is { } i)
        {
            tasks = await desk.Db.VisibleIncidents(desk.Db.Incidents.Where(x => x.Id == i), viewer).AnyAsync(context.RequestAborted)
                ? tasks.Where(t => t.IncidentId == i)
                : tasks.Where(t => t.IncidentId == i && t.Role == TaskRoles.Escalation && t.EscalatedItemId != t.RequestId);
        }

        if (request is { } r)
        {
            var seen = await desk.Db.Requests.VisibleTo(viewer).AnyAsync(x => x.Id == r, context.RequestAborted);
            tasks = tasks.Where(t => seen && t.RequestId == r);
        }

        if (meeting is { } m)
        {
            var seen = await desk.Db.Meetings.VisibleTo(viewer).AnyAsync(x => x.Id == m, context.RequestAborted);
            tasks = tasks.Where(t => seen && t.MeetingId == m);
        }

        var now = desk.Now;
        if (overdue is { } wanted)
        {
            // overdue=false lists those that are not (it was taken and ignored, listing the overdue ones too).
            tasks = tasks.Where(t => (t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined
                && ((t.RespondBy != null && t.RespondedAt == null && t.RespondBy <= now)
                    || (t.AcknowledgeBy != null && t.AcknowledgedAt == null && t.RespondedAt == null && t.AcknowledgeBy <= now))) == wanted);
        }

        // Open tasks first, the earliest deadline still owed first, whether or not it has escalated yet (an overdue task
        // is the most urgent of all, not one to sort among those that owe nothing); then the newest.
        var placed = tasks
            .Select(t => new
            {
                Task = t,
                Closed = t.Status == TaskStatuses.Done || t.Status == TaskStatuses.Declined,
                Acknowledge = t.AcknowledgeBy != null && t.AcknowledgedAt == null && t.RespondedAt == null ? t.AcknowledgeBy : null,
                Respond = t.RespondBy != null && t.RespondedAt == null ? t.RespondBy : null,
            })
            .Select(x => new { x.Task, x.Closed, Due = x.Closed ? null : x.Acknowledge == null ? x.Respond : x.Respond == null || x.Acknowledge < x.Respond ? x.Acknowledge : x.Respond });
        if (after is { } cursor)
        {
            // The tasks after the cursor's in the order below: closed ones come after every open one, and open ones owing
            // nothing after those owing a deadline.
            var (closed, due, number) = CoordinationPages.TaskPlace(cursor);
            placed = closed ? placed.Where(x => x.Closed && x.Task.Number < number)
                : due is not { } owed ? placed.Where(x => x.Closed || (x.Due == null && x.Task.Number < number))
                : placed.Where(x => x.Closed || x.Due == null || x.Due > owed || (x.Due == owed && x.Task.Number < number));
        }

        var (rows, next) = await CoordinationPages.TakeAsync(
            placed.OrderBy(x => x.Closed).ThenBy(x => x.Due == null).ThenBy(x => x.Due).ThenByDescending(x => x.Task.Number), limit,
            x => CoordinationPages.TaskKey(x.Closed, x.Due, x.Task.Number), context.RequestAborted);
        var page = rows.Select(x => x.Task).ToList();
        // A reason shown under a marking of its own (given before the task's widened) is read at the higher of the two.
        await desk.AuditReadAsync(viewer, "task", [.. page.Select(t => t.ReadBy(viewer) is var (level, caveats) ? (t.Id, level, caveats) : default)], context);
        var members = await desk.MemberNamesAsync(page.Select(t => t.MemberId), context.RequestAborted);
        await desk.SeeLinksAsync(viewer, page, [], context.RequestAborted);
        return TypedResults.Ok(new Page<TaskDto>(page.Select(t => desk.ToDto(t, viewer, members)).ToList(), next?.Encode(cursors.For(CursorListings.Tasks))));
    }

    private static async Task<Results<Ok<TaskDto>, NotFound>> Get(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var task = await desk.Db.Tasks.AsNoTracking().VisibleTo(viewer).SingleOrDefaultAsync(t => t.Id == id, context.RequestAborted);
        if (task is null)
        {
            return TypedResults.NotFound();
        }

        // Each comment as marked when it was written (the task's marking then): one written before the task's marking
        // widened is not shown to those only the wider marking lets in.
        var comments = (await desk.Db.TaskComments.AsNoTracking().Where(c => c.TaskId == id).OrderBy(c => c.At).ToListAsync(context.RequestAborted))
            .Where(c => Marking.AllowsRead(c.Classification, c.ReleasableTo, c.Caveats, viewer)).ToList();
        // The read is of the task and of what it shows under a marking of its own: named at the highest of them.
        var (level, caveats) = task.ReadBy(viewer);
        foreach (var comment in comments)
        {
            (level, caveats) = (Math.Max(level, comment.Classification), caveats | comment.Caveats);
        }

        await desk.AuditReadAsync(viewer, "task", [(task.Id, level, caveats)], context);
        await desk.SeeLinksAsync(viewer, [task], [], context.RequestAborted);
        return TypedResults.Ok(desk.ToDto(task, viewer, await desk.MemberNamesAsync([task.MemberId], context.RequestAborted),
            [.. comments.Select(c => new CommentDto(c.Author, new DateTimeOffset(c.At, TimeSpan.Zero), c.Text, desk.Markings.ToDto(c.Classification, c.ReleasableTo, c.Caveats)))]));
    }

    private static async Task<Results<Created<TaskDto>, Ok<TaskDto>, ProblemHttpResult>> Create(HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewTask>(context, 64 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        return await ClientIds.OnceAsync(body!.Id, badId => badId, () => RetriedAsync(desk, body, viewer, context), () => CreateAsync(context, viewer, desk, body));
    }

    /// <summary>
    /// The answer to a send of a task whose id is stored already: the stored task when this member created it with the same
    /// title for the same organisation, incident and request (a retry after a lost answer), else a 409 on <c>id</c>; null
    /// when the id is new.
    /// </summary>
    private static async Task<Results<Created<TaskDto>, Ok<TaskDto>, ProblemHttpResult>?> RetriedAsync(CoordinationDesk desk, NewTask body, Viewer viewer, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        if (body.Id is not { } id)
        {
            return null;
        }

        if (await desk.Db.Tasks.AsNoTracking().SingleOrDefaultAsync(t => t.Id == id, cancellationToken) is not { } stored)
        {
            // Escalations, their notices and the records they answer tell tasks and requests apart by their ids.
            if (await desk.Db.Requests.AnyAsync(r => r.Id == id, cancellationToken))
            {
                return ClientIds.TakenByOther("request");
            }

            return null;
        }

        var organization = await desk.Directory.OrganizationAsync(body.Organization ?? "", cancellationToken);
        if (!ClientIds.IsRetry(stored, viewer, stored.CreatedBy == viewer.UserName && stored.Role == TaskRoles.Assigned && stored.Title == body.Title?.Trim()
            && stored.OrganizationId == organization?.Id && stored.IncidentId == body.Incident && stored.RequestId == body.Request))
        {
            return ClientIds.Taken("task");
        }

        // Read as a GET of it is: at the level of what it shows this member (a reason marked above the task included).
        var (level, caveats) = stored.ReadBy(viewer);
        await desk.AuditReadAsync(viewer, "task", [(stored.Id, level, caveats)], context);
        await desk.SeeLinksAsync(viewer, [stored], [], cancellationToken);
        return TypedResults.Ok(desk.ToDto(stored, viewer, await desk.MemberNamesAsync([stored.MemberId], cancellationToken)));
    }

    private static async Task<Results<Created<TaskDto>, Ok<TaskDto>, ProblemHttpResult>> CreateAsync(HttpContext context, Viewer viewer, CoordinationDesk desk, NewTask body)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        CoordinationDesk.TryText(body.Title, "title", 3, 300, errors, out var title);
        CoordinationDesk.TryText(body.Description, "description", 0, CoordinationDesk.MaxText, errors, out var description);
        var organization = await desk.Directory.OrganizationAsync(body.Organization ?? "", context.RequestAborted);
        if (organization is null)
        {
            errors["organization"] = [$"no organisation has the code '{body.Organization}'"];
        }

        Guid? memberId = null;
        Accounts.Member? assignee = null;
        var unassignable = false;
        if (body.Member is { } user)
        {
            // Names are kept in lower case (as members are added); text that is no name finds no one rather than reaching the store.
            var name = user.Trim().ToLowerInvariant();
            assignee = Reports.ReportRules.ControlCharacterProblem(name) is null
                ? await desk.Db.Members.AsNoTracking().SingleOrDefaultAsync(m => m.UserName == name, context.RequestAborted)
                : null;
            unassignable = assignee is null || assignee.OrganizationId != organization?.Id || assignee.Disabled;

            memberId = assignee?.Id;
        }

        var now = desk.Now;
        var acknowledgeBy = body.AcknowledgeBy is { } a ? AuditChain.Truncate(a.UtcDateTime) : (DateTime?)null;
        var respondBy = body.RespondBy is { } r ? AuditChain.Truncate(r.UtcDateTime) : (DateTime?)null;
        if (acknowledgeBy <= now)
        {
            errors["acknowledgeBy"] = ["must be in the future"];
        }

        if (respondBy <= now)
        {
            errors["respondBy"] = ["must be in the future"];
        }
        else if (respondBy < acknowledgeBy)
        {
            errors["respondBy"] = ["must not be before acknowledgeBy"];
        }

        desk.CheckTime(body.AcknowledgeBy, "acknowledgeBy", errors);
        desk.CheckTime(body.RespondBy, "respondBy", errors);

        if (body.Incident is { } incident && !await desk.Db.VisibleIncidents(desk.Db.Incidents.Where(i => i.Id == incident), viewer).AnyAsync(context.RequestAborted))
        {
            errors["incident"] = ["no incident you may see has this id"];
        }

        if (body.Request is { } request && !await desk.Db.Requests.VisibleTo(viewer).AnyAsync(r => r.Id == request, context.RequestAborted))
        {
            errors["request"] = ["no request you may see has this id"];
        }

        // The marking is checked whatever else is wrong: a refusal naming the marking only when the member exists would
        // tell who is an active member of the organisation without making anything.
        var concerned = organization is null ? [] : new[] { Community.Organization(organization.Code) };
        var (markingOk, marking) = organization is null ? (false, default)
            : await desk.TryMarkingAsync(body.Marking, viewer, concerned, [(organization, "organization")], errors, context.RequestAborted,
                // With an assignee named, they are judged instead (below), with one refusal whatever the reason.
                judgeReaders: body.Member is null);
        // The member is judged last, once everything else would be accepted, and the refusal is the same whatever the
        // reason (no such member, another organisation's, disabled, or not cleared for the marking: a task its assignee
        // could not see would be assigned to no one). Judged alongside other errors, a request bound to fail on its title
        // would tell, without making anything or leaving an audited record, whether a name is an active member and what
        // levels and caveats they hold; this way learning it takes a task, audited, in the caller's name.
        if (markingOk && errors.Count == 0 && body.Member is not null
            && (unassignable || !Marking.Clears(assignee!.Clearance, assignee.Caveats, marking.Classification, marking.Caveats)))
        {
            errors["member"] = [NoAssignee(body.Member!, body.Organization)];
        }

        if (!markingOk || errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var task = new CoordinationTask
        {
            Id = body.Id ?? Guid.CreateVersion7(),
            Title = title,
            Description = description.Length == 0 ? null : description,
            OrganizationId = organization!.Id,
            MemberId = memberId,
            Role = TaskRoles.Assigned,
            Status = TaskStatuses.Open,
            IncidentId = body.Incident,
            RequestId = body.Request,
            AcknowledgeBy = acknowledgeBy,
            RespondBy = respondBy,
            CreatedBy = viewer.UserName,
            CreatedAt = now,
            UpdatedAt = now,
            Classification = marking.Classification,
            ReleasableTo = marking.ReleasableTo,
            Caveats = marking.Caveats,
        };
        task.Reschedule();
        desk.Db.Tasks.Add(task);
        try
        {
            await desk.SaveAboutAsync(task.IncidentId, [desk.Audit(viewer, AuditActions.Create, "task", task.Id, AuditMarking.Of(task), new { organization = organization.Code, member = body.Member, task.AcknowledgeBy, task.RespondBy })], context.RequestAborted);
        }
        catch (IncidentGoneException)
        {
            return CoordinationDesk.IncidentGone();
        }

        desk.WakeScheduler();
        await desk.SeeLinksAsync(viewer, [task], [], context.RequestAborted);
        return TypedResults.Created($"/api/tasks/{task.Id}", desk.ToDto(task, viewer, await desk.MemberNamesAsync([memberId], context.RequestAborted)));
    }

    private static string NoAssignee(string user, string? organization) => $"'{user}' is not an active member of {organization} who may see a task with this marking";

    private static async Task<Results<Ok<TaskDto>, NotFound, ProblemHttpResult>> SetStatus(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<StatusChange>(context, 16 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var task = await desk.Db.Tasks.VisibleTo(viewer).SingleOrDefaultAsync(t => t.Id == id, context.RequestAborted);
        if (task is null)
        {
            return TypedResults.NotFound();
        }

        var to = body!.Status ?? "";
        if (!TaskStatuses.All.Contains(to))
        {
            return Problems.Field("status", $"must be one of {string.Join(", ", TaskStatuses.All)}");
        }

        if (task.OrganizationId != viewer.OrganizationId && !viewer.HasRole(MemberRoles.MissionAdmin))
        {
            return Problems.Forbidden($"only members of {desk.OrganizationCode(task.OrganizationId)} move this task");
        }

        if (CoordinationDesk.ReasonProblem(body.Reason, to == TaskStatuses.Declined, "task", out var reason) is { } refused)
        {
            return refused;
        }

        if (!TaskStatuses.CanMove(task.Status, to))
        {
            return Problems.Field("status", $"a task cannot go from {task.Status} to {to}", StatusCodes.Status409Conflict);
        }

        var from = task.Status;
        var now = desk.Now;
        task.Status = to;
        // Each move's reason is kept (and shown) until the next move, as a request's and a patrol's are: the audit entry
        // counts its words, which the record holds.
        task.GiveReason(reason is { Length: > 0 } ? reason : null);

        if (to == TaskStatuses.Acknowledged)
        {
            task.AcknowledgedAt = now;
        }
        else
        {
            task.RespondedAt ??= now;
        }

        task.CompletedAt = to is TaskStatuses.Done or TaskStatuses.Declined ? now : null;
        task.UpdatedAt = now;
        task.Reschedule();
        List<AuditEntry> audit = [desk.Audit(viewer, AuditActions.Status, "task", task.Id, AuditMarking.Of(task), new { from, to, reason = Audits.Words(reason) })];
        if (to == TaskStatuses.Declined && task.Role == TaskRoles.Lead && task.RoutingKey is not null && task.EscalateToOrganizationId is { } escalateTo
            && desk.Directory.Organization(escalateTo) is { } escalation)
        {
            // The lead an agreement named declines its incident: nobody leads it now, and the router gives it to nobody else.
            // The organisation its misses go to is told at once, as of a miss (only if every report of the incident is
            // released to it: the notice carries the incident's words); the reason stays on the task, under its marking.
            var reach = await IncidentReach.ReadAsync(desk.Db, [task.IncidentId], context.RequestAborted);
            var told = reach.Reaches(task.IncidentId, task.ReleasableTo, escalation, desk.Directory);
            var notice = told
                ? EscalationScheduler.Notice(task, "task", task.Id, task.Title, task.IncidentId, task.RequestId, escalation, TaskStatuses.Declined,
                    $"lead declined by {desk.OrganizationCode(task.OrganizationId)}: the incident has no lead", now)
                : null;
            if (notice is not null)
            {
                desk.Db.Tasks.Add(notice);
            }

            // Recorded either way, as a miss is: an auditor tells "nobody was told, and why" from "nobody to tell".
            audit.Add(Audits.Entry(null, AuditActions.Escalate, "task", task.Id, AuditMarking.Of(task), now, Audits.Detail(new
            {
                declined = true,
                to = notice is null ? null : escalation.Code,
                notice = notice?.Id,
                agreement = task.AgreementCode,
                withheld = told ? null : EscalationScheduler.NoticeWithheld,
            })));
        }

        try
        {
            await desk.SaveAsync(audit, context.RequestAborted);
        }
        catch (DbUpdateException e) when (to == TaskStatuses.Declined && Data.StoreErrors.IsUniqueViolation(e))
        {
            // Declined twice at once: the other's notice is there (PostgreSQL sends the move and the notice in one batch,
            // and the notice's key is what fails): the move was someone else's, as any other concurrent move is told.
            throw new DbUpdateConcurrencyException("the task was moved meanwhile", e);
        }
        // Not given up with the request: the move is stored, and its notices are to close whether or not the caller waits.
        await desk.CloseAnsweredNoticesAsync(task, task.Id, "task", to, CancellationToken.None);
        await desk.SeeLinksAsync(viewer, [task], [], context.RequestAborted);
        return TypedResults.Ok(desk.ToDto(task, viewer, await desk.MemberNamesAsync([task.MemberId], context.RequestAborted)));
    }

    private static async Task<Results<Created<CommentDto>, Ok<CommentDto>, NotFound, ProblemHttpResult>> Comment(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewComment>(context, 16 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        // An empty id is refused before the task is looked for, as it was (OnceAsync refuses it too, for the other records).
        if (ClientIds.Refused(body!.Id) is { } badId)
        {
            return badId;
        }

        if (!await desk.Db.Tasks.VisibleTo(viewer).AnyAsync(t => t.Id == id, context.RequestAborted))
        {
            return TypedResults.NotFound();
        }

        return await ClientIds.OnceAsync(body.Id, refused => refused, () => CommentRetriedAsync(desk, id, body, viewer, context), () => CommentAsync(id, context, viewer, desk, body));
    }

    /// <summary>The answer to a comment whose id is stored already: the stored comment when it is this member's, on this task, with the same text; else a 409 on <c>id</c>.</summary>
    private static async Task<Results<Created<CommentDto>, Ok<CommentDto>, NotFound, ProblemHttpResult>?> CommentRetriedAsync(CoordinationDesk desk, Guid taskId, NewComment body, Viewer viewer,
        HttpContext context)
    {
        if (body.Id is not { } id || await desk.Db.TaskComments.AsNoTracking().SingleOrDefaultAsync(c => c.Id == id, context.RequestAborted) is not { } stored)
        {
            return null;
        }

        if (stored.MemberId != viewer.MemberId || stored.TaskId != taskId || stored.Text != body.Text?.Trim()
            || !Marking.AllowsRead(stored.Classification, stored.ReleasableTo, stored.Caveats, viewer))
        {
            return ClientIds.Taken("comment");
        }

        // Comments are read with their task (under the marking the task had when each was written).
        await desk.AuditReadAsync(viewer, "task", [(taskId, stored.Classification, stored.Caveats)], context);
        return TypedResults.Ok(new CommentDto(stored.Author, CoordinationDesk.Utc(stored.At), stored.Text, desk.Markings.ToDto(stored.Classification, stored.ReleasableTo, stored.Caveats)));
    }

    /// <summary>
    /// The most comments one task holds: a task is read whole with them (GET, the board's card, the live page), and one
    /// member able to see a mission-wide task could otherwise make every read of it hundreds of megabytes.
    /// </summary>
    public const int MaxComments = 500;

    private static async Task<Results<Created<CommentDto>, Ok<CommentDto>, NotFound, ProblemHttpResult>> CommentAsync(Guid id, HttpContext context, Viewer viewer, CoordinationDesk desk, NewComment body)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var text = "";
        // A comment does not depend on the task's status. The task row is updated with it (its time of change), and that
        // update is refused when someone moved the task between this read and the save: the comment is then saved against
        // the task as it now is (if this member may still see it) instead of being lost to a conflict.
        for (var attempt = 1; ; attempt++)
        {
            var task = await desk.Db.Tasks.VisibleTo(viewer).SingleOrDefaultAsync(t => t.Id == id, context.RequestAborted);
            if (task is null)
            {
                return TypedResults.NotFound();
            }

            if (attempt == 1 && !CoordinationDesk.TryText(body.Text, "text", 1, CoordinationDesk.MaxText, errors, out text))
            {
                return Problems.Invalid(errors);
            }

            // Counted among the comments marked as the task is now, which whoever may see the task may read: counting hidden
            // ones (written while it was marked otherwise) would tell of them, and refuse a member for a reason they cannot see.
            if (attempt == 1 && await desk.Db.TaskComments.CountAsync(c => c.TaskId == id && c.Classification == task.Classification && c.ReleasableTo == task.ReleasableTo
                && c.Caveats == task.Caveats, context.RequestAborted) >= MaxComments)
            {
                return Problems.Field("text", $"this task holds {MaxComments} comments, the most one task holds: open a new task to go on", StatusCodes.Status409Conflict);
            }

            var now = desk.Now;
            var comment = new TaskComment
            {
                Id = body.Id ?? Guid.CreateVersion7(),
                TaskId = id,
                MemberId = viewer.MemberId,
                Author = viewer.UserName,
                At = now,
                Text = text,
                Classification = task.Classification,
                ReleasableTo = task.ReleasableTo,
                Caveats = task.Caveats,
            };
            desk.Db.TaskComments.Add(comment);
            task.UpdatedAt = now;
            // The task is announced as updated even if the clock has not moved since its last change: a comment is news to its readers.
            desk.Db.Entry(task).Property(t => t.UpdatedAt).IsModified = true;
            try
            {
                await desk.SaveAsync([desk.Audit(viewer, AuditActions.Comment, "task", task.Id, AuditMarking.Of(task), new { comment = comment.Id })], context.RequestAborted);
                return TypedResults.Created($"/api/tasks/{id}", new CommentDto(comment.Author, CoordinationDesk.Utc(now), text, desk.Markings.ToDto(comment.Classification, comment.ReleasableTo, comment.Caveats)));
            }
            catch (DbUpdateConcurrencyException) when (attempt < 3)
            {
                desk.Db.ChangeTracker.Clear();
            }
        }
    }
}

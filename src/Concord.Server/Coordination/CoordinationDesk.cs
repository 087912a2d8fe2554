using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Concord.Server.Organizations;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Coordination;

/// <summary>
/// What the coordination endpoints share: markings with their defaults, who may act on what, the API forms of records,
/// and saving a change with its audit entries in one transaction (the change feed row comes with the save).
/// </summary>
internal sealed class CoordinationDesk(ConcordDb db, MissionDirectory directory, MarkingFormat markings, AuditChain chain, AuditWriter reads,
    TimeProvider time, ILogger<CoordinationDesk> logger, Incidents.IncidentGate gate, EscalationScheduler? scheduler = null)
{
    public const int MaxText = 4000;

    public ConcordDb Db => db;

    public MissionDirectory Directory => directory;

    public MarkingFormat Markings => markings;

    /// <summary>Now, to the microsecond as PostgreSQL keeps it: a first answer shows the time every later read shows.</summary>
    public DateTime Now => AuditChain.Now(time);

    /// <summary>Tells the scheduler (when this process runs one) that a deadline was set.</summary>
    public void WakeScheduler() => scheduler?.Wake();

    /// <summary>Saves pending changes with one audit entry per changed record.</summary>
    public Task SaveAsync(IReadOnlyList<AuditEntry> audit, CancellationToken cancellationToken) => chain.SaveAsync(db, audit, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAsync"/> for a new record about <paramref name="incident"/>, checked again inside the save's
    /// transaction, under the gate a merge (or an accepted proposal) holds from its first read to its commit: the record is
    /// saved either before the merge reads the links to move (and is moved with them) or after it committed, when the
    /// incident is found gone. It would otherwise stay linked to an incident gone for good. Throws
    /// <see cref="IncidentGoneException"/> then, with nothing saved.
    /// </summary>
    public async Task SaveAboutAsync(Guid? incident, IReadOnlyList<AuditEntry> audit, CancellationToken cancellationToken)
    {
        if (incident is not { } id)
        {
            await SaveAsync(audit, cancellationToken);
            return;
        }

        using var held = await gate.EnterAsync(cancellationToken);
        await chain.SaveAsync(db, audit, cancellationToken, async d =>
        {
            if (!await d.Incidents.AnyAsync(i => i.Id == id, cancellationToken))
            {
                throw new IncidentGoneException();
            }
        });
    }

    /// <summary>The answer when <see cref="SaveAboutAsync"/> found the incident gone: nothing was saved, and why.</summary>
    public static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult IncidentGone() => Http.Problems.Field("incident",
        "was merged into another incident (or removed) while this was being made: nothing was saved; name the incident it went into",
        StatusCodes.Status409Conflict);

    /// <summary>
    /// Closes (done, with the reason, audited) the open escalation notices of <paramref name="item"/> that its move to
    /// <paramref name="to"/>, already saved, answered: the acknowledgement's once it is acknowledged, answered or closed, the
    /// response's once answered or closed. Otherwise they would stay open on the escalation organisation's board, which
    /// may not see the item itself to find out. Saved on their own after the move, so that a notice moved meanwhile (by
    /// the escalation organisation, or the router re-marking it) is read again rather than failing the move with a
    /// conflict about a record its author may not see; after three conflicts it is left open. A store failing here (the
    /// move is stored) is logged, not answered as the move's failure: the caller would retry a move already made.
    /// </summary>
    public async Task CloseAnsweredNoticesAsync(DeadlineRecord item, Guid itemId, string entity, string to, CancellationToken cancellationToken)
    {
        try
        {
            await CloseNoticesAsync(item, itemId, entity, to, cancellationToken);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or DbUpdateException or InvalidOperationException or TimeoutException)
        {
            logger.LogWarning(e, "The escalation notices of {Entity} {Id}, answered by its move to {Status}, could not be closed; they stay open", entity, itemId, to);
        }
    }

    private async Task CloseNoticesAsync(DeadlineRecord item, Guid itemId, string entity, string to, CancellationToken cancellationToken)
    {
        var answered = item.AnsweredDeadlines;
        if (answered.Count == 0)
        {
            return;
        }

        var keys = answered.Select(d => EscalationScheduler.NoticeKey(entity, itemId, d)).ToList();
        var reason = $"the {entity} was {to} after this notice";
        for (var attempt = 1; ; attempt++)
        {
            var notices = await db.Tasks.Where(t => t.Role == TaskRoles.Escalation && t.EscalatedItemId == itemId && keys.Contains(t.RoutingKey!)
                && t.Status != TaskStatuses.Done && t.Status != TaskStatuses.Declined).ToListAsync(cancellationToken);
            if (notices.Count == 0)
            {
                return;
            }

            var now = Now;
            var audit = notices.Select(n => n.CloseBySystem(reason, now)).ToList();

            try
            {
                await chain.SaveAsync(db, audit, cancellationToken);
                return;
            }
            catch (DbUpdateConcurrencyException)
            {
                db.ChangeTracker.Clear();
                if (attempt == 3)
                {
                    return;
                }
            }
        }
    }

    public AuditEntry Audit(Viewer actor, string action, string entity, Guid id, AuditMarking marking, object detail) =>
        Audits.Entry(actor, action, entity, id, marking, Now, Audits.Detail(detail));

    /// <summary>Records that a viewer was given figures computed from classified records (nothing when none went into them).</summary>
    public Task AuditAggregateAsync(Viewer viewer, string entity, IEnumerable<(int Level, long Caveats, long Count)> counted, HttpContext context) =>
        reads.RecordAggregateAsync(viewer, entity, counted, context, Now);

    /// <summary>Records that a viewer read classified or caveated records (nothing for other unclassified ones).</summary>
    public Task AuditReadAsync<TId>(Viewer viewer, string entity, IReadOnlyCollection<(TId Id, int Classification, long Caveats)> records, HttpContext context) =>
        reads.RecordReadAsync(viewer, entity, records, context.Request.Path + context.Request.QueryString, Now, context.RequestAborted);

    /// <summary>
    /// The marking a member asks for, or by default UNCLASSIFIED released to the organisations the record concerns.
    /// The communities that must see the record (an addressee, an assignee) are checked: a record they could not read is refused.
    /// </summary>
    /// <param name="judgeReaders">
    /// Whether to refuse a marking none of a named organisation's members may read. False when the caller judges a named
    /// member afterwards (a task's assignee, a patrol's members) with one refusal whatever the reason: naming the marking
    /// for one organisation and the member for another would tell, unaudited, which levels and caveats its members hold.
    /// </param>
    public async Task<(bool Ok, (int Classification, string ReleasableTo, long Caveats) Marking)> TryMarkingAsync(MarkingDto? asked, Viewer author, IEnumerable<string> concerned,
        IReadOnlyList<(Organization Organization, string Field)> mustSee, Dictionary<string, string[]> errors, CancellationToken cancellationToken, bool judgeReaders = true)
    {
        var dto = asked ?? new MarkingDto(markings.Scheme.Label(0), concerned.ToList(), []);
        await directory.KnowCaveatsAsync(dto.Caveats, cancellationToken);
        var ok = markings.TryRead(dto, author, "marking", errors, out var classification, out var releasableTo, out var caveats);
        var marking = (classification, releasableTo, caveats);
        if (!ok)
        {
            return (false, marking);
        }

        if (await directory.UnknownCommunityAsync(releasableTo, cancellationToken) is { } unknown)
        {
            errors["marking.releasableTo"] = [unknown];
            return (false, marking);
        }

        foreach (var (organization, field) in mustSee.DistinctBy(m => m.Organization.Id))
        {
            if (!directory.ReleasesTo(releasableTo, organization))
            {
                errors["marking.releasableTo"] = [$"does not release the record to {organization.Code}, named in {field}"];
            }
        }

        // Released to the organisations, but none of an organisation's members may read it: nobody there would act on it.
        // Said as the assignee check says it, without naming the level or caveats any member holds, and judged last (every
        // caller checks the marking after every other field): judged alongside another error, a request bound to fail
        // would tell which levels and caveats an organisation's members hold without making anything, one bit a request.
        foreach (var (organization, field) in errors.Count > 0 || !judgeReaders ? [] : mustSee.DistinctBy(m => m.Organization.Id))
        {
            if (await NobodyMayReadAsync(organization, classification, caveats, cancellationToken))
            {
                errors["marking"] = [$"no member of {organization.Code}, named in {field}, may read a record with this marking"];
            }
        }

        return (errors.Count == 0, marking);
    }

    /// <summary>
    /// Whether an organisation with members in Concord has none who may read the level and caveats. One without enabled
    /// members (a local authority met in person, say) is not refused: nobody there reads Concord at any level.
    /// </summary>
    private Task<bool> NobodyMayReadAsync(Organization organization, int classification, long caveats, CancellationToken cancellationToken) =>
        NobodyMayReadAsync(db, organization.Id, classification, caveats, cancellationToken);

    /// <inheritdoc cref="NobodyMayReadAsync(Organization, int, long, CancellationToken)"/>
    public static async Task<bool> NobodyMayReadAsync(ConcordDb db, Guid organization, int classification, long caveats, CancellationToken cancellationToken)
    {
        var members = db.Members.Where(m => m.OrganizationId == organization && !m.Disabled);
        return await members.AnyAsync(cancellationToken)
            && !await members.AnyAsync(m => m.Clearance >= classification && (m.Caveats & caveats) == caveats, cancellationToken);
    }

    public static DateTimeOffset? Utc(DateTime? at) => at is { } t ? new DateTimeOffset(t, TimeSpan.Zero) : null;

    public static DateTimeOffset Utc(DateTime at) => new(at, TimeSpan.Zero);

    public DeadlinesDto Deadlines(DeadlineRecord r) => new(
        Utc(r.AcknowledgeBy), Utc(r.RespondBy), Utc(r.AcknowledgedAt), Utc(r.RespondedAt), Utc(r.CompletedAt),
        Utc(r.AcknowledgeEscalatedAt), Utc(r.RespondEscalatedAt), r.OverdueAt(Now),
        r.EscalateToOrganizationId is { } e ? directory.Organization(e)?.Code : null, r.AgreementCode);

    public string OrganizationCode(Guid? id) => id is { } value ? directory.Organization(value)?.Code ?? "?" : "?";

    public async Task<Dictionary<Guid, string>> MemberNamesAsync(IEnumerable<Guid?> ids, CancellationToken cancellationToken)
    {
        var wanted = ids.OfType<Guid>().Distinct().ToList();
        return wanted.Count == 0 ? [] : await db.Members.Where(m => wanted.Contains(m.Id)).ToDictionaryAsync(m => m.Id, m => m.UserName, cancellationToken);
    }

    // The records the tasks and requests of this request link to that its viewer may see (SeeLinksAsync), by kind: clients
    // choose the ids of requests and meetings, so one id may name a hidden incident and a visible meeting.
    private readonly HashSet<(LinkKind Kind, Guid Id)> _visibleLinks = [];

    /// <summary>The kinds of record a task, request or patrol links to.</summary>
    public enum LinkKind
    {
        Incident,
        Request,
        Meeting,
        Report,
    }

    /// <summary>
    /// Reads which of the records <paramref name="tasks"/> and <paramref name="requests"/> link to (incidents, requests,
    /// meetings) <paramref name="viewer"/> may see. Their DTOs name only those: a task or request may be
    /// released wider than what it links to, and naming a record to someone it answers 404 would tell them of it (as a
    /// release names its original only to those who may read it). Links not read here are left out.
    /// </summary>
    public async Task SeeLinksAsync(Viewer viewer, IEnumerable<CoordinationTask> tasks, IEnumerable<AssistanceRequest> requests, CancellationToken cancellationToken)
    {
        var taskList = tasks.ToList();
        var requestList = requests.ToList();
        List<Guid> Ids(LinkKind kind, IEnumerable<Guid?> ids) => [.. ids.OfType<Guid>().Where(id => !_visibleLinks.Contains((kind, id))).Distinct()];
        void See(LinkKind kind, List<Guid> visible) => _visibleLinks.UnionWith(visible.Select(id => (kind, id)));
        var incidents = Ids(LinkKind.Incident, taskList.Select(t => t.IncidentId).Concat(requestList.Select(r => r.IncidentId)));
        var linkedRequests = Ids(LinkKind.Request, taskList.Select(t => t.RequestId));
        var meetings = Ids(LinkKind.Meeting, taskList.Select(t => t.MeetingId));
        if (incidents.Count > 0)
        {
            See(LinkKind.Incident, await db.VisibleIncidents(db.Incidents.Where(i => incidents.Contains(i.Id)), viewer).Select(i => i.Id).ToListAsync(cancellationToken));
        }

        if (linkedRequests.Count > 0)
        {
            See(LinkKind.Request, await db.Requests.VisibleTo(viewer).Where(r => linkedRequests.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken));
        }

        if (meetings.Count > 0)
        {
            See(LinkKind.Meeting, await db.Meetings.VisibleTo(viewer).Where(m => meetings.Contains(m.Id)).Select(m => m.Id).ToListAsync(cancellationToken));
        }
    }

    /// <summary>
    /// Reads which of the reports <paramref name="patrols"/> were reported in <paramref name="viewer"/> may see: a patrol
    /// report takes the stricter of its patrol's marking and its author's agreement, so it may be hidden from those who
    /// see the patrol, and a patrol names it only to those who may read it (<see cref="Link"/>).
    /// </summary>
    public async Task SeeReportsAsync(Viewer viewer, IEnumerable<Patrol> patrols, CancellationToken cancellationToken)
    {
        var reports = patrols.Select(p => p.ReportId).OfType<Guid>().Where(id => !_visibleLinks.Contains((LinkKind.Report, id))).Distinct().ToList();
        if (reports.Count > 0)
        {
            _visibleLinks.UnionWith((await db.Reports.VisibleTo(viewer).Where(r => reports.Contains(r.Id)).Select(r => r.Id).ToListAsync(cancellationToken)).Select(id => (LinkKind.Report, id)));
        }
    }

    /// <summary>The id of a record a task, request or patrol links to, if its viewer may see it (read by <see cref="SeeLinksAsync"/> or <see cref="SeeReportsAsync"/>).</summary>
    public Guid? Link(LinkKind kind, Guid? id) => id is { } value && _visibleLinks.Contains((kind, value)) ? value : null;

    public TaskDto ToDto(CoordinationTask t, Viewer viewer, IReadOnlyDictionary<Guid, string> members, IReadOnlyList<CommentDto>? comments = null) => new(
        t.Id, t.Title, t.Description, OrganizationCode(t.OrganizationId), t.MemberId is { } m ? members.GetValueOrDefault(m) : null, t.Role, t.Status, t.ReasonFor(viewer),
        // A task's escalation notice names the task's incident as it was raised: the scheduler raises one only for an
        // escalation organisation every report of that incident is released to. A request's notice (its escalated item is
        // the request it names) had no such check, and other tasks name only what the viewer may see.
        t.Role == TaskRoles.Escalation && t.EscalatedItemId != t.RequestId ? t.IncidentId : Link(LinkKind.Incident, t.IncidentId), Link(LinkKind.Request, t.RequestId), Link(LinkKind.Meeting, t.MeetingId), t.EscalatedItemId, t.Category, directory.Area(t.AreaId)?.Code, Deadlines(t), t.CreatedBy,
        Utc(t.CreatedAt), Utc(t.UpdatedAt), markings.ToDto(t), comments,
        // The reason keeps the marking it was written under when the task follows its incident to another (pages raise
        // their banners to it, and label it with it).
        t.ReasonFor(viewer) is null ? null : markings.ToDto(t.ReasonClassification!.Value, t.ReasonReleasableTo!, t.ReasonCaveats ?? 0));

    public RequestDto ToDto(AssistanceRequest r, Viewer viewer, IReadOnlyDictionary<Guid, string> members)
    {
        var criteria = JsonSerializer.Deserialize<RequestCriteria>(r.CriteriaJson, JsonSerializerOptions.Web) ?? new RequestCriteria(null, null);
        var requesterKind = directory.Organization(r.RequesterOrganizationId)?.Kind;
        var route = r.RouteJson is null ? null : JsonSerializer.Deserialize<List<double[]>>(r.RouteJson);
        return new RequestDto(
            r.Id, r.Type, r.Title, r.Details, r.Priority, OrganizationCode(r.RequesterOrganizationId), members.GetValueOrDefault(r.RequesterMemberId, "?"),
            r.AddresseeOrganizationId is { } a ? OrganizationCode(a) : null, r.AddresseeKind, r.AssignedOrganizationId is { } s ? OrganizationCode(s) : null,
            r.Latitude is { } lat && r.Longitude is { } lon ? new PointInput(lat, lon) : null, route, Utc(r.WindowStart), Utc(r.WindowEnd), r.Status, r.Reason,
            criteria, requesterKind is { } k && RequestRules.NeedsLastResort(k, AddresseeKind(r)), RequestRules.NeedsEscortCriteria(r.Type), Link(LinkKind.Incident, r.IncidentId),
            Deadlines(r), Utc(r.CreatedAt), Utc(r.UpdatedAt), markings.ToDto(r), Actions(r, viewer));
    }

    /// <summary>The kind of organisation a request asks: its addressee's, or the kind it names.</summary>
    public OrganizationKind? AddresseeKind(AssistanceRequest r) =>
        r.AddresseeOrganizationId is { } id ? directory.Organization(id)?.Kind
        : r.AddresseeKind is { } token && OrganizationKinds.TryParse(token, out var kind) ? kind : null;

    /// <summary>
    /// Whether a viewer answers for a request: a member of its addressee, of the kind it names (other than the requesting
    /// organisation, which asks others of its kind and cannot take its own request), or of the organisation that accepted it.
    /// </summary>
    public static bool Answers(AssistanceRequest r, Viewer viewer)
    {
        if (r.AssignedOrganizationId is { } assigned)
        {
            return assigned == viewer.OrganizationId;
        }

        return r.AddresseeOrganizationId is { } id ? id == viewer.OrganizationId
            : r.AddresseeKind is { } kind && kind == OrganizationKinds.Token(viewer.OrganizationKind) && r.RequesterOrganizationId != viewer.OrganizationId;
    }

    /// <summary>The status moves a viewer may make on a request now (the UI offers exactly these).</summary>
    public static IReadOnlyList<string> Actions(AssistanceRequest r, Viewer viewer)
    {
        var actions = new List<string>();
        if (Answers(r, viewer))
        {
            actions.AddRange(new[] { RequestStatuses.Acknowledged, RequestStatuses.Accepted, RequestStatuses.Declined, RequestStatuses.InProgress, RequestStatuses.Completed }
                .Where(to => RequestStatuses.CanMove(r.Status, to)));
        }

        if (r.RequesterOrganizationId == viewer.OrganizationId && RequestStatuses.CanMove(r.Status, RequestStatuses.Cancelled))
        {
            actions.Add(RequestStatuses.Cancelled);
        }

        return actions;
    }

    public static IReadOnlyList<string> Codes(string encoded) => Releasability.Decode(encoded).Select(t => t.StartsWith("org:", StringComparison.Ordinal) ? t[4..] : t).ToList();

    /// <summary>Reads a line: 2 to 500 points of [longitude, latitude].</summary>
    public static string? RouteJson(IReadOnlyList<double[]>? route, string field, Dictionary<string, string[]> errors)
    {
        if (route is null)
        {
            return null;
        }

        if (route.Count is < 2 or > 500 || route.Any(p => p is not { Length: 2 } || p[0] is < -180 or > 180 || p[1] is < -90 or > 90 || !double.IsFinite(p[0]) || !double.IsFinite(p[1])))
        {
            errors[field] = ["must be 2 to 500 points [longitude, latitude] with longitude in −180…180 and latitude in −90…90"];
            return null;
        }

        return JsonSerializer.Serialize(route);
    }

    /// <summary>
    /// Refuses a time outside what any record of the mission can hold: before 1900 (as reports) or more than a century
    /// from now. Without it a year 0001 or 9999 was stored, and lists ordered or filtered by time put it first or last for
    /// ever (and some stores' date arithmetic fails on it). Leaves a field already refused alone.
    /// </summary>
    public void CheckTime(DateTimeOffset? value, string field, Dictionary<string, string[]> errors)
    {
        if (value is { } at && !errors.ContainsKey(field) && OutOfRange(at, Now))
        {
            errors[field] = [TimeRange];
        }
    }

    /// <summary>Whether a time lies outside what a record can hold (<see cref="CheckTime"/>).</summary>
    public static bool OutOfRange(DateTimeOffset at, DateTime now) => at < Reports.ReportRules.Earliest || at.UtcDateTime > now.AddYears(100);

    public static readonly string TimeRange = $"must be a time from {Reports.ReportRules.Earliest.Year} on, within a century of now";

    /// <summary>The reason a status move carries (trimmed; null when none): required, at least 3 characters, to decline; never longer than <see cref="MaxText"/>.</summary>
    public static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult? ReasonProblem(string? text, bool declining, string record, out string? reason)
    {
        reason = text?.Trim();
        if (declining && (reason is null || reason.Length < 3))
        {
            return Http.Problems.Field("reason", $"a declined {record} needs the reason (at least 3 characters)");
        }

        if (reason?.Length > MaxText)
        {
            return Http.Problems.Field("reason", $"at most {MaxText} characters");
        }

        var errors = new Dictionary<string, string[]>();
        Reports.ReportRules.RejectControlCharacters(reason, "reason", errors);
        return errors.Count > 0 ? Http.Problems.Invalid(errors) : null;
    }

    public static bool TryText(string? text, string field, int min, int max, Dictionary<string, string[]> errors, out string value)
    {
        value = text?.Trim() ?? "";
        if (value.Length < min || value.Length > max)
        {
            errors[field] = [min > 0 ? $"is required, {min} to {max} characters" : $"at most {max} characters"];
            return false;
        }

        // As for reports: no control characters (PostgreSQL cannot store NUL; a patrol's name goes into its reports' narratives).
        Reports.ReportRules.RejectControlCharacters(value, field, errors);
        return !errors.ContainsKey(field);
    }
}

/// <summary>The incident a new record was about went (merged away) before the record was saved: nothing was saved.</summary>
internal sealed class IncidentGoneException() : Exception("the incident was merged away or removed before the record was saved");

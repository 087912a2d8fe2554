using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Coordination;
using Concord.Server.Data;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Demo;

/// <summary>
/// The demo's coordination: a protection-of-civilians SOP with responsibility and assistance rules, and a few requests
/// and a meeting in flight, created through the same code as the API. Incidents from the seeded history are not routed
/// (the router starts after them); new reports in the demo are. An urgent medevac request is left unanswered, so the
/// JOC sees it escalate a quarter of an hour after the demo starts.
/// </summary>
internal static class DemoCoordination
{
    public const string AgreementCode = "SOP-POC";

    private static readonly AgreementRequest Sop = new(
        AgreementCode,
        "Protection of civilians SOP, MINUSCA (responsibilities and requests for assistance)",
        ["JOC", "FORCE", "RWABATT", "UNPOL", "CIVAFF", "OCHA", "NGO-MED"],
        [],
        [
            new ResponsibilityRule(["ucdp.one-sided", "acled.violence-against-civilians", "poc"], ["*"], "FORCE", ["UNPOL", "CIVAFF"], 20, 60, "JOC"),
            new ResponsibilityRule(["ucdp.one-sided", "acled.violence-against-civilians", "poc"], ["CAF-809"], "RWABATT", ["UNPOL", "CIVAFF"], 15, 45, "JOC"),
            new ResponsibilityRule(["ucdp.state-based", "ucdp.non-state", "acled.battles", "acled.explosions-remote-violence"], ["*"], "FORCE", ["JOC"], 30, 120, "JOC"),
            new ResponsibilityRule(["acled.protests", "acled.riots"], ["*"], "UNPOL", ["CIVAFF"], 60, 240, "JOC"),
            new ResponsibilityRule(["ocha-access"], ["*"], "CIVAFF", ["FORCE"], 120, 480, "JOC"),
        ],
        [
            new AssistanceRule(["medevac"], "FORCE", 10, 30, "JOC"),
            new AssistanceRule(["*"], "kind:military", 60, 240, "JOC"),
            new AssistanceRule(["*"], "kind:police", 60, 240, "JOC"),
        ]);

    private const string EscortTitle = "Escort for the WFP convoy Bambari – Bria";
    private const string MedevacTitle = "Casualty evacuation from the Bambari health centre";
    private const string AssessmentTitle = "Security assessment of the Grimari market road";
    private const string MeetingTitle = "Weekly security coordination meeting, Bambari";

    /// <summary>Whether a run made every part (the last is the meeting): a store seeded whole is served as it is.</summary>
    public static async Task<bool> SeededAsync(ConcordDb db, CancellationToken cancellationToken) =>
        await db.Agreements.AnyAsync(a => a.Code == AgreementCode, cancellationToken) && await db.Meetings.AnyAsync(m => m.Title == MeetingTitle, cancellationToken);

    public static async Task SeedAsync(IServiceProvider services, TextWriter output, CancellationToken cancellationToken)
    {
        var directory = services.GetRequiredService<MissionDirectory>();
        var viewers = services.GetRequiredService<ViewerDirectory>();
        var time = services.GetRequiredService<TimeProvider>();
        await using var scope = services.CreateAsyncScope();
        var desk = scope.ServiceProvider.GetRequiredService<CoordinationDesk>();
        var db = desk.Db;
        var markings = services.GetRequiredService<MarkingFormat>();
        var now = time.GetUtcNow().UtcDateTime;
        // Each part is made unless it is there: a run stopped half-way (a refusal, Ctrl+C) is completed by the next one,
        // rather than left without the parts after the one that stopped it.
        if (!await db.Agreements.AnyAsync(a => a.Code == AgreementCode, cancellationToken))
        {
            var (parties, errors) = await AdminEndpoints.ValidateAgreementAsync(Sop, directory, markings, cancellationToken);
            Check(errors.Count == 0 ? null : string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(' ', e.Value)}")));
            db.Agreements.Add(AdminEndpoints.NewVersion(Guid.CreateVersion7(), 1, AgreementCode, Sop, parties, directory, Audits.SystemActor, time));

            // The seeded history is not routed: the router starts at the end of the feed as it stands now.
            await IncidentRouter.MoveToEndAsync(db, cancellationToken);

            await desk.SaveAsync([Audits.Entry(null, AuditActions.Administer, "agreement", null, AuditMarking.None, now, Audits.Detail(new { created = AgreementCode, version = 1 }))], cancellationToken);
            await directory.ReloadAsync(force: true, cancellationToken);
        }

        // The first of that title (a member may have made one of the same title since): titles are not unique.
        async Task<AssistanceRequest?> Made(string title) => await db.Requests.Where(r => r.Title == title).OrderBy(r => r.Number).FirstOrDefaultAsync(cancellationToken);

        async Task<Viewer> As(string user) =>
            await viewers.ForMemberAsync(await DemoMission.MemberIdAsync(services, user, cancellationToken), cancellationToken)
            ?? throw new DemoSeedException($"demo member {user} is missing");

        // A request is moved on unless it was (a run stopped between its creation and its move left it as requested).
        var escort = await Made(EscortTitle);
        if (escort is null)
        {
            (escort, var problem) = await RequestEndpoints.CreateAsync(desk, new NewRequest(
                RequestTypes.ArmedEscort, EscortTitle, "14 trucks of food for the Bria displacement sites; departure 06:00 from the Bambari logistics base.",
                RequestPriorities.Priority, "FORCE", null, [[20.67, 5.76], [21.2, 6.1], [21.99, 6.54]], now.AddDays(2), now.AddDays(3),
                new RequestCriteria(
                    new LastResortCriteria(
                        "No commercial or NGO carrier accepts the Bambari – Bria road since the attacks of last month.",
                        "Food stocks at the Bria sites last four days; 12,000 displaced people depend on this convoy.",
                        "One convoy, two days, under humanitarian coordination; civilian transport resumes when the road is safe."),
                    new EscortCriteria(
                        "WFP rations for 12,000 people; the alternative is a break in the pipeline for three weeks.",
                        "The prefecture and the internal security forces cannot secure the road between Ippy and Bria.",
                        "Two convoy attacks on this axis in four weeks; UNDSS assesses that an escort reduces the risk.",
                        "A single escorted convoy while the road is repaired; the cluster reviews access weekly.")),
                null, null), await As("ocha.cmcoord"), cancellationToken);
            Check(problem?.ProblemDetails.Detail);
        }

        if (escort!.Status == RequestStatuses.Requested)
        {
            Check((await RequestEndpoints.MoveAsync(desk, escort, new StatusChange(RequestStatuses.Accepted, null), await As("force.g2"), cancellationToken))?.ProblemDetails.Detail);
        }

        if (await Made(MedevacTitle) is null)
        {
            var (_, medevacProblem) = await RequestEndpoints.CreateAsync(desk, new NewRequest(
                RequestTypes.Evacuation, MedevacTitle, "Two patients with gunshot wounds need surgery in Bangui.",
                RequestPriorities.Urgent, "FORCE", new PointInput(5.7636, 20.6742), null, now, now.AddHours(6),
                new RequestCriteria(new LastResortCriteria(
                    "No civilian air ambulance can land in Bambari before tomorrow; the road to Bangui takes ten hours.",
                    "Both patients need surgery within hours; only the Force's helicopter can move them in time.",
                    "One flight Bambari – Bangui today; no further use of military assets is requested."), null),
                null, null), await As("ngo.med"), cancellationToken);
            Check(medevacProblem?.ProblemDetails.Detail);
        }

        var assessment = await Made(AssessmentTitle);
        if (assessment is null)
        {
            (assessment, var assessmentProblem) = await RequestEndpoints.CreateAsync(desk, new NewRequest(
                RequestTypes.SecurityAssessment, AssessmentTitle, "Traders report checkpoints; we need an assessment before market day.",
                RequestPriorities.Routine, "kind:military", new PointInput(5.7306, 20.0581), null, now.AddDays(1), now.AddDays(4), null, null, null),
                await As("civaff.officer"), cancellationToken);
            Check(assessmentProblem?.ProblemDetails.Detail);
        }

        if (assessment!.Status == RequestStatuses.Requested)
        {
            Check((await RequestEndpoints.MoveAsync(desk, assessment, new StatusChange(RequestStatuses.Acknowledged, null), await As("rwabatt.patrol"), cancellationToken))?.ProblemDetails.Detail);
        }

        if (!await db.Meetings.AnyAsync(m => m.Title == MeetingTitle, cancellationToken))
        {
            var (_, _, meetingProblem) = await FieldEndpoints.CreateMeetingAsync(desk, new NewMeeting(
                MeetingTitle, now.AddHours(-2), "MINUSCA Bambari field office",
                ["FORCE", "RWABATT", "UNPOL", "CIVAFF", "OCHA"],
                ["Joint patrols on the Bambari – Ippy axis twice a week.", "Humanitarian notification of convoys 48 hours ahead through OCHA."],
                [
                    new NewActionItem("Plan the first joint patrol on the Ippy axis", "RWABATT", now.AddDays(2)),
                new NewActionItem("Share the market days calendar with the Force", "CIVAFF", now.AddDays(1)),
                new NewActionItem("Circulate the convoy notification template", "OCHA", now.AddDays(3)),
                ],
                new MarkingDto(DemoMission.LevelFor(markings.Scheme, "UNCLASSIFIED"), ["mission"], [])), await As("joc.officer"), cancellationToken);
            Check(meetingProblem?.ProblemDetails.Detail);
        }

        await output.WriteLineAsync($"Coordination: agreement {AgreementCode} routes new incidents to lead organisations; 3 requests for assistance and a meeting with 3 action items are in flight (the urgent medevac request escalates to the JOC if nobody answers it within 10 minutes).");
    }

    private static void Check(string? error)
    {
        if (error is not null)
        {
            throw new DemoSeedException("demo coordination seeding failed: " + error);
        }
    }
}

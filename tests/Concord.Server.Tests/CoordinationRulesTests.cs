using Concord.Server.Access;
using Concord.Server.Coordination;
using Concord.Server.Sharing;

namespace Concord.Server.Tests;

/// <summary>The pure decisions of coordination: which rule routes an incident, which terms a request gets, what a deadline owes.</summary>
public sealed class CoordinationRulesTests
{
    /// <summary>The kinds of the organisations these tests name.</summary>
    private static OrganizationKind? KindOf(string code) => code switch
    {
        "FORCE" or "RWABATT" or "ZAMBATT" => OrganizationKind.Military,
        "UNPOL" => OrganizationKind.Police,
        "OCHA" => OrganizationKind.Humanitarian,
        "JOC" => OrganizationKind.Civilian,
        _ => null,
    };

    private static Agreement With(string code, params ResponsibilityRule[] rules) => Agreement(code, "|org:FORCE|", new AgreementCoordination(rules, []));

    private static Agreement Agreement(string code, string parties, AgreementCoordination coordination) => new()
    {
        Id = Guid.NewGuid(),
        Version = 1,
        Code = code,
        Name = code,
        Parties = parties,
        RulesJson = "[]",
        CoordinationJson = coordination.ToJson(),
        CreatedAt = DateTime.UtcNow,
        CreatedBy = "test",
    };

    [Fact]
    public void The_most_specific_rule_routes_an_incident_area_before_category()
    {
        var anywhere = new ResponsibilityRule(["acled.battles.armed-clash"], ["*"], "UNPOL", [], 30, 60, "JOC");
        var sector = new ResponsibilityRule(["acled"], ["SECTOR-EAST"], "FORCE", ["UNPOL"], 15, 60, "JOC");
        var agreements = new[] { With("A", anywhere), With("B", sector) };

        var east = Assert.Single(Responsibilities.Resolve(agreements, "acled.battles.armed-clash", "SECTOR-EAST"));
        Assert.Equal("FORCE", east.Lead);
        Assert.Equal(["UNPOL"], east.Supporting);
        Assert.Equal(TimeSpan.FromMinutes(15), east.Acknowledge);
        Assert.Equal("B", east.AgreementCode);

        Assert.Equal("UNPOL", Assert.Single(Responsibilities.Resolve(agreements, "acled.battles.armed-clash", "SECTOR-WEST")).Lead);
        Assert.Empty(Responsibilities.Resolve(agreements, "acled.protests.peaceful-protest", "SECTOR-WEST"));
        Assert.Empty(Responsibilities.Resolve(agreements, "acledx.other", "SECTOR-WEST"));
    }

    [Fact]
    public void Equally_specific_rules_of_two_agreements_both_route()
    {
        var agreements = new[]
        {
            With("A", new ResponsibilityRule(["poc"], ["*"], "FORCE", [], null, null, null)),
            With("B", new ResponsibilityRule(["poc"], ["*"], "UNPOL", [], null, null, null)),
        };
        Assert.Equal(["FORCE", "UNPOL"], Responsibilities.Resolve(agreements, "poc.attack-on-civilians", null).Select(r => r.Lead).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_retired_agreement_routes_nothing()
    {
        var retired = With("A", new ResponsibilityRule(["*"], ["*"], "FORCE", [], null, null, null));
        retired.RetiredAt = DateTime.UtcNow;
        Assert.Empty(Responsibilities.Resolve([retired], "poc", null));
    }

    [Fact]
    public void Request_terms_come_from_the_most_specific_assistance_rule_or_the_priority()
    {
        var agreement = Agreement("MOU", "|org:FORCE|org:JOC|org:RWABATT|org:UNPOL|", new AgreementCoordination([], [
            new AssistanceRule(["*"], "kind:military", 60, 240, "JOC"),
            new AssistanceRule(["medevac"], "FORCE", 5, 30, "JOC"),
        ]));

        var medevac = Responsibilities.ForRequest([agreement], "UNPOL", "medevac", "urgent", "FORCE", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), "JOC", "MOU"), (medevac.Acknowledge, medevac.Respond, medevac.EscalateTo, medevac.AgreementCode));
        var escort = Responsibilities.ForRequest([agreement], "UNPOL", "armed-escort", "routine", "RWABATT", OrganizationKind.Military, KindOf);
        Assert.Equal(TimeSpan.FromMinutes(60), escort.Acknowledge);
        var police = Responsibilities.ForRequest([agreement], "FORCE", "armed-escort", "urgent", "UNPOL", OrganizationKind.Police, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), (string?)null, (string?)null), (police.Acknowledge, police.Respond, police.EscalateTo, police.AgreementCode));

        // An agreement binds its parties only: a requester that did not sign it gets the priority's deadlines and no escalation.
        var outsider = Responsibilities.ForRequest([agreement], "OCHA", "medevac", "urgent", "FORCE", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(15), TimeSpan.FromHours(1), (string?)null, (string?)null), (outsider.Acknowledge, outsider.Respond, outsider.EscalateTo, outsider.AgreementCode));

        // A rule for a kind binds the parties of that kind only: a military organisation that never signed keeps the
        // priority's deadlines, and a request to the kind is held to it only while some party is of that kind.
        var nonParty = Responsibilities.ForRequest([agreement], "UNPOL", "armed-escort", "routine", "ZAMBATT", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromHours(4), TimeSpan.FromHours(24), (string?)null, (string?)null), (nonParty.Acknowledge, nonParty.Respond, nonParty.EscalateTo, nonParty.AgreementCode));
        var toTheKind = Responsibilities.ForRequest([agreement], "UNPOL", "armed-escort", "routine", null, OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(60), "MOU"), (toTheKind.Acknowledge, toTheKind.AgreementCode));
        var ochaAlone = Agreement("OCHA-ONLY", "|org:OCHA|", new AgreementCoordination([], [new AssistanceRule(["*"], "kind:military", 1, 2, "OCHA")]));
        var toForce = Responsibilities.ForRequest([ochaAlone], "OCHA", "armed-escort", "routine", "FORCE", OrganizationKind.Military, KindOf);
        var toMilitary = Responsibilities.ForRequest([ochaAlone], "OCHA", "armed-escort", "routine", null, OrganizationKind.Military, KindOf);
        Assert.All(new[] { toForce, toMilitary }, terms => Assert.Equal((TimeSpan.FromHours(4), (string?)null), (terms.Acknowledge, terms.AgreementCode)));
        // Nor is a requester itself the party of the kind: a battalion that signed with the JOC cannot answer its own
        // request, and the military organisations that would answer it never signed.
        var battalion = Agreement("RWABATT-JOC", "|org:JOC|org:RWABATT|", new AgreementCoordination([], [new AssistanceRule(["*"], "kind:military", 10, 30, "JOC")]));
        var ownKind = Responsibilities.ForRequest([battalion], "RWABATT", "armed-escort", "routine", null, OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromHours(4), (string?)null, (string?)null), (ownKind.Acknowledge, ownKind.EscalateTo, ownKind.AgreementCode));

        // A rule that sets one deadline never leaves the answer due before the acknowledgement: the priority's default gives way.
        var oneSided = Agreement("SOP", "|org:FORCE|org:UNPOL|", new AgreementCoordination([], [
            new AssistanceRule(["armed-escort"], "kind:military", 120, null, null),
            new AssistanceRule(["medevac"], "kind:military", null, 30, null),
        ]));
        var slowAcknowledge = Responsibilities.ForRequest([oneSided], "UNPOL", "armed-escort", "urgent", "FORCE", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(120), TimeSpan.FromMinutes(120)), (slowAcknowledge.Acknowledge, slowAcknowledge.Respond));
        var quickAnswer = Responsibilities.ForRequest([oneSided], "UNPOL", "medevac", "routine", "FORCE", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(30), TimeSpan.FromMinutes(30)), (quickAnswer.Acknowledge, quickAnswer.Respond));
        var defaults = Responsibilities.ForRequest([oneSided], "UNPOL", "armed-escort", "routine", "FORCE", OrganizationKind.Military, KindOf);
        Assert.Equal((TimeSpan.FromMinutes(120), TimeSpan.FromHours(24)), (defaults.Acknowledge, defaults.Respond));
    }

    [Fact]
    public void The_next_deadline_is_the_earliest_one_still_owed()
    {
        var now = new DateTime(2026, 11, 30, 8, 0, 0, DateTimeKind.Utc);
        var task = new CoordinationTask
        {
            Id = Guid.NewGuid(),
            Title = "t",
            OrganizationId = Guid.NewGuid(),
            Role = TaskRoles.Lead,
            Status = TaskStatuses.Open,
            CreatedBy = "test",
            CreatedAt = now,
            UpdatedAt = now,
            AcknowledgeBy = now.AddMinutes(30),
            RespondBy = now.AddHours(2),
            Classification = 0,
            ReleasableTo = "|mission|",
            Caveats = 0,
        };
        task.Reschedule();
        Assert.Equal(now.AddMinutes(30), task.NextDeadline);
        Assert.Null(task.OverdueAt(now.AddMinutes(29)));
        Assert.Equal(Deadlines.Acknowledge, task.OverdueAt(now.AddMinutes(31)));

        task.AcknowledgeEscalatedAt = now.AddMinutes(30);
        task.Reschedule();
        Assert.Equal(now.AddHours(2), task.NextDeadline);

        task.Status = TaskStatuses.Done;
        task.RespondedAt = now.AddMinutes(40);
        task.Reschedule();
        Assert.Null(task.NextDeadline);
        Assert.Null(task.OverdueAt(now.AddDays(1)));
    }

    [Fact]
    public void Lifecycles_allow_only_their_moves()
    {
        Assert.True(RequestStatuses.CanMove(RequestStatuses.Requested, RequestStatuses.Accepted));
        Assert.True(RequestStatuses.CanMove(RequestStatuses.Acknowledged, RequestStatuses.Declined));
        Assert.False(RequestStatuses.CanMove(RequestStatuses.Requested, RequestStatuses.InProgress));
        Assert.False(RequestStatuses.CanMove(RequestStatuses.Declined, RequestStatuses.Accepted));
        Assert.False(RequestStatuses.CanMove(RequestStatuses.Completed, RequestStatuses.Cancelled));
        Assert.True(TaskStatuses.CanMove(TaskStatuses.Open, TaskStatuses.Done));
        Assert.False(TaskStatuses.CanMove(TaskStatuses.Declined, TaskStatuses.Open));
        Assert.False(TaskStatuses.CanMove(TaskStatuses.Acknowledged, TaskStatuses.Acknowledged));
    }

    [Fact]
    public void Last_resort_applies_to_humanitarians_asking_the_military_and_escort_criteria_to_every_escort()
    {
        Assert.True(RequestRules.NeedsLastResort(OrganizationKind.Humanitarian, OrganizationKind.Military));
        Assert.False(RequestRules.NeedsLastResort(OrganizationKind.Police, OrganizationKind.Military));
        Assert.False(RequestRules.NeedsLastResort(OrganizationKind.Humanitarian, OrganizationKind.Police));
        var errors = new Dictionary<string, string[]>();
        RequestRules.Check(new RequestCriteria(null, new EscortCriteria("too short", null, new string('x', 30), new string('y', 30))), lastResort: false, escort: true, errors);
        Assert.Equal(["criteria.escort.humanitarianNeed", "criteria.escort.responsibleAuthorities"], errors.Keys.Order(StringComparer.Ordinal));
    }
}

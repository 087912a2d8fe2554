using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Sharing;

namespace Concord.Server.Coordination;

/// <summary>
/// What an agreement says about coordination: who leads and supports on which incidents where, and how fast requests
/// for assistance to an organisation must be answered. Deadlines are in minutes; <c>escalateTo</c> names the organisation
/// (a party, typically the joint operations centre) that missed deadlines go to.
/// </summary>
internal sealed record AgreementCoordination(IReadOnlyList<ResponsibilityRule>? Responsibilities, IReadOnlyList<AssistanceRule>? Assistance)
{
    public static readonly AgreementCoordination None = new([], []);

    public bool IsEmpty => (Responsibilities?.Count ?? 0) == 0 && (Assistance?.Count ?? 0) == 0;

    public static AgreementCoordination Parse(string json) =>
        JsonSerializer.Deserialize<AgreementCoordination>(json, JsonSerializerOptions.Web) ?? None;

    public string ToJson() => JsonSerializer.Serialize(this, JsonSerializerOptions.Web);

    /// <summary>
    /// The rules with their organisation codes as stored elsewhere (trimmed, capitals): validation accepts " unpol ", and
    /// the routers look codes up as written, so a rule kept as typed routed nothing and escalated nowhere.
    /// </summary>
    public AgreementCoordination Normalized()
    {
        static string? Code(string? code) => code?.Trim().ToUpperInvariant();
        // A kind as its token ("kind: Military" is kind:military): the request terms compare it with the addressee's kind.
        static string? Addressee(string? addressee) =>
            addressee?.Trim() is not { } trimmed ? null
            : !trimmed.StartsWith("kind:", StringComparison.OrdinalIgnoreCase) ? trimmed.ToUpperInvariant()
            : OrganizationKinds.TryParse(trimmed[5..], out var kind) ? Community.Kind(kind) : trimmed;
        return new AgreementCoordination(
            Responsibilities?.Select(r => r with { Lead = Code(r.Lead), Supporting = r.Supporting?.Select(s => Code(s)!).ToList(), EscalateTo = Code(r.EscalateTo) }).ToList(),
            Assistance?.Select(a => a with { Addressee = Addressee(a.Addressee), EscalateTo = Code(a.EscalateTo) }).ToList());
    }
}

/// <summary>Incidents of <see cref="Categories"/> (a code covers the codes below it; <c>*</c> any) in <see cref="Areas"/> (area codes; <c>*</c> anywhere).</summary>
internal sealed record ResponsibilityRule(
    IReadOnlyList<string>? Categories,
    IReadOnlyList<string>? Areas,
    string? Lead,
    IReadOnlyList<string>? Supporting,
    int? AcknowledgeMinutes,
    int? RespondMinutes,
    string? EscalateTo);

/// <summary>Requests of <see cref="Types"/> (<c>*</c> any) addressed to <see cref="Addressee"/> (an organisation code or <c>kind:KIND</c>).</summary>
internal sealed record AssistanceRule(IReadOnlyList<string>? Types, string? Addressee, int? AcknowledgeMinutes, int? RespondMinutes, string? EscalateTo);

/// <summary>Who an incident goes to under one rule, with the deadlines and where misses escalate.</summary>
internal sealed record Route(string AgreementCode, string Lead, IReadOnlyList<string> Supporting, TimeSpan? Acknowledge, TimeSpan? Respond, string? EscalateTo);

/// <summary>The deadlines of a request and where misses escalate, with the agreement they come from (null: defaults by priority).</summary>
internal sealed record RequestTerms(string? AgreementCode, TimeSpan Acknowledge, TimeSpan Respond, string? EscalateTo);

/// <summary>Pure decisions about responsibilities; the routers and endpoints apply them.</summary>
internal static class Responsibilities
{
    public const int MaxMinutes = 60 * 24 * 90;

    /// <summary>
    /// The routes for an incident: the most specific matching rules (an area named over anywhere, then the longest
    /// category). Equally specific rules of several agreements all apply: each names its own lead.
    /// </summary>
    public static IReadOnlyList<Route> Resolve(IEnumerable<Agreement> agreements, string category, string? areaCode)
    {
        var matches = new List<(Route Route, int Specificity)>();
        foreach (var agreement in agreements.Where(a => a.RetiredAt is null))
        {
            foreach (var rule in agreement.Coordination.Responsibilities ?? [])
            {
                var areas = rule.Areas is { Count: > 0 } a ? a : ["*"];
                var areaSpecific = areaCode is not null && areas.Any(x => string.Equals(x, areaCode, StringComparison.OrdinalIgnoreCase));
                if (!areaSpecific && !areas.Contains("*"))
                {
                    continue;
                }

                var categoryLength = (rule.Categories is { Count: > 0 } c ? c : ["*"]).Max(x => CategoryMatch(x, category));
                if (categoryLength < 0 || rule.Lead is null)
                {
                    continue;
                }

                var route = new Route(agreement.Code, rule.Lead.ToUpperInvariant(), (rule.Supporting ?? []).Select(s => s.ToUpperInvariant()).ToList(),
                    Minutes(rule.AcknowledgeMinutes), Minutes(rule.RespondMinutes), rule.EscalateTo?.ToUpperInvariant());
                matches.Add((route, (areaSpecific ? 10_000 : 0) + categoryLength));
            }
        }

        if (matches.Count == 0)
        {
            return [];
        }

        var best = matches.Max(m => m.Specificity);
        return matches.Where(m => m.Specificity == best).Select(m => m.Route).ToList();
    }

    /// <summary>
    /// The terms for a request: the most specific assistance rule (organisation over kind, a type over any) of an agreement
    /// the requesting organisation is a party to, else defaults by priority. An agreement binds its parties only: one the
    /// requester never signed does not set its deadlines, nor release its request to an escalation organisation; and a
    /// rule for a kind (<c>kind:military</c>) holds an addressee of that kind to its deadlines only if the addressee signed
    /// it too, and a request to the kind only if some party other than the requester is of that kind (<paramref name="kindOf"/>: an organisation's
    /// kind by code).
    /// </summary>
    public static RequestTerms ForRequest(IEnumerable<Agreement> agreements, string requesterCode, string type, string priority, string? addresseeCode,
        OrganizationKind? addresseeKind, Func<string, OrganizationKind?> kindOf)
    {
        (AssistanceRule Rule, string Code, int Specificity)? best = null;
        var requester = Releasability.Pattern(Community.Organization(requesterCode));
        foreach (var agreement in agreements.Where(a => a.RetiredAt is null && a.Parties.Contains(requester, StringComparison.Ordinal)))
        {
            foreach (var rule in agreement.Coordination.Assistance ?? [])
            {
                var addressee = rule.Addressee?.Trim() ?? "";
                var byOrganization = addresseeCode is not null && string.Equals(addressee, addresseeCode, StringComparison.OrdinalIgnoreCase);
                // Parsed, not compared as text: an agreement stored before its rules were normalised may hold "kind: military".
                var byKind = addresseeKind is { } kind && addressee.StartsWith("kind:", StringComparison.OrdinalIgnoreCase)
                    && OrganizationKinds.TryParse(addressee[5..], out var ruleKind) && ruleKind == kind
                    && (addresseeCode is not null
                        ? agreement.Parties.Contains(Releasability.Pattern(Community.Organization(addresseeCode)), StringComparison.Ordinal)
                        // Another party than the requester, which does not answer its own request.
                        : PartyCodes(agreement).Any(code => !string.Equals(code, requesterCode, StringComparison.OrdinalIgnoreCase) && kindOf(code) == kind));
                var types = rule.Types is { Count: > 0 } t ? t : ["*"];
                var byType = types.Contains(type);
                if ((!byOrganization && !byKind) || (!byType && !types.Contains("*")))
                {
                    continue;
                }

                var specificity = (byOrganization ? 2 : 0) + (byType ? 1 : 0);
                // Of equally specific rules of two agreements, the agreement first by code, as the router's order is: the
                // store's order of agreements (which a new version or PostgreSQL moving a row changes) must not decide
                // the deadlines and where a miss goes.
                if (best is null || specificity > best.Value.Specificity
                    || (specificity == best.Value.Specificity && string.CompareOrdinal(agreement.Code, best.Value.Code) < 0))
                {
                    best = (rule, agreement.Code, specificity);
                }
            }
        }

        var (acknowledge, respond) = RequestPriorities.DefaultDeadlines(priority);
        if (best is not { } found)
        {
            return new RequestTerms(null, acknowledge, respond, null);
        }

        // A rule that sets one deadline keeps the priority's default for the other, but never one that puts the answer
        // before the acknowledgement (a 120-minute acknowledgement with an urgent request's 60-minute answer would escalate
        // "not answered" first, then "not acknowledged"): the default gives way to the rule's figure.
        var (ruleAcknowledge, ruleRespond) = (Minutes(found.Rule.AcknowledgeMinutes), Minutes(found.Rule.RespondMinutes));
        acknowledge = ruleAcknowledge ?? (ruleRespond is { } r && r < acknowledge ? r : acknowledge);
        respond = ruleRespond ?? (acknowledge > respond ? acknowledge : respond);
        return new RequestTerms(found.Code, acknowledge, respond, found.Rule.EscalateTo?.ToUpperInvariant());
    }

    /// <summary>Checks an agreement's coordination rules: organisations must be parties, categories and areas known, deadlines sane.</summary>
    public static void Validate(AgreementCoordination coordination, IReadOnlyCollection<string> partyCodes, MissionDirectory directory, Dictionary<string, string[]> errors)
    {
        var responsibilities = coordination.Responsibilities ?? [];
        var tooMany = false;
        foreach (var (field, count) in new[] { ("responsibilities", responsibilities.Count), ("assistance", coordination.Assistance?.Count ?? 0) })
        {
            if (count > 200)
            {
                errors[field] = [$"at most 200 {(field == "assistance" ? "assistance" : "responsibility")} rules ({count} given)"];
                tooMany = true;
            }
        }

        if (tooMany)
        {
            return;
        }

        // A code as organisations are coded (ASCII): "UNMAſ" (a long s) upper-cases to UNMAS, and a check comparing it with
        // UNMAS ordinally would not see the duty it gives that party.
        bool IsParty(string? code) => code is not null && Community.IsOrganizationCode(code.Trim()) && partyCodes.Contains(code.Trim().ToUpperInvariant());

        for (var i = 0; i < responsibilities.Count; i++)
        {
            var rule = responsibilities[i];
            var field = $"responsibilities[{i}]";
            // Left out, a list would match everything (the rule read as for any category, anywhere): a rule meant for one
            // kind of incident would lead every incident to its organisation. "Everything" is said with *.
            if (rule.Categories is not { Count: > 0 })
            {
                errors[field + ".categories"] = ["is required: taxonomy codes, or [\"*\"] for every category"];
            }

            if (rule.Areas is not { Count: > 0 })
            {
                errors[field + ".areas"] = ["is required: area codes, or [\"*\"] for anywhere"];
            }

            foreach (var category in rule.Categories ?? [])
            {
                if (category != "*" && !directory.IsKnownCategory(category))
                {
                    errors[field + ".categories"] = [$"'{QueryReader.Shown(category)}' is not in the taxonomy (or use *)"];
                }
            }

            foreach (var area in rule.Areas ?? [])
            {
                if (area != "*" && directory.AreaByCode(area) is null)
                {
                    errors[field + ".areas"] = [$"no area has the code '{QueryReader.Shown(area)}' (or use *)"];
                }
            }

            if (!IsParty(rule.Lead))
            {
                errors[field + ".lead"] = [$"'{QueryReader.Shown(rule.Lead ?? "")}' must be a party organisation of the agreement"];
            }

            foreach (var supporting in rule.Supporting ?? [])
            {
                if (!IsParty(supporting))
                {
                    errors[field + ".supporting"] = [$"'{QueryReader.Shown(supporting ?? "")}' must be a party organisation of the agreement"];
                }
            }

            CheckDeadlines(rule.AcknowledgeMinutes, rule.RespondMinutes, rule.EscalateTo, field, IsParty, errors);
        }

        var assistance = coordination.Assistance ?? [];
        for (var i = 0; i < assistance.Count; i++)
        {
            var rule = assistance[i];
            var field = $"assistance[{i}]";
            if (rule.Types is not { Count: > 0 })
            {
                errors[field + ".types"] = [$"is required: request types ({string.Join(", ", RequestTypes.All)}), or [\"*\"] for every type"];
            }

            foreach (var type in rule.Types ?? [])
            {
                if (type != "*" && !RequestTypes.All.Contains(type))
                {
                    errors[field + ".types"] = [$"'{QueryReader.Shown(type)}' is not a request type ({string.Join(", ", RequestTypes.All)}, or *)"];
                }
            }

            var addressee = rule.Addressee?.Trim() ?? "";
            var isKind = addressee.StartsWith("kind:", StringComparison.OrdinalIgnoreCase) && OrganizationKinds.TryParse(addressee[5..], out _);
            if (!isKind && !IsParty(addressee))
            {
                errors[field + ".addressee"] = ["must be a party organisation's code or kind:KIND"];
            }
            else if (isKind && OrganizationKinds.TryParse(addressee[5..], out var kind) && !partyCodes.Any(c => directory.OrganizationByCode(c)?.Kind == kind))
            {
                // An agreement binds its parties only: a kind no party is of would hold to its deadlines organisations that
                // never signed it.
                errors[field + ".addressee"] = [$"no party is of kind {OrganizationKinds.Token(kind)}: an agreement binds its parties only"];
            }

            CheckDeadlines(rule.AcknowledgeMinutes, rule.RespondMinutes, rule.EscalateTo, field, IsParty, errors);
        }
    }

    /// <summary>The codes of an agreement's parties (stored <c>|org:A|org:B|</c>).</summary>
    private static IEnumerable<string> PartyCodes(Agreement agreement) =>
        agreement.Parties.Split('|', StringSplitOptions.RemoveEmptyEntries).Where(p => p.StartsWith("org:", StringComparison.Ordinal)).Select(p => p[4..]);

    private static void CheckDeadlines(int? acknowledge, int? respond, string? escalateTo, string field, Func<string?, bool> isParty, Dictionary<string, string[]> errors)
    {
        if (acknowledge is < 1 or > MaxMinutes)
        {
            errors[field + ".acknowledgeMinutes"] = [$"must be 1 to {MaxMinutes} minutes"];
        }

        if (respond is < 1 or > MaxMinutes)
        {
            errors[field + ".respondMinutes"] = [$"must be 1 to {MaxMinutes} minutes"];
        }
        else if (acknowledge is { } a && respond is { } r && r < a)
        {
            errors[field + ".respondMinutes"] = ["must not be shorter than acknowledgeMinutes"];
        }

        if (escalateTo is not null && !isParty(escalateTo))
        {
            errors[field + ".escalateTo"] = [$"'{QueryReader.Shown(escalateTo)}' must be a party organisation of the agreement"];
        }
    }

    /// <summary>How long a code matches a category: −1 no match, 0 for <c>*</c>, else the code's length.</summary>
    private static int CategoryMatch(string code, string category) =>
        code == "*" ? 0
        : category == code || category.StartsWith(code + ".", StringComparison.Ordinal) ? code.Length
        : -1;

    private static TimeSpan? Minutes(int? minutes) => minutes is { } m ? TimeSpan.FromMinutes(m) : null;
}

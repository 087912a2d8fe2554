using System.Globalization;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Audit;
using Concord.Server.Coordination;
using Concord.Server.Data;
using Concord.Server.Http;
using Concord.Server.Organizations;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Sharing;

internal sealed record NewOrganization(string? Code, string? Name, string? Kind, string? Nation);

internal sealed record MemberRequest(string? UserName, string? DisplayName, IReadOnlyList<string>? Roles, string? Clearance, IReadOnlyList<string>? Caveats, string? Password, bool? Disabled);

internal sealed record MemberDto(Guid Id, string UserName, string DisplayName, string Organization, IReadOnlyList<string> Roles, string Clearance, IReadOnlyList<string> Caveats, bool Disabled)
{
    /// <summary>Disabled by a mission administrator or on the server: only a mission administrator enables the member again.</summary>
    public bool DisabledByMission { get; init; }
}

internal sealed record GroupRequest(string? Code, string? Name);

internal sealed record GroupDto(string Code, string Name, string Owner, IReadOnlyList<string> Members);

internal sealed record AgreementRequest(
    string? Code,
    string? Name,
    IReadOnlyList<string>? Parties,
    IReadOnlyList<AgreementRule>? Rules,
    IReadOnlyList<ResponsibilityRule>? Responsibilities = null,
    IReadOnlyList<AssistanceRule>? Assistance = null);

internal sealed record AgreementDto(
    Guid Id,
    string Code,
    int Version,
    string Name,
    IReadOnlyList<string> Parties,
    IReadOnlyList<AgreementRule> Rules,
    IReadOnlyList<ResponsibilityRule> Responsibilities,
    IReadOnlyList<AssistanceRule> Assistance,
    DateTimeOffset CreatedAt,
    string CreatedBy,
    DateTimeOffset? RetiredAt);

internal sealed record CaveatRequest(string? Code, string? Description);

/// <summary>A caveat: its code, what it means, and its bit in the caveat sets GeoJSON properties carry (<c>caveats</c>).</summary>
internal sealed record CaveatDto(string Code, string Description, int Bit);

/// <summary>
/// Administration, itself authorised: mission administrators create organisations and caveats; an organisation's
/// administrators manage its members, the sharing groups it owns and the agreements it is party to. An administrator
/// cannot grant a clearance or a caveat they do not hold themselves.
/// </summary>
internal static class AdminEndpoints
{
    public static void MapAdministration(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/api").WithTags("Administration");
        admin.MapPost("/organizations", CreateOrganization).WithJsonBody<NewOrganization>().RequireAuthorization(Policies.MissionAdmin).WithSummary("Add an organisation (mission administrators).");
        admin.MapGet("/organizations/{code}/members", ListMembers).RequireAuthorization(Policies.OrganizationAdmin).WithSummary("An organisation's members (its administrators).");
        admin.MapPost("/organizations/{code}/members", AddMember).WithJsonBody<MemberRequest>().RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Add a member (the organisation's administrators).");
        admin.MapPatch("/members/{userName}", UpdateMember).WithJsonBody<MemberRequest>().RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Change a member's roles, clearance, caveats or status.");
        admin.MapGet("/groups", ListGroups).RequireAuthorization().WithSummary("Sharing groups and their member organisations.");
        admin.MapPost("/groups", CreateGroup).WithJsonBody<GroupRequest>().RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Create a sharing group owned by your organisation.");
        admin.MapPut("/groups/{code}/members/{organization}", AddGroupMember).RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Add an organisation to a group your organisation owns.");
        admin.MapDelete("/groups/{code}/members/{organization}", RemoveGroupMember).RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Remove an organisation from a group your organisation owns.");
        admin.MapGet("/agreements", ListAgreements).RequireAuthorization().WithSummary("Agreements in force (latest versions).");
        admin.MapGet("/agreements/{code}", AgreementVersions).RequireAuthorization().WithSummary("Every version of one agreement.");
        admin.MapPost("/agreements", CreateAgreement).WithJsonBody<AgreementRequest>().RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Record an agreement between organisations (administrators of a party).");
        admin.MapPut("/agreements/{code}", ReviseAgreement).WithJsonBody<AgreementRequest>().RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Write a new version of an agreement.");
        admin.MapDelete("/agreements/{code}", RetireAgreement).RequireAuthorization(Policies.OrganizationAdmin).WithSummary("Retire an agreement: it no longer marks new reports.");
        admin.MapGet("/caveats", (CaveatRegistry caveats, ConcordDb db) => db.Caveats.AsNoTracking().OrderBy(c => c.Bit).Select(c => new CaveatDto(c.Code, c.Description, c.Bit)).ToListAsync())
            .RequireAuthorization().WithSummary("The deployment's caveats.");
        admin.MapPost("/caveats", CreateCaveat).WithJsonBody<CaveatRequest>().RequireAuthorization(Policies.MissionAdmin).WithSummary("Add a caveat (mission administrators).");
    }

    /// <summary>
    /// Stores an administrative change with its audit entry and reloads the directory. False when another request stored
    /// the same key (code, user name, version) after this one checked for it, or removed the row this one removes:
    /// nothing was stored. <paramref name="taken"/> checks the key again inside the audit chain's transaction, which
    /// writes one at a time (across nodes too, on PostgreSQL): the loser then writes nothing, where a refused insert
    /// would have used up change-feed numbers and left readers waiting behind the gap. The store's unique index stays
    /// the last word (another process writing without the chain).
    /// </summary>
    private static async Task<bool> Changed(ConcordDb db, AuditChain chain, Viewer viewer, string entity, object detail, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time, CancellationToken cancellationToken,
        Func<ConcordDb, Task<bool>>? taken = null, Guid? record = null)
    {
        try
        {
            await chain.SaveAsync(db, [Audits.Entry(viewer, AuditActions.Administer, entity, record, AuditMarking.None, time.GetUtcNow().UtcDateTime, Audits.Detail(detail))], cancellationToken,
                async d =>
                {
                    await AdministratorUnchangedAsync(d, viewer, cancellationToken);
                    if (taken is not null && await taken(d))
                    {
                        throw new KeyTaken();
                    }
                });
        }
        catch (Exception e) when (e is KeyTaken or DbUpdateConcurrencyException || (e is DbUpdateException update && StoreErrors.IsUniqueViolation(update)))
        {
            return false;
        }
        catch (Http.AccessChangedException)
        {
            // The next request is judged by the administrator as they now are.
            viewers.Invalidate();
            throw;
        }

        // Stored: the change applies on this server at once, whatever becomes of the request. The cached viewers go first
        // (a reload that fails, or a client that leaves, must not keep old clearances and memberships in force here), and
        // the reload runs to its end even if the client has gone; viewers built meanwhile from the old directory go again.
        viewers.Invalidate();
        await directory.ReloadAsync(force: true, CancellationToken.None);
        viewers.Invalidate();
        return true;
    }

    /// <summary>The key of an administrative change was found taken inside the chain's transaction: nothing is written.</summary>
    private sealed class KeyTaken : Exception;

    /// <summary>
    /// Refuses (with <see cref="Http.AccessChangedException"/>) an administrative change whose administrator is no longer as
    /// the request was judged: the viewer it was checked against is cached (for up to <see cref="ViewerDirectory.Lifetime"/>,
    /// on every other node, and on every node after a change made with the CLI), so an administrator demoted, disabled or
    /// signed out everywhere by a password reset could otherwise undo their demotion, or add a member to keep a foothold,
    /// within that window. Read inside the audit chain's transaction, which administrative changes take one at a time.
    /// </summary>
    private static async Task AdministratorUnchangedAsync(ConcordDb db, Viewer viewer, CancellationToken cancellationToken)
    {
        var stored = await db.Members.AsNoTracking().Where(m => m.Id == viewer.MemberId)
            .Select(m => new { m.Disabled, m.SessionVersion, m.Clearance, m.Caveats, m.Roles, m.OrganizationId }).SingleOrDefaultAsync(cancellationToken);
        if (stored is null || stored.Disabled || stored.SessionVersion != viewer.SessionVersion || stored.Clearance != viewer.Clearance || stored.Caveats != viewer.CaveatBits
            || stored.OrganizationId != viewer.OrganizationId || !Member.RolesOf(stored.Roles).SetEquals(viewer.Roles))
        {
            throw new Http.AccessChangedException();
        }
    }

    private static ProblemHttpResult Refused(AdminRefusal refusal) =>
        Problems.Field(refusal.Field, refusal.Reason, refusal.Conflict ? StatusCodes.Status409Conflict : StatusCodes.Status400BadRequest);

    private static async Task<Results<Created<OrganizationDto>, ProblemHttpResult>> CreateOrganization(
        HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<NewOrganization>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var (organization, error) = await OrganizationAdmin.AddAsync(db, body!.Code ?? "", body.Name ?? "", body.Kind ?? "", body.Nation, time, context.RequestAborted);
        if (organization is null)
        {
            return Refused(error!);
        }

        if (!await Changed(db, chain, viewer, "organization", new { created = organization.Code }, directory, viewers, time, context.RequestAborted,
            d => d.Organizations.AnyAsync(o => o.Code == organization.Code, context.RequestAborted)))
        {
            return Problems.Field("code", $"organisation {organization.Code} already exists", StatusCodes.Status409Conflict);
        }
        return TypedResults.Created($"/api/organizations/{organization.Code}", organization.ToDto());
    }

    /// <summary>
    /// A password is set by an administrator signed in with their own password, not with an access token: a token (a
    /// script's, a wall display's) that leaked could otherwise set a password, its own member's or a new account's, and
    /// sign in with it for good, outliving the token's expiry and revocation (as tokens do not make tokens).
    /// </summary>
    private static ProblemHttpResult? SetsPasswordWithToken(HttpContext context, MemberRequest body) =>
        body.Password is not null && context.User.Identity?.AuthenticationType == ConcordAuthentication.TokenScheme
            ? Problems.Field("password", "a password is set by an administrator signed in with their password, not with an access token (or with concord user set --new-password on the server)", StatusCodes.Status403Forbidden)
            : null;

    /// <summary>An organisation's administrators manage it; mission administrators manage every organisation.</summary>
    private static bool Administers(Viewer viewer, Guid organizationId) =>
        viewer.HasRole(MemberRoles.MissionAdmin) || (viewer.HasRole(MemberRoles.OrganizationAdmin) && viewer.OrganizationId == organizationId);

    private static MemberDto ToDto(Member m, string organization, MarkingFormat markings) =>
        new(m.Id, m.UserName, m.DisplayName, organization, m.RoleSet.Order(StringComparer.Ordinal).ToList(), markings.Scheme.Label(m.Clearance), markings.Caveats.CodesOf(m.Caveats), m.Disabled)
        { DisabledByMission = m.DisabledByMission };

    private static async Task<Results<Ok<List<MemberDto>>, NotFound, ProblemHttpResult>> ListMembers(string code, Viewer viewer, ConcordDb db, MissionDirectory directory, MarkingFormat markings, CancellationToken cancellationToken)
    {
        if (await directory.OrganizationAsync(code, cancellationToken) is not { } organization)
        {
            return TypedResults.NotFound();
        }

        if (!Administers(viewer, organization.Id))
        {
            return Problems.Forbidden($"only administrators of {organization.Code} manage its members");
        }

        var members = await db.Members.AsNoTracking().Where(m => m.OrganizationId == organization.Id).OrderBy(m => m.UserName).ToListAsync(cancellationToken);
        return TypedResults.Ok(members.Select(m => ToDto(m, organization.Code, markings)).ToList());
    }

    /// <summary>Checks that an administrator grants nothing they do not hold; returns the errors keyed by field.</summary>
    private static Dictionary<string, string[]> GrantErrors(Viewer admin, MemberRequest body, MarkingFormat markings)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (body.Clearance is not null && markings.Scheme.TryParse(body.Clearance, out var level) && level > admin.Clearance)
        {
            errors["clearance"] = [$"you cannot grant a clearance above your own ({markings.Scheme.Label(admin.Clearance)})"];
        }

        if (body.Caveats is not null && markings.Caveats.TryGetBits(body.Caveats, out var bits, out _) && (bits & ~admin.CaveatBits) != 0)
        {
            errors["caveats"] = [$"you cannot grant caveats you do not hold ({string.Join(", ", markings.Caveats.CodesOf(bits & ~admin.CaveatBits))})"];
        }

        if (body.Roles?.Contains(MemberRoles.MissionAdmin) == true && !admin.HasRole(MemberRoles.MissionAdmin))
        {
            errors["roles"] = ["only a mission administrator grants mission-admin"];
        }
        else if (body.Roles?.Contains(MemberRoles.Auditor) == true && !admin.HasRole(MemberRoles.MissionAdmin))
        {
            // The audit log is mission-wide: who reads it is the mission's decision, not one organisation's.
            errors["roles"] = ["only a mission administrator grants auditor"];
        }

        return errors;
    }

    /// <summary>Whether <paramref name="member"/> holds something <paramref name="admin"/> could not grant.</summary>
    private static bool HoldsMore(Member member, Viewer admin) =>
        OutClears(member, admin) || member.RoleSet.Contains(MemberRoles.MissionAdmin) || member.RoleSet.Contains(MemberRoles.Auditor);

    /// <summary>A member cleared above the administrator, or holding a caveat the administrator does not.</summary>
    private static bool OutClears(Member member, Viewer admin) => member.Clearance > admin.Clearance || (member.Caveats & ~admin.CaveatBits) != 0;

    private static async Task<Results<Created<MemberDto>, NotFound, ProblemHttpResult>> AddMember(
        string code, HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        if (await directory.OrganizationAsync(code, context.RequestAborted) is not { } organization)
        {
            return TypedResults.NotFound();
        }

        if (!Administers(viewer, organization.Id))
        {
            return Problems.Forbidden($"only administrators of {organization.Code} add its members");
        }

        var (body, problem) = await JsonBody.ReadAsync<MemberRequest>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (SetsPasswordWithToken(context, body!) is { } byToken)
        {
            return byToken;
        }

        if (body!.Password is null && context.User.Identity?.AuthenticationType == ConcordAuthentication.TokenScheme)
        {
            // A new member needs a password, which a token may not set: said so, rather than that it is too short.
            return Problems.Field("password", "a new member needs a password, which is set by an administrator signed in with their password, not with an access token (or with concord user add on the server)", StatusCodes.Status403Forbidden);
        }

        await directory.KnowCaveatsAsync(body!.Caveats, context.RequestAborted);
        var errors = GrantErrors(viewer, body, markings);
        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var (member, error) = await MemberAdmin.AddAsync(db, new NewMember(body!.UserName ?? "", organization.Code, body.DisplayName, body.Roles ?? [], body.Clearance, body.Caveats ?? [], body.Password ?? ""),
            markings.Scheme, markings.Caveats, time, context.RequestAborted);
        if (member is null)
        {
            return Refused(error!);
        }

        // Added disabled, an account is prepared for someone not yet arrived: its password works once it is enabled. Added
        // disabled by a mission administrator, it is the mission's decision, as when one disables it a moment later.
        member.SetDisabled(body.Disabled ?? false, byMission: viewer.HasRole(MemberRoles.MissionAdmin));
        if (!await Changed(db, chain, viewer, "member", new { created = member.UserName, organization = organization.Code, displayName = member.DisplayName, roles = member.Roles, clearance = member.Clearance, caveats = member.Caveats, disabled = member.Disabled }, directory, viewers, time, context.RequestAborted,
            d => d.Members.AnyAsync(m => m.UserName == member.UserName, context.RequestAborted), member.Id))
        {
            return Problems.Field("userName", $"user {member.UserName} already exists", StatusCodes.Status409Conflict);
        }
        return TypedResults.Created($"/api/members/{member.UserName}", ToDto(member, organization.Code, markings));
    }

    private static async Task<Results<Ok<MemberDto>, NotFound, ProblemHttpResult>> UpdateMember(
        string userName, HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var name = userName.ToLowerInvariant();
        var member = await db.Members.SingleOrDefaultAsync(m => m.UserName == name, context.RequestAborted);
        if (member is null || !Administers(viewer, member.OrganizationId))
        {
            // Administrators of other organisations learn nothing of this member.
            return TypedResults.NotFound();
        }

        if (!viewer.HasRole(MemberRoles.MissionAdmin) && HoldsMore(member, viewer))
        {
            // Else an organisation administrator could set a senior colleague's password and sign in with what they hold.
            return Problems.Forbidden($"{member.UserName} holds more than you do (a higher clearance, a caveat you do not hold, or the {MemberRoles.MissionAdmin} or {MemberRoles.Auditor} role): a mission administrator changes this member");
        }

        if (viewer.HasRole(MemberRoles.MissionAdmin) && OutClears(member, viewer))
        {
            // A mission administrator may not grant a clearance or caveat they do not hold, nor take it over by a password.
            return Problems.Forbidden($"{member.UserName} holds a higher clearance or a caveat you do not hold: a mission administrator who holds them, or concord user set on the server (--new-password for a password), changes this member");
        }

        var (body, problem) = await JsonBody.ReadAsync<MemberRequest>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (SetsPasswordWithToken(context, body!) is { } byToken)
        {
            return byToken;
        }

        await directory.KnowCaveatsAsync(body!.Caveats, context.RequestAborted);
        var errors = GrantErrors(viewer, body, markings);
        if (body!.Clearance is not null && !markings.Scheme.TryParse(body.Clearance, out _))
        {
            errors["clearance"] = [$"'{QueryReader.Shown(body.Clearance)}' is not a level of the {markings.Scheme.Name} scheme"];
        }

        // A user name is who signed every audit entry of the member: it is not changed (silently ignoring it answered 200).
        if (body.UserName is { } renamed && !string.Equals(renamed.Trim(), member.UserName, StringComparison.OrdinalIgnoreCase))
        {
            errors["userName"] = ["a member's user name cannot be changed: add a member under the new name (and disable this one)"];
        }

        if (body.Caveats is not null && !markings.Caveats.TryGetBits(body.Caveats, out _, out var unknown))
        {
            errors["caveats"] = [$"unknown caveat '{QueryReader.Shown(unknown)}'"];
        }

        if (body.Roles?.FirstOrDefault(r => !MemberRoles.All.Contains(r)) is { } badRole)
        {
            errors["roles"] = [$"'{QueryReader.Shown(badRole)}' is not one of {string.Join(", ", MemberRoles.All)}"];
        }

        if (body.Password is not null && Passwords.Weakness(body.Password) is { } weakness)
        {
            errors["password"] = [weakness];
        }

        if (body.DisplayName is not null && AdminRefusal.Text("displayName", body.DisplayName, 200) is { } badName)
        {
            errors[badName.Field] = [badName.Reason];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        var missionAdmin = viewer.HasRole(MemberRoles.MissionAdmin);
        if (body.Disabled == false && member.Disabled && member.DisabledByMission && !missionAdmin)
        {
            // A suspension the mission decided (a compromised account, a member withdrawn) is not the organisation's to lift.
            return Problems.Forbidden($"{member.UserName} was disabled by a mission administrator: a mission administrator enables this member again");
        }

        if (body.DisplayName is { } display)
        {
            member.DisplayName = display.Trim();
        }

        if (body.Roles is not null)
        {
            member.Roles = string.Join(',', body.Roles.Distinct());
        }

        if (body.Clearance is not null)
        {
            member.Clearance = markings.Scheme.TryParse(body.Clearance, out var level) ? level : member.Clearance;
        }

        if (body.Caveats is not null)
        {
            member.Caveats = markings.Caveats.Bits(body.Caveats);
        }

        if (body.Disabled is { } disabled)
        {
            member.SetDisabled(disabled, byMission: missionAdmin);
        }

        if (body.Password is not null)
        {
            member.SetPassword(body.Password);
        }

        var (tokensRevoked, certificatesRevoked) = await MemberCredentials.EndAsync(db, member.Id, body.Password is not null, body.Disabled == true, time, context.RequestAborted);
        async Task<bool> RevokeIssuedMeanwhile(ConcordDb d)
        {
            await MemberCredentials.RevokeIssuedMeanwhileAsync(d, member.Id, time, context.RequestAborted);
            return false;
        }

        if (!await Changed(db, chain, viewer, "member", MemberAdmin.UpdatedDetail(member, body.Password is not null, tokensRevoked, certificatesRevoked), directory, viewers, time, context.RequestAborted, body.Disabled == true ? RevokeIssuedMeanwhile : null, member.Id))
        {
            return Problems.Field("member", $"{member.UserName} was changed by another request meanwhile; read it again", StatusCodes.Status409Conflict);
        }

        return TypedResults.Ok(ToDto(member, directory.Organization(member.OrganizationId)?.Code ?? "", markings));
    }

    private static async Task<Ok<List<GroupDto>>> ListGroups(ConcordDb db, MissionDirectory directory, CancellationToken cancellationToken)
    {
        var groups = await db.SharingGroups.AsNoTracking().OrderBy(g => g.Code).ToListAsync(cancellationToken);
        var members = await db.SharingGroupMembers.AsNoTracking().ToListAsync(cancellationToken);
        return TypedResults.Ok(groups.Select(g => new GroupDto(g.Code, g.Name, directory.Organization(g.OwnerOrganizationId)?.Code ?? "",
            members.Where(m => m.GroupId == g.Id).Select(m => directory.Organization(m.OrganizationId)?.Code ?? "").Order(StringComparer.Ordinal).ToList())).ToList());
    }

    private static async Task<Results<Created<GroupDto>, ProblemHttpResult>> CreateGroup(
        HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<GroupRequest>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var code = body!.Code?.Trim().ToUpperInvariant() ?? "";
        if (!Community.IsOrganizationCode(code))
        {
            return Problems.Field("code", "must be 1 to 40 letters, digits, '-' or '_'");
        }

        if (AdminRefusal.Text("name", body.Name, 200) is { } badName)
        {
            return Refused(badName);
        }

        if (await db.SharingGroups.AnyAsync(g => g.Code == code, context.RequestAborted))
        {
            return Problems.Field("code", $"a group '{code}' already exists", StatusCodes.Status409Conflict);
        }

        var group = new SharingGroup { Id = Guid.CreateVersion7(), Code = code, Name = body.Name!.Trim(), OwnerOrganizationId = viewer.OrganizationId, CreatedAt = time.GetUtcNow().UtcDateTime };
        db.SharingGroups.Add(group);
        db.SharingGroupMembers.Add(new SharingGroupMember { GroupId = group.Id, OrganizationId = viewer.OrganizationId });
        if (!await Changed(db, chain, viewer, "group", new { created = code }, directory, viewers, time, context.RequestAborted,
            d => d.SharingGroups.AnyAsync(g => g.Code == code, context.RequestAborted)))
        {
            return Problems.Field("code", $"a group '{code}' already exists", StatusCodes.Status409Conflict);
        }
        return TypedResults.Created($"/api/groups/{code}", new GroupDto(code, group.Name, viewer.OrganizationCode, [viewer.OrganizationCode]));
    }

    private static Task<Results<NoContent, NotFound, ProblemHttpResult>> AddGroupMember(string code, string organization, HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time) =>
        ChangeGroupMember(code, organization, add: true, context, viewer, db, chain, directory, viewers, time);

    private static Task<Results<NoContent, NotFound, ProblemHttpResult>> RemoveGroupMember(string code, string organization, HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time) =>
        ChangeGroupMember(code, organization, add: false, context, viewer, db, chain, directory, viewers, time);

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> ChangeGroupMember(
        string code, string organizationCode, bool add, HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var normalized = code.ToUpperInvariant();
        var group = await db.SharingGroups.SingleOrDefaultAsync(g => g.Code == normalized, context.RequestAborted);
        if (group is null)
        {
            return TypedResults.NotFound();
        }

        // A code no organisation has (a typing mistake) is named: a bare 404 left the administrator to guess which of the two
        // was wrong. Organisations are open to every member.
        if (await directory.OrganizationAsync(organizationCode, context.RequestAborted) is not { } organization)
        {
            return Problems.Field("organization", $"no organisation has the code '{organizationCode}'");
        }

        // The owner's administrators alone, not mission administrators: a group is how an organisation shares with those it
        // chose (a humanitarian protection working group); another organisation's administrator adding the force to it
        // would release its records outside any agreement.
        if (!viewer.HasRole(MemberRoles.OrganizationAdmin) || viewer.OrganizationId != group.OwnerOrganizationId)
        {
            return Problems.Forbidden($"only administrators of the owner organisation manage group {group.Code}");
        }

        var existing = await db.SharingGroupMembers.SingleOrDefaultAsync(m => m.GroupId == group.Id && m.OrganizationId == organization.Id, context.RequestAborted);
        if (add && existing is null)
        {
            db.SharingGroupMembers.Add(new SharingGroupMember { GroupId = group.Id, OrganizationId = organization.Id });
        }
        else if (!add && existing is not null)
        {
            db.SharingGroupMembers.Remove(existing);
        }

        if (add == (existing is null))
        {
            // Memberships are not in the change feed; the group is, and its change tells open pages to read again what
            // their members may see (a member of the organisation may now see less, or more).
            db.Entry(group).State = EntityState.Modified;
        }

        // Written only if the membership is still as it was read: a concurrent request may have changed it since (inside the
        // chain's transaction, every other administrative change waits).
        var wasMember = existing is not null;
        if (await Changed(db, chain, viewer, "group", new { group = group.Code, organization = organization.Code, added = add }, directory, viewers, time, context.RequestAborted,
            async d => wasMember != await d.SharingGroupMembers.AnyAsync(m => m.GroupId == group.Id && m.OrganizationId == organization.Id, context.RequestAborted)))
        {
            return TypedResults.NoContent();
        }

        // Changed meanwhile: by the same change made first (the answer is the same), or by the opposite one, which this
        // request did not undo (a removal answered 204 while the organisation stayed in the group, audited as removed).
        return add == await db.SharingGroupMembers.AsNoTracking().AnyAsync(m => m.GroupId == group.Id && m.OrganizationId == organization.Id, context.RequestAborted)
            ? TypedResults.NoContent()
            : Problems.Field("organization", $"{organization.Code}'s membership of {group.Code} was changed by another request meanwhile: read the group again", StatusCodes.Status409Conflict);
    }

    private static AgreementDto ToDto(Agreement a) => new(a.Id, a.Code, a.Version, a.Name, Releasability.Decode(a.Parties).Select(p => p[4..]).ToList(), a.Rules,
        a.Coordination.Responsibilities ?? [], a.Coordination.Assistance ?? [],
        new DateTimeOffset(a.CreatedAt, TimeSpan.Zero), a.CreatedBy, a.RetiredAt is { } r ? new DateTimeOffset(r, TimeSpan.Zero) : null);

    private static async Task<Ok<List<AgreementDto>>> ListAgreements(MissionDirectory directory, CancellationToken cancellationToken) =>
        TypedResults.Ok((await directory.AgreementsAsync(cancellationToken)).OrderBy(a => a.Code, StringComparer.Ordinal).Select(ToDto).ToList());

    private static async Task<Results<Ok<List<AgreementDto>>, NotFound>> AgreementVersions(string code, ConcordDb db, CancellationToken cancellationToken)
    {
        var normalized = code.ToUpperInvariant();
        var versions = await db.Agreements.AsNoTracking().Where(a => a.Code == normalized).OrderBy(a => a.Version).ToListAsync(cancellationToken);
        return versions.Count == 0 ? TypedResults.NotFound() : TypedResults.Ok(versions.Select(ToDto).ToList());
    }

    /// <summary>Validates an agreement's text; returns the parties as organisation ids, or the errors.</summary>
    internal static async Task<(List<Guid> Parties, Dictionary<string, string[]> Errors)> ValidateAgreementAsync(
        AgreementRequest body, MissionDirectory directory, MarkingFormat markings, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (AdminRefusal.Text("name", body.Name, 200) is { } badName)
        {
            errors[badName.Field] = [badName.Reason];
        }

        var parties = new List<Guid>();
        foreach (var code in body.Parties ?? [])
        {
            if (await directory.OrganizationAsync(code, cancellationToken) is { } organization)
            {
                parties.Add(organization.Id);
            }
            else
            {
                errors["parties"] = [$"no organisation has the code '{QueryReader.Shown(code)}'"];
            }
        }

        if (parties.Count == 0 && !errors.ContainsKey("parties"))
        {
            errors["parties"] = ["name at least one party organisation"];
        }

        var rules = body.Rules ?? [];
        var coordination = new AgreementCoordination(body.Responsibilities ?? [], body.Assistance ?? []);
        if (rules.Count > 200)
        {
            errors["rules"] = ["give at most 200 rules"];
        }
        else if (rules.Count == 0 && coordination.IsEmpty)
        {
            errors["rules"] = ["give marking rules, responsibilities or assistance rules"];
        }

        Responsibilities.Validate(coordination, parties.Select(p => directory.Organization(p)!.Code).ToList(), directory, errors);

        for (var i = 0; i < rules.Count; i++)
        {
            var rule = rules[i];
            var field = $"rules[{i}]";
            if (!Community.TryNormalize(rule.Reporter ?? "", out var reporter, out _) || !(reporter.StartsWith("org:", StringComparison.Ordinal) || reporter.StartsWith("kind:", StringComparison.Ordinal)))
            {
                errors[field + ".reporter"] = ["must be org:CODE or kind:KIND"];
            }
            else if (reporter.StartsWith("org:", StringComparison.Ordinal)
                && (await directory.OrganizationAsync(reporter[4..], cancellationToken) is not { } org || !parties.Contains(org.Id)))
            {
                errors[field + ".reporter"] = [$"{reporter} is not a party to the agreement"];
            }

            if (rule.Category != "*" && !directory.IsKnownCategory(rule.Category ?? ""))
            {
                errors[field + ".category"] = [$"'{QueryReader.Shown(rule.Category ?? "")}' is not in the taxonomy (or use *)"];
            }

            if (rule.Marking is null || !markings.Scheme.TryParse(rule.Marking.Classification ?? "", out var level))
            {
                errors[field + ".marking.classification"] = [$"must be a level of the {markings.Scheme.Name} scheme"];
            }
            else
            {
                var normalized = new List<string>();
                foreach (var community in rule.Marking.ReleasableTo ?? [])
                {
                    if (!Community.TryNormalize(community, out var token, out var reason))
                    {
                        errors[field + ".marking.releasableTo"] = [reason];
                    }
                    else
                    {
                        normalized.Add(token);
                    }
                }

                // A rule releasing to a mistyped code would mark every report it covers for nobody, as a report's own marking would.
                if (!errors.ContainsKey(field + ".marking.releasableTo") && await directory.UnknownCommunityAsync(Releasability.Encode(normalized), cancellationToken) is { } unknownCommunity)
                {
                    errors[field + ".marking.releasableTo"] = [unknownCommunity];
                }

                await directory.KnowCaveatsAsync(rule.Marking.Caveats, cancellationToken);
                if (!markings.Caveats.TryGetBits(rule.Marking.Caveats ?? [], out var bits, out var unknown))
                {
                    errors[field + ".marking.caveats"] = [$"unknown caveat '{QueryReader.Shown(unknown)}'"];
                }
                else if (!errors.Keys.Any(k => k.StartsWith(field + ".marking.", StringComparison.Ordinal)))
                {
                    // As a report's marking: a rule that releases to the military labelled as staying within the police is
                    // refused, not stored and shown.
                    markings.CheckLabel(rule.Marking, level, Releasability.Encode(normalized), bits, field + ".marking", errors);
                }
            }

            if (rule.Tlp is not null && !Tlps.TryParse(rule.Tlp, out _))
            {
                errors[field + ".tlp"] = ["must be one of clear, green, amber, amber+strict, red"];
            }
        }

        return (parties, errors);
    }

    private static async Task<Results<Created<AgreementDto>, ProblemHttpResult>> CreateAgreement(
        HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<AgreementRequest>(context, 256 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var code = body!.Code?.Trim().ToUpperInvariant() ?? "";
        var (parties, errors) = await ValidateAgreementAsync(body, directory, markings, context.RequestAborted);
        if (!Community.IsOrganizationCode(code))
        {
            errors["code"] = ["must be 1 to 40 letters, digits, '-' or '_'"];
        }
        else if (await db.Agreements.Where(a => a.Code == code).OrderByDescending(a => a.Version).Select(a => new { a.RetiredAt }).FirstOrDefaultAsync(context.RequestAborted) is { } existing)
        {
            // A code names one agreement and its history, retired ones too (reports name the versions that marked them).
            return Problems.Field("code", existing.RetiredAt is null
                ? $"agreement '{code}' exists; write a new version with PUT /api/agreements/{code}"
                : $"agreement '{code}' was retired and its code stays with its history; agreeing again takes a new code", StatusCodes.Status409Conflict);
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        if (!parties.Any(p => Administers(viewer, p)))
        {
            return Problems.Forbidden("only administrators of a party organisation (or mission administrators) record its agreements");
        }

        if (DefaultChangedForOthers(viewer, [], [], parties, body.Rules ?? [], directory, markings) is { } imposed)
        {
            return NotTheirsToDecide(imposed);
        }

        if (DutiesChangedForOthers(viewer, [], [], [], parties, body.Responsibilities ?? [], body.Assistance ?? [], directory) is { } committed)
        {
            return NotTheirsToCommit(committed);
        }

        var agreement = NewVersion(Guid.CreateVersion7(), 1, code, body, parties, directory, viewer.UserName, time);
        db.Agreements.Add(agreement);
        if (!await Changed(db, chain, viewer, "agreement", new { created = code, version = 1 }, directory, viewers, time, context.RequestAborted,
            d => d.Agreements.AnyAsync(a => a.Code == code, context.RequestAborted)))
        {
            return Problems.Field("code", $"agreement '{code}' exists; write a new version with PUT /api/agreements/{code}", StatusCodes.Status409Conflict);
        }
        return TypedResults.Created($"/api/agreements/{code}", ToDto(agreement));
    }

    private static async Task<Results<Ok<AgreementDto>, NotFound, ProblemHttpResult>> ReviseAgreement(
        string code, HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var normalized = code.ToUpperInvariant();
        var latest = await db.Agreements.Where(a => a.Code == normalized).OrderByDescending(a => a.Version).FirstOrDefaultAsync(context.RequestAborted);
        if (latest is null)
        {
            return TypedResults.NotFound();
        }

        var (body, problem) = await JsonBody.ReadAsync<AgreementRequest>(context, 256 * 1024);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (latest.RetiredAt is not null)
        {
            // A party withdrew from it: a new version would bring back what the others agreed to under it.
            return Problems.Field("code", $"agreement '{normalized}' was retired; agreeing again is a new agreement under a new code (POST /api/agreements)", StatusCodes.Status409Conflict);
        }

        var (parties, errors) = await ValidateAgreementAsync(body!, directory, markings, context.RequestAborted);
        if (body!.Code is { Length: > 0 } named && !string.Equals(named.Trim(), normalized, StringComparison.OrdinalIgnoreCase))
        {
            // The file of another agreement sent to this one's address would replace its rules with the other's.
            errors["code"] = [$"names agreement '{QueryReader.Shown(named.Trim())}', not '{normalized}' (the address): send it to /api/agreements/{QueryReader.Shown(named.Trim().ToUpperInvariant())}, or leave the code out"];
        }

        if (errors.Count > 0)
        {
            return Problems.Invalid(errors);
        }

        // Only the parties as they stand may revise: naming oneself a party in the new version gives no say over it.
        if (await PartiesAsync(latest, directory, context.RequestAborted) is not { } current)
        {
            return UnknownParty(normalized);
        }

        if (!current.Any(p => Administers(viewer, p)))
        {
            return Problems.Forbidden("only administrators of a party organisation (or mission administrators) revise its agreements");
        }

        // What the other parties agreed to for their own reports stays exactly as they agreed it: nothing added, and
        // nothing taken away (without its most specific rule, a broader and looser one would mark their reports).
        if (current.FirstOrDefault(p => !Administers(viewer, p) && !parties.Contains(p)) is var dropped && dropped != Guid.Empty)
        {
            return Problems.Forbidden($"{directory.Organization(dropped)?.Code} is a party: only its own administrators (or mission administrators) take it out");
        }

        if (DefaultChangedForOthers(viewer, current, latest.Rules, parties, body!.Rules ?? [], directory, markings) is { } changed)
        {
            return NotTheirsToDecide(changed);
        }

        if (DutiesChangedForOthers(viewer, current, latest.Coordination.Responsibilities ?? [], latest.Coordination.Assistance ?? [], parties, body.Responsibilities ?? [],
                body.Assistance ?? [], directory) is { } recommitted)
        {
            return NotTheirsToCommit(recommitted);
        }

        var agreement = NewVersion(latest.Id, latest.Version + 1, normalized, body!, parties, directory, viewer.UserName, time);
        db.Agreements.Add(agreement);
        if (!await Changed(db, chain, viewer, "agreement", new { revised = normalized, version = agreement.Version }, directory, viewers, time, context.RequestAborted,
            // Checked inside the chain's transaction, which retiring takes too: a version written meanwhile, or a retirement
            // committed after this request read the agreement, and this version is not written.
            d => d.Agreements.AnyAsync(a => a.Code == normalized && (a.Version == agreement.Version || a.RetiredAt != null), context.RequestAborted)))
        {
            return Problems.Field("code", $"agreement '{normalized}' was revised or retired by another request meanwhile; read it again", StatusCodes.Status409Conflict);
        }
        return TypedResults.Ok(ToDto(agreement));
    }

    /// <summary>
    /// The parties of an agreement's version, by id; null when one is not known to this server (an organisation created
    /// on another node a moment ago, looked up in the store once): treated as no party, it would lose its say over the
    /// agreement and the protection of its own rules.
    /// </summary>
    private static async Task<List<Guid>?> PartiesAsync(Agreement version, MissionDirectory directory, CancellationToken cancellationToken)
    {
        var parties = new List<Guid>();
        foreach (var party in Releasability.Decode(version.Parties))
        {
            if (!party.StartsWith("org:", StringComparison.Ordinal) || await directory.OrganizationAsync(party[4..], cancellationToken) is not { } organization)
            {
                return null;
            }

            parties.Add(organization.Id);
        }

        return parties;
    }

    private static ProblemHttpResult UnknownParty(string code) =>
        Problems.Field("code", $"a party to agreement '{code}' is not known to this server yet; try again in a moment", StatusCodes.Status409Conflict);

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> RetireAgreement(
        string code, HttpContext context, Viewer viewer, ConcordDb db, MarkingFormat markings, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var normalized = code.ToUpperInvariant();
        var latest = await db.Agreements.Where(a => a.Code == normalized).OrderByDescending(a => a.Version).FirstOrDefaultAsync(context.RequestAborted);
        if (latest is null)
        {
            return TypedResults.NotFound();
        }

        if (await PartiesAsync(latest, directory, context.RequestAborted) is not { } parties)
        {
            return UnknownParty(normalized);
        }

        if (!parties.Any(p => Administers(viewer, p)))
        {
            return Problems.Forbidden("only administrators of a party organisation (or mission administrators) retire its agreements");
        }

        if (latest.RetiredAt is not null)
        {
            // Retired already: nothing changes, so nothing is recorded.
            return TypedResults.NoContent();
        }

        // Retiring takes away every rule, the other parties' too: without them a broader, looser rule would mark their
        // reports, and their lead, support, escalations and requests to answer end, which only their own administrators
        // decide. A party withdraws alone by a new version without it.
        if ((DefaultChangedForOthers(viewer, parties, latest.Rules, [], [], directory, markings)
            ?? DutiesChangedForOthers(viewer, parties, latest.Coordination.Responsibilities ?? [], latest.Coordination.Assistance ?? [], [], [], [], directory)) is { } changed)
        {
            return Problems.Forbidden($"{changed}: only its own administrators (or mission administrators) retire it; to withdraw your organisation, revise the agreement without it");
        }

        latest.RetiredAt = time.GetUtcNow().UtcDateTime;
        // A version written after this request read the agreement would stay in force with this one retired; a retirement
        // made meanwhile is this one's answer, recorded once.
        if (!await Changed(db, chain, viewer, "agreement", new { retired = normalized, version = latest.Version }, directory, viewers, time, context.RequestAborted,
            d => d.Agreements.AnyAsync(a => a.Code == normalized && (a.Version > latest.Version || (a.Version == latest.Version && a.RetiredAt != null)), context.RequestAborted)))
        {
            return await db.Agreements.AsNoTracking().AnyAsync(a => a.Code == normalized && a.Version == latest.Version && a.RetiredAt != null, context.RequestAborted)
                && !await db.Agreements.AnyAsync(a => a.Code == normalized && a.Version > latest.Version, context.RequestAborted)
                ? TypedResults.NoContent()
                : Problems.Field("code", $"agreement '{normalized}' was changed by another request meanwhile; read it again", StatusCodes.Status409Conflict);
        }

        return TypedResults.NoContent();
    }

    /// <summary>
    /// The first default of another party's reports that the new version sets, changes or removes against the one before
    /// (none for a new agreement): what only that party's administrators may agree to.
    /// </summary>
    private static string? DefaultChangedForOthers(Viewer viewer, IEnumerable<Guid> partiesBefore, IEnumerable<AgreementRule> rulesBefore,
        IEnumerable<Guid> partiesAfter, IEnumerable<AgreementRule> rulesAfter, MissionDirectory directory, MarkingFormat markings)
    {
        var agreed = DefaultsForOthers(viewer, partiesBefore, rulesBefore, directory, markings).ToHashSet(StringComparer.Ordinal);
        var revised = DefaultsForOthers(viewer, partiesAfter, rulesAfter, directory, markings).ToHashSet(StringComparer.Ordinal);
        return revised.FirstOrDefault(d => !agreed.Contains(d)) ?? agreed.FirstOrDefault(d => !revised.Contains(d));
    }

    /// <summary>
    /// The first duty (a lead or supporting role with its deadlines, requests to answer, misses escalated to it) that the
    /// coordination rules set for a party <paramref name="viewer"/> does not administer and that changed between the two
    /// versions, or null. As for markings: an organisation takes on duties by its own administrators only; another party
    /// may keep what it agreed to, not set or change it.
    /// </summary>
    private static string? DutiesChangedForOthers(Viewer viewer, IEnumerable<Guid> partiesBefore, IEnumerable<Coordination.ResponsibilityRule> responsibilitiesBefore,
        IEnumerable<Coordination.AssistanceRule> assistanceBefore, IEnumerable<Guid> partiesAfter, IEnumerable<Coordination.ResponsibilityRule> responsibilitiesAfter,
        IEnumerable<Coordination.AssistanceRule> assistanceAfter, MissionDirectory directory)
    {
        // The viewer's own organisations that leave the agreement with this version: the rules they lead or answer go with
        // them (another party supporting a lead that has left supports nobody). Otherwise the viewer's own part of a rule
        // (supporting it, taking its escalations) is theirs to take on or give up, and leaves the other parties' duties as
        // they agreed them.
        var leaving = partiesBefore.Except(partiesAfter).Where(p => Administers(viewer, p)).Select(directory.Organization).OfType<Organization>().ToList();
        var agreed = DutiesOfOthers(viewer, partiesBefore, responsibilitiesBefore, assistanceBefore, directory, leaving).ToHashSet(StringComparer.Ordinal);
        var revised = DutiesOfOthers(viewer, partiesAfter, responsibilitiesAfter, assistanceAfter, directory, []).ToHashSet(StringComparer.Ordinal);
        return revised.FirstOrDefault(d => !agreed.Contains(d)) ?? agreed.FirstOrDefault(d => !revised.Contains(d));
    }

    /// <summary>
    /// The duties the rules give the parties <paramref name="viewer"/> does not administer, one description per organisation
    /// and rule, told without the viewer's own organisation's part in it; a rule led or answered by one of
    /// <paramref name="leaving"/> gives no duty.
    /// </summary>
    private static IEnumerable<string> DutiesOfOthers(Viewer viewer, IEnumerable<Guid> parties, IEnumerable<Coordination.ResponsibilityRule> responsibilities,
        IEnumerable<Coordination.AssistanceRule> assistance, MissionDirectory directory, List<Organization> leaving)
    {
        var others = parties.Where(p => !Administers(viewer, p)).Select(directory.Organization).OfType<Organization>().ToList();
        bool Names(string? named, Organization o) => named is { Length: > 0 } && (string.Equals(named.Trim(), o.Code, StringComparison.OrdinalIgnoreCase)
            || (Community.TryNormalize(named, out var token, out _) && (token == Community.Organization(o.Code) || token == Community.Kind(o.Kind))));
        bool Ours(string? named) => directory.Organization(viewer.OrganizationId) is { } own && named is { Length: > 0 }
            && (string.Equals(named.Trim(), own.Code, StringComparison.OrdinalIgnoreCase) || (Community.TryNormalize(named, out var token, out _) && token == Community.Organization(own.Code)));
        bool Leaving(string? named) => leaving.Any(o => named is { Length: > 0 } && string.Equals(named.Trim(), o.Code, StringComparison.OrdinalIgnoreCase));
        foreach (var organization in others)
        {
            foreach (var rule in responsibilities.Where(r => !Leaving(r.Lead)))
            {
                var role = Names(rule.Lead, organization) ? "leads" : rule.Supporting?.Any(s => Names(s, organization)) == true ? "supports" : Names(rule.EscalateTo, organization) ? "takes the escalations" : null;
                if (role is not null)
                {
                    yield return string.Create(CultureInfo.InvariantCulture,
                        $"the responsibility rule for categories {string.Join(", ", rule.Categories ?? [])} in areas {string.Join(", ", rule.Areas ?? [])} says {organization.Code} {role} (lead {rule.Lead}, supporting {string.Join(", ", (rule.Supporting ?? []).Where(s => !Ours(s)))}, acknowledge {rule.AcknowledgeMinutes} min, respond {rule.RespondMinutes} min, escalating to {(Ours(rule.EscalateTo) ? null : rule.EscalateTo)})");
                }
            }

            foreach (var rule in assistance.Where(r => !Leaving(r.Addressee)))
            {
                if (Names(rule.Addressee, organization) || Names(rule.EscalateTo, organization))
                {
                    yield return string.Create(CultureInfo.InvariantCulture,
                        $"the assistance rule for requests of types {string.Join(", ", rule.Types ?? [])} to {rule.Addressee} binds {organization.Code} (acknowledge {rule.AcknowledgeMinutes} min, respond {rule.RespondMinutes} min, escalating to {(Ours(rule.EscalateTo) ? null : rule.EscalateTo)})");
                }
            }
        }
    }

    private static ProblemHttpResult NotTheirsToCommit(string duty) =>
        Problems.Forbidden($"{duty}: only its own administrators (or mission administrators) commit it to coordination duties");

    private static ProblemHttpResult NotTheirsToDecide(string change) =>
        Problems.Forbidden($"{change}: only its own administrators (or mission administrators) decide how its reports are marked");

    /// <summary>
    /// The defaults that <paramref name="rules"/> set for the reports of the parties <paramref name="viewer"/> does not
    /// administer, one description per organisation and rule (the same rule and marking always read the same). An agreement
    /// marks only its parties' reports, and how an organisation's reports are shared is for its own administrators to
    /// agree: another party's administrator may keep what it agreed to, not set or change it.
    /// </summary>
    private static IEnumerable<string> DefaultsForOthers(Viewer viewer, IEnumerable<Guid> parties, IEnumerable<AgreementRule> rules, MissionDirectory directory, MarkingFormat markings)
    {
        var others = parties.Where(p => !Administers(viewer, p)).Select(directory.Organization).OfType<Organization>().ToList();
        if (others.Count == 0)
        {
            yield break;
        }

        foreach (var rule in rules)
        {
            if (!Community.TryNormalize(rule.Reporter ?? "", out var reporter, out _))
            {
                continue;
            }

            foreach (var organization in others.Where(o => reporter == Community.Organization(o.Code) || reporter == Community.Kind(o.Kind)))
            {
                // The rules were validated (new ones above, stored ones when they were recorded).
                var level = markings.Scheme.TryParse(rule.Marking?.Classification ?? "", out var parsed) ? markings.Scheme.Label(parsed) : rule.Marking?.Classification;
                var communities = (rule.Marking?.ReleasableTo ?? []).Select(c => Community.TryNormalize(c, out var token, out _) ? token : c);
                var caveats = markings.Caveats.TryGetBits(rule.Marking?.Caveats ?? [], out var bits, out _) ? string.Join(", ", markings.Caveats.CodesOf(bits)) : "";
                // No TLP is the default one, amber (as Resolve reads it).
                var tlp = Tlps.TryParse(rule.Tlp ?? "amber", out var t) ? t.ToString() : rule.Tlp;
                yield return string.Create(CultureInfo.InvariantCulture,
                    $"the rule for {reporter} and category {rule.Category} sets the default marking of {organization.Code}'s reports ({level}, releasable to {Releasability.Encode(communities)}, caveats {caveats}, TLP {tlp})");
            }
        }
    }

    /// <summary>A version of an agreement from its validated text (the API, <c>concord agreement add</c> and the demo all record agreements this way).</summary>
    internal static Agreement NewVersion(Guid id, int version, string code, AgreementRequest body, IEnumerable<Guid> parties, MissionDirectory directory, string createdBy, TimeProvider time) => new()
    {
        Id = id,
        Version = version,
        Code = code,
        Name = body.Name!.Trim(),
        Parties = Releasability.Encode(parties.Select(p => Community.Organization(directory.Organization(p)!.Code))),
        RulesJson = JsonSerializer.Serialize(Agreement.Normalized(body.Rules ?? []), JsonSerializerOptions.Web),
        CoordinationJson = new AgreementCoordination(body.Responsibilities ?? [], body.Assistance ?? []).Normalized().ToJson(),
        CreatedAt = time.GetUtcNow().UtcDateTime,
        CreatedBy = createdBy,
    };

    private static async Task<Results<Created<CaveatDto>, ProblemHttpResult>> CreateCaveat(
        HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, MissionDirectory directory, ViewerDirectory viewers, TimeProvider time)
    {
        var (body, problem) = await JsonBody.ReadAsync<CaveatRequest>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var (caveat, error) = await CaveatAdmin.AddAsync(db, body!.Code ?? "", body.Description ?? "", context.RequestAborted);
        if (caveat is null)
        {
            return Refused(error!);
        }

        if (!await Changed(db, chain, viewer, "caveat", new { created = caveat.Code, caveat.Bit }, directory, viewers, time, context.RequestAborted,
            d => d.Caveats.AnyAsync(c => c.Code == caveat.Code || c.Bit == caveat.Bit, context.RequestAborted)))
        {
            return Problems.Field("code", $"caveat {caveat.Code} exists, or another caveat was created at the same time; list the caveats and try again", StatusCodes.Status409Conflict);
        }
        return TypedResults.Created($"/api/caveats/{caveat.Code}", new CaveatDto(caveat.Code, caveat.Description, caveat.Bit));
    }
}

internal static class CaveatAdmin
{
    public static async Task<(Caveat? Caveat, AdminRefusal? Refusal)> AddAsync(ConcordDb db, string code, string description, CancellationToken cancellationToken)
    {
        var normalized = code.Trim().ToUpperInvariant();
        if (!CaveatRegistry.IsValidCode(normalized))
        {
            return (null, new("code", "a caveat code is 2 to 40 capital letters, digits or '-'"));
        }

        if (AdminRefusal.Text("description", description, 500, "a caveat's description") is { } badDescription)
        {
            return (null, badDescription);
        }

        var existing = await db.Caveats.ToListAsync(cancellationToken);
        if (existing.Any(c => c.Code == normalized))
        {
            return (null, new("code", $"caveat {normalized} exists", Conflict: true));
        }

        if (existing.Count >= CaveatRegistry.MaxCaveats)
        {
            return (null, new("code", $"a deployment has at most {CaveatRegistry.MaxCaveats} caveats", Conflict: true));
        }

        var caveat = new Caveat { Code = normalized, Bit = Enumerable.Range(0, CaveatRegistry.MaxCaveats).First(b => existing.All(c => c.Bit != b)), Description = description.Trim() };
        db.Caveats.Add(caveat);
        return (caveat, null);
    }
}

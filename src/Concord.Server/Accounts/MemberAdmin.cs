using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Accounts;

internal sealed record NewMember(
    string UserName,
    string OrganizationCode,
    string? DisplayName,
    IReadOnlyList<string> Roles,
    string? Clearance,
    IReadOnlyList<string> Caveats,
    string Password);

/// <summary>
/// Adds members (the CLI, the administration API and the demo): a valid one is added to the context, and the caller
/// stores it together with its audit entry, so that the store's unique index settles a race the check here cannot.
/// </summary>
internal static partial class MemberAdmin
{
    /// <summary>
    /// The audit detail of a change to a member (the API's and the command line's): its values after the change and the
    /// credentials the change revoked.
    /// </summary>
    public static object UpdatedDetail(Member member, bool passwordSet, List<Guid> tokensRevoked, List<string> certificatesRevoked) => new
    {
        updated = member.UserName,
        displayName = member.DisplayName,
        roles = member.Roles,
        clearance = member.Clearance,
        caveats = member.Caveats,
        disabled = member.Disabled,
        disabledByMission = member.DisabledByMission,
        passwordSet,
        tokensRevoked,
        certificatesRevoked,
    };

    public static string GeneratePassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('+', 'x').Replace('/', 'y');

    public static async Task<(Member? Member, AdminRefusal? Refusal)> AddAsync(
        ConcordDb db, NewMember request, ClassificationScheme scheme, CaveatRegistry caveats, TimeProvider time, CancellationToken cancellationToken)
    {
        var userName = request.UserName.Trim().ToLowerInvariant();
        if (!UserNamePattern().IsMatch(userName))
        {
            return (null, new("userName", $"user name '{QueryReader.Shown(request.UserName)}' must be 2 to 64 letters, digits, '.', '-' or '_'"));
        }

        if (userName == Audit.Audits.SystemActor)
        {
            // The audit log names the CLI and the server's own work "system": a member of that name could not be told apart.
            return (null, new("userName", $"'{userName}' is reserved: the audit log names the server's own actions so"));
        }

        var organizationCode = request.OrganizationCode.ToUpperInvariant();
        var organization = await db.Organizations.SingleOrDefaultAsync(o => o.Code == organizationCode, cancellationToken);
        if (organization is null)
        {
            return (null, new("organization", $"no organisation has the code '{request.OrganizationCode}' (add it with 'concord org add')"));
        }

        var unknownRole = request.Roles.FirstOrDefault(r => !MemberRoles.All.Contains(r));
        if (unknownRole is not null)
        {
            return (null, new("roles", $"role '{unknownRole}' is not one of {string.Join(", ", MemberRoles.All)}"));
        }

        var clearance = 0;
        if (request.Clearance is not null && !scheme.TryParse(request.Clearance, out clearance))
        {
            return (null, new("clearance", $"clearance '{QueryReader.Shown(request.Clearance)}' is not a level of the {scheme.Name} scheme ({string.Join(", ", scheme.Levels)})"));
        }

        if (!caveats.TryGetBits(request.Caveats, out var caveatBits, out var unknownCaveat))
        {
            return (null, new("caveats", $"caveat '{QueryReader.Shown(unknownCaveat)}' is not known (known: {string.Join(", ", caveats.Codes)})"));
        }

        // Not given: the user name stands for it. Given, it is held to the rules a change of it is (not only spaces).
        if (request.DisplayName is not null && AdminRefusal.Text("displayName", request.DisplayName, 200, "display name") is { } badName)
        {
            return (null, badName);
        }

        if (Passwords.Weakness(request.Password) is { } weakness)
        {
            return (null, new("password", "password " + weakness));
        }

        if (await db.Members.AnyAsync(m => m.UserName == userName, cancellationToken))
        {
            return (null, new("userName", $"a member named '{userName}' already exists", Conflict: true));
        }

        var member = new Member
        {
            Id = Guid.CreateVersion7(),
            UserName = userName,
            DisplayName = request.DisplayName is null ? userName : request.DisplayName.Trim(),
            OrganizationId = organization.Id,
            Roles = string.Join(',', request.Roles.Count == 0 ? [MemberRoles.Reporter] : request.Roles.Distinct()),
            Clearance = clearance,
            Caveats = caveatBits,
            PasswordHash = "",
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        member.PasswordHash = Passwords.Hash(member, request.Password);
        db.Members.Add(member);
        return (member, null);
    }

    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{1,63}\z")]
    private static partial Regex UserNamePattern();
}

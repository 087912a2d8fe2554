using System.Text.RegularExpressions;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Organizations;

/// <summary>
/// Adds organisations (the CLI, the administration API and the demo): a valid one is added to the context, and the
/// caller stores it together with its audit entry, so that the store's unique index settles a race the check here cannot.
/// </summary>
internal static partial class OrganizationAdmin
{
    public static async Task<(Organization? Organization, AdminRefusal? Refusal)> AddAsync(
        ConcordDb db, string code, string name, string kind, string? nation, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!Community.IsOrganizationCode(code))
        {
            return (null, new("code", $"code '{QueryReader.Shown(code)}' must be 1 to 40 letters, digits, '-' or '_'"));
        }

        if (AdminRefusal.Text("name", name, 200, "name") is { } badName)
        {
            return (null, badName);
        }

        if (!OrganizationKinds.TryParse(kind, out var parsedKind))
        {
            return (null, new("kind", $"kind '{kind}' is not one of {string.Join(", ", OrganizationKinds.All.Select(OrganizationKinds.Token))}"));
        }

        if (nation is not null && !(Iso3().IsMatch(nation) && Nations.IsKnown(nation)))
        {
            return (null, new("nation", $"nation '{QueryReader.Shown(nation)}' is not an ISO 3166-1 alpha-3 code (RWA, CAF, FRA …)"));
        }

        var normalized = code.ToUpperInvariant();
        if (await db.Organizations.AnyAsync(o => o.Code == normalized, cancellationToken))
        {
            return (null, new("code", $"an organisation with code '{normalized}' already exists", Conflict: true));
        }

        var organization = new Organization
        {
            Id = Guid.CreateVersion7(),
            Code = normalized,
            Name = name.Trim(),
            Kind = parsedKind,
            Nation = nation?.ToUpperInvariant(),
            CreatedAt = time.GetUtcNow().UtcDateTime,
        };
        db.Organizations.Add(organization);
        return (organization, null);
    }

    [GeneratedRegex(@"^[A-Za-z]{3}\z")]
    private static partial Regex Iso3();
}

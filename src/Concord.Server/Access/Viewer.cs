namespace Concord.Server.Access;

/// <summary>
/// The person a read is done for, with everything the access rule needs.
/// Resolved once per request from the authenticated member.
/// </summary>
internal sealed record Viewer
{
    public required Guid MemberId { get; init; }

    public required string UserName { get; init; }

    public required string DisplayName { get; init; }

    public required Guid OrganizationId { get; init; }

    public required string OrganizationCode { get; init; }

    public required string OrganizationName { get; init; }

    public required OrganizationKind OrganizationKind { get; init; }

    public string? Nation { get; init; }

    public required int Clearance { get; init; }

    /// <summary>The member's session version (<see cref="Accounts.Member.SessionVersion"/>): a cookie of another version is refused.</summary>
    public int SessionVersion { get; init; }

    /// <summary>The member's browser sessions ended by signing out and not yet past their lifetime: their cookies are refused.</summary>
    public IReadOnlySet<Guid> EndedSessions { get; init; } = new HashSet<Guid>();

    public required long CaveatBits { get; init; }

    public required IReadOnlySet<string> Roles { get; init; }

    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>The communities this viewer belongs to, as patterns found in an encoded releasability set.</summary>
    public IReadOnlyList<string> CommunityPatterns => _patterns ??= BuildPatterns();

    /// <summary>The viewer's communities that are bits in <see cref="IMarked.ReleaseMask"/>: the mission and their organisation's kind.</summary>
    public long ReleaseMaskBits => Releasability.MissionBit | Releasability.KindBit(OrganizationKind);

    /// <summary>The viewer's communities that are searched as text: organisation, nation, sharing groups.</summary>
    public IReadOnlyList<string> TextPatterns => _textPatterns ??= BuildPatterns().Skip(2).ToList();

    private IReadOnlyList<string>? _patterns;
    private IReadOnlyList<string>? _textPatterns;

    public bool HasRole(string role) => Roles.Contains(role);

    /// <summary>Lets endpoints take a <see cref="Viewer"/> parameter.</summary>
    public static ValueTask<Viewer?> BindAsync(HttpContext context) => ViewerBinding.ResolveAsync(context);

    private List<string> BuildPatterns()
    {
        // Mission and kind first: TextPatterns skips them.
        var tokens = new List<string>
        {
            Community.Mission,
            Community.Kind(OrganizationKind),
            Community.Organization(OrganizationCode),
        };
        if (Nation is not null)
        {
            tokens.Add(Community.Nation(Nation));
        }

        tokens.AddRange(Groups.Select(Community.Group));
        return tokens.Select(Releasability.Pattern).ToList();
    }
}

internal static class MemberRoles
{
    public const string Reporter = "reporter";
    public const string Analyst = "analyst";
    public const string OrganizationAdmin = "org-admin";
    public const string MissionAdmin = "mission-admin";
    public const string Releaser = "releaser";
    public const string Auditor = "auditor";

    public static readonly IReadOnlyList<string> All = [Reporter, Analyst, OrganizationAdmin, MissionAdmin, Releaser, Auditor];
}

internal static class ViewerBinding
{
    /// <summary>The viewer of the current request, resolved once and kept in the request's items.</summary>
    public static async ValueTask<Viewer?> ResolveAsync(HttpContext context)
    {
        if (context.Items.TryGetValue(typeof(Viewer), out var found) && found is Viewer viewer)
        {
            return viewer;
        }

        if (!Guid.TryParse(context.User.FindFirst(Accounts.ConcordAuthentication.MemberIdClaim)?.Value, out var memberId))
        {
            return null;
        }

        var resolved = await context.RequestServices.GetRequiredService<ViewerDirectory>().ForMemberAsync(memberId, context.RequestAborted);
        if (resolved is not null)
        {
            context.Items[typeof(Viewer)] = resolved;
        }

        return resolved;
    }
}

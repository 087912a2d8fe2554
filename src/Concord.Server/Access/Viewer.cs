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

/// <summary>
/// Whether a long request (an import, an export) may go on as its member is now: their access ended, or what decides
/// what they may read and how their rows are marked changed since it began (clearance, caveats, organisation, sharing
/// groups, roles). Every request after it would be judged on the member as they are now.
/// </summary>
internal static class AccessChange
{
    /// <summary>Why a request begun as <paramref name="before"/> may not go on as <paramref name="now"/> (null: access ended), or null.</summary>
    public static string? Of(Viewer before, Viewer? now) =>
        now is null ? "the member's access ended (disabled, signed out, a new password, or the token revoked or expired)"
        : now.MemberId != before.MemberId || now.OrganizationId != before.OrganizationId || now.Clearance != before.Clearance || now.CaveatBits != before.CaveatBits
            || !now.Roles.SetEquals(before.Roles) || !now.Groups.Order(StringComparer.Ordinal).SequenceEqual(before.Groups.Order(StringComparer.Ordinal), StringComparer.Ordinal)
            ? "the member's clearance, caveats, organisation, groups or roles changed"
            : null;

    /// <summary>
    /// The request's member as the store knows them now: by the request's access token, or, for a browser session, by
    /// the member and the session's validity (signed out, a new password, its lifetime); null when it no longer signs in.
    /// </summary>
    public static async Task<Viewer?> NowAsync(HttpContext context, Viewer viewer, CancellationToken cancellationToken)
    {
        var viewers = context.RequestServices.GetRequiredService<ViewerDirectory>();
        return context.User.FindFirst(Accounts.ConcordAuthentication.TokenHashClaim)?.Value is { } tokenHash
            ? await viewers.ForTokenHashAsync(tokenHash, cancellationToken)
            : await viewers.ForMemberAsync(viewer.MemberId, cancellationToken) is { } member
                && Accounts.ConcordAuthentication.SessionValid(context.User, member, context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow()) ? member : null;
    }
}

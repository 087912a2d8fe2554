namespace Concord.Server.Accounts;

internal sealed class Member : Realtime.IFeedEntity
{
    public string FeedName => "member";

    public required Guid Id { get; init; }

    /// <summary>Sign-in name, stored lower-case: names are unique regardless of case.</summary>
    public required string UserName { get; init; }

    public required string DisplayName { get; set; }

    public required Guid OrganizationId { get; set; }

    /// <summary>Roles as a comma-separated list (reporter, analyst, org-admin, mission-admin, releaser, auditor).</summary>
    public required string Roles { get; set; }

    public required int Clearance { get; set; }

    public required long Caveats { get; set; }

    public required string PasswordHash { get; set; }

    public bool Disabled { get; set; }

    public required DateTime CreatedAt { get; init; }

    public IReadOnlySet<string> RoleSet => Roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
}

/// <summary>A personal access token. Only the SHA-256 of the secret is stored: tokens are 256-bit random, so a fast hash is enough.</summary>
internal sealed class AccessToken : Realtime.IFeedEntity
{
    public string FeedName => "token";

    public required Guid Id { get; init; }

    public required Guid MemberId { get; init; }

    public required string Name { get; init; }

    public required string SecretHash { get; init; }

    public required DateTime CreatedAt { get; init; }

    public required DateTime ExpiresAt { get; init; }

    public DateTime? RevokedAt { get; set; }
}

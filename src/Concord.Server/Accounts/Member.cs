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

    /// <summary>
    /// Bumped when the password changes or the member is disabled: a browser session carries the version it was signed in
    /// under and ends when it is no longer the member's (schema version 14).
    /// </summary>
    public int SessionVersion { get; set; }

    /// <summary>Sets a new password and ends every session signed in with the old one.</summary>
    public void SetPassword(string password)
    {
        PasswordHash = Passwords.Hash(this, password);
        SessionVersion++;
    }

    /// <summary>
    /// Disabled by a mission administrator or on the server (schema version 28): the member's organisation's
    /// administrators may not enable them again, which would undo a suspension the mission decided.
    /// </summary>
    public bool DisabledByMission { get; set; }

    /// <summary>
    /// Disables or enables the member; disabling ends every session, which enabling again does not revive. A disable
    /// <paramref name="byMission"/> stays the mission's until the member is enabled (an organisation administrator
    /// disabling them again meanwhile does not make it theirs).
    /// </summary>
    public void SetDisabled(bool disabled, bool byMission)
    {
        if (disabled && !Disabled)
        {
            SessionVersion++;
        }

        DisabledByMission = disabled && (byMission || (Disabled && DisabledByMission));
        Disabled = disabled;
    }

    public required DateTime CreatedAt { get; init; }

    public IReadOnlySet<string> RoleSet => RolesOf(Roles);

    /// <summary>The roles stored as <paramref name="roles"/> (comma-separated).</summary>
    public static IReadOnlySet<string> RolesOf(string roles) => roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
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

    /// <summary>
    /// The member's session version when the token was made (<see cref="Member.SessionVersion"/>): it works only while it is
    /// still theirs (null for tokens made before schema version 16).
    /// </summary>
    public int? SessionVersion { get; init; }
}

/// <summary>
/// A browser session ended by signing out (schema version 17): a copy of its cookie is refused from then on. Kept until the
/// session would have ended anyway (<see cref="ConcordAuthentication.SessionLifetime"/> after its sign-in).
/// </summary>
internal sealed class EndedSession
{
    /// <summary>The session's id, from its cookie (<see cref="ConcordAuthentication.SessionIdClaim"/>).</summary>
    public required Guid Id { get; init; }

    public required Guid MemberId { get; init; }

    public required DateTime EndedAt { get; init; }

    public required DateTime ExpiresAt { get; init; }
}

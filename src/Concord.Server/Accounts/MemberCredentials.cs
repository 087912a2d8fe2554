using Concord.Server.Data;

namespace Concord.Server.Accounts;

/// <summary>What a change of a member ends, the same from the API and the command line.</summary>
internal static class MemberCredentials
{
    /// <summary>
    /// Revokes (in the context, not yet saved) what <paramref name="passwordSet"/> or <paramref name="disabled"/> ends: every
    /// access token on either (tokens belong to sessions), every TAK device certificate on a disable only (a certificate is
    /// a credential of its own: a new password leaves the member's devices connected, a disable revokes them for good, so
    /// that enabling the member again does not let a device taken from them back in). Returns what it revoked, for the audit.
    /// </summary>
    public static async Task<(List<Guid> Tokens, List<string> Certificates)> EndAsync(ConcordDb db, Guid memberId, bool passwordSet, bool disabled, TimeProvider time,
        CancellationToken cancellationToken) =>
        (passwordSet || disabled ? await AccessTokens.RevokeAllAsync(db, memberId, time, cancellationToken) : [],
            disabled ? await Tak.DeviceCertificates.RevokeAllAsync(db, memberId, time, cancellationToken) : []);

    /// <summary>
    /// For a disable, inside the audit chain's transaction (which <c>concord cert issue</c> takes too): revokes the device
    /// certificates issued since <see cref="EndAsync"/> read them, which would otherwise work again once the member is
    /// enabled. A certificate issued after this commit finds the member disabled and is refused.
    /// </summary>
    public static Task RevokeIssuedMeanwhileAsync(ConcordDb db, Guid memberId, TimeProvider time, CancellationToken cancellationToken) =>
        Tak.DeviceCertificates.RevokeAllAsync(db, memberId, time, cancellationToken);
}

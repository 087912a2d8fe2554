using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Accounts;

/// <summary>Personal access tokens: <c>cnc_</c> + 256 random bits, shown once, stored as SHA-256.</summary>
internal static class AccessTokens
{
    public const string Prefix = "cnc_";

    public static string NewSecret() => Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string HashSecret(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Whether a token's name (trimmed) will do, and why not: the API and <c>concord token create</c> say the same.</summary>
    public static bool IsValidName([NotNullWhen(true)] string? name, [NotNullWhen(false)] out string? error)
    {
        error = string.IsNullOrEmpty(name) || name.Length > 100 ? "is required, at most 100 characters"
            : name.Any(char.IsControl) ? "must not hold control characters"
            : null;
        return error is null;
    }

    /// <summary>
    /// Makes a token for <paramref name="member"/>, audited in the same transaction (by <paramref name="actor"/>, or the
    /// system for <c>concord token create</c>): a credential that signs in for up to a year is recorded, never its secret.
    /// </summary>
    public static async Task<(AccessToken Token, string Secret)> CreateAsync(
        ConcordDb db, AuditChain chain, Viewer? actor, Member member, string name, TimeSpan lifetime, TimeProvider time, CancellationToken cancellationToken)
    {
        var secret = NewSecret();
        var now = time.GetUtcNow().UtcDateTime;
        var token = new AccessToken
        {
            Id = Guid.CreateVersion7(),
            MemberId = member.Id,
            Name = name,
            SecretHash = HashSecret(secret),
            CreatedAt = now,
            ExpiresAt = now + lifetime,
            SessionVersion = member.SessionVersion,
        };
        db.AccessTokens.Add(token);
        await chain.SaveAsync(db, [Audits.Entry(actor, AuditActions.Create, "token", token.Id, AuditMarking.None, now,
            Audits.Detail(new { member = member.UserName, name, expiresAt = token.ExpiresAt }))], cancellationToken);
        return (token, secret);
    }

    /// <summary>Revokes a token of the member (audited as <see cref="CreateAsync"/>); false when the member has no such token.</summary>
    public static async Task<bool> RevokeAsync(ConcordDb db, AuditChain chain, Viewer? actor, Guid memberId, Guid tokenId, TimeProvider time, CancellationToken cancellationToken)
    {
        var token = await db.AccessTokens.SingleOrDefaultAsync(t => t.Id == tokenId && t.MemberId == memberId, cancellationToken);
        if (token is null)
        {
            return false;
        }

        if (token.RevokedAt is not null)
        {
            // Revoked already: nothing changes, nothing to record again.
            return true;
        }

        var now = AuditChain.Now(time);
        token.RevokedAt = now;
        var member = await db.Members.Where(m => m.Id == memberId).Select(m => m.UserName).SingleAsync(cancellationToken);
        try
        {
            // Checked again inside the chain's transaction (one writer at a time, across nodes too): two revocations at once
            // (a double click, a reset meanwhile) wrote two entries, and the second moved the token's revocation time.
            await chain.SaveAsync(db, [Audits.Entry(actor, AuditActions.Update, "token", token.Id, AuditMarking.None, now,
                Audits.Detail(new { member, name = token.Name, revokedAt = token.RevokedAt }))], cancellationToken,
                async d =>
                {
                    if (await d.AccessTokens.AsNoTracking().AnyAsync(t => t.Id == tokenId && t.RevokedAt != null, cancellationToken))
                    {
                        throw new RevokedMeanwhile();
                    }
                });
        }
        catch (RevokedMeanwhile)
        {
            db.ChangeTracker.Clear();
        }

        return true;
    }

    /// <summary>The token was revoked by another request inside the window between reading it and saving: nothing is written.</summary>
    private sealed class RevokedMeanwhile : Exception;

    /// <summary>
    /// Revokes every token of a member whose password was reset or who was disabled (tracked: saved with the change). A
    /// reset after a lost laptop ends what was signed in with the old password, and the tokens made meanwhile too.
    /// </summary>
    /// <returns>The tokens revoked, for the caller's audit entry of the change.</returns>
    public static async Task<List<Guid>> RevokeAllAsync(ConcordDb db, Guid memberId, TimeProvider time, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var revoked = new List<Guid>();
        await db.AccessTokens.Where(t => t.MemberId == memberId && t.RevokedAt == null).ForEachAsync(t =>
        {
            t.RevokedAt = now;
            revoked.Add(t.Id);
        }, cancellationToken);
        return revoked;
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

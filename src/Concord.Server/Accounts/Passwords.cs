using Microsoft.AspNetCore.Identity;

namespace Concord.Server.Accounts;

/// <summary>ASP.NET Core Identity's PBKDF2 password hasher (HMAC-SHA512, 100,000 iterations, per-password salt).</summary>
internal static class Passwords
{
    public const int MinimumLength = 10;

    private static readonly PasswordHasher<Member> Hasher = new();

    public static string Hash(Member member, string password) => Hasher.HashPassword(member, password);

    public static bool Verify(Member member, string password) =>
        Hasher.VerifyHashedPassword(member, member.PasswordHash, password) != PasswordVerificationResult.Failed;

    private static readonly Lazy<(Member Member, string Hash)> Nobody = new(() =>
    {
        var nobody = new Member { Id = Guid.Empty, OrganizationId = Guid.Empty, UserName = "", DisplayName = "", Roles = "", Clearance = 0, Caveats = 0, PasswordHash = "", CreatedAt = DateTime.UnixEpoch };
        return (nobody, Hasher.HashPassword(nobody, Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))));
    });

    /// <summary>
    /// Spends on a sign-in for a name no member has (or a disabled one) the time checking a password takes, so that the
    /// answer's delay does not tell which names exist. Always false.
    /// </summary>
    public static bool VerifyNobody(string password)
    {
        Hasher.VerifyHashedPassword(Nobody.Value.Member, Nobody.Value.Hash, password);
        return false;
    }

    /// <summary>Checks a new password; returns the reason it is refused, or null.</summary>
    public static string? Weakness(string password) =>
        password.Length < MinimumLength ? $"must be at least {MinimumLength} characters" : null;
}

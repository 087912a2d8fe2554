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

    /// <summary>Checks a new password; returns the reason it is refused, or null.</summary>
    public static string? Weakness(string password) =>
        password.Length < MinimumLength ? $"must be at least {MinimumLength} characters" : null;
}

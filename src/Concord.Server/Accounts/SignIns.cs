using Concord.Server.Access;
using Concord.Server.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Accounts;

/// <summary>Password sign-in, shared by the API and the sign-in page: throttled per name and address (see <see cref="SignInThrottle"/>), sets the session cookie.</summary>
internal static class SignIns
{
    /// <summary>Signed in (<see cref="Viewer"/>), throttled (<see cref="RetryAfter"/>), or neither: wrong name or password.</summary>
    public sealed record Outcome(Viewer? Viewer, TimeSpan? RetryAfter);

    public static async Task<Outcome> AttemptAsync(HttpContext context, ConcordDb db, SignInThrottle throttle, ViewerDirectory directory, string userName, string password)
    {
        var address = SignInThrottle.AddressOf(context.Connection.RemoteIpAddress);
        // Counted as a failure from here until it succeeds: parallel guesses cannot all slip past the limit.
        var wait = throttle.Begin(userName, address);
        if (wait > TimeSpan.Zero)
        {
            return new Outcome(null, wait);
        }

        var name = SignInThrottle.Normalize(userName);
        // A name no member can have (too long, control characters: PostgreSQL refuses a NUL in text) is not looked up.
        var member = name.Length > SignInThrottle.MaxNameLength || name.Any(char.IsControl)
            ? null
            : await db.Members.AsNoTracking().SingleOrDefaultAsync(m => m.UserName == name && !m.Disabled, context.RequestAborted);
        if (member is null)
        {
            Passwords.VerifyNobody(password);
            return new Outcome(null, null);
        }

        if (!Passwords.Verify(member, password))
        {
            return new Outcome(null, null);
        }

        throttle.Succeeded(userName, address);
        var viewer = await directory.ForMemberAsync(member.Id, context.RequestAborted);
        if (viewer is not null && viewer.SessionVersion != member.SessionVersion)
        {
            // The password was changed (here by another node) within the cache's lifetime: the cookie carries the session
            // version the store holds, or it would be refused as an old session once the cache caught up.
            directory.Forget(member.Id);
            viewer = await directory.ForMemberAsync(member.Id, context.RequestAborted);
        }

        if (viewer is null)
        {
            return new Outcome(null, null);
        }

        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        await context.SignInAsync(ConcordAuthentication.CookieScheme, ConcordAuthentication.SessionPrincipal(viewer, now));
        return new Outcome(viewer, null);
    }
}

using System.Data.Common;
using System.Security.Claims;
using Concord.Server.Access;
using Concord.Server.Audit;
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
        var name = SignInThrottle.Normalize(userName);
        // A name no member can have (too long, control characters: PostgreSQL refuses a NUL in text) is not looked up. Read
        // before the throttle, for every name alike (a throttled attempt too): the device is judged by the member's session.
        var member = name.Length > SignInThrottle.MaxNameLength || name.Any(char.IsControl)
            ? null
            : await db.Members.AsNoTracking().SingleOrDefaultAsync(m => m.UserName == name, context.RequestAborted);
        // A browser the member signed in from is limited by its own failures, not its address's (SignInDevices).
        var devices = context.RequestServices.GetRequiredService<SignInDevices>();
        var device = devices.DeviceFor(context, userName, member?.SessionVersion);
        // Counted as a failure from here until it succeeds: parallel guesses cannot all slip past the limit.
        var wait = throttle.Begin(userName, address, device);
        if (wait > TimeSpan.Zero)
        {
            return new Outcome(null, wait);
        }

        if (member is null)
        {
            Passwords.VerifyNobody(password);
            return new Outcome(null, null);
        }

        if (member.Disabled)
        {
            // Answered as a wrong password is, after the same work; but an attempt on a disabled account (a member who left,
            // a compromised one) is what an auditor watches for, whatever the password: recorded, after the answer.
            var right = Passwords.Verify(member, password);
            AuditAfterAnswer(context, AuditActions.SignInFailed, member.Id, new { member = member.UserName, address = AddressText(context), disabled = true, passwordRight = right });
            return new Outcome(null, null);
        }

        if (!Passwords.Verify(member, password))
        {
            // A wrong password for a member's name is what an auditor looks for (guessing); a name nobody has names nobody.
            // Written once the answer has gone: its time would otherwise tell which names are members' (a name nobody has
            // is answered after the same password work, and no write).
            AuditAfterAnswer(context, AuditActions.SignInFailed, member.Id, new { member = member.UserName, address = AddressText(context) });
            return new Outcome(null, null);
        }

        throttle.Succeeded(userName, address, device);
        var viewer = await directory.ForMemberAsync(member.Id, context.RequestAborted);
        if (viewer is not null && viewer.SessionVersion < member.SessionVersion)
        {
            // The password was changed (here by another node) within the cache's lifetime, before the member was read: the
            // cookie carries the session version the password was checked under, or it would be refused as an old session
            // once the cache caught up.
            directory.Forget(member.Id);
            viewer = await directory.ForMemberAsync(member.Id, context.RequestAborted);
        }

        // The password proves only the session version it was checked under. A reset (or a disable) landing while it was
        // being checked has ended that version: a session under the newer one would outlive the reset meant to end it.
        if (viewer is null || viewer.SessionVersion != member.SessionVersion)
        {
            return new Outcome(null, null);
        }

        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        // Audited first: a sign-in the audit could not record does not happen.
        await AuditAsync(context, db, viewer, AuditActions.SignIn, member.Id, new { address = AddressText(context) });
        await context.SignInAsync(ConcordAuthentication.CookieScheme, ConcordAuthentication.SessionPrincipal(viewer, now));
        devices.Remember(context, userName, device, viewer.SessionVersion);
        return new Outcome(viewer, null);
    }

    private static string? AddressText(HttpContext context) => context.Connection.RemoteIpAddress?.ToString();

    private static void AuditAfterAnswer(HttpContext context, string action, Guid memberId, object detail)
    {
        var services = context.RequestServices;
        var entry = Audits.Entry(null, action, "member", memberId, AuditMarking.None, services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime, Audits.Detail(detail));
        var writer = services.GetRequiredService<AuditWriter>();
        // Handed to the audit writer once the answer has gone, and not waited for: the server reads the next request on a
        // kept-alive connection only once this callback has returned, so waiting here would time the write on the next answer.
        context.Response.OnCompleted(() =>
        {
            writer.Post(entry);
            return Task.CompletedTask;
        });
    }

    /// <summary>Appends a sign-in, a failed one or a sign-out to the audit chain (recorded even if the browser goes away meanwhile).</summary>
    private static Task AuditAsync(HttpContext context, ConcordDb db, Viewer? actor, string action, Guid memberId, object detail)
    {
        var services = context.RequestServices;
        var at = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        return services.GetRequiredService<AuditChain>().SaveAsync(db,
            [Audits.Entry(actor, action, "member", memberId, AuditMarking.None, at, Audits.Detail(detail))], CancellationToken.None);
    }

    /// <summary>
    /// Signs the browser out and ends its session on the server: the session's id is recorded, so that a copy of the cookie
    /// (another browser, a proxy's log, a disk) is refused from now on, at once on this node and within the viewer cache's
    /// lifetime on others. The record is kept until the session would have ended anyway; older records go here too.
    /// </summary>
    public static async Task SignOutAsync(HttpContext context)
    {
        var user = context.User;
        if (ConcordAuthentication.SessionId(user) is { } id
            && Guid.TryParse(user.FindFirstValue(ConcordAuthentication.MemberIdClaim), out var memberId)
            && ConcordAuthentication.SignedInAt(user) is { } signedInAt)
        {
            var services = context.RequestServices;
            var db = services.GetRequiredService<ConcordDb>();
            var now = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
            // A minute past the session's end: its age check counts whole seconds, so the record must outlast it.
            var expiresAt = (signedInAt + ConcordAuthentication.SessionLifetime + TimeSpan.FromMinutes(1)).UtcDateTime;
            // Recorded even if the browser goes away meanwhile: the sign-out was asked for. The session's end and its audit
            // entry are one transaction (as a sign-in the audit could not record does not happen): an end committed on its
            // own, its entry then refused, was never recorded, since the next sign-out found the session ended already.
            if (expiresAt > now)
            {
                db.EndedSessions.Add(new EndedSession { Id = id, MemberId = memberId, EndedAt = now, ExpiresAt = expiresAt });
            }

            try
            {
                // By the member the cookie names (who may have been disabled since: the directory would not know them).
                await services.GetRequiredService<AuditChain>().SaveAsync(db,
                [
                    new AuditEntry
                    {
                        At = AuditChain.Truncate(now), MemberId = memberId, Actor = user.FindFirstValue(ClaimTypes.Name) ?? Audits.SystemActor,
                        Action = AuditActions.SignOut, Entity = "member", EntityId = memberId,
                        Detail = Audits.Detail(new { address = AddressText(context) }), Classification = 0,
                    },
                ], CancellationToken.None);
            }
            catch (DbUpdateException e) when (StoreErrors.IsUniqueViolation(e))
            {
                // Signed out already (two tabs, or a copy of the cookie signing out again): recorded before.
                db.ChangeTracker.Clear();
            }

            services.GetRequiredService<ViewerDirectory>().Forget(memberId);
            services.GetRequiredService<Realtime.LiveFeed>().EndSession(id);
            try
            {
                await db.EndedSessions.Where(e => e.ExpiresAt <= now).ExecuteDeleteAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is DbException or InvalidOperationException)
            {
                // Only housekeeping: the next sign-out removes them.
                services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SignIns)).LogWarning(e, "Could not remove ended sessions past their lifetime");
            }
        }

        await context.SignOutAsync(ConcordAuthentication.CookieScheme);
    }
}

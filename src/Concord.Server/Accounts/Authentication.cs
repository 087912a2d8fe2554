using System.Globalization;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Concord.Server.Access;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Options;

namespace Concord.Server.Accounts;

internal static class ConcordAuthentication
{
    public const string Scheme = "concord";
    public const string TokenScheme = "token";
    public const string CookieScheme = CookieAuthenticationDefaults.AuthenticationScheme;
    public const string MemberIdClaim = "concord:member";

    public static IServiceCollection AddConcordAuthentication(this IServiceCollection services)
    {
        services.AddSingleton<SessionActivity>();
        services.AddAuthentication(Scheme)
            .AddPolicyScheme(Scheme, "Cookie or access token", o => o.ForwardDefaultSelector = context =>
                context.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? TokenScheme : CookieScheme)
            .AddScheme<AuthenticationSchemeOptions, AccessTokenHandler>(TokenScheme, null)
            .AddCookie(CookieScheme, o =>
            {
                o.Cookie.Name = "concord";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Strict;
                o.SlidingExpiration = true;
                o.ExpireTimeSpan = IdleLifetime;
                // The API answers 401/403; the UI's pages send the browser to the sign-in page.
                o.Events.OnRedirectToLogin = c => IsPage(c.Request) ? ToSignIn(c) : StatusOnly(c, StatusCodes.Status401Unauthorized);
                o.Events.OnRedirectToAccessDenied = c => StatusOnly(c, StatusCodes.Status403Forbidden);
                // Checked before the principal is validated: what the browser's cookie will say once this answer has gone,
                // renewed (once half its lifetime has passed) or as it was. A live connection ends with it (SessionActivity).
                o.Events.OnCheckSlidingExpiration = c =>
                {
                    if (c.ShouldRenew)
                    {
                        c.HttpContext.Items[RenewedKey] = true;
                    }

                    return Task.CompletedTask;
                };
                o.Events.OnValidatePrincipal = async c =>
                {
                    // A disabled member's cookie, or one signed in before the password changed or the member was disabled,
                    // stops working within the viewer cache lifetime (at once on the node that made the change), and is
                    // taken out of the browser.
                    var directory = c.HttpContext.RequestServices.GetRequiredService<ViewerDirectory>();
                    var claim = c.Principal?.FindFirstValue(SessionClaim);
                    if (!Guid.TryParse(c.Principal?.FindFirstValue(MemberIdClaim), out var id)
                        || await directory.ForMemberAsync(id, c.HttpContext.RequestAborted) is not { } viewer)
                    {
                        c.RejectPrincipal();
                        await c.HttpContext.SignOutAsync(CookieScheme);
                        return;
                    }

                    if (int.TryParse(claim, NumberStyles.None, CultureInfo.InvariantCulture, out var version) && version > viewer.SessionVersion)
                    {
                        // A cookie newer than what this node holds: signed in after a password change made on another node,
                        // within its cache's lifetime. Read again rather than take the new session out of the browser.
                        directory.Forget(id);
                        viewer = await directory.ForMemberAsync(id, c.HttpContext.RequestAborted);
                    }

                    // However often it is used, a session ends a day after its sign-in (a sliding cookie alone would last
                    // as long as a page kept polling, on a shared operations-centre machine for weeks).
                    var now = c.HttpContext.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
                    if (viewer is null || !SessionValid(c.Principal!, viewer, now))
                    {
                        c.RejectPrincipal();
                        await c.HttpContext.SignOutAsync(CookieScheme);
                        return;
                    }

                    // The renewed cookie expires as the handler dates it (its clock, and the lifetime from now).
                    var expires = c.HttpContext.Items.ContainsKey(RenewedKey) || c.Properties.ExpiresUtc is not { } current
                        ? (c.Options.TimeProvider ?? TimeProvider.System).GetUtcNow() + c.Options.ExpireTimeSpan
                        : current;
                    c.HttpContext.RequestServices.GetRequiredService<SessionActivity>().Seen(c.Principal!, expires, now);
                };
            });
        return services;
    }

    private static readonly object RenewedKey = new();

    /// <summary>On a principal signed in with an access token: the hash of its secret, for connections that outlive the request.</summary>
    public const string TokenHashClaim = "concord:token";

    /// <summary>On a cookie: the member's session version when it was signed in (<see cref="Member.SessionVersion"/>).</summary>
    public const string SessionClaim = "concord:session";

    /// <summary>On a cookie: when its member signed in, in seconds since 1970 (UTC).</summary>
    public const string SignedInClaim = "concord:signed-in";

    /// <summary>On a cookie: the session's own id, which signing out records (<see cref="EndedSession"/>).</summary>
    public const string SessionIdClaim = "concord:sid";

    /// <summary>A browser session ends this long after its last use.</summary>
    public static readonly TimeSpan IdleLifetime = TimeSpan.FromHours(12);

    /// <summary>A browser session ends this long after its sign-in, however often it is used.</summary>
    public static readonly TimeSpan SessionLifetime = TimeSpan.FromHours(24);

    /// <summary>
    /// Whether a session cookie's principal may still read as <paramref name="viewer"/>: the member's session version is
    /// the cookie's (no new password or disable since), the sign-in is less than <see cref="SessionLifetime"/> ago (a
    /// cookie without its time was made before sessions had a lifetime, and is not), and the session was not signed out
    /// (a cookie without its id was made before signing out ended sessions on the server, and is not valid either).
    /// </summary>
    public static bool SessionValid(ClaimsPrincipal session, Viewer viewer, DateTimeOffset now) =>
        SameSession(session.FindFirstValue(SessionClaim), viewer)
        && SignedInAt(session) is { } signedInAt && signedInAt.ToUnixTimeSeconds() >= (now - SessionLifetime).ToUnixTimeSeconds()
        && SessionId(session) is { } id && !viewer.EndedSessions.Contains(id);

    /// <summary>A session cookie's own id, or null for a principal that has none (an access token's, an old cookie's).</summary>
    public static Guid? SessionId(ClaimsPrincipal session) =>
        Guid.TryParseExact(session.FindFirstValue(SessionIdClaim), "N", out var id) ? id : null;

    /// <summary>When a session cookie's sign-in was, or null when it does not say.</summary>
    public static DateTimeOffset? SignedInAt(ClaimsPrincipal session) =>
        long.TryParse(session.FindFirstValue(SignedInClaim), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;

    /// <summary>Whether a cookie's session claim is the member's session version still (false for none).</summary>
    public static bool SameSession(string? sessionClaim, Viewer viewer) =>
        sessionClaim == viewer.SessionVersion.ToString(CultureInfo.InvariantCulture);

    /// <summary>A token's principal: the member and the hash of the token's secret.</summary>
    public static ClaimsPrincipal Principal(Viewer viewer, string scheme, string tokenHash) => new(new ClaimsIdentity(
        [new Claim(MemberIdClaim, viewer.MemberId.ToString()), new Claim(ClaimTypes.Name, viewer.UserName), new Claim(TokenHashClaim, tokenHash)],
        scheme));

    /// <summary>A session cookie's principal: the member, its session version, the time of the sign-in and the session's own id.</summary>
    public static ClaimsPrincipal SessionPrincipal(Viewer viewer, DateTimeOffset signedInAt) => new(new ClaimsIdentity(
        [
            new Claim(MemberIdClaim, viewer.MemberId.ToString()), new Claim(ClaimTypes.Name, viewer.UserName),
            new Claim(SessionClaim, viewer.SessionVersion.ToString(CultureInfo.InvariantCulture)),
            new Claim(SignedInClaim, signedInAt.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)),
            new Claim(SessionIdClaim, Guid.NewGuid().ToString("N")),
        ],
        CookieScheme));

    private static bool IsPage(HttpRequest request) =>
        !request.Path.StartsWithSegments("/api") && !request.Path.StartsWithSegments("/hubs") && !request.Path.StartsWithSegments("/ui");

    private static Task ToSignIn(RedirectContext<CookieAuthenticationOptions> context)
    {
        var back = context.Request.PathBase + context.Request.Path + context.Request.QueryString;
        context.Response.Redirect("/signin?returnUrl=" + Uri.EscapeDataString(back));
        return Task.CompletedTask;
    }

    private static Task StatusOnly(RedirectContext<CookieAuthenticationOptions> context, int status)
    {
        context.Response.StatusCode = status;
        return Task.CompletedTask;
    }
}

/// <summary>Authenticates <c>Authorization: Bearer cnc_…</c> personal access tokens.</summary>
internal sealed class AccessTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ViewerDirectory directory)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.NoResult();
        }

        var secret = header["Bearer ".Length..].Trim();
        if (!secret.StartsWith(AccessTokens.Prefix, StringComparison.Ordinal))
        {
            return AuthenticateResult.Fail("not a Concord access token");
        }

        var hash = AccessTokens.HashSecret(secret);
        var viewer = await directory.ForTokenHashAsync(hash, Context.RequestAborted);
        if (viewer is null)
        {
            return AuthenticateResult.Fail("unknown, expired or revoked access token");
        }

        Context.Items[typeof(Viewer)] = viewer;
        return AuthenticateResult.Success(new AuthenticationTicket(ConcordAuthentication.Principal(viewer, Scheme.Name, hash), Scheme.Name));
    }
}

using System.Globalization;
using System.Security.Claims;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Accounts;

internal sealed record SignIn(string? UserName, string? Password);

internal sealed record MeDto(
    Guid Id,
    string UserName,
    string DisplayName,
    MeOrganizationDto Organization,
    IReadOnlyList<string> Roles,
    string Clearance,
    IReadOnlyList<string> Caveats);

internal sealed record MeOrganizationDto(Guid Id, string Code, string Name, string Kind, string? Nation);

internal sealed record NewToken(string? Name, int? ExpiresInDays);

internal sealed record TokenDto(Guid Id, string Name, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, DateTimeOffset? RevokedAt);

internal sealed record CreatedTokenDto(Guid Id, string Name, DateTimeOffset ExpiresAt, string Token);

internal static class AccountEndpoints
{
    public const int MaxTokenDays = 365;

    public static void MapAccounts(this IEndpointRouteBuilder app)
    {
        var auth = app.MapGroup("/api/auth").WithTags("Accounts");
        auth.MapPost("/signin", SignInAsync).AllowAnonymous().WithJsonBody<SignIn>()
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status429TooManyRequests)
            .WithSummary("Sign in with user name and password; sets the session cookie.");
        auth.MapPost("/signout", (Delegate)SignOutAsync).RequireAuthorization().WithSummary("End the session.");

        var me = app.MapGroup("/api/me").WithTags("Accounts").RequireAuthorization();
        me.MapGet("/", (Viewer viewer, MarkingFormat markings, CaveatRegistry caveats) => TypedResults.Ok(ToDto(viewer, markings, caveats)))
            .WithSummary("Who you are: organisation, roles, clearance, caveats.");
        me.MapGet("/tokens", ListTokens).WithSummary("Your personal access tokens.");
        me.MapPost("/tokens", CreateToken).WithJsonBody<NewToken>().WithSummary("Create a personal access token; the secret is shown only in this answer.");
        me.MapDelete("/tokens/{id:guid}", RevokeToken).WithSummary("Revoke one of your tokens.");
    }

    public static MeDto ToDto(Viewer v, MarkingFormat markings, CaveatRegistry caveats) => new(
        v.MemberId,
        v.UserName,
        v.DisplayName,
        new MeOrganizationDto(v.OrganizationId, v.OrganizationCode, v.OrganizationName, OrganizationKinds.Token(v.OrganizationKind), v.Nation),
        v.Roles.Order(StringComparer.Ordinal).ToList(),
        markings.Scheme.Label(v.Clearance),
        caveats.CodesOf(v.CaveatBits));

    private static async Task<Results<Ok<MeDto>, ProblemHttpResult>> SignInAsync(
        HttpContext context, ConcordDb db, SignInThrottle throttle, ViewerDirectory directory, MarkingFormat markings, CaveatRegistry caveats)
    {
        var (body, problem) = await JsonBody.ReadAsync<SignIn>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        if (string.IsNullOrWhiteSpace(body!.UserName) || string.IsNullOrEmpty(body.Password))
        {
            // Each missing field named.
            var missing = new Dictionary<string, string[]>(StringComparer.Ordinal);
            if (string.IsNullOrWhiteSpace(body.UserName))
            {
                missing["userName"] = ["is required"];
            }

            if (string.IsNullOrEmpty(body.Password))
            {
                missing["password"] = ["is required"];
            }

            return Problems.Invalid(missing);
        }

        var outcome = await SignIns.AttemptAsync(context, db, throttle, directory, body.UserName, body.Password);
        if (outcome.RetryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = Math.Ceiling(wait.TotalSeconds).ToString(CultureInfo.InvariantCulture);
            return TypedResults.Problem($"Too many failed sign-ins; try again in {Math.Ceiling(wait.TotalMinutes)} minute(s).", statusCode: StatusCodes.Status429TooManyRequests, title: "Too many failed sign-ins.");
        }

        if (outcome.Viewer is not { } viewer)
        {
            // One answer for unknown names and wrong passwords: nothing tells which names exist.
            return TypedResults.Problem("The user name or password is wrong.", statusCode: StatusCodes.Status401Unauthorized, title: "Sign-in failed.");
        }

        return TypedResults.Ok(ToDto(viewer, markings, caveats));
    }

    private static async Task<NoContent> SignOutAsync(HttpContext context)
    {
        await SignIns.SignOutAsync(context);
        return TypedResults.NoContent();
    }

    private static async Task<Ok<List<TokenDto>>> ListTokens(Viewer viewer, ConcordDb db, CancellationToken cancellationToken)
    {
        var tokens = await db.AccessTokens.AsNoTracking().Where(t => t.MemberId == viewer.MemberId).OrderBy(t => t.CreatedAt).ToListAsync(cancellationToken);
        return TypedResults.Ok(tokens.Select(t => new TokenDto(t.Id, t.Name, Utc(t.CreatedAt), Utc(t.ExpiresAt), t.RevokedAt is { } r ? Utc(r) : null)).ToList());
    }

    /// <summary>
    /// The most tokens a member holds at once (neither expired nor revoked): a wall display or two, a script. Each is a row,
    /// an audit entry and a change, and a disable or a reset revokes them all in one transaction: a stolen session making
    /// them in a loop would slow the answer to the compromise, or fail it.
    /// </summary>
    public const int MaxActiveTokens = 50;

    private static async Task<Results<Created<CreatedTokenDto>, ProblemHttpResult>> CreateToken(HttpContext context, Viewer viewer, ConcordDb db, AuditChain chain, TimeProvider time)
    {
        if (context.User.Identity?.AuthenticationType == ConcordAuthentication.TokenScheme)
        {
            // A token that could make tokens would outlive its own expiry and revocation: only a member signed in with
            // their password makes them.
            return Problems.Forbidden("tokens are created by a member signed in with their password, not with a token");
        }

        var (body, problem) = await JsonBody.ReadAsync<NewToken>(context, 4096);
        if (problem is not null)
        {
            return (ProblemHttpResult)problem;
        }

        var name = body!.Name?.Trim();
        if (!AccessTokens.IsValidName(name, out var nameError))
        {
            return Problems.Field("name", nameError);
        }

        var days = body.ExpiresInDays ?? 90;
        if (days is < 1 or > MaxTokenDays)
        {
            return Problems.Field("expiresInDays", $"must be from 1 to {MaxTokenDays}");
        }

        // Checked against the store, not the cached viewer the cookie was checked against (up to its lifetime old, and on
        // the node resetting a password or signing out old until that commits): a session a reset, a disable or a sign-out
        // ended makes no token, which would outlive what was to end the stolen session.
        var member = await db.Members.SingleAsync(m => m.Id == viewer.MemberId, context.RequestAborted);
        if (member.Disabled || context.User.FindFirstValue(ConcordAuthentication.SessionClaim) != member.SessionVersion.ToString(CultureInfo.InvariantCulture))
        {
            return Problems.Forbidden("this session has ended (the password was changed or the member disabled): sign in again");
        }

        if (ConcordAuthentication.SessionId(context.User) is not { } session || await db.EndedSessions.AnyAsync(e => e.Id == session, context.RequestAborted))
        {
            return Problems.Forbidden("this session has ended (it was signed out): sign in again");
        }

        var now = time.GetUtcNow().UtcDateTime;
        if (await db.AccessTokens.CountAsync(t => t.MemberId == member.Id && t.RevokedAt == null && t.ExpiresAt > now, context.RequestAborted) >= MaxActiveTokens)
        {
            return Problems.Field("name", $"you hold {MaxActiveTokens} tokens that have neither expired nor been revoked: revoke one first", StatusCodes.Status409Conflict);
        }

        var (token, secret) = await AccessTokens.CreateAsync(db, chain, viewer, member, name, TimeSpan.FromDays(days), time, context.RequestAborted);
        return TypedResults.Created($"/api/me/tokens/{token.Id}", new CreatedTokenDto(token.Id, token.Name, Utc(token.ExpiresAt), secret));
    }

    private static async Task<Results<NoContent, NotFound>> RevokeToken(Guid id, Viewer viewer, ConcordDb db, AuditChain chain, TimeProvider time, ViewerDirectory directory, CancellationToken cancellationToken)
    {
        if (!await AccessTokens.RevokeAsync(db, chain, viewer, viewer.MemberId, id, time, cancellationToken))
        {
            return TypedResults.NotFound();
        }

        directory.Invalidate();
        return TypedResults.NoContent();
    }

    private static DateTimeOffset Utc(DateTime t) => new(DateTime.SpecifyKind(t, DateTimeKind.Utc));
}

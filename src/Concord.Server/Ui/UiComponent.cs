using Concord.Server.Access;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Ui;

/// <summary>
/// A page or part of one, with the signed-in member at hand. It renders in both of the UI's modes: statically on the server
/// (a request is at hand) and interactively in a server circuit (no request: the member comes from the circuit's
/// authentication state, and each store access opens its own scope because a circuit outlives any one query).
/// </summary>
public abstract class UiComponent : ComponentBase
{
    /// <summary>The request being rendered (static server rendering and prerendering; null in a live circuit).</summary>
    [CascadingParameter]
    public HttpContext? HttpContext { get; set; }

    [CascadingParameter]
    private Task<AuthenticationState>? Authentication { get; set; }

    [Inject]
    private IHttpContextAccessor Accessor { get; set; } = null!;

    [Inject]
    private IServiceProvider Services { get; set; } = null!;

    [Inject]
    private protected NavigationManager Navigation { get; set; } = null!;

    private Viewer? _circuitViewer;

    private protected HttpContext Http => HttpContext ?? Accessor.HttpContext ?? throw new InvalidOperationException("no request to render");

    /// <summary>True while rendering without a request (an interactive circuit).</summary>
    private protected bool InCircuit => HttpContext is null && RendererInfo.IsInteractive;

    /// <summary>The signed-in member as a viewer (null only on anonymous pages).</summary>
    private protected async Task<Viewer?> ViewerAsync()
    {
        if (!InCircuit)
        {
            return await ViewerBinding.ResolveAsync(Http);
        }

        if (_circuitViewer is null && Authentication is not null
            && (await Authentication).User is var user
            && Guid.TryParse(user.FindFirst(Accounts.ConcordAuthentication.MemberIdClaim)?.Value, out var member))
        {
            // A page opened in a session a new password, a disable, the session's lifetime or its idle limit has ended shows
            // nothing more, like a disabled member's. (A circuit outlives the request that opened it: the session's use is
            // judged by its requests, as the cookie's own idle limit is, and as the live channel's.)
            var now = Service<TimeProvider>().GetUtcNow();
            _circuitViewer = await Service<ViewerDirectory>().ForMemberAsync(member, CancellationToken.None) is { } viewer
                && Accounts.ConcordAuthentication.SessionValid(user, viewer, now) && !Service<Accounts.SessionActivity>().Idle(user, now)
                    ? viewer
                    : null;
        }

        return _circuitViewer;
    }

    /// <summary>
    /// The viewer for a read: the request's, or in a circuit a fresh one (clearance or memberships may have changed since the
    /// page opened; null once the account is disabled or removed).
    /// </summary>
    private protected Task<Viewer?> CurrentViewerAsync()
    {
        if (InCircuit)
        {
            _circuitViewer = null;
        }

        return ViewerAsync();
    }

    private protected T Service<T>()
        where T : notnull => Services.GetRequiredService<T>();

    /// <summary>
    /// Whether the posted form carries this session's antiforgery token. A page opened under another sign-in (a colleague's
    /// at a shared desk, a second tab that signed in since, a session that ended) carries that sign-in's token. Pages that
    /// answer such a form themselves (<c>[RequireAntiforgeryToken(required: false)]</c>, instead of the framework's bare
    /// 400) ask this first in every handler and act only when it holds: they show the form again, with what was typed and
    /// a fresh token, saying that nothing was done.
    /// </summary>
    private protected Task<bool> FormOfThisSessionAsync() => Service<Microsoft.AspNetCore.Antiforgery.IAntiforgery>().IsRequestValidAsync(Http);

    /// <summary>
    /// A sign-in sent from a page's form (the sign-in page, a report form held after its session ended). The token is the
    /// one of the moment the page was opened: a second tab that signed in since (or a sign-out) makes it stale. Sent from
    /// this origin, as the browser says (Sec-Fetch-Site), the form is the member's own and signs in (what the token guards
    /// against is another site signing the browser in under its own account); otherwise the page asks to sign in again.
    /// Returns the member signed in, or the error to show, the answer's status set for it.
    /// </summary>
    private protected async Task<(Viewer? Viewer, string? Error)> SignInFromFormAsync(string? userName, string? password)
    {
        var text = Service<UiText>();
        if (!await FormOfThisSessionAsync() && !UiHosting.FromThisOrigin(Http))
        {
            Http.Response.StatusCode = StatusCodes.Status400BadRequest;
            return (null, text["signin.stale"]);
        }

        if (string.IsNullOrWhiteSpace(userName) || string.IsNullOrEmpty(password))
        {
            return (null, text["signin.required"]);
        }

        var outcome = await Accounts.SignIns.AttemptAsync(Http, Service<Data.ConcordDb>(), Service<Accounts.SignInThrottle>(), Service<ViewerDirectory>(), userName, password);
        if (outcome.RetryAfter is { } wait)
        {
            Http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            return (null, text.Format("signin.throttled", Math.Ceiling(wait.TotalMinutes)));
        }

        if (outcome.Viewer is null)
        {
            Http.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return (null, text["signin.failed"]);
        }

        return (outcome.Viewer, null);
    }

    /// <summary>The page's path, in either mode.</summary>
    private protected string PathAndQuery => "/" + Navigation.ToBaseRelativePath(Navigation.Uri);

    /// <summary>
    /// Where the change feed stands, read just before a view is: the live feed's own position when it has one (it has
    /// examined everything up to it), else the settled end of the feed. What changes after it, the view has not shown.
    /// </summary>
    private protected async Task<long> FeedPositionAsync(CancellationToken cancellationToken)
    {
        var position = Service<Realtime.LiveFeed>().Position;
        if (position < 0)
        {
            await using var scope = Service<IServiceScopeFactory>().CreateAsyncScope();
            (position, _, _) = await Data.ChangeWindows.SettledEndAsync(scope.ServiceProvider.GetRequiredService<Data.ConcordDb>(), -1,
                Service<TimeProvider>().GetUtcNow().UtcDateTime, cancellationToken);
        }

        return position;
    }
}

/// <summary>One entry of the taxonomy for pickers, labelled in the page's language.</summary>
public sealed record CategoryOption(string Code, string? Parent, string Scheme, string Label)
{
    internal static async Task<List<CategoryOption>> AllAsync(Data.ConcordDb db, CancellationToken cancellationToken)
    {
        var french = UiText.Language == "fr";
        return await db.Categories.AsNoTracking().OrderBy(c => c.Code)
            .Select(c => new CategoryOption(c.Code, c.Parent, c.Scheme, french ? c.LabelFr : c.Label))
            .ToListAsync(cancellationToken);
    }
}

using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Realtime;
using Concord.Server.Ui.Shared;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Localization;
using Microsoft.Extensions.FileProviders;

namespace Concord.Server.Ui;

/// <summary>
/// The browser UI: Razor components rendered on the server, small scripts for the map and charts, the libraries from npm
/// served from <c>/ui/lib</c>, and the live hub. Nothing is fetched from outside the server.
/// </summary>
internal static class UiHosting
{
    public static IServiceCollection AddConcordUi(this IServiceCollection services)
    {
        // Operations views that change under the reader (the incident list, the incident page) render interactively in a
        // server circuit; every other page is static server rendering. A dropped link keeps its circuit for ten minutes.
        services.AddRazorComponents().AddInteractiveServerComponents(o => o.DisconnectedCircuitRetentionPeriod = TimeSpan.FromMinutes(10));
        services.AddCascadingAuthenticationState();
        services.AddSignalR();
        services.AddAntiforgery();
        // The UI's files compressed (the world map's 756 KB of TopoJSON is 236 KB gzipped; the libraries a third of their
        // size): a first visit over a field office's link. Only under /ui (UseConcordUiAssets): API answers mix text of
        // other organisations with protected records, and compressed they would leak by their length (BREACH).
        services.AddResponseCompression(o =>
        {
            o.EnableForHttps = true;
            o.Providers.Add<Microsoft.AspNetCore.ResponseCompression.GzipCompressionProvider>();
            o.MimeTypes = ["text/javascript", "application/javascript", "text/css", "application/json", "image/svg+xml", "text/plain"];
        });
        // Each file is compressed when a browser first fetches it (afterwards it asks with its ETag and gets a 304): the
        // smaller answer is worth the server's few milliseconds (gzip's fastest level left the world map at 403 KB, its
        // default at about 236 KB). Gzip only: Brotli at its optimal level costs the server far more per file for little
        // less, and browsers on loopback tests waited on it.
        services.Configure<Microsoft.AspNetCore.ResponseCompression.GzipCompressionProviderOptions>(o => o.Level = System.IO.Compression.CompressionLevel.Optimal);
        services.AddSingleton<UiText>();
        services.AddSingleton<CategoryLabels>();
        services.AddSingleton<LiveFeed>();
        services.AddHostedService(sp => sp.GetRequiredService<LiveFeed>());
        services.Configure<RequestLocalizationOptions>(o =>
        {
            o.SupportedCultures = [.. UiText.Cultures];
            o.SupportedUICultures = [.. UiText.Cultures];
            o.DefaultRequestCulture = new RequestCulture(UiText.Cultures[0]);
            o.FallBackToParentCultures = true;
            o.FallBackToParentUICultures = true;
        });
        return services;
    }

    /// <summary>The largest sign-in form accepted: a name, a password, the return address and the antiforgery token.</summary>
    public const long MaxSignInFormBytes = 16 * 1024;

    /// <summary>Static assets first (no authentication needed for scripts and styles), then the request's language.</summary>
    public static void UseConcordUiAssets(this WebApplication app)
    {
        // The sign-in page is open to anyone: its form is held to what a sign-in needs before anything reads it (the
        // server's default, 30 MB a request, let an anonymous client have each one buffered, copied and written back).
        // So is the sign-out, open to anyone too, whose token check reads the form.
        app.Use((context, next) =>
            HttpMethods.IsPost(context.Request.Method) && (IsPath(context, "/signin") || IsPath(context, "/signout"))
                ? LimitBodyAsync(context, next, MaxSignInFormBytes)
                : next(context));

        var root = Path.Combine(AppContext.BaseDirectory, "ui");
        if (Directory.Exists(root))
        {
            // The files only (those the build put there): the incident panel (/ui/incidents/…/panel) holds records, and
            // stays as it is.
            var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                .Select(f => "/" + Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/')).ToHashSet(StringComparer.Ordinal);
            app.UseWhen(c => c.Request.Path.StartsWithSegments("/ui", out var file) && file.Value is { } name && files.Contains(name), ui => ui.UseResponseCompression());
            app.UseStaticFiles(new StaticFileOptions
            {
                FileProvider = new PhysicalFileProvider(root),
                RequestPath = "/ui",
                // Kept by browsers, and asked again with their ETag on each use (a 304 without the file when unchanged):
                // kept for a day without asking, the scripts that draw banners and clear withdrawn layers stayed the old
                // ones for up to a day after an upgrade, beside pages of the new one.
                OnPrepareResponse = c => c.Context.Response.Headers.CacheControl = "no-cache",
            });
        }

        app.UseRequestLocalization();
    }

    /// <summary>
    /// The largest report form held for a request without a session (a session that ended while it was typed): the
    /// largest valid form (a narrative of 8,000 characters, each up to nine bytes once encoded, and the other fields) with
    /// room to spare, so that a form too long only in its narrative still comes back with that said.
    /// </summary>
    public const long MaxHeldReportFormBytes = 256 * 1024;

    /// <summary>
    /// After authentication: the report form is open to a request without a session (to keep what was typed when the
    /// session ended), and such a request is held to what a report form needs, as the sign-in's is; a member's own is not.
    /// </summary>
    public static void UseHeldReportLimit(this WebApplication app) =>
        app.Use((context, next) =>
            HttpMethods.IsPost(context.Request.Method) && IsPath(context, "/report")
                && context.User.Identity?.IsAuthenticated != true
                ? LimitBodyAsync(context, next, MaxHeldReportFormBytes)
                : next(context));

    /// <summary>
    /// Whether the request is for <paramref name="path"/> as routing reads it: whatever the case, with or without slashes
    /// after it (routing sends <c>/signin/</c> to the sign-in page too; a limit on the exact path alone was passed by it).
    /// </summary>
    private static bool IsPath(HttpContext context, string path) =>
        string.Equals(context.Request.Path.Value?.TrimEnd('/'), path, StringComparison.OrdinalIgnoreCase);

    /// <summary>Answers 413 to a body longer than <paramref name="max"/> bytes, said in advance or found as it is read.</summary>
    private static async Task LimitBodyAsync(HttpContext context, RequestDelegate next, long max)
    {
        if (context.Request.ContentLength > max)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = max;
        }

        // A body sent without its length, found too large as it is read, is answered 413 by the pipeline (ConcordApp).
        await next(context);
    }

    /// <summary>
    /// The mission's own map tiles (<c>--tile-dir</c>), after authentication: only members read them (they may be the
    /// mission's imagery), as only sign-in, <c>/health</c> and the API description are open to anyone.
    /// </summary>
    public static void UseConcordTiles(this WebApplication app)
    {
        if (app.Services.GetRequiredService<Hosting.ServerOptions>().TileDirectory is not { } tiles)
        {
            return;
        }

        app.UseWhen(c => c.Request.Path.StartsWithSegments("/tiles", StringComparison.OrdinalIgnoreCase), branch =>
        {
            branch.Use(async (context, next) =>
            {
                if (context.User.Identity?.IsAuthenticated != true)
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    return;
                }

                await next(context);
            });
            branch.UseStaticFiles(new StaticFileOptions { FileProvider = new PhysicalFileProvider(tiles), RequestPath = "/tiles" });
        });
    }

    public static void MapConcordUi(this WebApplication app)
    {
        // Every page needs a signed-in member unless it says [AllowAnonymous] (the sign-in page).
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode().RequireAuthorization();
        app.MapHub<LiveHub>(LiveHub.Path).RequireAuthorization();
        app.MapGet("/ui/culture", SetCulture).AllowAnonymous().ExcludeFromDescription();
        app.MapPost("/signout", SignOutAsync).AllowAnonymous().DisableAntiforgery().ExcludeFromDescription();
        app.MapGet("/ui/incidents/{id:guid}/panel", (Guid id) => new RazorComponentResult<IncidentPanel>(new { Id = id }))
            .RequireAuthorization().ExcludeFromDescription();
    }

    /// <summary>The language switch: remembers the choice in the culture cookie and goes back to the page.</summary>
    private static RedirectHttpResult SetCulture(HttpContext context, string? lang, string? returnUrl)
    {
        var culture = UiText.Cultures.FirstOrDefault(c => c.TwoLetterISOLanguageName == lang) ?? UiText.Cultures[0];
        context.Response.Cookies.Append(CookieRequestCultureProvider.DefaultCookieName, CookieRequestCultureProvider.MakeCookieValue(new RequestCulture(culture)),
            new CookieOptions { Expires = DateTimeOffset.UtcNow.AddYears(1), HttpOnly = true, SameSite = SameSiteMode.Lax, IsEssential = true });
        return TypedResults.LocalRedirect(LocalUrl(returnUrl));
    }

    /// <summary>
    /// Sign-out by a form post carrying the antiforgery token (a link could be followed by another site). A page rendered
    /// under an earlier session (another member's at a shared desk, or the member's own before it expired) carries that
    /// session's token: its sign-out still ends the session of the day when the browser says the form is this origin's
    /// own (<c>Sec-Fetch-Site</c>), rather than answering 400 and leaving the member signed in while they think they left.
    /// </summary>
    private static async Task<IResult> SignOutAsync(HttpContext context, IAntiforgery antiforgery)
    {
        if (!await antiforgery.IsRequestValidAsync(context) && !FromThisOrigin(context))
        {
            return TypedResults.BadRequest();
        }

        await Accounts.SignIns.SignOutAsync(context);
        return TypedResults.LocalRedirect("/signin");
    }

    /// <summary>Whether the browser says the request comes from a page of this origin (<c>Sec-Fetch-Site</c>, which other sites cannot set).</summary>
    public static bool FromThisOrigin(HttpContext context) => context.Request.Headers["Sec-Fetch-Site"].ToString() == "same-origin";

    /// <summary>A return address inside this site only: anything else becomes the map.</summary>
    public static string LocalUrl(string? url) =>
        url is { Length: > 0 } && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\')) && !url.Any(char.IsControl) ? url : "/";

    /// <summary>The highest marking among records on a screen: the level and every caveat, as banners show it.</summary>
    public static (int Level, long Caveats) Highest(IEnumerable<IMarked> records) =>
        records.Aggregate((Level: 0, Caveats: 0L), (m, r) => (Math.Max(m.Level, r.Classification), m.Caveats | r.Caveats));

    public static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}

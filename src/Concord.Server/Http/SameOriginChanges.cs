using Concord.Server.Accounts;

namespace Concord.Server.Http;

/// <summary>
/// Changes made with a browser's session cookie come from Concord's own pages. The cookie is SameSite=Strict, which
/// keeps other sites out but not another origin of the same site (another service under the mission's domain): a page
/// there could post a form, or a bodiless request, to the API with the analyst's cookie. Browsers say where a request
/// comes from (<c>Sec-Fetch-Site</c>); a change to the API under a session cookie from anywhere but this origin is
/// refused. Tokens (scripts, TAK gateways) are not cookies and are not concerned. Reads from another origin are refused
/// too, but for a page opened by a link (a navigation to a document): every read of classified records is audited in the
/// member's name, and an image, a script or a frame of another origin's page would otherwise make an export, or a read of
/// a page, that the member never asked for (and the other page would not even see it: the audit would show it all the
/// same). The live hub and a live page's circuit, whatever the method: a socket opened from another origin would read
/// the member's stream of changes, or have their rows rendered to it, for as long as it stays open (a WebSocket is not
/// held to the same-origin policy).
/// </summary>
internal static class SameOriginChanges
{
    /// <summary>The live pages' own sockets (Blazor's circuits), which render the member's rows as the live hub pushes their changes.</summary>
    private const string BlazorCircuits = "/_blazor";

    public static IApplicationBuilder UseSameOriginChanges(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            if (context.User.Identity?.AuthenticationType == ConcordAuthentication.CookieScheme && FromAnotherOrigin(request))
            {
                var live = request.Path.StartsWithSegments(Realtime.LiveHub.Path) || request.Path.StartsWithSegments(BlazorCircuits);
                var change = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && !HttpMethods.IsOptions(request.Method);
                // A page's own form posted from elsewhere (the sign-in page, the report form) is answered by the page, which
                // its antiforgery token already refuses and which says what to do; a read of a page, only when opened by a link.
                if (live || request.Path.StartsWithSegments("/api") || (!change && !OpenedByALink(request)))
                {
                    await Problems.Forbidden(live
                            ? "a signed-in browser session follows live changes only from Concord's own pages (this request came from another origin)"
                            : change
                                ? "a signed-in browser session makes changes only from Concord's own pages (this request came from another origin)"
                                : "a signed-in browser session reads only from Concord's own pages, or a page opened by a link (this request came from another origin)")
                        .ExecuteAsync(context);
                    return;
                }
            }

            await next();
        });

    /// <summary>
    /// A page opened in a window or tab of its own by the member (a link followed): not an image, a script, a fetch or a
    /// frame, nor a navigation a script made without the member's gesture (<c>Sec-Fetch-User</c>), nor a prefetch or
    /// prerender (<c>Sec-Purpose</c>).
    /// </summary>
    private static bool OpenedByALink(HttpRequest request) =>
        request.Headers["Sec-Fetch-Mode"].ToString() is "navigate" or ""
        && request.Headers["Sec-Fetch-Dest"].ToString() is "document" or ""
        && (request.Headers["Sec-Fetch-Mode"].ToString() == "" || request.Headers["Sec-Fetch-User"].ToString() == "?1")
        && request.Headers["Sec-Purpose"].ToString() == "" && request.Headers["Purpose"].ToString() == "";

    /// <summary>
    /// Whether the browser says the request comes from another origin: by <c>Sec-Fetch-Site</c>, or, from a browser that
    /// does not send it (older ones), by <c>Origin</c> (sent with every cross-origin POST and WebSocket handshake) naming
    /// another host than the request's. The scheme is not compared: behind a proxy that ends TLS the request is plain HTTP.
    /// </summary>
    internal static bool FromAnotherOrigin(HttpRequest request)
    {
        var site = request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Length > 0)
        {
            return site is "same-site" or "cross-site";
        }

        return request.Headers.Origin.ToString() is { Length: > 0 } origin
            && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase));
    }
}

using Concord.Server.Accounts;

namespace Concord.Server.Http;

/// <summary>
/// Changes made with a browser's session cookie come from Concord's own pages. The cookie is SameSite=Strict, which
/// keeps other sites out but not another origin of the same site (another service under the mission's domain): a page
/// there could post a form, or a bodiless request, to the API with the analyst's cookie. Browsers say where a request
/// comes from (<c>Sec-Fetch-Site</c>); a change to the API under a session cookie from anywhere but this origin is
/// refused. Tokens (scripts, TAK gateways) are not cookies and are not concerned; neither are reads, but for the live
/// hub: a socket opened to it from another origin would read the member's stream of changes for as long as it stays open
/// (a WebSocket is not held to the same-origin policy), so under a session cookie it is refused whatever the method; so
/// is a live page's circuit, which renders the member's rows to whoever holds the socket.
/// </summary>
internal static class SameOriginChanges
{
    /// <summary>The live pages' own sockets (Blazor's circuits), which render the member's rows as the live hub pushes their changes.</summary>
    private const string BlazorCircuits = "/_blazor";

    public static IApplicationBuilder UseSameOriginChanges(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            var change = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && !HttpMethods.IsOptions(request.Method)
                && request.Path.StartsWithSegments("/api");
            if ((change || request.Path.StartsWithSegments(Realtime.LiveHub.Path) || request.Path.StartsWithSegments(BlazorCircuits))
                && context.User.Identity?.AuthenticationType == ConcordAuthentication.CookieScheme
                && FromAnotherOrigin(request))
            {
                await Problems.Forbidden(change
                        ? "a signed-in browser session makes changes only from Concord's own pages (this request came from another origin)"
                        : "a signed-in browser session follows live changes only from Concord's own pages (this request came from another origin)")
                    .ExecuteAsync(context);
                return;
            }

            await next();
        });

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

using Concord.Server.Accounts;

namespace Concord.Server.Http;

/// <summary>
/// Changes made with a browser's session cookie come from Concord's own pages. The cookie is SameSite=Strict, which
/// keeps other sites out but not another origin of the same site (another service under the mission's domain): a page
/// there could post a form, or a bodiless request, to the API with the analyst's cookie. Browsers say where a request
/// comes from (<c>Sec-Fetch-Site</c>); a change to the API under a session cookie from anywhere but this origin is
/// refused. Tokens (scripts, TAK gateways) are not cookies and are not concerned; neither are reads.
/// </summary>
internal static class SameOriginChanges
{
    public static IApplicationBuilder UseSameOriginChanges(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && !HttpMethods.IsOptions(request.Method)
                && request.Path.StartsWithSegments("/api")
                && context.User.Identity?.AuthenticationType == ConcordAuthentication.CookieScheme
                && request.Headers["Sec-Fetch-Site"].ToString() is "same-site" or "cross-site")
            {
                await Problems.Forbidden("a signed-in browser session makes changes only from Concord's own pages (this request came from another origin)")
                    .ExecuteAsync(context);
                return;
            }

            await next();
        });
}

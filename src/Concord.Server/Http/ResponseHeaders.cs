namespace Concord.Server.Http;

/// <summary>
/// Headers every answer carries. Records are marked and released per member, and operations centres share machines: an
/// answer that holds records (the API, the map's incident panel, the live hub, the offline map tiles once signed in) is
/// never kept by the browser, so that a colleague signed in after at the same desk cannot read it from the cache or the
/// history (a JSON answer opened as a page, the Back button) without the server deciding what they may see. Pages are
/// not cached either (the antiforgery token they carry already makes them <c>no-store</c>); the UI's own scripts and
/// libraries are (they hold no records). Browsers are also told not to guess content types and not to send addresses
/// (which hold record ids) to other sites.
/// </summary>
internal static class ResponseHeaders
{
    /// <summary>Paths whose answers hold records, and are never stored by the browser.</summary>
    private static readonly PathString[] Uncached = ["/api", "/ui/incidents", "/hubs"];

    public static void UseResponseHeaders(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        context.Response.OnStarting(() =>
        {
            var headers = context.Response.Headers;
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
            if (Uncached.Any(p => context.Request.Path.StartsWithSegments(p)))
            {
                headers.CacheControl = "no-store";
                headers.Pragma = "no-cache";
            }
            else if (context.Request.Path.StartsWithSegments("/tiles"))
            {
                // Tiles hold no records but are for members only: kept, but asked for again (and so checked) before use.
                headers.CacheControl = "private, no-cache";
            }

            return Task.CompletedTask;
        });
        await next(context);
    });
}

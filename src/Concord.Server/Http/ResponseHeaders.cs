namespace Concord.Server.Http;

/// <summary>
/// Headers every answer carries. Records are marked and released per member, and operations centres share machines: an
/// answer that holds records (the API, the map's incident panel, the live hub, the offline map tiles once signed in) is
/// never kept by the browser, so that a colleague signed in after at the same desk cannot read it from the cache or the
/// history (a JSON answer opened as a page, the Back button) without the server deciding what they may see. Pages are
/// not cached either (the antiforgery token they carry already makes them <c>no-store</c>); the UI's own scripts and
/// libraries are (they hold no records). Browsers are also told not to guess content types and not to send addresses
/// (which hold record ids) to other sites. An answer over TLS tells the browser to keep to it (HSTS).
/// <para>
/// Every answer also carries a Content-Security-Policy: scripts, styles, fonts, connections and frames from this server only
/// (no inline script, no <c>eval</c>, no inline style), images from this server, <c>data:</c>/<c>blob:</c> URLs and the
/// deployment's own tile server (<c>--tile-url</c>), no plugins, forms posted only here, and no page of Concord framed by
/// another. Narratives, names and comments are written by many organisations: should one ever reach a page unescaped,
/// the browser still runs none of it and sends nothing elsewhere.
/// </para>
/// </summary>
internal static class ResponseHeaders
{
    /// <summary>Paths whose answers hold records, and are never stored by the browser.</summary>
    private static readonly PathString[] Uncached = ["/api", "/ui/incidents", "/hubs"];

    /// <summary>Characters that cannot stand in a policy's host source (they would end it or start another).</summary>
    private static readonly System.Buffers.SearchValues<char> NotInHost = System.Buffers.SearchValues.Create("{} ;,'\"");

    public static void UseResponseHeaders(this IApplicationBuilder app)
    {
        var policy = ContentSecurityPolicy(app.ApplicationServices.GetRequiredService<Hosting.ServerOptions>().TileUrl);
        app.Use(async (context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                headers.ContentSecurityPolicy = policy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "same-origin";
                if (context.Request.IsHttps)
                {
                    // Reached over TLS (here, or at a trusted proxy that says so): the browser is not to try plain HTTP
                    // again, where anyone on the mission's network could stand in for the server and read the cookies.
                    // This host only: other services of the mission's domain decide for themselves.
                    headers.StrictTransportSecurity = "max-age=31536000";
                }

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

    /// <summary>The policy for a deployment whose map reads its tiles from <paramref name="tileUrl"/> (none: no tiles, or this server's).</summary>
    internal static string ContentSecurityPolicy(string? tileUrl)
    {
        var images = "'self' data: blob:";
        if (tileUrl is not null && TryTileSource(tileUrl, out var source, out _) && source is not null)
        {
            images += " " + source;
        }

        return $"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; connect-src 'self'; font-src 'self'; " +
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
    }

    /// <summary>
    /// The policy's source for a tile URL template: null for this server's own tiles (a path), else its scheme and host, a
    /// <c>{s}</c> (Leaflet's subdomains) in the first label of the host standing for any first label. False, with why, for a
    /// template whose host the policy cannot name (a placeholder further in the host, or no host at all).
    /// </summary>
    internal static bool TryTileSource(string tileUrl, out string? source, out string error)
    {
        source = null;
        error = "";
        var scheme = tileUrl.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0)
        {
            if (tileUrl.StartsWith("//", StringComparison.Ordinal))
            {
                error = "must give its scheme (http:// or https://) or be a path on this server";
                return false;
            }

            return true;
        }

        var name = tileUrl[..scheme];
        if (name is not ("http" or "https"))
        {
            error = "must be an http:// or https:// address, or a path on this server";
            return false;
        }

        var end = tileUrl.IndexOfAny(['/', '?', '#'], scheme + 3);
        var authority = end < 0 ? tileUrl[(scheme + 3)..] : tileUrl[(scheme + 3)..end];
        var firstDot = authority.IndexOf('.', StringComparison.Ordinal);
        if (authority.Contains('{', StringComparison.Ordinal) && firstDot > 0 && !authority[firstDot..].Contains('{', StringComparison.Ordinal))
        {
            authority = "*" + authority[firstDot..];
        }

        if (authority.Length == 0 || authority.Contains('@', StringComparison.Ordinal) || authority.AsSpan().IndexOfAny(NotInHost) >= 0)
        {
            error = "must name its tile server's host (a {s} may stand for the first part of the host name only)";
            return false;
        }

        source = $"{name}://{authority}";
        return true;
    }
}

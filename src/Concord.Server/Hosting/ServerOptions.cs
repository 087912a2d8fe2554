using Concord.Server.Access;
using Concord.Server.Data;

namespace Concord.Server.Hosting;

internal sealed record ServerOptions
{
    public const string DefaultUrls = "http://127.0.0.1:5080";

    public required StoreOptions Store { get; init; }

    public string Urls { get; init; } = DefaultUrls;

    public string DataDirectory { get; init; } = "data";

    public ClassificationScheme Classification { get; init; } = ClassificationScheme.Un;

    /// <summary>Whether <c>--classification</c> was given (or the caller chose <see cref="Classification"/>): if not, a verb that sets no markings leaves the store's scheme alone.</summary>
    public bool ClassificationChosen { get; init; } = true;

    /// <summary>The TAK listeners (TLS 8089 by default; plain TCP off).</summary>
    public Tak.TakOptions Tak { get; init; } = new();

    /// <summary>
    /// An optional raster tile layer for the map: a URL template with {z}/{x}/{y} (a tile server on the mission network), or
    /// a local directory of z/x/y.png tiles served at /tiles. Without either the map draws Natural Earth boundaries only.
    /// </summary>
    public string? TileUrl { get; init; }

    public string? TileDirectory { get; init; }

    /// <summary>
    /// Reverse proxies whose <c>X-Forwarded-For</c> and <c>X-Forwarded-Proto</c> are believed. Behind a proxy every
    /// client otherwise comes from the proxy's address, and sign-in limits per address (SignInThrottle) count the whole
    /// mission as one client. Empty: the connection's own address counts, and forwarded headers are ignored.
    /// </summary>
    public IReadOnlyList<System.Net.IPAddress> TrustedProxies { get; init; } = [];

    /// <summary>The business clock (deadlines, escalations, record times); tests inject a fake one. Null: the system clock.</summary>
    public TimeProvider? Clock { get; init; }

    /// <summary>Quieter logs for tests and benchmarks.</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;
}

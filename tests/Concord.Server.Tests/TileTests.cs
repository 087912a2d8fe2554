using System.Net;
using Concord.Server.Cli;

namespace Concord.Server.Tests;

/// <summary>A deployment's own tiles: <c>--tile-dir</c> serves a z/x/y directory at /tiles and the map is told to use it.</summary>
public sealed class TileTests
{
    [Fact]
    public async Task A_tile_directory_is_served_to_the_map_without_anything_from_the_internet()
    {
        var data = Directory.CreateTempSubdirectory("concord-tiles-data-").FullName;
        var tiles = Directory.CreateTempSubdirectory("concord-tiles-").FullName;
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4];
        Directory.CreateDirectory(Path.Combine(tiles, "6", "35"));
        await File.WriteAllBytesAsync(Path.Combine(tiles, "6", "35", "30.png"), png);
        try
        {
            Assert.True(CommandLine.TryParse(["serve", "--data", data, "--urls", "http://127.0.0.1:0", "--tile-dir", tiles, "--tak-port", "0"], out var invocation, out var parseError), parseError);
            Assert.True(Commands.TryBuildOptions(invocation, out var options, out var error), error);
            Assert.Equal("/tiles/{z}/{x}/{y}.png", options.TileUrl);
            Assert.False(Commands.TryBuildOptions(CommandLineFor(["serve", "--tile-dir", Path.Combine(tiles, "missing")]), out _, out var missing));
            Assert.Contains("is not a directory", missing, StringComparison.Ordinal);
            Assert.False(Commands.TryBuildOptions(CommandLineFor(["serve", "--tile-url", "http://tiles.mission/{z}/{x}.png"]), out _, out var badUrl));
            Assert.Contains("{y}", badUrl, StringComparison.Ordinal);

            await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--tile-dir", tiles, "--tak-port", "0"], member: "duty");
            using var client = new HttpClient { BaseAddress = server.Address };
            // Members only: the tiles may be the mission's own imagery.
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/tiles/6/35/30.png")).StatusCode);
            client.DefaultRequestHeaders.Authorization = new("Bearer", server.Token);
            var tile = await client.GetAsync("/tiles/6/35/30.png");
            Assert.Equal(HttpStatusCode.OK, tile.StatusCode);
            Assert.Equal("image/png", tile.Content.Headers.ContentType?.MediaType);
            Assert.Equal(png, await tile.Content.ReadAsByteArrayAsync());
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/tiles/6/35/31.png")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/tiles/../../etc/passwd")).StatusCode);

            var answer = await client.GetAsync("/");
            var page = await answer.Content.ReadAsStringAsync();
            Assert.Contains("data-tiles=\"/tiles/{z}/{x}/{y}.png\"", page, StringComparison.Ordinal);
            // The policy the page carries lets its images come from this server only (the tiles are here).
            var policy = string.Join("; ", answer.Headers.GetValues("Content-Security-Policy"));
            Assert.Contains("img-src 'self' data: blob:;", policy, StringComparison.Ordinal);
            Assert.Contains("script-src 'self';", policy, StringComparison.Ordinal);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(tiles, recursive: true);
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public void Images_come_from_the_tile_server_the_deployment_names_and_from_nowhere_else()
    {
        Assert.Contains("img-src 'self' data: blob:;", Http.ResponseHeaders.ContentSecurityPolicy(null), StringComparison.Ordinal);
        Assert.Contains("img-src 'self' data: blob:;", Http.ResponseHeaders.ContentSecurityPolicy("/tiles/{z}/{x}/{y}.png"), StringComparison.Ordinal);
        Assert.Contains("img-src 'self' data: blob: https://tiles.mission:8443;", Http.ResponseHeaders.ContentSecurityPolicy("https://tiles.mission:8443/osm/{z}/{x}/{y}.png"), StringComparison.Ordinal);
        // Leaflet's {s} (subdomains a, b, c) in the host's first label: any first label of that domain.
        Assert.Contains("img-src 'self' data: blob: http://*.tiles.mission;", Http.ResponseHeaders.ContentSecurityPolicy("http://{s}.tiles.mission/{z}/{x}/{y}.png"), StringComparison.Ordinal);
        Assert.Contains("img-src 'self' data: blob: http://*.tiles.mission;", Http.ResponseHeaders.ContentSecurityPolicy("http://tile-{s}.tiles.mission/{z}/{x}/{y}.png"), StringComparison.Ordinal);

        foreach (var (url, reason) in new[]
        {
            ("http://tiles.{s}.mission/{z}/{x}/{y}.png", "must name its tile server's host"),
            ("//tiles.mission/{z}/{x}/{y}.png", "must give its scheme"),
            ("ftp://tiles.mission/{z}/{x}/{y}.png", "must be an http:// or https:// address"),
            ("http://tiles.mission;script-src */{z}/{x}/{y}.png", "must name its tile server's host"),
        })
        {
            Assert.False(Commands.TryBuildOptions(CommandLineFor(["serve", "--tile-url", url]), out _, out var error), url);
            Assert.Contains(reason, error, StringComparison.Ordinal);
        }

        Assert.True(Commands.TryBuildOptions(CommandLineFor(["serve", "--tile-url", "http://{s}.tiles.mission/{z}/{x}/{y}.png"]), out var options, out var accepted), accepted);
        Assert.Equal("http://{s}.tiles.mission/{z}/{x}/{y}.png", options.TileUrl);
    }

    private static Invocation CommandLineFor(string[] args)
    {
        Assert.True(CommandLine.TryParse(args, out var invocation, out var error), error);
        return invocation;
    }
}

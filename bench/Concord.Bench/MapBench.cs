using System.Diagnostics;
using Concord.Server.Data;
using Concord.Server.Demo;
using Concord.Server.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;

namespace Concord.Bench;

/// <summary>
/// The map in a real browser (Debian's Chromium through Playwright) over a store of <c>count</c> incidents: the first full
/// render (navigation until the map has drawn its first answer) in a fresh browser profile, and the answer to a filter
/// change (from the change event until the map has redrawn), both as the member FORCE's G2 on loopback.
/// </summary>
internal static class MapBench
{
    public static async Task<List<string>> RunAsync(string dataDirectory, int count, TextWriter log)
    {
        var app = ConcordApp.Build(new ServerOptions
        {
            Store = StoreOptions.Sqlite(dataDirectory),
            Urls = "http://127.0.0.1:0",
            DataDirectory = dataDirectory,
            MinimumLogLevel = LogLevel.Warning,
            Tak = new Server.Tak.TakOptions { TlsPort = null },
        });
        await app.Services.PrepareStoreAsync(CancellationToken.None);
        await DemoMission.SeedAsync(app.Services, TextWriter.Null, CancellationToken.None);
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var member = await db.Members.SingleAsync(m => m.UserName == "force.g2");
            var existing = await db.Incidents.CountAsync();
            if (existing < count)
            {
                await log.WriteLineAsync($"seeding {count - existing:N0} synthetic incidents");
                await SyntheticReports.WriteAsync(db, StoreKind.Sqlite, count - existing, member.OrganizationId, member.Id, log);
            }
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        });

        var first = new Measurements();
        var filter = new Measurements();
        var shown = 0;
        var clustered = false;
        for (var run = 0; run < 6; run++)
        {
            var context = await browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = address, ViewportSize = new ViewportSize { Width = 1366, Height = 768 } });
            var page = await context.NewPageAsync();
            await page.GotoAsync("/signin");
            await page.FillAsync("#username", "force.g2");
            await page.FillAsync("#password", DemoMission.Password);
            await page.ClickAsync("#signin");
            await page.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/");
            // The first full render: a new navigation until the map has drawn what the server sent.
            var clock = Stopwatch.StartNew();
            await page.GotoAsync("/");
            await page.WaitForSelectorAsync("#map[data-loaded='1']", new() { State = WaitForSelectorState.Attached, Timeout = 60_000 });
            if (run > 0)
            {
                first.Add(clock.Elapsed.TotalMilliseconds);
            }

            shown = await page.EvaluateAsync<int>("window.concordMap.total");
            clustered = await page.EvaluateAsync<bool>("window.concordMap.clustered");
            foreach (var category in new[] { "ucdp.state-based", "ucdp.one-sided", "", "acled.battles", "" })
            {
                var loads = await page.EvaluateAsync<int>("window.concordMap.loads");
                clock.Restart();
                await page.SelectOptionAsync("#f-category", category);
                await page.WaitForFunctionAsync($"() => window.concordMap.loads > {loads}", null, new() { Timeout = 60_000 });
                filter.Add(clock.Elapsed.TotalMilliseconds);
            }

            await context.CloseAsync();
        }

        await app.StopAsync();
        await app.DisposeAsync();
        var total = count;
        return
        [
            $"| first full render of the map | {total:N0} incidents, {shown:N0} in view ({(clustered ? "as cells" : "as points")}) | {Measurements.Ms(first.Percentile(50))} | {Measurements.Ms(first.Percentile(95))} | < 2000 | {first.Percentile(95) / 2000:0.00} |",
            $"| filter change (category) | same | {Measurements.Ms(filter.Percentile(50))} | {Measurements.Ms(filter.Percentile(95))} | < 300 | {filter.Percentile(95) / 300:0.00} |",
        ];
    }
}

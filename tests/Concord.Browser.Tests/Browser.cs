using Concord.Server.Tests;
using Microsoft.Playwright;

// One browser test class at a time: two servers and a dozen Chromium pages at once are too much for two cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Concord.Browser.Tests;

/// <summary>
/// A real Concord server (from the integration tests) and Debian's Chromium driven by Playwright. Nothing is downloaded:
/// Playwright's driver comes with its NuGet package and the browser is /usr/bin/chromium.
/// </summary>
public abstract class BrowserFixture<TServer> : IAsyncLifetime
    where TServer : TestServer, new()
{
    public const string Chromium = "/usr/bin/chromium";

    /// <summary>Tells the test log, tagged, of every load or script a page's content security policy refused.</summary>
    private const string PolicyWatch = """
        document.addEventListener('securitypolicyviolation', e =>
          console.error(`[csp] ${e.effectiveDirective} refused ${e.blockedURI || 'inline'} at ${e.sourceFile || document.location.pathname}:${e.lineNumber} ${e.sample}`));
        """;

    private readonly List<IBrowserContext> _contexts = [];
    private readonly List<string> _policyViolations = [];
    private IPlaywright? _playwright;

    public TServer Server { get; } = new();

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
        {
            throw new InvalidOperationException($"browser tests need Debian's Chromium at {Chromium}: apt-get install chromium (scripts/test installs it)");
        }

        await Server.InitializeAsync();
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        });
    }

    public async Task DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright?.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>A fresh browser profile (its own cookies) at a laptop's 1366×768 unless told otherwise.</summary>
    public async Task<IPage> PageAsync(int width = 1366, int height = 768)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Server.BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
            Locale = "en-GB",
        });
        context.SetDefaultTimeout(30_000);
        lock (_contexts)
        {
            _contexts.Add(context);
        }

        await context.AddInitScriptAsync(PolicyWatch);
        var page = await context.NewPageAsync();
        // Script errors and warnings go to the test log: a failing browser test shows what the page said.
        page.Console += (_, message) =>
        {
            if (message.Text.StartsWith("[csp]", StringComparison.Ordinal))
            {
                lock (_policyViolations)
                {
                    _policyViolations.Add($"{page.Url}: {message.Text}");
                }
            }

            if (message.Type is "error" or "warning")
            {
                Console.Error.WriteLine($"[browser {message.Type}] {page.Url}: {message.Text}");
            }
        };
        page.PageError += (_, error) => Console.Error.WriteLine($"[page error] {page.Url}: {error}");
        return page;
    }

    /// <summary>
    /// Closes every page a test opened: live pages left open keep their circuits and SignalR connections and re-read on
    /// every change, so later tests would share two cores with all earlier ones. Then fails the test if any of its pages
    /// had something refused by the content security policy: every test checks that the pages it drives need nothing the
    /// policy forbids (what is refused is a feature that silently does not work).
    /// </summary>
    public async Task ClosePagesAsync()
    {
        IBrowserContext[] open;
        lock (_contexts)
        {
            open = [.. _contexts];
            _contexts.Clear();
        }

        foreach (var context in open)
        {
            await context.CloseAsync();
        }

        var refused = TakePolicyViolations();
        if (refused.Count > 0)
        {
            throw new InvalidOperationException("the content security policy refused what a page needs:\n" + string.Join("\n", refused));
        }
    }

    /// <summary>What the policy refused on this test's pages so far (and forgets it).</summary>
    public IReadOnlyList<string> TakePolicyViolations()
    {
        lock (_policyViolations)
        {
            var taken = _policyViolations.ToArray();
            _policyViolations.Clear();
            return taken;
        }
    }

    /// <summary>Signs in through the sign-in page, as a person would.</summary>
    public async Task<IPage> SignedInAsync(string user, string path = "/", int width = 1366, int height = 768)
    {
        var page = await PageAsync(width, height);
        await page.GotoAsync("/signin?returnUrl=" + Uri.EscapeDataString(path));
        await page.FillAsync("#username", user);
        await page.FillAsync("#password", TestServer.Password);
        await page.ClickAsync("#signin");
        try
        {
            await page.WaitForURLAsync(url => new Uri(url).PathAndQuery == path);
        }
        catch (TimeoutException)
        {
            // Say where the browser is and what it shows, so a failure in CI explains itself.
            await Screenshots.ScreenshotAsync(page, $"signin-timeout-{user}");
            var text = await page.InnerTextAsync("body");
            Console.Error.WriteLine($"[sign-in] {user} waited for {path} and is at {page.Url}: {text[..Math.Min(text.Length, 600)]}");
            throw;
        }

        if (Environment.GetEnvironmentVariable("CONCORD_BROWSER_DEBUG") is not null)
        {
            var html = await page.ContentAsync();
            Console.Error.WriteLine($"[debug] {user} {path}: {html[..Math.Min(html.Length, 1500)]}");
        }

        return page;
    }
}

/// <summary>Pictures of the pages, kept as the tests' artefacts.</summary>
public static class Screenshots
{
    /// <summary>Saves a screenshot under artifacts/screenshots (kept by CI as the tests' pictures).</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var directory = Path.Combine(Artifacts(), "screenshots");
        Directory.CreateDirectory(directory);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(directory, name + ".png"), FullPage = false });
    }

    private static string Artifacts()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Concord.slnx")))
            {
                return Path.Combine(dir.FullName, "artifacts");
            }
        }

        return Path.Combine(Path.GetTempPath(), "concord-artifacts");
    }
}

public sealed class SqliteBrowser : BrowserFixture<SqliteServer>;

public sealed class PostgresBrowser : BrowserFixture<PostgresServer>;

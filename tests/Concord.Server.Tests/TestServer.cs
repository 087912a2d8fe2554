using System.Net.Http.Headers;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Organizations;
using Concord.Server.Tak;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Concord.Server.Tests;

/// <summary>
/// A real Concord server on a loopback port with its own fresh store, and a small mission of test organisations and members.
/// Subclasses choose the store; test classes run the same tests against both.
/// </summary>
public abstract class TestServer : IAsyncLifetime
{
    public const string Password = "test-password-1";

    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private WebApplication? _app;

    public Uri BaseAddress { get; private set; } = null!;

    internal IServiceProvider Services => _app!.Services;

    internal StoreOptions Store { get; private set; } = null!;

    internal string DataDirectory { get; } = Directory.CreateTempSubdirectory("concord-test-").FullName;

    public abstract string StoreName { get; }

    public int TakTlsPort { get; private set; }

    public int TakTcpPort { get; private set; }

    /// <summary>
    /// A test TAK device: over TLS with <paramref name="certificate"/>, or over the plain TCP listener without one.
    /// The device's side of the TLS handshake ends before the server has found its member and attached its session, and
    /// what is sent meanwhile reaches it only if an opening picture replays it (tracks do; markers, chat and alerts do
    /// not): unless <paramref name="attached"/> is false (a device the server should refuse), this waits for the session.
    /// </summary>
    internal async Task<TakClient> ConnectTakAsync(System.Security.Cryptography.X509Certificates.X509Certificate2? certificate, bool read = true, bool attached = true)
    {
        // Sessions attached before this device connected (one may have had the same client port, on the other listener
        // or before the port was reused) are not taken for its own.
        var router = Services.GetRequiredService<TakRouter>();
        var earlier = router.Sessions.ToHashSet();
        var device = await TakClient.ConnectAsync(certificate is null ? TakTcpPort : TakTlsPort, certificate, Services.GetRequiredService<TakCertificates>().Authority, read);
        if (!attached)
        {
            return device;
        }

        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!SessionsOf(device).Any(s => !earlier.Contains(s)))
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(15))
            {
                await device.DisposeAsync();
                throw new TimeoutException("the server did not attach the test device's session within 15 s");
            }

            await Task.Delay(20);
        }

        return device;
    }

    /// <summary>The server's sessions whose remote end is <paramref name="device"/>'s port (an earlier device's may have had it too).</summary>
    internal IEnumerable<TakSession> SessionsOf(TakClient device)
    {
        var port = ":" + device.LocalPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Services.GetRequiredService<TakRouter>().Sessions.Where(s => s.Remote.EndsWith(port, StringComparison.Ordinal));
    }

    /// <summary>Issues a device certificate for a member, as <c>concord cert issue</c> does.</summary>
    internal async Task<System.Security.Cryptography.X509Certificates.X509Certificate2> IssueDeviceAsync(string user)
    {
        var certificates = Services.GetRequiredService<TakCertificates>();
        var certificate = certificates.IssueClient(user, TimeSpan.FromDays(1));
        await WithDbAsync(async db =>
        {
            var member = await db.Members.SingleAsync(m => m.UserName == user);
            db.DeviceCertificates.Add(new DeviceCertificate
            {
                Thumbprint = TakCertificates.Thumbprint(certificate),
                MemberId = member.Id,
                Subject = certificate.Subject,
                Serial = certificate.SerialNumber,
                IssuedAt = DateTime.UtcNow,
                ExpiresAt = DateTime.UtcNow.AddDays(1),
            });
            return await db.SaveChangesAsync();
        });
        return certificate;
    }

    /// <summary>Organisations of the test mission: (code, kind, nation).</summary>
    public static readonly (string Code, string Kind, string? Nation)[] Organizations =
    [
        ("JOC", "civilian", null),
        ("FORCE", "military", null),
        ("RWABATT", "military", "RWA"),
        ("UNPOL", "police", null),
        ("OCHA", "humanitarian", null),
        ("PREF", "local-authority", "CAF"),
    ];

    /// <summary>Members of the test mission: (user, organisation, clearance, caveats, roles).</summary>
    public static readonly (string User, string Organization, string Clearance, string Caveats, string Roles)[] Members =
    [
        ("joc", "JOC", "STRICTLY CONFIDENTIAL", "SOURCE-PROTECTED,DECONFLICTION-ONLY", "analyst,reporter"),
        ("force", "FORCE", "CONFIDENTIAL", "", "analyst,reporter"),
        ("rwabatt", "RWABATT", "UNCLASSIFIED", "", "reporter"),
        ("unpol", "UNPOL", "CONFIDENTIAL", "SOURCE-PROTECTED", "reporter"),
        ("unpol2", "UNPOL", "UNCLASSIFIED", "", "reporter"),
        ("ocha", "OCHA", "CONFIDENTIAL", "DECONFLICTION-ONLY", "reporter,analyst"),
        ("pref", "PREF", "UNCLASSIFIED", "", "reporter"),
        ("jocadmin", "JOC", "STRICTLY CONFIDENTIAL", "SOURCE-PROTECTED,DECONFLICTION-ONLY", "mission-admin,org-admin,auditor,analyst,releaser"),
        ("unpoladmin", "UNPOL", "CONFIDENTIAL", "SOURCE-PROTECTED", "org-admin,releaser,reporter"),
    ];

    internal abstract Task<StoreOptions> CreateStoreAsync();

    internal abstract Task DropStoreAsync();

    /// <summary>The business clock of the server; null: the system clock. Servers for deadline tests return a fake one.</summary>
    internal virtual TimeProvider? Clock => null;

    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        await StartAppAsync(seed: true);
    }

    /// <summary>
    /// Stops the server and starts a new one on the same store, as an operator's restart does (the ports change);
    /// <paramref name="whileStopped"/> changes the store in between.
    /// </summary>
    internal async Task RestartAsync(Func<ConcordDb, Task>? whileStopped = null)
    {
        await _app!.StopAsync();
        if (whileStopped is not null)
        {
            await WithDbAsync(async db =>
            {
                await whileStopped(db);
                return true;
            });
        }

        await _app.DisposeAsync();
        await StartAppAsync(seed: false);
    }

    private async Task StartAppAsync(bool seed)
    {
        _app = ConcordApp.Build(new ServerOptions
        {
            Store = Store,
            Urls = "http://127.0.0.1:0",
            DataDirectory = DataDirectory,
            MinimumLogLevel = LogLevel.Warning,
            Tak = new TakOptions { TlsPort = 0, TcpPort = 0, TcpUser = "pref", IdleTimeout = TimeSpan.FromSeconds(30), AlertQueue = 64, AccessCheckInterval = TimeSpan.FromSeconds(1) },
            Clock = Clock,
        });
        await _app.Services.PrepareStoreAsync(CancellationToken.None);
        if (seed)
        {
            await SeedMissionAsync();
        }

        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
        var tak = _app.Services.GetRequiredService<TakServer>();
        await tak.Listening;
        TakTlsPort = tak.BoundTlsPort!.Value;
        TakTcpPort = tak.BoundTcpPort!.Value;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        await DropStoreAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>An HTTP client that acts as the named member through a personal access token.</summary>
    public HttpClient ClientFor(string user)
    {
        var client = Anonymous();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _tokens[user]);
        return client;
    }

    /// <summary>An HTTP client signed in as the named member with their password (a session cookie), as a browser is.</summary>
    public async Task<HttpClient> SignedInAsync(string user)
    {
        // Every test signs in from the loopback address, which a lockout test may have throttled.
        Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        var client = new HttpClient(new HttpClientHandler { CookieContainer = new System.Net.CookieContainer() }) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        var (response, _) = await client.PostJson("/api/auth/signin", new { userName = user, password = Password });
        response.EnsureSuccessStatusCode();
        return client;
    }

    public HttpClient Anonymous() => new() { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };

    internal Viewer ViewerOf(string user) =>
        Services.GetRequiredService<ViewerDirectory>().ForTokenHashAsync(AccessTokens.HashSecret(_tokens[user]), CancellationToken.None).GetAwaiter().GetResult()!;

    /// <summary>Adds a rectangular area to the mission (and reloads the directory), for tests that need a place of their own.</summary>
    internal async Task AddAreaAsync(string code, string name, double south, double west, double north, double east, string kind = "admin1")
    {
        await WithDbAsync(async db =>
        {
            db.Areas.Add(new Areas.Area
            {
                Id = Guid.NewGuid(),
                Code = code,
                Name = name,
                Kind = kind,
                GeometryJson = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $$"""{"type":"Polygon","coordinates":[[[{{west}},{{south}}],[{{east}},{{south}}],[{{east}},{{north}}],[{{west}},{{north}}],[{{west}},{{south}}]]]}"""),
                MinLatitude = south,
                MinLongitude = west,
                MaxLatitude = north,
                MaxLongitude = east,
            });
            return await db.SaveChangesAsync();
        });
        await Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
    }

    /// <summary>A TAK device's current position for a member, stored as the TAK listener stores it (mission-wide, unclassified).</summary>
    internal Task AddTrackAsync(string user, string uid, string callsign, double latitude, double longitude, int classification = 0, bool stale = false) =>
        WithDbAsync(async db =>
        {
            // On the server's clock (a test may have moved it on by days): current for an hour from now, or stale since one.
            var now = Services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
            var member = await db.Members.SingleAsync(m => m.UserName == user);
            db.Tracks.Add(new Tak.Track
            {
                Uid = uid,
                MemberId = member.Id,
                Callsign = callsign,
                CotType = "a-f-G-U-C",
                Latitude = latitude,
                Longitude = longitude,
                Hae = 400,
                ObservedAt = stale ? now.AddHours(-2) : now,
                StaleAt = stale ? now.AddHours(-1) : now.AddHours(1),
                HistoryJson = "[]",
                UpdatedAt = now,
                Classification = classification,
                ReleasableTo = "|mission|",
                Caveats = 0,
            });
            return await db.SaveChangesAsync();
        });

    /// <summary>
    /// Holds the audit writer, which every save waits for, until <paramref name="release"/> completes, then makes
    /// <paramref name="change"/> in its transaction: a save read before and waiting meanwhile finds the store changed under
    /// it. Returns once the writer is held; the task returned ends with the change stored. The test goes on outside the
    /// held transaction's thread: the fake clock runs due timers' continuations on the thread that moves it, and one of
    /// them (the track store's flush) would wait there for the very lock the test holds.
    /// </summary>
    internal async Task<Task> HoldAuditWriterAsync(Task release, Func<ConcordDb, Task> change)
    {
        var chain = Services.GetRequiredService<Audit.AuditChain>();
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = WithDbAsync(async db =>
        {
            await chain.SaveAsync(db, [], CancellationToken.None, async db =>
            {
                holding.SetResult();
                await release;
                await change(db);
            });
            return true;
        });
        await holding.Task;
        return held;
    }

    /// <summary>Runs <paramref name="apply"/> on the store (a trigger that refuses rows, say), and <paramref name="undo"/> when the result is disposed.</summary>
    internal async Task<IAsyncDisposable> WhileAsync(string[] apply, string[] undo)
    {
        await ExecuteAsync(apply);
        return new Undo(() => ExecuteAsync(undo));
    }

    /// <summary>
    /// Makes the store refuse rows as a failing store would (a trigger, on either store) until the result is disposed.
    /// </summary>
    /// <param name="name">The trigger's name, unique among the tests running at once.</param>
    /// <param name="on">What it refuses: <c>INSERT ON audit</c>, <c>UPDATE ON tasks</c>.</param>
    /// <param name="when">A condition on NEW or OLD, written the same for both stores; null: every row.</param>
    /// <param name="message">SQLite's error message, and PostgreSQL's unless <paramref name="postgresRaise"/> says more.</param>
    /// <param name="postgresRaise">PL/pgSQL's RAISE, for an error code a real failure gives (a full disk).</param>
    internal async Task<IAsyncDisposable> RefuseAsync(string name, string on, string? when = null, string message = "refused", string? postgresRaise = null)
    {
        var sqlite = await WithDbAsync(db => Task.FromResult(db.Database.IsSqlite()));
        var table = on[(on.IndexOf(" ON ", StringComparison.Ordinal) + 4)..];
        string[] apply = sqlite
            ? [$"CREATE TRIGGER {name} BEFORE {on}{(when is null ? "" : $" WHEN {when}")} BEGIN SELECT RAISE(ABORT, '{message}'); END"]
            : [$"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {postgresRaise ?? $"RAISE EXCEPTION '{message}'"}; END $$",
               $"CREATE TRIGGER {name} BEFORE {on} FOR EACH ROW{(when is null ? "" : $" WHEN ({when})")} EXECUTE FUNCTION {name}()"];
        string[] undo = sqlite ? [$"DROP TRIGGER {name}"] : [$"DROP TRIGGER {name} ON {table}", $"DROP FUNCTION {name}()"];
        return await WhileAsync(apply, undo);
    }

    private Task<bool> ExecuteAsync(string[] statements) => WithDbAsync(async db =>
    {
        foreach (var statement in statements)
        {
            await db.Database.ExecuteSqlRawAsync(statement);
        }

        return true;
    });

    private sealed class Undo(Func<Task> undo) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await undo();
    }

    internal async Task<T> WithDbAsync<T>(Func<ConcordDb, Task<T>> work)
    {
        await using var scope = Services.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<ConcordDb>());
    }

    private async Task SeedMissionAsync()
    {
        var time = Services.GetRequiredService<TimeProvider>();
        var scheme = Services.GetRequiredService<ClassificationScheme>();
        var caveats = Services.GetRequiredService<CaveatRegistry>();
        await using var scope = Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        foreach (var (code, kind, nation) in Organizations)
        {
            var (_, error) = await OrganizationAdmin.AddAsync(db, code, code + " test organisation", kind, nation, time, CancellationToken.None);
            Assert.Null(error);
        }

        await db.SaveChangesAsync();
        foreach (var (user, organization, clearance, caveatList, roles) in Members)
        {
            var (member, error) = await MemberAdmin.AddAsync(db, new NewMember(user, organization, null, roles.Split(','), clearance,
                caveatList.Split(',', StringSplitOptions.RemoveEmptyEntries), Password), scheme, caveats, time, CancellationToken.None);
            Assert.Null(error);
            await db.SaveChangesAsync();
            var (_, secret) = await AccessTokens.CreateAsync(db, Services.GetRequiredService<Audit.AuditChain>(), null, member!, "tests", TimeSpan.FromDays(1), time, CancellationToken.None);
            _tokens[user] = secret;
        }

        await Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
    }
}

public sealed class SqliteServer : TestServer
{
    public override string StoreName => "sqlite";

    internal override Task<StoreOptions> CreateStoreAsync() => Task.FromResult(StoreOptions.Sqlite(DataDirectory));

    internal override Task DropStoreAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return Task.CompletedTask;
    }
}

public sealed class PostgresServer : TestServer
{
    private readonly PostgresDatabase _database = new();

    public override string StoreName => "postgres";

    internal override async Task<StoreOptions> CreateStoreAsync() => StoreOptions.Postgres(await _database.CreateAsync());

    internal override Task DropStoreAsync() => _database.DropAsync();
}

/// <summary>A throw-away database on the test PostgreSQL server that scripts/test starts (CONCORD_TEST_PG).</summary>
public sealed class PostgresDatabase
{
    public const string Variable = "CONCORD_TEST_PG";

    private string? _name;

    public static string ServerConnection =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"PostgreSQL tests need {Variable}=\"Host=127.0.0.1;Port=...;Username=...\"; scripts/test starts a server and sets it.");

    public async Task<string> CreateAsync()
    {
        _name = "concord_test_" + Guid.NewGuid().ToString("N")[..12];
        await using var connection = new NpgsqlConnection(ServerConnection);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {_name}", connection);
        await command.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(ServerConnection) { Database = _name }.ToString();
    }

    public async Task DropAsync()
    {
        if (_name is null)
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(ServerConnection);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}

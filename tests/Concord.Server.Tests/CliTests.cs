using Concord.Server.Cli;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

public abstract class CliTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("concord-cli-").FullName;

    internal string DataDirectory => _directory;

    /// <summary>The store options a verb is given on the command line.</summary>
    internal abstract string[] StoreArguments { get; }

    internal abstract Task<StoreOptions> StoreAsync();

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    internal static async Task<(int Exit, string Output, string Errors)> Run(params string[] args)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var exit = await Commands.RunAsync(args, output, errors, CancellationToken.None);
        return (exit, output.ToString(), errors.ToString());
    }

    [Fact]
    public async Task Migrate_then_add_an_organisation_a_member_and_a_token()
    {
        var migrate = await Run(["migrate", .. StoreArguments]);
        var again = await Run(["migrate", .. StoreArguments]);
        var org = await Run(["org", "add", "--code", "unmas", "--name", "UN Mine Action Service", "--kind", "humanitarian", .. StoreArguments]);
        var user = await Run(["user", "add", "--user", "Deminer.One", "--org", "UNMAS", "--roles", "reporter,analyst", "--clearance", "CONFIDENTIAL", "--caveats", "DECONFLICTION-ONLY", .. StoreArguments]);
        var token = await Run(["token", "create", "--user", "deminer.one", "--days", "7", .. StoreArguments]);

        Assert.Equal(0, migrate.Exit);
        Assert.Contains("applied 0001_initial", migrate.Output);
        Assert.Contains("up to date", again.Output);
        Assert.Equal((0, "added organisation UNMAS (UN Mine Action Service, humanitarian)"), (org.Exit, org.Output.Trim()));
        Assert.Equal(0, user.Exit);
        Assert.Matches("password: \\S{10,}", user.Output);
        Assert.Equal(0, token.Exit);
        Assert.StartsWith("cnc_", token.Output.Trim());

        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await db.Members.SingleAsync(m => m.UserName == "deminer.one");
        Assert.Equal(1, member.Clearance);
        Assert.Equal("reporter,analyst", member.Roles);
        var stored = await db.AccessTokens.SingleAsync(t => t.MemberId == member.Id);
        Assert.Equal(Accounts.AccessTokens.HashSecret(token.Output.Trim()), stored.SecretHash);
        Assert.Equal(7, (stored.ExpiresAt - stored.CreatedAt).TotalDays, 3);

        var revoke = await Run(["token", "revoke", "--user", "deminer.one", "--id", stored.Id.ToString(), .. StoreArguments]);
        Assert.Equal(0, revoke.Exit);
        await using var check = services.CreateAsyncScope();
        Assert.NotNull((await check.ServiceProvider.GetRequiredService<ConcordDb>().AccessTokens.SingleAsync(t => t.Id == stored.Id)).RevokedAt);
    }

    [Fact]
    public async Task Bad_input_to_the_admin_verbs_is_refused_with_a_reason()
    {
        var kind = await Run(["org", "add", "--code", "X1", "--name", "X", "--kind", "navy", .. StoreArguments]);
        var org = await Run(["user", "add", "--user", "someone", "--org", "NOWHERE", .. StoreArguments]);
        var duplicate = await Run(["org", "add", "--code", "dup", "--name", "Dup", "--kind", "police", .. StoreArguments]);
        var duplicateAgain = await Run(["org", "add", "--code", "DUP", "--name", "Dup", "--kind", "police", .. StoreArguments]);
        var nobody = await Run(["token", "create", "--user", "nobody", .. StoreArguments]);

        Assert.Equal(1, kind.Exit);
        Assert.Contains("kind 'navy' is not one of military, police", kind.Errors);
        Assert.Equal(1, org.Exit);
        Assert.Contains("no organisation has the code 'NOWHERE'", org.Errors);
        Assert.Equal(0, duplicate.Exit);
        Assert.Equal(1, duplicateAgain.Exit);
        Assert.Contains("already exists", duplicateAgain.Errors);
        Assert.Equal(1, nobody.Exit);
    }

    [Fact]
    public async Task The_demo_seeds_the_real_UCDP_events_once_with_a_spread_of_markings()
    {
        var first = await Run(["demo", "--seed-only", .. StoreArguments]);
        var second = await Run(["demo", "--seed-only", .. StoreArguments]);

        Assert.Equal(0, first.Exit);
        Assert.Contains("1848 reports added from UCDP GED 23.1", first.Output);
        Assert.Contains("0 reports added", second.Output);
        Assert.Contains("jmac.analyst", first.Output);

        await using var services = Services(await StoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        Assert.Equal(1848, await db.Reports.CountAsync());
        Assert.Equal(1848, await db.Incidents.CountAsync());
        Assert.Equal(17, await db.Areas.CountAsync());
        Assert.Equal(14948, await db.Reports.SumAsync(r => (r.KilledCivilianBest ?? 0) + (r.KilledOtherBest ?? 0)));
        Assert.Equal(401, await db.Reports.CountAsync(r => r.Category == "ucdp.state-based"));
        Assert.Equal(371, await db.Reports.CountAsync(r => r.Category == "ucdp.non-state"));
        Assert.Equal(1076, await db.Reports.CountAsync(r => r.Category == "ucdp.one-sided"));
        Assert.True(await db.Reports.CountAsync(r => r.AreaId != null) > 1600, "most events fall in a prefecture");
        Assert.True(await db.Reports.Select(r => r.Classification).Distinct().CountAsync() == 3);
        Assert.True(await db.Members.CountAsync() >= 10);
    }

    private static ServiceProvider Services(StoreOptions store)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddConcordCore(new ServerOptions { Store = store });
        return services.BuildServiceProvider();
    }
}

public sealed class CliTests_Sqlite : CliTests
{
    internal override string[] StoreArguments => ["--data", DataDirectory];

    internal override Task<StoreOptions> StoreAsync() => Task.FromResult(StoreOptions.Sqlite(DataDirectory));
}

public sealed class CliTests_Postgres : CliTests
{
    private readonly PostgresDatabase _database = new();
    private string _connection = "";

    internal override string[] StoreArguments => ["--store", "postgres", "--connection", _connection];

    internal override Task<StoreOptions> StoreAsync() => Task.FromResult(StoreOptions.Postgres(_connection));

    public override async Task InitializeAsync() => _connection = await _database.CreateAsync();

    public override async Task DisposeAsync()
    {
        await _database.DropAsync();
        await base.DisposeAsync();
    }
}

public sealed class CommandLineTests
{
    [Theory]
    [InlineData(new[] { "frobnicate" }, "unknown verb 'frobnicate'")]
    [InlineData(new[] { "serve", "--port", "1" }, "unknown option '--port' for 'serve'")]
    [InlineData(new[] { "serve", "--data" }, "option '--data' needs a value (DIR)")]
    [InlineData(new[] { "user" }, "did you mean 'user add'?")]
    [InlineData(new[] { "user", "add", "--org", "X" }, "'user add' needs --user NAME")]
    [InlineData(new[] { "serve", "--store", "mysql" }, "--store must be sqlite or postgres, not 'mysql'")]
    [InlineData(new[] { "serve", "--store", "postgres" }, "--store postgres needs --connection")]
    [InlineData(new[] { "serve", "--urls", "localhost" }, "--urls 'localhost' must be http(s)://HOST:PORT")]
    [InlineData(new[] { "serve", "--classification", "secret" }, "unknown classification scheme 'secret'")]
    [InlineData(new[] { "token", "create", "--user", "a", "--days", "999" }, "--days must be a whole number from 1 to 365")]
    public async Task Bad_command_lines_print_a_reason_and_the_usage_and_exit_2(string[] args, string reason)
    {
        var (exit, _, errors) = await CliTests.Run(args);

        Assert.Equal(2, exit);
        Assert.Contains(reason, errors);
        if (!reason.StartsWith("--days", StringComparison.Ordinal))
        {
            Assert.Contains("usage: concord", errors);
        }
    }

    [Fact]
    public async Task Help_lists_every_verb()
    {
        var (exit, output, _) = await CliTests.Run("--help");
        var (verbExit, verbHelp, _) = await CliTests.Run("user", "add", "--help");

        Assert.Equal(0, exit);
        foreach (var verb in new[] { "serve", "demo", "migrate", "org add", "user add", "token create", "token revoke" })
        {
            Assert.Contains(verb, output);
        }

        Assert.Equal(0, verbExit);
        Assert.Contains("--clearance LEVEL", verbHelp);
    }
}

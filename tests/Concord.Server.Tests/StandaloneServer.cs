using Concord.Server.Accounts;
using Concord.Server.Cli;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Organizations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>
/// A server built from a command line as <c>concord serve</c> builds it, on a SQLite store of its own in a temporary
/// directory (removed on dispose), for tests of what the command line sets; optionally with one member of the JOC.
/// </summary>
internal sealed class StandaloneServer : IAsyncDisposable
{
    private readonly string _data;

    private StandaloneServer(string data, WebApplication app, string? token)
    {
        _data = data;
        App = app;
        Token = token;
    }

    public WebApplication App { get; }

    /// <summary>A personal access token of the member, when one was asked for.</summary>
    public string? Token { get; }

    public Uri Address => new(App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>Builds, prepares and starts the server; <paramref name="arguments"/> come after <c>serve --data DIR</c>.</summary>
    public static async Task<StandaloneServer> StartAsync(string[] arguments, Func<ServerOptions, ServerOptions>? adjust = null, string? member = null)
    {
        var data = Directory.CreateTempSubdirectory("concord-standalone-").FullName;
        Assert.True(CommandLine.TryParse(["serve", "--data", data, .. arguments], out var invocation, out var parseError), parseError);
        Assert.True(Commands.TryBuildOptions(invocation, out var options, out var error), error);
        options = options with { MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning };
        var app = ConcordApp.Build(adjust is null ? options : adjust(options));
        await app.Services.PrepareStoreAsync(CancellationToken.None);
        string? token = null;
        if (member is not null)
        {
            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            await OrganizationAdmin.AddAsync(db, "JOC", "Joint Operations Centre", "civilian", null, TimeProvider.System, CancellationToken.None);
            await db.SaveChangesAsync();
            await app.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
            var (added, memberError) = await MemberAdmin.AddAsync(db, new NewMember(member, "JOC", null, ["reporter"], "UNCLASSIFIED", [], TestServer.Password),
                app.Services.GetRequiredService<Access.ClassificationScheme>(), app.Services.GetRequiredService<Access.CaveatRegistry>(), TimeProvider.System, CancellationToken.None);
            Assert.Null(memberError);
            await db.SaveChangesAsync();
            (_, token) = await AccessTokens.CreateAsync(db, app.Services.GetRequiredService<Audit.AuditChain>(), null, added!, "standalone", TimeSpan.FromHours(1), TimeProvider.System, CancellationToken.None);
        }

        await app.StartAsync();
        return new StandaloneServer(data, app, token);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(_data, recursive: true);
        }
    }
}

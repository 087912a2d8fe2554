using System.Net;
using System.Net.Http.Json;
using Concord.Server.Accounts;
using Concord.Server.Cli;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Organizations;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>Behind a reverse proxy (<c>--trusted-proxy</c>), sign-in limits count the clients the proxy names, not the proxy.</summary>
public sealed class ProxyTests
{
    [Fact]
    public async Task Behind_a_trusted_proxy_one_clients_wrong_passwords_do_not_lock_the_member_out_from_another()
    {
        var data = Directory.CreateTempSubdirectory("concord-proxy-data-").FullName;
        try
        {
            Assert.False(Commands.TryBuildOptions(Invocation(["serve", "--trusted-proxy", "proxy.mission"]), out _, out var bad));
            Assert.Contains("--trusted-proxy 'proxy.mission' is not an IP address", bad, StringComparison.Ordinal);
            Assert.True(Commands.TryBuildOptions(Invocation(["serve", "--data", data, "--urls", "http://127.0.0.1:0", "--no-tak", "--trusted-proxy", "127.0.0.1"]), out var options, out var error), error);

            var app = ConcordApp.Build(options with { MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning });
            await app.Services.PrepareStoreAsync(CancellationToken.None);
            await using (var scope = app.Services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
                await OrganizationAdmin.AddAsync(db, "JOC", "Joint Operations Centre", "civilian", null, TimeProvider.System, CancellationToken.None);
                await db.SaveChangesAsync();
                await app.Services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
                var (_, memberError) = await MemberAdmin.AddAsync(db, new NewMember("duty", "JOC", null, ["reporter"], "UNCLASSIFIED", [], TestServer.Password),
                    app.Services.GetRequiredService<Access.ClassificationScheme>(), app.Services.GetRequiredService<Access.CaveatRegistry>(), TimeProvider.System, CancellationToken.None);
                Assert.Null(memberError);
                await db.SaveChangesAsync();
            }

            await app.StartAsync();
            try
            {
                var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
                async Task<HttpStatusCode> SignInAsync(string client, string password)
                {
                    using var http = new HttpClient { BaseAddress = address };
                    using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/signin") { Content = JsonContent.Create(new { userName = "duty", password }) };
                    request.Headers.Add("X-Forwarded-For", client);
                    return (await http.SendAsync(request)).StatusCode;
                }

                for (var i = 0; i < SignInThrottle.PairLimit; i++)
                {
                    Assert.Equal(HttpStatusCode.Unauthorized, await SignInAsync("198.51.100.7", "wrong-password"));
                }

                Assert.Equal(HttpStatusCode.TooManyRequests, await SignInAsync("198.51.100.7", TestServer.Password));
                Assert.Equal(HttpStatusCode.OK, await SignInAsync("10.20.0.15", TestServer.Password));
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }

    private static Invocation Invocation(string[] args)
    {
        Assert.True(CommandLine.TryParse(args, out var invocation, out var error), error);
        return invocation;
    }
}

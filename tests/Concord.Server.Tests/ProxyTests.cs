using System.Net;
using System.Net.Http.Json;
using Concord.Server.Accounts;
using Concord.Server.Cli;

namespace Concord.Server.Tests;

/// <summary>Behind a reverse proxy (<c>--trusted-proxy</c>), sign-in limits count the clients the proxy names, not the proxy.</summary>
public sealed class ProxyTests
{
    [Fact]
    public async Task Behind_a_trusted_proxy_one_clients_wrong_passwords_do_not_lock_the_member_out_from_another()
    {
        Assert.True(CommandLine.TryParse(["serve", "--trusted-proxy", "proxy.mission"], out var invocation, out var parseError), parseError);
        Assert.False(Commands.TryBuildOptions(invocation, out _, out var bad));
        Assert.Contains("--trusted-proxy 'proxy.mission' is not an IP address", bad, StringComparison.Ordinal);

        await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--no-tak", "--trusted-proxy", "127.0.0.1"], member: "duty");
        async Task<HttpStatusCode> SignInAsync(string client, string password)
        {
            using var http = new HttpClient { BaseAddress = server.Address };
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

    [Fact]
    public async Task Behind_a_chain_of_trusted_proxies_the_client_is_the_first_address_none_of_them_is()
    {
        // A balancer (10.0.0.2) in front of nginx (here, the loopback): each adds the address it was reached from. The client
        // is the first address from the right that is no trusted proxy, not the balancer.
        await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--no-tak", "--trusted-proxy", "127.0.0.1, 10.0.0.2"], member: "duty");
        async Task<HttpStatusCode> SignInAsync(string client, string password)
        {
            using var http = new HttpClient { BaseAddress = server.Address };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/signin") { Content = JsonContent.Create(new { userName = "duty", password }) };
            request.Headers.Add("X-Forwarded-For", client + ", 10.0.0.2");
            return (await http.SendAsync(request)).StatusCode;
        }

        for (var i = 0; i < SignInThrottle.PairLimit; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, await SignInAsync("198.51.100.7", "wrong-password"));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await SignInAsync("198.51.100.7", TestServer.Password));
        Assert.Equal(HttpStatusCode.OK, await SignInAsync("198.51.100.8", TestServer.Password));
    }
}

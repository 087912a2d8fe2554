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

    [Fact]
    public async Task Behind_a_trusted_proxy_that_ends_TLS_the_cookies_are_secure_and_the_browser_keeps_to_TLS()
    {
        // nginx ends TLS and passes plain HTTP on the loopback, saying so in X-Forwarded-Proto: cookies sent without
        // Secure would go out in clear the first time the browser was sent to http:// on the mission's network.
        await using var server = await StandaloneServer.StartAsync(["--urls", "http://127.0.0.1:0", "--no-tak", "--trusted-proxy", "127.0.0.1"], member: "duty");
        async Task<HttpResponseMessage> SignInAsync(string? scheme)
        {
            using var http = new HttpClient { BaseAddress = server.Address };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/signin") { Content = JsonContent.Create(new { userName = "duty", password = TestServer.Password }) };
            request.Headers.Add("X-Forwarded-For", "198.51.100.9");
            if (scheme is not null)
            {
                request.Headers.Add("X-Forwarded-Proto", scheme);
            }

            return await http.SendAsync(request);
        }

        using var tls = await SignInAsync("https");
        Assert.Equal(HttpStatusCode.OK, tls.StatusCode);
        var cookies = tls.Headers.GetValues("Set-Cookie").ToList();
        Assert.Contains(cookies, c => c.StartsWith("concord=", StringComparison.Ordinal));
        Assert.Contains(cookies, c => c.StartsWith("concord-device=", StringComparison.Ordinal));
        Assert.All(cookies, c => Assert.Contains("; secure", c, StringComparison.OrdinalIgnoreCase));
        Assert.Equal("max-age=31536000", Assert.Single(tls.Headers.GetValues("Strict-Transport-Security")));

        // Plain HTTP all the way (the loopback, a test): neither, or the browser would drop the cookies.
        using var plain = await SignInAsync(null);
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.All(plain.Headers.GetValues("Set-Cookie"), c => Assert.DoesNotContain("; secure", c, StringComparison.OrdinalIgnoreCase));
        Assert.False(plain.Headers.Contains("Strict-Transport-Security"));
    }
}

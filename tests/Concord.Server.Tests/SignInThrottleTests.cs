using System.Net;
using Concord.Server.Accounts;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

public sealed class SignInThrottleTests
{
    private static bool LetThrough(SignInThrottle throttle, string name, string address) => throttle.Begin(name, address) == TimeSpan.Zero;

    [Fact]
    public void Spaces_and_case_in_the_name_count_against_the_same_account()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        string[] spellings = ["ngo.med", " ngo.med", "ngo.med ", " NGO.Med ", "\tngo.med"];
        for (var i = 0; i < SignInThrottle.AccountLimit; i++)
        {
            // A new address each time: only the account's count can stop the attempts.
            Assert.True(LetThrough(throttle, spellings[i % spellings.Length], $"10.0.0.{i}"));
        }

        foreach (var spelling in spellings.Append("  ngo.med"))
        {
            Assert.False(LetThrough(throttle, spelling, "10.0.1.1"), $"'{spelling}' got another guess");
        }
    }

    [Fact]
    public void Names_tried_once_are_forgotten_once_their_window_has_passed()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var throttle = new SignInThrottle(clock);
        for (var i = 0; i < 1000; i++)
        {
            throttle.Begin($"guess-{i}-" + new string('x', 5000), $"2001:db8::{i:x}");
        }

        // The name, the address and the two together.
        Assert.Equal(3000, throttle.Remembered);
        clock.Advance(SignInThrottle.Window + TimeSpan.FromSeconds(1));
        throttle.Begin("someone", "2001:db8::ffff");
        Assert.Equal(3, throttle.Remembered);
    }

    [Fact]
    public async Task Attempts_made_in_parallel_get_no_more_guesses_than_the_limit()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        using var start = new Barrier(8);
        var allowed = await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            start.SignalAndWait();
            return Enumerable.Range(0, 25).Count(_ => LetThrough(throttle, "pref", "127.0.0.9"));
        })));

        Assert.Equal(SignInThrottle.PairLimit, allowed.Sum());
    }

    [Fact]
    public void Wrong_passwords_typed_elsewhere_do_not_lock_the_member_out_where_they_work()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        for (var i = 0; i < SignInThrottle.PairLimit; i++)
        {
            Assert.True(LetThrough(throttle, "ocha", "192.0.2.66"));
        }

        Assert.False(LetThrough(throttle, "ocha", "192.0.2.66"));
        Assert.True(LetThrough(throttle, "ocha", "10.0.0.8"));
    }

    [Fact]
    public void One_officer_mistyping_does_not_lock_out_colleagues_behind_the_same_address_but_spraying_names_is_stopped()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        for (var i = 0; i < SignInThrottle.PairLimit; i++)
        {
            Assert.True(LetThrough(throttle, "pref", "10.1.1.1"));
        }

        Assert.False(LetThrough(throttle, "pref", "10.1.1.1"));
        Assert.True(LetThrough(throttle, "joc", "10.1.1.1"));

        // Every name once from one address: the address's own count stops it.
        var letThrough = Enumerable.Range(0, 2 * SignInThrottle.AddressLimit).Count(i => LetThrough(throttle, $"member-{i}", "10.1.1.1"));
        Assert.Equal(SignInThrottle.AddressLimit - SignInThrottle.PairLimit - 1, letThrough);
        Assert.True(LetThrough(throttle, "member-0", "10.1.1.2"));
    }

    [Fact]
    public void An_address_signed_in_from_with_a_device_cookie_is_a_known_one_too()
    {
        // A browser the member signed in from before carries a device cookie: its sign-ins never made the desk's address a
        // known one, so once the cookie was gone (a password reset ends it), a stranger's guesses at the name elsewhere
        // locked the member out at their own desk.
        var throttle = new SignInThrottle(new FakeTimeProvider(DateTimeOffset.UnixEpoch));
        Assert.Equal(TimeSpan.Zero, throttle.Begin("ocha", "10.0.0.8", device: "d1"));
        throttle.Succeeded("ocha", "10.0.0.8", "d1");

        for (var i = 0; i < SignInThrottle.AccountLimit; i++)
        {
            Assert.True(LetThrough(throttle, "ocha", $"198.51.100.{i}"));
        }

        Assert.False(LetThrough(throttle, "ocha", "198.51.100.200"));
        Assert.True(LetThrough(throttle, "ocha", "10.0.0.8"));
    }

    [Fact]
    public void Guessing_spread_over_addresses_locks_the_name_except_where_its_member_signed_in_before()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var throttle = new SignInThrottle(clock);
        Assert.True(LetThrough(throttle, "ocha", "10.0.0.8"));
        throttle.Succeeded("ocha", "10.0.0.8");

        for (var i = 0; i < SignInThrottle.AccountLimit; i++)
        {
            Assert.True(LetThrough(throttle, "ocha", $"198.51.100.{i}"));
        }

        Assert.False(LetThrough(throttle, "ocha", "198.51.100.200"));
        Assert.True(LetThrough(throttle, "OCHA ", "10.0.0.8"));
        throttle.Succeeded("OCHA ", "10.0.0.8");

        // A success forgets the name's failures; a known address stays known for a while, not for ever.
        for (var i = 0; i < SignInThrottle.AccountLimit; i++)
        {
            Assert.True(LetThrough(throttle, "ocha", $"203.0.113.{i}"));
        }

        clock.Advance(SignInThrottle.KnownFor);
        for (var i = 0; i < SignInThrottle.AccountLimit; i++)
        {
            Assert.True(LetThrough(throttle, "ocha", $"203.0.113.{i}"));
        }

        Assert.False(LetThrough(throttle, "ocha", "10.0.0.8"));
    }

    [Fact]
    public void A_success_clears_the_name_and_does_not_count_against_the_address()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        for (var i = 0; i < SignInThrottle.AddressLimit - 1; i++)
        {
            Assert.True(LetThrough(throttle, $"member-{i % 10}", "127.0.0.8"));
        }

        Assert.True(LetThrough(throttle, "member-9", "127.0.0.8"));
        throttle.Succeeded("member-9", "127.0.0.8");

        // Forty-nine failures remain against the address: one more attempt, and the fiftieth failure closes it.
        Assert.True(LetThrough(throttle, "someone", "127.0.0.8"));
        Assert.False(LetThrough(throttle, "member-9", "127.0.0.8"));
        Assert.True(LetThrough(throttle, "member-9", "127.0.0.7"));
    }

    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7")]
    [InlineData("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64")]
    [InlineData("::1", "::1")]
    public void Addresses_count_as_hosts_and_IPv6_by_its_network(string address, string key)
    {
        Assert.Equal(key, SignInThrottle.AddressOf(IPAddress.Parse(address)));
    }
}

public sealed class SignInDevicesTests
{
    [Fact]
    public void The_device_cookie_is_opened_whether_or_not_a_member_has_the_name()
    {
        // Opened only for members' names, a forged 4 KB cookie cost a failed decryption for those alone: the answer's time
        // told which names are members', also to an address whose attempts were all refused by the throttle.
        var protector = new CountingProtector();
        var devices = new SignInDevices(protector, TimeProvider.System);
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Request.Headers.Cookie = SignInDevices.CookieName + "=" + new string('A', 4000);

        Assert.Null(devices.DeviceFor(context, "no.such.member", sessionVersion: null));
        Assert.Null(devices.DeviceFor(context, "force.g2", sessionVersion: 3));

        Assert.Equal(2, protector.Opened);
    }

    /// <summary>Counts the cookies it is asked to open, and opens none (as for a cookie not sealed here).</summary>
    private sealed class CountingProtector : Microsoft.AspNetCore.DataProtection.IDataProtector
    {
        public int Opened { get; private set; }

        public Microsoft.AspNetCore.DataProtection.IDataProtector CreateProtector(string purpose) => this;

        public byte[] Protect(byte[] plaintext) => plaintext;

        public byte[] Unprotect(byte[] protectedData)
        {
            Opened++;
            throw new System.Security.Cryptography.CryptographicException("not sealed here");
        }
    }
}

using Concord.Server.Accounts;

namespace Concord.Server.Tests;

public sealed class SignInThrottleTests
{
    [Fact]
    public void Spaces_and_case_in_the_name_count_against_the_same_account()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        string[] spellings = ["ngo.med", " ngo.med", "ngo.med ", " NGO.Med ", "\tngo.med"];
        for (var i = 0; i < SignInThrottle.MaxFailures; i++)
        {
            // A new address each time: only the account's count can stop the attempts.
            Assert.Equal(TimeSpan.Zero, throttle.Begin(spellings[i], $"10.0.0.{i}"));
        }

        foreach (var spelling in spellings.Append("  ngo.med"))
        {
            Assert.True(throttle.Begin(spelling, "10.0.1.1") > TimeSpan.Zero, $"'{spelling}' got another guess");
        }
    }

    [Fact]
    public void Names_tried_once_are_forgotten_once_their_window_has_passed()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var throttle = new SignInThrottle(clock);
        for (var i = 0; i < 1000; i++)
        {
            throttle.Begin($"guess-{i}-" + new string('x', 5000), $"2001:db8::{i:x}");
        }

        Assert.Equal(2000, throttle.Remembered);
        clock.Advance(SignInThrottle.Window + TimeSpan.FromSeconds(1));
        throttle.Begin("someone", "2001:db8::ffff");
        Assert.Equal(2, throttle.Remembered);
    }

    [Fact]
    public async Task Attempts_made_in_parallel_get_no_more_guesses_than_the_limit()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        using var start = new Barrier(8);
        var allowed = await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            start.SignalAndWait();
            return Enumerable.Range(0, 25).Count(_ => throttle.Begin("pref", "127.0.0.9") == TimeSpan.Zero);
        })));

        Assert.Equal(SignInThrottle.MaxFailures, allowed.Sum());
    }

    [Fact]
    public void A_success_clears_the_account_and_does_not_count_against_the_address()
    {
        var throttle = new SignInThrottle(TimeProvider.System);
        for (var i = 0; i < SignInThrottle.MaxFailures - 1; i++)
        {
            Assert.Equal(TimeSpan.Zero, throttle.Begin("ocha", "127.0.0.8"));
        }

        Assert.Equal(TimeSpan.Zero, throttle.Begin("ocha", "127.0.0.8"));
        throttle.Succeeded("ocha", "127.0.0.8");

        // Four failures remain against the address: one more attempt, and the fifth failure closes it.
        Assert.Equal(TimeSpan.Zero, throttle.Begin("someone", "127.0.0.8"));
        Assert.True(throttle.Begin("ocha", "127.0.0.8") > TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, throttle.Begin("ocha", "127.0.0.7"));
    }
}

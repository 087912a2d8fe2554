using Concord.Server.Tak;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>The router's memory of the incidents devices were sent, without a network or a store.</summary>
public sealed class TakRouterTests
{
    [Fact]
    public void A_full_withdrawal_list_forgets_the_incidents_sent_longest_ago_rather_than_every_new_one()
    {
        // Only Remember is exercised: the router's store, tracks and markings are not needed for it.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var router = new TakRouter(null!, null!, null!, clock, NullLogger<TakRouter>.Instance);
        var marking = new MarkingDefault(0, "mission", 0, "UNCLASSIFIED");
        var sent = Enumerable.Range(0, TakRouter.MaxRememberedIncidents).Select(_ => Guid.NewGuid()).ToList();
        foreach (var id in sent)
        {
            router.Remember(id, marking);
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        // All sent within the week, so none has gone stale on the devices: an incident sent now must still be withdrawable
        // later (a merge), and makes room by forgetting the ones sent longest ago.
        clock.Advance(TimeSpan.FromMinutes(2));
        var late = Guid.NewGuid();
        router.Remember(late, marking);
        Assert.True(router.MayHaveAny(late));
        Assert.False(router.MayHaveAny(sent[0]));
        Assert.False(router.MayHaveAny(sent[(TakRouter.MaxRememberedIncidents / 10) - 1]));
        Assert.True(router.MayHaveAny(sent[TakRouter.MaxRememberedIncidents / 10]));
        Assert.True(router.MayHaveAny(sent[^1]));
    }
}

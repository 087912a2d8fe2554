using Concord.Server.Fusion;
using Concord.Server.Reports;
using Concord.Server.Sharing;

namespace Concord.Server.Tests;

/// <summary>Fusion weighs narrative words by how rare they are among the reports anyone may read.</summary>
public sealed class WordRarityTests
{
    private const string Phrasing = "Affrontements, bilan provisoire dont civils selon des sources";

    private static Report Written(string narrative, int level = 0, string releasableTo = "mission", long caveats = 0) => new()
    {
        Id = Guid.NewGuid(),
        OrganizationId = Guid.Empty,
        MemberId = Guid.Empty,
        ObservedAt = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc),
        ObservedPrecision = TimePrecision.Day,
        Latitude = 5.76,
        Longitude = 20.67,
        LocationPrecisionMeters = 5000,
        Category = "ucdp.state-based",
        Narrative = narrative,
        NarrativeLanguage = "fr",
        Actors = "",
        SourceReliability = "C",
        SourceCredibility = 3,
        Tlp = Tlp.Amber,
        Classification = level,
        ReleasableTo = releasableTo,
        Caveats = caveats,
        ReceivedAt = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc),
        RequestHash = "",
    };

    [Fact]
    public void Words_many_reports_share_weigh_less_than_a_place_named_so_shared_phrasing_no_longer_makes_a_match()
    {
        var rarity = new WordRarity();
        // Twenty accounts in one organisation's phrasing, each about another village, and one about Gbakora's market.
        rarity.Stored([.. Enumerable.Range(0, 20).Select(n => Written($"{Phrasing}, village{n}")), Written("Attaque du marche de Gbakora")]);
        Assert.Equal(21, rarity.Reports);
        Assert.True(rarity.Weight("gbakora") > 3 * rarity.Weight("bilan"), $"{rarity.Weight("gbakora")} against {rarity.Weight("bilan")}");

        // A new account in that phrasing about Gbakora, against an incident in the same phrasing about Bambari and one
        // in other words about Gbakora.
        var report = Features(WordRarity.WordsOf($"{Phrasing}, gbakora"));
        var samePhrasing = Features(WordRarity.WordsOf($"{Phrasing}, bambari"));
        var samePlace = Features(WordRarity.WordsOf("Attaque du marche de Gbakora"));
        double Text(FusionFeatures incident, WordRarity? weights) => FusionScorer.Score(report, incident, weights)!.Text;
        Assert.True(Text(samePhrasing, null) > 0.8, $"{Text(samePhrasing, null)}");
        Assert.True(Text(samePlace, null) < 0.4, $"{Text(samePlace, null)}");
        Assert.True(Text(samePhrasing, rarity) < Text(samePhrasing, null) - 0.2, $"{Text(samePhrasing, rarity)}");
        Assert.True(Text(samePlace, rarity) > Text(samePlace, null), $"{Text(samePlace, rarity)}");
    }

    [Fact]
    public async Task Reports_not_everyone_may_read_change_no_weight_and_a_load_replaces_the_count_whole()
    {
        var rarity = new WordRarity();
        Assert.Equal(1, rarity.Weight("bilan"));
        rarity.Stored([Written($"{Phrasing}, Bambari"), Written("Patrouille a Gbakora")]);
        var weights = new[] { "bilan", "gbakora", "bambari", "secret" }.ToDictionary(w => w, rarity.Weight);

        // A score shown to one viewer tells nothing of records they may not see.
        rarity.Stored([Written("Gbakora secret bilan", level: 1), Written("Gbakora secret bilan", releasableTo: "org:FORCE"), Written("Gbakora secret bilan", caveats: 1)]);
        Assert.Equal(2, rarity.Reports);
        Assert.All(weights, w => Assert.Equal(w.Value, rarity.Weight(w.Key)));

        // Counted anew from the store's readable reports, the new count is taken whole.
        await rarity.Load(new[] { "Patrouille a Gbakora", "Patrouille a Bambari", "Patrouille a Bangui" }.ToAsyncEnumerable(), CancellationToken.None);
        Assert.Equal(3, rarity.Reports);
        Assert.Equal(1, rarity.Weight("patrouille"), 9);
        Assert.Equal(1 + Math.Log(4.0 / 2), rarity.Weight("gbakora"), 9);
        Assert.Equal(1 + Math.Log(4.0), rarity.Weight("bilan"), 9);
    }

    private static FusionFeatures Features(IEnumerable<string> words) => new()
    {
        Latitude = 5.76,
        Longitude = 20.67,
        PrecisionKm = 5,
        Start = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc),
        End = new DateTime(2026, 3, 2, 0, 0, 0, DateTimeKind.Utc),
        Category = "ucdp.state-based",
        Actors = [],
        Words = [.. words.Order(StringComparer.Ordinal)],
        Datasets = [],
    };
}

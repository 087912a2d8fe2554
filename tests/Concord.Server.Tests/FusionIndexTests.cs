using Concord.Server.Fusion;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Concord.Server.Sharing;

namespace Concord.Server.Tests;

/// <summary>
/// The fusion index rules most incidents out before they are scored. It may only rule out pairs the scorer would reject
/// itself: every pair the scorer keeps must come out of the index, however vague either record is. The draw covers
/// every level of the index (places known to 100 m up to a country, windows of a day up to two years), places where
/// the grid is awkward (far north, where a degree of longitude is short; around the poles, where every longitude is near;
/// across the antimeridian), times on both sides of the index's epoch (UCDP's events go back to 1989), and incidents
/// holding both curated datasets.
/// </summary>
public sealed class FusionIndexTests
{
    private static readonly DateTime Start = new(2024, 3, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Four months around the index's epoch (3 January 2000), where its time buckets go from negative to positive.</summary>
    private static readonly DateTime AroundEpoch = new(1999, 11, 1, 0, 0, 0, DateTimeKind.Utc);

    private static readonly string[] Categories =
        ["ucdp.state-based", "ucdp.one-sided", "acled.battles.armed-clash", "acled.violence-against-civilians.attack", "poc.abduction", "field.observation"];

    private static readonly string[] Words = ["attack", "village", "market", "bambari", "convoy", "fighters", "seleka", "antibalaka", "civilians", "looted"];

    [Fact]
    public void The_index_keeps_every_incident_the_scorer_would_keep()
    {
        var random = new Random(20261130);
        var index = new FusionIndex();
        var incidents = new List<Incident>();
        for (var n = 0; n < 4000; n++)
        {
            var incident = RandomIncident(random);
            incidents.Add(incident);
            index.Put(incident);
        }

        var features = incidents.ToDictionary(i => i.Id, FusionFeatures.Of);
        var kept = 0;
        var compared = 0;
        for (var n = 0; n < 1500; n++)
        {
            var report = FusionFeatures.Of(RandomReport(random));
            var expected = incidents.Where(i => FusionScorer.Score(report, features[i.Id]) is not null).Select(i => i.Id).ToHashSet();
            var near = index.Near(report);
            compared += near.Count;
            Assert.Equal(near.Count, near.Select(e => e.Id).Distinct().Count());
            var found = near.Where(e => FusionScorer.Score(report, e.Features) is not null).Select(e => e.Id).ToHashSet();
            Assert.Equal(expected.Order(), found.Order());
            kept += expected.Count;
        }

        // The draw has to put reports near incidents often, or the comparison proves nothing; and the index must still rule
        // most incidents out, or it would be no index.
        Assert.True(kept > 1500, $"only {kept} scored pairs");
        Assert.True(compared < 1500 * 4000 / 4, $"{compared} incidents compared");
    }

    [Fact]
    public void A_closed_or_removed_incident_is_no_longer_near_anything()
    {
        var index = new FusionIndex();
        var incident = RandomIncident(new Random(1));
        incident.Datasets = "";
        index.Put(incident);
        var report = FusionFeatures.Of(incident);
        Assert.Contains(index.Near(report), e => e.Id == incident.Id);

        incident.Status = IncidentStatus.Closed;
        index.Put(incident);
        Assert.DoesNotContain(index.Near(report), e => e.Id == incident.Id);
        Assert.Equal(0, index.Count);

        incident.Status = IncidentStatus.Reported;
        index.Put(incident);
        index.Remove(incident.Id);
        Assert.Empty(index.Near(report));
    }

    [Fact]
    public void An_incident_that_grows_vaguer_moves_to_its_new_level_and_leaves_nothing_behind()
    {
        var index = new FusionIndex();
        var incident = RandomIncident(new Random(3));
        incident.Datasets = "";
        incident.LocationPrecisionMeters = 1_000;
        incident.EndsAt = incident.StartsAt.AddDays(1);
        index.Put(incident);
        var precise = FusionFeatures.Of(incident);

        // A report known only to its province joins: the incident's place is now known to 150 km and its window to two
        // years (second and third levels of the index), then it narrows again.
        foreach (var (meters, days) in new[] { (150_000.0, 1), (150_000.0, 700), (1_000.0, 1) })
        {
            incident.LocationPrecisionMeters = meters;
            incident.EndsAt = incident.StartsAt.AddDays(days);
            index.Put(incident);
            Assert.Equal(1, index.Count);
            var now = FusionFeatures.Of(incident);
            var near = index.Near(now);
            Assert.Equal(incident.Id, Assert.Single(near).Id);
            Assert.Equal(now.PrecisionKm, near[0].Features.PrecisionKm);
            Assert.Equal(now.End, near[0].Features.End);

            // Seen from a place 40 km away, where only the vaguer copy reaches: exactly as far as the scorer keeps it.
            var away = precise with { Latitude = precise.Latitude + 0.36 };
            var expected = FusionScorer.Score(away, now) is not null;
            Assert.Equal(expected, index.Near(away).Any(e => e.Id == incident.Id && FusionScorer.Score(away, e.Features) is not null));
        }

        index.Remove(incident.Id);
        Assert.Equal(0, index.Count);
        Assert.Empty(index.Near(precise));
        Assert.Empty(index.Near(FusionFeatures.Of(incident) with { PrecisionKm = 500 }));
    }

    [Fact]
    public void Incidents_share_one_copy_of_a_category_set_of_actors_and_datasets_and_keep_their_own_words()
    {
        var index = new FusionIndex();
        var first = RandomIncident(new Random(2));
        first.Datasets = "ucdp-ged";
        var second = RandomIncident(new Random(2));
        // Equal text read apart, as two rows of the store are.
        second.Category = new string(first.Category.AsSpan());
        second.Actors = new string(first.Actors.AsSpan());
        second.Datasets = new string(first.Datasets.AsSpan());
        second.Keywords = FusionFeatures.Encode(["looted", "market"]);
        index.Put(first);
        index.Put(second);

        // Asked from the same place and time by a record of no curated dataset (a GED event never fuses with another).
        var probe = RandomIncident(new Random(2));
        probe.Datasets = "";
        var near = index.Near(FusionFeatures.Of(probe));
        var a = Assert.Single(near, e => e.Id == first.Id).Features;
        var b = Assert.Single(near, e => e.Id == second.Id).Features;
        Assert.Same(a.Category, b.Category);
        Assert.Same(a.Actors, b.Actors);
        Assert.Same(a.Datasets, b.Datasets);
        Assert.Equal(FusionFeatures.Of(first).Actors, a.Actors);
        Assert.Equal(["ucdp-ged"], b.Datasets);
        Assert.Equal(FusionFeatures.Of(first).Words, a.Words);
        Assert.Equal(["looted", "market"], b.Words);

        // Rebuilt from scratch, the index shares again what it holds then.
        index.Clear();
        index.Put(second);
        Assert.Equal(FusionFeatures.Of(second).Actors, Assert.Single(index.Near(FusionFeatures.Of(probe))).Features.Actors);
    }

    private static Incident RandomIncident(Random random)
    {
        var (latitude, longitude) = Place(random);
        var starts = When(random);
        var days = random.Next(8) switch { 0 or 1 or 2 => 1, 3 or 4 => 7, 5 => 31, 6 => 100, _ => 700 };
        return new Incident
        {
            Id = Guid.NewGuid(),
            Category = Categories[random.Next(Categories.Length)],
            StartsAt = starts,
            EndsAt = starts.AddDays(days),
            Latitude = latitude,
            Longitude = longitude,
            LocationPrecisionMeters = Precision(random),
            Status = IncidentStatus.Reported,
            Title = "incident",
            ReportCount = 1,
            Actors = FusionFeatures.Encode(Pick(random, Words, 2)),
            Keywords = FusionFeatures.Encode(Pick(random, Words, 5)),
            Datasets = random.Next(4) switch { 0 => "ucdp-ged", 1 => "acled", 2 => "|acled|ucdp-ged|", _ => "" },
            Tlp = Tlp.Amber,
            Classification = 0,
            ReleasableTo = "mission",
            Caveats = 0,
            CreatedAt = Start,
            UpdatedAt = Start,
        };
    }

    private static Report RandomReport(Random random)
    {
        var (latitude, longitude) = Place(random);
        return new Report
        {
            Id = Guid.NewGuid(),
            OrganizationId = Guid.Empty,
            MemberId = Guid.Empty,
            ObservedAt = When(random),
            ObservedPrecision = random.Next(4) switch { 0 => TimePrecision.Hour, 1 => TimePrecision.Day, 2 => TimePrecision.Month, _ => TimePrecision.Year },
            Latitude = latitude,
            Longitude = longitude,
            LocationPrecisionMeters = Precision(random),
            Category = Categories[random.Next(Categories.Length)],
            Narrative = string.Join(' ', Pick(random, Words, 6)),
            NarrativeLanguage = "en",
            Actors = FusionFeatures.Encode(Pick(random, Words, 2)),
            ExternalRef = random.Next(3) switch { 0 => $"ucdp-ged:{random.Next()}", 1 => $"acled:CAF{random.Next()}", _ => null },
            SourceReliability = "C",
            SourceCredibility = 3,
            Tlp = Tlp.Amber,
            Classification = 0,
            ReleasableTo = "mission",
            Caveats = 0,
            ReceivedAt = Start,
            RequestHash = "",
        };
    }

    /// <summary>
    /// Places in clusters, so that many pairs are within reach of each other: most in the Central African Republic, some
    /// within half a degree of latitude 80°, some on both sides of the antimeridian, a few within 80 km of either pole.
    /// </summary>
    private static (double Latitude, double Longitude) Place(Random random) => random.Next(20) switch
    {
        < 13 and var cluster => (5.0 + (cluster % 7 * 0.9) + (random.NextDouble() * 0.4), 20.0 + (cluster % 7 * 0.6) + (random.NextDouble() * 0.4)),
        < 17 => (79.5 + random.NextDouble(), 10 + (random.NextDouble() * 30)),
        < 19 => (-17 + random.NextDouble(), random.Next(2) == 0 ? 179 + random.NextDouble() : -180 + random.NextDouble()),
        _ => ((random.Next(2) == 0 ? 1 : -1) * (90 - (random.NextDouble() * 0.7)), (random.NextDouble() * 360) - 180),
    };

    /// <summary>Times in four months of 2024 and, for one record in five, in the four months around the index's epoch.</summary>
    private static DateTime When(Random random) => (random.Next(5) == 0 ? AroundEpoch : Start).AddHours(random.Next(0, 24 * 120));

    /// <summary>GED's steps: exact place to 100 m and 1 km, 25 km, admin-2 50 km, admin-1 150 km, country 500 km.</summary>
    private static double Precision(Random random) => random.Next(10) switch
    {
        0 => 100,
        1 or 2 or 3 => 1_000,
        4 => 2_000,
        5 => 10_000,
        6 => 25_000,
        7 => 50_000,
        8 => 150_000,
        _ => 500_000,
    };

    private static IEnumerable<string> Pick(Random random, string[] words, int count) =>
        Enumerable.Range(0, count).Select(_ => words[random.Next(words.Length)]).Distinct();
}

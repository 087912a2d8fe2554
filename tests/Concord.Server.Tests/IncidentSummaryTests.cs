using Concord.Server.Incidents;
using Concord.Server.Reports;
using Concord.Server.Sharing;
using Concord.Server.Tak;

namespace Concord.Server.Tests;

/// <summary>
/// An incident's casualty range, the box around its reports, and its start, title and category are kept two ways:
/// rebuilt from all its reports, and grown report by report once an incident is large. Both must give the same.
/// </summary>
public sealed class IncidentSummaryTests
{
    private static readonly DateTime Start = new(2025, 6, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void Growing_an_incident_report_by_report_gives_the_range_and_box_of_rebuilding_it()
    {
        var random = new Random(20261201);
        for (var round = 0; round < 200; round++)
        {
            var reports = Enumerable.Range(0, random.Next(1, 12)).Select(_ => RandomReport(random)).ToList();
            var grown = IncidentSummary.OpenFor(reports[0], Start);
            for (var n = 1; n < reports.Count; n++)
            {
                IncidentSummary.Add(grown, reports[n], [.. reports.Take(n).Select(r => ((int?)null, (int?)null))]);
            }

            var rebuilt = IncidentSummary.OpenFor(reports[0], Start);
            IncidentSummary.Summarise(rebuilt, reports);

            Assert.Equal((rebuilt.KilledLow, rebuilt.KilledHigh, rebuilt.InjuredLow, rebuilt.InjuredHigh), (grown.KilledLow, grown.KilledHigh, grown.InjuredLow, grown.InjuredHigh));
            Assert.Equal((rebuilt.South, rebuilt.North, rebuilt.West, rebuilt.East), (grown.South, grown.North, grown.West, grown.East));
            Assert.Equal((rebuilt.StartsAt, rebuilt.Title, rebuilt.Category), (grown.StartsAt, grown.Title, grown.Category));
            Assert.Equal(reports.Min(r => r.Latitude), rebuilt.South);
            Assert.Equal(reports.Max(r => r.Longitude), rebuilt.East);
            Assert.True(rebuilt.KilledLow is null || rebuilt.KilledLow <= rebuilt.KilledHigh);
        }
    }

    [Fact]
    public void The_range_runs_from_the_lowest_figure_any_report_gives_to_the_highest()
    {
        var first = Account(killedCivilian: (4, 6, 9), killedOther: null, injuredOther: null);
        var second = Account(killedCivilian: (null, 12, null), killedOther: 1, injuredOther: 2);
        var incident = IncidentSummary.OpenFor(first, Start);
        IncidentSummary.Summarise(incident, [first, second]);

        Assert.Equal((4, 13), (incident.KilledLow, incident.KilledHigh));
        Assert.Equal((2, 2), (incident.InjuredLow, incident.InjuredHigh));
        Assert.Equal(6, incident.KilledBest);
        var remarks = CotMapping.ToCot(incident, "UNCLASSIFIED", "TLP:AMBER", Start).Detail.Remarks;
        Assert.Contains("6 (4–13) killed", remarks, StringComparison.Ordinal);
    }

    [Fact]
    public void A_figure_given_as_at_least_or_at_most_counts_at_both_ends_of_the_range()
    {
        // "At least 3 civilians killed" (a low alone) with 1 other killed: the range read 4 to 1, and on devices "1 (4–1)".
        var atLeast = Account(killedCivilian: (3, null, null), killedOther: 1, injuredOther: null);
        var incident = IncidentSummary.OpenFor(atLeast, Start);
        Assert.Equal((4, 4), (incident.KilledLow, incident.KilledHigh));

        // Alone, it gave no range at all, as if no report gave a figure.
        var alone = Account(killedCivilian: (5, null, null), killedOther: null, injuredOther: null);
        incident = IncidentSummary.OpenFor(alone, Start);
        Assert.Equal((5, 5), (incident.KilledLow, incident.KilledHigh));

        var atMost = Account(killedCivilian: (null, null, 7), killedOther: null, injuredOther: null);
        IncidentSummary.Summarise(incident, [alone, atMost, atLeast]);
        Assert.Equal((4, 7), (incident.KilledLow, incident.KilledHigh));
    }

    [Fact]
    public void An_incident_opened_for_a_long_narrative_has_the_keywords_a_rebuild_gives_it()
    {
        // More words than an incident keeps, in no alphabetical order: fusion scored the next report against the first ones
        // in the text, a rebuild (provenance, proposals) against the first ones alphabetically.
        var words = Enumerable.Range(0, 60).Select(i => "word" + (char)('z' - (i % 26)) + (char)('a' + (i / 26)) + "x").ToList();
        var report = Account(killedCivilian: (null, 1, null), killedOther: null, injuredOther: null, narrative: string.Join(' ', words));
        Assert.True(Fusion.FusionFeatures.Tokens(report.Narrative).Distinct().Count() > Fusion.FusionFeatures.MaxKeywords);
        var opened = IncidentSummary.OpenFor(report, Start);
        var rebuilt = IncidentSummary.OpenFor(report, Start);
        IncidentSummary.Rebuild(rebuilt, [report]);

        Assert.Equal(rebuilt.Keywords, opened.Keywords);
        // Late in the text, early in the alphabet.
        Assert.Contains("wordabx", opened.Keywords, StringComparison.Ordinal);
        // A short one keeps every word.
        var shortReport = Account(killedCivilian: (null, 1, null), killedOther: null, injuredOther: null, narrative: "Gunmen burned the market of Kaga-Bandoro at dawn");
        var shortRebuilt = IncidentSummary.OpenFor(shortReport, Start);
        IncidentSummary.Rebuild(shortRebuilt, [shortReport]);
        Assert.Equal(shortRebuilt.Keywords, IncidentSummary.OpenFor(shortReport, Start).Keywords);
        Assert.Contains("market", shortRebuilt.Keywords, StringComparison.Ordinal);
    }

    private static Report Account(
        (int? Low, int? Best, int? High) killedCivilian, int? killedOther, int? injuredOther, int? injuredCivilian = null, int? injuredOtherHigh = null,
        DateTime? at = null, double latitude = 4.5, double longitude = 20.5, double precision = 500, string category = "ucdp.one-sided", string narrative = "Attack on a village.") => new()
        {
            Id = Guid.NewGuid(),
            OrganizationId = Guid.Empty,
            MemberId = Guid.Empty,
            ObservedAt = at ?? Start,
            ObservedPrecision = TimePrecision.Hour,
            Latitude = latitude,
            Longitude = longitude,
            LocationPrecisionMeters = precision,
            Category = category,
            Narrative = narrative,
            NarrativeLanguage = "en",
            Actors = "",
            KilledCivilianLow = killedCivilian.Low,
            KilledCivilianBest = killedCivilian.Best,
            KilledCivilianHigh = killedCivilian.High,
            KilledOtherBest = killedOther,
            InjuredCivilianBest = injuredCivilian,
            InjuredOtherBest = injuredOther,
            InjuredOtherHigh = injuredOtherHigh,
            SourceReliability = "C",
            SourceCredibility = 3,
            Tlp = Tlp.Amber,
            Classification = 0,
            ReleasableTo = "mission",
            Caveats = 0,
            ReceivedAt = Start,
            RequestHash = "",
        };

    private static Report RandomReport(Random random)
    {
        int? Figure() => random.Next(4) == 0 ? null : random.Next(0, 30);
        var best = Figure();
        var low = best is { } b && random.Next(2) == 0 ? Math.Max(0, b - random.Next(5)) : (int?)null;
        var high = best is { } h && random.Next(2) == 0 ? h + random.Next(5) : (int?)null;
        // "At least N" or "at most N": an end without a best.
        if (best is null && random.Next(2) == 0)
        {
            (low, high) = random.Next(2) == 0 ? ((int?)random.Next(0, 30), (int?)null) : ((int?)null, (int?)random.Next(0, 30));
        }

        return Account((low, best, high), killedOther: Figure(), injuredOther: null, injuredCivilian: Figure(), injuredOtherHigh: Figure(),
            at: Start.AddHours(random.Next(0, 48)), latitude: 4 + random.NextDouble(), longitude: 20 + random.NextDouble(), precision: random.Next(1, 4) * 500,
            category: random.Next(3) switch { 0 => "ucdp.one-sided", 1 => "acled.battles.armed-clash", _ => "poc.abduction" }, narrative: $"Account {random.Next()}");
    }
}

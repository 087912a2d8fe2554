using System.Globalization;
using System.Text.Json;

namespace Concord.Server.Fusion;

/// <summary>One comparison of a report with an incident: each part in [0, 1] and their weighted total.</summary>
internal sealed record FusionScore(double Total, double Distance, double Time, double Category, double Actors, double Text, double Casualties, double DistanceKm, double GapHours)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public string ToJson() => JsonSerializer.Serialize(new
    {
        total = Math.Round(Total, 4),
        distance = Math.Round(Distance, 4),
        time = Math.Round(Time, 4),
        category = Math.Round(Category, 4),
        actors = Math.Round(Actors, 4),
        text = Math.Round(Text, 4),
        casualties = Math.Round(Casualties, 4),
        distanceKm = Math.Round(DistanceKm, 2),
        gapHours = Math.Round(GapHours, 1),
    }, Json);

    public override string ToString() => Total.ToString("0.000", CultureInfo.InvariantCulture);
}

/// <summary>
/// Scores how likely a report describes the same event as an incident. Distance is judged against both places'
/// uncertainty, time against both windows, category by family, actors and narrative by shared words. Pairs that cannot be
/// the same event (incompatible categories, far apart in space or time, or two records of the same dataset) are not scored.
/// </summary>
internal static class FusionScorer
{
    /// <summary>At or above: the report joins the incident.</summary>
    public const double JoinThreshold = 0.75;

    /// <summary>
    /// Two candidates within this of each other are ambiguous: an analyst chooses. Measured on the demo's accounts of the
    /// real GED events (docs/import-and-fusion.md, "Quality on real data"): 0.01 gave pairwise precision 0.938 and recall
    /// 0.919, 0.025 0.952 and 0.900, 0.03 0.959 and 0.890; a wrong link misleads every viewer, a near-tie costs an analyst
    /// a click.
    /// </summary>
    public const double Margin = 0.025;

    /// <summary>From here up to the join threshold: the report opens its own incident and an analyst is asked.</summary>
    public const double ProposeThreshold = 0.6;

    /// <summary>No event lasts across a bigger gap than this between windows.</summary>
    public static readonly TimeSpan MaxGap = TimeSpan.FromDays(3);

    public const double WeightDistance = 0.20;
    public const double WeightTime = 0.20;
    public const double WeightCategory = 0.15;
    public const double WeightActors = 0.15;
    public const double WeightText = 0.15;
    public const double WeightCasualties = 0.15;

    /// <param name="rarity">How rare each word is (fusion's and provenance's); without it every word weighs the same.</param>
    public static FusionScore? Score(FusionFeatures report, FusionFeatures incident, WordRarity? rarity = null)
    {
        if (FusionFeatures.Shared(report.Datasets, incident.Datasets) > 0)
        {
            // A dataset's own records are distinct events: UCDP does not code one event twice.
            return null;
        }

        // The cheap tests first: most pairs the index offers fail on time or place, before their categories are compared.
        var gap = Gap(report.Start, report.End, incident.Start, incident.End);
        if (gap > MaxGap)
        {
            return null;
        }

        var km = Kilometres(report.Latitude, report.Longitude, incident.Latitude, incident.Longitude);
        var sigma = Math.Sqrt((report.PrecisionKm * report.PrecisionKm) + (incident.PrecisionKm * incident.PrecisionKm));
        if (km > Reach(sigma))
        {
            return null;
        }

        var category = CategoryScore(report.Category, incident.Category);
        if (category <= 0)
        {
            return null;
        }

        var distance = Math.Exp(-0.5 * (km / sigma) * (km / sigma));
        var time = gap <= TimeSpan.Zero ? 1.0 : Math.Exp(-gap.TotalHours / 24);
        // What one side does not say (no actors named, no figure given) is no evidence either way: it is left out and the
        // other parts weighed as a whole. Scored as a half instead, it held a good match of an account naming no actor
        // below the join threshold (recall 0.878 against 0.920 on the demo's accounts), and lifted poor ones towards it.
        var actorsKnown = report.Actors.Length > 0 && incident.Actors.Length > 0;
        var actors = actorsKnown ? Jaccard(report.Actors, incident.Actors) : 0.5;
        var text = report.Words.Length == 0 || incident.Words.Length == 0 ? 0.0 : Overlap(report.Words, incident.Words, rarity);
        var casualtiesKnown = report.Killed is not null && incident.Killed is not null;
        var casualties = report.Killed is { } a && incident.Killed is { } b ? 1 - ((double)Math.Abs(a - b) / Math.Max(1, Math.Max(a, b))) : 0.5;
        var weighed = (WeightDistance * distance) + (WeightTime * time) + (WeightCategory * category) + (WeightText * text)
            + (actorsKnown ? WeightActors * actors : 0) + (casualtiesKnown ? WeightCasualties * casualties : 0);
        var total = weighed / (1 - (actorsKnown ? 0 : WeightActors) - (casualtiesKnown ? 0 : WeightCasualties));
        return new FusionScore(total, distance, time, category, actors, text, casualties, km, Math.Max(0, gap.TotalHours));
    }

    /// <summary>
    /// Same code 1; same type (first two levels) or the same kind of event in another scheme 0.9; a generic field report 0.5;
    /// the same family of events 0.6; otherwise incompatible.
    /// </summary>
    public static double CategoryScore(string a, string b)
    {
        if (a == b)
        {
            return 1;
        }

        if (Type(a).SequenceEqual(Type(b)))
        {
            return 0.9;
        }

        if (a.StartsWith("field.", StringComparison.Ordinal) || b.StartsWith("field.", StringComparison.Ordinal))
        {
            return 0.5;
        }

        if (Crosswalk(Type(a), Type(b)) || Crosswalk(Type(b), Type(a)))
        {
            return 0.9;
        }

        return Family(a) is { } family && family == Family(b) ? 0.6 : 0;
    }

    /// <summary>The same kind of event in two schemes (UCDP violence types against ACLED event types and protection categories).</summary>
    private static readonly (string A, string B)[] Crosswalks =
    [
        ("ucdp.state-based", "acled.battles"),
        ("ucdp.state-based", "acled.explosions-remote-violence"),
        ("ucdp.non-state", "acled.battles"),
        ("ucdp.one-sided", "acled.violence-against-civilians"),
        ("ucdp.one-sided", "poc.killing-and-maiming"),
        ("acled.violence-against-civilians", "poc.killing-and-maiming"),
        ("acled.violence-against-civilians", "poc.abduction"),
        ("acled.violence-against-civilians", "poc.sexual-and-gender-based-violence"),
    ];

    private static bool Crosswalk(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        foreach (var (x, y) in Crosswalks)
        {
            if (a.SequenceEqual(x) && b.SequenceEqual(y))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The first two levels of a category code ("acled.battles.armed-clash" → "acled.battles"), without allocating: fusion compares millions.</summary>
    private static ReadOnlySpan<char> Type(string code)
    {
        var first = code.IndexOf('.', StringComparison.Ordinal);
        var second = first < 0 ? -1 : code.IndexOf('.', first + 1);
        return second < 0 ? code : code.AsSpan(0, second);
    }

    /// <summary>Families of categories that different sources use for the same kind of event.</summary>
    public static string? Family(string code) => code switch
    {
        _ when code.StartsWith("ucdp.", StringComparison.Ordinal) => "violence",
        _ when code.StartsWith("acled.battles", StringComparison.Ordinal) => "violence",
        _ when code.StartsWith("acled.violence-against-civilians", StringComparison.Ordinal) => "violence",
        _ when code.StartsWith("acled.explosions-remote-violence", StringComparison.Ordinal) => "violence",
        "poc.killing-and-maiming" or "poc.abduction" or "poc.sexual-and-gender-based-violence" or "poc.attacks-on-schools-and-hospitals" => "violence",
        _ when code.StartsWith("acled.protests", StringComparison.Ordinal) || code.StartsWith("acled.riots", StringComparison.Ordinal) => "unrest",
        _ when code.StartsWith("ocha-access", StringComparison.Ordinal) || code == "poc.denial-of-humanitarian-access" => "access",
        _ when code.StartsWith("poc.", StringComparison.Ordinal) => "protection",
        _ => null,
    };

    /// <summary>
    /// Records further apart than this are not scored, however vague their places: two places known only to a province or
    /// a country are "close" to every event of that day in it, and the place no longer tells events apart. Measured on the
    /// demo's accounts of the real GED events (docs/import-and-fusion.md, "How fusion decides"): scoring pairs at any
    /// distance within 3σ + 5 km took the pairwise precision from 0.953 to 0.947 and added no right join; up to 100 km
    /// it stays at 0.953. Further apart, an analyst merges.
    /// </summary>
    public const double MaxKm = 100;

    /// <summary>How far apart two records with combined uncertainty <paramref name="sigma"/> may be and still be scored.</summary>
    public static double Reach(double sigma) => Math.Min((3 * sigma) + 5, MaxKm);

    /// <summary>The sphere distances are measured on.</summary>
    public const double EarthRadiusKm = 6371.0;

    public static double Kilometres(double lat1, double lon1, double lat2, double lon2)
    {
        const double R = EarthRadiusKm;
        var dLat = double.DegreesToRadians(lat2 - lat1);
        var dLon = double.DegreesToRadians(lon2 - lon1);
        var a = (Math.Sin(dLat / 2) * Math.Sin(dLat / 2))
            + (Math.Cos(double.DegreesToRadians(lat1)) * Math.Cos(double.DegreesToRadians(lat2)) * Math.Sin(dLon / 2) * Math.Sin(dLon / 2));
        return 2 * R * Math.Asin(Math.Min(1, Math.Sqrt(a)));
    }

    /// <summary>Time between two windows; zero or negative when they overlap.</summary>
    public static TimeSpan Gap(DateTime startA, DateTime endA, DateTime startB, DateTime endB) =>
        (startA > startB ? startA : startB) - (endA < endB ? endA : endB);

    private static double Jaccard(string[] a, string[] b)
    {
        var shared = FusionFeatures.Shared(a, b);
        return shared == 0 ? 0 : (double)shared / (a.Length + b.Length - shared);
    }

    /// <summary>
    /// The weight of the words two sorted sets share over the weight of the lighter set: a short
    /// report that repeats an incident's key words scores high. Each word weighs as rare as it is (<see cref="WordRarity"/>),
    /// so phrasing many reports share counts for less than a place or a group named.
    /// </summary>
    private static double Overlap(string[] a, string[] b, WordRarity? rarity)
    {
        // Weights are 1 at least (every word 1 without a count), so the share is never above 1.
        var shared = FusionFeatures.Shared(a, b, rarity);
        return shared == 0 ? 0 : shared / Math.Min(rarity?.Weight(a) ?? a.Length, rarity?.Weight(b) ?? b.Length);
    }
}

using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Reports;
using Concord.Server.Ucdp;

namespace Concord.Server.Demo;

/// <summary>
/// Other organisations' accounts of real GED events, as different sources would give them: a little later or earlier,
/// a few kilometres off with a coarser precision, other figures, another category scheme, their own words (English or
/// French), sometimes without actors. Deterministic for a seed, so the demo and the fusion quality test are repeatable;
/// the truth (which GED event each describes) is known.
/// </summary>
internal static class DemoDuplicates
{
    /// <summary>Who else reports, how they mark it, and the language they write in.</summary>
    public static readonly (string Author, MarkingDto Marking, string Language)[] Sources =
    [
        ("unpol.officer", new MarkingDto("CONFIDENTIAL", ["kind:police", "org:JOC", "org:JMAC"], []), "fr"),
        ("force.g2", new MarkingDto("CONFIDENTIAL", ["kind:military", "org:JOC", "org:JMAC"], []), "en"),
        ("civaff.officer", new MarkingDto("UNCLASSIFIED", ["mission"], []), "fr"),
        ("ocha.cmcoord", new MarkingDto("UNCLASSIFIED", ["kind:humanitarian", "org:JOC"], []), "en"),
        ("can.bambari", new MarkingDto("UNCLASSIFIED", ["mission"], []), "fr"),
    ];

    public sealed record Duplicate(long GedId, string Author, CreateReport Report);

    /// <summary>Between none and two other accounts of <paramref name="e"/>; <paramref name="share"/> of events get at least one.</summary>
    public static IEnumerable<Duplicate> For(GedEvent e, Random random, double share, MarkingFormat? markings = null)
    {
        if (random.NextDouble() >= share)
        {
            yield break;
        }

        var count = random.NextDouble() < 0.35 ? 2 : 1;
        var used = new HashSet<int>();
        for (var n = 0; n < count; n++)
        {
            int pick;
            do
            {
                pick = random.Next(Sources.Length);
            }
            while (!used.Add(pick));

            var (author, marking, language) = Sources[pick];
            yield return new Duplicate(e.Id, author, Account(e, n, random, marking, language));
        }
    }

    private static CreateReport Account(GedEvent e, int n, Random random, MarkingDto marking, string language)
    {
        // Time: within the event's own window, reported within half a day of it.
        var span = (e.DateEnd - e.DateStart).TotalHours + 24;
        var at = e.DateStart.AddHours(random.NextDouble() * Math.Min(span, 24) - 6 + random.NextDouble() * 12);
        // Place: a few kilometres off, never beyond the GED precision, and said to be coarser.
        var gedKm = GedMapping.PrecisionMeters(e.WherePrecision) / 1000;
        var offsetKm = random.NextDouble() * Math.Min(8, 0.5 * gedKm + 2);
        var bearing = random.NextDouble() * 2 * Math.PI;
        var latitude = e.Latitude + (offsetKm * Math.Cos(bearing) / 111.0);
        var longitude = e.Longitude + (offsetKm * Math.Sin(bearing) / (111.0 * Math.Cos(double.DegreesToRadians(e.Latitude))));
        var precisionKm = Math.Max(gedKm, 5 + (random.NextDouble() * 5));
        var killed = Math.Max(0, (int)Math.Round(e.Best * (0.6 + (random.NextDouble() * 0.8))));
        var civilians = Math.Min(killed, (int)Math.Round(e.DeathsCivilians * (0.6 + (random.NextDouble() * 0.8))));
        var place = e.WhereCoordinates.Split(',')[0].Trim();
        // A source that does not know who fought names nobody, in its words as in its actors: GED's actor names in the
        // narrative would let the words match the event's own narrative where the actors field does not.
        var withActors = random.NextDouble() < 0.7;
        var who = language == "fr"
            ? withActors ? $"entre {e.SideA} et {e.SideB}" : "entre des hommes armés non identifiés"
            : withActors ? $"involving {e.SideA} and {e.SideB}" : "involving unidentified armed men";
        var narrative = language == "fr"
            ? string.Create(CultureInfo.InvariantCulture, $"Selon nos sources, affrontements à {place} {who}. Bilan provisoire : {killed} morts, dont {civilians} civils.")
            : string.Create(CultureInfo.InvariantCulture, $"Fighting reported at {place} {who}; {killed} dead including {civilians} civilians, figures unconfirmed.");
        return new CreateReport
        {
            Id = GedMapping.NameBasedGuid(string.Create(CultureInfo.InvariantCulture, $"demo-duplicate:{e.Id}:{n}")),
            ObservedAt = new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc), TimeSpan.Zero),
            ObservedPrecision = "day",
            Location = new LocationInput(Math.Round(latitude, 5), Math.Round(longitude, 5), Math.Round(precisionKm * 1000), null),
            Category = Category(e.TypeOfViolence, random),
            Casualties = new CasualtiesInput(new CasualtyRange(null, civilians, null), new CasualtyRange(null, killed - civilians, null), null, null),
            Narrative = narrative,
            Language = language,
            Actors = withActors ? [e.SideA, e.SideB] : [],
            Source = new SourceInput(random.NextDouble() < 0.5 ? "C" : "B", random.Next(2, 5), language == "fr" ? "Réseau communautaire" : "Field patrol", null),
            Marking = marking,
        };
    }

    /// <summary>Another organisation codes the same event in its own scheme.</summary>
    private static string Category(int typeOfViolence, Random random) => (typeOfViolence, random.Next(3)) switch
    {
        (1, 0) => "ucdp.state-based",
        (1, _) => "acled.battles.armed-clash",
        (2, 0) => "ucdp.non-state",
        (2, _) => "acled.battles.armed-clash",
        (3, 0) => "poc.killing-and-maiming",
        (3, _) => "acled.violence-against-civilians.attack",
        _ => "acled.battles.armed-clash",
    };
}

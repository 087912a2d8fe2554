using System.Globalization;
using System.Text;
using Concord.Server.Access;
using Concord.Server.Import;
using Concord.Server.Incidents;
using Concord.Server.Reports;
using Concord.Server.Ucdp;

namespace Concord.Server.Fusion;

/// <summary>What fusion compares, for a report or an incident: place with its uncertainty, time window, category, actors, words, datasets.</summary>
internal sealed record FusionFeatures
{
    public const int MaxKeywords = 40;

    /// <summary>
    /// Each character of Latin-1 and Latin Extended-A (U+0080–U+017F) without its accents: the first character of its
    /// canonical decomposition when the rest are non-spacing marks ("é" → "e", "Ŕ" → "R"), else itself ("æ", "ß").
    /// </summary>
    private static readonly char[] LatinBase = [.. Enumerable.Range(0x80, 0x100).Select(code =>
    {
        var decomposed = ((char)code).ToString().Normalize(NormalizationForm.FormD);
        return decomposed.Length > 1 && decomposed.Skip(1).All(m => CharUnicodeInfo.GetUnicodeCategory(m) == UnicodeCategory.NonSpacingMark)
            ? decomposed[0]
            : (char)code;
    })];

    /// <summary>Common words, compared after their accents are removed, as the words of a text are.</summary>
    private static readonly HashSet<string> StopWords = new(new[]
    {
        "the", "and", "that", "with", "from", "this", "were", "was", "have", "has", "had", "their", "they", "them", "been",
        "near", "after", "before", "into", "over", "about", "between", "against", "among", "which", "while", "other", "others",
        "reported", "report", "reports", "according", "people", "persons", "killed", "injured", "least",
        "dans", "avec", "pour", "mais", "sont", "ont", "des", "les", "une", "par", "sur", "aux", "selon", "près", "après",
        "personnes", "tués", "tuées", "blessés", "rapport", "signalé",
    }.Select(word => new string([.. word.Select(WithoutAccent)])), StringComparer.Ordinal);

    /// <summary>The curated datasets, each of which codes an event once (<see cref="Dataset"/>).</summary>
    public static readonly string[] CuratedDatasets = [GedMapping.Dataset, AcledReader.Dataset];

    public required double Latitude { get; init; }

    public required double Longitude { get; init; }

    /// <summary>Uncertainty radius in kilometres (never below 1).</summary>
    public required double PrecisionKm { get; init; }

    public required DateTime Start { get; init; }

    public required DateTime End { get; init; }

    public required string Category { get; init; }

    /// <summary>Words of the actors' names, sorted (ordinal) and distinct; shared strings across the index.</summary>
    public required string[] Actors { get; init; }

    /// <summary>Narrative words, sorted (ordinal) and distinct.</summary>
    public required string[] Words { get; init; }

    public required string[] Datasets { get; init; }

    /// <summary>Killed (best estimate), when the source gives a figure.</summary>
    public int? Killed { get; init; }

    public static FusionFeatures Of(Report r) => new()
    {
        Latitude = r.Latitude,
        Longitude = r.Longitude,
        PrecisionKm = Math.Max(1, r.LocationPrecisionMeters / 1000),
        Start = r.ObservedAt,
        End = r.ObservedAt + TimePrecisions.Span(r.ObservedPrecision),
        Category = r.Category,
        Actors = Sorted(Releasability.Decode(r.Actors).SelectMany(Tokens)),
        Words = Sorted(Tokens(r.Narrative)),
        Datasets = Dataset(r.ExternalRef) is { } d ? [d] : [],
        Killed = Incidents.IncidentSummary.Sum(r.KilledCivilianBest, r.KilledOtherBest),
    };

    public static FusionFeatures Of(Incident i) =>
        OfIncident(i.Latitude, i.Longitude, i.LocationPrecisionMeters, i.StartsAt, i.EndsAt, i.Category, i.Actors, i.Keywords, i.Datasets, i.KilledBest);

    /// <summary>An incident's features from the columns they are made of (fusion's index loads only those).</summary>
    public static FusionFeatures OfIncident(double latitude, double longitude, double precisionMeters, DateTime startsAt, DateTime endsAt, string category, string actors,
        string keywords, string datasets, int? killedBest) => new()
        {
            Latitude = latitude,
            Longitude = longitude,
            PrecisionKm = Math.Max(1, precisionMeters / 1000),
            Start = startsAt,
            End = endsAt,
            Category = category,
            Actors = Sorted(Releasability.Decode(actors).SelectMany(Tokens)),
            Words = Sorted(Releasability.Decode(keywords)),
            Datasets = Sorted(Releasability.Decode(datasets)),
            Killed = killedBest,
        };

    /// <summary>Sets the incident's actors, keywords and datasets from its reports (called whenever the summary is rebuilt).</summary>
    public static void Describe(Incident incident, IReadOnlyList<Report> reports)
    {
        incident.Actors = Releasability.Encode(reports.SelectMany(r => Releasability.Decode(r.Actors)));
        incident.Keywords = KeywordsOf(reports.Select(r => r.Narrative));
        incident.Datasets = Releasability.Encode(reports.Select(r => Dataset(r.ExternalRef)).OfType<string>());
    }

    /// <summary>
    /// An incident's keywords: the words most of its narratives use, then alphabetically, at most <see cref="MaxKeywords"/>.
    /// An incident opened for one report gets them the same way, so that fusion scores the next report against the words
    /// a rebuild of that incident (its provenance, its proposals) would score it against.
    /// </summary>
    public static string KeywordsOf(IEnumerable<string> narratives) =>
        Encode(narratives.SelectMany(n => Tokens(n).Distinct(StringComparer.Ordinal))
            .GroupBy(w => w, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => g.Key).Take(MaxKeywords));

    /// <summary>
    /// <see cref="KeywordsOf(IEnumerable{string})"/> for one narrative, where every word is used once: the first words
    /// alphabetically (opening an incident is on fusion's hot path, and most narratives hold fewer words than are kept).
    /// </summary>
    public static string KeywordsOf(string narrative)
    {
        var words = Tokens(narrative);
        return Encode(words.Count <= MaxKeywords ? words : words.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(MaxKeywords));
    }

    public static string Encode(IEnumerable<string> words) => Releasability.Encode(words);

    /// <summary>
    /// The curated dataset an imported report comes from ("ucdp-ged:12345" → "ucdp-ged", "acled:CAF123" → "acled"): such
    /// datasets code each event once. Generic GeoJSON files and TAK markers make no such promise.
    /// </summary>
    public static string? Dataset(string? externalRef)
    {
        var colon = externalRef?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        foreach (var dataset in colon > 0 ? CuratedDatasets : [])
        {
            if (externalRef.AsSpan(0, colon).SequenceEqual(dataset))
            {
                return dataset;
            }
        }

        return null;
    }

    /// <summary>A Latin letter without its accents (<see cref="LatinBase"/>); any other character as it is.</summary>
    private static char WithoutAccent(char c) => c is > (char)127 and <= (char)0x17F ? LatinBase[c - 0x80] : c;

    /// <summary>Lower-case words of four letters or more, accents removed, without common words, in order of appearance.</summary>
    public static List<string> Tokens(string text)
    {
        // Most narratives are plain ASCII or Latin with accents (French names and places), whose accents a table removes;
        // anything else is decomposed by Unicode normalisation first and its non-spacing marks skipped.
        var source = text.AsSpan().ContainsAnyExceptInRange((char)0, (char)0x17F) ? text.Normalize(NormalizationForm.FormD) : text;
        var words = new List<string>();
        Span<char> word = stackalloc char[48];
        var length = 0;
        var lookup = StopWords.GetAlternateLookup<ReadOnlySpan<char>>();
        for (var i = 0; i <= source.Length; i++)
        {
            var c = i < source.Length ? source[i] : ' ';
            if (c > 0x17F && CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.NonSpacingMark)
            {
                continue;
            }

            c = WithoutAccent(c);

            if (char.IsLetter(c))
            {
                if (length < word.Length)
                {
                    word[length] = char.ToLowerInvariant(c);
                }

                length++;
                continue;
            }

            if (length >= 4 && length <= word.Length && !lookup.Contains(word[..length]))
            {
                words.Add(new string(word[..length]));
            }

            length = 0;
        }

        return words;
    }

    /// <summary>The distinct words, sorted (ordinal): sorted in place and deduplicated in one pass, as fusion does this for every report.</summary>
    private static string[] Sorted(IEnumerable<string> words)
    {
        List<string> list = [.. words];
        list.Sort(StringComparer.Ordinal);
        var distinct = 0;
        for (var i = 0; i < list.Count; i++)
        {
            if (distinct == 0 || !string.Equals(list[i], list[distinct - 1], StringComparison.Ordinal))
            {
                list[distinct++] = list[i];
            }
        }

        return [.. list.GetRange(0, distinct)];
    }

    /// <summary>How many strings two sorted (ordinal) arrays share, without allocating.</summary>
    public static int Shared(string[] a, string[] b) => (int)Shared(a, b, null);

    /// <summary>The weight of the strings two sorted (ordinal) arrays share: each as rare as it is, or 1 without <paramref name="rarity"/>.</summary>
    public static double Shared(string[] a, string[] b, WordRarity? rarity)
    {
        var shared = 0.0;
        int i = 0, j = 0;
        while (i < a.Length && j < b.Length)
        {
            var c = string.CompareOrdinal(a[i], b[j]);
            if (c == 0)
            {
                shared += rarity?.Weight(a[i]) ?? 1;
                i++;
                j++;
            }
            else if (c < 0)
            {
                i++;
            }
            else
            {
                j++;
            }
        }

        return shared;
    }
}

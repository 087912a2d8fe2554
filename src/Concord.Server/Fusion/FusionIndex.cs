using System.Runtime.InteropServices;
using Concord.Server.Incidents;

namespace Concord.Server.Fusion;

/// <summary>
/// Open incidents in memory, bucketed by 0.5° cell and week, so that a new report is compared with the few incidents
/// near it in space and time (blocking) rather than with all of them. Used by the single report writer only, so it needs
/// no locking; it can be stale (an incident merged or closed elsewhere), so the writer confirms a match in the store.
/// </summary>
internal sealed class FusionIndex
{
    public const double CellDegrees = 0.5;

    private static readonly DateTime Epoch = new(2000, 1, 3, 0, 0, 0, DateTimeKind.Utc);

    private readonly Dictionary<(int Y, int X, int Week), List<Slot>> _buckets = [];
    private readonly Dictionary<Guid, Entry> _entries = [];
    private readonly Dictionary<string, string> _words = new(StringComparer.Ordinal);
    private readonly HashSet<string[]> _sets = new(SameWords.Instance);

    internal sealed class Entry(Guid id, FusionFeatures features)
    {
        public Guid Id { get; } = id;

        public FusionFeatures Features { get; } = features;

        public int Seen { get; set; }
    }

    /// <summary>
    /// An entry as its buckets hold it: what the cheap tests of <see cref="Near"/> need, inline, so that the many incidents
    /// they rule out (most of them, in a dense week) are never followed to their features. A million-entry index spread
    /// over the heap costs a cache miss per pointer followed.
    /// </summary>
    private readonly struct Slot(Entry entry)
    {
        public Entry Entry { get; } = entry;

        public double Latitude { get; } = entry.Features.Latitude;

        public double PrecisionKm { get; } = entry.Features.PrecisionKm;

        public long StartTicks { get; } = entry.Features.Start.Ticks;

        public long EndTicks { get; } = entry.Features.End.Ticks;

        public int Datasets { get; } = DatasetBits(entry.Features.Datasets);
    }

    private int _generation;

    public int Count => _entries.Count;

    public void Clear()
    {
        _buckets.Clear();
        _entries.Clear();
        _words.Clear();
        _sets.Clear();
    }

    /// <summary>Adds or refreshes an incident; closed incidents leave the index.</summary>
    public void Put(Incident incident)
    {
        Remove(incident.Id);
        if (incident.Status == IncidentStatus.Closed)
        {
            return;
        }

        var entry = new Entry(incident.Id, Share(FusionFeatures.Of(incident)));
        var slot = new Slot(entry);
        foreach (var key in Keys(entry.Features))
        {
            if (!_buckets.TryGetValue(key, out var list))
            {
                _buckets[key] = list = [];
            }

            list.Add(slot);
        }

        _entries[incident.Id] = entry;
    }

    /// <summary>
    /// The buckets of an incident: its cell, and the weeks of its window (long windows — a month, a year — only their start
    /// and end weeks). Computed again on removal rather than kept: a million entries would keep a million lists.
    /// </summary>
    private static IEnumerable<(int Y, int X, int Week)> Keys(FusionFeatures features)
    {
        var y = Cell(features.Latitude);
        var x = Cell(features.Longitude);
        var first = Week(features.Start);
        var last = Week(features.End);
        var weeks = last - first <= 8 ? Enumerable.Range(first, last - first + 1) : [first, last];
        return weeks.Select(week => (y, x, week));
    }

    public void Remove(Guid id)
    {
        if (!_entries.Remove(id, out var entry))
        {
            return;
        }

        foreach (var key in Keys(entry.Features))
        {
            if (_buckets.TryGetValue(key, out var list))
            {
                list.RemoveAt(IndexOf(list, entry));
                if (list.Count == 0)
                {
                    _buckets.Remove(key);
                }
            }
        }
    }

    /// <summary>
    /// Incidents close enough in space (within a few uncertainty radii) and time (within the largest gap) to be compared,
    /// and not from the same curated dataset as the report. Every test here is one <see cref="FusionScorer.Score"/> makes
    /// too, made early and conservatively (the latitude difference alone is a lower bound of the distance), so the index
    /// never hides a pair the scorer would keep.
    /// </summary>
    public List<Entry> Near(FusionFeatures report)
    {
        _generation++;
        var found = new List<Entry>();
        // Search as far as the report's own uncertainty reaches, plus room for the incident's (capped at 2 cells: 110 km).
        var reach = Math.Min(2, (int)Math.Ceiling(((3 * report.PrecisionKm) + 30) / 111.0 / CellDegrees));
        var y0 = Cell(report.Latitude);
        var x0 = Cell(report.Longitude);
        var w0 = Week(report.Start - FusionScorer.MaxGap);
        var w1 = Week(report.End + FusionScorer.MaxGap);
        if (w1 - w0 > 12)
        {
            w1 = w0 + 12;
        }

        var datasets = DatasetBits(report.Datasets);
        var earliest = report.Start.Ticks - FusionScorer.MaxGap.Ticks;
        var latest = report.End.Ticks + FusionScorer.MaxGap.Ticks;
        var precision2 = report.PrecisionKm * report.PrecisionKm;
        for (var y = y0 - reach; y <= y0 + reach; y++)
        {
            for (var x = x0 - reach; x <= x0 + reach; x++)
            {
                for (var w = w0; w <= w1; w++)
                {
                    if (!_buckets.TryGetValue((y, x, w), out var list))
                    {
                        continue;
                    }

                    foreach (ref readonly var slot in CollectionsMarshal.AsSpan(list))
                    {
                        if ((slot.Datasets & datasets) != 0 || slot.EndTicks < earliest || slot.StartTicks > latest)
                        {
                            continue;
                        }

                        var sigma = Math.Sqrt(precision2 + (slot.PrecisionKm * slot.PrecisionKm));
                        if (KmPerDegreeOfLatitude * Math.Abs(report.Latitude - slot.Latitude) > (3 * sigma) + 5 + 1e-6)
                        {
                            continue;
                        }

                        if (slot.Entry.Seen != _generation)
                        {
                            slot.Entry.Seen = _generation;
                            found.Add(slot.Entry);
                        }
                    }
                }
            }
        }

        return found;
    }

    /// <summary>Great-circle kilometres per degree of latitude on <see cref="FusionScorer.Kilometres"/>'s sphere.</summary>
    private const double KmPerDegreeOfLatitude = 6371.0 * Math.PI / 180;

    /// <summary>The curated datasets of a record as bits, one per <see cref="FusionFeatures.CuratedDatasets"/> (others: the scorer decides).</summary>
    private static int DatasetBits(string[] datasets)
    {
        var bits = 0;
        foreach (var d in datasets)
        {
            var n = Array.IndexOf(FusionFeatures.CuratedDatasets, d);
            bits |= n >= 0 ? 1 << n : 0;
        }

        return bits;
    }

    private static int IndexOf(List<Slot> list, Entry entry)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (ReferenceEquals(list[i].Entry, entry))
            {
                return i;
            }
        }

        return -1;
    }

    private static int Cell(double degrees) => (int)Math.Floor(degrees / CellDegrees);

    private static int Week(DateTime at) => (int)Math.Floor((at - Epoch).TotalDays / 7);

    /// <summary>
    /// The index's copy of an incident's features, sharing what many incidents have in common: one string per distinct
    /// word and category, one array per distinct set of actors' words or datasets (armed groups meet again and again; the
    /// datasets are a handful of combinations). Held apart, these were about 100 bytes and three objects an incident, a
    /// fifth of the index (live objects after a 200,000-row import: 117 MB apart, 95 MB shared), which the collector also
    /// traced on every full collection. Narrative words are shared word by word only, since two incidents rarely have the
    /// same ones. What is shared stays until the index is rebuilt; it is bounded by the distinct words and sets seen.
    /// </summary>
    private FusionFeatures Share(FusionFeatures f)
    {
        string Word(string word)
        {
            if (_words.TryGetValue(word, out var known))
            {
                return known;
            }

            _words[word] = word;
            return word;
        }

        string[] Words(string[] words)
        {
            for (var i = 0; i < words.Length; i++)
            {
                words[i] = Word(words[i]);
            }

            return words;
        }

        string[] Set(string[] words)
        {
            if (words.Length == 0)
            {
                return [];
            }

            if (_sets.TryGetValue(words, out var known))
            {
                return known;
            }

            _sets.Add(Words(words));
            return words;
        }

        return f with { Category = Word(f.Category), Actors = Set(f.Actors), Words = Words(f.Words), Datasets = Set(f.Datasets) };
    }

    /// <summary>Arrays of words compared by their contents, for <see cref="Share"/>.</summary>
    private sealed class SameWords : IEqualityComparer<string[]>
    {
        public static readonly SameWords Instance = new();

        public bool Equals(string[]? x, string[]? y) => x.AsSpan().SequenceEqual(y, StringComparer.Ordinal);

        public int GetHashCode(string[] words)
        {
            var hash = default(HashCode);
            foreach (var word in words)
            {
                hash.Add(word, StringComparer.Ordinal);
            }

            return hash.ToHashCode();
        }
    }
}

using System.Runtime.InteropServices;
using Concord.Server.Incidents;

namespace Concord.Server.Fusion;

/// <summary>
/// Open incidents in memory, bucketed by place and time, so that a new report is compared with the few incidents near
/// it in space and time (blocking) rather than with all of them. Used by the single report writer only, so it needs no
/// locking; it can be stale (an incident merged or closed elsewhere), so the writer confirms a match in the store.
/// </summary>
/// <remarks>
/// Three grids (levels), each for incidents of one kind of uncertainty: precise places and windows of weeks in small
/// cells and weeks; places known to a district or a province (GED's 25 km to admin-1) and windows of months in larger
/// ones; the rest (a country, waters, a window of years) in the largest. A report searches each level as far as the
/// scorer could keep a pair from it: 3σ + 5 km with σ from its own uncertainty and the largest held at that level, and
/// its window widened by <see cref="FusionScorer.MaxGap"/>. A precise report thus reads a few small cells, an imprecise
/// one many, and the index never hides a pair the scorer would keep, however vague either record is.
/// </remarks>
internal sealed class FusionIndex
{
    /// <summary>One grid: cells of <paramref name="Degrees"/>, time buckets of <paramref name="Weeks"/>, for incidents known to <paramref name="MaxPrecisionKm"/> whose window spans at most <paramref name="MaxBuckets"/> buckets.</summary>
    private sealed record Level(double Degrees, int Weeks, double MaxPrecisionKm, int MaxBuckets)
    {
        public int Columns { get; } = (int)Math.Round(360 / Degrees);

        public long BucketTicks { get; } = TimeSpan.TicksPerDay * 7 * Weeks;
    }

    private static readonly Level[] Levels =
    [
        new(0.5, 1, 10, 9),
        new(1, 1, double.PositiveInfinity, 9),
        new(2, 8, double.PositiveInfinity, int.MaxValue),
    ];

    private static readonly long Epoch = new DateTime(2000, 1, 3, 0, 0, 0, DateTimeKind.Utc).Ticks;

    /// <summary>The buckets by <see cref="Key"/>: level, row, column and time bucket packed in one number, quick to hash.</summary>
    private readonly Dictionary<long, List<Slot>> _buckets = [];
    private readonly Dictionary<Guid, Entry> _entries = [];
    private readonly Dictionary<string, string> _words = new(StringComparer.Ordinal);
    private readonly HashSet<string[]> _sets = new(SameWords.Instance);

    /// <summary>Per level, the incidents held and the largest uncertainty any has had since the index was (re)built.</summary>
    private readonly int[] _held = new int[Levels.Length];
    private readonly double[] _widestKm = new double[Levels.Length];

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

        public double Longitude { get; } = entry.Features.Longitude;

        public double PrecisionKm { get; } = entry.Features.PrecisionKm;

        public long StartTicks { get; } = entry.Features.Start.Ticks;

        public long EndTicks { get; } = entry.Features.End.Ticks;

    }

    private int _generation;

    public int Count => _entries.Count;

    public void Clear()
    {
        _buckets.Clear();
        _entries.Clear();
        Array.Clear(_held);
        Array.Clear(_widestKm);
        _words.Clear();
        _sets.Clear();
    }

    /// <summary>Adds or refreshes an incident; closed incidents leave the index.</summary>
    public void Put(Incident incident)
    {
        if (incident.Status == IncidentStatus.Closed)
        {
            Remove(incident.Id);
            return;
        }

        Put(incident.Id, FusionFeatures.Of(incident));
    }

    /// <summary>Indexes an open incident by its features.</summary>
    public void Put(Guid id, FusionFeatures features)
    {
        Remove(id);
        var entry = new Entry(id, Share(features));
        var slot = new Slot(entry);
        var level = LevelOf(entry.Features);
        _held[level]++;
        _widestKm[level] = Math.Max(_widestKm[level], entry.Features.PrecisionKm);
        foreach (var key in Keys(entry.Features, level))
        {
            if (!_buckets.TryGetValue(key, out var list))
            {
                _buckets[key] = list = [];
            }

            list.Add(slot);
        }

        _entries[id] = entry;
    }

    /// <summary>The first level whose uncertainty and window fit the incident's (the last takes any).</summary>
    private static int LevelOf(FusionFeatures features)
    {
        for (var l = 0; l < Levels.Length - 1; l++)
        {
            var level = Levels[l];
            if (features.PrecisionKm <= level.MaxPrecisionKm && Bucket(level, features.End.Ticks) - Bucket(level, features.Start.Ticks) < level.MaxBuckets)
            {
                return l;
            }
        }

        return Levels.Length - 1;
    }

    /// <summary>
    /// The buckets of an incident: its cell at its level, and every time bucket of its window. Computed again on removal
    /// rather than kept: a million entries would keep a million lists.
    /// </summary>
    private static IEnumerable<long> Keys(FusionFeatures features, int l)
    {
        var level = Levels[l];
        var y = Cell(features.Latitude, level);
        var x = Column(Cell(features.Longitude, level), level);
        var datasets = DatasetBits(features.Datasets);
        var first = Bucket(level, features.Start.Ticks);
        var last = Bucket(level, features.End.Ticks);
        for (var bucket = first; bucket <= last; bucket++)
        {
            yield return Key(l, datasets, y, x, bucket);
        }
    }

    public void Remove(Guid id)
    {
        if (!_entries.Remove(id, out var entry))
        {
            return;
        }

        var level = LevelOf(entry.Features);
        _held[level]--;

        foreach (var key in Keys(entry.Features, level))
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
    /// Incidents close enough in space (within 3σ + 5 km) and time (within the largest gap) to be compared, and not from
    /// the same curated dataset as the report. Every test here is one <see cref="FusionScorer.Score"/> makes too, made early
    /// and conservatively (the latitude difference alone is a lower bound of the distance), so the index never hides a
    /// pair the scorer would keep.
    /// </summary>
    public List<Entry> Near(FusionFeatures report)
    {
        _generation++;
        var found = new List<Entry>();
        var datasets = DatasetBits(report.Datasets);
        var window = (Earliest: report.Start.Ticks - FusionScorer.MaxGap.Ticks, Latest: report.End.Ticks + FusionScorer.MaxGap.Ticks);
        var precision2 = report.PrecisionKm * report.PrecisionKm;
        for (var l = 0; l < Levels.Length; l++)
        {
            if (_held[l] == 0)
            {
                continue;
            }

            var level = Levels[l];
            // The farthest the scorer keeps a pair of this report and anything this level holds.
            var reachKm = FusionScorer.Reach(Math.Sqrt(precision2 + (_widestKm[l] * _widestKm[l]))) + 1e-6;
            var reachDegrees = reachKm / KmPerDegreeOfLatitude;
            var south = Math.Max(-90, report.Latitude - reachDegrees);
            var north = Math.Min(90, report.Latitude + reachDegrees);
            var spread = Spread(reachKm, Math.Max(Math.Abs(south), Math.Abs(north)));
            var (west, east) = Columns(report.Longitude, spread, level);
            var b0 = Bucket(level, window.Earliest);
            var b1 = Bucket(level, window.Latest);
            for (var y = Cell(south, level); y <= Cell(north, level); y++)
            {
                for (var x = west; x <= east; x++)
                {
                    for (var b = b0; b <= b1; b++)
                    {
                        for (var d = 0; d < DatasetClasses; d++)
                        {
                            // Never the same dataset's records: a GED event does not even look at GED's buckets.
                            if ((d & datasets) == 0 && _buckets.TryGetValue(Key(l, d, y, Column(x, level), b), out var list))
                            {
                                Scan(list, report, precision2, window, spread, found);
                            }
                        }
                    }
                }
            }
        }

        return found;
    }

    /// <summary>Adds to <paramref name="found"/> the incidents of one bucket the cheap tests keep, each once per search.</summary>
    private void Scan(List<Slot> list, FusionFeatures report, double precision2, (long Earliest, long Latest) window, double spread, List<Entry> found)
    {
        foreach (ref readonly var slot in CollectionsMarshal.AsSpan(list))
        {
            if (slot.EndTicks < window.Earliest || slot.StartTicks > window.Latest)
            {
                continue;
            }

            var sigma = Math.Sqrt(precision2 + (slot.PrecisionKm * slot.PrecisionKm));
            if (KmPerDegreeOfLatitude * Math.Abs(report.Latitude - slot.Latitude) > FusionScorer.Reach(sigma) + 1e-6)
            {
                continue;
            }

            var dLon = Math.Abs(report.Longitude - slot.Longitude);
            if (Math.Min(dLon, 360 - dLon) > spread)
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

    /// <summary>
    /// How far in longitude a place within <paramref name="reachKm"/> may lie, for places no further from the equator than
    /// <paramref name="widestLatitude"/>. By the haversine formula sin²(d/2R) ≥ cos φ₁ cos φ₂ sin²(Δλ/2), so no place
    /// within reach lies more than 2 asin(sin(reach/2R) / cos φ) away in longitude; near a pole, or when the reach is half
    /// the globe, any longitude (360°).
    /// </summary>
    private static double Spread(double reachKm, double widestLatitude)
    {
        var halfAngle = reachKm / (2 * FusionScorer.EarthRadiusKm);
        var cos = Math.Cos(double.DegreesToRadians(widestLatitude));
        var ratio = halfAngle >= Math.PI / 2 || cos <= 1e-9 ? double.PositiveInfinity : Math.Sin(halfAngle) / cos;
        return ratio < 1 ? double.RadiansToDegrees(2 * Math.Asin(ratio)) + 1e-9 : 360;
    }

    /// <summary>The columns (unwrapped) within <paramref name="spread"/> degrees of <paramref name="longitude"/>: every column when that is all the way round.</summary>
    private static (int West, int East) Columns(double longitude, double spread, Level level)
    {
        var west = Cell(longitude - spread, level);
        var east = Cell(longitude + spread, level);
        return spread < 180 && east - west + 1 < level.Columns ? (west, east) : (0, level.Columns - 1);
    }

    /// <summary>Great-circle kilometres per degree of latitude on <see cref="FusionScorer.Kilometres"/>'s sphere.</summary>
    private const double KmPerDegreeOfLatitude = FusionScorer.EarthRadiusKm * Math.PI / 180;

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

    /// <summary>The combinations of curated datasets an incident may hold (<see cref="DatasetBits"/>: two datasets, four combinations), each in buckets of its own.</summary>
    private const int DatasetClasses = 1 << 2;

    /// <summary>
    /// A bucket's key: the time bucket in the high 32 bits, then the level (2 bits), the incident's curated datasets (2),
    /// the row (12) and the column (16).
    /// </summary>
    private static long Key(int level, int datasets, int y, int x, int bucket) =>
        ((long)bucket << 32) | (uint)((level << 30) | (datasets << 28) | ((y + 2048) << 16) | x);

    private static int Cell(double degrees, Level level) => (int)Math.Floor(degrees / level.Degrees);

    /// <summary>A column around the globe: columns west of −180° or east of 180° are those on the other side.</summary>
    private static int Column(int x, Level level) => ((x % level.Columns) + level.Columns) % level.Columns;

    private static int Bucket(Level level, long ticks) => (int)Math.Floor((double)(ticks - Epoch) / level.BucketTicks);

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

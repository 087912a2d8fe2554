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

    private readonly Dictionary<(int Y, int X, int Week), List<Entry>> _buckets = [];
    private readonly Dictionary<Guid, Entry> _entries = [];
    private readonly Dictionary<string, string> _words = new(StringComparer.Ordinal);

    internal sealed class Entry(Guid id, FusionFeatures features)
    {
        public Guid Id { get; } = id;

        public FusionFeatures Features { get; } = features;

        public int Seen { get; set; }
    }

    private int _generation;

    public int Count => _entries.Count;

    public void Clear()
    {
        _buckets.Clear();
        _entries.Clear();
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
        foreach (var key in Keys(entry.Features))
        {
            if (!_buckets.TryGetValue(key, out var list))
            {
                _buckets[key] = list = [];
            }

            list.Add(entry);
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
                list.Remove(entry);
                if (list.Count == 0)
                {
                    _buckets.Remove(key);
                }
            }
        }
    }

    /// <summary>Incidents close enough in space (within a few uncertainty radii) and time (within the largest gap) to be compared.</summary>
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

        for (var y = y0 - reach; y <= y0 + reach; y++)
        {
            for (var x = x0 - reach; x <= x0 + reach; x++)
            {
                for (var w = w0; w <= w1; w++)
                {
                    if (_buckets.TryGetValue((y, x, w), out var list))
                    {
                        foreach (var entry in list)
                        {
                            if (entry.Seen != _generation)
                            {
                                entry.Seen = _generation;
                                found.Add(entry);
                            }
                        }
                    }
                }
            }
        }

        return found;
    }

    private static int Cell(double degrees) => (int)Math.Floor(degrees / CellDegrees);

    private static int Week(DateTime at) => (int)Math.Floor((at - Epoch).TotalDays / 7);

    /// <summary>One string per distinct word across the index: a million incidents share a vocabulary of thousands.</summary>
    private FusionFeatures Share(FusionFeatures f)
    {
        string[] Shared(string[] words)
        {
            for (var i = 0; i < words.Length; i++)
            {
                if (_words.TryGetValue(words[i], out var known))
                {
                    words[i] = known;
                }
                else
                {
                    _words[words[i]] = words[i];
                }
            }

            return words;
        }

        Shared(f.Words);
        Shared(f.Actors);
        return f;
    }
}

using System.Collections.Concurrent;
using Concord.Server.Access;
using Concord.Server.Incidents;

namespace Concord.Server.Fusion;

/// <summary>
/// How rare each narrative word is among the open incidents every member may read, so that fusion's word part counts a
/// place name or a group's name for more than the phrasing many reports share ("bilan provisoire selon des sources",
/// "figures unconfirmed"): an organisation's reports written to one template otherwise fit each other's incidents on
/// those words alone. A word's weight is the smoothed inverse document frequency 1 + ln((n + 1) / (d + 1)) over n such
/// incidents, d of which use it; with none counted every word weighs 1, as it did before.
/// <para>
/// Only incidents at the lowest level, under no caveat and released to the whole mission count: anyone may read those,
/// so the weights (and provenance's scores, which use them) tell no viewer anything about records they may not see.
/// Kept by the fusion index as it takes incidents in and out; read by provenance on request threads, hence concurrent.
/// </para>
/// </summary>
internal sealed class WordRarity
{
    // Per word: the incidents using it, and ln(that + 1), kept beside it so that scoring (millions of lookups in an
    // import) takes no logarithm: a weight is 1 + ln(n + 1) - ln(d + 1).
    private readonly ConcurrentDictionary<string, (int Using, double Log)> _words = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private int _incidents;
    private double _logIncidents;

    /// <summary>Open incidents counted (those every member may read).</summary>
    public int Incidents => Volatile.Read(ref _incidents);

    /// <summary>Whether an incident's words count: anyone in the mission may read it.</summary>
    public static bool Counts(Incident incident) =>
        incident.Classification == 0 && incident.Caveats == 0 && (incident.ReleaseMask & Releasability.MissionBit) != 0;

    /// <summary>The weight of <paramref name="word"/>: 1 for a word every counted incident uses, more the rarer it is.</summary>
    public double Weight(string word) => 1 + Volatile.Read(ref _logIncidents) - (_words.TryGetValue(word, out var used) ? used.Log : 0);

    /// <summary>The weight of a set of words: the sum of theirs.</summary>
    public double Weight(string[] words)
    {
        var weight = words.Length * (1 + Volatile.Read(ref _logIncidents));
        foreach (var word in words)
        {
            if (_words.TryGetValue(word, out var used))
            {
                weight -= used.Log;
            }
        }

        return weight;
    }

    /// <summary>An incident's words (distinct) come in (<paramref name="delta"/> 1) or go out (-1).</summary>
    public void Count(string[] words, int delta)
    {
        // One writer at a time (the fusion index has one); readers see each word's pair whole.
        lock (_gate)
        {
            var incidents = _incidents + delta;
            Volatile.Write(ref _incidents, incidents);
            Volatile.Write(ref _logIncidents, Math.Log(incidents + 1.0));
            foreach (var word in words)
            {
                var now = _words.GetValueOrDefault(word).Using + delta;
                if (now <= 0)
                {
                    _words.TryRemove(word, out _);
                }
                else
                {
                    _words[word] = (now, Math.Log(now + 1.0));
                }
            }
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _words.Clear();
            Volatile.Write(ref _incidents, 0);
            Volatile.Write(ref _logIncidents, 0);
        }
    }
}

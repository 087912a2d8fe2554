using System.Collections.Concurrent;
using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Fusion;

/// <summary>
/// How rare each narrative word is among the reports every member may read, so that fusion's word part counts a place
/// name or a group's name for more than the phrasing many reports share ("bilan provisoire selon des sources", "figures
/// unconfirmed"): an organisation's reports written to one template otherwise fit each other's incidents on those words
/// alone. A word's weight is the smoothed inverse document frequency 1 + ln((n + 1) / (d + 1)) over n such reports, d of
/// which use it; with none counted every word weighs 1, as it did before.
/// <para>
/// Only reports at the lowest level, under no caveat and released to the whole mission count, each as it is stored: anyone
/// may read those, so the weights (and provenance's scores, which use them) move only when such a report is stored, and
/// tell no viewer anything about records they may not see. Not incidents: an incident's marking is the strictest of its
/// reports', so a hidden report joining an open one would take its words out of the count, for all to notice.
/// </para>
/// <para>
/// Counted by the report writer after each commit and by a release's copy once stored; built anew with fusion's index
/// (<see cref="Load"/>) and swapped in whole, so a reader never sees a count half rebuilt. Read by provenance on request
/// threads, hence concurrent; counts only grow between loads (reports are never taken back), so d ≤ n at every moment.
/// </para>
/// </summary>
internal sealed class WordRarity
{
    private sealed class Table
    {
        // Per word: the reports using it, and ln(that + 1), kept beside it so that scoring (millions of lookups in an
        // import) takes no logarithm: a weight is 1 + ln(n + 1) - ln(d + 1).
        public ConcurrentDictionary<string, (int Using, double Log)> Words { get; } = new(StringComparer.Ordinal);

        public int Reports;

        public double LogReports;
    }

    private readonly Lock _gate = new();
    private volatile Table _table = new();

    /// <summary>Reports counted (those every member may read).</summary>
    public int Reports => Volatile.Read(ref _table.Reports);

    /// <summary>Whether a report's words count: anyone in the mission may read it (the rule the store's load asks it by).</summary>
    public static readonly Func<Report, bool> Counts = Visibility.OpenToAll<Report>().Compile();

    /// <summary>The distinct words of a report's narrative, as fusion reads them.</summary>
    public static IEnumerable<string> WordsOf(string narrative) => FusionFeatures.Tokens(narrative).Distinct(StringComparer.Ordinal);

    /// <summary>The weight of <paramref name="word"/>: 1 for a word every counted report uses, more the rarer it is.</summary>
    public double Weight(string word)
    {
        var table = _table;
        return Math.Max(1, 1 + Volatile.Read(ref table.LogReports) - (table.Words.TryGetValue(word, out var used) ? used.Log : 0));
    }

    /// <summary>The weight of a set of words: the sum of theirs.</summary>
    public double Weight(string[] words)
    {
        var weight = 0.0;
        foreach (var word in words)
        {
            weight += Weight(word);
        }

        return weight;
    }

    /// <summary>
    /// Counts the reports among <paramref name="reports"/> anyone may read (just stored), with their words as
    /// <paramref name="known"/> gives them when fusion has read them already (distinct), else read from the narrative.
    /// </summary>
    public void Stored(IEnumerable<Report> reports, Func<Report, string[]?>? known = null)
    {
        lock (_gate)
        {
            foreach (var report in reports.Where(Counts))
            {
                Add(_table, known?.Invoke(report) ?? WordsOf(report.Narrative));
            }
        }
    }

    /// <summary>Counts anew from the narratives of every report anyone may read, then takes the new count in whole.</summary>
    public async Task Load(IAsyncEnumerable<string> narratives, CancellationToken cancellationToken)
    {
        var table = new Table();
        await foreach (var narrative in narratives.WithCancellation(cancellationToken))
        {
            Add(table, WordsOf(narrative));
        }

        lock (_gate)
        {
            _table = table;
        }
    }

    private static void Add(Table table, IEnumerable<string> words)
    {
        // A reader may see a word's count grow past the reports it read a moment before: weights are held at 1 at least.
        var reports = table.Reports + 1;
        Volatile.Write(ref table.Reports, reports);
        Volatile.Write(ref table.LogReports, Math.Log(reports + 1.0));
        foreach (var word in words)
        {
            var now = table.Words.GetValueOrDefault(word).Using + 1;
            table.Words[word] = (now, Math.Log(now + 1.0));
        }
    }
}

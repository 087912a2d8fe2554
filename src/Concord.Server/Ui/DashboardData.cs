using System.Globalization;
using System.Text.Json;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Ui;

/// <summary>
/// The dashboard's figures, computed in the server over the incidents the viewer may see (mixed incidents as rebuilt for
/// the viewer), so that the charts never include anything the viewer may not see.
/// </summary>
public sealed record DashboardData(
    int Incidents,
    long Killed,
    long Injured,
    IReadOnlyList<string> Weeks,
    IReadOnlyList<DashboardSeries> WeeklyByCategory,
    IReadOnlyList<string> Months,
    IReadOnlyList<long> KilledByMonth,
    IReadOnlyList<long> InjuredByMonth,
    IReadOnlyList<DashboardArea> Areas)
{
    public const int MaxSeries = 6;

    public static readonly DashboardData Empty = new(0, 0, 0, [], [], [], [], [], []);

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private sealed record Row(string Category, DateTime StartsAt, int? Killed, int? Injured, Guid? AreaId, int Classification, long Caveats);

    internal static async Task<(DashboardData Data, int Level, long Caveats, List<(int Level, long Caveats, long Count)> Counted)> BuildAsync(
        IncidentSelection visible, MissionDirectory directory, CategoryLabels labels, CancellationToken cancellationToken)
    {
        var rows = await visible.RowsAsync(
            i => new Row(i.Category, i.StartsAt, i.KilledBest, i.InjuredBest, i.AreaId, i.Classification, i.Caveats), cancellationToken);
        if (rows.Count == 0)
        {
            return (Empty, 0, 0, []);
        }

        var language = UiText.Language;
        static string Family(string code) => code.Split('.') is { Length: >= 2 } parts ? parts[0] + "." + parts[1] : code;

        var first = Http.Weeks.Start(rows.Min(r => r.StartsAt));
        var last = Http.Weeks.Start(rows.Max(r => r.StartsAt));
        var weeks = new List<DateTime>();
        for (var w = first; w <= last; w = w.AddDays(7))
        {
            weeks.Add(w);
        }

        var weekIndex = weeks.Select((w, i) => (w, i)).ToDictionary(p => p.w, p => p.i);
        var families = rows.GroupBy(r => Family(r.Category)).OrderByDescending(g => g.Count()).Select(g => g.Key).ToList();
        var shown = families.Take(MaxSeries).ToHashSet(StringComparer.Ordinal);
        var series = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var r in rows)
        {
            var key = shown.Contains(Family(r.Category)) ? Family(r.Category) : "";
            if (!series.TryGetValue(key, out var counts))
            {
                series[key] = counts = new int[weeks.Count];
            }

            counts[weekIndex[Http.Weeks.Start(r.StartsAt)]]++;
        }

        // Every month from the first to the last, as every week: a month without incidents is a zero on the chart, not a
        // line drawn across it as if it had been as busy as its neighbours.
        static DateTime Month(DateTime at) => new(at.Year, at.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var months = new List<DateTime>();
        for (var m = Month(rows.Min(r => r.StartsAt)); m <= Month(rows.Max(r => r.StartsAt)); m = m.AddMonths(1))
        {
            months.Add(m);
        }

        var monthIndex = months.Select((m, i) => (m, i)).ToDictionary(p => p.m, p => p.i);
        var killed = new long[months.Count];
        var injured = new long[months.Count];
        foreach (var r in rows)
        {
            var m = monthIndex[Month(r.StartsAt)];
            killed[m] += r.Killed ?? 0;
            injured[m] += r.Injured ?? 0;
        }

        var areas = rows.GroupBy(r => r.AreaId)
            .Select(g => new DashboardArea(directory.Area(g.Key)?.Name ?? "—", g.Count(), g.Sum(r => (long)(r.Killed ?? 0))))
            .OrderByDescending(a => a.Incidents).ToList();

        var data = new DashboardData(
            rows.Count,
            rows.Sum(r => (long)(r.Killed ?? 0)),
            rows.Sum(r => (long)(r.Injured ?? 0)),
            weeks.Select(w => w.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)).ToList(),
            series.OrderBy(s => s.Key.Length == 0).ThenByDescending(s => s.Value.Sum())
                .Select(s => new DashboardSeries(s.Key.Length == 0 ? "" : labels.Label(s.Key, language), s.Key, s.Value)).ToList(),
            months.Select(m => m.ToString("yyyy-MM", CultureInfo.InvariantCulture)).ToList(),
            killed,
            injured,
            areas);
        return (data, rows.Max(r => r.Classification), rows.Aggregate(0L, (bits, r) => bits | r.Caveats), Audit.Audits.CountMarkings(rows.Select(r => (r.Classification, r.Caveats))));
    }
}

/// <summary>Weekly counts of one category family ("" for all the others together).</summary>
public sealed record DashboardSeries(string Label, string Code, IReadOnlyList<int> Counts);

public sealed record DashboardArea(string Name, int Incidents, long Killed);

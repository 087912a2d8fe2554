namespace Concord.Server.EarlyWarning;

/// <summary>One fatal or non-fatal event for the panel: where, when, how many killed, of which kind.</summary>
internal readonly record struct ConflictEvent(double Latitude, double Longitude, DateTime At, int Killed, bool OneSided);

/// <summary>
/// Cell-months: for each PRIO-GRID cell of the mission and each month, the fatalities, the number of events and the
/// one-sided share. Month 0 is <see cref="Start"/>. Everything a forecast for month t+1 may use is at months ≤ t.
/// </summary>
internal sealed class Panel
{
    private readonly Dictionary<int, int> _row;

    /// <summary>
    /// How many events <see cref="Build"/> placed in the panel: not those of the month in progress, of before its first
    /// month, or outside its cells (what a summary says the model learnt from).
    /// </summary>
    public int Counted { get; private set; }

    public Panel(IReadOnlyList<int> cells, DateTime start, int months)
    {
        Cells = cells;
        Start = new DateTime(start.Year, start.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        Months = months;
        Killed = new double[cells.Count, months];
        Events = new double[cells.Count, months];
        OneSided = new double[cells.Count, months];
        _row = cells.Select((gid, i) => (gid, i)).ToDictionary(p => p.gid, p => p.i);
        NeighbourRows = cells.Select(gid => PrioGrid.Neighbours(gid).Where(_row.ContainsKey).Select(n => _row[n]).ToArray()).ToArray();
    }

    public IReadOnlyList<int> Cells { get; }

    public DateTime Start { get; }

    public int Months { get; }

    public double[,] Killed { get; }

    public double[,] Events { get; }

    public double[,] OneSided { get; }

    /// <summary>For each cell (by row), the rows of its neighbouring cells in the panel.</summary>
    public int[][] NeighbourRows { get; }

    public int MonthOf(DateTime at) => ((at.Year - Start.Year) * 12) + at.Month - Start.Month;

    public DateTime MonthStart(int month) => Start.AddMonths(month);

    public int? RowOf(int gid) => _row.TryGetValue(gid, out var row) ? row : null;

    /// <summary>The months of a panel from <paramref name="start"/>'s month to <paramref name="end"/>'s, both in.</summary>
    public static int MonthsFrom(DateTime start, DateTime end) => ((end.Year - start.Year) * 12) + end.Month - start.Month + 1;

    /// <summary>Builds the panel; events outside the cells or the months are left out.</summary>
    public static Panel Build(IEnumerable<ConflictEvent> events, IReadOnlyList<int> cells, DateTime start, DateTime end)
    {
        var months = MonthsFrom(start, end);
        var panel = new Panel(cells, start, months);
        foreach (var e in events)
        {
            var month = panel.MonthOf(e.At);
            if (month < 0 || month >= months || panel.RowOf(PrioGrid.Gid(e.Latitude, e.Longitude)) is not { } row)
            {
                continue;
            }

            panel.Counted++;
            panel.Killed[row, month] += e.Killed;
            panel.Events[row, month] += 1;
            panel.OneSided[row, month] += e.OneSided ? 1 : 0;
        }

        return panel;
    }
}

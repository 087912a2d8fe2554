using System.Diagnostics;
using System.Globalization;
using Concord.Server.EarlyWarning;
using Concord.Server.Ucdp;

namespace Concord.Bench;

/// <summary>
/// Training and forecasting at scale: 2,000 PRIO-GRID cells × 30 years of months, made from the real CAR events (each
/// event copied into ten neighbouring blocks of cells, offset by whole degrees). Times one fit on all 29 years of targets
/// and one-month-ahead forecasts for every cell over the last year.
/// </summary>
internal static class ForecastBench
{
    public static List<string> Run(int cells, int years)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv");
        var events = new List<ConflictEvent>();
        using (var reader = new StreamReader(path))
        {
            foreach (var row in GedReader.Read(reader))
            {
                if (row.Event is { } e)
                {
                    events.Add(new ConflictEvent(e.Latitude, e.Longitude, e.DateStart, e.Best, e.TypeOfViolence == 3));
                }
            }
        }

        // Blocks of 40 × 50 cells; the events repeat in each block, ten blocks side by side.
        var grid = new List<int>();
        var copies = new List<ConflictEvent>();
        for (var block = 0; grid.Count < cells; block++)
        {
            var offset = block * 25.0;
            for (var y = 0; y < 20 && grid.Count < cells; y++)
            {
                for (var x = 0; x < 25 && grid.Count < cells; x++)
                {
                    grid.Add(PrioGrid.Gid(1.25 + (y * 0.5), 14.25 + offset + (x * 0.5)));
                }
            }

            copies.AddRange(events.Select(e => e with { Longitude = e.Longitude + offset }));
        }

        var end = new DateTime(2022, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var panel = Panel.Build(copies, grid, end.AddYears(-years).AddMonths(1), end);
        var model = new HurdleForecaster();
        var clock = Stopwatch.StartNew();
        model.Fit(panel, panel.Months - 13);
        var fit = clock.Elapsed;
        var forecasts = 0;
        for (var target = panel.Months - 12; target < panel.Months; target++)
        {
            for (var row = 0; row < panel.Cells.Count; row++)
            {
                _ = model.Forecast(panel, row, target - 1);
                forecasts++;
            }
        }

        var total = clock.Elapsed;
        return
        [
            string.Create(CultureInfo.InvariantCulture, $"| train and forecast | {panel.Cells.Count:N0} cells × {panel.Months:N0} months | fit {fit.TotalSeconds:0.0} s + {forecasts:N0} forecasts {(total - fit).TotalSeconds:0.0} s = {total.TotalSeconds:0.0} s | < 30 s | {total.TotalSeconds / 30:0.00} |"),
        ];
    }
}

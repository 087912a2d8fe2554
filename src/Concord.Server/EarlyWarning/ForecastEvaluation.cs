using System.Globalization;
using System.Text;
using System.Text.Json;
using Concord.Server.Areas;
using Concord.Server.Demo;
using Concord.Server.Ucdp;

namespace Concord.Server.EarlyWarning;

/// <summary>
/// The back-test on real data behind <c>concord forecast evaluate</c>: UCDP GED events of the mission country become a
/// panel of PRIO-GRID cell-months (cells whose centre lies in the country's admin-1 areas), and Concord's forecast is
/// scored against the VIEWS benchmarks over held-out years.
/// </summary>
internal static class ForecastEvaluation
{
    public static IReadOnlyList<IForecaster> Forecasters() =>
        [new HurdleForecaster(), new ZeroForecaster(), new LastValueForecaster(), new ConflictologyForecaster(), new BootstrapForecaster()];

    /// <summary>The back-test's panel and scores; <paramref name="Rejected"/> counts the file's rows that were not read, the first with its line.</summary>
    public sealed record Result(Panel Panel, List<WindowScore> Scores, List<(double Probability, bool Happened)> Calibration, int Rejected, GedRow? FirstRejected);

    /// <summary>The data cannot answer what was asked (no events, held-out years outside what it covers): said in one line.</summary>
    public sealed class Refused(string message) : Exception(message);

    public static Result Run(string gedPath, string areasPath, int firstYear, int lastYear, CancellationToken cancellationToken = default)
    {
        var events = new List<ConflictEvent>();
        var rejected = 0;
        GedRow? firstRejected = null;
        using (var reader = new StreamReader(gedPath))
        {
            foreach (var row in GedReader.Read(reader))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (row.Event is { } e)
                {
                    events.Add(new ConflictEvent(e.Latitude, e.Longitude, e.DateStart, e.Best, e.TypeOfViolence == 3));
                }
                else
                {
                    rejected++;
                    firstRejected ??= row;
                }
            }
        }

        if (events.Count == 0)
        {
            throw new Refused($"{gedPath} holds no event to learn from" + (firstRejected is { } bad ? $" (line {bad.Line}: {bad.Error})" : ""));
        }

        // Every held-out window needs 25 months of data before it (a year of lagged features, then twelve training months:
        // Backtest), and its twelve months inside the data: months after the file's last event would be scored as months
        // without deaths. The months count from the month of the file's first event, not from the January before it: the months of that
        // year before it are not in the file's evidence (an extract starting in December would have claimed eleven more).
        var first = events.Min(e => e.At);
        var last = events.Max(e => e.At);
        var lastFullYear = last.Month == 12 ? last.Year : last.Year - 1;
        var firstFullHistory = new DateTime(first.Year, first.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(ForecastService.MinimumMonths);
        var earliestYear = firstFullHistory.Month == 1 ? firstFullHistory.Year : firstFullHistory.Year + 1;
        if (firstYear < earliestYear || lastYear > lastFullYear)
        {
            throw new Refused(string.Create(CultureInfo.InvariantCulture,
                $"the data runs from {first:yyyy-MM} to {last:yyyy-MM}: held-out years go from {earliestYear} ({ForecastService.MinimumMonths} months of history after its first event before them) to {lastFullYear} (the last year it covers to December)"));
        }

        // The cells scored are fixed before the first held-out year: an event in a cell outside the areas adds it only
        // if it happened before then (a cell chosen for its later deaths would be scored on outcomes the choice saw).
        var start = new DateTime(first.Year, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var heldOut = new DateTime(firstYear, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var cells = MissionCells(areasPath, events.Where(e => e.At < heldOut));
        if (cells.Count == 0)
        {
            throw new Refused($"no PRIO-GRID cell lies in the areas of {areasPath}, and no event before {firstYear} is in one: there is nothing to score");
        }
        var end = new DateTime(lastYear, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var panel = Panel.Build(events, cells, start, end);
        var concord = Forecasters()[0].Name;
        var (scores, calibration) = Backtest.Run(panel, Forecasters(), firstYear, lastYear, concord, cancellationToken);
        return new Result(panel, scores, calibration, rejected, firstRejected);
    }

    /// <summary>Cells whose centre lies in the mission's areas, and any cell with one of <paramref name="events"/> in them.</summary>
    public static List<int> MissionCells(string areasPath, IEnumerable<ConflictEvent> events)
    {
        List<NetTopologySuite.Geometries.Geometry> areas;
        try
        {
            areas = DemoMission.ReadAreas(areasPath).Select(a => GeoJsonGeometry.Read(a.GeometryJson)).ToList();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException
            or ArgumentException or IndexOutOfRangeException or IOException)
        {
            // A file of another shape is the user's mistake, said as one, not a stack trace.
            throw new Refused($"{areasPath} is not a GeoJSON FeatureCollection of Polygon or MultiPolygon features with 'adm1_code' and 'name' properties: {e.Message}");
        }

        if (areas.Count == 0)
        {
            throw new Refused($"{areasPath} holds no area: the scored cells are those inside the mission's areas");
        }

        var envelope = areas.Aggregate(new NetTopologySuite.Geometries.Envelope(), (env, g) =>
        {
            env.ExpandToInclude(g.EnvelopeInternal);
            return env;
        });
        var cells = new SortedSet<int>();
        for (var lat = Math.Floor(envelope.MinY * 2) / 2; lat <= envelope.MaxY; lat += PrioGrid.Size)
        {
            for (var lon = Math.Floor(envelope.MinX * 2) / 2; lon <= envelope.MaxX; lon += PrioGrid.Size)
            {
                var point = GeoJsonGeometry.Point(lat + 0.25, lon + 0.25);
                if (areas.Any(a => a.Contains(point)))
                {
                    cells.Add(PrioGrid.Gid(lat + 0.25, lon + 0.25));
                }
            }
        }

        foreach (var e in events)
        {
            var point = GeoJsonGeometry.Point(e.Latitude, e.Longitude);
            if (areas.Any(a => a.Contains(point)))
            {
                cells.Add(PrioGrid.Gid(e.Latitude, e.Longitude));
            }
        }

        return [.. cells];
    }

    /// <summary>The results as Markdown: CRPS per window and model, the means, Brier, coverage, and the calibration table.</summary>
    public static string Markdown(Result result)
    {
        var models = result.Scores.Select(s => s.Model).Distinct().ToList();
        var years = result.Scores.Select(s => s.Year).Distinct().Order().ToList();
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"{result.Panel.Cells.Count} PRIO-GRID cells × {years.Count} held-out years ({years.First()}–{years.Last()}), one-month-ahead forecasts of UCDP GED fatalities (best estimate) per cell-month.");
        md.AppendLine();
        md.AppendLine("Mean CRPS per held-out year (lower is better):");
        md.AppendLine();
        md.AppendLine("| year | " + string.Join(" | ", models) + " |");
        md.AppendLine("|---|" + string.Concat(models.Select(_ => "---|")));
        foreach (var year in years)
        {
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {year} | ") + string.Join(" | ", models.Select(m => result.Scores.Single(s => s.Model == m && s.Year == year).Crps.ToString("0.0000", CultureInfo.InvariantCulture))) + " |");
        }

        string Mean(Func<WindowScore, double> pick, string model) =>
            result.Scores.Where(s => s.Model == model).Average(pick).ToString("0.0000", CultureInfo.InvariantCulture);
        md.AppendLine("| **mean CRPS** | " + string.Join(" | ", models.Select(m => $"**{Mean(s => s.Crps, m)}**")) + " |");
        md.AppendLine("| mean Brier (≥ 1 fatality) | " + string.Join(" | ", models.Select(m => Mean(s => s.Brier, m))) + " |");
        md.AppendLine("| 90 % interval coverage | " + string.Join(" | ", models.Select(m => Mean(s => s.Coverage90, m))) + " |");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Calibration of {models[0]}'s P(≥ 1 fatality), all held-out cell-months:");
        md.AppendLine();
        md.AppendLine("| forecast probability | cell-months | mean forecast | observed frequency |");
        md.AppendLine("|---|---|---|---|");
        foreach (var bin in Scoring.Reliability(result.Calibration).Where(b => b.Count > 0))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {bin.From:0.0}–{bin.To:0.0} | {bin.Count:N0} | {bin.MeanForecast:0.000} | {bin.Observed:0.000} |");
        }

        return md.ToString();
    }

    /// <summary>A small SVG chart of mean CRPS per year and model (no plotting library needed).</summary>
    public static string Svg(Result result)
    {
        var models = result.Scores.Select(s => s.Model).Distinct().ToList();
        var years = result.Scores.Select(s => s.Year).Distinct().Order().ToList();
        var max = result.Scores.Max(s => s.Crps) * 1.1;
        string[] colours = ["#0b4f8a", "#7a7a70", "#c25e00", "#2e7d32", "#7b1fa2"];
        const int Width = 760, Height = 320, Left = 50, Bottom = 40, Top = 20;
        var groupWidth = (Width - Left - 10.0) / years.Count;
        var barWidth = groupWidth / (models.Count + 1);
        var svg = new StringBuilder();
        svg.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height + 60}\" font-family=\"sans-serif\" font-size=\"11\">");
        svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"14\" font-size=\"13\">Mean CRPS per held-out year (lower is better)</text>");
        for (var y = 0; y < years.Count; y++)
        {
            for (var m = 0; m < models.Count; m++)
            {
                var value = result.Scores.Single(s => s.Year == years[y] && s.Model == models[m]).Crps;
                // Every score zero (no death in the held-out months): bars of no height, not NaN.
                var h = max > 0 ? (Height - Bottom - Top) * value / max : 0;
                var x = Left + (y * groupWidth) + (m * barWidth);
                svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{x:0.0}\" y=\"{Height - Bottom - h:0.0}\" width=\"{barWidth - 1:0.0}\" height=\"{h:0.0}\" fill=\"{colours[m % colours.Length]}\"><title>{models[m]} {years[y]}: {value:0.0000}</title></rect>");
            }

            svg.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{Left + (y * groupWidth) + (groupWidth / 2) - 12:0.0}\" y=\"{Height - Bottom + 14}\">{years[y]}</text>");
        }

        svg.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - 10}\" y2=\"{Height - Bottom}\" stroke=\"#333\"/>");
        for (var m = 0; m < models.Count; m++)
        {
            svg.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{Left + (m % 3 * 240)}\" y=\"{Height + 5 + (m / 3 * 18)}\" width=\"10\" height=\"10\" fill=\"{colours[m % colours.Length]}\"/><text x=\"{Left + (m % 3 * 240) + 14}\" y=\"{Height + 14 + (m / 3 * 18)}\">{System.Security.SecurityElement.Escape(models[m])}</text>");
        }

        svg.AppendLine("</svg>");
        return svg.ToString();
    }
}

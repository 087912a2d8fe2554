using System.Diagnostics;
using System.Globalization;
using Concord.Server.Cli;
using Concord.Server.Demo;

namespace Concord.Server.EarlyWarning;

/// <summary><c>concord forecast</c> (train on the store, write next month's forecasts) and <c>concord forecast evaluate</c> (the back-test).</summary>
internal static class ForecastCommands
{
    public static async Task<int> RunAsync(ServiceProvider services, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            // A mistyped --data would make an empty store, fixed to this run's classification scheme, to find nothing in.
            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken, "no incidents to learn from"))
            {
                return 1;
            }

            await using var scope = services.CreateAsyncScope();
            var summary = await scope.ServiceProvider.GetRequiredService<ForecastService>().RunAsync(cancellationToken);
            if (summary is null)
            {
                await errors.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"concord: incidents releasable to the whole mission at the lowest level span fewer than {ForecastService.MinimumMonths} months (or there are none): too little to learn from"));
                return 1;
            }

            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"forecasts for {summary.Month:yyyy-MM} written for {summary.Cells} cells, learnt from {summary.Incidents:N0} incidents (UNCLASSIFIED, releasable to the mission)."));
            await output.WriteLineAsync("highest risk of at least one fatality:");
            foreach (var f in summary.Highest)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  cell {f.Gid} ({f.Latitude:0.00}, {f.Longitude:0.00}): P(≥1) {f.AtLeastOne:0.00}, expected {f.Expected:0.0} (90 %: {f.Low:0}–{f.High:0})"));
            }

            return 0;
        }
    }

    public static async Task<int> EvaluateAsync(Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken = default)
    {
        var ged = invocation["--file"] ?? Path.Combine(DemoMission.ReferenceDirectory, "ucdp", "ged231_caf_events.csv");
        var areas = invocation["--areas"] ?? Path.Combine(DemoMission.ReferenceDirectory, "geo", "ne10m_admin1_caf.geojson");
        foreach (var path in new[] { ged, areas })
        {
            if (Directory.Exists(path))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"'{path}' is a folder, not a file");
            }

            if (!File.Exists(path))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"'{path}' does not exist");
            }
        }

        if (!int.TryParse(invocation["--from"] ?? "2015", NumberStyles.None, CultureInfo.InvariantCulture, out var from)
            || !int.TryParse(invocation["--to"] ?? "2022", NumberStyles.None, CultureInfo.InvariantCulture, out var to)
            || from < 1990 || to < from || to > 2100)
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, "--from and --to must be years, --from ≤ --to (e.g. --from 2015 --to 2022)");
        }

        // The folder for --out is made, and written to, before the evaluation, so that one that cannot be (a file in the way,
        // a folder without permission) is said at once, not after it.
        if (invocation["--out"] is { } outDirectory && WriteProblem(() =>
            {
                Directory.CreateDirectory(outDirectory);
                var probe = Path.Combine(outDirectory, ".concord-write-test");
                File.WriteAllText(probe, "");
                File.Delete(probe);
            }) is { } cannot)
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--out '{outDirectory}' cannot be written: {cannot}");
        }

        var clock = Stopwatch.StartNew();
        ForecastEvaluation.Result result;
        try
        {
            result = ForecastEvaluation.Run(ged, areas, from, to, cancellationToken);
        }
        catch (ForecastEvaluation.Refused e)
        {
            await errors.WriteLineAsync("concord: " + e.Message);
            return 1;
        }
        // A file that is there but may not be read (or is a folder) is the file's fault; the catch-all blamed the store,
        // which this verb does not use.
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await errors.WriteLineAsync("concord: " + e.Message);
            return 1;
        }

        if (result.FirstRejected is { } bad)
        {
            await errors.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"concord: {result.Rejected:N0} rows of {ged} were not read (the first, line {bad.Line}: {bad.Error})"));
        }

        var markdown = ForecastEvaluation.Markdown(result);
        await output.WriteAsync(markdown);
        await output.WriteLineAsync();
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"({clock.Elapsed.TotalSeconds:0.0} s)"));
        if (invocation["--out"] is { } directory)
        {
            if (WriteProblem(() =>
                {
                    File.WriteAllText(Path.Combine(directory, "forecast-evaluation.md"), markdown);
                    File.WriteAllText(Path.Combine(directory, "forecast-crps.svg"), ForecastEvaluation.Svg(result));
                }) is { } failed)
            {
                await errors.WriteLineAsync($"concord: the evaluation was not written to '{directory}': {failed}");
                return 1;
            }

            await output.WriteLineAsync($"wrote {Path.Combine(directory, "forecast-evaluation.md")} and forecast-crps.svg");
        }

        return 0;
    }

    /// <summary>Why writing failed (a file where a folder should be, no permission, a full disk), or null when it did not.</summary>
    private static string? WriteProblem(Action write)
    {
        try
        {
            write();
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }
}

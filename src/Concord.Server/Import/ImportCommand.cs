using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Cli;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Import;

/// <summary><c>concord import</c>: a file into reports, with a progress line (rate and ETA) and a summary of rejected rows.</summary>
internal static class ImportCommand
{
    public static async Task<int> RunAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            var path = invocation["--file"]!;
            if (!File.Exists(path))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, Directory.Exists(path) ? $"--file '{path}' is a folder, not a file" : $"--file '{path}' does not exist");
            }

            if (!ImportReaders.TryParseFormat(invocation["--format"] ?? Guess(path), out var format))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, invocation["--format"] is { } given
                    ? $"--format must be ged, acled or geojson, not '{given}'"
                    : $"cannot tell the format of '{path}' from its name; give --format ged, acled or geojson");
            }

            MarkingDto? marking = null;
            if (invocation["--level"] is { } classification)
            {
                marking = new MarkingDto(classification, List(invocation["--releasable-to"] ?? "mission"), List(invocation["--caveats"]));
            }
            else if (invocation.Has("--releasable-to") || invocation.Has("--caveats"))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--releasable-to and --caveats go with --level (without them the importing organisation's agreements mark the reports)");
            }

            // A name given is checked; a file's own name is taken as it is, as before --source existed.
            var source = invocation["--source"]?.Trim() ?? Path.GetFileNameWithoutExtension(path);
            if (invocation.Has("--source") && ImportReaders.SourceProblem(source) is { } sourceProblem)
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--source {sourceProblem}");
            }

            if (format == ImportFormat.GeoJson && GeoJsonReader.ReferenceOf(source, "1").Length > Reports.ReportRules.MaxExternalRefLength)
            {
                // Every feature's reference would be too long: all would be refused one by one.
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"the file's name is too long ({source.Length} characters) to name its dataset; give --source NAME (1 to 100 characters)");
            }

            // A file that cannot be read (its permissions, a folder given) is said before the store is touched.
            FileStream file;
            try
            {
                file = File.OpenRead(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--file '{path}' cannot be read: {e.Message}");
            }

            await using var opened = file;

            // Before the store is prepared or anything read: a running server on this store is the one writer (import
            // through its API), and the live store is left alone.
            // An import is made by a member of the store: a store that is not there is said, not made.
            if (!await Cli.Commands.StoreThereAsync(services, errors, cancellationToken))
            {
                return 1;
            }

            await services.GetRequiredService<WriterLease>().AcquireAsync(cancellationToken);
            await services.PrepareStoreAsync(cancellationToken);
            if (marking is not null && services.GetRequiredService<ClassificationScheme>() is var scheme && !scheme.TryParse(marking.Classification, out _))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--level must be one of {string.Join(", ", scheme.Levels)}, not '{marking.Classification}'");
            }

            Guid memberId;
            await using (var scope = services.CreateAsyncScope())
            {
                var name = invocation["--user"]!.Trim().ToLowerInvariant();
                memberId = await scope.ServiceProvider.GetRequiredService<ConcordDb>().Members.Where(m => m.UserName == name && !m.Disabled).Select(m => m.Id).SingleOrDefaultAsync(cancellationToken);
            }

            if (await services.GetRequiredService<ViewerDirectory>().ForMemberAsync(memberId, cancellationToken) is not { } author)
            {
                await errors.WriteLineAsync($"concord: no active member is named '{invocation["--user"]}'");
                return 1;
            }

            // A marking that cannot be read, or is released to communities that do not exist, would reject every row.
            if (marking is not null && await ImportEndpoints.MarkingErrorsAsync(marking, author, services.GetRequiredService<MarkingFormat>(), services.GetRequiredService<MissionDirectory>(), cancellationToken) is { Count: > 0 } markingErrors)
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, string.Join(Environment.NewLine + "concord: ", markingErrors.Select(e =>
                    $"{e.Key switch { "classification" => "--level", "releasableTo" => "--releasable-to", _ => "--caveats" }} {string.Join("; ", e.Value)}")));
            }

            var started = DateTime.UtcNow;
            // Written on the importer's thread: Progress<T> would post each line to the thread pool, and the last one
            // could come after the summary (or, for a file of one batch, after the command had returned).
            var bar = new ProgressLine(errors, started);
            var viewers = services.GetRequiredService<ViewerDirectory>();
            ImportSummary summary;
            try
            {
                summary = await services.GetRequiredService<Importer>().RunAsync(format, file, author, marking, source, bar, cancellationToken,
                    authorNow: ct => viewers.ForMemberAsync(author.MemberId, ct));
            }
            catch (ImportStoppedException stopped)
            {
                await errors.WriteLineAsync();
                await errors.WriteLineAsync($"concord: {stopped.Message}: the import stopped; the rows stored before stay (importing the file again skips them)");
                return 1;
            }

            await errors.WriteLineAsync();
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{summary.Rows:N0} rows read in {summary.Elapsed.TotalSeconds:0.0} s ({summary.Rows / Math.Max(0.001, summary.Elapsed.TotalSeconds):N0} rows/s): {summary.Created:N0} reports created, {summary.Skipped:N0} already imported, {summary.Rejected:N0} rejected."));
            // A GeoJSON row is a feature, numbered from 1 in the collection: a line number would point elsewhere in the file.
            var unit = format == ImportFormat.GeoJson ? "feature" : "line";
            foreach (var rejected in summary.RejectedRows.Take(50))
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {unit} {rejected.Line}: {rejected.Reason}"));
            }

            if (summary.Rejected > 50)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  … and {summary.Rejected - 50:N0} more rejected rows."));
            }

            // Scripts learn from the exit code that some rows were left out (the others are imported all the same), or that
            // nothing of the file could be imported at all (the wrong format, not a FeatureCollection, every row bad).
            return summary.Rejected == 0 ? 0 : summary.Created + summary.Skipped == 0 ? 1 : RowsRejected;
        }
    }

    /// <summary>The exit code when the file was imported but some of its rows were rejected.</summary>
    public const int RowsRejected = 3;

    /// <summary>One progress line (rewritten in place): rows, rate, share of the file, time left.</summary>
    internal static string Line(ImportProgress p, TimeSpan elapsed)
    {
        var rate = p.Rows / Math.Max(0.001, elapsed.TotalSeconds);
        var share = p.BytesTotal is > 0 and var total ? (double)p.BytesRead / total : 0;
        var eta = share > 0 ? TimeSpan.FromSeconds(elapsed.TotalSeconds * (1 - share) / share) : TimeSpan.Zero;
        const int Width = 30;
        var filled = (int)Math.Round(share * Width);
        return string.Create(CultureInfo.InvariantCulture,
            $"\r[{new string('#', filled)}{new string('.', Width - filled)}] {share:P0} {p.Rows:N0} rows, {rate:N0} rows/s, ETA {(int)eta.TotalHours}:{eta:mm\\:ss}, {p.Created:N0} created, {p.Skipped:N0} skipped, {p.Rejected:N0} rejected ");
    }

    private sealed class ProgressLine(TextWriter errors, DateTime started) : IProgress<ImportProgress>
    {
        public void Report(ImportProgress value) => errors.Write(Line(value, DateTime.UtcNow - started));
    }

    private static string? Guess(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".geojson" or ".json" => "geojson",
        _ => null,
    };

    private static List<string> List(string? text) =>
        text?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList() ?? [];
}

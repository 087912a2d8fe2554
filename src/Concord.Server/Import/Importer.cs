using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Import;

/// <summary>Where an import stands: rows read, created, skipped (already there), rejected; bytes read for the ETA.</summary>
internal sealed record ImportProgress(long Rows, long Created, long Skipped, long Rejected, long BytesRead, long? BytesTotal);

/// <summary>A rejected row: its line (or feature number) and why.</summary>
internal sealed record RejectedRow(long Line, string Reason);

internal sealed record ImportSummary(long Rows, long Created, long Skipped, long Rejected, IReadOnlyList<RejectedRow> RejectedRows, TimeSpan Elapsed);

/// <summary>
/// Streams an import file into reports in batches through the same intake as the API (validation, agreements, the one
/// writer, fusion). Memory stays constant for CSV: one batch at a time. Importing the same file again creates nothing:
/// report ids derive from the source's ids, so known rows are skipped. A rejected row is counted and listed (up to
/// <see cref="MaxListed"/>) and never stops the rows after it.
/// </summary>
internal sealed class Importer(IServiceScopeFactory scopes)
{
    public const int BatchSize = 1000;
    public const int MaxListed = 1000;

    public async Task<ImportSummary> RunAsync(
        ImportFormat format, Stream input, Viewer author, MarkingDto? marking, string source, IProgress<ImportProgress>? progress, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        long? total = input.CanSeek ? input.Length : null;
        using var text = new StreamReader(input, detectEncodingFromByteOrderMarks: true);
        long rows = 0, created = 0, skipped = 0, rejected = 0;
        var listed = new List<RejectedRow>();
        var batch = new List<(long Line, CreateReport Report)>(BatchSize);

        void Reject(long line, string reason)
        {
            rejected++;
            if (listed.Count < MaxListed)
            {
                listed.Add(new RejectedRow(line, reason));
            }
        }

        async Task FlushAsync()
        {
            if (batch.Count == 0)
            {
                return;
            }

            await using var scope = scopes.CreateAsyncScope();
            var intake = scope.ServiceProvider.GetRequiredService<ReportIntake>();
            var result = await intake.CreateManyAsync(batch.Select(b => b.Report).ToList(), author, cancellationToken);
            created += result.Created;
            skipped += result.Skipped;
            foreach (var (index, errors) in result.Rejected)
            {
                Reject(batch[index].Line, string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(", ", e.Value)}")));
            }

            batch.Clear();
            progress?.Report(new ImportProgress(rows, created, skipped, rejected, input.CanSeek ? input.Position : 0, total));
        }

        foreach (var row in ImportReaders.Read(format, text, marking, source))
        {
            cancellationToken.ThrowIfCancellationRequested();
            rows++;
            if (row.Report is { } report)
            {
                batch.Add((row.Line, report));
                if (batch.Count >= BatchSize)
                {
                    await FlushAsync();
                }
            }
            else
            {
                Reject(row.Line, row.Error ?? "unreadable");
            }
        }

        await FlushAsync();
        return new ImportSummary(rows, created, skipped, rejected, listed, started.Elapsed);
    }
}

using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Reports;

namespace Concord.Server.Import;

/// <summary>Where an import stands: rows read, created, skipped (already there), rejected; bytes read for the ETA.</summary>
internal sealed record ImportProgress(long Rows, long Created, long Skipped, long Rejected, long BytesRead, long? BytesTotal);

/// <summary>A rejected row: its line (or feature number) and why.</summary>
internal sealed record RejectedRow(long Line, string Reason);

/// <param name="Unreadable">Why nothing of the file could be read (its first row is the file's error: see <see cref="ImportRow.WholeFile"/>), or null.</param>
internal sealed record ImportSummary(long Rows, long Created, long Skipped, long Rejected, IReadOnlyList<RejectedRow> RejectedRows, TimeSpan Elapsed, string? Unreadable = null);

/// <summary>
/// Streams an import file into reports in batches through the same intake as the API (validation, agreements, the one
/// writer, fusion). Memory stays constant: one batch at a time (GeoJSON too, one feature at a time). Importing the same
/// file again creates nothing: report ids derive from the source's ids, so known rows are skipped. A rejected row is
/// counted, listed (the first <see cref="MaxListed"/> by line) and never stops the rows after it.
/// </summary>
internal sealed class Importer(IServiceScopeFactory scopes)
{
    /// <summary>The longest category, language tag or time precision a row may give: every real one is far shorter.</summary>
    private const int MaxCodeLength = 100;

    /// <summary>
    /// Rows per batch. Larger batches commit less often (4,000 instead of 256 made a 200,000-row import about 40 % faster),
    /// but every object of a batch lives until it is stored, and the longer they live the more of them the collector moves
    /// into its oldest generation, to be reclaimed only by full collections: importing a million rows in batches of 4,000
    /// peaked at 1.9–2.4 GB resident with 0.4 GB of live objects, in batches of 2,000 at 1.5 GB, about 6 % slower
    /// (docs/benchmarks-notes.md, "Peak memory of a million-row import").
    /// </summary>
    public const int BatchSize = 2000;
    public const int MaxListed = 1000;


    /// <param name="authorNow">
    /// The author as the store knows them now (null: their access ended: disabled, signed out, a new password, a token
    /// revoked or expired), asked before each batch: a long import stops when its author's access ends or changes (see
    /// <see cref="AccessChange.Of"/>), as every request after it would be refused.
    /// </param>
    public async Task<ImportSummary> RunAsync(
        ImportFormat format, Stream input, Viewer author, MarkingDto? marking, string source, IProgress<ImportProgress>? progress, CancellationToken cancellationToken,
        Func<CancellationToken, Task<Viewer?>>? authorNow = null)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        long? total = input.CanSeek ? input.Length : null;
        using var text = new StreamReader(input, detectEncodingFromByteOrderMarks: true);
        long rows = 0, created = 0, skipped = 0, rejected = 0;
        string? unreadable = null;
        // The first rejected rows by line, whichever order they are found in (the writer's rejections of a batch come
        // after the reader's of the next): the row with the highest line is dropped when a lower one comes.
        var listed = new PriorityQueue<RejectedRow, long>(MaxListed + 1, Comparer<long>.Create((a, b) => b.CompareTo(a)));
        var batch = new List<(long Line, CreateReport Report)>(BatchSize);

        void ReportProgress() => progress?.Report(new ImportProgress(rows, created, skipped, rejected, input.CanSeek ? input.Position : 0, total));

        void Reject(long line, string reason)
        {
            rejected++;
            if (listed.Count < MaxListed)
            {
                listed.Enqueue(new RejectedRow(line, reason), line);
            }
            else if (listed.TryPeek(out _, out var highest) && line < highest)
            {
                listed.EnqueueDequeue(new RejectedRow(line, reason), line);
            }
        }

        // One batch is written while the next is read and prepared: the writer and the reader each keep a core busy.
        // Batches reach the one writer in file order (each waits for the one before to hand its reports over), so the same
        // id twice in a file is still one report, and the first of the two is the one stored.
        // At most two: the batch being stored and the one handed to the writer after it. Both stay here until they are
        // done, so that a failure of the first cannot leave the second writing unwatched after the import has returned.
        Task previousHandedOver = Task.CompletedTask;
        var inFlight = new Queue<(Task<(int Created, int Skipped, IReadOnlyList<(int Index, Dictionary<string, string[]> Errors)> Rejected)> Written, List<(long Line, CreateReport Report)> Rows, AsyncServiceScope Scope)>(2);

        async Task CompleteOldestAsync()
        {
            var previous = inFlight.Dequeue();
            try
            {
                var result = await previous.Written;
                created += result.Created;
                skipped += result.Skipped;
                foreach (var (index, errors) in result.Rejected)
                {
                    Reject(previous.Rows[index].Line, string.Join("; ", errors.Select(e => $"{ImportReaders.Origin(format, e.Key)}: {string.Join(", ", e.Value)}")));
                }
            }
            finally
            {
                await previous.Scope.DisposeAsync();
            }

            ReportProgress();
        }

        async Task FlushAsync()
        {
            if (batch.Count == 0)
            {
                return;
            }

            if (authorNow is not null && AccessChange.Of(author, await authorNow(cancellationToken)) is { } changed)
            {
                throw new ImportStoppedException(changed);
            }

            var scope = scopes.CreateAsyncScope();
            var ready = batch;
            batch = new List<(long Line, CreateReport Report)>(BatchSize);
            // Prepared beside the batch before it, handed to the writer after it.
            var handedOver = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            inFlight.Enqueue((scope.ServiceProvider.GetRequiredService<ReportIntake>().CreateManyAsync(ready.Select(b => b.Report).ToList(), author, cancellationToken,
                after: previousHandedOver, handedOver: handedOver), ready, scope));
            previousHandedOver = handedOver.Task;
            while (inFlight.Count > 1)
            {
                await CompleteOldestAsync();
            }
        }

        var completed = false;
        try
        {
            try
            {
                await ReadAsync();
            }
            finally
            {
                // Stopped by an error or a cancellation: let the batches being written finish before their scopes go, and
                // count what they stored (a batch handed to the writer is stored whatever happens to the run: the summary
                // and the run's audit entry say so). A second failure is not this run's news: the first is what it stops with.
                while (inFlight.Count > 0)
                {
                    try
                    {
                        await CompleteOldestAsync();
                    }
                    catch (Exception)
                    {
                        // Counted what could be; the batch's rows that never reached the writer are not in the store.
                    }
                }
            }

            completed = true;
        }
        finally
        {
            // The run itself is audited (who imported which source, with which marking options, what came of it), also when
            // it created nothing, and when it stopped before the end (a cancelled upload, a failure) with what it had done:
            // each report created has its own entry, a run that only skipped or rejected rows had none. Marked at the
            // importer's clearance and caveats: what it skipped is what their organisation holds.
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            await scope.ServiceProvider.GetRequiredService<AuditChain>().SaveAsync(db, [Audits.Entry(author, AuditActions.Import, "import", Guid.CreateVersion7(),
                new AuditMarking(author.Clearance, author.CaveatBits), scope.ServiceProvider.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime,
                Audits.Detail(new { format = format.ToString().ToLowerInvariant(), source, marking, rows, created, skipped, rejected, completed }))], CancellationToken.None);
        }

        // Rows the reader rejects are listed at once, rows the writer rejects when their batch is stored: in line order for people.
        return new ImportSummary(rows, created, skipped, rejected, [.. listed.UnorderedItems.Select(r => r.Element).OrderBy(r => r.Line)], started.Elapsed, unreadable);

        // The report's rules for its long texts, as the intake words them.
        string? Oversized(CreateReport report)
        {
            var field = report switch
            {
                { Narrative.Length: > ReportRules.MaxNarrativeLength } => ("narrative", $"is {report.Narrative.Length} characters long; at most {ReportRules.MaxNarrativeLength} are allowed"),
                { Actors.Count: > ReportRules.MaxActors } => ("actors", $"at most {ReportRules.MaxActors} actors are allowed"),
                _ when report.Actors?.Any(a => a.Length > ReportRules.MaxActorLength) == true => ("actors", $"each actor must be 1 to {ReportRules.MaxActorLength} characters, without '|'"),
                // Codes and grades are short: one as long as a feature may be is refused here, before the row is queued and
                // before the intake quotes it back in its reason.
                { Category.Length: > MaxCodeLength } => ("category", $"is {report.Category.Length} characters long; no category in the taxonomy is (see GET /api/categories)"),
                { Language.Length: > MaxCodeLength } => ("language", "is not a language tag such as en, fr or sg"),
                { ObservedPrecision.Length: > MaxCodeLength } => ("observedPrecision", $"must be one of {string.Join(", ", Enum.GetNames<TimePrecision>().Select(n => n.ToLowerInvariant()))}"),
                { Source.Reliability.Length: > 1 } => ("source.reliability", "must be an Admiralty reliability grade A to F"),
                { Source.Description.Length: > ReportRules.MaxTextLength } => ("source.description", $"at most {ReportRules.MaxTextLength} characters are allowed"),
                { ExternalRef.Length: > ReportRules.MaxExternalRefLength } => ("externalRef", $"at most {ReportRules.MaxExternalRefLength} characters are allowed"),
                _ => default((string Name, string Reason)?),
            };
            return field is var (name, reason) ? $"{ImportReaders.Origin(format, name)}: {reason}" : null;
        }

        async Task ReadAsync()
        {
            foreach (var row in ImportReaders.Read(format, text, marking, source))
            {
                cancellationToken.ThrowIfCancellationRequested();
                rows++;
                if (rows % BatchSize == 0)
                {
                    // Rows the reader rejects fill no batch: the progress line moves on for them too.
                    ReportProgress();
                }

                if (row.Report is { } report && Oversized(report) is { } oversized)
                {
                    // Refused now rather than when its batch is prepared: a batch holds its rows until then, and rows of
                    // a megabyte of text each would make it gigabytes.
                    Reject(row.Line, oversized);
                }
                else if (row.Report is { } accepted)
                {
                    batch.Add((row.Line, accepted));
                    if (batch.Count >= BatchSize)
                    {
                        await FlushAsync();
                    }
                }
                else
                {
                    if (row.WholeFile)
                    {
                        unreadable = row.Error;
                    }

                    Reject(row.Line, row.Error ?? "unreadable");
                }
            }

            await FlushAsync();
            while (inFlight.Count > 0)
            {
                await CompleteOldestAsync();
            }
        }
    }
}

/// <summary>An import stopped before its end because its author may not go on (<see cref="AccessChange.Of"/>); what it stored stays.</summary>
internal sealed class ImportStoppedException(string reason) : Exception(reason);

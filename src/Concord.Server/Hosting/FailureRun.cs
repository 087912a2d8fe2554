namespace Concord.Server.Hosting;

/// <summary>
/// The failures in a row of one background loop that retries every few seconds (a feed, a scheduler, a flush), so that a
/// store down for an hour is a few lines in the log rather than a stack trace every second: the first failure is logged
/// whole by the loop itself (<see cref="Failed"/> says when), later ones while the run lasts are summed up at most once per
/// <see cref="SummaryEvery"/> (their count and the latest reason), and the first success after them says the run is over
/// and how long it lasted. A kind of failure new to the run (another type, another store error code) is logged whole
/// again: it is news.
/// </summary>
/// <param name="milliseconds">The clock the summaries are spaced by (monotonic; tests give their own).</param>
internal sealed class FailureRun(ILogger logger, string what, Func<long>? milliseconds = null)
{
    public static readonly TimeSpan SummaryEvery = TimeSpan.FromMinutes(1);

    private readonly Func<long> _now = milliseconds ?? (() => Environment.TickCount64);
    private readonly Lock _lock = new();
    private long _count;
    private long _startedAt;
    private long _summarisedAt;
    private long _sinceSummary;
    private readonly HashSet<string> _kinds = new(StringComparer.Ordinal);

    /// <summary>Failures in the current run (0: the last attempt succeeded).</summary>
    public long Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>
    /// Counts a failure; true when the caller is to log it whole (with its exception): the first of a run, or one of another
    /// kind than the run's last. Otherwise a summary line is written here if <see cref="SummaryEvery"/> has passed since the
    /// last line about this run.
    /// </summary>
    public bool Failed(Exception failure)
    {
        var kind = Kind(failure);
        lock (_lock)
        {
            var now = _now();
            _count++;
            if (_count == 1)
            {
                _startedAt = now;
            }

            // New to the run (failures alternating between two kinds are two kinds, not news at each turn).
            if (_kinds.Add(kind))
            {
                _summarisedAt = now;
                _sinceSummary = 0;
                return true;
            }

            _sinceSummary++;
            if (now - _summarisedAt >= SummaryEvery.TotalMilliseconds)
            {
                logger.LogWarning("{What} still fails: {Failures} more failures since the last line ({Total} since {Duration} ago), the latest: {Reason}",
                    what, _sinceSummary, _count, Duration(now - _startedAt), Reason(failure));
                _summarisedAt = now;
                _sinceSummary = 0;
            }

            return false;
        }
    }

    /// <summary>An attempt succeeded: ends a run of failures, saying so once.</summary>
    public void Succeeded()
    {
        // The common case, on hot paths (every report batch, every feed round): nothing to end, no lock taken.
        if (Interlocked.Read(ref _count) == 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_count == 0)
            {
                return;
            }

            logger.LogInformation("{What} works again after {Failures} failures over {Duration}", what, _count, Duration(_now() - _startedAt));
            _count = 0;
            _sinceSummary = 0;
            _kinds.Clear();
        }
    }

    /// <summary>
    /// The type of the failure and of its innermost cause, with the store's error code (too many connections is not a
    /// constraint violation, nor a busy SQLite a full disk); not the messages, which name ids and times and would make
    /// every failure news.
    /// </summary>
    private static string Kind(Exception failure)
    {
        var inner = failure.GetBaseException();
        var code = inner switch
        {
            Npgsql.PostgresException p => p.SqlState,
            Microsoft.Data.Sqlite.SqliteException s => s.SqliteErrorCode.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => "",
        };
        return $"{failure.GetType().FullName}|{inner.GetType().FullName}|{code}";
    }

    private static string Reason(Exception failure)
    {
        var inner = failure.GetBaseException();
        return ReferenceEquals(inner, failure) ? $"{failure.GetType().Name}: {failure.Message}" : $"{failure.GetType().Name}: {failure.Message} ({inner.GetType().Name}: {inner.Message})";
    }

    private static string Duration(long milliseconds) => TimeSpan.FromMilliseconds(milliseconds) switch
    {
        var d when d.TotalMinutes >= 1 => $"{(int)d.TotalMinutes} min {d.Seconds} s",
        var d => $"{Math.Max(d.TotalSeconds, 0):0.#} s",
    };
}

using Microsoft.Data.Sqlite;

namespace Concord.Server.Data;

/// <summary>
/// Copies SQLite's write-ahead log into the database file on a thread of its own, so that commits do not wait for it.
/// SQLite otherwise checkpoints inside the commit that fills the log past a threshold: that commit copies every page
/// written since the last checkpoint and waits for two fsyncs, which on the report writer's path cost about a third of
/// its time under load. Here a passive checkpoint runs a little after commits (<see cref="Gap"/>), beside the writer,
/// which never waits for it. A passive checkpoint never blocks writers or readers, so under constant writes it rarely
/// finds the log fully copied at the moment a writer starts, which is when SQLite rewinds the log; connections
/// therefore keep SQLite's own checkpoint at a higher threshold (<see cref="InlineThreshold"/>) to bound the log, and
/// that checkpoint finds most pages already copied.
/// </summary>
internal sealed class WalCheckpointer : IDisposable
{
    /// <summary>Pages of log after which a commit checkpoints inline (SQLite's own default is 1,000).</summary>
    public const int InlineThreshold = 10_000;

    /// <summary>How long after a commit the checkpoint runs, so that one checkpoint covers the commits of that time.</summary>
    public static readonly TimeSpan Gap = TimeSpan.FromMilliseconds(10);

    private readonly StoreOptions _store;
    private readonly Realtime.ChangeSignal _signal;
    private readonly ILogger<WalCheckpointer> _logger;
    private readonly Hosting.FailureRun _failures;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private SqliteConnection? _connection;
    private Thread? _thread;
    private long _checkpoints;
    private (long Log, long Copied) _last;

    public WalCheckpointer(StoreOptions store, Realtime.ChangeSignal signal, ILogger<WalCheckpointer> logger)
    {
        _store = store;
        _signal = signal;
        _logger = logger;
        _failures = new Hosting.FailureRun(logger, "checkpointing the SQLite log");
    }

    /// <summary>Starts checkpointing after commits (once the store exists); nothing to do on PostgreSQL.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_store.Kind != StoreKind.Sqlite || _thread is not null || _stopping.IsCancellationRequested)
            {
                return;
            }

            _connection = new SqliteConnection(_store.ConnectionString);
            _thread = new Thread(Run) { IsBackground = true, Name = "Concord WAL checkpoints" };
            _thread.Start();
        }
    }

    /// <summary>Checkpoints run so far.</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>After the last checkpoint: the pages in the log, and how many of them are now in the database file.</summary>
    public (long Log, long Copied) Last
    {
        get
        {
            lock (_gate)
            {
                return _last;
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping.Cancel();
        }

        _thread?.Join();
        _connection?.Dispose();
        _stopping.Dispose();
    }

    private void Run()
    {
        var token = _stopping.Token;
        try
        {
            var next = _signal.Next;
            while (!token.IsCancellationRequested)
            {
                next.Wait(token);
                token.WaitHandle.WaitOne(Gap);
                // Taken before checkpointing, so that a commit during the checkpoint brings another.
                next = _signal.Next;
                if (!token.IsCancellationRequested)
                {
                    Checkpoint();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Checkpoint()
    {
        try
        {
            if (_connection!.State != System.Data.ConnectionState.Open)
            {
                _connection.Open();
            }

            using var command = _connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                // busy, pages in the log, pages of the log now in the database file
                lock (_gate)
                {
                    _last = (reader.GetInt64(1), reader.GetInt64(2));
                }
            }

            Interlocked.Increment(ref _checkpoints);
            _failures.Succeeded();
        }
        catch (SqliteException e)
        {
            // The next commit tries again; SQLite's own checkpoint bounds the log meanwhile.
            if (_failures.Failed(e))
            {
                _logger.LogWarning(e, "a background checkpoint failed");
            }
        }
    }
}

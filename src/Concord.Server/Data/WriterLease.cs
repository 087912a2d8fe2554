using Microsoft.Data.Sqlite;
using Npgsql;

namespace Concord.Server.Data;

/// <summary>Another process writes reports to this store (a running server, or an import).</summary>
internal sealed class StoreBusyException(string message) : Exception(message);

/// <summary>
/// Makes the process that writes reports the only one: fusion decides each report against the open incidents it holds in
/// memory (<see cref="Fusion.FusionIndex"/>) and corrections wait for its batches (<see cref="Incidents.IncidentGate"/>),
/// so a second process writing reports to the same store would neither see the first one's incidents nor wait for it,
/// and fuse duplicates into incidents of their own. On SQLite the lease is an exclusive lock on a file beside the
/// database (released by the operating system when the process ends, however it ends); on PostgreSQL an advisory lock held
/// by a connection of its own (released when that connection closes).
/// </summary>
internal sealed class WriterLease(StoreOptions store) : IAsyncDisposable
{
    /// <summary>The advisory lock key of the report writer (the migrator, the audit chain and forecasts use 4242001, 4242002 and 4242005).</summary>
    private const long PostgresKey = 4242003;

    private readonly SemaphoreSlim _taking = new(1, 1);
    private FileStream? _file;
    private NpgsqlConnection? _connection;

    public bool Held => _file is not null || _connection is not null;

    /// <summary>Takes the lease, or throws <see cref="StoreBusyException"/> when another process holds it.</summary>
    public async Task AcquireAsync(CancellationToken cancellationToken)
    {
        if (Held)
        {
            return;
        }

        await _taking.WaitAsync(cancellationToken);
        try
        {
            if (!Held)
            {
                await TakeAsync(cancellationToken);
            }
        }
        finally
        {
            _taking.Release();
        }
    }

    /// <summary>
    /// Before the writer stores a batch: on PostgreSQL the lock lives as long as its connection, which a database restart,
    /// a failover or an idle timeout ends without a word. At most once a second the connection is asked for a row; when it
    /// is gone the lease is taken again, or <see cref="StoreBusyException"/> says that another process took it meanwhile.
    /// Returns true (once) when the lease was taken again since it was lost, here or by <see cref="AcquireAsync"/> on a
    /// request's path: another process may have written reports while it was not held (an import run while the database
    /// had dropped the connection), which the caller's view of the store does not know.
    /// </summary>
    public async Task<bool> EnsureHeldAsync(CancellationToken cancellationToken)
    {
        if (_file is null && (_connection is null || Environment.TickCount64 - _checkedAt >= 1000))
        {
            await _taking.WaitAsync(cancellationToken);
            try
            {
                await ProbeOrTakeAsync(cancellationToken);
            }
            finally
            {
                _taking.Release();
            }
        }

        return Interlocked.Exchange(ref _retaken, 0) == 1;
    }

    private async Task ProbeOrTakeAsync(CancellationToken cancellationToken)
    {
        if (_connection is { } held)
        {
            try
            {
                await using var probe = new NpgsqlCommand("SELECT 1", held);
                await probe.ExecuteScalarAsync(cancellationToken);
                _checkedAt = Environment.TickCount64;
                return;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                _connection = null;
                _lost = true;
                await held.DisposeAsync();
            }
        }

        if (!Held)
        {
            // Refused (another process took it meanwhile): lost it stays, and whoever takes it next says so.
            await TakeAsync(cancellationToken);
        }
    }

    private long _checkedAt;

    /// <summary>The lease's session ended under it; the next take is a take again (guarded by <see cref="_taking"/>).</summary>
    private bool _lost;

    /// <summary>1 from a take again until <see cref="EnsureHeldAsync"/> has said so.</summary>
    private int _retaken;

    private async Task TakeAsync(CancellationToken cancellationToken)
    {
        if (store.Kind == StoreKind.Sqlite)
        {
            var path = new SqliteConnectionStringBuilder(store.ConnectionString).DataSource + ".writer";
            try
            {
                // FileShare.None is an exclusive flock on Unix and a sharing lock on Windows: either way one holder.
                _file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                throw Busy();
            }

            return;
        }

        // Kept busy every 30 s unless the connection string says otherwise: a firewall or NAT that forgets an idle
        // connection leaves its server session holding the lock (until the server's own keepalive, hours by default),
        // and every report write refused as another process's meanwhile.
        var lease = new NpgsqlConnectionStringBuilder(store.ConnectionString) { Pooling = false, Multiplexing = false };
        if (lease.KeepAlive == 0)
        {
            lease.KeepAlive = 30;
        }

        var connection = new NpgsqlConnection(lease.ToString());
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({PostgresKey})", connection);
            if (await command.ExecuteScalarAsync(cancellationToken) is not true)
            {
                throw Busy();
            }

            // Said before the lease shows as held: the writer's check without the lock must not find it held and not retaken.
            if (_lost)
            {
                _lost = false;
                Interlocked.Exchange(ref _retaken, 1);
            }

            _checkedAt = Environment.TickCount64;
            _connection = connection;
        }
        finally
        {
            if (_connection != connection)
            {
                // Refused, failed or cancelled, perhaps after the lock was granted: closing the session lets it go.
                await connection.DisposeAsync();
            }
        }
    }

    private StoreBusyException Busy() => new(
        $"another Concord process writes reports to this store ({store.Describe()}): a running server, or an import. "
        + "Import through the server's API (POST /api/imports), or stop it first.");

    public async ValueTask DisposeAsync()
    {
        if (_file is { } file)
        {
            _file = null;
            await file.DisposeAsync();
        }

        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync();
        }

        _taking.Dispose();
    }
}

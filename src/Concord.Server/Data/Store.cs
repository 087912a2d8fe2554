using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Npgsql;

namespace Concord.Server.Data;

internal enum StoreKind
{
    Sqlite,
    Postgres,
}

/// <summary>Which database Concord uses: the embedded SQLite file (default) or PostgreSQL (production).</summary>
internal sealed record StoreOptions(StoreKind Kind, string ConnectionString)
{
    public static StoreOptions Sqlite(string dataDirectory) => new(
        StoreKind.Sqlite,
        new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(Path.GetFullPath(dataDirectory), "concord.db"),
            ForeignKeys = true,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString());

    public static StoreOptions Postgres(string connectionString) => new(StoreKind.Postgres, connectionString);

    public string Describe() => Kind switch
    {
        StoreKind.Sqlite => "SQLite " + new SqliteConnectionStringBuilder(ConnectionString).DataSource,
        _ => "PostgreSQL " + DescribePostgres(),
    };

    /// <summary>
    /// A collection in a query (<c>ids.Contains(r.Id)</c>) goes to the store as one parameter (SQLite's json_each, an
    /// array for PostgreSQL), not one parameter per element as EF Core 10 does by default: lists of ids come from data
    /// (the reports a merge moved, every link of an incident) and SQLite refuses more than 32,766 parameters, PostgreSQL
    /// 65,535, which failed a whole read (and a feed that retried it, for ever) past that size.
    /// </summary>
    public void Configure(DbContextOptionsBuilder builder)
    {
        switch (Kind)
        {
            case StoreKind.Sqlite:
                builder.UseSqlite(ConnectionString, o => o.UseParameterizedCollectionMode(ParameterTranslationMode.Parameter));
                builder.AddInterceptors(SqlitePragmas.Instance);
                break;
            case StoreKind.Postgres:
                builder.UseNpgsql(ConnectionString, o => o.UseParameterizedCollectionMode(ParameterTranslationMode.Parameter));
                break;
        }
    }

    /// <summary>
    /// Creates a SQLite store's directory (owner only) and its file, empty, readable and writable by its owner only: the
    /// file holds every record whatever its marking, the audit, members' password hashes and the deployment's keys, and
    /// SQLite gives its journal files the database file's permissions. Left as they are when they exist (an operator may
    /// have set them, for a backup account say).
    /// </summary>
    internal static void CreatePrivately(string file)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(file))!;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
            return;
        }

        NewFolderOwnerOnly(directory);
        try
        {
            using var created = new FileStream(file, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (IOException) when (File.Exists(file))
        {
            // There already (or made meanwhile by another process): kept as it is.
        }
    }

    /// <summary>
    /// Makes <paramref name="directory"/> (and the folders above it that are missing) and leaves it to its owner only,
    /// also when it exists: it holds keys that let whoever reads them act as any member (the key ring session cookies are
    /// protected with: with it, a cookie naming any member can be made). ASP.NET Core's key ring writes its files with the
    /// process's umask (0644), so the folder is what keeps them from other accounts on the machine.
    /// </summary>
    /// <exception cref="IOException">It cannot be made or written (the message says which path and why).</exception>
    internal static void PrivateDirectory(string directory)
    {
        try
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
                return;
            }

            // The data folder above it, when it is new, is its owner's only too (as a new SQLite store's is).
            NewFolderOwnerOnly(Path.GetDirectoryName(Path.GetFullPath(directory))!);
            NewFolderOwnerOnly(directory);
            var others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
            if ((File.GetUnixFileMode(directory) & others) != 0)
            {
                try
                {
                    File.SetUnixFileMode(directory, File.GetUnixFileMode(directory) & ~others);
                }
                catch (Exception e) when (e is UnauthorizedAccessException or IOException)
                {
                    // Another account's folder (made by root, say), or a read-only one: the write below decides whether the
                    // server can use it; its mode is the operator's to fix.
                }
            }

            // Written now rather than at the first sign-in, so that a folder the server cannot write stops it at start.
            var probe = Path.Combine(directory, $".write-test-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"{Path.GetFullPath(directory)} cannot be written: {e.Message}", e);
        }
    }

    /// <summary>Makes a folder (and those missing above it) for its owner only; one that exists keeps its mode.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void NewFolderOwnerOnly(string directory)
    {
        if (!Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Creates the directory or database the store needs, if it is missing.</summary>
    public async Task EnsureExistsAsync(CancellationToken cancellationToken)
    {
        if (Kind == StoreKind.Sqlite)
        {
            CreatePrivately(new SqliteConnectionStringBuilder(ConnectionString).DataSource);
            return;
        }

        if (await OpenPostgresTargetAsync(cancellationToken) is { } target)
        {
            await using (target)
            {
                await CheckEncodingAsync(target, cancellationToken);
                return;
            }
        }

        var (connection, database) = await OpenPostgresAdminAsync(cancellationToken);
        await using (connection)
        {
            if (!await PostgresDatabaseExistsAsync(connection, database, cancellationToken))
            {
                // UTF8 whatever the cluster's default: text search folds case and normalises Unicode, which PostgreSQL
                // does in UTF8 only (a cluster made without a locale defaults to SQL_ASCII). template0, as UTF8 may differ
                // from template1's encoding. A cluster whose locale cannot hold UTF8 gets no database at all: one in its
                // own encoding would only be refused at every start after.
                // A cluster whose character type is C (initdb --locale=C, or no LANG) lowers A–Z only: text search would not
                // ignore case beyond ASCII. Its new database then takes C.UTF-8, the locale every glibc system has.
                var name = database.Replace("\"", "\"\"", StringComparison.Ordinal);
                var locale = await FoldsUnicodeAsync(connection, cancellationToken) ? "" : " LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'";
                try
                {
                    await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\" ENCODING 'UTF8'{locale} TEMPLATE template0", connection);
                    await create.ExecuteNonQueryAsync(cancellationToken);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidParameterValue)
                {
                    throw new StoreUnsuitableException(
                        $"database '{database}' cannot be created in UTF8, which Concord needs, on this PostgreSQL cluster ({e.MessageText}): "
                        + "create it with a UTF-8 locale (CREATE DATABASE … ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0), or use a cluster initialised with one");
                }
            }
        }

        if (await OpenPostgresTargetAsync(cancellationToken) is { } created)
        {
            await using (created)
            {
                await CheckEncodingAsync(created, cancellationToken);
            }
        }
    }

    /// <summary>
    /// A connection to the store's own database, or null when the server says it does not exist. Tried before the
    /// maintenance database: a deployment may let Concord's role connect to its own database only.
    /// </summary>
    private async Task<NpgsqlConnection?> OpenPostgresTargetAsync(CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false }.ToString());
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InvalidCatalogName)
        {
            await connection.DisposeAsync();
            return null;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static async Task CheckEncodingAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SHOW server_encoding", connection);
        if (await command.ExecuteScalarAsync(cancellationToken) is string encoding && !string.Equals(encoding, "UTF8", StringComparison.OrdinalIgnoreCase))
        {
            throw new StoreUnsuitableException(
                $"database '{connection.Database}' uses the encoding {encoding}; Concord needs UTF8 (its text search folds case and normalises Unicode): "
                + "create it with CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0, or let Concord create it; a store already in use is moved by "
                + "pg_dump from it and pg_restore into a UTF8 database");
        }

        if (!await FoldsUnicodeAsync(connection, cancellationToken))
        {
            await using var ctype = new NpgsqlCommand("SELECT datctype FROM pg_database WHERE datname = current_database()", connection);
            throw new StoreUnsuitableException(
                $"database '{connection.Database}' has the character type (LC_CTYPE) {await ctype.ExecuteScalarAsync(cancellationToken)}, in which PostgreSQL lowers A to Z only: "
                + "text search would not ignore case beyond ASCII ('ébo' would not find ÉBOUMBOU, as it does on SQLite). Create it with "
                + "CREATE DATABASE … ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0, or let Concord create it; "
                + "a store already in use is moved by pg_dump from it and pg_restore into such a database");
        }
    }

    /// <summary>Whether the connection's database lowers letters beyond ASCII (its LC_CTYPE is not C or POSIX).</summary>
    private static async Task<bool> FoldsUnicodeAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var folds = new NpgsqlCommand("SELECT lower(U&'\\00C9') = U&'\\00E9'", connection);
        try
        {
            return await folds.ExecuteScalarAsync(cancellationToken) is true;
        }
        catch (PostgresException)
        {
            // A database not in UTF8 (the maintenance database of a cluster made without a locale, SQL_ASCII) cannot even
            // say É (0A000: no conversion from UTF8).
            return false;
        }
    }

    /// <summary>Whether the store's file or database is there, without creating it (a read-only verb must not).</summary>
    public async Task<bool> ExistsAsync(CancellationToken cancellationToken)
    {
        if (Kind == StoreKind.Sqlite)
        {
            return File.Exists(new SqliteConnectionStringBuilder(ConnectionString).DataSource);
        }

        if (await OpenPostgresTargetAsync(cancellationToken) is { } target)
        {
            await target.DisposeAsync();
            return true;
        }

        return false;
    }

    private async Task<(NpgsqlConnection Connection, string Database)> OpenPostgresAdminAsync(CancellationToken cancellationToken)
    {
        var database = new NpgsqlConnectionStringBuilder(ConnectionString).Database
            ?? throw new InvalidOperationException("the PostgreSQL connection string names no Database");
        var admin = new NpgsqlConnectionStringBuilder(ConnectionString) { Database = "postgres", Pooling = false };
        var connection = new NpgsqlConnection(admin.ToString());
        await connection.OpenAsync(cancellationToken);
        return (connection, database);
    }

    private static async Task<bool> PostgresDatabaseExistsAsync(NpgsqlConnection connection, string database, CancellationToken cancellationToken)
    {
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", connection);
        exists.Parameters.AddWithValue("name", database);
        return await exists.ExecuteScalarAsync(cancellationToken) is not null;
    }

    private string DescribePostgres()
    {
        var b = new NpgsqlConnectionStringBuilder(ConnectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }

    /// <summary>
    /// The memory SQLite may hold in this process (its soft heap limit, in bytes), the page caches of every pooled
    /// connection together: past it a connection reuses its own least recently used pages instead of allocating more.
    /// </summary>
    internal const long SqliteMemoryLimit = 256L << 20;

    /// <summary>WAL is set once by the migrator (it persists); synchronous=NORMAL is per connection and is safe under WAL.</summary>
    private sealed class SqlitePragmas : DbConnectionInterceptor
    {
        public static readonly SqlitePragmas Instance = new();

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Apply(connection);

        public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            Apply(connection);
            return Task.CompletedTask;
        }

        // Reads go through each connection's page cache, not a memory map: SQLite drops a connection's map whenever
        // another connection has committed since its last read, so under a stream of commits every pooled connection
        // unmapped and mapped the file again and refilled the page tables (creation at 32 connections +23 % without the
        // map, docs/architecture.md "SQLite reads through page caches, not a memory map").
        private static readonly string Pragmas = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA mmap_size=0; PRAGMA cache_size=-32768; " +
            "PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=" + WalCheckpointer.InlineThreshold.ToString(System.Globalization.CultureInfo.InvariantCulture) + ";";

        private static int _limited;

        private static void Apply(DbConnection connection)
        {
            // The caches are per connection; the soft heap limit, which is the process's, bounds all of them together. Set
            // once, when the first connection has loaded SQLite.
            if (Interlocked.Exchange(ref _limited, 1) == 0)
            {
                SQLitePCL.raw.sqlite3_soft_heap_limit64(SqliteMemoryLimit);
            }

            using var command = connection.CreateCommand();
            command.CommandText = Pragmas;
            command.ExecuteNonQuery();
            ((SqliteConnection)connection).CreateFunction(ConcordDb.LowerFunction, (string? text) => text is null ? null : Http.TextSearch.Fold(text), isDeterministic: true);
        }
    }
}

/// <summary>The store is there but cannot hold Concord's data as Concord needs it.</summary>
internal sealed class StoreUnsuitableException(string message) : Exception(message);

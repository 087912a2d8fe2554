using System.Data.Common;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Concord.Server.Tests;

public abstract class StoreTests
{
    internal abstract Task<StoreOptions> CreateStoreAsync();

    internal abstract Task DropStoreAsync();

    [Fact]
    public async Task Migrations_build_an_empty_database_once_and_then_do_nothing()
    {
        var store = await CreateStoreAsync();
        try
        {
            await using var services = Services(store);
            var first = await services.PrepareStoreAsync(CancellationToken.None);
            var second = await services.PrepareStoreAsync(CancellationToken.None);

            Assert.Equal(Migrator.For(store.Kind).Select(m => m.Version), first.Select(m => m.Version));
            Assert.Empty(second);
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.True(await db.Categories.CountAsync() > 50);
            Assert.Equal(2, await db.Caveats.CountAsync());
        }
        finally
        {
            await DropStoreAsync();
        }
    }

    [Fact]
    public async Task A_build_older_than_the_store_refuses_it_rather_than_serve_a_schema_it_does_not_know()
    {
        var store = await CreateStoreAsync();
        try
        {
            await using var services = Services(store);
            await services.PrepareStoreAsync(CancellationToken.None);
            var newest = Migrator.For(store.Kind)[^1].Version;
            await using (var scope = services.CreateAsyncScope())
            {
                await scope.ServiceProvider.GetRequiredService<ConcordDb>().Database.ExecuteSqlAsync(
                    $"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({newest + 1}, 'from_a_newer_build', {DateTime.UtcNow})");
            }

            var refused = await Assert.ThrowsAsync<StoreTooNewException>(() => services.PrepareStoreAsync(CancellationToken.None));
            Assert.Contains($"schema is at version {newest + 1}, newer than this build's {newest}", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await DropStoreAsync();
        }
    }

    [Fact]
    public async Task The_entity_model_and_the_migrated_schema_agree()
    {
        var store = await CreateStoreAsync();
        try
        {
            await using var services = Services(store);
            await services.PrepareStoreAsync(CancellationToken.None);
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();

            foreach (var entity in db.Model.GetEntityTypes())
            {
                var table = entity.GetTableName()!;
                var columns = await ColumnsAsync(connection, store.Kind, table);
                Assert.True(columns.Count > 0, $"table {table} is missing");
                var mapped = entity.GetProperties().ToDictionary(p => p.GetColumnName(), p => p.IsNullable);
                foreach (var (column, nullable) in mapped)
                {
                    Assert.True(columns.ContainsKey(column), $"{table}.{column} is in the model but not in the schema");
                    Assert.True(columns[column] == nullable || entity.FindPrimaryKey()!.Properties.Any(p => p.GetColumnName() == column),
                        $"{table}.{column}: the model says nullable={nullable}, the schema {columns[column]}");
                }

                Assert.Empty(columns.Keys.Except(mapped.Keys));
            }
        }
        finally
        {
            await DropStoreAsync();
        }
    }

    private protected static ServiceProvider Services(StoreOptions store)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddConcordCore(new ServerOptions { Store = store });
        return services.BuildServiceProvider();
    }

    private static async Task<Dictionary<string, bool>> ColumnsAsync(DbConnection connection, StoreKind kind, string table)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = kind == StoreKind.Sqlite
            ? $"SELECT name, \"notnull\" = 0 FROM pragma_table_info('{table}')"
            : $"SELECT column_name, is_nullable = 'YES' FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}'";
        var columns = new Dictionary<string, bool>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            columns[reader.GetString(0)] = reader.GetBoolean(1);
        }

        return columns;
    }
}

public sealed class StoreTests_Sqlite : StoreTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("concord-store-").FullName;

    internal override Task<StoreOptions> CreateStoreAsync() => Task.FromResult(StoreOptions.Sqlite(_directory));

    internal override Task DropStoreAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        return Task.CompletedTask;
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_commit_is_copied_into_the_database_file_by_the_background_checkpoint()
    {
        await using var services = Services(await CreateStoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        var checkpointer = services.GetRequiredService<WalCheckpointer>();
        var before = checkpointer.Checkpoints;
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            db.Settings.Add(new Sharing.Setting { Key = "test.checkpoint", Value = new string('x', 20_000) });
            await db.SaveChangesAsync();
        }

        // A checkpoint that began before the commit may end after it, with an empty log: the one that follows it counts.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((checkpointer.Checkpoints == before || checkpointer.Last.Log == 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        // Nothing else writes: the checkpoint after the commit copied the whole log, the setting's pages with it (a
        // 20 kB value spans several pages).
        Assert.True(checkpointer.Checkpoints > before, "no checkpoint ran after the commit");
        var (log, copied) = checkpointer.Last;
        Assert.True(log >= 5, $"pages in the log: {log}");
        Assert.Equal(log, copied);
        await DropStoreAsync();
    }

    [Fact]
    public Task Connections_read_through_page_caches_held_together_under_the_process_limit() => OnConnectionAsync(async command =>
    {
        // No memory map: SQLite unmaps a connection's map each time another connection has committed.
        command.CommandText = "PRAGMA mmap_size";
        Assert.Equal(0L, await command.ExecuteScalarAsync());
        command.CommandText = "PRAGMA soft_heap_limit";
        Assert.Equal(StoreOptions.SqliteMemoryLimit, await command.ExecuteScalarAsync());
        // The limit acts only where SQLite counts its memory (a build without memory statistics would report none).
        command.CommandText = "SELECT count(*) FROM reports";
        await command.ExecuteScalarAsync();
        Assert.True(SQLitePCL.raw.sqlite3_memory_used() > 0, "SQLite does not count the memory it holds");
    });

    [Fact]
    public Task Connections_checkpoint_inline_only_past_the_higher_threshold() => OnConnectionAsync(async command =>
    {
        command.CommandText = "PRAGMA wal_autocheckpoint";
        Assert.Equal((long)WalCheckpointer.InlineThreshold, await command.ExecuteScalarAsync());
    });

    /// <summary>Runs <paramref name="test"/> with a command on a connection of a migrated store, opened as Concord opens them.</summary>
    private async Task OnConnectionAsync(Func<DbCommand, Task> test)
    {
        await using var services = Services(await CreateStoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            await db.Database.OpenConnectionAsync();
            await using (var command = db.Database.GetDbConnection().CreateCommand())
            {
                await test(command);
            }

            await db.Database.CloseConnectionAsync();
        }

        await DropStoreAsync();
    }
}

public sealed class StoreTests_Postgres : StoreTests
{
    private readonly PostgresDatabase _database = new();

    internal override async Task<StoreOptions> CreateStoreAsync() => StoreOptions.Postgres(await _database.CreateAsync());

    internal override Task DropStoreAsync() => _database.DropAsync();

    [Fact]
    public async Task A_role_that_may_connect_to_its_own_database_only_runs_Concord_there()
    {
        // A hardened deployment: Concord's role may not connect to the maintenance database "postgres", only to its own.
        var tag = Guid.NewGuid().ToString("N")[..8];
        var (role, database) = ("concord_only_" + tag, "concord_own_" + tag);
        await AdminAsync($"CREATE ROLE {role} LOGIN", $"CREATE DATABASE {database} OWNER {role}", $"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC",
            $"GRANT CONNECT ON DATABASE {database} TO {role}");
        try
        {
            // Granted to PUBLIC by default; taken back for the test's length (superusers, which the other tests are, need none).
            await AdminAsync("REVOKE CONNECT ON DATABASE postgres FROM PUBLIC");
            var own = new NpgsqlConnectionStringBuilder(PostgresDatabase.ServerConnection) { Username = role, Database = database, Password = null }.ToString();
            await using var services = Services(StoreOptions.Postgres(own));
            Assert.True(await StoreOptions.Postgres(own).ExistsAsync(CancellationToken.None));
            Assert.NotEmpty(await services.PrepareStoreAsync(CancellationToken.None));
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await AdminAsync("GRANT CONNECT ON DATABASE postgres TO PUBLIC", $"DROP DATABASE IF EXISTS {database} WITH (FORCE)", $"DROP ROLE IF EXISTS {role}");
        }
    }

    [Fact]
    public async Task A_database_that_cannot_hold_unicode_text_is_refused_at_start_and_one_Concord_creates_is_utf8()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var (ascii, created) = ("concord_ascii_" + tag, "concord_new_" + tag);
        await AdminAsync($"CREATE DATABASE {ascii} ENCODING 'SQL_ASCII' TEMPLATE template0");
        try
        {
            Assert.Contains($"database '{ascii}' uses the encoding SQL_ASCII; Concord needs UTF8", await RefusedAtStartAsync(ascii), StringComparison.Ordinal);

            var newStore = StoreOptions.Postgres(ConnectionTo(created));
            Assert.False(await newStore.ExistsAsync(CancellationToken.None));
            await newStore.EnsureExistsAsync(CancellationToken.None);
            await using var connection = new NpgsqlConnection(ConnectionTo(created));
            await connection.OpenAsync();
            await using var encoding = new NpgsqlCommand("SHOW server_encoding", connection);
            Assert.Equal("UTF8", await encoding.ExecuteScalarAsync());
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await AdminAsync($"DROP DATABASE IF EXISTS {ascii} WITH (FORCE)", $"DROP DATABASE IF EXISTS {created} WITH (FORCE)");
        }
    }

    [Fact]
    public async Task A_database_whose_character_type_lowers_only_ascii_is_refused_at_start()
    {
        // initdb --locale=C, or a database made by hand with LC_CTYPE 'C': PostgreSQL's lower() leaves É as it is, and a
        // search for 'ébo' would silently miss ÉBOUMBOU (which SQLite finds).
        var name = "concord_cctype_" + Guid.NewGuid().ToString("N")[..8];
        await AdminAsync($"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
        try
        {
            Assert.Contains($"database '{name}' has the character type (LC_CTYPE) C, in which PostgreSQL lowers A to Z only", await RefusedAtStartAsync(name), StringComparison.Ordinal);
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await AdminAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        }
    }

    private static string ConnectionTo(string database) => new NpgsqlConnectionStringBuilder(PostgresDatabase.ServerConnection) { Database = database }.ToString();

    /// <summary>Why a store on <paramref name="database"/> (of the test server) is refused at start.</summary>
    private static async Task<string> RefusedAtStartAsync(string database)
    {
        await using var services = Services(StoreOptions.Postgres(ConnectionTo(database)));
        return (await Assert.ThrowsAsync<StoreUnsuitableException>(() => services.PrepareStoreAsync(CancellationToken.None))).Message;
    }

    private static async Task AdminAsync(params string[] statements)
    {
        await using var connection = new NpgsqlConnection(PostgresDatabase.ServerConnection);
        await connection.OpenAsync();
        foreach (var statement in statements)
        {
            await using var command = new NpgsqlCommand(statement, connection);
            await command.ExecuteNonQueryAsync();
        }
    }
}

/// <summary>Which store errors are an outage (503, try again) and which are not.</summary>
public sealed class StoreErrorTests
{
    [Fact]
    public void An_outage_is_one_the_request_did_not_bring_on_itself()
    {
        static Npgsql.PostgresException Postgres(string state) => new("refused", "ERROR", "ERROR", state);

        // The store is gone, full, shutting down or read-only: try again later.
        Assert.True(Data.StoreErrors.IsUnavailable(Postgres("53100")));
        Assert.True(Data.StoreErrors.IsUnavailable(Postgres("57P01")));
        Assert.True(Data.StoreErrors.IsUnavailable(Postgres("25006")));
        Assert.True(Data.StoreErrors.IsUnavailable(new Npgsql.NpgsqlException("Failed to connect", new System.Net.Sockets.SocketException(111))));
        Assert.True(Data.StoreErrors.IsUnavailable(new Microsoft.EntityFrameworkCore.DbUpdateException("save failed", new Microsoft.Data.Sqlite.SqliteException("database or disk is full", 13))));
        Assert.True(Data.StoreErrors.IsUnavailable(new Data.StoreBusyException("another process")));

        // What one heavy request brings on itself is not: told to retry in 5 s, a script would run it again and again.
        Assert.False(Data.StoreErrors.IsUnavailable(new Npgsql.NpgsqlException("Exception while reading from stream", new TimeoutException())));
        Assert.False(Data.StoreErrors.IsUnavailable(Postgres("53400")));
        Assert.False(Data.StoreErrors.IsUnavailable(Postgres("53200")));
        Assert.False(Data.StoreErrors.IsUnavailable(Postgres("57014")));
        Assert.False(Data.StoreErrors.IsUnavailable(Postgres("23505")));
        Assert.False(Data.StoreErrors.IsUnavailable(new Microsoft.Data.Sqlite.SqliteException("constraint failed", 19)));
        Assert.False(Data.StoreErrors.IsUnavailable(new TimeoutException()));
    }
}

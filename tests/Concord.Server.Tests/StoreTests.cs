using System.Data.Common;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

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
    public async Task Connections_checkpoint_inline_only_past_the_higher_threshold()
    {
        await using var services = Services(await CreateStoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_autocheckpoint";
        Assert.Equal((long)WalCheckpointer.InlineThreshold, await command.ExecuteScalarAsync());
        await db.Database.CloseConnectionAsync();
        await DropStoreAsync();
    }
}

public sealed class StoreTests_Postgres : StoreTests
{
    private readonly PostgresDatabase _database = new();

    internal override async Task<StoreOptions> CreateStoreAsync() => StoreOptions.Postgres(await _database.CreateAsync());

    internal override Task DropStoreAsync() => _database.DropAsync();
}

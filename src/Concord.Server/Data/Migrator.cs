using System.Data.Common;
using System.Globalization;
using System.Reflection;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Data;

/// <summary>
/// Applies the numbered SQL migrations of the store's provider (embedded as resources) that the database has not seen yet,
/// each in its own transaction, and records them in <c>schema_migrations</c>.
/// </summary>
internal static class Migrator
{
    internal sealed record Migration(int Version, string Name, string Sql);

    public static IReadOnlyList<Migration> For(StoreKind kind)
    {
        var folder = kind == StoreKind.Sqlite ? "sqlite" : "postgres";
        var prefix = $"migrations/{folder}/";
        var assembly = Assembly.GetExecutingAssembly();
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n =>
            {
                var file = n[prefix.Length..];
                var version = int.Parse(file[..file.IndexOf('_', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var reader = new StreamReader(stream);
                return new Migration(version, Path.GetFileNameWithoutExtension(file), reader.ReadToEnd());
            })
            .OrderBy(m => m.Version)
            .ToList();
    }

    /// <summary>Returns the migrations applied by this call.</summary>
    public static async Task<IReadOnlyList<Migration>> MigrateAsync(ConcordDb db, StoreKind kind, TimeProvider time, CancellationToken cancellationToken)
    {
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            if (kind == StoreKind.Sqlite)
            {
                await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL;", cancellationToken);
            }
            else
            {
                // Several nodes may start at once against one PostgreSQL: only one migrates.
                await ExecuteAsync(connection, null, "SELECT pg_advisory_lock(4242001)", cancellationToken);
            }

            await ExecuteAsync(connection, null, kind == StoreKind.Sqlite
                ? "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                : "CREATE TABLE IF NOT EXISTS schema_migrations (version integer NOT NULL PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)", cancellationToken);

            var applied = new HashSet<int>();
            await using (var command = connection.CreateCommand())
            {
                command.CommandText = "SELECT version FROM schema_migrations";
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    applied.Add(reader.GetInt32(0));
                }
            }

            var migrations = For(kind);
            if (applied.Count > 0 && applied.Max() > migrations[^1].Version)
            {
                // An older build (a rollback) on a store a newer one migrated: its queries assume a schema that is gone.
                throw new StoreTooNewException($"the store's schema is at version {applied.Max()}, newer than this build's {migrations[^1].Version}: run the build that migrated it, or a newer one");
            }

            var done = new List<Migration>();
            foreach (var migration in migrations.Where(m => !applied.Contains(m.Version)))
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                // Applied meanwhile by another process (on SQLite nothing else serialises two processes migrating at once;
                // the transaction's write lock does from here on): read again inside it.
                await using (var check = connection.CreateCommand())
                {
                    check.Transaction = transaction;
                    check.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE version = @v";
                    AddParameter(check, "@v", migration.Version);
                    if (Convert.ToInt64(await check.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
                    {
                        await transaction.RollbackAsync(cancellationToken);
                        continue;
                    }
                }

                await ExecuteAsync(connection, transaction, migration.Sql, cancellationToken);
                await using (var record = connection.CreateCommand())
                {
                    record.Transaction = transaction;
                    record.CommandText = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@v, @n, @a)";
                    AddParameter(record, "@v", migration.Version);
                    AddParameter(record, "@n", migration.Name);
                    AddParameter(record, "@a", kind == StoreKind.Sqlite
                        ? time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture)
                        : time.GetUtcNow().UtcDateTime);
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                done.Add(migration);
            }

            return done;
        }
        finally
        {
            if (kind == StoreKind.Postgres && connection.State == System.Data.ConnectionState.Open)
            {
                // Also after a failed migration: the connection goes back to the pool holding the lock, which stops every
                // other node migrating until the pool resets that connection on its next use.
                try
                {
                    await ExecuteAsync(connection, null, "SELECT pg_advisory_unlock(4242001)", CancellationToken.None);
                }
                catch (DbException)
                {
                    // The connection is broken: the server ended the session, and its locks with it.
                }
            }

            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>
    /// How many of this build's migrations the database has not seen, without applying any; null when it holds no Concord
    /// schema at all.
    /// </summary>
    public static async Task<int?> PendingAsync(ConcordDb db, StoreKind kind, CancellationToken cancellationToken)
    {
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            await using (var table = connection.CreateCommand())
            {
                table.CommandText = kind == StoreKind.Sqlite
                    ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
                    : "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";
                if (Convert.ToInt64(await table.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) == 0)
                {
                    return null;
                }
            }

            var applied = new HashSet<int>();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT version FROM schema_migrations";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add(reader.GetInt32(0));
            }

            return For(kind).Count(m => !applied.Contains(m.Version));
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }
}

/// <summary>The store was migrated by a newer build than this one.</summary>
internal sealed class StoreTooNewException(string message) : Exception(message);

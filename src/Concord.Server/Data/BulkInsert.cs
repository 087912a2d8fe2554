using System.Collections.Concurrent;
using System.Globalization;
using Concord.Server.Audit;
using Concord.Server.Incidents;
using Concord.Server.Realtime;
using Concord.Server.Reports;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Concord.Server.Data;

/// <summary>
/// The report writer's new rows (incidents, reports, their links, fusion proposals, audit entries and the change rows
/// announcing them), inserted inside the writer's transaction without SaveChanges, which builds a fresh batched command
/// of thousands of parameters for each batch: on SQLite with one prepared statement per table, reused for every row; on
/// PostgreSQL with one binary <c>COPY</c> per table. On SQLite the incidents a report joined are updated here too, in
/// the columns that changed, one prepared statement per set of changed columns. Columns and values come from the EF
/// model and its type mappings, so each row is exactly what SaveChanges would write; the written entries stop being
/// tracked as changed, and SaveChanges then writes whatever remains (on PostgreSQL, the joined incidents).
/// </summary>
internal static class BulkInsert
{
    /// <summary>In an order that satisfies the foreign keys.</summary>
    private static readonly Type[] Tables = [typeof(Incident), typeof(Report), typeof(IncidentReport), typeof(Fusion.FusionProposal), typeof(AuditEntry), typeof(Change)];

    private static readonly ConcurrentDictionary<(Type Table, bool Sqlite), Shape> Shapes = new();

    public static async Task FlushAsync(ConcordDb db, ChangeFeedInterceptor feed, CancellationToken cancellationToken)
    {
        // Added entries are added whatever their properties hold: they need no scan for changes. On SQLite the incidents a
        // report joined are found by one explicit scan (on PostgreSQL SaveChanges scans and writes them).
        var detect = db.ChangeTracker.AutoDetectChangesEnabled;
        db.ChangeTracker.AutoDetectChangesEnabled = false;
        var sqlite = db.Database.IsSqlite();
        List<EntityEntry> added;
        List<EntityEntry> modified = [];
        try
        {
            added = db.ChangeTracker.Entries().Where(e => e.State == EntityState.Added && Array.IndexOf(Tables, e.Metadata.ClrType) >= 0).ToList();
            if (sqlite)
            {
                // The incidents reports joined: SaveChanges would find them by comparing every tracked entity with its snapshot.
                db.ChangeTracker.DetectChanges();
                modified = db.ChangeTracker.Entries<Incident>().Where(e => e.State == EntityState.Modified).Select(e => (EntityEntry)e).ToList();
            }
        }
        finally
        {
            db.ChangeTracker.AutoDetectChangesEnabled = detect;
        }

        if (added.Count == 0 && modified.Count == 0)
        {
            return;
        }

        var transaction = (db.Database.CurrentTransaction ?? throw new InvalidOperationException("bulk insert needs the writer's transaction")).GetDbTransaction();
        var changes = feed.Rows(added.Select(e => e.Entity).OfType<IFeedEntity>(), "created");
        if (modified.Count > 0)
        {
            try
            {
                Update(modified, (SqliteConnection)transaction.Connection!, (SqliteTransaction)transaction);
            }
            catch (SqliteException e) when (StoreErrors.IsConstraintViolation(e))
            {
                throw new DbUpdateException($"updating incidents failed: {e.Message}", e);
            }

            changes.AddRange(feed.Updated(modified));
        }

        foreach (var table in Tables)
        {
            var rows = added.Where(e => e.Metadata.ClrType == table).Select(e => e.Entity).ToList();
            if (table == typeof(Change))
            {
                rows.AddRange(changes);
            }

            if (rows.Count == 0)
            {
                continue;
            }

            var shape = Shapes.GetOrAdd((table, sqlite), key => Shape.Of(db.Model.FindEntityType(key.Table)!, key.Sqlite));
            try
            {
                if (sqlite)
                {
                    Insert(shape, rows, (SqliteConnection)transaction.Connection!, (SqliteTransaction)transaction);
                }
                else
                {
                    await CopyAsync(shape, rows, (NpgsqlConnection)transaction.Connection!, cancellationToken);
                }
            }
            catch (Exception e) when (StoreErrors.IsConstraintViolation(e))
            {
                // As SaveChanges reports it, so that the writer stores the batch one report at a time to find the bad one.
                // A store that fails in itself (locked, full, gone) fails the batch as it is: no report is to blame.
                throw new DbUpdateException($"inserting into {table.Name} failed: {e.Message}", e);
            }
        }

        foreach (var entry in added)
        {
            entry.State = EntityState.Detached;
        }

        foreach (var entry in modified)
        {
            // Written: SaveChanges must not write it again (the context ends with the batch).
            entry.State = EntityState.Unchanged;
        }
    }

    /// <summary>Updates each entry in the columns that changed, as SaveChanges would; entries with the same changed columns share a statement.</summary>
    private static void Update(List<EntityEntry> entries, SqliteConnection connection, SqliteTransaction transaction)
    {
        foreach (var group in entries.GroupBy(e => string.Join(',', e.Properties.Where(p => p.IsModified).Select(p => p.Metadata.GetColumnName())), StringComparer.Ordinal))
        {
            var type = group.First().Metadata;
            var key = type.FindPrimaryKey()!.Properties.Single();
            var columns = group.First().Properties.Where(p => p.IsModified).Select(p => p.Metadata).ToArray();
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = $"UPDATE \"{type.GetTableName()}\" SET {string.Join(", ", columns.Select((c, i) => $"\"{c.GetColumnName()}\" = @p{i.ToString(CultureInfo.InvariantCulture)}"))} WHERE \"{key.GetColumnName()}\" = @key";
            foreach (var entry in group)
            {
                command.Parameters.Clear();
                for (var i = 0; i < columns.Length; i++)
                {
                    command.Parameters.Add(columns[i].GetRelationalTypeMapping().CreateParameter(command, "@p" + i.ToString(CultureInfo.InvariantCulture),
                        entry.Property(columns[i]).CurrentValue, columns[i].IsNullable));
                }

                command.Parameters.Add(key.GetRelationalTypeMapping().CreateParameter(command, "@key", entry.Property(key).OriginalValue, nullable: false));
                if (command.ExecuteNonQuery() != 1)
                {
                    throw new DbUpdateConcurrencyException($"{type.GetTableName()} {entry.Property(key).OriginalValue} was not found to update");
                }
            }
        }
    }

    private static void Insert(Shape shape, List<object> rows, SqliteConnection connection, SqliteTransaction transaction)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = shape.Sql;
        foreach (var row in rows)
        {
            command.Parameters.Clear();
            for (var i = 0; i < shape.Columns.Length; i++)
            {
                var column = shape.Columns[i];
                command.Parameters.Add(column.Mapping.CreateParameter(command, shape.Names[i], column.Property.GetGetter().GetClrValueUsingContainingEntity(row), column.Property.IsNullable));
            }

            if (shape.Generated is { } generated)
            {
                // The store's number (keyset paging), as SaveChanges would have read it back.
                generated.PropertyInfo!.SetValue(row, Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture));
            }
            else
            {
                command.ExecuteNonQuery();
            }
        }
    }

    private static async Task CopyAsync(Shape shape, List<object> rows, NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (shape.Generated is { } generated)
        {
            // COPY cannot return what the store generates: the numbers are drawn from the column's own sequence first
            // (one round trip), as its default would have drawn them.
            await using var draw = new NpgsqlCommand(shape.Sql, connection);
            draw.Parameters.AddWithValue(rows.Count);
            await using var reader = await draw.ExecuteReaderAsync(cancellationToken);
            foreach (var row in rows)
            {
                await reader.ReadAsync(cancellationToken);
                generated.PropertyInfo!.SetValue(row, reader.GetInt64(0));
            }
        }

        await using var importer = await connection.BeginBinaryImportAsync(shape.Copy, cancellationToken);
        foreach (var row in rows)
        {
            await importer.StartRowAsync(cancellationToken);
            foreach (var column in shape.Columns)
            {
                var value = column.Property.GetGetter().GetClrValueUsingContainingEntity(row);
                if (value is not null && column.Mapping.Converter is { } converter)
                {
                    value = converter.ConvertToProvider(value);
                }

                if (value is null)
                {
                    await importer.WriteNullAsync(cancellationToken);
                }
                else
                {
                    await importer.WriteAsync(value, column.Mapping.StoreType, cancellationToken);
                }
            }
        }

        await importer.CompleteAsync(cancellationToken);
    }

    private sealed record Column(IProperty Property, RelationalTypeMapping Mapping);

    /// <summary>
    /// A table's columns. SQLite: <see cref="Sql"/> inserts one row and returns the generated key. PostgreSQL:
    /// <see cref="Sql"/> draws generated keys from the key's sequence and <see cref="Copy"/> loads every column, the key included.
    /// </summary>
    private sealed record Shape(string Sql, string Copy, Column[] Columns, string[] Names, IProperty? Generated)
    {
        public static Shape Of(IEntityType type, bool sqlite)
        {
            var table = StoreObjectIdentifier.Table(type.GetTableName()!, type.GetSchema());
            // Integer keys are numbered by the store; a Guid key marked generated on add is made by EF on the client.
            var generated = type.FindPrimaryKey()!.Properties.SingleOrDefault(p => p.ValueGenerated == ValueGenerated.OnAdd && p.ClrType != typeof(Guid));
            string Quoted(IProperty p) => "\"" + p.GetColumnName(table) + "\"";
            if (sqlite)
            {
                var columns = type.GetProperties().Where(p => p != generated).Select(p => new Column(p, p.GetRelationalTypeMapping())).ToArray();
                var names = columns.Select((_, i) => "@p" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
                var sql = $"INSERT INTO \"{table.Name}\" ({string.Join(", ", columns.Select(c => Quoted(c.Property)))}) VALUES ({string.Join(", ", names)})"
                    + (generated is null ? "" : $" RETURNING {Quoted(generated)}");
                return new Shape(sql, "", columns, names, generated);
            }

            var all = type.GetProperties().Select(p => new Column(p, p.GetRelationalTypeMapping())).ToArray();
            var draw = generated is null ? "" : $"SELECT nextval(pg_get_serial_sequence('\"{table.Name}\"', '{generated.GetColumnName(table)}')) FROM generate_series(1, $1)";
            var copy = $"COPY \"{table.Name}\" ({string.Join(", ", all.Select(c => Quoted(c.Property)))}) FROM STDIN (FORMAT BINARY)";
            return new Shape(draw, copy, all, [], generated);
        }
    }
}

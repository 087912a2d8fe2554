using System.Collections.Concurrent;
using Concord.Server.Audit;
using Concord.Server.Incidents;
using Concord.Server.Realtime;
using Concord.Server.Reports;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace Concord.Server.Data;

/// <summary>
/// The report writer's new rows on SQLite (incidents, reports, their links, audit entries and the change rows announcing
/// them), inserted inside the writer's transaction with one prepared statement per table, reused for every row, instead of
/// by SaveChanges, which builds a fresh batched command of thousands of parameters for each batch. Columns and values come
/// from the EF model and its type mappings, so each row is exactly what SaveChanges would write; the inserted entries stop
/// being tracked, and SaveChanges then writes what remains (incidents a report joined, fusion proposals) as before.
/// </summary>
internal static class SqliteBulkInsert
{
    /// <summary>In an order that satisfies the foreign keys.</summary>
    private static readonly Type[] Tables = [typeof(Incident), typeof(Report), typeof(IncidentReport), typeof(AuditEntry), typeof(Change)];

    private static readonly ConcurrentDictionary<Type, Shape> Shapes = new();

    public static void Flush(ConcordDb db, ChangeFeedInterceptor feed)
    {
        // Added entries are added whatever their properties hold: no need to scan every tracked entity for changes here
        // (SaveChanges still does, for the incidents a report joined).
        var detect = db.ChangeTracker.AutoDetectChangesEnabled;
        db.ChangeTracker.AutoDetectChangesEnabled = false;
        List<Microsoft.EntityFrameworkCore.ChangeTracking.EntityEntry> added;
        try
        {
            added = db.ChangeTracker.Entries().Where(e => e.State == EntityState.Added && Array.IndexOf(Tables, e.Metadata.ClrType) >= 0).ToList();
        }
        finally
        {
            db.ChangeTracker.AutoDetectChangesEnabled = detect;
        }

        if (added.Count == 0)
        {
            return;
        }

        var connection = (SqliteConnection)db.Database.GetDbConnection();
        var transaction = (SqliteTransaction)(db.Database.CurrentTransaction ?? throw new InvalidOperationException("bulk insert needs the writer's transaction")).GetDbTransaction();
        var changes = feed.Created(added.Select(e => e.Entity).OfType<IFeedEntity>());
        foreach (var table in Tables)
        {
            var rows = added.Where(e => e.Metadata.ClrType == table).Select(e => e.Entity).ToList();
            if (table == typeof(Change))
            {
                rows.AddRange(changes);
            }

            if (rows.Count > 0)
            {
                try
                {
                    Insert(Shapes.GetOrAdd(table, t => Shape.Of(db.Model.FindEntityType(t)!)), rows, connection, transaction);
                }
                catch (SqliteException e)
                {
                    // As SaveChanges reports it, so that the writer stores the batch one report at a time to find the bad one.
                    throw new DbUpdateException($"inserting into {table.Name} failed: {e.Message}", e);
                }
            }
        }

        foreach (var entry in added)
        {
            entry.State = EntityState.Detached;
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
                generated.PropertyInfo!.SetValue(row, Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                command.ExecuteNonQuery();
            }
        }
    }

    private sealed record Column(IProperty Property, RelationalTypeMapping Mapping);

    private sealed record Shape(string Sql, Column[] Columns, string[] Names, IProperty? Generated)
    {
        public static Shape Of(IEntityType type)
        {
            var table = StoreObjectIdentifier.Table(type.GetTableName()!, type.GetSchema());
            var generated = type.FindPrimaryKey()!.Properties.SingleOrDefault(p => p.ValueGenerated == ValueGenerated.OnAdd);
            var columns = type.GetProperties().Where(p => p != generated).Select(p => new Column(p, p.GetRelationalTypeMapping())).ToArray();
            var names = columns.Select((_, i) => "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var sql = $"INSERT INTO \"{table.Name}\" ({string.Join(", ", columns.Select(c => "\"" + c.Property.GetColumnName(table) + "\""))}) VALUES ({string.Join(", ", names)})"
                + (generated is null ? "" : $" RETURNING \"{generated.GetColumnName(table)}\"");
            return new Shape(sql, columns, names, generated);
        }
    }
}

using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Concord.Server.Data;

/// <summary>What a store's refusal means, the same on both stores.</summary>
internal static class StoreErrors
{
    private const int SqliteConstraint = 19;
    private const int SqliteConstraintPrimaryKey = 1555;
    private const int SqliteConstraintUnique = 2067;

    /// <summary>
    /// Whether a save broke a unique index or primary key: another request stored the same key between this request's
    /// check and its save, so nothing of this save was stored and the answer is a conflict, not a server error.
    /// </summary>
    public static bool IsUniqueViolation(DbUpdateException e) => e.GetBaseException() switch
    {
        SqliteException s => s.SqliteErrorCode == SqliteConstraint && s.SqliteExtendedErrorCode is SqliteConstraintUnique or SqliteConstraintPrimaryKey,
        PostgresException p => p.SqlState == PostgresErrorCodes.UniqueViolation,
        _ => false,
    };

    /// <summary>
    /// Whether the store refused rows for what they hold (a constraint: unique, foreign key, not null, check), as opposed to
    /// failing itself (locked, out of space, gone), which no row of a batch can be blamed for.
    /// </summary>
    public static bool IsConstraintViolation(Exception e) => e switch
    {
        SqliteException s => s.SqliteErrorCode == SqliteConstraint,
        PostgresException p => p.SqlState.StartsWith("23", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>
    /// Whether <paramref name="e"/> (or an exception inside it) says the store cannot serve for now rather than that the
    /// request is at fault or the code is: unreachable or restarting, out of space, read-only after a failover, locked past
    /// the wait, or another process holding the report writer's lease. A client may try again later (503).
    /// </summary>
    public static bool IsUnavailable(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            switch (inner)
            {
                case StoreBusyException:
                // Connection lost, shutting down, disk full, too many connections, read-only after a failover. Not what one
                // request can bring on itself (a statement timed out, out of memory, a temporary file past its limit): told
                // to try again in 5 s, a script would run the same heavy query again and again.
                case PostgresException p when p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState.StartsWith("57P", StringComparison.Ordinal)
                    || p.SqlState is PostgresErrorCodes.DiskFull or PostgresErrorCodes.TooManyConnections or PostgresErrorCodes.ReadOnlySqlTransaction:
                // The server could not be reached, or the connection broke (a socket or stream error inside), not a time-out.
                case NpgsqlException { IsTransient: true, InnerException: System.Net.Sockets.SocketException or IOException }:
                // Busy, locked, read-only, I/O error, full, cannot open.
                case SqliteException { SqliteErrorCode: 5 or 6 or 8 or 10 or 13 or 14 }:
                    return true;
            }
        }

        return false;
    }
}

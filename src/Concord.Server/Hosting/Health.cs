using Concord.Server.Audit;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Hosting;

/// <summary>
/// <c>GET /health</c>, for a load balancer or a monitor: whether this server can serve, not merely whether it runs. The
/// store must answer a query (within <see cref="Timeout"/>), and the audit must be writable: with the audit failing, every
/// read of a classified record, every sign-in and every write fails, and a node that said "ok" would be sent users it
/// cannot serve. A 503 says which, with Retry-After; nothing in it is about records, and it is open to anyone.
/// </summary>
internal static class Health
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public static async Task<IResult> CheckAsync(HttpContext context, ConcordDb db, AuditWriter audit, Probes probes)
    {
        string? problem = null;
        try
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            limit.CancelAfter(Timeout);
            await db.Database.ExecuteSqlRawAsync("SELECT 1", limit.Token);
            probes.Failures.Succeeded();
        }
        catch (Exception e) when (e is not OperationCanceledException || !context.RequestAborted.IsCancellationRequested)
        {
            // A monitor (or anyone: the check is open) asks every few seconds: an outage is logged once, then summed up.
            if (probes.Failures.Failed(e))
            {
                probes.Logger.LogWarning(e, "the health check could not query the store");
            }

            problem = "the store does not answer";
        }

        if (problem is null && audit.Failing)
        {
            problem = "the audit log cannot be written";
        }

        if (problem is null)
        {
            return TypedResults.Ok(new { status = "ok" });
        }

        context.Response.Headers.RetryAfter = Http.StoreUnavailable.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Json(new { status = "unavailable", problem }, statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}

/// <summary>The health check's log and its run of failed store queries, one for the server.</summary>
internal sealed class Probes
{
    public Probes(ILoggerFactory logs)
    {
        Logger = logs.CreateLogger(typeof(Health));
        Failures = new FailureRun(Logger, "the health check's query of the store");
    }

    public ILogger Logger { get; }

    public FailureRun Failures { get; }
}

using Microsoft.AspNetCore.Diagnostics;

namespace Concord.Server.Http;

/// <summary>
/// The store cannot serve for now (<see cref="Data.StoreErrors.IsUnavailable"/>): a 503 with Retry-After, so that a script,
/// a TAK gateway or a page can tell an outage from a fault and try again (a report's id makes a retry safe), rather than
/// a 500.
/// </summary>
internal sealed class StoreUnavailable(IProblemDetailsService problems) : IExceptionHandler
{
    public const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!Data.StoreErrors.IsUnavailable(exception))
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Service Unavailable",
                Detail = "the store cannot be used for now (unreachable, full, read-only or busy): try again shortly",
            },
        });
    }
}

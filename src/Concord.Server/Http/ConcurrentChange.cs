using Microsoft.AspNetCore.Diagnostics;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Http;

/// <summary>
/// A record moved by someone else between a request's read and its save (two organisations accepting the same request at
/// once; an accept racing a cancel): the store refused the save, nothing of it was stored, and the answer is a 409 that
/// says to read the record again, not a server error. Records whose status decides who may act declare it a concurrency
/// token, so their saves check that it is still the status the request read.
/// </summary>
internal sealed class ConcurrentChange(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not DbUpdateConcurrencyException)
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status409Conflict;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails =
            {
                Status = StatusCodes.Status409Conflict,
                Title = "The request conflicts with an existing record.",
                Detail = "the record was changed by someone else meanwhile; read it again and retry",
            },
        });
    }
}

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

/// <summary>
/// The member a request acts as changed between the check of their access and the request's save (a password reset, a
/// disable, other roles, clearance or caveats, on another node or by the CLI): nothing was stored, and the answer is a 403
/// that says to sign in again or retry, not a server error.
/// </summary>
internal sealed class AccessChangedException : Exception
{
    public AccessChangedException()
        : base("the member's access changed since the request was checked")
    {
    }
}

/// <summary>Answers <see cref="AccessChangedException"/> with a 403 problem.</summary>
internal sealed class AccessChanged(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not AccessChangedException)
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status403Forbidden;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails =
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "Forbidden",
                Detail = "your access changed since this request was checked (a password reset, a disable, or other roles, clearance or caveats): nothing was stored; sign in again, or retry",
            },
        });
    }
}

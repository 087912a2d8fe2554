using Microsoft.AspNetCore.Diagnostics;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Http;

/// <summary>
/// A record moved by someone else between a request's read and its save (two organisations accepting the same request at
/// once; an accept racing a cancel): the store refused the save, nothing of it was stored, and the answer is a 409 that
/// says to read the record again, not a server error. Records whose status decides who may act declare it a concurrency
/// token, so their saves check that it is still the status the request read. Likewise the member a request acts as
/// changed meanwhile (<see cref="AccessChangedException"/>): a 403 that says to sign in again or retry.
/// </summary>
internal sealed class ConcurrentChange(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        (int Status, string Title, string Detail)? answer = exception switch
        {
            DbUpdateConcurrencyException => (StatusCodes.Status409Conflict, "The request conflicts with an existing record.",
                "the record was changed by someone else meanwhile; read it again and retry"),
            AccessChangedException => (StatusCodes.Status403Forbidden, "Forbidden",
                "your access changed since this request was checked (a password reset, a disable, or other roles, clearance or caveats): nothing was stored; sign in again, or retry"),
            _ => null,
        };
        if (answer is not var (status, title, detail))
        {
            return false;
        }

        httpContext.Response.StatusCode = status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails = { Status = status, Title = title, Detail = detail },
        });
    }
}

/// <summary>
/// The member a request acts as changed between the check of their access and the request's save (a password reset, a
/// disable, other roles, clearance or caveats, on another node or by the CLI): nothing was stored.
/// </summary>
internal sealed class AccessChangedException : Exception
{
    public AccessChangedException()
        : base("the member's access changed since the request was checked")
    {
    }
}

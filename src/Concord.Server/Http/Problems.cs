using Microsoft.AspNetCore.Http.HttpResults;

namespace Concord.Server.Http;

/// <summary>RFC 9457 problem details with the field and the reason.</summary>
internal static class Problems
{
    public static ProblemHttpResult Field(string field, string reason, int status = StatusCodes.Status400BadRequest) =>
        TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { [field] = [reason] })
        {
            Status = status,
            Title = status switch
            {
                StatusCodes.Status413PayloadTooLarge => "The request body is too large.",
                StatusCodes.Status415UnsupportedMediaType => "The request body is not JSON.",
                StatusCodes.Status409Conflict => "The request conflicts with an existing record.",
                StatusCodes.Status404NotFound => "Not found.",
                StatusCodes.Status403Forbidden => "You may not do this.",
                _ => "The request is not valid.",
            },
            Detail = $"{field}: {reason}",
        });

    public static ProblemHttpResult Invalid(Dictionary<string, string[]> errors) =>
        TypedResults.Problem(new HttpValidationProblemDetails(errors)
        {
            Status = StatusCodes.Status400BadRequest,
            Title = "The request is not valid.",
            Detail = string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(' ', e.Value)}")),
        });

    public static ProblemHttpResult Conflict(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status409Conflict, title: "The request conflicts with an existing record.");

    public static ProblemHttpResult Forbidden(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status403Forbidden, title: "You may not do this.");
}

using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Concord.Server.Import;

internal sealed record ImportResultDto(long Rows, long Created, long Skipped, long Rejected, IReadOnlyList<RejectedRow> RejectedRows);

internal static class ImportEndpoints
{
    /// <summary>An upload larger than this goes through <c>concord import</c> on the server instead.</summary>
    public const long MaxBytes = 256L * 1024 * 1024;

    public static void MapImports(this IEndpointRouteBuilder app) =>
        app.MapPost("/api/imports", ImportAsync).WithTags("Import").RequireAuthorization(Policies.Analyst)
            .TakesQuery("format", "classification", "releasableTo", "caveats", "source")
            // Described, not enforced: routing by content type would answer a form or a missing type with a bare 415 (curl
            // --data-binary sends application/x-www-form-urlencoded unless told otherwise); the endpoint says what it refuses.
            .AddOpenApiOperationTransformer((operation, _, _) =>
            {
                operation.RequestBody = new Microsoft.OpenApi.OpenApiRequestBody
                {
                    Required = true,
                    Description = "the file itself as UTF-8 text (not a form, not compressed)",
                    Content = new Dictionary<string, Microsoft.OpenApi.OpenApiMediaType>
                    {
                        ["text/csv"] = new(),
                        ["application/geo+json"] = new(),
                        ["application/json"] = new(),
                    },
                };
                return Task.CompletedTask;
            })
            .WithSummary("Import a UCDP GED CSV, an ACLED-style CSV or a GeoJSON FeatureCollection as reports by you (analysts); format=ged|acled|geojson, source (required for GeoJSON), optional classification, releasableTo, caveats.");

    /// <summary>Why the body cannot be read as the file (null when it can).</summary>
    internal static string? BodyProblem(HttpRequest request)
    {
        if (request.Headers.ContentEncoding.ToString() is { Length: > 0 } encoding && !encoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return $"Content-Encoding '{encoding}' is not read: send the file uncompressed";
        }

        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out var type))
        {
            return null;
        }

        // A form's parts are not the file; application/x-www-form-urlencoded is what curl --data-binary @FILE says of the
        // file's own bytes unless told otherwise, so it is read as the file.
        if (type.MediaType.StartsWith("multipart/", StringComparison.OrdinalIgnoreCase))
        {
            return "send the file itself as the body (curl --data-binary @FILE), not a form";
        }

        return JsonBody.OtherCharset(type) is { } charset ? $"charset '{charset}' is not read: send UTF-8 text" : null;
    }

    /// <summary>A content type an HTML form can send without the page's script (none given counts as one).</summary>
    private static bool FormSendable(string? contentType) =>
        !Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var type)
        || type.MediaType.Value?.ToLowerInvariant() is "text/plain" or "application/x-www-form-urlencoded" or "multipart/form-data";

    private static async Task<Results<Ok<ImportResultDto>, ProblemHttpResult>> ImportAsync(HttpContext context, Viewer viewer, Importer importer, MarkingFormat markings, MissionDirectory directory, ImportSlots slots)
    {
        var query = context.Request.Query;
        if (!ImportReaders.TryParseFormat(query["format"], out var format))
        {
            return Problems.Field("format", "must be ged, acled or geojson");
        }

        // The body is the file itself, as UTF-8 text: a form upload or a compressed or otherwise encoded body would be read as
        // garbled rows (one "header lacks …" rejection, or every row "not valid UTF-8") instead of being refused.
        if (BodyProblem(context.Request) is { } bodyProblem)
        {
            return Problems.Field("body", bodyProblem, StatusCodes.Status415UnsupportedMediaType);
        }

        // A page of another origin on the same site (which gets the session cookie) could post a plain HTML form here, as
        // text/plain or a URL-encoded form, and import reports under the signed-in analyst's name and a marking of its
        // choice. With a session, then, only the types no form can send; scripts with an access token keep curl's default.
        if (context.User.Identity?.AuthenticationType == ConcordAuthentication.CookieScheme && FormSendable(context.Request.ContentType))
        {
            return Problems.Field("body", "a signed-in browser session sends the file as text/csv, application/json or application/geo+json",
                StatusCodes.Status415UnsupportedMediaType);
        }

        // Kestrel refuses bodies over 30 MB by default, mid-read, as a server error: this endpoint counts its own limit.
        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }

        if (context.Request.ContentLength is > MaxBytes)
        {
            return Problems.Field("body", $"at most {MaxBytes / (1024 * 1024)} MB; import larger files with 'concord import' on the server", StatusCodes.Status413PayloadTooLarge);
        }

        MarkingDto? marking = query["classification"].ToString() is { Length: > 0 } classification
            // Like `concord import --releasable-to ""`: a releasableTo given empty releases to the importer's organisation
            // only; only one not given at all means the mission.
            ? new MarkingDto(classification, Split(query["releasableTo"].Count > 0 ? query["releasableTo"].ToString() : "mission"), Split(query["caveats"]))
            : null;
        if (marking is null && (query["releasableTo"].Count > 0 || query["caveats"].Count > 0))
        {
            // Marking the rows by the agreement instead would release them otherwise than the caller asked.
            return Problems.Field(query["releasableTo"].Count > 0 ? "releasableTo" : "caveats", "needs classification: give the whole marking, or none to mark by your organisation's agreement");
        }
        // A marking that cannot be read is the request's fault, named before the upload is read (not once per row).
        if (marking is not null && await MarkingErrorsAsync(marking, viewer, markings, directory, context.RequestAborted) is { Count: > 0 } markingErrors)
        {
            return Problems.Invalid(markingErrors);
        }

        if (format == ImportFormat.GeoJson && query["source"].ToString().Trim().Length == 0)
        {
            // GeoJSON features are known by the source and their own id: files numbering their features alike would be taken for one another.
            return Problems.Field("source", "is required for GeoJSON: the name of the dataset, the same for every version of it");
        }

        var source = query["source"].ToString() is { Length: > 0 } s ? s.Trim() : "upload";
        if (ImportReaders.SourceProblem(source) is { } sourceProblem)
        {
            return Problems.Field("source", sourceProblem);
        }

        if (format == ImportFormat.GeoJson && GeoJsonReader.ReferenceOf(source, "1").Length > Reports.ReportRules.MaxExternalRefLength)
        {
            // Every feature's reference would be too long: all would be refused one by one.
            return Problems.Field("source", $"names every feature's reference, which would be longer than {Reports.ReportRules.MaxExternalRefLength} characters (each ':' is written as three)");
        }

        switch (slots.TryTake(viewer.MemberId))
        {
            case ImportSlots.Busy.Member:
                return Problems.Field("body", "an import of yours is under way: send the next file once it has finished", StatusCodes.Status409Conflict);
            case ImportSlots.Busy.Server:
                context.Response.Headers.RetryAfter = "30";
                return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "The server is busy importing",
                    detail: $"{ImportSlots.MaxAtOnce} imports are under way: try again shortly.");
        }

        try
        {
            return await SpoolAndImportAsync(context, viewer, importer, format, marking, source);
        }
        finally
        {
            slots.Release(viewer.MemberId);
        }
    }

    private static async Task<Results<Ok<ImportResultDto>, ProblemHttpResult>> SpoolAndImportAsync(HttpContext context, Viewer viewer, Importer importer, ImportFormat format,
        MarkingDto? marking, string source)
    {
        // The upload is kept in a temporary file first: the readers are synchronous, and a slow link should not hold a
        // transaction open while it trickles in.
        await using var buffer = new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite, FileShare.None, 81920, FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        var chunk = new byte[81920];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + read > MaxBytes)
            {
                return Problems.Field("body", $"at most {MaxBytes / (1024 * 1024)} MB; import larger files with 'concord import' on the server", StatusCodes.Status413PayloadTooLarge);
            }

            await buffer.WriteAsync(chunk.AsMemory(0, read), context.RequestAborted);
        }

        buffer.Position = 0;
        // Asked before each batch: a member disabled, signed out or given a new password, a token revoked, or a clearance
        // lowered while a long upload is imported stops it (what it stored stays), as their next request would be refused.
        ImportSummary summary;
        try
        {
            summary = await importer.RunAsync(format, buffer, viewer, marking, source, null, context.RequestAborted,
                cancellationToken => AccessChange.NowAsync(context, viewer, cancellationToken));
        }
        catch (ImportStoppedException stopped)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "The import stopped",
                detail: $"{stopped.Message}. The rows stored before it stopped stay; importing the file again, once allowed, skips them.");
        }

        // Nothing of the file could be read (the wrong format, an empty body, no FeatureCollection): the request is refused,
        // as `concord import` exits 1 for it, rather than answered 200 with its header counted as a rejected row.
        if (summary.Unreadable is { } unreadable)
        {
            return Problems.Field("body", unreadable);
        }

        return TypedResults.Ok(new ImportResultDto(summary.Rows, summary.Created, summary.Skipped, summary.Rejected, summary.RejectedRows));
    }

    private static List<string> Split(string? text) =>
        text?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList() ?? [];

    /// <summary>
    /// What is wrong with the marking an import is given (keyed classification, releasableTo, caveats), checked once before
    /// any row is read: the API and <c>concord import</c> alike.
    /// </summary>
    internal static async Task<Dictionary<string, string[]>> MarkingErrorsAsync(MarkingDto marking, Viewer viewer, MarkingFormat markings, MissionDirectory directory, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        await directory.KnowCaveatsAsync(marking.Caveats, cancellationToken);
        if (markings.TryRead(marking, viewer, "marking", errors, out _, out var releasableTo, out _)
            && await directory.UnknownCommunityAsync(releasableTo, cancellationToken) is { } unknown)
        {
            errors["marking.releasableTo"] = [unknown];
        }

        return errors.ToDictionary(e => e.Key.Replace("marking.", "", StringComparison.Ordinal), e => e.Value);
    }
}

using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Concord.Server.Http;

/// <summary>
/// What the OpenAPI document at /openapi/v1.json cannot learn from the handlers by itself: the list filters (read from the
/// query by <see cref="ListQuery"/>, not bound as parameters), the problem answers, and how clients authenticate.
/// </summary>
internal static class ApiDescription
{
    public const string Bearer = "bearer";
    public const string Cookie = "cookie";

    /// <summary>Declares the two ways in (personal access tokens, the sign-in cookie) and asks for one of them everywhere.</summary>
    public static void Configure(OpenApiOptions options) => options.AddDocumentTransformer((document, _, _) =>
    {
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[Bearer] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "A personal access token (concord token create, or POST /api/me/tokens).",
        };
        document.Components.SecuritySchemes[Cookie] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Cookie,
            Name = "concord",
            Description = "The session cookie set by POST /api/auth/signin.",
        };
        // Relative to wherever it is read from: the document is built once and served to everyone (UseCachedDocument),
        // so it must not carry the address the first reader used.
        document.Servers = [];
        document.Security ??= [];
        document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Bearer, document)] = [] });
        document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Cookie, document)] = [] });
        return Task.CompletedTask;
    });

    /// <summary>Where the description is served (open to anyone, as the sign-in and /health are).</summary>
    public const string DocumentPath = "/openapi/v1.json";

    /// <summary>
    /// Serves the API description built once: the OpenAPI package builds it anew at each request (reflecting over every
    /// endpoint and schema, tens of milliseconds), and the address is open to anyone, who could keep the server busy with it.
    /// The endpoints do not change while the server runs.
    /// </summary>
    public static void UseCachedDocument(IApplicationBuilder app)
    {
        var cache = app.ApplicationServices.GetRequiredService<DocumentCache>();
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method) || !context.Request.Path.Equals(DocumentPath, StringComparison.OrdinalIgnoreCase))
            {
                await next(context);
                return;
            }

            if (cache.Document is { } document)
            {
                context.Response.ContentType = document.ContentType;
                context.Response.ContentLength = document.Body.Length;
                await context.Response.Body.WriteAsync(document.Body, context.RequestAborted);
                return;
            }

            var original = context.Response.Body;
            using var buffer = new MemoryStream();
            context.Response.Body = buffer;
            try
            {
                await next(context);
            }
            finally
            {
                context.Response.Body = original;
            }

            var body = buffer.ToArray();
            if (context.Response.StatusCode == StatusCodes.Status200OK)
            {
                cache.Keep(new CachedDocument(body, context.Response.ContentType));
            }

            context.Response.ContentLength = body.Length;
            await original.WriteAsync(body, context.RequestAborted);
        });
    }

    /// <summary>The API description once built, and how many times it was (once, but for first readers at the same moment).</summary>
    internal sealed class DocumentCache
    {
        private CachedDocument? _document;
        private int _built;

        public CachedDocument? Document => Volatile.Read(ref _document);

        public int Built => Volatile.Read(ref _built);

        public void Keep(CachedDocument document)
        {
            Interlocked.Increment(ref _built);
            Volatile.Write(ref _document, document);
        }
    }

    internal sealed record CachedDocument(byte[] Body, string? ContentType);

    /// <summary>
    /// Declares a JSON request body of <typeparamref name="T"/> for a handler that reads it itself (<see cref="JsonBody"/>,
    /// which names the field of every problem). Described, not enforced: <c>Accepts</c> would also route by content type,
    /// answering a wrong one with a bare 415 before the handler could name the body.
    /// </summary>
    public static RouteHandlerBuilder WithJsonBody<T>(this RouteHandlerBuilder builder) =>
        builder.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var schema = await context.GetOrCreateSchemaAsync(typeof(T), null, cancellationToken);
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = schema } },
            };
        });

    /// <summary>The filters of the report and incident lists (and their GeoJSON, map, counts and exports), and paging where <paramref name="paged"/>.</summary>
    public static TBuilder WithListParameters<TBuilder>(this TBuilder builder, bool incidents = false, bool paged = false, bool limited = true, string? limit = null)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            Add(operation, "bbox", "west,south,east,north in degrees (WGS 84)", example: "18.4,4.2,18.7,4.5");
            Add(operation, "from", "observed at or after this time (ISO 8601)", format: "date-time");
            Add(operation, "to", "observed at or before this time (ISO 8601)", format: "date-time");
            Add(operation, "category", "a taxonomy code; its sub-categories match too (GET /api/categories)", example: "acled.battles");
            Add(operation, "organization", "the code of the reporting organisation (incidents: of a report you may see)", example: "UNPOL");
            Add(operation, "q", "words the narrative (incidents: the title) contains");
            if (limited)
            {
                Add(operation, "limit", limit ?? $"at most this many items (1–{ListQuery.MaxLimit}; default {ListQuery.DefaultLimit})", type: JsonSchemaType.Integer);
            }

            if (paged)
            {
                Add(operation, "cursor", "the next value of the previous page, for the page after it");
            }

            if (incidents)
            {
                Add(operation, "status", "reported, verified or closed");
                Add(operation, "classification", "only incidents with this classification level", example: "UNCLASSIFIED");
            }

            return Task.CompletedTask;
        });

    /// <summary>The paging parameters of the coordination lists (<see cref="Coordination.CoordinationPages"/>).</summary>
    public static TBuilder WithPage<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            Add(operation, "limit", $"at most this many items (1–{Coordination.CoordinationPages.MaxLimit}; default {Coordination.CoordinationPages.DefaultLimit})", type: JsonSchemaType.Integer);
            Add(operation, "cursor", "the next value of the previous page, for the page after it");
            return Task.CompletedTask;
        });

    /// <summary>
    /// Refuses, by name, the query parameters an endpoint that reads its query itself does not take (none unless
    /// <paramref name="taken"/> names them): a misspelt filter or marking parameter is an error, not silently ignored.
    /// </summary>
    public static RouteHandlerBuilder TakesQuery(this RouteHandlerBuilder builder, params string[] taken) =>
        builder.AddEndpointFilter(async (context, next) =>
        {
            var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
            QueryReader.RefuseOthers(context.HttpContext.Request.Query, taken, "this endpoint", errors);
            return errors.Count > 0 ? Problems.Invalid(errors) : await next(context);
        });

    /// <summary>One query parameter of an operation.</summary>
    public static TBuilder WithQueryParameter<TBuilder>(this TBuilder builder, string name, string description, JsonSchemaType type = JsonSchemaType.String, bool required = false)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            Add(operation, name, description, type: type, required: required);
            return Task.CompletedTask;
        });

    private static void Add(OpenApiOperation operation, string name, string description, JsonSchemaType type = JsonSchemaType.String, string? format = null, string? example = null, bool required = false)
    {
        operation.Parameters ??= [];
        if (operation.Parameters.Any(p => p.Name == name))
        {
            return;
        }

        operation.Parameters.Add(new OpenApiParameter
        {
            Name = name,
            In = ParameterLocation.Query,
            Required = required,
            Description = description,
            Schema = new OpenApiSchema { Type = type, Format = format },
            Example = example is null ? null : JsonValue.Create(example),
        });
    }
}

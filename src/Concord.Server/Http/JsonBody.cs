using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Concord.Server.Http;

/// <summary>
/// Reads a JSON request body with a size limit, rejecting unknown fields, and turns every failure into a problem
/// naming the field (the JSON path) and the reason.
/// </summary>
internal static class JsonBody
{
    public static readonly JsonSerializerOptions Options = CreateOptions();

    public static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            // A field given twice is refused rather than the last one silently winning (what was checked may not be what is kept).
            AllowDuplicateProperties = false,
            // A number is a JSON number: "5.7" where a latitude belongs is refused naming the field, as documented (the web
            // defaults read numbers from strings).
            NumberHandling = JsonNumberHandling.Strict,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        options.Converters.Add(new NoNullElements());
        options.Converters.Add(new UnzonedAsUtc());
        return options;
    }

    /// <summary>
    /// Times in bodies are read as in query strings and imports (<see cref="Import.IsoDates"/>): ISO 8601 with upper- or
    /// lower-case T and Z and offsets as ±hh, ±hhmm or ±hh:mm, and a time written without an offset ("2026-11-01T08:00:00")
    /// is UTC. The serializer's own reading takes such a time in the server's local time zone (the time stored would
    /// depend on the host) and refuses the other forms.
    /// </summary>
    private sealed class UnzonedAsUtc : JsonConverter<DateTimeOffset>
    {
        public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.String || !Import.IsoDates.TryParse(reader.GetString(), out var value))
            {
                // The serializer completes the message ("could not be converted") and the path.
                throw new JsonException();
            }

            return value;
        }

        public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value);
    }

    public static async Task<(T? Value, IResult? Problem)> ReadAsync<T>(HttpContext context, long maxBytes)
        where T : class
    {
        var request = context.Request;
        if (request.ContentLength > maxBytes)
        {
            return (null, TooLarge(maxBytes));
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = maxBytes;
        }

        if (request.ContentType is null || !request.ContentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Problems.Field("body", "the body must be JSON (Content-Type: application/json)", StatusCodes.Status415UnsupportedMediaType));
        }

        // JSON is UTF-8: a body said to be in another charset (Windows PowerShell 5.1 sends Latin-1) would have its accented
        // letters refused as a field "must be a string".
        if (Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out var type) && OtherCharset(type) is { } charset)
        {
            return (null, Problems.Field("body", $"charset '{charset}' is not read: send the JSON as UTF-8", StatusCodes.Status415UnsupportedMediaType));
        }

        try
        {
            var value = await JsonSerializer.DeserializeAsync<T>(request.Body, Options, context.RequestAborted);
            return value is null ? (null, Problems.Field("body", "the body is empty or null")) : (value, null);
        }
        catch (JsonException e)
        {
            var full = e.Path + (e as NoNullElements.ElementException)?.Within;
            var path = string.IsNullOrEmpty(full) || full == "$" ? "body" : full.TrimStart('$', '.');
            // Text the reader cannot turn into a string (bytes that are not UTF-8, half of a surrogate pair written as an
            // escape) is said so, not as a value of the wrong type.
            if (e.InnerException is InvalidOperationException { Message: var inner }
                && (inner.Contains("transcode", StringComparison.OrdinalIgnoreCase) || inner.Contains("surrogate", StringComparison.OrdinalIgnoreCase)))
            {
                return (null, Problems.Field(path, "is not text: it holds bytes that are not UTF-8, or half of a surrogate pair (a character cut in two)"));
            }

            // A value of the wrong type is described by what the field must be; anything else (broken JSON) by the reader.
            var wrongType = e.Message.Contains("could not be converted", StringComparison.Ordinal);
            return (null, Problems.Field(path, (wrongType ? Expected(typeof(T), path) : null) ?? Reason(e)));
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, TooLarge(maxBytes));
        }
    }

    /// <summary>
    /// The charset a content type declares when it is not UTF-8 (or its subset US-ASCII), else null: bodies are read as
    /// UTF-8, and text in another charset would come out as garbled or refused fields.
    /// </summary>
    internal static string? OtherCharset(Microsoft.Net.Http.Headers.MediaTypeHeaderValue type) =>
        type.Charset.Value?.Trim('"') is { Length: > 0 } charset && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase)
            ? charset
            : null;

    /// <summary>What the field at <paramref name="path"/> (camelCase names, dots) of <paramref name="root"/> must be, from its type; null when it is not found.</summary>
    internal static string? Expected(Type root, string path)
    {
        var type = root;
        foreach (var part in path.Split('.'))
        {
            var name = part.Split('[')[0];
            var property = type.GetProperties().FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                return null;
            }

            type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            // One element type per index: route[0][1] is a number of a double[] of a list of them.
            foreach (var _ in part.Where(c => c == '['))
            {
                var element = type.IsArray ? type.GetElementType() : type.IsGenericType ? type.GetGenericArguments()[0] : null;
                if (element is null)
                {
                    return null;
                }

                type = Nullable.GetUnderlyingType(element) ?? element;
            }
        }

        return type switch
        {
            _ when type == typeof(int) || type == typeof(long) => "must be a whole number",
            _ when type == typeof(double) || type == typeof(decimal) => "must be a number",
            _ when type == typeof(DateTimeOffset) || type == typeof(DateTime) => "must be a date and time such as 2026-11-01T08:00:00Z",
            _ when type == typeof(Guid) => "must be an id such as 0192f4e0-7c1a-7b7e-9a3e-2f1d5c6b7a80",
            _ when type == typeof(bool) => "must be true or false",
            _ when type == typeof(string) => "must be a string",
            _ when type.IsArray || (type.IsGenericType && type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>))) => "must be an array",
            _ => null,
        };
    }

    /// <summary>
    /// The reason in the client's terms: System.Text.Json's messages name .NET types ("could not be converted to
    /// System.Nullable`1[System.Double]"), which say nothing to a client and something about the server's insides.
    /// </summary>
    internal static string Reason(JsonException e)
    {
        // The messages end with the path and position we already name; keep the first sentence.
        var message = e.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        message = cut > 0 ? message[..cut] : message;
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            return "is not a field of this request";
        }

        if (message.StartsWith("Duplicate property", StringComparison.Ordinal))
        {
            return "is given more than once";
        }

        const string Converted = "could not be converted to ";
        var at = message.IndexOf(Converted, StringComparison.Ordinal);
        if (at < 0)
        {
            return message.Contains(".NET", StringComparison.Ordinal) || message.Contains("System.", StringComparison.Ordinal) ? "is not valid JSON for this field" : message;
        }

        // Inside a positional record the message names the record; the inner exception names what the token was read as.
        if (e.InnerException?.Message is { } inner)
        {
            if (inner.Contains("as a number", StringComparison.Ordinal))
            {
                return "must be a number";
            }

            if (inner.Contains("as a string", StringComparison.Ordinal))
            {
                return "must be a string";
            }

            if (inner.Contains("as a boolean", StringComparison.Ordinal))
            {
                return "must be true or false";
            }
        }

        var type = message[(at + Converted.Length)..].TrimEnd('.');
        return type switch
        {
            _ when type.Contains("System.Double", StringComparison.Ordinal) || type.Contains("System.Int", StringComparison.Ordinal)
                || type.Contains("System.Decimal", StringComparison.Ordinal) => "must be a number",
            _ when type.Contains("System.DateTimeOffset", StringComparison.Ordinal) || type.Contains("System.DateTime", StringComparison.Ordinal)
                => "must be a date and time such as 2026-11-01T08:00:00Z",
            _ when type.Contains("System.Guid", StringComparison.Ordinal) => "must be an id such as 0192f4e0-7c1a-7b7e-9a3e-2f1d5c6b7a80",
            _ when type.Contains("System.Boolean", StringComparison.Ordinal) => "must be true or false",
            _ when type.Contains("System.String", StringComparison.Ordinal) && !type.Contains("List", StringComparison.Ordinal) && !type.Contains("[]", StringComparison.Ordinal)
                => "must be a string",
            _ when type.Contains("List", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal) => "must be an array",
            _ => "has a value of the wrong type (or a part of it does): see the API description",
        };
    }

    private static ProblemHttpResult TooLarge(long maxBytes) =>
        Problems.Field("body", $"the body is larger than the {maxBytes} bytes allowed", StatusCodes.Status413PayloadTooLarge);
}

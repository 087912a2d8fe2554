using System.Text.Json;
using System.Text.Json.Serialization;

namespace Concord.Server.Http;

/// <summary>
/// Lists in request bodies hold no null: <c>"actionItems": [null]</c> or <c>"parties": [null]</c> is refused as the
/// list's field ("must not hold null") instead of reaching code that reads each element. Reads and writes lists of
/// reference types (<see cref="IReadOnlyList{T}"/>, the type request records use) element by element, as the
/// serializer would, so what is written (a request's hash) is unchanged.
/// </summary>
internal sealed class NoNullElements : JsonConverterFactory
{
    /// <summary>A failure inside a list's element: <see cref="JsonException.Path"/> is the list's, <see cref="Within"/> the rest ("[2].title").</summary>
    internal sealed class ElementException(string message, string within) : JsonException(message)
    {
        public string Within { get; } = within;
    }

    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(IReadOnlyList<>) && !typeToConvert.GetGenericArguments()[0].IsValueType;

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(Converter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;

    private sealed class Converter<T> : JsonConverter<IReadOnlyList<T>>
    {
        public override IReadOnlyList<T>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                throw new JsonException($"The JSON value could not be converted to {typeToConvert}.");
            }

            var items = new List<T>();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (reader.TokenType == JsonTokenType.Null)
                {
                    throw new JsonException($"must not hold null (item {items.Count})");
                }

                try
                {
                    items.Add(JsonSerializer.Deserialize<T>(ref reader, options)!);
                }
                catch (JsonException e)
                {
                    // The element was read on its own, so its path starts at the element: the serializer gives this
                    // exception the list's path, and the element's index and path within it follow.
                    var within = (e.Path is null or "$" ? "" : e.Path[1..]) + (e as ElementException)?.Within;
                    throw new ElementException(e.Message, $"[{items.Count}]{within}");
                }
            }

            return items;
        }

        public override void Write(Utf8JsonWriter writer, IReadOnlyList<T> value, JsonSerializerOptions options)
        {
            writer.WriteStartArray();
            foreach (var item in value)
            {
                JsonSerializer.Serialize(writer, item, options);
            }

            writer.WriteEndArray();
        }
    }
}

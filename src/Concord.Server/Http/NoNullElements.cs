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
                items.Add(reader.TokenType == JsonTokenType.Null
                    ? throw new JsonException($"must not hold null (item {items.Count})")
                    : JsonSerializer.Deserialize<T>(ref reader, options)!);
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

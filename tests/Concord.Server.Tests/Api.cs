using System.Net.Http.Json;
using System.Text.Json;

namespace Concord.Server.Tests;

/// <summary>Small helpers for talking JSON to the API.</summary>
internal static class Api
{
    public static readonly DateTimeOffset Recent = new(2026, 11, 1, 8, 30, 0, TimeSpan.Zero);

    public static object Report(
        Guid? id = null,
        string category = "acled.battles.armed-clash",
        double? latitude = null,
        double? longitude = null,
        string narrative = "Armed clash reported near Bambari market.",
        object? marking = null,
        DateTimeOffset? observedAt = null,
        object? source = null)
    {
        var place = latitude is { } lat && longitude is { } lon ? (Latitude: lat, Longitude: lon) : Spot();
        return new
        {
            id = id ?? Guid.NewGuid(),
            observedAt = observedAt ?? Recent,
            observedPrecision = "hour",
            location = new { latitude = place.Latitude, longitude = place.Longitude, precisionMeters = 500.0 },
            category,
            casualties = new { killedCivilian = new { low = 1, best = 2, high = 4 }, killedOther = new { best = 1 } },
            narrative,
            language = "en",
            actors = new[] { "Armed group A", "Armed group B" },
            source = source ?? new { reliability = "B", credibility = 2, description = "Patrol observation" },
            marking,
        };
    }

    private static int _spots;

    /// <summary>
    /// A place of its own for a report whose test does not care where it happened: 15 km from any other, so that fusion
    /// does not take two unrelated test reports for one event.
    /// </summary>
    public static (double Latitude, double Longitude) Spot()
    {
        var n = Interlocked.Increment(ref _spots);
        return (2.5 + (n % 50 * 0.15), 14.5 + (n / 50 % 70 * 0.15));
    }

    public static object Marking(string classification, string[] releasableTo, string[]? caveats = null) =>
        new { classification, releasableTo, caveats = caveats ?? [] };

    public static async Task<JsonElement> Json(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonDocument.Parse(text.Length == 0 ? "null" : text).RootElement.Clone();
    }

    public static async Task<(HttpResponseMessage Response, JsonElement Body)> PostJson(this HttpClient client, string path, object body)
    {
        var response = await client.PostAsJsonAsync(path, body);
        return (response, await response.Json());
    }

    public static async Task<(HttpResponseMessage Response, JsonElement Body)> GetJson(this HttpClient client, string path)
    {
        var response = await client.GetAsync(path);
        return (response, await response.Json());
    }

    /// <summary>The operations the change feed shows this client for one record, reading the whole feed page by page.</summary>
    public static async Task<List<string>> ChangesOfAsync(this HttpClient client, Guid id) =>
        [.. (await ChangeRowsOfAsync(client, id)).Select(c => c.Operation)];

    /// <summary>The changes (sequence and operation) the change feed shows this client for one record, reading the whole feed page by page.</summary>
    public static async Task<List<(long Sequence, string Operation)>> ChangeRowsOfAsync(this HttpClient client, Guid id)
    {
        var operations = new List<(long Sequence, string Operation)>();
        long after = 0;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"the change feed stayed held at {after}");
            }

            var (_, page) = await client.GetJson($"/api/changes?after={after}&limit=1000");
            operations.AddRange(page.GetProperty("items").EnumerateArray().Where(c => c.GetProperty("id").GetGuid() == id)
                .Select(c => (c.GetProperty("sequence").GetInt64(), c.GetProperty("operation").GetString()!)));
            var next = page.GetProperty("next").GetInt64();
            if (page.GetProperty("held").GetBoolean())
            {
                // On PostgreSQL, committed changes wait behind a gap a refused save left, until the feed has judged it.
                await Task.Delay(100);
            }
            else if (next == after)
            {
                return operations;
            }

            after = next;
        }
    }

    public static string[] ErrorFields(this JsonElement problem) =>
        problem.TryGetProperty("errors", out var errors) ? errors.EnumerateObject().Select(p => p.Name).Order().ToArray() : [];

    /// <summary>A request body as a dictionary, to leave a field out or set one the helpers do not take.</summary>
    public static Dictionary<string, object?> Fields(object report, string? without = null, int? killed = null, string? tlp = null)
    {
        var fields = JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(report, JsonSerializerOptions.Web))!;
        if (without is not null)
        {
            fields.Remove(without);
        }

        if (killed is { } k)
        {
            fields["casualties"] = new { killedOther = new { best = k } };
        }

        if (tlp is not null)
        {
            fields["tlp"] = tlp;
        }

        return fields;
    }
}

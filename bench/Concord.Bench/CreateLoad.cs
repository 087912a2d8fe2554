using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Concord.Bench;

/// <summary>
/// Report creation over HTTP from this separate process: C connections with keep-alive, each sending one POST at a time
/// (closed loop), for a fixed time after a warm-up. Every request carries a new id, so every one is a real insert.
/// </summary>
internal static class CreateLoad
{
    public static async Task<string> RunAsync(Uri server, string token, int connections, TimeSpan warmup, TimeSpan duration)
    {
        var clients = Enumerable.Range(0, connections).Select(_ =>
        {
            var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
            {
                BaseAddress = server,
                DefaultRequestVersion = HttpVersion.Version11,
            };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return client;
        }).ToList();

        var measuring = false;
        var stop = false;
        var perWorker = clients.Select(_ => new List<double>(200_000)).ToList();
        var errors = 0;
        var workers = clients.Select((client, index) => Task.Run(async () =>
        {
            var random = new Random(index);
            var samples = perWorker[index];
            while (!Volatile.Read(ref stop))
            {
                var body = Body(random);
                var started = Stopwatch.GetTimestamp();
                using var response = await client.PostAsync("/api/reports", new StringContent(body, Encoding.UTF8, "application/json"));
                await response.Content.LoadIntoBufferAsync();
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (response.StatusCode != HttpStatusCode.Created)
                {
                    Interlocked.Increment(ref errors);
                }
                else if (Volatile.Read(ref measuring))
                {
                    samples.Add(elapsed);
                }
            }
        })).ToList();

        await Task.Delay(warmup);
        Volatile.Write(ref measuring, true);
        var clock = Stopwatch.StartNew();
        await Task.Delay(duration);
        Volatile.Write(ref measuring, false);
        var seconds = clock.Elapsed.TotalSeconds;
        Volatile.Write(ref stop, true);
        await Task.WhenAll(workers);

        var all = new Measurements();
        foreach (var samples in perWorker)
        {
            all.AddRange(samples);
        }

        var rate = all.Count / seconds;
        return string.Create(CultureInfo.InvariantCulture,
            $"| {connections} | {all.Count} | {rate:0} | {Measurements.Ms(all.Percentile(50))} | {Measurements.Ms(all.Percentile(99))} | {errors} |");
    }

    private static string Body(Random random)
    {
        var latitude = 4 + (random.NextDouble() * 6);
        var longitude = 16 + (random.NextDouble() * 8);
        var lat = latitude.ToString("0.00000", CultureInfo.InvariantCulture);
        var lon = longitude.ToString("0.00000", CultureInfo.InvariantCulture);
        return "{\"id\":\"" + Guid.NewGuid() + "\",\"observedAt\":\"2026-11-01T08:30:00Z\",\"observedPrecision\":\"hour\"," +
            "\"location\":{\"latitude\":" + lat + ",\"longitude\":" + lon + ",\"precisionMeters\":500}," +
            "\"category\":\"acled.battles.armed-clash\",\"casualties\":{\"killedCivilian\":{\"low\":1,\"best\":2,\"high\":4}}," +
            "\"narrative\":\"Armed clash reported near the market; two civilians killed.\",\"language\":\"en\"," +
            "\"source\":{\"reliability\":\"B\",\"credibility\":2,\"description\":\"Patrol observation\"}," +
            "\"marking\":{\"classification\":\"CONFIDENTIAL\",\"releasableTo\":[\"kind:military\",\"org:JOC\"],\"caveats\":[]}}";
    }
}

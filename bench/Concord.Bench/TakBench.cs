using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Bench;

/// <summary>
/// TAK load over TLS on loopback against a running <c>concord serve</c>: inbound events routed per second, fan-out latency
/// to 200 connected devices, memory over a soak, and CPU with 200 idle devices. Devices are TLS clients with certificates
/// issued by the server's own CA (the same files), all for one member so that every device may see every other.
/// </summary>
internal static class TakBench
{
    private const string Member = "force.g2";

    public static async Task<List<string>> RunAsync(string dataDirectory, int port, int serverPid, int soakSeconds, TextWriter log)
    {
        var certificates = await IssueAsync(dataDirectory, 210);
        var authority = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(Path.GetFullPath(dataDirectory), "keys", "tak", "ca.pfx"), null);
        var next = 0;
        X509Certificate2 Certificate() => certificates[next++];
        var rows = new List<string>();

        // 1. Throughput: four senders as fast as they can, one device receiving everything.
        await log.WriteLineAsync("TAK: inbound throughput…");
        await using (var receiver = await Device.ConnectAsync(port, Certificate(), authority))
        {
            var senders = new List<Device>();
            for (var i = 0; i < 4; i++)
            {
                senders.Add(await Device.ConnectAsync(port, Certificate(), authority));
            }

            await Task.Delay(1000);
            var stop = DateTime.UtcNow.AddSeconds(12);
            var sending = senders.Select((s, i) => Task.Run(() => s.BlastAsync($"tput{i}", stop))).ToList();
            await Task.Delay(2000);
            var start = receiver.Events;
            var clock = Stopwatch.StartNew();
            await Task.Delay(8000);
            var routed = (receiver.Events - start) / clock.Elapsed.TotalSeconds;
            var sent = await Task.WhenAll(sending);
            rows.Add(string.Create(CultureInfo.InvariantCulture, $"| inbound events routed per second (4 senders, 1 receiver) | {routed:N0}/s | ≥ 50,000/s | {routed / 50_000:0.00} | {sent.Sum() / 12.0:N0}/s offered |"));
            foreach (var s in senders)
            {
                await s.DisposeAsync();
            }
        }

        // 2. Fan-out latency: 1,000 messages a second from one device to 200 others.
        await log.WriteLineAsync("TAK: fan-out latency to 200 devices…");
        var receivers = new List<Device>();
        for (var i = 0; i < 200; i++)
        {
            receivers.Add(await Device.ConnectAsync(port, Certificate(), authority));
        }

        await using (var sender = await Device.ConnectAsync(port, Certificate(), authority))
        {
            await Task.Delay(2000);
            foreach (var r in receivers)
            {
                r.Recording = true;
            }

            await log.WriteLineAsync("TAK: 201 devices connected; one sends 1,000 msg/s for 10 s…");

            await sender.PacedAsync("lat", 1000, TimeSpan.FromSeconds(10));
            await Task.Delay(1000);
            var latencies = new Measurements();
            foreach (var r in receivers)
            {
                r.Recording = false;
                latencies.AddRange(r.Latencies);
            }

            var expected = 200 * 10_000;
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| fan-out latency at 1,000 msg/s to 200 devices | p50 {Measurements.Ms(latencies.Percentile(50))} ms, p99 {Measurements.Ms(latencies.Percentile(99))} ms | p99 < 5 ms | {5 / latencies.Percentile(99):0.00} | {latencies.Count:N0} of {expected:N0} deliveries measured |"));
        }

        // 3. Idle: 200 connected devices, nothing sent.
        await log.WriteLineAsync("TAK: idle CPU with 200 devices…");
        await Task.Delay(3000);
        var cpuBefore = CpuSeconds(serverPid);
        var idleClock = Stopwatch.StartNew();
        await Task.Delay(30_000);
        var idleCpu = (CpuSeconds(serverPid) - cpuBefore) / idleClock.Elapsed.TotalSeconds * 100;
        rows.Add(string.Create(CultureInfo.InvariantCulture, $"| server CPU with 200 idle devices connected (30 s) | {idleCpu:0.00} % of one core | near zero | — | /proc/PID/stat |"));

        // 4. Soak: 10,000 messages a second for a while; memory sampled every 10 s after a minute of warm-up.
        await log.WriteLineAsync($"TAK: soak at 10,000 msg/s for {soakSeconds} s…");
        foreach (var r in receivers.Skip(10))
        {
            await r.DisposeAsync();
        }

        await using (var sender = await Device.ConnectAsync(port, Certificate(), authority))
        {
            var samples = new List<(double Minutes, double Mb)>();
            var soak = Task.Run(() => sender.PacedAsync("soak", 10_000, TimeSpan.FromSeconds(soakSeconds)));
            var clock = Stopwatch.StartNew();
            while (!soak.IsCompleted)
            {
                await Task.Delay(10_000);
                if (clock.Elapsed.TotalSeconds >= 60 || soakSeconds < 120)
                {
                    samples.Add((clock.Elapsed.TotalMinutes, RssMb(serverPid)));
                }
            }

            await soak;
            var slope = Slope(samples);
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| memory growth, soak at 10,000 msg/s for {soakSeconds} s (10 receivers) | {slope:+0.00;-0.00} MB/min (RSS {samples.FirstOrDefault().Mb:0} → {samples.LastOrDefault().Mb:0} MB) | ≤ 1 MB/min | {(slope <= 0 ? "—" : (1 / slope).ToString("0.00", CultureInfo.InvariantCulture))} | least-squares slope of RSS after 1 min |"));
        }

        foreach (var r in receivers.Take(10))
        {
            await r.DisposeAsync();
        }

        return rows;
    }

    private static async Task<List<X509Certificate2>> IssueAsync(string dataDirectory, int count)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddConcordCore(new ServerOptions { Store = StoreOptions.Sqlite(dataDirectory), DataDirectory = dataDirectory });
        await using var provider = services.BuildServiceProvider();
        var tak = provider.GetRequiredService<TakCertificates>();
        await using var scope = provider.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await db.Members.SingleAsync(m => m.UserName == Member);
        var list = new List<X509Certificate2>();
        for (var i = 0; i < count; i++)
        {
            var certificate = tak.IssueClient(Member, TimeSpan.FromDays(1));
            db.DeviceCertificates.Add(new DeviceCertificate
            {
                Thumbprint = TakCertificates.Thumbprint(certificate),
                MemberId = member.Id,
                Subject = certificate.Subject,
                Serial = certificate.SerialNumber,
                IssuedAt = DateTime.UtcNow,
                ExpiresAt = DateTime.UtcNow.AddDays(1),
            });
            list.Add(certificate);
        }

        await db.SaveChangesAsync();
        return list;
    }

    private static double CpuSeconds(int pid)
    {
        var fields = File.ReadAllText($"/proc/{pid}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // After the command name: state is field 3, utime field 14, stime field 15 (1-based over the whole line).
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static double RssMb(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }

    private static double Slope(List<(double X, double Y)> points)
    {
        if (points.Count < 2)
        {
            return double.NaN;
        }

        var mx = points.Average(p => p.X);
        var my = points.Average(p => p.Y);
        return points.Sum(p => (p.X - mx) * (p.Y - my)) / points.Sum(p => (p.X - mx) * (p.X - mx));
    }

    /// <summary>A benchmark device: TLS, writes pre-built XML events, counts what it receives and reads latency stamps.</summary>
    private sealed class Device : IAsyncDisposable
    {
        private static readonly byte[] EventTag = "<event"u8.ToArray();
        private static readonly byte[] Stamp = "<remarks>T="u8.ToArray();
        private readonly TcpClient _tcp;
        private readonly SslStream _ssl;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _reader;
        private long _events;

        private Device(TcpClient tcp, SslStream ssl)
        {
            _tcp = tcp;
            _ssl = ssl;
            _reader = Task.Run(ReadAsync);
        }

        public long Events => Interlocked.Read(ref _events);

        public volatile bool Recording;

        public List<double> Latencies { get; } = [];

        public static async Task<Device> ConnectAsync(int port, X509Certificate2 certificate, X509Certificate2 authority)
        {
            var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync("127.0.0.1", port);
            var ssl = new SslStream(tcp.GetStream(), false, (_, server, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(authority);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return server is X509Certificate2 c && chain.Build(c);
            });
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", ClientCertificates = [certificate] });
            return new Device(tcp, ssl);
        }

        private static string Event(string uid, DateTime time, long stamp) =>
            string.Create(CultureInfo.InvariantCulture,
                $"<event version=\"2.0\" uid=\"{uid}\" type=\"a-f-G-U-C\" time=\"{time:yyyy-MM-ddTHH:mm:ss.fffffffZ}\" start=\"{time:yyyy-MM-ddTHH:mm:ss.fffffffZ}\" stale=\"{time.AddMinutes(5):yyyy-MM-ddTHH:mm:ss.fffZ}\" how=\"m-g\">" +
                $"<point lat=\"5.76\" lon=\"20.67\" hae=\"9999999.0\" ce=\"9999999.0\" le=\"9999999.0\"/><detail><takv device=\"bench\" platform=\"bench\" os=\"linux\" version=\"1\"/>" +
                $"<contact callsign=\"{uid}\" endpoint=\"*:-1:stcp\"/><remarks>T={stamp}</remarks></detail></event>\n");

        /// <summary>Sends as fast as the connection takes them until <paramref name="stop"/>; returns how many were sent.</summary>
        public async Task<long> BlastAsync(string prefix, DateTime stop)
        {
            long sent = 0;
            var time = DateTime.UtcNow;
            var builder = new StringBuilder();
            while (DateTime.UtcNow < stop)
            {
                builder.Clear();
                for (var i = 0; i < 200; i++)
                {
                    // Every event is newer than the last of its uid, so none is dropped as a replay.
                    time = time.AddTicks(10);
                    builder.Append(Event($"{prefix}-{i % 50}", time, 0));
                }

                await _ssl.WriteAsync(Encoding.UTF8.GetBytes(builder.ToString()));
                sent += 200;
            }

            await _ssl.FlushAsync();
            return sent;
        }

        /// <summary>Sends <paramref name="perSecond"/> events a second, in slices of 10 ms, each stamped with the send time.</summary>
        public async Task PacedAsync(string prefix, int perSecond, TimeSpan duration)
        {
            var perSlice = Math.Max(1, perSecond / 100);
            // A slice every 10 ms for the whole duration, no more: the one due at the end itself would be one too many.
            var total = (long)(duration / TimeSpan.FromMilliseconds(10));
            var clock = Stopwatch.StartNew();
            var time = DateTime.UtcNow;
            long slices = 0;
            var builder = new StringBuilder();
            while (slices < total)
            {
                var due = TimeSpan.FromMilliseconds(slices * 10);
                if (clock.Elapsed < due)
                {
                    await Task.Delay(due - clock.Elapsed);
                }

                builder.Clear();
                for (var i = 0; i < perSlice; i++)
                {
                    time = time.AddTicks(10);
                    builder.Append(Event($"{prefix}-{i % 20}", time, Stopwatch.GetTimestamp()));
                }

                await _ssl.WriteAsync(Encoding.UTF8.GetBytes(builder.ToString()));
                slices++;
            }
        }

        private async Task ReadAsync()
        {
            var buffer = new byte[64 * 1024];
            var carry = 0;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    var read = await _ssl.ReadAsync(buffer.AsMemory(carry), _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    var received = Stopwatch.GetTimestamp();
                    var span = buffer.AsSpan(0, carry + read);
                    var last = span.LastIndexOf((byte)'\n');
                    var complete = last < 0 ? ReadOnlySpan<byte>.Empty : span[..(last + 1)];
                    var count = 0;
                    var at = 0;
                    int found;
                    while ((found = complete[at..].IndexOf(EventTag)) >= 0)
                    {
                        count++;
                        at += found + EventTag.Length;
                    }

                    Interlocked.Add(ref _events, count);
                    if (Recording)
                    {
                        at = 0;
                        while ((found = complete[at..].IndexOf(Stamp)) >= 0)
                        {
                            at += found + Stamp.Length;
                            if (Utf8Parser.TryParse(complete[at..], out long stamp, out _) && stamp > 0)
                            {
                                Latencies.Add(Stopwatch.GetElapsedTime(stamp, received).TotalMilliseconds);
                            }
                        }
                    }

                    var rest = span[(last + 1)..];
                    rest.CopyTo(buffer);
                    carry = rest.Length;
                    if (carry == buffer.Length)
                    {
                        carry = 0;
                    }
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _ssl.Dispose();
            _tcp.Dispose();
            try
            {
                await _reader;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
            }

            _stop.Dispose();
        }
    }
}

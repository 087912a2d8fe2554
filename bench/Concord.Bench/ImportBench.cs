using System.Diagnostics;
using System.Globalization;
using System.Text;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Fusion;
using Concord.Server.Hosting;
using Concord.Server.Import;
using Concord.Server.Organizations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Concord.Bench;

/// <summary>
/// Import and fusion at scale: a GED-shaped CSV of <c>rows</c> events made from the real CAR file (each real event
/// repeated with new ids, shifted by whole years so that copies are distinct events), imported into an empty store; then
/// ACLED-style accounts of a fifth of those events by another organisation, which fusion must match. Reports rows per
/// second, fusion's decision time, and peak memory.
/// </summary>
internal static class ImportBench
{
    public static async Task<List<string>> RunAsync(StoreOptions store, string work, int rows, TextWriter log)
    {
        Directory.CreateDirectory(work);
        var ged = Path.Combine(work, "ged.csv");
        var acled = Path.Combine(work, "acled.csv");
        var (events, duplicates) = WriteFiles(ged, acled, rows);
        await log.WriteLineAsync($"import bench: {events:N0} GED rows, {duplicates:N0} ACLED accounts into {store.Describe()}");

        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddConcordCore(new ServerOptions { Store = store, DataDirectory = work });
        await using var provider = services.BuildServiceProvider();
        await provider.PrepareStoreAsync(CancellationToken.None);
        var time = TimeProvider.System;
        await using (var scope = provider.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            await OrganizationAdmin.AddAsync(db, "JMAC", "Joint Mission Analysis Centre", "intelligence", null, time, CancellationToken.None);
            await OrganizationAdmin.AddAsync(db, "UNPOL", "UN Police", "police", null, time, CancellationToken.None);
            // The admin verbs leave saving to their callers (which save with the audit entry).
            await db.SaveChangesAsync();
            await provider.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
            foreach (var (user, org) in new[] { ("analyst", "JMAC"), ("police", "UNPOL") })
            {
                await MemberAdmin.AddAsync(db, new NewMember(user, org, null, ["analyst", "reporter"], "CONFIDENTIAL", [], "a-long-password-1"),
                    provider.GetRequiredService<Server.Access.ClassificationScheme>(), provider.GetRequiredService<Server.Access.CaveatRegistry>(), time, CancellationToken.None);
            }

            await db.SaveChangesAsync();
        }

        await provider.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, CancellationToken.None);
        var viewers = provider.GetRequiredService<Server.Access.ViewerDirectory>();
        var importer = provider.GetRequiredService<Importer>();
        var fusion = provider.GetRequiredService<FusionEngine>();
        var marking = new Server.Access.MarkingDto("UNCLASSIFIED", ["mission"], []);

        async Task<(ImportSummary Summary, TimeSpan Fusion)> Import(ImportFormat format, string path, string user)
        {
            await using var scope = provider.CreateAsyncScope();
            var id = scope.ServiceProvider.GetRequiredService<ConcordDb>().Members.Single(m => m.UserName == user).Id;
            var author = (await viewers.ForMemberAsync(id, CancellationToken.None))!;
            var before = fusion.Statistics.Elapsed;
            await using var file = File.OpenRead(path);
            var summary = await importer.RunAsync(format, file, author, marking, "bench", null, CancellationToken.None);
            return (summary, fusion.Statistics.Elapsed - before);
        }

        using var memory = new MemorySampler();
        var (events1, fusion1) = await Import(ImportFormat.Ged, ged, "analyst");
        // What the process holds after a file (the fusion index, caches), apart from the garbage a collector leaves for later.
        var liveAfterEvents = GC.GetTotalMemory(forceFullCollection: true) / (1024.0 * 1024);
        var joinedBefore = fusion.Statistics.Joined;
        var (accounts, fusion2) = await Import(ImportFormat.Acled, acled, "police");
        var liveAfterAccounts = GC.GetTotalMemory(forceFullCollection: true) / (1024.0 * 1024);
        var joined = fusion.Statistics.Joined - joinedBefore;
        // What a server starting on this store (or the writer after a failed batch) does before its first decision: every
        // open incident into fusion's index, every narrative anyone may read tokenised for the words' rarity.
        var reload = Stopwatch.StartNew();
        fusion.Invalidate();
        await using (var scope = provider.CreateAsyncScope())
        {
            await fusion.PrepareAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), [], CancellationToken.None);
        }

        reload.Stop();
        var peak = Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024);
        var (own, mapped, committed) = memory.Peaks;
        string Rate(ImportSummary s) => (s.Rows / s.Elapsed.TotalSeconds).ToString("N0", CultureInfo.InvariantCulture);
        var perMillion = (fusion1 + fusion2).TotalSeconds / Math.Max(1, events1.Created + accounts.Created) * 1_000_000;
        return
        [
            $"| {store.Kind} | import GED CSV | {events1.Rows:N0} rows, {events1.Created:N0} created, {events1.Rejected} rejected | {Rate(events1)} rows/s | ≥ 100,000 rows/s | {100_000 / (events1.Rows / events1.Elapsed.TotalSeconds):0.0}× short |",
            $"| {store.Kind} | import ACLED accounts (fused) | {accounts.Rows:N0} rows, {joined:N0} joined an event's incident | {Rate(accounts)} rows/s | | |",
            $"| {store.Kind} | fusion decisions | {(fusion1 + fusion2).TotalSeconds:0.0} s for {events1.Created + accounts.Created:N0} reports = {perMillion:0} s per million; {fusion.Indexed:N0} incidents indexed; GED {fusion1.TotalSeconds:0.0} s, ACLED {fusion2.TotalSeconds:0.0} s; the collector paused the whole process {GC.GetTotalPauseDuration().TotalSeconds:0.0} s in all ({GC.CollectionCount(2)} full collections) | | ≤ 60 s per million | {perMillion / 60:0.00} |",
            $"| {store.Kind} | fusion index load (a server's start) | {reload.Elapsed.TotalSeconds:0.0} s: {fusion.Indexed:N0} open incidents indexed, {fusion.Rarity.Reports:N0} narratives anyone may read counted for the words' rarity | | |",
            $"| {store.Kind} | peak memory (whole process) | {peak:N0} MB resident at peak; sampled each 0.5 s: at most {own:N0} MB the process's own (heap, stacks, the store's page cache; at most {committed:N0} MB of it committed by the collector), at most {mapped:N0} MB pages of files mapped in (code and libraries); {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC; live objects after a full collection {liveAfterEvents:N0} MB after the events, {liveAfterAccounts:N0} MB after the accounts | | < 2,048 MB | {peak / 2048:0.00} |",
        ];
    }

    /// <summary>The real events repeated (new ids, whole years later) to the row count; every fifth also as an ACLED account.</summary>
    private static (int Events, int Duplicates) WriteFiles(string gedPath, string acledPath, int rows)
    {
        var source = Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv");
        List<string[]> records;
        using (var reader = new StreamReader(source))
        {
            records = [.. Server.Ucdp.CsvRecords.Read(reader).Select(r => r.Fields)];
        }

        var header = records[0];
        int Column(string name) => Array.IndexOf(header, name);
        var (id, start, end, lat, lon, violence, sideA, sideB, best) = (Column("id"), Column("date_start"), Column("date_end"), Column("latitude"), Column("longitude"),
            Column("type_of_violence"), Column("side_a"), Column("side_b"), Column("best"));
        using var ged = new StreamWriter(gedPath, false, new UTF8Encoding(false));
        using var acled = new StreamWriter(acledPath, false, new UTF8Encoding(false));
        ged.WriteLine(string.Join(',', header));
        acled.WriteLine("event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,latitude,longitude,geo_precision,fatalities,notes");
        var events = 0;
        var duplicates = 0;
        for (var copy = 0; events < rows; copy++)
        {
            foreach (var record in records.Skip(1))
            {
                if (events >= rows)
                {
                    break;
                }

                var fields = (string[])record.Clone();
                // A week earlier per copy: further apart than any fusion window, so copies are other events.
                string Shifted(string text) => DateTime.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal)
                    .AddDays(-7 * copy).ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture);
                fields[id] = (long.Parse(fields[id], CultureInfo.InvariantCulture) + (copy * 10_000_000L)).ToString(CultureInfo.InvariantCulture);
                fields[start] = Shifted(fields[start]);
                fields[end] = Shifted(fields[end]);
                ged.WriteLine(string.Join(',', fields.Select(Quote)));
                events++;
                if (events % 5 == 0)
                {
                    var type = fields[violence] == "3" ? "Violence against civilians,Attack" : "Battles,Armed clash";
                    acled.WriteLine(string.Join(',', [$"B{fields[id]}", fields[start][..10], "1", type, Quote(fields[sideA]), Quote(fields[sideB]),
                        (double.Parse(fields[lat], CultureInfo.InvariantCulture) + 0.01).ToString(CultureInfo.InvariantCulture),
                        fields[lon], "1", fields[best], Quote($"{fields[sideA]} and {fields[sideB]} fought; {fields[best]} killed")]));
                    duplicates++;
                }
            }
        }

        return (events, duplicates);
    }

    private static string Quote(string field) => field.Contains(',', StringComparison.Ordinal) || field.Contains('"', StringComparison.Ordinal) || field.Contains('\n', StringComparison.Ordinal)
        ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""
        : field;
}

/// <summary>
/// Samples the process's resident memory twice a second from /proc/self/status, split into its own (anonymous) pages and
/// pages of mapped files (code and libraries; the SQLite file's pages too when connections read it through a memory map,
/// as they did until 2026-12-06), which are the operating system's file cache rather than memory the process allocated.
/// </summary>
internal sealed class MemorySampler : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private double _own;
    private double _mapped;
    private double _committed;

    public MemorySampler() => _loop = Task.Run(async () =>
    {
        while (!_stop.IsCancellationRequested)
        {
            Sample();
            try
            {
                await Task.Delay(500, _stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    });

    /// <summary>
    /// The largest own (RssAnon) and mapped-file (RssFile + RssShmem) sizes seen, and the most memory the collector had
    /// committed for the managed heap, in MB.
    /// </summary>
    public (double Own, double Mapped, double Committed) Peaks
    {
        get
        {
            Sample();
            return (_own, _mapped, _committed);
        }
    }

    private void Sample()
    {
        double anon = 0, file = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                anon = Kilobytes(line) / 1024;
            }
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal) || line.StartsWith("RssShmem:", StringComparison.Ordinal))
            {
                file += Kilobytes(line) / 1024;
            }
        }

        var committed = GC.GetGCMemoryInfo(GCKind.Any).TotalCommittedBytes / (1024.0 * 1024);
        lock (_stop)
        {
            _own = Math.Max(_own, anon);
            _mapped = Math.Max(_mapped, file);
            _committed = Math.Max(_committed, committed);
        }
    }

    private static double Kilobytes(string line) =>
        double.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _stop.Cancel();
        _loop.Wait();
        _stop.Dispose();
    }
}

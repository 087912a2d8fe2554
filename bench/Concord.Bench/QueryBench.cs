using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Concord.Server.Demo;
using Concord.Server.Hosting;
using Concord.Server.Http;
using Concord.Server.Sharing;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Concord.Bench;

/// <summary>
/// Viewport queries over a store of many reports: the list query with and without the visibility predicate (the store's
/// own time, through EF, as the endpoint builds it), and the HTTP list and GeoJSON endpoints end to end.
/// </summary>
internal static class QueryBench
{
    private const int Rounds = 6;

    private static readonly MemoryStream Body = new(16 << 20);

    public static async Task<List<string>> RunAsync(StoreOptions store, int count, TextWriter log)
    {
        var app = ConcordApp.Build(new ServerOptions
        {
            Store = store,
            Urls = "http://127.0.0.1:0",
            DataDirectory = Path.GetTempPath(),
            MinimumLogLevel = LogLevel.Warning,
        });
        await app.Services.PrepareStoreAsync(CancellationToken.None);
        await DemoMission.SeedAsync(app.Services, TextWriter.Null, CancellationToken.None);
        var time = TimeProvider.System;
        Guid organizationId;
        Guid memberId;
        string token;
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var member = await db.Members.SingleAsync(m => m.UserName == "force.g2");
            await EnsureGroupAsync(db, "EW-NET", ["FORCE", "JOC"]);
            await EnsureGroupAsync(db, "PWG", ["FORCE", "UNPOL", "OCHA"]);
            // Written past the admin endpoints: the directory may hold the member as the demo's seeding read them.
            app.Services.GetRequiredService<ViewerDirectory>().Invalidate();
            memberId = member.Id;
            organizationId = member.OrganizationId;
            var existing = await db.Reports.CountAsync();
            if (existing < count)
            {
                await log.WriteLineAsync($"seeding {count - existing:N0} synthetic reports into {store.Describe()}");
                await SyntheticReports.WriteAsync(db, store.Kind, count - existing, organizationId, memberId, log);
            }

            if (store.Kind == StoreKind.Postgres)
            {
                // What autovacuum does to a store at rest: without the visibility map it sets, PostgreSQL's index-only
                // scans visit the table for every row anyway (and a migration's rewrite of a column clears it).
                await db.Database.ExecuteSqlRawAsync("VACUUM (ANALYZE) reports, incidents, incident_reports");
            }

            token = (await AccessTokens.CreateAsync(db, app.Services.GetRequiredService<Concord.Server.Audit.AuditChain>(), null, member, "bench", TimeSpan.FromDays(1), time, CancellationToken.None)).Secret;
        }

        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        using var http = new HttpClient { BaseAddress = address };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var viewer = (await app.Services.GetRequiredService<ViewerDirectory>().ForMemberAsync(memberId, CancellationToken.None))!;
        if (viewer.Groups.Count != 2)
        {
            throw new InvalidOperationException("the bench viewer should belong to two sharing groups");
        }

        var (viewports, dense) = await ViewportsAsync(app.Services);
        var filtered = new Measurements();
        var countFiltered = new Measurements();
        var countUnfiltered = new Measurements();
        var denseHttp = new Measurements();
        var unfiltered = new Measurements();
        var listHttp = new Measurements();
        var geoHttp = new Measurements();
        var rows = new List<int>();
        var features = new List<int>();

        // One warm-up pass, then the measured rounds, interleaving the variants so caches treat them alike.
        for (var round = -1; round < Rounds; round++)
        {
            foreach (var box in viewports)
            {
                // Each pair runs in both orders, alternating by round: whichever runs second finds the pages the first
                // one read in the connection's cache, so a fixed order would bill the cold reads to one variant.
                var filteredFirst = round % 2 == 0;
                var (ms1, n1) = filteredFirst ? await TimeQueryAsync(app.Services, box, viewer) : default;
                var (ms2, _) = await TimeQueryAsync(app.Services, box, null);
                if (!filteredFirst)
                {
                    (ms1, n1) = await TimeQueryAsync(app.Services, box, viewer);
                }

                var query = string.Create(CultureInfo.InvariantCulture, $"bbox={box.West},{box.South},{box.East},{box.North}&limit=5000");
                var (ms3, _) = await TimeHttpAsync(http, "/api/reports?" + query);
                var (ms4, featureCount) = await TimeHttpAsync(http, "/api/incidents/geojson?" + query);
                var ms5 = filteredFirst ? await TimeCountAsync(app.Services, box, viewer) : 0;
                var ms6 = await TimeCountAsync(app.Services, box, null);
                if (!filteredFirst)
                {
                    ms5 = await TimeCountAsync(app.Services, box, viewer);
                }
                if (round < 0)
                {
                    continue;
                }

                countFiltered.Add(ms5);
                countUnfiltered.Add(ms6);

                filtered.Add(ms1);
                unfiltered.Add(ms2);
                listHttp.Add(ms3);
                geoHttp.Add(ms4);
                rows.Add(n1);
                features.Add(featureCount);
            }
        }

        var denseQuery = string.Create(CultureInfo.InvariantCulture, $"bbox={dense.West},{dense.South},{dense.East},{dense.North}&limit=5000");
        for (var i = 0; i < 12; i++)
        {
            var (ms, _) = await TimeHttpAsync(http, "/api/incidents/geojson?" + denseQuery);
            if (i >= 2)
            {
                denseHttp.Add(ms);
            }
        }

        // Hotspots over everything the viewer may see, no time range (an analyst asking where, over all time): every
        // incident of the store is counted.
        var hotspotsByCell = new Measurements();
        var hotspotsByArea = new Measurements();
        for (var i = 0; i < 7; i++)
        {
            var (cellMs, _) = await TimeHttpAsync(http, "/api/early-warning/hotspots?by=cell");
            var (areaMs, _) = await TimeHttpAsync(http, "/api/early-warning/hotspots?by=area");
            if (i >= 2)
            {
                hotspotsByCell.Add(cellMs);
                hotspotsByArea.Add(areaMs);
            }
        }

        await app.StopAsync();
        await app.DisposeAsync();

        var countOverhead = (countFiltered.Percentile(50) / countUnfiltered.Percentile(50)) - 1;
        var overhead = (filtered.Percentile(50) / unfiltered.Percentile(50)) - 1;
        var name = store.Kind == StoreKind.Sqlite ? "SQLite" : "PostgreSQL";
        return
        [
            string.Create(CultureInfo.InvariantCulture, $"| {name} | list query, no predicate (store) | {Measurements.Ms(unfiltered.Percentile(50))} | {Measurements.Ms(unfiltered.Percentile(95))} | {Measurements.Ms(unfiltered.Percentile(99))} | — |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | list query with VisibleTo (store) | {Measurements.Ms(filtered.Percentile(50))} | {Measurements.Ms(filtered.Percentile(95))} | {Measurements.Ms(filtered.Percentile(99))} | predicate cost {overhead:+0.0%;-0.0%} at the median (target ≤ 15 %) |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | count in viewport, no predicate (store) | {Measurements.Ms(countUnfiltered.Percentile(50))} | {Measurements.Ms(countUnfiltered.Percentile(95))} | {Measurements.Ms(countUnfiltered.Percentile(99))} | — |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | count in viewport with VisibleTo (store) | {Measurements.Ms(countFiltered.Percentile(50))} | {Measurements.Ms(countFiltered.Percentile(95))} | {Measurements.Ms(countFiltered.Percentile(99))} | predicate cost {countOverhead:+0.0%;-0.0%} at the median (target ≤ 15 %) |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | GET /api/reports viewport (HTTP) | {Measurements.Ms(listHttp.Percentile(50))} | {Measurements.Ms(listHttp.Percentile(95))} | {Measurements.Ms(listHttp.Percentile(99))} | {rows.Average():0} visible rows on average, max {rows.Max()} |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | GET /api/incidents/geojson viewport (HTTP) | {Measurements.Ms(geoHttp.Percentile(50))} | {Measurements.Ms(geoHttp.Percentile(95))} | {Measurements.Ms(geoHttp.Percentile(99))} | {features.Average():0} features on average, max {features.Max()}; target p95 < 50 ms |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | GET /api/incidents/geojson, densest 0.6° box (HTTP) | {Measurements.Ms(denseHttp.Percentile(50))} | {Measurements.Ms(denseHttp.Percentile(95))} | {Measurements.Ms(denseHttp.Percentile(99))} | far more than 5,000 match; the newest 5,000 are sent |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | GET /api/early-warning/hotspots by cell, whole store (HTTP) | {Measurements.Ms(hotspotsByCell.Percentile(50))} | {Measurements.Ms(hotspotsByCell.Percentile(95))} | {Measurements.Ms(hotspotsByCell.Percentile(99))} | every incident counted (5 runs after 2) |"),
            string.Create(CultureInfo.InvariantCulture, $"| {name} | GET /api/early-warning/hotspots by area, whole store (HTTP) | {Measurements.Ms(hotspotsByArea.Percentile(50))} | {Measurements.Ms(hotspotsByArea.Percentile(95))} | {Measurements.Ms(hotspotsByArea.Percentile(99))} | idem |"),
        ];
    }

    /// <summary>
    /// 30 viewports around real event places, each shrunk until it holds at most 5,000 incidents (the target's "viewport of
    /// ≤ 5,000 features"), plus the densest place at 0.6° across, where far more match and the newest 5,000 are returned.
    /// </summary>
    private static async Task<(List<BoundingBox> Viewports, BoundingBox Dense)> ViewportsAsync(IServiceProvider services)
    {
        var places = SyntheticReports.LoadPlaces();
        var random = new Random(7);
        var boxes = new List<BoundingBox>();
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        foreach (var _ in Enumerable.Range(0, 30))
        {
            var (lat, lon) = places[random.Next(places.Count)];
            var half = 0.3;
            while (true)
            {
                var box = new BoundingBox(lon - half, lat - half, lon + half, lat + half);
                var n = await db.Incidents.CountAsync(i => i.Latitude >= box.South && i.Latitude <= box.North && i.Longitude >= box.West && i.Longitude <= box.East);
                if (n <= 5000)
                {
                    boxes.Add(box);
                    break;
                }

                half *= 0.8;
            }
        }

        var bambari = (Lat: 5.76, Lon: 20.67);
        return (boxes, new BoundingBox(bambari.Lon - 0.3, bambari.Lat - 0.3, bambari.Lon + 0.3, bambari.Lat + 0.3));
    }

    private static async Task<(double Ms, int Rows)> TimeQueryAsync(IServiceProvider services, BoundingBox box, Viewer? viewer)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var started = Stopwatch.GetTimestamp();
        var reports = db.Reports.AsNoTracking()
            .Where(r => r.Latitude >= box.South && r.Latitude <= box.North && r.Longitude >= box.West && r.Longitude <= box.East);
        if (viewer is not null)
        {
            reports = reports.VisibleTo(viewer);
        }

        // The same two steps as GET /api/reports: newest keys from the covering index, then those rows.
        var keys = reports.OrderByDescending(r => r.ObservedAt).ThenByDescending(r => r.Number).Take(5001).Select(r => r.Number);
        var list = await db.Reports.AsNoTracking().Where(r => keys.Contains(r.Number))
            .OrderByDescending(r => r.ObservedAt).ThenByDescending(r => r.Number)
            .ToListAsync();
        return (Stopwatch.GetElapsedTime(started).TotalMilliseconds, list.Count);
    }

    /// <summary>Sharing groups the bench viewer's organisation belongs to, so the predicate has group tests to run.</summary>
    private static async Task EnsureGroupAsync(ConcordDb db, string code, string[] members)
    {
        if (await db.SharingGroups.AnyAsync(g => g.Code == code))
        {
            return;
        }

        var organizations = await db.Organizations.Where(o => members.Contains(o.Code)).ToListAsync();
        var group = new SharingGroup { Id = Guid.CreateVersion7(), Code = code, Name = code, OwnerOrganizationId = organizations[0].Id, CreatedAt = DateTime.UtcNow };
        db.SharingGroups.Add(group);
        db.SharingGroupMembers.AddRange(organizations.Select(o => new SharingGroupMember { GroupId = group.Id, OrganizationId = o.Id }));
        await db.SaveChangesAsync();
    }

    private static async Task<double> TimeCountAsync(IServiceProvider services, BoundingBox box, Viewer? viewer)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var started = Stopwatch.GetTimestamp();
        var reports = db.Reports.AsNoTracking()
            .Where(r => r.Latitude >= box.South && r.Latitude <= box.North && r.Longitude >= box.West && r.Longitude <= box.East);
        if (viewer is not null)
        {
            reports = reports.VisibleTo(viewer);
        }

        await reports.CountAsync();
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    /// <summary>
    /// One request, timed until its last byte is read. The body goes into one buffer kept for the whole run: a browser
    /// reads it in its own process, and building a string of each megabyte-sized answer here filled the large object heap
    /// of the process the server shares, whose collections then ran while the server worked.
    /// </summary>
    private static async Task<(double Ms, int Features)> TimeHttpAsync(HttpClient http, string path)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        Body.SetLength(0);
        await using (var stream = await response.Content.ReadAsStreamAsync())
        {
            await stream.CopyToAsync(Body);
        }

        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        return (ms, CountFeatures(Body.GetBuffer().AsSpan(0, (int)Body.Length)));
    }

    private static int CountFeatures(ReadOnlySpan<byte> body)
    {
        var count = 0;
        int index;
        while ((index = body.IndexOf("\"type\":\"Feature\""u8)) >= 0)
        {
            count++;
            body = body[(index + 1)..];
        }

        return count;
    }
}

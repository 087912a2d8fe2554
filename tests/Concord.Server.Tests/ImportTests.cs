using System.Net;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

/// <summary>Importing ACLED-style CSV and GeoJSON through the API.</summary>
public abstract class ImportTests<TServer>(TServer server) : IClassFixture<TServer>
    where TServer : TestServer
{
    private async Task<(HttpStatusCode Status, System.Text.Json.JsonElement Body)> ImportAsync(string user, string query, string body, string type)
    {
        using var client = server.ClientFor(user);
        var response = await client.PostAsync("/api/imports?" + query, new StringContent(body, Encoding.UTF8, type));
        return (response.StatusCode, await response.Json());
    }

    [Fact]
    public async Task A_signed_in_browser_imports_only_bodies_no_form_of_another_page_can_send()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}", "geometry": { "type": "Point", "coordinates": [16.57, 7.43] },
                "properties": { "observedAt": "2024-10-03T10:00:00Z", "category": "poc.forced-displacement", "narrative": "form {{tag}} families left",
                                "precisionMeters": 500, "reliability": "C", "credibility": 3 } }
            ] }
            """;
        var parameters = $"format=geojson&source=form-{tag}&classification=UNCLASSIFIED&releasableTo=mission";
        var query = "/api/imports?" + parameters;
        var session = await server.SignedInAsync("joc");
        foreach (var type in new[] { "text/plain", "application/x-www-form-urlencoded" })
        {
            var refused = await session.PostAsync(query, new StringContent(geojson, Encoding.UTF8, type));
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
            Assert.Equal(["body"], (await refused.Json()).ErrorFields());
        }

        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.Narrative.Contains(tag))));
        var accepted = await session.PostAsync(query, new StringContent(geojson, Encoding.UTF8, "application/geo+json"));
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync());
        // With an access token, curl's default type still reads as the file.
        var (status, result) = await ImportAsync("joc", parameters, geojson, "application/x-www-form-urlencoded");
        Assert.True(status == HttpStatusCode.OK, result.ToString());
    }

    [Fact]
    public async Task A_member_imports_one_file_at_a_time()
    {
        // Each upload is spooled to a temporary file (up to 256 MB) before it is imported: one analyst's token sending forty
        // at once filled gigabytes of the server's disk.
        var tag = Guid.NewGuid().ToString("N")[..8];
        string Collection(string id) => $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{id}}", "geometry": { "type": "Point", "coordinates": [16.57, 7.43] },
                "properties": { "observedAt": "2024-10-03T10:00:00Z", "category": "poc.forced-displacement", "narrative": "slots {{tag}} families left",
                                "precisionMeters": 500, "reliability": "C", "credibility": 3 } }
            ] }
            """;
        string Query(string part) => $"/api/imports?format=geojson&source=slots-{tag}-{part}&classification=UNCLASSIFIED&releasableTo=mission";
        using var force = server.ClientFor("force");
        var release = new TaskCompletionSource();
        var whole = Collection("held");
        var held = force.PostAsync(Query("held"), new HeldContent(whole[..(whole.Length / 2)], whole[(whole.Length / 2)..], release));

        // Once the held upload has its slot, the member's next one is refused; another member's goes on.
        var slots = server.Services.GetRequiredService<Import.ImportSlots>();
        var member = server.ViewerOf("force").MemberId;
        for (var i = 0; i < 100 && !slots.Holds(member) && !held.IsCompleted; i++)
        {
            await Task.Delay(100);
        }

        if (held.IsCompleted)
        {
            var early = await held;
            Assert.Fail($"{early.StatusCode} {await early.Content.ReadAsStringAsync()}");
        }

        var next = await force.PostAsync(Query("next"), new StringContent(Collection("next"), Encoding.UTF8, "application/geo+json"));
        Assert.Equal(HttpStatusCode.Conflict, next.StatusCode);
        Assert.Equal(["body"], (await next.Json()).ErrorFields());
        var (other, body) = await ImportAsync("joc", $"format=geojson&source=slots-{tag}-other&classification=UNCLASSIFIED&releasableTo=mission", Collection("other"), "application/geo+json");
        Assert.True(other == HttpStatusCode.OK, body.ToString());

        release.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await held).StatusCode);
        var after = await force.PostAsync(Query("after"), new StringContent(Collection("after"), Encoding.UTF8, "application/geo+json"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    /// <summary>A body sent in two parts, the second once <paramref name="release"/> completes: an upload still under way.</summary>
    private sealed class HeldContent(string first, string second, TaskCompletionSource release) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            await stream.WriteAsync(Encoding.UTF8.GetBytes(first));
            await stream.FlushAsync();
            await release.Task;
            await stream.WriteAsync(Encoding.UTF8.GetBytes(second));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task A_misspelt_marking_parameter_refuses_the_import_instead_of_storing_rows_marked_otherwise()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}", "geometry": { "type": "Point", "coordinates": [16.57, 7.43] },
                "properties": { "observedAt": "2024-10-03T10:00:00Z", "category": "poc.forced-displacement", "narrative": "caveat {{tag}} informant named",
                                "precisionMeters": 500, "reliability": "C", "credibility": 3 } }
            ] }
            """;
        // `caveat` for `caveats`: stored, the rows would go to every CONFIDENTIAL member of the JOC without the caveat.
        var (status, problem) = await ImportAsync("joc", $"format=geojson&source=caveat-{tag}&classification=CONFIDENTIAL&releasableTo=org:JOC&caveat=SOURCE-PROTECTED",
            geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(["caveat"], problem.ErrorFields());
        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.Narrative.Contains(tag))));

        var (stored, result) = await ImportAsync("joc", $"format=geojson&source=caveat-{tag}&classification=CONFIDENTIAL&releasableTo=org:JOC&caveats=SOURCE-PROTECTED",
            geojson, "application/geo+json");
        Assert.True(stored == HttpStatusCode.OK, result.ToString());
        Assert.NotEqual(0L, await server.WithDbAsync(db => db.Reports.Where(r => r.Narrative.Contains(tag)).Select(r => r.Caveats).SingleAsync()));
    }

    [Fact]
    public async Task Endpoints_that_read_their_own_query_refuse_a_parameter_they_would_not_apply_by_name()
    {
        using var unpol = server.ClientFor("unpol");
        foreach (var (path, field) in new[]
        {
            ("/api/areas?bbox=16,7,17,8", "bbox"), ("/api/areas/geojson?kind=sector", "kind"), ("/api/categories?q=protest", "q"),
            ("/api/early-warning/skill?from=2019", "from"), ("/api/tasks?organisation=UNPOL", "organisation"),
            ("/api/requests?direction=incoming&statu=open", "statu"), ("/api/patrols?since=2024-01-01", "since"),
            ("/api/coordination/metrics?form=2024-01-01", "form"), ("/api/changes?after=0&limt=5", "limt"),
        })
        {
            var response = await unpol.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, path);
            Assert.Equal([field], (await response.Json()).ErrorFields());
        }

        // What they do take still reads.
        foreach (var path in new[] { "/api/areas", "/api/categories", "/api/tasks?organization=UNPOL&open=true&limit=5", "/api/requests?direction=incoming&status=requested",
            "/api/patrols?from=2024-01-01T00:00:00Z", "/api/coordination/metrics?from=2024-01-01T00:00:00Z", "/api/changes?after=0&limit=5" })
        {
            var response = await unpol.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + await response.Content.ReadAsStringAsync());
        }
    }

    /// <summary>Runs statements against the test store, in order (triggers that stand for a store's refusals and failures).</summary>
    private Task<int> ExecuteAsync(string[] statements) => server.WithDbAsync(async db =>
    {
        foreach (var sql in statements)
        {
            await db.Database.ExecuteSqlRawAsync(sql);
        }

        return 0;
    });

    [Fact]
    public async Task A_file_of_lines_that_each_leave_a_quote_open_is_rejected_line_by_line_and_its_last_row_stored()
    {
        // Read again from each line in turn, such a file nested a reader a line until the stack overflowed: the server
        // process ended, every import and session with it.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = "event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities\n"
            + string.Concat(Enumerable.Repeat("b\",2,\"c\n", 20_000))
            + $"CAF{tag}1,2024-03-02,2024,1,Political violence,Battles,Armed clash,A,B,Ouaka,Bambari,5.7679,20.6757,1,S,Clashes {tag} after the open quotes.,1\n";

        var (status, summary) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", csv, "text/csv");

        Assert.True(status == HttpStatusCode.OK, summary.ToString());
        Assert.Equal((1, 20_000), (summary.GetProperty("created").GetInt32(), summary.GetProperty("rejected").GetInt32()));
        var first = summary.GetProperty("rejectedRows").EnumerateArray().First();
        Assert.Equal((2, "a quoted field opened on this line is not closed on it"), (first.GetProperty("line").GetInt32(), first.GetProperty("reason").GetString()));
        var (_, found) = await server.ClientFor("joc").GetJson($"/api/reports?q={tag}+after+the+open+quotes");
        Assert.Single(found.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task An_ACLED_event_known_by_its_month_covers_the_whole_month()
    {
        // ACLED dates such an event at the middle of the month. Read as the start of a month-long window, it ran from
        // mid-March to mid-April (reports of early March could not join it), and this month's, dated ahead, was refused.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var now = DateTime.UtcNow;
        var csv = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,2024-03-15,2024,3,Political violence,Battles,Armed clash,A,B,Ouaka,Bambari,5.7679,20.6757,1,S,Clashes {tag} near Bambari in March.,3
            CAF{tag}2,{now:yyyy-MM}-15,{now:yyyy},3,Political violence,Battles,Armed clash,A,B,Ouaka,Ippy,6.25,21.22,1,S,Clashes {tag} near Ippy this month.,1
            """;
        var (status, summary) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", csv, "text/csv");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(summary.GetProperty("created").GetInt32() == 2, summary.ToString());
        var (_, found) = await server.ClientFor("joc").GetJson($"/api/reports?q={tag}+near+Bambari");
        var report = Assert.Single(found.GetProperty("items").EnumerateArray());
        Assert.Equal((new DateTimeOffset(2024, 3, 1, 0, 0, 0, TimeSpan.Zero), "month"), (report.GetProperty("observedAt").GetDateTimeOffset(), report.GetProperty("observedPrecision").GetString()));
        var (_, incident) = await server.ClientFor("joc").GetJson($"/api/incidents/{report.GetProperty("incidentId").GetGuid()}");
        Assert.True(incident.GetProperty("startsAt").GetDateTimeOffset() <= new DateTimeOffset(2024, 3, 1, 0, 0, 0, TimeSpan.Zero), incident.ToString());
        Assert.True(incident.GetProperty("endsAt").GetDateTimeOffset() >= new DateTimeOffset(2024, 3, 31, 0, 0, 0, TimeSpan.Zero), incident.ToString());
    }

    [Fact]
    public async Task An_ACLED_file_maps_event_types_and_reports_bad_rows_by_line()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,2024-03-02,2024,1,Political violence,Battles,Armed clash,Military Forces of the Central African Republic (2016-),UPC: Union for Peace in the Central African Republic,Ouaka,Bambari,5.7679,20.6757,1,Radio Ndeke Luka,"FACA clashed with UPC near Bambari, 4 killed.",4
            CAF{tag}2,2024-03-05,2024,2,Political violence,Violence against civilians,Attack,3R: Return Reclamation Rehabilitation,Civilians (Central African Republic),Ouham-Pende,Bocaranga,6.9833,15.6333,2,Corbeau News,3R attacked villagers.,2
            CAF{tag}3,2024-03-06,2024,1,Demonstrations,Protests,Peaceful protest,Protesters (Central African Republic),,Bangui,Bangui,4.3612,18.5550,1,Oubangui Medias,Traders protested taxes.,0
            CAF{tag}4,not a date,2024,1,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,bad date,1
            CAF{tag}5,2024-03-07,2024,1,Political violence,Sports,Football,A,B,X,Y,5.1,20.1,1,S,unknown type,1
            CAF{tag}6,2024-03-07,2024,1,Political violence,Battles,Armed clash,A,B,X,Y,95.1,20.1,1,S,bad latitude,1
            CAF{tag}7,2024-03-07,2024,7,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,9,S,bad precisions,1
            CAF{tag}8,2024-03-07,2024,1,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,fractional fatalities,2.7
            CAF{tag}9,2024-03-07,2024,1,Political violence,Battles,Pillow fight,A,B,X,Y,5.1,20.1,1,S,unknown sub-event type,1
            CAF{tag}10,2099-03-07,2099,1,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,in the future,1
            CAF{tag}11,2024-03-07,2024,1,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,{new string('n', 9000)},1
            CAF{tag}12,0001-01-02,1,2,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,an export's no-date dated to a week,1
            """;
        var (status, summary) = await ImportAsync("joc", $"format=acled&classification=UNCLASSIFIED&releasableTo=mission", csv, "text/csv");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(12, summary.GetProperty("rows").GetInt32());
        Assert.Equal(3, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal([5, 6, 7, 8, 9, 10, 11, 12, 13], rejected.Keys.Order());
        // Dated in the first days of year 1 and coded to a week, it stopped the whole import (no three days before it).
        Assert.StartsWith("observedAt (from event_date): ", rejected[13], StringComparison.Ordinal);
        Assert.Equal("narrative (from notes (or event_type, sub_event_type, location)): is 9000 characters long; at most 8000 are allowed", rejected[12]);
        // Found by the report's rules after reading: named as a report's field and by the file's column it came from.
        Assert.StartsWith("observedAt (from event_date): ", rejected[11], StringComparison.Ordinal);
        Assert.Contains("time_precision '7'", rejected[8]);
        Assert.Contains("geo_precision '9'", rejected[8]);
        Assert.Contains("fatalities '2.7' must be a whole number", rejected[9]);
        Assert.Contains("not an ACLED type", rejected[10]);
        Assert.Contains("event_date", rejected[5]);
        Assert.Contains("not an ACLED type", rejected[6]);
        Assert.Contains("latitude", rejected[7]);

        var (_, reports) = await server.ClientFor("pref").GetJson($"/api/reports?q=protested+taxes");
        var protest = Assert.Single(reports.GetProperty("items").EnumerateArray());
        Assert.Equal("acled.protests.peaceful-protest", protest.GetProperty("category").GetString());
        Assert.Equal($"acled:CAF{tag}3", protest.GetProperty("externalRef").GetString());
        var (_, attacks) = await server.ClientFor("pref").GetJson($"/api/reports?q=attacked+villagers");
        var attack = Assert.Single(attacks.GetProperty("items").EnumerateArray());
        Assert.Equal("acled.violence-against-civilians.attack", attack.GetProperty("category").GetString());
        Assert.Equal(2, attack.GetProperty("casualties").GetProperty("killedCivilian").GetProperty("best").GetInt32());
        Assert.Equal("week", attack.GetProperty("observedPrecision").GetString());
        // ACLED dates a week by its middle: the report's window (from its time, a week long) holds the days around it.
        Assert.Equal(new DateTimeOffset(2024, 3, 2, 0, 0, 0, TimeSpan.Zero), attack.GetProperty("observedAt").GetDateTimeOffset());

        var (_, again) = await ImportAsync("joc", $"format=acled&classification=UNCLASSIFIED&releasableTo=mission", csv, "text/csv");
        Assert.Equal(0, again.GetProperty("created").GetInt32());
        Assert.Equal(3, again.GetProperty("skipped").GetInt32());

        // Run again with other marking options (after an interruption, or by a colleague): already imported, not changed,
        // and the stored marking stays.
        foreach (var marking in new[] { "classification=CONFIDENTIAL&releasableTo=org:JOC", "classification=UNCLASSIFIED&releasableTo=mission,org:JOC", "" })
        {
            var (_, remarked) = await ImportAsync("joc", "format=acled&" + marking, csv, "text/csv");
            // (The file's bad rows are rejected again, as on every run.)
            Assert.True((0, 3, again.GetProperty("rejected").GetInt32()) == (remarked.GetProperty("created").GetInt32(), remarked.GetProperty("skipped").GetInt32(), remarked.GetProperty("rejected").GetInt32()), $"{marking}: {remarked}");
        }

        var (_, kept) = await server.ClientFor("joc").GetJson($"/api/reports?q=FACA");
        Assert.All(kept.GetProperty("items").EnumerateArray().Where(r => r.GetProperty("externalRef").GetString()!.StartsWith("acled:", StringComparison.Ordinal)),
            r => Assert.Equal("UNCLASSIFIED//REL TO MISSION, ORG:JOC", r.GetProperty("marking").GetProperty("label").GetString()));

        // The source revised an event (the toll and the notes): the stored report is kept, and the importer is told what changed.
        var revised = csv.Replace("FACA clashed with UPC near Bambari, 4 killed.\",4", "FACA clashed with UPC near Bambari, 6 killed.\",6", StringComparison.Ordinal);
        var (_, third) = await ImportAsync("joc", $"format=acled&classification=UNCLASSIFIED&releasableTo=mission", revised, "text/csv");
        Assert.Equal((0, 2), (third.GetProperty("created").GetInt32(), third.GetProperty("skipped").GetInt32()));
        var changed = third.GetProperty("rejectedRows").EnumerateArray().Single(r => r.GetProperty("line").GetInt32() == 2).GetProperty("reason").GetString();
        Assert.Contains("changed at the source since it was imported (casualties, narrative)", changed);
        Assert.Equal(HttpStatusCode.Forbidden, (await ImportAsync("rwabatt", "format=acled", csv, "text/csv")).Status);
        var (badFormat, problem) = await ImportAsync("joc", "format=xlsx", csv, "text/csv");
        Assert.Equal(HttpStatusCode.BadRequest, badFormat);
        Assert.Equal(["format"], problem.ErrorFields());
    }

    [Fact]
    public async Task Another_organisation_importing_the_same_events_gets_copies_of_its_own_in_the_same_incidents()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,2024-04-02,2024,1,Political violence,Battles,Armed clash,Military Forces of the Central African Republic (2016-),UPC,Ouaka,Bambari,5.7679,20.6757,1,Radio Ndeke Luka,"{tag} FACA clashed with UPC, 4 killed.",4
            CAF{tag}2,2024-04-05,2024,1,Political violence,Violence against civilians,Attack,3R,Civilians (Central African Republic),Ouham-Pende,Bocaranga,6.9833,15.6333,1,Corbeau News,{tag} 3R attacked villagers.,2
            """;
        const string Query = "format=acled&classification=UNCLASSIFIED&releasableTo=";

        // JOC imports first, for itself; a colleague importing the same file finds it there.
        var (_, first) = await ImportAsync("joc", Query + "org:JOC", csv, "text/csv");
        Assert.Equal(2, first.GetProperty("created").GetInt32());
        var (_, colleague) = await ImportAsync("jocadmin", Query + "org:JOC", csv, "text/csv");
        Assert.Equal((0, 2, 0), (colleague.GetProperty("created").GetInt32(), colleague.GetProperty("skipped").GetInt32(), colleague.GetProperty("rejected").GetInt32()));

        // FORCE imports the same events: it gets its own copies, and its summary does not tell that JOC holds them.
        var (status, second) = await ImportAsync("force", Query + "org:FORCE,org:JOC", csv, "text/csv");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((2, 0, 0), (second.GetProperty("created").GetInt32(), second.GetProperty("skipped").GetInt32(), second.GetProperty("rejected").GetInt32()));
        foreach (var user in new[] { "force", "joc" })
        {
            var (_, again) = await ImportAsync(user, Query + (user == "joc" ? "org:JOC" : "org:FORCE,org:JOC"), csv, "text/csv");
            Assert.Equal((0, 2, 0), (again.GetProperty("created").GetInt32(), again.GetProperty("skipped").GetInt32(), again.GetProperty("rejected").GetInt32()));
        }

        // OCHA imports them too, for itself and FORCE.
        var (_, third) = await ImportAsync("ocha", Query + "org:OCHA,org:FORCE", csv, "text/csv");
        Assert.Equal((2, 0, 0), (third.GetProperty("created").GetInt32(), third.GetProperty("skipped").GetInt32(), third.GetProperty("rejected").GetInt32()));

        // Each event is one incident holding the three copies; each member sees the copies it may see, linked as the same record.
        var (_, jocs) = await server.ClientFor("joc").GetJson($"/api/reports?q={tag}");
        var copies = jocs.GetProperty("items").EnumerateArray().GroupBy(r => r.GetProperty("externalRef").GetString()).ToList();
        Assert.Equal(2, copies.Count);
        foreach (var pair in copies)
        {
            Assert.Equal(["FORCE", "JOC"], pair.Select(r => r.GetProperty("organization").GetString()).Order());
            var incident = Assert.Single(pair.Select(r => r.GetProperty("incidentId").GetGuid()).Distinct());
            foreach (var (user, seen) in new[] { ("joc", new[] { "JOC", "FORCE" }), ("force", ["FORCE", "OCHA"]), ("ocha", ["OCHA"]) })
            {
                var (_, summary) = await server.ClientFor(user).GetJson($"/api/incidents/{incident}");
                Assert.Equal(seen.Length, summary.GetProperty("reportCount").GetInt32());
                var (_, provenance) = await server.ClientFor(user).GetJson($"/api/incidents/{incident}/provenance");
                var links = provenance.GetProperty("reports").EnumerateArray().OrderBy(l => l.GetProperty("linkedAt").GetDateTimeOffset()).ToList();
                Assert.Equal(seen, links.Select(l => l.GetProperty("organization").GetString()));
                Assert.Equal(seen.Length == 1 ? ["new"] : ["new", "same-record"], links.Select(l => l.GetProperty("decision").GetString()));
                if (seen.Length > 1)
                {
                    Assert.Equal(pair.Key, links[1].GetProperty("scores").GetProperty("sameRecord").GetString());
                }
            }
        }

        var (_, forces) = await server.ClientFor("force").GetJson($"/api/reports?q={tag}");
        Assert.Equal(["FORCE", "FORCE", "OCHA", "OCHA"], forces.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("organization").GetString()).Order());
        var (_, incidents) = await server.ClientFor("joc").GetJson($"/api/incidents?q={tag}");
        Assert.Equal(2, incidents.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task A_reference_crafted_to_name_another_organisations_copy_does_not_take_its_place()
    {
        // Copies' ids hashed "reference@organisation": OCHA importing a feature whose id is "X@<FORCE's id>" took the id
        // FORCE's copy of X would get, and FORCE's import of X was then refused as a clash.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var force = await server.WithDbAsync(db => db.Organizations.Where(o => o.Code == "FORCE").Select(o => o.Id).SingleAsync());
        string Collection(string id) => $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{id}}", "geometry": { "type": "Point", "coordinates": [20.67, 5.76] },
                "properties": { "observedAt": "2025-08-01", "category": "poc", "narrative": "{{tag}} shared survey point" } } ] }
            """;
        var query = $"format=geojson&source=survey-{tag}&classification=UNCLASSIFIED&releasableTo=";

        var (_, first) = await ImportAsync("joc", query + "org:JOC", Collection("X"), "application/geo+json");
        var (_, crafted) = await ImportAsync("ocha", query + "org:OCHA", Collection($"X@{force:N}"), "application/geo+json");
        var (_, copy) = await ImportAsync("force", query + "org:FORCE", Collection("X"), "application/geo+json");

        Assert.Equal(1, first.GetProperty("created").GetInt32());
        Assert.Equal(1, crafted.GetProperty("created").GetInt32());
        Assert.Equal((1, 0), (copy.GetProperty("created").GetInt32(), copy.GetProperty("rejected").GetInt32()));
    }

    [Fact]
    public async Task Copies_stored_under_the_id_copies_had_before_are_found_again()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,2024-06-02,2024,1,Political violence,Battles,Armed clash,Armed forces,UPC,Ouaka,Ippy,6.2500,21.2200,1,Radio Ndeke Luka,"{tag} soldiers and UPC exchanged fire, 4 killed.",4
            """;
        const string Query = "format=acled&classification=UNCLASSIFIED&releasableTo=";
        var (_, first) = await ImportAsync("joc", Query + "org:JOC", csv, "text/csv");
        var (_, copied) = await ImportAsync("force", Query + "org:FORCE", csv, "text/csv");
        Assert.Equal(1, first.GetProperty("created").GetInt32());
        Assert.Equal(1, copied.GetProperty("created").GetInt32());

        // Make the store as a copy made before 2026-12-04 left it: under the id of "reference@organisation", with that
        // request's hash.
        var key = await server.Services.GetRequiredService<Data.DeploymentKeys>().SourceIdsAsync(CancellationToken.None);
        var force = await server.WithDbAsync(db => db.Organizations.Where(o => o.Code == "FORCE").Select(o => o.Id).SingleAsync());
        var row = Import.ImportReaders.Read(Import.ImportFormat.Acled, new StringReader(csv), new Access.MarkingDto("UNCLASSIFIED", ["org:FORCE"], []), "upload").Single().Report!;
        var legacy = row with { Id = Reports.SourceIds.LegacyFor(key, force, row.ExternalRef!), Source = row.Source! with { Description = null } };
        await server.WithDbAsync(async db =>
        {
            var copy = await db.Reports.Where(r => r.ExternalRef == row.ExternalRef && r.OrganizationId == force).Select(r => r.Id).SingleAsync();
            await db.IncidentReports.Where(l => l.ReportId == copy).ExecuteUpdateAsync(u => u.SetProperty(l => l.ReportId, legacy.Id!.Value));
            return await db.Reports.Where(r => r.Id == copy)
                .ExecuteUpdateAsync(u => u.SetProperty(r => r.Id, legacy.Id!.Value).SetProperty(r => r.RequestHash, Reports.ReportIntake.Hash(legacy)));
        });

        var (_, again) = await ImportAsync("force", Query + "org:FORCE", csv, "text/csv");

        Assert.Equal((0, 1, 0), (again.GetProperty("created").GetInt32(), again.GetProperty("skipped").GetInt32(), again.GetProperty("rejected").GetInt32()));
        Assert.Equal([legacy.Id!.Value], await server.WithDbAsync(db => db.Reports.Where(r => r.ExternalRef == row.ExternalRef && r.OrganizationId == force).Select(r => r.Id).ToListAsync()));
    }

    [Fact]
    public async Task Records_imported_before_schema_12_are_found_again_and_their_ids_are_not_for_the_API()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,2024-05-02,2024,1,Political violence,Battles,Armed clash,FACA,UPC,Ouaka,Bambari,5.7679,20.6757,1,Radio Ndeke Luka,"{tag} FACA clashed with UPC, 4 killed.",4
            CAF{tag}2,2024-05-05,2024,1,Political violence,Violence against civilians,Attack,3R,Civilians (Central African Republic),Ouham-Pende,Bocaranga,6.9833,15.6333,1,Corbeau News,{tag} 3R attacked villagers.,2
            """;
        var (_, imported) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=org:JOC", csv, "text/csv");
        Assert.Equal(2, imported.GetProperty("created").GetInt32());

        // Make the store as an import before schema 12 left it: each report under the reader's id, with that request's
        // hash, and the mark migration 12 leaves in such a store.
        await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(
            "INSERT INTO deployment_keys (name, value) SELECT 'legacy-source-ids', 'yes' WHERE NOT EXISTS (SELECT 1 FROM deployment_keys WHERE name = 'legacy-source-ids')"));
        var rows = Import.ImportReaders.Read(Import.ImportFormat.Acled, new StringReader(csv), new Access.MarkingDto("UNCLASSIFIED", ["org:JOC"], []), "upload")
            .Select(r => r.Report!).ToList();
        foreach (var row in rows)
        {
            await server.WithDbAsync(async db =>
            {
                var keyed = await db.Reports.Where(r => r.ExternalRef == row.ExternalRef).Select(r => r.Id).SingleAsync();
                await db.IncidentReports.Where(l => l.ReportId == keyed).ExecuteUpdateAsync(u => u.SetProperty(l => l.ReportId, row.Id!.Value));
                return await db.Reports.Where(r => r.Id == keyed)
                    .ExecuteUpdateAsync(u => u.SetProperty(r => r.Id, row.Id!.Value).SetProperty(r => r.RequestHash, Reports.ReportIntake.Hash(row)));
            });
        }

        // JOC's import finds them; FORCE's copies join their incidents.
        var (_, again) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=org:JOC", csv, "text/csv");
        Assert.Equal((0, 2, 0), (again.GetProperty("created").GetInt32(), again.GetProperty("skipped").GetInt32(), again.GetProperty("rejected").GetInt32()));
        var (_, copies) = await ImportAsync("force", "format=acled&classification=UNCLASSIFIED&releasableTo=org:FORCE,org:JOC", csv, "text/csv");
        Assert.Equal(2, copies.GetProperty("created").GetInt32());

        // FORCE's copies took the deployment's ids for the records; JOC's old ids still stand for JOC's.
        var (_, third) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=org:JOC", csv, "text/csv");
        Assert.Equal((0, 2, 0), (third.GetProperty("created").GetInt32(), third.GetProperty("skipped").GetInt32(), third.GetProperty("rejected").GetInt32()));
        var (_, both) = await server.ClientFor("joc").GetJson($"/api/reports?q={tag}");
        foreach (var pair in both.GetProperty("items").EnumerateArray().GroupBy(r => r.GetProperty("externalRef").GetString()))
        {
            Assert.Equal(2, pair.Count());
            Assert.Single(pair.Select(r => r.GetProperty("incidentId").GetGuid()).Distinct());
            Assert.Contains(row0(pair.Key!), pair.Select(r => r.GetProperty("id").GetGuid()));
        }

        // Such an id names an imported record: the API takes no report under it.
        var (refused, problem) = await server.ClientFor("force").PostJson("/api/reports", new
        {
            id = Reports.SourceIds.Unkeyed($"acled:CAF{tag}9"),
            observedAt = Api.Recent,
            location = new { latitude = 5.1, longitude = 20.1 },
            category = "acled.battles.armed-clash",
            narrative = "A record of someone else's",
            externalRef = $"acled:CAF{tag}9",
        });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(["id"], problem.ErrorFields());

        // Nor without the record's name beside it: JOC holds the record under that id (from before schema 12), and a 409
        // would tell FORCE so whatever its marking; a record nobody imported would answer the same.
        foreach (var probe in new[] { row0($"acled:CAF{tag}1"), Reports.SourceIds.Unkeyed($"acled:CAF{tag}8") })
        {
            var (probed, probeProblem) = await server.ClientFor("force").PostJson("/api/reports", Api.Report(id: probe));
            Assert.Equal(HttpStatusCode.BadRequest, probed.StatusCode);
            Assert.Equal(["id"], probeProblem.ErrorFields());
        }

        // A field report may not pass for a record of a curated dataset: fusion would keep the dataset's own record of the
        // event out of its incident.
        var (posing, posingProblem) = await PosingAsync("A field report that says it is ACLED's", $"acled:CAF{tag}7");
        Assert.Equal(HttpStatusCode.BadRequest, posing.StatusCode);
        Assert.Equal(["externalRef"], posingProblem.ErrorFields());

        // Nor for a TAK device's marker: its incident would be taken for one made only of markers, sent to no device, and
        // the report would count as the marker's first sender when the router judges who owns the uid.
        var (posingAsMarker, markerProblem) = await PosingAsync("A field report that says it is a device's marker", $"tak:ANDROID-{tag}");
        Assert.Equal(HttpStatusCode.BadRequest, posingAsMarker.StatusCode);
        Assert.Equal(["externalRef"], markerProblem.ErrorFields());
        Assert.False(await server.WithDbAsync(db => db.Reports.AnyAsync(r => r.ExternalRef == $"tak:ANDROID-{tag}")));

        Guid row0(string reference) => rows.Single(r => r.ExternalRef == reference).Id!.Value;

        Task<(HttpResponseMessage, System.Text.Json.JsonElement)> PosingAsync(string narrative, string externalRef) => server.ClientFor("force").PostJson("/api/reports", new
        {
            id = Guid.NewGuid(),
            observedAt = Api.Recent,
            location = new { latitude = 5.1, longitude = 20.1 },
            category = "acled.battles.armed-clash",
            narrative,
            externalRef,
        });
    }

    [Fact]
    public async Task Bad_values_as_long_as_a_record_are_quoted_by_their_start_and_length()
    {
        // A record may hold a megabyte in one field, and up to a thousand reasons are kept and sent back: a reason quoting a
        // bad date, coordinate or number whole would carry it (ACLED, GED and GeoJSON alike).
        var tag = Guid.NewGuid().ToString("N")[..6];
        var huge = new string('9', 200_000);
        var acled = $"""
            event_id_cnty,event_date,year,time_precision,disorder_type,event_type,sub_event_type,actor1,actor2,admin1,location,latitude,longitude,geo_precision,source,notes,fatalities
            CAF{tag}1,{huge},2024,1,Political violence,Battles,Armed clash,A,B,X,Y,5.1,20.1,1,S,long date,1
            CAF{tag}2,2024-03-07,2024,1,Political violence,Battles,Armed clash,A,B,X,Y,{huge},20.1,1,S,long latitude,1
            CAF{tag}3,2024-03-07,2024,{huge},Political violence,{huge},Armed clash,A,B,X,Y,5.1,20.1,1,S,long codes,1
            """;
        var (_, acledSummary) = await ImportAsync("ocha", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", acled, "text/csv");

        var lines = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv")).Take(2).ToList();
        var fields = lines[1].Split(',');
        var header = lines[0].Split(',');
        fields[Array.IndexOf(header, "date_start")] = huge;
        fields[Array.IndexOf(header, "latitude")] = huge;
        fields[Array.IndexOf(header, "best")] = huge + "x";
        fields[0] = Random.Shared.NextInt64(30_000_000_000, 40_000_000_000).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (_, gedSummary) = await ImportAsync("joc", "format=ged&classification=UNCLASSIFIED&releasableTo=mission", lines[0] + "\n" + string.Join(',', fields), "text/csv");

        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "{{huge}}", "category": "poc", "narrative": "{{tag}} long date" } },
              { "type": "Feature", "id": "{{tag}}-2", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "precisionMeters": -{{huge}}, "killed": 1.{{huge}}, "narrative": "{{tag}} long numbers" } }
            ] }
            """;
        var (_, geoSummary) = await ImportAsync("ocha", $"format=geojson&source=long-values-{tag}&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        var reasons = new[] { acledSummary, gedSummary, geoSummary }.SelectMany(s => s.GetProperty("rejectedRows").EnumerateArray()).Select(r => r.GetProperty("reason").GetString()!).ToList();
        Assert.Equal(3 + 1 + 2, reasons.Count);
        Assert.All(reasons, reason => Assert.InRange(reason.Length, 1, 400));
        Assert.All(reasons, reason => Assert.Contains("(200,00", reason, StringComparison.Ordinal));
        Assert.Contains(reasons, r => r.StartsWith("event_date '9999999999", StringComparison.Ordinal) && r.Contains("…' (200,000 characters) is not a date", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_colleague_repeating_a_releasers_import_finds_the_stored_rows_already_imported()
    {
        // JOC's agreement marks its abduction reports CONFIDENTIAL for JOC; its releaser imported a file for the whole
        // mission, looser than the agreement, which only a releaser may do. A colleague who is not one runs the same import
        // again (to finish an interrupted run, say): the stored rows are already imported, under the marking they were
        // stored with, and only a row new to the file is refused for the marking asked.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var (recorded, _) = await server.ClientFor("jocadmin").PostJson("/api/agreements", new
        {
            code = "MOU" + tag.ToUpperInvariant(),
            name = "JOC abduction reporting",
            parties = new[] { "JOC" },
            rules = new[] { new { reporter = "org:JOC", category = "poc.abduction", marking = Api.Marking("CONFIDENTIAL", ["org:JOC"]), tlp = "amber" } },
        });
        Assert.Equal(HttpStatusCode.Created, recorded.StatusCode);
        string Feature(int n) =>
            $$"""{ "type": "Feature", "id": "{{tag}}-{{n}}", "geometry": { "type": "Point", "coordinates": [{{16.1 + (n * 0.3)}}, 7.2] }, "properties": { "observedAt": "2025-08-0{{n}}", "category": "poc.abduction", "narrative": "{{tag}} abduction {{n}}" } }""";
        var query = $"format=geojson&source=protection-{tag}&classification=UNCLASSIFIED&releasableTo=mission";

        var (first, imported) = await ImportAsync("jocadmin", query, $$"""{ "type": "FeatureCollection", "features": [{{Feature(1)}}, {{Feature(2)}}] }""", "application/geo+json");
        Assert.Equal(HttpStatusCode.OK, first);
        Assert.Equal(2, imported.GetProperty("created").GetInt32());

        var (again, repeated) = await ImportAsync("joc", query, $$"""{ "type": "FeatureCollection", "features": [{{Feature(1)}}, {{Feature(2)}}, {{Feature(3)}}] }""", "application/geo+json");
        Assert.Equal(HttpStatusCode.OK, again);
        Assert.Equal((0, 2, 1), (repeated.GetProperty("created").GetInt32(), repeated.GetProperty("skipped").GetInt32(), repeated.GetProperty("rejected").GetInt32()));
        var row = Assert.Single(repeated.GetProperty("rejectedRows").EnumerateArray());
        Assert.Equal(3, row.GetProperty("line").GetInt32());
        Assert.Contains("only a releaser may loosen it", row.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var (_, stored) = await server.ClientFor("force").GetJson($"/api/reports?q={tag}");
        Assert.Equal(2, stored.GetProperty("items").GetArrayLength());

        // A colleague cleared below the agreement's marking, running it with no marking options: the agreement would mark
        // the rows above their clearance, which is refused for a row new to the file only; the stored ones are skipped.
        var junior = "junior" + tag;
        var (made, _) = await (await server.SignedInAsync("jocadmin")).PostJson("/api/organizations/JOC/members",
            new { userName = junior, password = TestServer.Password, roles = new[] { "analyst" }, clearance = "UNCLASSIFIED" });
        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        using var browser = await server.SignedInAsync(junior);
        var plain = await browser.PostAsync($"/api/imports?format=geojson&source=protection-{tag}",
            new StringContent($$"""{ "type": "FeatureCollection", "features": [{{Feature(1)}}, {{Feature(2)}}, {{Feature(3)}}] }""", Encoding.UTF8, "application/geo+json"));
        var unmarked = await plain.Json();
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal((0, 2, 1), (unmarked.GetProperty("created").GetInt32(), unmarked.GetProperty("skipped").GetInt32(), unmarked.GetProperty("rejected").GetInt32()));
        var refused = Assert.Single(unmarked.GetProperty("rejectedRows").EnumerateArray());
        Assert.Equal(3, refused.GetProperty("line").GetInt32());
        Assert.Contains("above your clearance", refused.GetProperty("reason").GetString(), StringComparison.Ordinal);

        // Each run is audited, the one that created nothing too: who, which source, with which options, what came of it.
        var (_, runs) = await server.ClientFor("jocadmin").GetJson($"/api/audit?action=import&member={junior}");
        var run = Assert.Single(runs.GetProperty("items").EnumerateArray());
        var detail = System.Text.Json.JsonDocument.Parse(run.GetProperty("detail").GetString()!).RootElement;
        Assert.Equal(($"protection-{tag}", 3, 0, 2, 1), (detail.GetProperty("source").GetString(), detail.GetProperty("rows").GetInt32(),
            detail.GetProperty("created").GetInt32(), detail.GetProperty("skipped").GetInt32(), detail.GetProperty("rejected").GetInt32()));
        var (_, releasers) = await server.ClientFor("jocadmin").GetJson("/api/audit?action=import&member=jocadmin&limit=1000");
        Assert.Contains(releasers.GetProperty("items").EnumerateArray(), e => e.GetProperty("detail").GetString()!.Contains($"protection-{tag}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_record_given_twice_in_one_file_is_stored_once_and_the_second_named_as_such()
    {
        // The same feature id twice (a file joined from two exports): the first is stored; the same again is counted as
        // already there; one with other content is listed as given earlier in this file, not as changed at the source.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var refused = "arson" + new string([.. tag.Select(c => (char)('a' + (c % 26)))]);
        string Feature(string narrative) =>
            $$"""{ "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [17.3, 6.1] }, "properties": { "observedAt": "2025-07-01", "category": "poc", "narrative": "{{narrative}}" } }""";
        var (status, result) = await ImportAsync("joc", $"format=geojson&source=twice-{tag}&classification=UNCLASSIFIED&releasableTo=mission",
            $$"""{ "type": "FeatureCollection", "features": [{{Feature("Looting at the market")}}, {{Feature("Looting at the market")}}, {{Feature($"Looting and {refused} at the market")}}] }""",
            "application/geo+json");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((1, 1, 1), (result.GetProperty("created").GetInt32(), result.GetProperty("skipped").GetInt32(), result.GetProperty("rejected").GetInt32()));
        var row = Assert.Single(result.GetProperty("rejectedRows").EnumerateArray());
        Assert.Equal(3, row.GetProperty("line").GetInt32());
        Assert.Contains("given earlier in this file with other content (narrative); the first is kept", row.GetProperty("reason").GetString(), StringComparison.Ordinal);

        // Fusion counted the words of the report it stored (the first), not those of the one refused after it.
        var rarity = server.Services.GetRequiredService<Fusion.FusionEngine>().Rarity;
        Assert.Equal(rarity.Weight("neverwrittenanywhere"), rarity.Weight(refused));
    }

    [Fact]
    public async Task Files_re_saved_by_R_or_with_timestamps_are_read_as_their_source_meant_them()
    {
        // readr::write_csv writes an empty cell as NA: civilian_targeting NA was read as "targets civilians" (every death a
        // civilian's), an empty actor as an actor named NA. A day written as a timestamp was refused.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var csv = $"""
            event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,location,latitude,longitude,geo_precision,source,notes,fatalities,civilian_targeting
            CAF{tag}1,2024-03-02 00:00:00,1,Battles,Armed clash,Military Forces of the Central African Republic (2016-),NA,Bambari,5.7679,20.6757,1,NA,Clash near Bambari {tag}.,3,NA
            CAF{tag}2,2024-03-04T00:00:00,1,Battles,Armed clash,UPC,Civilians (Central African Republic),Alindao,5.03,21.21,1,Radio Ndeke Luka,Villagers caught in crossfire {tag}.,2,Civilian targeting
            CAF{tag}3,2024-03-05,1,Battles,Armed clash,UPC,FACA,Alindao,5.03,21.21,1,S,Unclear {tag}.,1,maybe
            """;
        var (status, summary) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", csv, "text/csv");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, summary.GetProperty("created").GetInt32());
        var rejected = Assert.Single(summary.GetProperty("rejectedRows").EnumerateArray());
        Assert.Equal(4, rejected.GetProperty("line").GetInt32());
        Assert.Contains("civilian_targeting 'maybe' must be 'Civilian targeting' or empty", rejected.GetProperty("reason").GetString(), StringComparison.Ordinal);

        var clash = await server.WithDbAsync(db => db.Reports.AsNoTracking().SingleAsync(r => r.ExternalRef == $"acled:CAF{tag}1"));
        Assert.Null(clash.KilledCivilianBest);
        Assert.Equal(3, clash.KilledOtherBest);
        Assert.Equal("|Military Forces of the Central African Republic (2016-)|", clash.Actors);
        Assert.Equal("ACLED", clash.SourceDescription);
        Assert.Equal(new DateTime(2024, 3, 2), clash.ObservedAt);
        var crossfire = await server.WithDbAsync(db => db.Reports.AsNoTracking().SingleAsync(r => r.ExternalRef == $"acled:CAF{tag}2"));
        Assert.Equal(2, crossfire.KilledCivilianBest);
        Assert.Equal(new DateTime(2024, 3, 4), crossfire.ObservedAt);

        // A GED file's empty province written NA: no ", NA" in the narrative.
        var lines = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv")).Take(2).ToList();
        var id = Random.Shared.NextInt64(40_000_000_000, 50_000_000_000);
        var row = id.ToString(System.Globalization.CultureInfo.InvariantCulture) + lines[1][lines[1].IndexOf(',', StringComparison.Ordinal)..];
        Assert.Contains(",Bangui province,", row, StringComparison.Ordinal);
        var (_, ged) = await ImportAsync("joc", "format=ged&classification=UNCLASSIFIED&releasableTo=mission", lines[0] + "\n" + row.Replace(",Bangui province,", ",NA,", StringComparison.Ordinal), "text/csv");
        Assert.Equal(1, ged.GetProperty("created").GetInt32());
        var narrative = await server.WithDbAsync(db => db.Reports.Where(r => r.ExternalRef == $"ucdp-ged:{id}").Select(r => r.Narrative).SingleAsync());
        Assert.Contains("Bangui city:", narrative, StringComparison.Ordinal);
        Assert.DoesNotContain("NA", narrative, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GeoJSON_as_ogr2ogr_and_QGIS_write_it_is_read()
    {
        // ogr2ogr writes a spreadsheet's empty cells as "" (each optional property left empty rejected its feature), and
        // QGIS writes a layer typed MultiPoint with one position per feature (each rejected as no Point).
        var tag = Guid.NewGuid().ToString("N")[..6];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "geometry": { "type": "Point", "coordinates": [18.56, 4.37] }, "properties": { "id": "{{tag}}-1", "observedAt": "2025-06-04", "category": "poc",
                "narrative": "{{tag}} blank cells", "killed": "", "killedCivilians": " ", "injured": "", "credibility": "", "reliability": "", "language": "", "observedPrecision": "",
                "precisionMeters": "", "source": "", "actors": "" } },
              { "type": "Feature", "geometry": { "type": "MultiPoint", "coordinates": [[18.57, 4.38]] }, "properties": { "id": "{{tag}}-2", "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} one point" } },
              { "type": "Feature", "geometry": { "type": "MultiPoint", "coordinates": [[18.57, 4.38], [18.6, 4.4]] }, "properties": { "id": "{{tag}}-3", "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} two points" } },
              { "type": "Feature", "geometry": null, "properties": { "id": "{{tag}}-4", "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} no place" } },
              { "type": "Feature", "geometry": { "type": "LineString", "coordinates": [[18.57, 4.38], [18.6, 4.4]] }, "properties": { "id": "{{tag}}-5", "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} a road" } }
            ] }
            """;
        var (status, summary) = await ImportAsync("ocha", $"format=geojson&source=ogr-{tag}&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal([3, 4, 5], rejected.Keys.Order());
        Assert.Equal("feature's geometry is a MultiPoint of 2 positions: a report has one place (a Point, or a MultiPoint of one)", rejected[3]);
        Assert.Equal("feature's geometry is null: a report needs a Point with [longitude, latitude]", rejected[4]);
        Assert.Equal("feature's geometry is a 'LineString', not a Point with [longitude, latitude]", rejected[5]);

        var blank = await server.WithDbAsync(db => db.Reports.AsNoTracking().SingleAsync(r => r.Narrative == tag + " blank cells"));
        Assert.Null(blank.KilledOtherBest);
        Assert.Null(blank.KilledCivilianBest);
        Assert.Null(blank.InjuredOtherBest);
        Assert.Equal("F", blank.SourceReliability);
        Assert.Equal(1000, blank.LocationPrecisionMeters);
        Assert.Equal("", blank.Actors.Trim('|'));
        var point = await server.WithDbAsync(db => db.Reports.AsNoTracking().SingleAsync(r => r.Narrative == tag + " one point"));
        Assert.Equal((4.38, 18.57), (point.Latitude, point.Longitude));
    }

    [Fact]
    public async Task A_file_of_which_nothing_can_be_read_is_refused_naming_why()
    {
        // The wrong format for the file, an empty body, no FeatureCollection: answered 200 with one "row" rejected, while
        // `concord import` exits 1 for the same file. Refused, naming the body, and nothing is stored.
        var acled = "event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,latitude,longitude,geo_precision,fatalities,notes\n" +
            "CAFX1,2024-03-02,1,Battles,Armed clash,A,B,5.1,20.1,1,1,Wrong format.";
        foreach (var (query, body, reason) in new[]
        {
            ("format=ged", acled, "the header lacks the GED column"),
            ("format=acled", "", "the file is empty"),
            ("format=geojson&source=not-a-collection", "{ \"type\": \"Feature\" }", "not a GeoJSON FeatureCollection"),
        })
        {
            var (status, problem) = await ImportAsync("joc", query + "&classification=UNCLASSIFIED&releasableTo=mission", body, "text/csv");
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal(["body"], problem.ErrorFields());
            Assert.Contains(reason, problem.GetProperty("errors").GetProperty("body")[0].GetString(), StringComparison.Ordinal);
        }

        // A spreadsheet in a French locale saves CSV with ';': told so, not that the columns it shows are missing.
        var (semicolons, semicolonProblem) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", acled.Replace(',', ';'), "text/csv");
        Assert.Equal(HttpStatusCode.BadRequest, semicolons);
        Assert.StartsWith("the columns are separated by ';', not commas", semicolonProblem.GetProperty("errors").GetProperty("body")[0].GetString(), StringComparison.Ordinal);
        var (_, tabsProblem) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", acled.Replace(',', '\t'), "text/csv");
        Assert.StartsWith("the columns are separated by tabs, not commas", tabsProblem.GetProperty("errors").GetProperty("body")[0].GetString(), StringComparison.Ordinal);

        // A row saved as Windows-1252 (Ndélé): rejected, saying how to save the file.
        var latin = Encoding.UTF8.GetBytes(acled.Replace("CAFX1", "CAFX" + Guid.NewGuid().ToString("N")[..6], StringComparison.Ordinal).Replace("Wrong format.", "Near NdXlX.", StringComparison.Ordinal));
        for (var i = 0; i < latin.Length; i++)
        {
            latin[i] = latin[i] == (byte)'X' && i > latin.Length - 20 ? (byte)0xE9 : latin[i];
        }

        using var client = server.ClientFor("joc");
        var windows = await (await client.PostAsync("/api/imports?format=acled&classification=UNCLASSIFIED&releasableTo=mission", new ByteArrayContent(latin))).Json();
        Assert.Contains("save it again as CSV UTF-8", Assert.Single(windows.GetProperty("rejectedRows").EnumerateArray()).GetProperty("reason").GetString(), StringComparison.Ordinal);

        // A file whose rows are all bad was read: its rows are listed, as before.
        var (rowsStatus, rows) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED&releasableTo=mission", acled.Replace("2024-03-02", "not a date", StringComparison.Ordinal), "text/csv");
        Assert.Equal(HttpStatusCode.OK, rowsStatus);
        Assert.Equal(2, Assert.Single(rows.GetProperty("rejectedRows").EnumerateArray()).GetProperty("line").GetInt32());
    }

    [Fact]
    public async Task A_GED_file_credits_the_release_its_name_gives()
    {
        // Two real GED events under ids of their own, so that this test owns them.
        var lines = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv")).Take(3).ToList();
        var first = Random.Shared.NextInt64(10_000_000_000, 20_000_000_000);
        var csv = string.Join('\n', [lines[0], .. lines.Skip(1).Select((line, i) => (first + i).ToString(System.Globalization.CultureInfo.InvariantCulture) + line[line.IndexOf(',', StringComparison.Ordinal)..])]);

        var (status, named) = await ImportAsync("joc", "format=ged&classification=UNCLASSIFIED&releasableTo=mission&source=GEDEvent_v24_1", csv, "text/csv");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(2, named.GetProperty("created").GetInt32());
        Assert.Equal($"UCDP GED 24.1 event {first}", await DescriptionAsync(first));

        // Without a name that says which release it is, none is claimed.
        var unnamed = csv.Replace($"\n{first}", $"\n{first + 10}", StringComparison.Ordinal);
        var (_, plain) = await ImportAsync("joc", "format=ged&classification=UNCLASSIFIED&releasableTo=mission", unnamed, "text/csv");
        Assert.Equal(1, plain.GetProperty("created").GetInt32());
        Assert.Equal($"UCDP GED event {first + 10}", await DescriptionAsync(first + 10));

        // The same events from a file named otherwise are the same records: already imported, not changed content.
        var (_, renamed) = await ImportAsync("joc", "format=ged&classification=UNCLASSIFIED&releasableTo=mission&source=GEDEvent_v25_1", csv, "text/csv");
        Assert.Equal((0, 2, 0), (renamed.GetProperty("created").GetInt32(), renamed.GetProperty("skipped").GetInt32(), renamed.GetProperty("rejected").GetInt32()));
        Assert.Equal($"UCDP GED 24.1 event {first}", await DescriptionAsync(first));

        Task<string?> DescriptionAsync(long id) => server.WithDbAsync(db =>
            db.Reports.Where(r => r.ExternalRef == $"ucdp-ged:{id}").Select(r => r.SourceDescription).SingleAsync());
    }

    [Fact]
    public async Task An_upload_over_Kestrels_default_30_MB_is_read_and_its_rows_judged()
    {
        // 40 MB: one row far too long for any record (the reader keeps at most 1 MiB of one). Kestrel alone would cut the
        // body at 30 MB.
        var csv = "event_id_cnty,event_date,time_precision,event_type,sub_event_type,actor1,actor2,latitude,longitude,geo_precision,fatalities,notes\n"
            + "BIG1,2024-03-02,1,Battles,Armed clash,A,B,5.1,20.1,1,0," + new string('n', 40 * 1024 * 1024) + "\n";

        var (status, summary) = await ImportAsync("joc", "format=acled&classification=UNCLASSIFIED", csv, "text/csv");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("rejected").GetInt32());
        Assert.Equal("is longer than 1,048,576 characters (lines 2–2) and is skipped", summary.GetProperty("rejectedRows")[0].GetProperty("reason").GetString());
        Assert.Equal(2, summary.GetProperty("rejectedRows")[0].GetProperty("line").GetInt32());
    }

    [Fact]
    public async Task A_time_to_the_tenth_of_a_microsecond_is_the_same_time_when_imported_again()
    {
        // .NET's round-trip format writes seven decimals; PostgreSQL keeps six (rounding up before 2000). Imported again with other marking options,
        // the record is already there, not "changed at the source".
        var tag = Guid.NewGuid().ToString("N")[..6];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}", "geometry": { "type": "Point", "coordinates": [21.98, 6.31] },
                "properties": { "observedAt": "2025-08-08T14:30:00.1234567Z", "category": "poc.forced-displacement", "narrative": "{{tag}} families left Ippy",
                                "precisionMeters": 500, "reliability": "C", "credibility": 3 } },
              { "type": "Feature", "id": "{{tag}}-old", "geometry": { "type": "Point", "coordinates": [21.98, 6.31] },
                "properties": { "observedAt": "1999-08-08T14:30:00.1234567Z", "category": "poc.forced-displacement", "narrative": "{{tag}} families left Ippy in 1999",
                                "precisionMeters": 500, "reliability": "C", "credibility": 3 } }
            ] }
            """;
        var (_, first) = await ImportAsync("ocha", "format=geojson&source=precise-clock&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");
        var (_, again) = await ImportAsync("ocha", "format=geojson&source=precise-clock&classification=CONFIDENTIAL&releasableTo=org:OCHA", geojson, "application/geo+json");

        Assert.Equal(2, first.GetProperty("created").GetInt32());
        Assert.True((0, 2, 0) == (again.GetProperty("created").GetInt32(), again.GetProperty("skipped").GetInt32(), again.GetProperty("rejected").GetInt32()), again.ToString());
    }

    [Fact]
    public async Task A_row_the_store_refuses_costs_only_itself_and_leaves_no_trace_in_the_others()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        // A store-side refusal of a row the validation cannot foresee (a constraint: RAISE(ABORT) is one on SQLite, and the
        // PostgreSQL trigger raises a check violation), for this test's rows only.
        var sqlite = await server.WithDbAsync(db => Task.FromResult(db.Database.IsSqlite()));
        string[] poison = sqlite
            ? [$"CREATE TRIGGER poison_{tag} BEFORE INSERT ON reports WHEN NEW.narrative LIKE '%poison {tag}%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"]
            : [$"CREATE FUNCTION poison_{tag}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.narrative LIKE '%poison {tag}%' THEN RAISE EXCEPTION 'poisoned' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$",
               $"CREATE TRIGGER poison_{tag} BEFORE INSERT ON reports FOR EACH ROW EXECUTE FUNCTION poison_{tag}()"];
        await ExecuteAsync(poison);

        // Two accounts of one event in one batch: the second joins the first's incident in memory, then the store refuses it.
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [22.41, 5.75] },
                "properties": { "observedAt": "2025-07-01T10:00:00Z", "category": "poc.forced-displacement", "narrative": "{{tag}} families fled Bria market after shooting",
                                "killed": 2, "precisionMeters": 500, "reliability": "C", "credibility": 3, "actors": ["Armed group"] } },
              { "type": "Feature", "id": "{{tag}}-2", "geometry": { "type": "Point", "coordinates": [22.411, 5.751] },
                "properties": { "observedAt": "2025-07-01T11:00:00Z", "category": "poc.forced-displacement", "narrative": "poison {{tag}} families fled Bria market after shooting",
                                "killed": 9, "precisionMeters": 500, "reliability": "C", "credibility": 3, "actors": ["Armed group"] } }
            ] }
            """;
        var (status, summary) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");
        var cure = sqlite ? $"DROP TRIGGER poison_{tag}" : $"DROP TRIGGER poison_{tag} ON reports";
        await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(cure));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("created").GetInt32());
        var refused = Assert.Single(summary.GetProperty("rejectedRows").EnumerateArray());
        Assert.Equal(2, refused.GetProperty("line").GetInt32());
        Assert.Contains("store refused", refused.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var (_, list) = await server.ClientFor("ocha").GetJson($"/api/incidents?q={tag}");
        var incident = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal(1, incident.GetProperty("reportCount").GetInt32());
        Assert.Equal(2, incident.GetProperty("killedBest").GetInt32());
        Assert.Equal(2, incident.GetProperty("killed").GetProperty("high").GetInt32());
    }

    [Fact]
    public async Task Datasets_whose_names_hold_a_colon_keep_their_features_apart()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        static string Feature(string id, double longitude, string narrative) => $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{id}}", "geometry": { "type": "Point", "coordinates": [{{longitude}}, 5.75] },
                "properties": { "observedAt": "2025-07-01", "category": "poc", "narrative": "{{narrative}}" } } ] }
            """;

        // Dataset "tag:a" feature "b" and dataset "tag" feature "a:b": two records, not one.
        var (_, first) = await ImportAsync("ocha", $"format=geojson&source={tag}%3Aa&classification=UNCLASSIFIED&releasableTo=mission", Feature("b", 16.1, $"{tag} first survey"), "application/geo+json");
        var (_, second) = await ImportAsync("ocha", $"format=geojson&source={tag}&classification=UNCLASSIFIED&releasableTo=mission", Feature("a:b", 23.9, $"{tag} second survey"), "application/geo+json");

        Assert.Equal(1, first.GetProperty("created").GetInt32());
        Assert.Equal(1, second.GetProperty("created").GetInt32());
        Assert.Equal(0, second.GetProperty("skipped").GetInt32());
        var (_, reports) = await server.ClientFor("ocha").GetJson($"/api/reports?q={tag}");
        Assert.Equal(2, reports.GetProperty("items").GetArrayLength());
        var (_, again) = await ImportAsync("ocha", $"format=geojson&source={tag}%3Aa&classification=UNCLASSIFIED&releasableTo=mission", Feature("b", 16.1, $"{tag} first survey"), "application/geo+json");
        Assert.Equal(1, again.GetProperty("skipped").GetInt32());

        // A name of 80 colons is short enough, but written into each feature's reference it is not: refused before the
        // file is read, not feature by feature.
        var (status, problem) = await ImportAsync("ocha", $"format=geojson&source={string.Concat(Enumerable.Repeat("%3A", 80))}&classification=UNCLASSIFIED&releasableTo=mission",
            Feature("c", 16.2, $"{tag} colons"), "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(["source"], problem.ErrorFields());
    }

    [Fact]
    public async Task Codes_as_long_as_a_feature_and_too_many_actors_are_refused_without_being_quoted_back()
    {
        // A feature may be up to 1 MB: a category, language or grade that long is no code, and its reason must not quote it
        // (the summary would carry every such megabyte back); 21 actors are one more than a report may name.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var huge = new string('x', 200_000);
        var actors = string.Join(", ", Enumerable.Range(1, 21).Select(i => $"\"group {i}\""));
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "{{huge}}", "narrative": "{{tag}} long category" } },
              { "type": "Feature", "id": "{{tag}}-2", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "language": "{{huge}}", "narrative": "{{tag}} long language" } },
              { "type": "Feature", "id": "{{tag}}-3", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "observedPrecision": "{{huge}}", "narrative": "{{tag}} long precision" } },
              { "type": "Feature", "id": "{{tag}}-4", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "reliability": "{{huge}}", "narrative": "{{tag}} long grade" } },
              { "type": "Feature", "id": "{{tag}}-5", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "actors": [{{actors}}], "narrative": "{{tag}} many actors" } },
              { "type": "Feature", "id": "{{tag}}-6", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} good" } }
            ] }
            """;

        var (status, summary) = await ImportAsync("ocha", $"format=geojson&source=long-codes-{tag}&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal([1, 2, 3, 4, 5], rejected.Keys.Order());
        Assert.All(rejected.Values, reason => Assert.InRange(reason.Length, 1, 299));
        Assert.StartsWith("category (from properties.category): is 200000 characters long", rejected[1], StringComparison.Ordinal);
        Assert.StartsWith("language (from properties.language): ", rejected[2], StringComparison.Ordinal);
        Assert.StartsWith("observedPrecision (from properties.observedPrecision): must be one of", rejected[3], StringComparison.Ordinal);
        Assert.StartsWith("source.reliability (from properties.reliability): ", rejected[4], StringComparison.Ordinal);
        Assert.Equal("actors (from properties.actors): at most 20 actors are allowed", rejected[5]);
    }

    [Fact]
    public async Task Properties_of_the_wrong_kind_are_named_instead_of_read_as_missing()
    {
        // Actors given as one string were imported as none, a category given as an object was "required": a value that is
        // there but of another kind is named with its path, and the feature is rejected alone.
        var tag = Guid.NewGuid().ToString("N")[..6];
        string Feature(string id, string properties) =>
            $$"""{ "type": "Feature", {{id}} "geometry": { "type": "Point", "coordinates": [21.41, 5.15] }, "properties": {{properties}} }""";
        var ok = $"\"observedAt\": \"2025-07-02\", \"category\": \"poc\", \"narrative\": \"{tag}";
        var geojson = "{ \"type\": \"FeatureCollection\", \"features\": [" + string.Join(",\n", [
            Feature($"\"id\": \"{tag}-1\",", $$"""{ {{ok}} 1", "category": { "code": "poc" } }"""),
            Feature($"\"id\": \"{tag}-2\",", $$"""{ {{ok}} 2", "actors": "Armed group" }"""),
            Feature($"\"id\": \"{tag}-3\",", $$"""{ {{ok}} 3", "actors": ["Armed group", 5] }"""),
            Feature($"\"id\": \"{tag}-4\",", $$"""{ "observedAt": "2025-07-02", "category": "poc", "narrative": true }"""),
            Feature($"\"id\": \"{tag}-5\",", "[]"),
            Feature("\"id\": { \"n\": 6 },", $$"""{ {{ok}} 6" }"""),
            Feature($"\"id\": \"{tag}-7\",", $$"""{ {{ok}} 7", "actors": null, "language": "fr" }"""),
        ]) + "] }";

        var (status, summary) = await ImportAsync("ocha", $"format=geojson&source=kinds-{tag}&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal("properties.category is an object, not text", rejected[1]);
        Assert.Equal("properties.actors is text, not an array of names", rejected[2]);
        Assert.Equal("properties.actors[1] is a number, not a name", rejected[3]);
        Assert.Equal("properties.narrative is true, not text", rejected[4]);
        Assert.Equal("feature.properties is an array, not an object", rejected[5]);
        Assert.Equal("feature.id is an object, not text", rejected[6]);
        Assert.Equal([1, 2, 3, 4, 5, 6], rejected.Keys.Order());
    }

    [Fact]
    public async Task A_feature_holding_half_a_surrogate_pair_is_rejected_alone_and_whole_numbers_may_carry_a_fraction()
    {
        // "\ud83d" is valid JSON (an emoji cut in two by a serialiser) but no text: it ended the whole import with a 500.
        // GeoPandas writes an integer column with a missing value as 5.0: that is five.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [21.41, 5.15] },
                "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} cut emoji \ud83d", "killed": 1 } },
              { "type": "Feature", "id": "{{tag}}-2", "geometry": { "type": "Point", "coordinates": [21.91, 5.65] },
                "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} five killed", "killed": 5.0, "killedCivilians": 2.00, "credibility": 2.0, "reliability": "B" } },
              { "type": "Feature", "id": "{{tag}}-3", "geometry": { "type": "Point", "coordinates": [22.41, 6.15] },
                "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} half a person", "killed": 5.5 } },
              { "type": "Feature", "id": "{{tag}}-4", "geometry": { "type": "Point", "coordinates": [22.91, 6.65] },
                "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} bad actor", "actors": ["\udc00 group"] } }
            ] }
            """;

        var (status, summary) = await ImportAsync("ocha", $"format=geojson&source=surrogates-{tag}&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString());
        Assert.Equal([1, 3, 4], rejected.Keys.Order());
        Assert.StartsWith("feature.properties.narrative holds half of a surrogate pair", rejected[1], StringComparison.Ordinal);
        Assert.Contains("properties.killed 5.5 must be a whole number", rejected[3], StringComparison.Ordinal);
        Assert.StartsWith("feature.properties.actors[0] holds half of a surrogate pair", rejected[4], StringComparison.Ordinal);
        var (_, list) = await server.ClientFor("ocha").GetJson($"/api/reports?q={tag}");
        var report = Assert.Single(list.GetProperty("items").EnumerateArray());
        Assert.Equal(2, report.GetProperty("casualties").GetProperty("killedCivilian").GetProperty("best").GetInt32());
        Assert.Equal(3, report.GetProperty("casualties").GetProperty("killedOther").GetProperty("best").GetInt32());
        Assert.Equal(2, report.GetProperty("source").GetProperty("credibility").GetInt32());
    }

    [Fact]
    public async Task A_store_that_fails_in_itself_fails_the_import_instead_of_rejecting_every_row()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        // Not a refusal of a row but a failure of the store (an unknown function on SQLite, a full disk on PostgreSQL).
        var sqlite = await server.WithDbAsync(db => Task.FromResult(db.Database.IsSqlite()));
        string[] broken = sqlite
            ? [$"CREATE TRIGGER broken_{tag} BEFORE INSERT ON reports WHEN NEW.narrative LIKE '%{tag}%' BEGIN SELECT no_such_function_{tag}(); END"]
            : [$"CREATE FUNCTION broken_{tag}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.narrative LIKE '%{tag}%' THEN RAISE EXCEPTION 'no space' USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$",
               $"CREATE TRIGGER broken_{tag} BEFORE INSERT ON reports FOR EACH ROW EXECUTE FUNCTION broken_{tag}()"];
        await ExecuteAsync(broken);

        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [22.41, 5.75] }, "properties": { "observedAt": "2025-07-01", "category": "poc", "narrative": "{{tag}} one" } },
              { "type": "Feature", "id": "{{tag}}-2", "geometry": { "type": "Point", "coordinates": [19.41, 6.75] }, "properties": { "observedAt": "2025-07-02", "category": "poc", "narrative": "{{tag}} two" } }
            ] }
            """;
        using var client = server.ClientFor("ocha");
        var response = await client.PostAsync("/api/imports?format=geojson&source=broken-store&classification=UNCLASSIFIED&releasableTo=mission", new StringContent(geojson, Encoding.UTF8, "application/geo+json"));
        await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(sqlite ? $"DROP TRIGGER broken_{tag}" : $"DROP TRIGGER broken_{tag} ON reports"));

        // A full disk is an outage (503, try again later); an unknown function is a fault (500).
        var failed = sqlite ? HttpStatusCode.InternalServerError : HttpStatusCode.ServiceUnavailable;
        Assert.Equal(failed, response.StatusCode);
        var (_, list) = await server.ClientFor("ocha").GetJson($"/api/reports?q={tag}");
        Assert.Empty(list.GetProperty("items").EnumerateArray());

        // The same when the store fails while an account joins a stored incident (its summary is updated, not inserted).
        static string Account(string tag, int n) => $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-join-{{n}}", "geometry": { "type": "Point", "coordinates": [16.07, 8.13] },
                "properties": { "observedAt": "2024-11-03T1{{n}}:00:00Z", "category": "poc.forced-displacement", "narrative": "joining {{tag}} herders left Kabo after raids",
                                "killed": 2, "precisionMeters": 500, "reliability": "C", "credibility": 3, "actors": ["Armed group"] } }
            ] }
            """;
        var first = await client.PostAsync("/api/imports?format=geojson&source=broken-store&classification=UNCLASSIFIED&releasableTo=mission", new StringContent(Account(tag, 0), Encoding.UTF8, "application/geo+json"));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        string[] brokenUpdate = sqlite
            ? [$"CREATE TRIGGER broken_update_{tag} BEFORE UPDATE ON incidents WHEN NEW.title LIKE '%{tag}%' BEGIN SELECT no_such_function_{tag}(); END"]
            : [$"CREATE FUNCTION broken_update_{tag}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.title LIKE '%{tag}%' THEN RAISE EXCEPTION 'no space' USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$",
               $"CREATE TRIGGER broken_update_{tag} BEFORE UPDATE ON incidents FOR EACH ROW EXECUTE FUNCTION broken_update_{tag}()"];
        await ExecuteAsync(brokenUpdate);
        var joining = await client.PostAsync("/api/imports?format=geojson&source=broken-store&classification=UNCLASSIFIED&releasableTo=mission", new StringContent(Account(tag, 1), Encoding.UTF8, "application/geo+json"));
        await server.WithDbAsync(db => db.Database.ExecuteSqlRawAsync(sqlite ? $"DROP TRIGGER broken_update_{tag}" : $"DROP TRIGGER broken_update_{tag} ON incidents"));
        Assert.True(joining.StatusCode == failed, await joining.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_summary_lists_the_first_rejected_rows_by_line_whoever_rejected_them()
    {
        // 2,000 features the intake rejects (an unknown category), then 2,000 the reader rejects (a day-first date): the
        // reader's are found first, while the intake stores the first batch.
        var tag = Guid.NewGuid().ToString("N")[..6];
        string Feature(int n, string category, string observedAt) =>
            $$"""{ "type": "Feature", "id": "{{tag}}-{{n}}", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "{{observedAt}}", "category": "{{category}}", "narrative": "x" } }""";
        var features = Enumerable.Range(1, 2000).Select(n => Feature(n, "no.such.category", "2025-06-02"))
            .Concat(Enumerable.Range(2001, 2000).Select(n => Feature(n, "poc", "02/06/2025")));
        var geojson = "{ \"type\": \"FeatureCollection\", \"features\": [" + string.Join(",\n", features) + "] }";

        var (status, summary) = await ImportAsync("ocha", "format=geojson&source=first-by-line&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(4000, summary.GetProperty("rejected").GetInt32());
        var listed = summary.GetProperty("rejectedRows").EnumerateArray().Select(r => r.GetProperty("line").GetInt32()).ToList();
        Assert.Equal(Enumerable.Range(1, Import.Importer.MaxListed), listed);
    }

    [Fact]
    public async Task An_empty_releasableTo_keeps_the_rows_to_the_importing_organisation()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [18.56, 4.37] },
                "properties": { "observedAt": "2025-06-01T10:00:00Z", "category": "poc.forced-displacement", "narrative": "{{tag}} families fled PK5" } }
            ] }
            """;

        var (status, summary) = await ImportAsync("ocha", "format=geojson&source=ours-only&classification=UNCLASSIFIED&releasableTo=", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(1, summary.GetProperty("created").GetInt32());
        var (_, own) = await server.ClientFor("ocha").GetJson($"/api/reports?q={tag}");
        var report = Assert.Single(own.GetProperty("items").EnumerateArray());
        Assert.Equal(["org:OCHA"], report.GetProperty("marking").GetProperty("releasableTo").EnumerateArray().Select(e => e.GetString()));
        var (_, others) = await server.ClientFor("force").GetJson($"/api/reports?q={tag}");
        Assert.Empty(others.GetProperty("items").EnumerateArray());
    }

    /// <summary>A file that cancels its import once the reader is past <paramref name="fraction"/> of it (a client that goes away).</summary>
    private sealed class CancellingStream(byte[] bytes, double fraction, CancellationTokenSource cancel) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (Position > Length * fraction)
            {
                cancel.Cancel();
            }

            return base.Read(buffer, offset, count);
        }
    }

    [Fact]
    public async Task An_import_stopped_part_way_counts_in_its_audit_entry_every_row_it_stored()
    {
        // Cancelled while batches are with the writer: those are stored all the same, and the run's entry counts them.
        var source = "stopped-" + Guid.NewGuid().ToString("N")[..8];
        var features = Enumerable.Range(0, 4 * Import.Importer.BatchSize).Select(i =>
            $$"""{ "type": "Feature", "id": "{{i}}", "geometry": { "type": "Point", "coordinates": [{{(16 + i % 1000 * 0.004).ToString(System.Globalization.CultureInfo.InvariantCulture)}}, 9.1] }, "properties": { "observedAt": "2019-03-01T10:00:00Z", "category": "poc", "narrative": "Stopped import row {{i}}." } }""");
        var bytes = Encoding.UTF8.GetBytes($$"""{ "type": "FeatureCollection", "features": [{{string.Join(",\n", features)}}] }""");
        using var cancel = new CancellationTokenSource();
        await using var input = new CancellingStream(bytes, 0.6, cancel);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => server.Services.GetRequiredService<Import.Importer>()
            .RunAsync(Import.ImportFormat.GeoJson, input, server.ViewerOf("ocha"), new Access.MarkingDto("UNCLASSIFIED", ["mission"], []), source, null, cancel.Token));

        var stored = await server.WithDbAsync(db => db.Reports.CountAsync(r => r.ExternalRef!.StartsWith($"geojson:{source}:")));
        var entry = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == Audit.AuditActions.Import && a.Detail.Contains(source)).SingleAsync());
        var detail = System.Text.Json.JsonDocument.Parse(entry.Detail).RootElement;
        Assert.InRange(stored, 1, 4 * Import.Importer.BatchSize - 1);
        Assert.Equal(stored, detail.GetProperty("created").GetInt32());
        Assert.False(detail.GetProperty("completed").GetBoolean());
    }

    [Fact]
    public async Task An_import_stops_when_its_authors_access_ends_or_changes_and_keeps_what_it_stored()
    {
        // A long upload with a token the member revokes once the first rows are in: the rest is not imported.
        var source = "revoked-" + Guid.NewGuid().ToString("N")[..8];
        var total = 6 * Import.Importer.BatchSize;
        var features = Enumerable.Range(0, total).Select(i =>
            $$"""{ "type": "Feature", "id": "{{i}}", "geometry": { "type": "Point", "coordinates": [{{(16 + i % 1000 * 0.004).ToString(System.Globalization.CultureInfo.InvariantCulture)}}, 9.3] }, "properties": { "observedAt": "2019-04-01T10:00:00Z", "category": "poc", "narrative": "Revoked import row {{i}}." } }""");
        // Signed in (a token makes no tokens), OCHA's analyst makes the token the upload uses, and revokes it.
        using var ocha = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = server.BaseAddress };
        Assert.Equal(HttpStatusCode.OK, (await ocha.PostJson("/api/auth/signin", new { userName = "ocha", password = TestServer.Password })).Response.StatusCode);
        var (_, token) = await ocha.PostJson("/api/me/tokens", new { name = source, expiresInDays = 1 });
        using var byToken = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
        byToken.DefaultRequestHeaders.Authorization = new("Bearer", token.GetProperty("token").GetString());
        var importing = byToken.PostAsync($"/api/imports?format=geojson&source={source}&classification=UNCLASSIFIED&releasableTo=mission",
            new StringContent($$"""{ "type": "FeatureCollection", "features": [{{string.Join(",\n", features)}}] }""", Encoding.UTF8, "application/geo+json"));
        Task<int> StoredAsync() => server.WithDbAsync(db => db.Reports.CountAsync(r => r.ExternalRef!.StartsWith($"geojson:{source}:")));
        for (var i = 0; i < 600 && await StoredAsync() == 0 && !importing.IsCompleted; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.NoContent, (await ocha.DeleteAsync($"/api/me/tokens/{token.GetProperty("id").GetGuid()}")).StatusCode);
        var answer = await importing;

        Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        Assert.Contains("access ended", (await answer.Json()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        var stored = await StoredAsync();
        Assert.InRange(stored, 1, total - 1);
        var entry = await server.WithDbAsync(db => db.Audit.AsNoTracking().Where(a => a.Action == Audit.AuditActions.Import && a.Detail.Contains(source)).SingleAsync());
        var detail = System.Text.Json.JsonDocument.Parse(entry.Detail).RootElement;
        Assert.Equal((stored, false), (detail.GetProperty("created").GetInt32(), detail.GetProperty("completed").GetBoolean()));

        // What marks and releases the rows changing stops it too; a change to nothing of that does not.
        var viewer = server.ViewerOf("ocha");
        Assert.Null(Access.AccessChange.Of(viewer, viewer with { DisplayName = "Renamed" }));
        Assert.NotNull(Access.AccessChange.Of(viewer, viewer with { Clearance = viewer.Clearance - 1 }));
        Assert.NotNull(Access.AccessChange.Of(viewer, viewer with { CaveatBits = viewer.CaveatBits | 1 }));
        Assert.NotNull(Access.AccessChange.Of(viewer, viewer with { Roles = new HashSet<string>() }));
        Assert.NotNull(Access.AccessChange.Of(viewer, viewer with { Groups = [.. viewer.Groups, "new-group"] }));
    }

    [Fact]
    public async Task A_GeoJSON_collection_becomes_reports_once()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        var geojson = $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-1", "geometry": { "type": "Point", "coordinates": [18.56, 4.37] },
                "properties": { "observedAt": "2025-06-01T10:00:00Z", "category": "poc.forced-displacement", "narrative": "{{tag}} families fled PK5",
                                "killed": 0, "precisionMeters": 500, "reliability": "C", "credibility": 3, "actors": ["Armed group"] } },
              { "type": "Feature", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "narrative": "no id" } },
              { "type": "Feature", "id": "{{tag}}-3", "geometry": { "type": "LineString", "coordinates": [[18, 4], [19, 5]] }, "properties": {} },
              { "type": "Feature", "id": "{{tag}}-4", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "no.such.category", "narrative": "x" } },
              { "type": "Feature", "id": "{{tag}}-5", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "poc", "narrative": "x", "killed": "many" } },
              { "type": "Feature", "id": "{{tag}}-6", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "poc", "narrative": "x", "killed": 1, "killedCivilians": 5 } },
              null,
              { "type": "Feature", "id": "{{tag}}-8", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "poc", "narrative": "x", "killed": -1 } },
              { "type": "Feature", "id": "{{tag}}-9", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "04/05/2025", "category": "poc", "narrative": "x" } },
              { "type": "Feature", "id": "{{tag}}-10", "geometry": { "type": "Point", "coordinates": [18.57, 4.38] }, "properties": { "observedAt": "2025-06-03 08:30", "category": "poc.forced-displacement", "narrative": "{{tag}} more families fled" } },
              { "type": "Feature", "id": "{{tag}}-11", "geometry": { "type": "Point", "coordinates": [1e400, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "poc", "narrative": "x" } },
              { "type": "Feature", "id": "{{tag}}-12", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-02T10:00:00Z", "category": "poc", "narrative": "x", "precisionMeters": 1e400 } },
              { "type": "Feature", "id": "{{tag}}-13", "geometry": { "type": "Point", "coordinates": [18.58, 4.39] }, "properties": { "observedAt": "2025-06-03 09:30", "category": "poc.forced-displacement", "narrative": "{{tag}} after the bad ones" } }
            ] }
            """;
        var (status, summary) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3, summary.GetProperty("created").GetInt32());
        var rejected = summary.GetProperty("rejectedRows").EnumerateArray().ToDictionary(r => r.GetProperty("line").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal("geometry.coordinates [1e400, 4.4] are not finite numbers", rejected[11]);
        Assert.Contains("precisionMeters", rejected[12]);
        Assert.Contains("no id", rejected[2]);
        Assert.Contains("Point", rejected[3]);
        Assert.StartsWith("category (from properties.category): ", rejected[4], StringComparison.Ordinal);
        Assert.Contains("properties.killed \"many\" must be a whole number", rejected[5]);
        Assert.Contains("killedCivilians 5 is more than properties.killed 1", rejected[6]);
        Assert.Equal("feature is null, not an object", rejected[7]);
        Assert.Contains("properties.killed -1 must not be negative", rejected[8]);
        Assert.Contains("properties.observedAt '04/05/2025' is not an ISO 8601 date", rejected[9]);
        Assert.Equal([2, 3, 4, 5, 6, 7, 8, 9, 11, 12], rejected.Keys.Order());
        var (_, again) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&classification=UNCLASSIFIED&releasableTo=mission", geojson, "application/geo+json");
        Assert.Equal(3, again.GetProperty("skipped").GetInt32());
        // A document that breaks off before its first feature: nothing of it could be read, and the request is refused
        // naming why (it was answered 200 with the break counted as a rejected feature).
        var (brokenStatus, broken) = await ImportAsync("ocha", "format=geojson&source=broken", "{ \"type\": ", "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, brokenStatus);
        Assert.Equal(["body"], broken.ErrorFields());
        Assert.Contains("not valid JSON", broken.GetProperty("errors").GetProperty("body")[0].GetString());

        // A file in Latin-1, not UTF-8: the feature whose words would be garbled is refused, the others imported.
        var latin1 = Encoding.Latin1.GetBytes($$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": "{{tag}}-L1", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} préfecture de l'Ouham" } },
              { "type": "Feature", "id": "{{tag}}-L2", "geometry": { "type": "Point", "coordinates": [18.6, 4.4] }, "properties": { "observedAt": "2025-06-04", "category": "poc", "narrative": "{{tag}} Bossangoa" } }
            ] }
            """);
        using var client = server.ClientFor("ocha");
        var response = await client.PostAsync("/api/imports?format=geojson&source=latin1&classification=UNCLASSIFIED&releasableTo=mission", new ByteArrayContent(latin1));
        var mixed = await response.Json();
        Assert.Equal(1, mixed.GetProperty("created").GetInt32());
        Assert.Contains("not UTF-8", Assert.Single(mixed.GetProperty("rejectedRows").EnumerateArray()).GetProperty("reason").GetString());

        // A dataset name longer than the store keeps is refused by name, not replaced.
        var (tooLong, problem) = await ImportAsync("ocha", "format=geojson&source=" + new string('s', 101), geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, tooLong);
        Assert.Equal(["source"], problem.ErrorFields());

        // So is a marking that cannot be read, before the file is: not one rejected row per feature.
        var (bogus, bogusProblem) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&classification=BOGUS", geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, bogus);
        Assert.Equal(["classification"], bogusProblem.ErrorFields());
        var (typo, typoProblem) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&classification=UNCLASSIFIED&releasableTo=org:OCAH", geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, typo);
        Assert.Equal(["releasableTo"], typoProblem.ErrorFields());

        // Without a dataset name GeoJSON features would be known by their ids alone; a releasability without a level would be dropped.
        var (nameless, namelessProblem) = await ImportAsync("ocha", "format=geojson&classification=UNCLASSIFIED", geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, nameless);
        Assert.Equal(["source"], namelessProblem.ErrorFields());
        var (levelless, levellessProblem) = await ImportAsync("ocha", "format=geojson&source=ngo-survey&releasableTo=org:OCHA", geojson, "application/geo+json");
        Assert.Equal(HttpStatusCode.BadRequest, levelless);
        Assert.Equal(["releasableTo"], levellessProblem.ErrorFields());
        var (caveatOnly, caveatProblem) = await ImportAsync("ocha", "format=acled&caveats=SOURCE-PROTECTED", "event_id_cnty\n", "text/csv");

        // The body must be the file itself, as UTF-8 text: a form, a compressed body or another charset is refused, not misread.
        using var form = new MultipartFormDataContent { { new StringContent(geojson), "file", "survey.geojson" } };
        using var gzip = new StringContent(geojson, Encoding.UTF8, "application/geo+json");
        gzip.Headers.ContentEncoding.Add("gzip");
        using var windows = new ByteArrayContent(Encoding.Latin1.GetBytes(geojson));
        windows.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("text/csv; charset=windows-1252");
        foreach (var content in new HttpContent[] { form, gzip, windows })
        {
            using var uploader = server.ClientFor("ocha");
            var unread = await uploader.PostAsync("/api/imports?format=geojson&source=ngo-survey&classification=UNCLASSIFIED", content);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, unread.StatusCode);
            var unreadProblem = await unread.Json();
            Assert.True(unreadProblem.ErrorFields() is ["body"], unreadProblem.ToString());
        }

        // What curl --data-binary @FILE sends without a Content-Type of the user's: the file's bytes, read as the file.
        using var curl = new ByteArrayContent(Encoding.UTF8.GetBytes(geojson));
        curl.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-www-form-urlencoded");
        using var curlClient = server.ClientFor("ocha");
        var posted = await curlClient.PostAsync("/api/imports?format=geojson&source=ngo-survey&classification=UNCLASSIFIED&releasableTo=mission", curl);
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        Assert.Equal(3, (await posted.Json()).GetProperty("skipped").GetInt32());

        Assert.Equal(HttpStatusCode.BadRequest, caveatOnly);
        Assert.Equal(["caveats"], caveatProblem.ErrorFields());
    }

    [Fact]
    public async Task Two_organisations_GeoJSON_features_that_share_an_id_are_fused_on_their_content_not_joined_as_one_record()
    {
        var tag = Guid.NewGuid().ToString("N")[..6];
        static string Survey(string tag, string narrative, double longitude, string day) => $$"""
            { "type": "FeatureCollection", "features": [
              { "type": "Feature", "id": 1, "geometry": { "type": "Point", "coordinates": [{{longitude.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, 4.4] },
                "properties": { "observedAt": "{{day}}", "category": "poc", "narrative": "{{tag}} {{narrative}}" } }
            ] }
            """;
        const string Query = "format=geojson&source=survey-{0}&classification=UNCLASSIFIED&releasableTo=mission";
        var (_, first) = await ImportAsync("ocha", string.Format(System.Globalization.CultureInfo.InvariantCulture, Query, tag), Survey(tag, "water point survey at Bossangoa", 17.45, "2025-02-01"), "application/geo+json");
        var (_, second) = await ImportAsync("force", string.Format(System.Globalization.CultureInfo.InvariantCulture, Query, tag), Survey(tag, "checkpoint census near Obo", 26.49, "2025-05-20"), "application/geo+json");
        Assert.Equal((1, 1), (first.GetProperty("created").GetInt32(), second.GetProperty("created").GetInt32()));

        var (_, reports) = await server.ClientFor("joc").GetJson($"/api/reports?q={tag}");
        var incidents = reports.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("incidentId").GetGuid()).ToList();
        Assert.Equal(2, incidents.Count);
        Assert.NotEqual(incidents[0], incidents[1]);
    }
}

public sealed class ImportTests_Sqlite(SqliteServer server) : ImportTests<SqliteServer>(server);

public sealed class ImportTests_Postgres(PostgresServer server) : ImportTests<PostgresServer>(server);

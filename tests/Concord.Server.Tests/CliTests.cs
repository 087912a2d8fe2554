using Concord.Server.Cli;
using Concord.Server.Data;
using Concord.Server.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Concord.Server.Tests;

public abstract class CliTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("concord-cli-").FullName;

    internal string DataDirectory => _directory;

    /// <summary>The store options a verb is given on the command line.</summary>
    internal abstract string[] StoreArguments { get; }

    internal abstract Task<StoreOptions> StoreAsync();

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    internal static async Task<(int Exit, string Output, string Errors)> Run(params string[] args)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        var exit = await Commands.RunAsync(args, output, errors, CancellationToken.None);
        return (exit, output.ToString(), errors.ToString());
    }

    [Fact]
    public async Task Migrate_then_add_an_organisation_a_member_and_a_token()
    {
        var migrate = await Run(["migrate", .. StoreArguments]);
        var again = await Run(["migrate", .. StoreArguments]);
        var org = await Run(["org", "add", "--code", "unmas", "--name", "UN Mine Action Service", "--kind", "humanitarian", .. StoreArguments]);
        var user = await Run(["user", "add", "--user", "Deminer.One", "--org", "UNMAS", "--roles", "reporter,analyst", "--clearance", "CONFIDENTIAL", "--caveats", "DECONFLICTION-ONLY", .. StoreArguments]);
        var token = await Run(["token", "create", "--user", "deminer.one", "--days", "7", .. StoreArguments]);

        Assert.Equal(0, migrate.Exit);
        Assert.Contains("applied 0001_initial", migrate.Output);
        Assert.Contains("up to date", again.Output);
        Assert.Equal((0, "added organisation UNMAS (UN Mine Action Service, humanitarian)"), (org.Exit, org.Output.Trim()));
        Assert.True(user.Exit == 0, user.Errors);
        Assert.Matches("password: \\S{10,}", user.Output);
        Assert.DoesNotContain("warning", user.Errors, StringComparison.Ordinal);
        Assert.Equal(0, token.Exit);
        Assert.StartsWith("cnc_", token.Output.Trim());

        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await db.Members.SingleAsync(m => m.UserName == "deminer.one");
        Assert.Equal(1, member.Clearance);
        Assert.Equal("reporter,analyst", member.Roles);
        var creation = await db.Audit.Where(e => e.Entity == "member" && e.Detail.Contains("\"created\":\"deminer.one\"")).Select(e => e.Detail).SingleAsync();
        Assert.NotEqual(0, member.Caveats);
        Assert.Contains($"\"caveats\":{member.Caveats}", creation, StringComparison.Ordinal);
        var stored = await db.AccessTokens.SingleAsync(t => t.MemberId == member.Id);
        Assert.Equal(Accounts.AccessTokens.HashSecret(token.Output.Trim()), stored.SecretHash);
        Assert.Equal(7, (stored.ExpiresAt - stored.CreatedAt).TotalDays, 3);

        var device = await Run(["cert", "issue", "--user", "deminer.one", "--out", Path.Combine(_directory, "device-certs"), .. StoreArguments]);
        Assert.True(device.Exit == 0, device.Errors);
        var thumbprint = System.Text.RegularExpressions.Regex.Match(device.Output, "issued certificate ([0-9a-f]+)").Groups[1].Value;
        var set = await Run(["user", "set", "--user", "deminer.one", "--clearance", "UNCLASSIFIED", "--caveats", "", "--roles", "reporter", "--disable", .. StoreArguments]);
        Assert.Equal((0, "deminer.one: reporter; clearance UNCLASSIFIED; caveats none; disabled"), (set.Exit, set.Output.Trim()));
        var enable = await Run(["user", "set", "--user", "deminer.one", "--enable", .. StoreArguments]);
        Assert.Equal(0, enable.Exit);
        // Disabling revokes the member's tokens and device certificates: enabled again, the old ones do not come back.
        await using (var disabled = services.CreateAsyncScope())
        {
            var disabledDb = disabled.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.NotNull((await disabledDb.AccessTokens.SingleAsync(t => t.Id == stored.Id)).RevokedAt);
            Assert.NotNull((await disabledDb.DeviceCertificates.SingleAsync(c => c.Thumbprint == thumbprint)).RevokedAt);
        }

        Assert.Equal(0, (await Run(["user", "set", "--user", "deminer.one", "--disable", .. StoreArguments])).Exit);
        // Disabled on the server, as by a mission administrator: the organisation's administrators do not enable them again.
        await using (var suspended = services.CreateAsyncScope())
        {
            Assert.True(await suspended.ServiceProvider.GetRequiredService<ConcordDb>().Members.Where(m => m.UserName == "deminer.one").Select(m => m.DisabledByMission).SingleAsync());
        }

        // A disabled member gets no credential that would not work.
        var disabledToken = await Run(["token", "create", "--user", "deminer.one", .. StoreArguments]);
        var disabledCert = await Run(["cert", "issue", "--user", "deminer.one", .. StoreArguments]);
        Assert.Equal(1, disabledToken.Exit);
        Assert.Contains("deminer.one is disabled", disabledToken.Errors);
        Assert.Equal("", disabledToken.Output);
        Assert.Equal(1, disabledCert.Exit);
        Assert.Contains("deminer.one is disabled", disabledCert.Errors);

        var revoke = await Run(["token", "revoke", "--user", "deminer.one", "--id", stored.Id.ToString(), .. StoreArguments]);
        Assert.Equal(0, revoke.Exit);
        await using var check = services.CreateAsyncScope();
        var checkDb = check.ServiceProvider.GetRequiredService<ConcordDb>();
        Assert.NotNull((await checkDb.AccessTokens.SingleAsync(t => t.Id == stored.Id)).RevokedAt);

        // Disabling the member revoked the token: the member's entry names it.
        var disabling = await checkDb.Audit.Where(e => e.Entity == "member" && e.Detail.Contains("\"disabled\":true")).ToListAsync();
        Assert.Contains(disabling, e => e.Detail.Contains(stored.Id.ToString(), StringComparison.Ordinal) && e.Detail.Contains(thumbprint, StringComparison.Ordinal));
        // Each change of the member (its creation, three sets) names it as its record, as the API's do (?record= finds
        // them), with its values after the change.
        Assert.Equal(4, await checkDb.Audit.CountAsync(e => e.Entity == "member" && e.EntityId == member.Id));
        Assert.Contains(disabling, e => e.Detail.Contains("\"disabledByMission\":true", StringComparison.Ordinal) && e.Detail.Contains("\"displayName\":", StringComparison.Ordinal));

        // A credential made is in the audit, by the system (the command line), never with its secret; revoked again by
        // 'token revoke' after the disable revoked it, nothing more is recorded.
        var audited = await checkDb.Audit.Where(e => e.Entity == "token" && e.EntityId == stored.Id).OrderBy(e => e.ChainIndex).ToListAsync();
        Assert.Equal(["create"], audited.Select(e => e.Action));
        Assert.All(audited, e => Assert.Equal(("system", null), (e.Actor, e.MemberId)));
        Assert.All(audited, e => Assert.Contains("deminer.one", e.Detail, StringComparison.Ordinal));
        Assert.All(audited, e => Assert.DoesNotContain(token.Output.Trim(), e.Detail, StringComparison.Ordinal));
        var verify = await Run(["audit", "verify", .. StoreArguments]);
        Assert.True(verify.Exit == 0, verify.Output + verify.Errors);
    }

    [Fact]
    public async Task Bad_input_to_the_admin_verbs_is_refused_with_a_reason()
    {
        var kind = await Run(["org", "add", "--code", "X1", "--name", "X", "--kind", "navy", .. StoreArguments]);
        var org = await Run(["user", "add", "--user", "someone", "--org", "NOWHERE", .. StoreArguments]);
        var duplicate = await Run(["org", "add", "--code", "dup", "--name", "Dup", "--kind", "police", .. StoreArguments]);
        var duplicateAgain = await Run(["org", "add", "--code", "DUP", "--name", "Dup", "--kind", "police", .. StoreArguments]);
        var nobody = await Run(["token", "create", "--user", "nobody", .. StoreArguments]);
        var unnamed = await Run(["token", "create", "--user", "nobody", "--name", " ", .. StoreArguments]);
        var path = await Run(["serve", "--urls", "http://127.0.0.1:5080/concord", .. StoreArguments]);
        // A store that was not made by the demo (its own JOC, none of its members): a message, not a stack trace.
        await Run(["org", "add", "--code", "JOC", "--name", "Another JOC", "--kind", "civilian", .. StoreArguments]);
        var demo = await Run(["demo", "--seed-only", .. StoreArguments]);
        var blankGroup = await Run(["group", "add", "--code", "NET", "--name", "   ", "--owner", "DUP", .. StoreArguments]);
        var bellGroup = await Run(["group", "add", "--code", "NET", "--name", "Ring\u0007", "--owner", "DUP", .. StoreArguments]);

        Assert.Equal((1, 1), (blankGroup.Exit, bellGroup.Exit));
        Assert.Contains("--name must be 1 to 200 characters", blankGroup.Errors, StringComparison.Ordinal);
        Assert.Contains("--name contains the control character", bellGroup.Errors, StringComparison.Ordinal);
        Assert.Equal(1, kind.Exit);
        Assert.Contains("kind 'navy' is not one of military, police", kind.Errors);
        Assert.Equal(1, org.Exit);
        Assert.Contains("no organisation has the code 'NOWHERE'", org.Errors);
        Assert.Equal(0, duplicate.Exit);
        Assert.Equal(1, duplicateAgain.Exit);
        Assert.Contains("already exists", duplicateAgain.Errors);
        Assert.Equal(1, nobody.Exit);
        Assert.Equal(2, unnamed.Exit);
        Assert.Contains("--name is required", unnamed.Errors);
        Assert.Equal(2, path.Exit);
        Assert.Contains("(no path)", path.Errors);
        Assert.Equal(1, demo.Exit);
        Assert.Contains("give it a new --data directory", demo.Errors);
        Assert.DoesNotContain("   at ", demo.Errors);
    }

    [Fact]
    public async Task The_demo_refuses_a_store_holding_another_mission_and_seeds_its_directory_audited()
    {
        await Run(["org", "add", "--code", "UNMAS", "--name", "UN Mine Action Service", "--kind", "humanitarian", .. StoreArguments]);
        await using var services = Services(await StoreAsync());
        // As a store of a build before migration 30 (an UPDATE, harmless to apply again below): the demo, refusing it, must
        // not upgrade it first (its own build would then refuse a store newer than it).
        const int last = 30;
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<ConcordDb>().Database.ExecuteSqlAsync($"DELETE FROM schema_migrations WHERE version = {last}");
        }

        var refused = await Run(["demo", "--seed-only", .. StoreArguments]);

        Assert.Equal(1, refused.Exit);
        Assert.Contains("holds organisations or members the demo did not make", refused.Errors, StringComparison.Ordinal);
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.Equal(0, await db.Database.SqlQuery<int>($"SELECT count(*) AS \"Value\" FROM schema_migrations WHERE version = {last}").SingleAsync());
            // No demo organisation, and above all no mission administrator with the printed password.
            Assert.Equal(["UNMAS"], await db.Organizations.Select(o => o.Code).ToListAsync());
            Assert.False(await db.Members.AnyAsync());
            Assert.False(await db.Audit.AnyAsync(e => e.Entity == "demo"));
        }

        // A real mission has a JOC of its own: that is not the demo's store either, and gets no demo areas or reports.
        await Run(["org", "add", "--code", "JOC", "--name", "Joint Operations Centre", "--kind", "civilian", .. StoreArguments]);
        var withJoc = await Run(["demo", "--seed-only", .. StoreArguments]);
        Assert.Equal(1, withJoc.Exit);
        Assert.Contains("holds organisations or members the demo did not make", withJoc.Errors, StringComparison.Ordinal);
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.False(await db.Areas.AnyAsync());
            Assert.False(await db.Reports.AnyAsync());
            Assert.False(await db.Members.AnyAsync());
        }
    }

    [Fact]
    public async Task The_demo_seeds_the_real_UCDP_events_once_with_a_spread_of_markings()
    {
        var first = await Run(["demo", "--seed-only", .. StoreArguments]);
        var second = await Run(["demo", "--seed-only", .. StoreArguments]);

        Assert.Equal(0, first.Exit);
        Assert.Contains("1848 reports added from UCDP GED 23.1", first.Output);
        Assert.Equal(0, second.Exit);
        Assert.Contains("seeded before, nothing added", second.Output);
        Assert.Contains("jmac.analyst", first.Output);

        // Changed since (a member disabled, another cleared lower): the demo still serves its store, refuses nothing it
        // holds, and lists the members as they are (it stopped with "missing or disabled", or listed them as first made).
        Assert.Equal(0, (await Run(["user", "set", "--user", "force.g2", "--disable", .. StoreArguments])).Exit);
        Assert.Equal(0, (await Run(["user", "set", "--user", "unpol.officer", "--clearance", "UNCLASSIFIED", .. StoreArguments])).Exit);
        var third = await Run(["demo", "--seed-only", .. StoreArguments]);
        Assert.True(third.Exit == 0, third.Errors);
        Assert.DoesNotContain("rejected", third.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("force.g2", third.Output, StringComparison.Ordinal);
        Assert.Matches(@"unpol\.officer\s+UNPOL\s+UNCLASSIFIED\s", third.Output);
        Assert.Matches(@"jmac\.analyst\s+JMAC\s+STRICTLY CONFIDENTIAL\s+SOURCE-PROTECTED\s", third.Output);

        await using var services = Services(await StoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var ged = db.Reports.Where(r => r.ExternalRef!.StartsWith("ucdp-ged:"));
        Assert.Equal(1848, await ged.CountAsync());
        Assert.Equal(14948, await ged.SumAsync(r => (r.KilledCivilianBest ?? 0) + (r.KilledOtherBest ?? 0)));
        Assert.Equal(401, await ged.CountAsync(r => r.Category == "ucdp.state-based"));
        Assert.Equal(371, await ged.CountAsync(r => r.Category == "ucdp.non-state"));
        Assert.Equal(1076, await ged.CountAsync(r => r.Category == "ucdp.one-sided"));
        Assert.Equal(17, await db.Areas.CountAsync());
        // The demo's directory went in as one audited write (the audit is not the place for its password).
        var seeded = Assert.Single(await db.Audit.Where(e => e.Entity == "demo").ToListAsync());
        Assert.Contains("jmac.analyst", seeded.Detail, StringComparison.Ordinal);
        // With the rights each was given: the mission administrator's roles and clearance are on record.
        Assert.Contains("{\"user\":\"admin\",\"organization\":\"JOC\",\"roles\":[\"mission-admin\"", seeded.Detail, StringComparison.Ordinal);
        Assert.Contains("CAF-809", Assert.Single(await db.Audit.Where(e => e.Entity == "area").ToListAsync()).Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(Demo.DemoMission.Password, seeded.Detail, StringComparison.Ordinal);
        Assert.True(await db.Reports.CountAsync(r => r.AreaId != null) > 1600, "most events fall in a prefecture");
        Assert.True(await db.Reports.Select(r => r.Classification).Distinct().CountAsync() == 3);
        Assert.True(await db.Members.CountAsync() >= 10);
    }

    /// <summary>
    /// Fusion quality on real data: the demo adds other organisations' accounts (perturbed in time, place, figures, words,
    /// category scheme and language; three in ten name no actor) of 40 % of the real GED events. Regenerating them with
    /// the same seed gives the truth: which event each account describes. Floors: precision 0.95; recall within 0.05 of
    /// the recall the data allows, computed here (accounts as close to another real event of those days as to their own
    /// cannot be placed from the data alone). Measured: precision 0.952, recall 0.900, bound 0.937
    /// (docs/import-and-fusion.md, "Quality on real data").
    /// </summary>
    [Fact]
    public async Task The_demo_seeds_whole_under_another_classification_scheme()
    {
        // The meeting was marked UNCLASSIFIED whatever the scheme: under NATO's the run failed after the requests, and the
        // next run found the agreement and skipped the rest, leaving the demo without its meeting for good.
        var demo = await Run(["demo", "--seed-only", "--classification", "nato", .. StoreArguments]);
        Assert.True(demo.Exit == 0, demo.Errors);
        Assert.Matches(@"jmac\.analyst\s+JMAC\s+NATO CONFIDENTIAL\s", demo.Output);

        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        Assert.Equal(1, await db.Meetings.CountAsync());
        Assert.Equal(3, await db.Requests.CountAsync());
        Assert.True(await db.Tasks.CountAsync() >= 3, "the meeting's three action items");
        Assert.Equal(Audit.Audits.SystemActor, await db.Agreements.Where(a => a.Code == Demo.DemoCoordination.AgreementCode).Select(a => a.CreatedBy).SingleAsync());
        // The members' clearances are audited as given, in the store's scheme.
        var seededDirectory = await db.Audit.Where(e => e.Entity == "demo").Select(e => e.Detail).SingleAsync();
        Assert.Contains("\"user\":\"jmac.analyst\",\"organization\":\"JMAC\",\"roles\":[\"analyst\",\"reporter\"],\"clearance\":\"NATO CONFIDENTIAL\"", seededDirectory, StringComparison.Ordinal);

        // A run stopped between creating the escort request and accepting it, before the meeting: the next run accepts it
        // (it found the request and skipped both steps, leaving it requested for good).
        var escort = await db.Requests.AsNoTracking().SingleAsync(r => r.Type == Coordination.RequestTypes.ArmedEscort);
        Assert.Equal(Coordination.RequestStatuses.Accepted, escort.Status);
        await db.Requests.Where(r => r.Id == escort.Id).ExecuteUpdateAsync(u => u.SetProperty(r => r.Status, Coordination.RequestStatuses.Requested));
        await db.Meetings.ExecuteUpdateAsync(u => u.SetProperty(m => m.Title, "Stopped before the meeting"));
        var again = await Run(["demo", "--seed-only", "--classification", "nato", .. StoreArguments]);
        Assert.True(again.Exit == 0, again.Errors);
        Assert.Equal(Coordination.RequestStatuses.Accepted, await db.Requests.Where(r => r.Id == escort.Id).Select(r => r.Status).SingleAsync());
        Assert.Equal(3, await db.Requests.CountAsync());
    }

    [Fact]
    public async Task The_demo_accounts_fuse_into_the_events_they_describe()
    {
        await Run(["demo", "--seed-only", .. StoreArguments]);
        await using var services = Services(await StoreAsync());
        var key = await services.GetRequiredService<DeploymentKeys>().SourceIdsAsync(CancellationToken.None);
        var truth = new Dictionary<Guid, long>();
        var random = new Random(Demo.DemoMission.DuplicateSeed);
        using (var reader = new StreamReader(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv")))
        {
            foreach (var row in Ucdp.GedReader.Read(reader))
            {
                var e = row.Event!;
                truth[Reports.SourceIds.Of(key, $"{Ucdp.GedMapping.Dataset}:{e.Id}")] = e.Id;
                foreach (var d in Demo.DemoDuplicates.For(e, random, Demo.DemoMission.DuplicateShare))
                {
                    truth[d.Report.Id!.Value] = e.Id;
                }
            }
        }

        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var links = await db.IncidentReports.AsNoTracking().Select(l => new { l.ReportId, l.IncidentId }).ToListAsync();
        Assert.Equal(truth.Count, links.Count);
        Assert.True(truth.Count > 2600, $"{truth.Count} reports");

        static long Pairs(IEnumerable<int> groupSizes) => groupSizes.Sum(n => (long)n * (n - 1) / 2);
        var predicted = Pairs(links.GroupBy(l => l.IncidentId).Select(g => g.Count()));
        var actual = Pairs(truth.Values.GroupBy(v => v).Select(g => g.Count()));
        var correct = Pairs(links.GroupBy(l => (l.IncidentId, Event: truth[l.ReportId])).Select(g => g.Count()));
        var precision = (double)correct / predicted;
        var recall = (double)correct / actual;

        // What the data can decide: an account that scores against another real event of those days at least as well
        // as against its own, less fusion's margin, cannot be placed from the data alone (CAR has many events in one town
        // on one day), and fusion sends such near-ties to an analyst. Left alone, as an analyst would leave them before
        // deciding, they bound the recall any method reaches.
        var reports = await db.Reports.AsNoTracking().ToListAsync();
        var events = reports.Where(r => r.ExternalRef?.StartsWith($"{Ucdp.GedMapping.Dataset}:", StringComparison.Ordinal) == true).ToList();
        var eventReport = events.ToDictionary(r => truth[r.Id]);
        // Words weighed as fusion weighs them at the end: by their rarity among the reports anyone may read.
        var rarity = new Fusion.WordRarity();
        rarity.Stored(reports);

        var decidable = new List<long>();
        foreach (var account in reports.Except(events))
        {
            var features = Fusion.FusionFeatures.Of(account);
            var own = Fusion.FusionScorer.Score(features, Fusion.FusionFeatures.Of(eventReport[truth[account.Id]]), rarity)?.Total ?? 0;
            var rival = events.Where(g => truth[g.Id] != truth[account.Id] && Math.Abs((g.ObservedAt - account.ObservedAt).TotalDays) <= Fusion.FusionScorer.MaxGap.TotalDays + 1)
                .Select(g => Fusion.FusionScorer.Score(features, Fusion.FusionFeatures.Of(g), rarity)?.Total ?? 0).DefaultIfEmpty(0).Max();
            if (rival < own - Fusion.FusionScorer.Margin)
            {
                decidable.Add(truth[account.Id]);
            }
        }

        var decidablePairs = Pairs(decidable.GroupBy(e => e).Select(g => g.Count() + 1));
        var bound = (double)decidablePairs / actual;
        var summary = $"pairwise precision {precision:0.000}, recall {recall:0.000} ({correct} of {predicted} fused pairs right, {actual} true pairs); " +
            $"{reports.Count - events.Count - decidable.Count} of {reports.Count - events.Count} accounts undecidable from the data, recall bound {bound:0.000}";
        // Precision: at most one fused pair in twenty wrong (a wrong link misleads every viewer). Recall: within 0.05 of what
        // the data can decide. The bound compares each account with the events' own reports; fusion compares it with their
        // incidents as they grow (the actors and the 40 commonest words of every report joined, the summary's casualty
        // figure), which here costs about 0.04 more; what it misses goes to an analyst as a proposal or opens an incident.
        Assert.True(precision >= 0.95 && recall >= bound - 0.05, summary);
    }

    [Fact]
    public async Task Serve_on_a_data_folder_it_cannot_write_says_so_and_stops()
    {
        // The key ring session cookies are protected with lives in DATA/keys (on PostgreSQL too): a server started without
        // it said it listened and answered every sign-in with a 500.
        var file = Path.Combine(DataDirectory, "a-file");
        await File.WriteAllTextAsync(file, "");
        var data = Path.Combine(file, "data");
        string[] store = StoreArguments[0] == "--data" ? ["--data", data] : [.. StoreArguments, "--data", data];
        var serve = await Run(["serve", "--urls", "http://127.0.0.1:0", "--no-tak", .. store]);
        Assert.Equal(1, serve.Exit);
        Assert.StartsWith($"concord: --data {data} cannot be used:", serve.Errors);
        Assert.DoesNotContain("   at ", serve.Errors);
        Assert.Equal("", serve.Output);
    }

    [Fact]
    public async Task Reports_have_one_writer_an_import_or_a_server_on_a_store_another_process_writes_to_is_refused()
    {
        await Run(["org", "add", "--code", "JMAC", "--name", "Joint Mission Analysis Centre", "--kind", "intelligence", .. StoreArguments]);
        await Run(["user", "add", "--user", "analyst", "--org", "JMAC", "--roles", "analyst,reporter", "--clearance", "CONFIDENTIAL", "--password", "a-long-password-1", .. StoreArguments]);
        var ged = Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv");

        // A running server (or an import) holds the store's writer lease; administration beside it goes on.
        var lease = new WriterLease(await StoreAsync());
        await lease.AcquireAsync(CancellationToken.None);
        var import = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        var serve = await Run(["serve", "--urls", "http://127.0.0.1:0", "--no-tak", .. StoreArguments]);
        var demo = await Run(["demo", "--seed-only", .. StoreArguments]);
        var user = await Run(["user", "add", "--user", "analyst.two", "--org", "JMAC", "--roles", "analyst", "--clearance", "UNCLASSIFIED", "--password", "a-long-password-2", .. StoreArguments]);
        await lease.DisposeAsync();
        var after = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);

        Assert.Equal(1, import.Exit);
        Assert.Contains("another Concord process writes reports to this store", import.Errors);
        Assert.Contains("POST /api/imports", import.Errors);
        Assert.Equal("", import.Output);
        Assert.Equal(1, serve.Exit);
        Assert.Contains("another Concord process writes reports to this store", serve.Errors);
        Assert.Equal(1, demo.Exit);
        Assert.Contains("another Concord process writes reports to this store", demo.Errors);
        Assert.True(user.Exit == 0, user.Errors);
        // A password on the command line is taken, with a warning (CONCORD_PASSWORD keeps it out of ps and the history).
        Assert.Contains("--password is visible to other users", user.Errors, StringComparison.Ordinal);
        Assert.True(after.Exit == 0, after.Errors);
        Assert.Contains("1,848 reports created", after.Output);
    }

    [Fact]
    public async Task A_forgotten_password_is_reset_on_the_server()
    {
        // The only mission administrator cleared to change a member through the API forgets their password: `user set` on
        // the server sets a new one, and ends the sessions and tokens the old one stood behind.
        await Run(["org", "add", "--code", "JOCX", "--name", "Joint Operations Centre", "--kind", "civilian", .. StoreArguments]);
        Assert.Equal(0, (await Run(["user", "add", "--user", "chief", "--org", "JOCX", "--roles", "mission-admin", "--password", "the-first-password", .. StoreArguments])).Exit);
        var token = (await Run(["token", "create", "--user", "chief", .. StoreArguments])).Output.Trim();

        var weak = await Run(["user", "set", "--user", "chief", "--password", "short", .. StoreArguments]);
        Assert.Equal((1, "concord: password must be at least 10 characters"), (weak.Exit, weak.Errors.Trim()));
        var both = await Run(["user", "set", "--user", "chief", "--password", "the-second-password", "--new-password", .. StoreArguments]);
        Assert.Equal(2, both.Exit);
        Assert.Contains("--password and --new-password contradict each other", both.Errors, StringComparison.Ordinal);

        var set = await Run(["user", "set", "--user", "chief", "--password", "the-second-password", .. StoreArguments]);
        Assert.True(set.Exit == 0, set.Errors);
        Assert.Contains("--password is visible to other users", set.Errors, StringComparison.Ordinal);
        var generated = await Run(["user", "set", "--user", "chief", "--new-password", .. StoreArguments]);
        Assert.True(generated.Exit == 0, generated.Errors);
        var printed = System.Text.RegularExpressions.Regex.Match(generated.Output, "password: (\\S{10,})").Groups[1].Value;
        Assert.NotEqual("", printed);

        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await db.Members.SingleAsync(m => m.UserName == "chief");
        Assert.True(Accounts.Passwords.Verify(member, printed));
        Assert.False(Accounts.Passwords.Verify(member, "the-second-password"));
        Assert.False(Accounts.Passwords.Verify(member, "the-first-password"));
        Assert.NotNull((await db.AccessTokens.SingleAsync(t => t.SecretHash == Accounts.AccessTokens.HashSecret(token))).RevokedAt);
        Assert.Equal(2, await db.Audit.CountAsync(e => e.Entity == "member" && e.EntityId == member.Id && e.Detail.Contains("\"passwordSet\":true")));
    }

    [Fact]
    public async Task Import_reads_the_real_GED_file_reports_bad_rows_by_line_and_never_duplicates()
    {
        await Run(["org", "add", "--code", "JMAC", "--name", "Joint Mission Analysis Centre", "--kind", "intelligence", .. StoreArguments]);
        await Run(["user", "add", "--user", "analyst", "--org", "JMAC", "--roles", "analyst,reporter", "--clearance", "CONFIDENTIAL", "--password", "a-long-password-1", .. StoreArguments]);
        var ged = Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv");

        // A marking that would reject every row, and a file whose format its name does not tell, are refused before any row is read.
        var nowhere = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", "--releasable-to", "org:NOPE", .. StoreArguments]);
        Assert.Equal(2, nowhere.Exit);
        Assert.Contains("--releasable-to", nowhere.Errors);
        Assert.Contains("NOPE", nowhere.Errors);
        var unnamed = Path.Combine(DataDirectory, "events.txt");
        File.Copy(ged, unnamed);
        var unknownFormat = await Run(["import", "--file", unnamed, "--user", "analyst", .. StoreArguments]);
        Assert.Equal(2, unknownFormat.Exit);
        Assert.Contains("cannot tell the format of", unknownFormat.Errors);
        // A GeoJSON file's name is its dataset's name by default: one so long that no feature's reference fits is refused
        // at once, rather than every feature one by one.
        var longName = Path.Combine(DataDirectory, new string('s', 200) + ".geojson");
        await File.WriteAllTextAsync(longName, """{ "type": "FeatureCollection", "features": [] }""");
        var tooLong = await Run(["import", "--file", longName, "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        Assert.Equal(2, tooLong.Exit);
        Assert.Contains("give --source NAME", tooLong.Errors);

        var first = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        var again = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);

        Assert.Equal(0, first.Exit);
        Assert.Contains("1,848 rows read", first.Output);
        Assert.Contains("1,848 reports created, 0 already imported, 0 rejected", first.Output);
        Assert.Contains("rows/s, ETA", first.Errors);
        // Long imports keep their hours in the ETA.
        var line = Import.ImportCommand.Line(new Import.ImportProgress(1_000, 1_000, 0, 0, 1, 1_000), TimeSpan.FromMinutes(5));
        Assert.Contains("ETA 83:15:00,", line);
        Assert.Contains("0 reports created, 1,848 already imported, 0 rejected", again.Output);
        await using (var services = Services(await StoreAsync()))
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.Equal(1848, await db.Reports.CountAsync());
            Assert.Equal(401, await db.Reports.CountAsync(r => r.Category == "ucdp.state-based"));
            Assert.Equal(371, await db.Reports.CountAsync(r => r.Category == "ucdp.non-state"));
            Assert.Equal(1076, await db.Reports.CountAsync(r => r.Category == "ucdp.one-sided"));
            Assert.Equal(14948, await db.Reports.SumAsync(r => (r.KilledCivilianBest ?? 0) + (r.KilledOtherBest ?? 0)));
        }

        // A damaged copy: bad date, coordinates out of range, a row cut short, a stray quote; the good rows still go in.
        var lines = File.ReadAllLines(ged);
        var damaged = Path.Combine(DataDirectory, "damaged.csv");
        var rows = lines.Take(8).ToArray();
        rows[2] = rows[2].Replace("1992-08-01T00:00:00", "1992-13-45T00:00:00", StringComparison.Ordinal);
        rows[3] = string.Join(',', rows[3].Split(',').Take(10));
        rows[5] = rows[5].Replace(",4.", ",94.", StringComparison.Ordinal);
        // Re-saved in a day-first locale: read loosely, 01/08 would be the 8th of January.
        rows[6] = new System.Text.RegularExpressions.Regex(@",(\d{4})-(\d{2})-(\d{2})T00:00:00,").Replace(rows[6], ",$3/$2/$1 00:00:00,", 1);
        File.WriteAllLines(damaged, rows);
        var garbled = System.Text.Encoding.UTF8.GetBytes(lines[8] + "\n");
        garbled[Array.IndexOf(garbled, (byte)'C')] = 0xFF;
        File.AppendAllBytes(damaged, garbled);
        File.AppendAllText(damaged, "99999999,0,2020,\"unterminated\n");
        await Run(["migrate", .. StoreArguments]);
        var bad = await Run(["import", "--file", damaged, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        Assert.Equal(Import.ImportCommand.RowsRejected, bad.Exit);
        Assert.Contains("line 3: ", bad.Output);
        Assert.Contains("date_start", bad.Output);
        Assert.Contains("line 4: has 10 fields", bad.Output);
        Assert.Contains("line 6: ", bad.Output);
        Assert.Contains("latitude", bad.Output);
        Assert.Contains("line 9: is not valid UTF-8 text", bad.Output);
        Assert.Contains("line 7: date_start", bad.Output);
        Assert.Contains("is not an ISO 8601 date", bad.Output);
        Assert.Contains("line 10: ", bad.Output);
        Assert.Contains("6 rejected", bad.Output);

        // Nothing of a file could be imported: that is a failure, not a partial import.
        var hopeless = Path.Combine(DataDirectory, "hopeless.csv");
        File.WriteAllLines(hopeless, [lines[0], rows[6]]);
        Assert.Equal(1, (await Run(["import", "--file", hopeless, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments])).Exit);

        // A dataset keeps its name (and its features their ids) under another file name.
        var survey = """{ "type": "FeatureCollection", "features": [ { "type": "Feature", "id": "s-1", "geometry": { "type": "Point", "coordinates": [18.56, 4.37] }, "properties": { "observedAt": "2025-06-01", "category": "poc.forced-displacement", "narrative": "Families fled PK5" } } ] }""";
        File.WriteAllText(Path.Combine(DataDirectory, "survey-v1.geojson"), survey);
        File.WriteAllText(Path.Combine(DataDirectory, "survey-v2.geojson"), survey);
        var v1 = await Run(["import", "--file", Path.Combine(DataDirectory, "survey-v1.geojson"), "--source", "ngo-survey", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        var v2 = await Run(["import", "--file", Path.Combine(DataDirectory, "survey-v2.geojson"), "--source", "ngo-survey", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        Assert.Equal((0, 0), (v1.Exit, v2.Exit));
        Assert.Contains("1 reports created", v1.Output);
        Assert.Contains("0 reports created, 1 already imported", v2.Output);
        var twoBad = """{ "type": "FeatureCollection", "features": [ { "type": "Feature", "id": "s-2", "geometry": { "type": "Point", "coordinates": [18.56, 4.37] }, "properties": { "observedAt": "2025-06-01", "category": "poc", "narrative": "ok" } }, { "type": "Feature", "id": "s-3", "geometry": { "type": "Point", "coordinates": [1e400, 4.37] }, "properties": {} } ] }""";
        File.WriteAllText(Path.Combine(DataDirectory, "survey-v3.geojson"), twoBad);
        var v3 = await Run(["import", "--file", Path.Combine(DataDirectory, "survey-v3.geojson"), "--source", "ngo-survey", "--user", "analyst", "--level", "UNCLASSIFIED", .. StoreArguments]);
        Assert.Equal(3, v3.Exit);
        Assert.Contains("1 reports created", v3.Output);
        Assert.Contains("  feature 2: geometry.coordinates [1e400, 4.37] are not finite numbers", v3.Output);
        var named = await Run(["import", "--file", Path.Combine(DataDirectory, "survey-v2.geojson"), "--source", new string('n', 101), "--user", "analyst", .. StoreArguments]);
        Assert.Equal(2, named.Exit);
        Assert.Contains("--source is 101 characters long", named.Errors);

        var missing = await Run(["import", "--file", Path.Combine(DataDirectory, "nope.csv"), "--format", "ged", "--user", "analyst", .. StoreArguments]);
        Assert.Equal(2, missing.Exit);
        var format = await Run(["import", "--file", ged, "--format", "xlsx", "--user", "analyst", .. StoreArguments]);
        Assert.Contains("--format must be ged, acled or geojson", format.Errors);
        var level = await Run(["import", "--file", ged, "--format", "ged", "--user", "analyst", "--level", "BOGUS", .. StoreArguments]);
        Assert.Equal(2, level.Exit);
        Assert.Contains("--level must be one of UNCLASSIFIED, CONFIDENTIAL, STRICTLY CONFIDENTIAL, not 'BOGUS'", level.Errors);
    }

    [Fact]
    public async Task Forecast_refuses_a_history_too_short_to_learn_from()
    {
        await Run(["org", "add", "--code", "JMAC", "--name", "Joint Mission Analysis Centre", "--kind", "intelligence", .. StoreArguments]);
        await Run(["user", "add", "--user", "analyst", "--org", "JMAC", "--roles", "analyst,reporter", "--clearance", "CONFIDENTIAL", "--password", "a-long-password-1", .. StoreArguments]);
        // One year of the real events (id, relid and year, the first three columns, are never quoted).
        var lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv"));
        var year = Path.Combine(DataDirectory, "ged-2021.csv");
        File.WriteAllLines(year, lines.Take(1).Concat(lines.Skip(1).Where(l => l.Split(',', 4) is [_, _, "2021", _])));
        var import = await Run(["import", "--file", year, "--format", "ged", "--user", "analyst", "--level", "UNCLASSIFIED", "--releasable-to", "mission", .. StoreArguments]);
        Assert.Matches(@" [1-9][\d,]* reports created", import.Output);

        var run = await Run(["forecast", .. StoreArguments]);

        Assert.Equal(1, run.Exit);
        Assert.Contains($"fewer than {EarlyWarning.ForecastService.MinimumMonths} months", run.Errors, StringComparison.Ordinal);
        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        Assert.Equal(0, await scope.ServiceProvider.GetRequiredService<ConcordDb>().Forecasts.CountAsync());
    }

    [Fact]
    public async Task Forecast_writes_next_months_risk_for_the_mission_cells()
    {
        await Run(["demo", "--seed-only", .. StoreArguments]);
        var run = await Run(["forecast", .. StoreArguments]);
        Assert.Equal(0, run.Exit);
        Assert.Matches(@"forecasts for 20\d\d-\d\d written for \d+ cells", run.Output);
        Assert.Contains("highest risk of at least one fatality", run.Output);
        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        Assert.True(await db.Forecasts.CountAsync() > 200);
        Assert.True(await db.Forecasts.AllAsync(f => f.Classification == 0 && f.AtLeastOne >= 0 && f.AtLeastOne <= 1));
        // Every prefecture gets a forecast too: the sum of its cells, at least as likely to see a death as any one of them.
        var areas = await db.AreaForecasts.ToListAsync();
        Assert.Equal(17, areas.Count);
        Assert.All(areas, a => Assert.True(a.Low <= a.Expected && a.Expected <= Math.Max(a.High, a.Expected) && a.AtLeastOne is >= 0 and <= 1));
    }

    [Fact]
    public async Task Audit_verify_with_a_recorded_entry_finds_a_chain_cut_short_or_rewritten_that_verifies_on_its_own()
    {
        foreach (var code in new[] { "XA1", "XA2", "XA3" })
        {
            Assert.Equal(0, (await Run(["org", "add", "--code", code, "--name", "Org " + code, "--kind", "police", .. StoreArguments])).Exit);
        }

        var first = await Run(["audit", "verify", .. StoreArguments]);
        var recorded = System.Text.RegularExpressions.Regex.Match(first.Output, "Record '(\\d+):([0-9a-f]{64})'");
        Assert.True(recorded.Success, first.Output);
        var (index, hash) = (long.Parse(recorded.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), recorded.Groups[2].Value);
        Assert.Equal(0, (await Run(["org", "add", "--code", "XA4", "--name", "Org XA4", "--kind", "police", .. StoreArguments])).Exit);
        var grown = await Run(["audit", "verify", "--expect", $"{index}:{hash.ToUpperInvariant()}", .. StoreArguments]);
        Assert.True(grown.Exit == 0, grown.Errors);
        Assert.Contains($"entry {index} has the recorded hash", grown.Output, StringComparison.Ordinal);

        // Rewritten from the recorded entry on, every hash recomputed (the method is public): the chain verifies, the record does not.
        await using var services = Services(await StoreAsync());
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            Assert.Equal(1, await db.Audit.Where(a => a.ChainIndex == index && a.Detail.Contains("XA3")).ExecuteUpdateAsync(u => u.SetProperty(a => a.Detail, a => a.Detail.Replace("XA3", "XB3"))));
            var tail = await db.Audit.Where(a => a.ChainIndex >= index).OrderBy(a => a.ChainIndex).ToListAsync();
            var previous = await db.Audit.Where(a => a.ChainIndex == index - 1).Select(a => a.Hash).SingleAsync();
            foreach (var entry in tail)
            {
                entry.PreviousHash = previous;
                entry.Hash = Audit.AuditChain.Compute(entry);
                previous = entry.Hash;
            }

            await db.SaveChangesAsync();
        }

        var rewritten = await Run(["audit", "verify", "--expect", $"{index}:{hash}", .. StoreArguments]);
        Assert.Equal(0, (await Run(["audit", "verify", .. StoreArguments])).Exit);
        Assert.Equal(1, rewritten.Exit);
        Assert.Contains($"entry {index} has hash", rewritten.Errors, StringComparison.Ordinal);
        Assert.Contains($"not {hash} as recorded", rewritten.Errors, StringComparison.Ordinal);

        // Cut off from the recorded entry on: the chain verifies, the record does not.
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<ConcordDb>().Audit.Where(a => a.ChainIndex >= index).ExecuteDeleteAsync();
        }

        var cut = await Run(["audit", "verify", "--expect", $"{index}:{hash}", .. StoreArguments]);
        Assert.Equal(0, (await Run(["audit", "verify", .. StoreArguments])).Exit);
        Assert.Equal(1, cut.Exit);
        Assert.Contains($"entry {index} is missing: the chain ends at entry {index - 1}", cut.Errors, StringComparison.Ordinal);

        var malformed = await Run(["audit", "verify", "--expect", hash, .. StoreArguments]);
        Assert.Equal(2, malformed.Exit);
        Assert.Contains("--expect must be INDEX:HASH", malformed.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Audit_verify_names_the_entry_that_was_altered_removed_or_inserted()
    {
        await Run(["demo", "--seed-only", .. StoreArguments]);
        await using var services = Services(await StoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);

        async Task Sql(string sql)
        {
            await using var scope = services.CreateAsyncScope();
            await scope.ServiceProvider.GetRequiredService<ConcordDb>().Database.ExecuteSqlRawAsync(sql);
        }

        var intact = await Run(["audit", "verify", .. StoreArguments]);
        Assert.Equal(0, intact.Exit);
        Assert.Matches("audit chain intact: 28\\d\\d entries", intact.Output);

        await Sql("CREATE TABLE audit_backup AS SELECT * FROM audit WHERE chain_index = 100");
        await Sql("UPDATE audit SET detail = detail || ' ' WHERE chain_index = 100");
        var altered = await Run(["audit", "verify", .. StoreArguments]);
        await Sql("DELETE FROM audit WHERE chain_index = 100");
        await Sql("INSERT INTO audit SELECT * FROM audit_backup");
        var restored = await Run(["audit", "verify", .. StoreArguments]);

        // The hash joins the fields by line feeds and leaves out caveats of 0: an entry's caveats moved into its detail (as
        // "4\n{...}") hash exactly as before, and the entry would show to auditors without them. The verifier refuses it.
        Audit.AuditEntry caveated;
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            caveated = await db.Audit.AsNoTracking().Where(a => a.Caveats != 0).OrderBy(a => a.ChainIndex).FirstAsync();
            var forgedDetail = caveated.Caveats.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n" + caveated.Detail;
            await db.Audit.Where(a => a.ChainIndex == caveated.ChainIndex).ExecuteUpdateAsync(u => u.SetProperty(a => a.Caveats, 0).SetProperty(a => a.Detail, forgedDetail));
            Assert.Equal(caveated.Hash, Audit.AuditChain.Compute(await db.Audit.AsNoTracking().SingleAsync(a => a.ChainIndex == caveated.ChainIndex)));
        }

        var uncaveated = await Run(["audit", "verify", .. StoreArguments]);
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<ConcordDb>().Audit.Where(a => a.ChainIndex == caveated.ChainIndex)
                .ExecuteUpdateAsync(u => u.SetProperty(a => a.Caveats, caveated.Caveats).SetProperty(a => a.Detail, caveated.Detail));
        }

        // An entity of '' hashes as none does (Concord writes neither): one given the head entry verifies unless refused.
        Audit.AuditEntry head;
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            head = await db.Audit.AsNoTracking().OrderByDescending(a => a.ChainIndex).FirstAsync();
            var emptiedHead = new Audit.AuditEntry
            {
                ChainIndex = head.ChainIndex,
                At = head.At,
                MemberId = head.MemberId,
                Actor = head.Actor,
                Action = head.Action,
                Entity = "",
                EntityId = head.EntityId,
                Detail = head.Detail,
                Classification = head.Classification,
                Caveats = head.Caveats,
                PreviousHash = head.PreviousHash,
            };
            var hash = Audit.AuditChain.Compute(emptiedHead);
            await db.Audit.Where(a => a.ChainIndex == head.ChainIndex).ExecuteUpdateAsync(u => u.SetProperty(a => a.Entity, "").SetProperty(a => a.Hash, hash));
        }

        var emptied = await Run(["audit", "verify", .. StoreArguments]);
        await using (var scope = services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<ConcordDb>().Audit.Where(a => a.ChainIndex == head.ChainIndex)
                .ExecuteUpdateAsync(u => u.SetProperty(a => a.Entity, head.Entity).SetProperty(a => a.Hash, head.Hash));
        }

        await Sql("CREATE TABLE audit_backup2 AS SELECT * FROM audit WHERE chain_index = 200");
        await Sql("DELETE FROM audit WHERE chain_index = 200");
        var removed = await Run(["audit", "verify", .. StoreArguments]);
        await Sql("INSERT INTO audit SELECT * FROM audit_backup2");

        // A forged entry slipped into the middle, with a hash that is right for its own content.
        await Sql("UPDATE audit SET chain_index = -chain_index - 1 WHERE chain_index >= 300");
        await Sql("UPDATE audit SET chain_index = -chain_index WHERE chain_index < 0");
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var previous = await db.Audit.SingleAsync(a => a.ChainIndex == 299);
            var forged = new Audit.AuditEntry { ChainIndex = 300, At = previous.At, Actor = "someone", Action = "read", Detail = "{}", Classification = 0, PreviousHash = previous.Hash };
            forged.Hash = Audit.AuditChain.Compute(forged);
            db.Audit.Add(forged);
            await db.SaveChangesAsync();
        }

        var inserted = await Run(["audit", "verify", .. StoreArguments]);

        Assert.Equal(1, altered.Exit);
        Assert.Contains("broken at entry 100: entry 100 was altered", altered.Errors);
        Assert.Equal(0, restored.Exit);
        Assert.Equal(1, uncaveated.Exit);
        Assert.Contains($"broken at entry {caveated.ChainIndex}: entry {caveated.ChainIndex} was altered", uncaveated.Errors, StringComparison.Ordinal);
        Assert.Equal(1, emptied.Exit);
        Assert.Contains($"broken at entry {head.ChainIndex}: entry {head.ChainIndex} was altered", emptied.Errors, StringComparison.Ordinal);
        Assert.Equal(1, removed.Exit);
        Assert.Contains("entry 200 is missing", removed.Errors);
        Assert.Equal(1, inserted.Exit);
        Assert.Contains("entry 301 does not follow entry 300", inserted.Errors);
    }

    [Fact]
    public async Task Audit_verify_of_a_store_that_is_not_there_fails_and_creates_nothing()
    {
        // An empty chain would read as intact: a mistyped --data or --connection must not pass for a verified audit.
        var missing = await Run(["audit", "verify", .. StoreArguments]);

        Assert.Equal(1, missing.Exit);
        Assert.Contains("nothing to verify", missing.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("intact", missing.Output, StringComparison.Ordinal);
        var store = await StoreAsync();
        if (store.Kind == StoreKind.Sqlite)
        {
            Assert.False(await store.ExistsAsync(CancellationToken.None));
        }
        else
        {
            await using var services = Services(store);
            await using var scope = services.CreateAsyncScope();
            Assert.Null(await Migrator.PendingAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), store.Kind, CancellationToken.None));
        }

        await Run(["migrate", .. StoreArguments]);
        var migrated = await Run(["audit", "verify", .. StoreArguments]);
        Assert.True(migrated.Exit == 0, migrated.Errors);
        // An empty chain has no entry to record: no '--expect 0:…', which verify would refuse.
        Assert.DoesNotContain("--expect", migrated.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sharing_verbs_add_caveats_groups_and_versioned_agreements()
    {
        await Run(["demo", "--seed-only", .. StoreArguments]);
        var file = Path.Combine(DataDirectory, "mou.json");
        await File.WriteAllTextAsync(file, """
            {"code": "mou-cmcoord", "name": "Humanitarian site data", "parties": ["OCHA", "FORCE"],
             "rules": [{"reporter": "org:OCHA", "category": "*", "marking": {"classification": "CONFIDENTIAL", "releasableTo": ["org:FORCE"], "caveats": ["DECONFLICTION-ONLY"]}, "tlp": "amber+strict"}]}
            """);

        var caveat = await Run(["caveat", "add", "--code", "PROTECTION-SENSITIVE", "--description", "Survivor-identifying protection data", .. StoreArguments]);
        var group = await Run(["group", "add", "--code", "pwg", "--name", "Protection working group", "--owner", "UNPOL", "--members", "OCHA,JOC", .. StoreArguments]);
        var first = await Run(["agreement", "add", "--file", file, .. StoreArguments]);
        var second = await Run(["agreement", "add", "--file", file, .. StoreArguments]);
        await File.WriteAllTextAsync(file, "{\"code\": \"bad\", \"name\": \"x\", \"parties\": [\"NOPE\"], \"rules\": []}");
        var bad = await Run(["agreement", "add", "--file", file, .. StoreArguments]);
        await File.WriteAllTextAsync(file, "{\"code\": \"mou cmcoord\", \"name\": \"x\", \"parties\": [\"OCHA\"], \"rules\": []}");
        var spaced = await Run(["agreement", "add", "--file", file, .. StoreArguments]);

        Assert.Equal((0, "added caveat PROTECTION-SENSITIVE (bit 2)"), (caveat.Exit, caveat.Output.Trim()));
        Assert.Equal(0, group.Exit);
        Assert.Contains("recorded agreement MOU-CMCOORD version 1 (1 marking rules, 0 responsibilities, 0 assistance rules)", first.Output);
        Assert.Contains("version 2", second.Output);
        Assert.Equal(1, bad.Exit);
        Assert.Contains("parties: no organisation has the code 'NOPE'", bad.Errors);
        Assert.Equal((1, "concord: code: must be 1 to 40 letters, digits, '-' or '_'"), (spaced.Exit, spaced.Errors.Trim()));
        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        Assert.Equal(3, await db.SharingGroupMembers.CountAsync());
        Assert.Equal([1, 2], await db.Agreements.Where(a => a.Code == "MOU-CMCOORD").Select(a => a.Version).OrderBy(v => v).ToListAsync());
        // The demo's directory (its organisations and members), its areas and its own agreement (SOP-POC), then the caveat,
        // the group and the two versions.
        Assert.Equal(7, await db.Audit.CountAsync(a => a.Action == "administer" && a.Actor == "system"));
        Assert.Equal(1, await db.Audit.CountAsync(a => a.Action == "administer" && a.Entity == "demo"));

        // A retired agreement's code stays with its history: the verb refuses to write a version that would revive it.
        await db.Agreements.Where(a => a.Code == "MOU-CMCOORD" && a.Version == 2).ExecuteUpdateAsync(u => u.SetProperty(a => a.RetiredAt, DateTime.UtcNow));
        await File.WriteAllTextAsync(file, """
            {"code": "mou-cmcoord", "name": "Revived", "parties": ["OCHA", "FORCE"],
             "rules": [{"reporter": "org:OCHA", "category": "*", "marking": {"classification": "UNCLASSIFIED", "releasableTo": ["org:FORCE"]}}]}
            """);
        var revived = await Run(["agreement", "add", "--file", file, .. StoreArguments]);
        Assert.Equal(1, revived.Exit);
        Assert.Contains("agreement 'MOU-CMCOORD' was retired", revived.Errors);
        Assert.Equal(2, await db.Agreements.CountAsync(a => a.Code == "MOU-CMCOORD"));
    }

    [Fact]
    public async Task A_deployment_keeps_the_classification_scheme_it_started_with()
    {
        // Migrating the schema names no scheme; the first verb that does (here with --classification) fixes it for good.
        var schema = await Run(["migrate", .. StoreArguments]);
        var nato = await Run(["migrate", "--classification", "nato", .. StoreArguments]);
        var un = await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", "--classification", "un", .. StoreArguments]);
        var unnamed = await Run(["migrate", .. StoreArguments]);

        Assert.Equal(0, schema.Exit);
        Assert.Equal(0, nato.Exit);
        Assert.Equal(1, un.Exit);
        Assert.Contains("this deployment uses the 'nato' classification scheme", un.Errors);
        Assert.Equal(0, unnamed.Exit);
    }

    [Fact]
    public async Task A_certificate_folder_that_cannot_be_written_is_said_and_nothing_is_issued()
    {
        await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", .. StoreArguments]);
        await Run(["user", "add", "--user", "patrol.three", "--org", "POL", "--roles", "reporter", .. StoreArguments]);
        // A file where the folder should be: the catch-all said "the store could not be used", which was not at fault.
        var inTheWay = Path.Combine(DataDirectory, "a-file");
        await File.WriteAllTextAsync(inTheWay, "");

        var refused = await Run(["cert", "issue", "--user", "patrol.three", "--out", Path.Combine(inTheWay, "certs"), .. StoreArguments]);

        Assert.Equal(1, refused.Exit);
        Assert.Contains($"--out '{Path.Combine(inTheWay, "certs")}' cannot be written", refused.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("store", refused.Errors, StringComparison.Ordinal);
        // No certificate is recorded for files nobody holds: a second, working issue is the member's first.
        var issued = await Run(["cert", "issue", "--user", "patrol.three", "--out", Path.Combine(DataDirectory, "certs-three"), .. StoreArguments]);
        Assert.True(issued.Exit == 0, issued.Errors);
        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await db.Members.SingleAsync(m => m.UserName == "patrol.three");
        Assert.Equal(1, await db.DeviceCertificates.CountAsync(c => c.MemberId == member.Id));
    }

    private protected static ServiceProvider Services(StoreOptions store)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddConcordCore(new ServerOptions { Store = store });
        return services.BuildServiceProvider();
    }
}

public sealed class CliTests_Sqlite : CliTests
{
    [Fact]
    public async Task Audit_verify_finds_an_entry_stored_in_a_form_that_reads_alike_but_hides_it_from_auditors()
    {
        // SQLite keeps any type it is given and reading converts: a level stored as the text '1x' reads back as 1 and
        // hashes as before, yet compares above every clearance in the auditors' search. The chain verified intact.
        await Run(["demo", "--seed-only", .. StoreArguments]);
        await using var services = Services(await StoreAsync());
        await services.PrepareStoreAsync(CancellationToken.None);
        async Task<(int Exit, string Errors)> AlteredAsync(string change, long index)
        {
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            async Task Sql(string sql) => await db.Database.ExecuteSqlRawAsync(sql);
            var where = string.Create(System.Globalization.CultureInfo.InvariantCulture, $" WHERE chain_index = {index}");
            await Sql("CREATE TABLE audit_kept AS SELECT * FROM audit" + where);
            await Sql("UPDATE audit SET " + change + where);
            var entry = await db.Audit.AsNoTracking().SingleAsync(a => a.ChainIndex == index);
            Assert.Equal(entry.Hash, Audit.AuditChain.Compute(entry));
            var verified = await Run(["audit", "verify", .. StoreArguments]);
            await Sql("DELETE FROM audit" + where);
            await Sql("INSERT INTO audit SELECT * FROM audit_kept");
            await Sql("DROP TABLE audit_kept");
            return (verified.Exit, verified.Errors);
        }

        long withEntity;
        await using (var scope = services.CreateAsyncScope())
        {
            withEntity = await scope.ServiceProvider.GetRequiredService<ConcordDb>().Audit.Where(a => a.EntityId != null && a.ChainIndex > 100).OrderBy(a => a.ChainIndex).Select(a => a.ChainIndex).FirstAsync();
        }

        foreach (var (change, index) in new[]
        {
            ("classification = CAST(classification AS TEXT) || 'x'", 150L),
            ("classification = classification + 0.5", 160L),
            ("actor = CAST(actor AS BLOB)", 170L),
            ("entity_id = lower(entity_id)", withEntity),
            ("at = replace(at, ' ', 'T')", 180L),
        })
        {
            var (exit, errors) = await AlteredAsync(change, index);
            Assert.True(exit == 1, change + ": " + errors);
            Assert.Contains($"broken at entry {index}: entry {index} was altered: its fields are not stored as Concord writes them", errors, StringComparison.Ordinal);
        }

        Assert.Equal(0, (await Run(["audit", "verify", .. StoreArguments])).Exit);
    }

    [Fact]
    public async Task Verbs_acting_on_members_make_no_store_where_there_is_none()
    {
        // A mistyped --data made an empty store fixed to this run's classification scheme, and the verb then found nobody.
        var nowhere = Path.Combine(DataDirectory, "typo");
        var ged = Path.Combine(AppContext.BaseDirectory, "reference", "ucdp", "ged231_caf_events.csv");
        var agreement = Path.Combine(DataDirectory, "agreement.json");
        await File.WriteAllTextAsync(agreement, """{"code":"SOP-1","name":"Security SOP","parties":["JOC"],"rules":[]}""");
        foreach (var args in new[]
        {
            new[] { "token", "create", "--user", "someone" },
            ["token", "revoke", "--user", "someone", "--id", Guid.NewGuid().ToString()],
            ["user", "set", "--user", "someone", "--disable"],
            ["cert", "issue", "--user", "someone"],
            ["import", "--file", ged, "--format", "ged", "--user", "someone"],
            // An organisation's member, and an agreement between parties, need what a new store does not hold.
            ["user", "add", "--user", "someone", "--org", "JOC"],
            ["agreement", "add", "--file", agreement],
            ["group", "add", "--code", "PWG", "--name", "Protection working group", "--owner", "JOC"],
            // Nor does the forecast, which learns from the store's incidents.
            ["forecast"],
        })
        {
            var run = await Run([.. args, "--data", nowhere]);
            Assert.Equal(1, run.Exit);
            Assert.Contains($"there is no store at", run.Errors, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(nowhere, "concord.db")), string.Join(' ', args));
        }

        // So its scheme is still to be chosen.
        var nato = await Run(["migrate", "--classification", "nato", "--data", nowhere]);
        Assert.True(nato.Exit == 0, nato.Errors);
    }

    [Fact]
    public async Task A_certificate_authority_that_cannot_be_read_is_said_in_one_line()
    {
        await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", .. StoreArguments]);
        await Run(["user", "add", "--user", "patrol.two", "--org", "POL", "--roles", "reporter", .. StoreArguments]);
        var certs = Path.Combine(DataDirectory, "certs-two");
        var first = await Run(["cert", "issue", "--user", "patrol.two", "--out", certs, .. StoreArguments]);
        Assert.True(first.Exit == 0, first.Errors);
        Assert.Empty(Directory.GetFiles(Path.Combine(DataDirectory, "keys", "tak"), "*.new"));

        // Cut short (a disk full, a copy stopped half-way): a stack trace and exit 134 were all the operator got.
        var authority = Path.Combine(DataDirectory, "keys", "tak", "ca.pfx");
        var bytes = await File.ReadAllBytesAsync(authority);
        await File.WriteAllBytesAsync(authority, bytes[..(bytes.Length / 2)]);
        var again = await Run(["cert", "issue", "--user", "patrol.two", "--out", certs + "-again", .. StoreArguments]);

        Assert.Equal(1, again.Exit);
        Assert.Contains($"{authority} cannot be read as a certificate and key", again.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", again.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_certificate_the_store_could_not_record_leaves_no_key_behind()
    {
        // The files are written first (a certificate recorded whose key could not be written would be one nobody holds); if
        // the store then refuses the record, the key of a certificate the server does not know was left for a device.
        await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", .. StoreArguments]);
        await Run(["user", "add", "--user", "patrol.two", "--org", "POL", "--roles", "reporter", .. StoreArguments]);
        await Run(["user", "add", "--user", "patrol.three", "--org", "POL", "--roles", "reporter", .. StoreArguments]);
        // Another device's set is in the folder: its files, the CA and the trust store among them, stay.
        var shared = Path.Combine(DataDirectory, "certs-shared");
        var first = await Run(["cert", "issue", "--user", "patrol.two", "--out", shared, .. StoreArguments]);
        Assert.True(first.Exit == 0, first.Errors);
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(DataDirectory, "concord.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "CREATE TRIGGER refuse_certificates BEFORE INSERT ON device_certificates BEGIN SELECT RAISE(ABORT, 'refused'); END;";
            await command.ExecuteNonQueryAsync();
        }

        var sharedBefore = Directory.GetFiles(shared).Order(StringComparer.Ordinal).ToList();
        var refused = await Run(["cert", "issue", "--user", "patrol.three", "--out", shared, "--package", .. StoreArguments]);
        Assert.Equal(1, refused.Exit);
        Assert.DoesNotContain("   at ", refused.Errors, StringComparison.Ordinal);
        Assert.Equal(sharedBefore, Directory.GetFiles(shared).Order(StringComparer.Ordinal).ToList());
        var alone = Path.Combine(DataDirectory, "certs-alone");
        Assert.Equal(1, (await Run(["cert", "issue", "--user", "patrol.three", "--out", alone, .. StoreArguments])).Exit);
        Assert.Empty(Directory.GetFiles(alone));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_new_store_is_readable_by_its_owner_only()
    {
        // It holds every record whatever its marking, the audit, password hashes and the deployment's keys: made readable
        // by everyone (0644 in a 0755 folder), any account on the machine could read it with sqlite3.
        var data = Path.Combine(DataDirectory, "private");
        var migrate = await Run(["migrate", "--data", data]);
        Assert.True(migrate.Exit == 0, migrate.Errors);
        var ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Assert.Equal(ownerOnly | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
        Assert.Equal(ownerOnly, File.GetUnixFileMode(Path.Combine(data, "concord.db")));
        // An existing folder (the repository's data/, which holds the demo's sources) keeps its mode; the file is still private.
        var shared = Path.Combine(DataDirectory, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, ownerOnly | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var org = await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", "--data", shared]);
        Assert.True(org.Exit == 0, org.Errors);
        Assert.Equal(ownerOnly, File.GetUnixFileMode(Path.Combine(shared, "concord.db")));
        // SQLite gives its journal files the database file's mode (the server writes in WAL mode).
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(shared, "concord.db")};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA journal_mode=WAL; UPDATE organizations SET name = name;";
            await command.ExecuteNonQueryAsync();
            Assert.Equal(ownerOnly, File.GetUnixFileMode(Path.Combine(shared, "concord.db-wal")));
        }
    }

    /// <summary>
    /// Kestrel reads the HTTPS certificate named in the environment when the server starts: a wrong password crashed the
    /// process (status 134, a stack trace), a missing file was blamed on the store, and a relative path was looked for in the
    /// program's folder. Run as the operator runs it, in a process of its own, as the certificate comes from the environment.
    /// </summary>
    [Fact]
    public async Task Serve_says_which_https_certificate_it_cannot_use_and_why()
    {
        var folder = Path.Combine(DataDirectory, "tls");
        Directory.CreateDirectory(folder);
        using (var key = System.Security.Cryptography.RSA.Create(2048))
        {
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=127.0.0.1", key, System.Security.Cryptography.HashAlgorithmName.SHA256,
                System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
            await File.WriteAllBytesAsync(Path.Combine(folder, "web.pfx"), certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx, "right"));
        }

        var data = Path.Combine(DataDirectory, "served");
        Assert.Equal(0, (await Run(["migrate", "--data", data])).Exit);

        async Task<(int? Exit, string Output, string Errors)> ServeAsync(string path, string password)
        {
            var start = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                WorkingDirectory = folder,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "concord.dll"), "serve", "--data", data, "--urls", "https://127.0.0.1:0", "--no-tak" })
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["Kestrel__Certificates__Default__Path"] = path;
            start.Environment["Kestrel__Certificates__Default__Password"] = password;
            using var process = System.Diagnostics.Process.Start(start)!;
            var errors = process.StandardError.ReadToEndAsync();
            // A server that starts says so on its first line of output; one that cannot ends with its reason.
            var first = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (first is not null)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                return (null, first, await errors);
            }

            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            return (process.ExitCode, "", await errors);
        }

        var wrong = await ServeAsync(Path.Combine(folder, "web.pfx"), "wrong");
        Assert.Equal(1, wrong.Exit);
        Assert.Contains($"concord: the HTTPS certificate '{Path.Combine(folder, "web.pfx")}' cannot be used: ", wrong.Errors, StringComparison.Ordinal);
        Assert.Contains("password", wrong.Errors, StringComparison.Ordinal);
        var missing = await ServeAsync(Path.Combine(folder, "none.pfx"), "right");
        Assert.Equal(1, missing.Exit);
        Assert.Contains($"concord: the HTTPS certificate '{Path.Combine(folder, "none.pfx")}' cannot be used: ", missing.Errors, StringComparison.Ordinal);
        Assert.DoesNotContain("the store could not be used", missing.Errors, StringComparison.Ordinal);
        // Relative to where the operator started it.
        var relative = await ServeAsync("web.pfx", "right");
        Assert.Null(relative.Exit);
        Assert.StartsWith("Concord is listening on https://127.0.0.1:0", relative.Output, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task The_key_ring_that_protects_session_cookies_is_its_owners_only()
    {
        // Whoever reads DATA/keys can make a session cookie naming any member. ASP.NET Core writes the key files with the
        // process's umask (0644): the folder keeps them private, also one that existed before (made 0755 by hand, say).
        var shared = Path.Combine(DataDirectory, "shared");
        var keys = Path.Combine(shared, "keys");
        Directory.CreateDirectory(keys);
        var open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(shared, open);
        File.SetUnixFileMode(keys, open);
        await Run(["migrate", "--data", shared]);
        // The server stops at once (another process holds the writer's lease), after the key ring's folder is made.
        var lease = new WriterLease(StoreOptions.Sqlite(shared));
        await lease.AcquireAsync(CancellationToken.None);
        var serve = await Run(["serve", "--urls", "http://127.0.0.1:0", "--no-tak", "--data", shared]);
        await lease.DisposeAsync();
        Assert.Equal(1, serve.Exit);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(keys));
        // A fresh data folder's key ring is made so too, and so is the data folder the server makes for it (as a new store's).
        var fresh = Path.Combine(DataDirectory, "fresh");
        await ConcordApp.Build(new ServerOptions { Store = StoreOptions.Sqlite(fresh), DataDirectory = fresh, Urls = "http://127.0.0.1:0" }).DisposeAsync();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(fresh, "keys")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(fresh));
    }

    internal override string[] StoreArguments => ["--data", DataDirectory];

    internal override Task<StoreOptions> StoreAsync() => Task.FromResult(StoreOptions.Sqlite(DataDirectory));

    /// <summary>
    /// A device dials the host its data package names, and a client that checks the server's certificate against that
    /// name must find it there: the server's certificate names loopback and this machine from the start, and each host
    /// <c>cert issue --host</c> gives is added to it (signed by the same CA, so no device needs anything new).
    /// </summary>
    [Fact]
    public async Task Cert_issue_makes_the_servers_certificate_name_the_host_devices_dial()
    {
        await Run(["org", "add", "--code", "pol", "--name", "Police", "--kind", "police", .. StoreArguments]);
        await Run(["user", "add", "--user", "patrol.one", "--org", "POL", "--roles", "reporter", .. StoreArguments]);
        var certs = Path.Combine(DataDirectory, "certs");
        var invalid = await Run(["cert", "issue", "--user", "patrol.one", "--host", "bad..host", "--out", certs, .. StoreArguments]);
        Assert.Equal(2, invalid.Exit);
        Assert.Contains("--host 'bad..host' must be a DNS name or an IP address", invalid.Errors, StringComparison.Ordinal);
        Assert.False(Directory.Exists(certs), "nothing is issued for a host no certificate can name");
        var first = await Run(["cert", "issue", "--user", "patrol.one", "--host", "concord.mission.example", "--out", certs, .. StoreArguments]);
        Assert.Equal(0, first.Exit);
        Assert.Contains("now also names concord.mission.example", first.Output, StringComparison.Ordinal);

        // Issued and revoked: both in the audit, with the certificate's thumbprint and its member.
        var thumbprint = System.Text.RegularExpressions.Regex.Match(first.Output, "issued certificate ([0-9a-f]+) for").Groups[1].Value;
        Assert.NotEmpty(thumbprint);
        var revoked = await Run(["cert", "revoke", "--thumbprint", thumbprint, .. StoreArguments]);
        Assert.Equal(0, revoked.Exit);
        await using (var services = Services(await StoreAsync()))
        await using (var scope = services.CreateAsyncScope())
        {
            var details = await scope.ServiceProvider.GetRequiredService<ConcordDb>().Audit.Where(e => e.Entity == "certificate").OrderBy(e => e.ChainIndex).Select(e => e.Detail).ToListAsync();
            Assert.Equal(2, details.Count(d => d.Contains(thumbprint, StringComparison.Ordinal) && d.Contains("patrol.one", StringComparison.Ordinal)));
            Assert.Contains("\"issued\"", details[^2], StringComparison.Ordinal);
            Assert.Contains("\"revoked\"", details[^1], StringComparison.Ordinal);
        }

        using var server = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(
            Path.Combine(DataDirectory, "keys", "tak", "server.pfx"), null);
        Assert.True(server.MatchesHostname("concord.mission.example"));
        Assert.True(server.MatchesHostname("localhost"));
        Assert.True(server.MatchesHostname("127.0.0.1"));
        Assert.False(server.MatchesHostname("elsewhere.example"));

        // A second device's set is not written over the first's: its certificate stays valid, and its key would be lost (or
        // handed out not matching it). Refused before anything is issued.
        var key = await File.ReadAllBytesAsync(Path.Combine(certs, "patrol.one.key.pem"));
        var over = await Run(["cert", "issue", "--user", "patrol.one", "--host", "10.20.30.40", "--out", certs, .. StoreArguments]);
        Assert.Equal(1, over.Exit);
        Assert.Contains($"{Path.Combine(certs, "patrol.one.cert.pem")} exists (a certificate issued before for patrol.one)", over.Errors, StringComparison.Ordinal);
        Assert.Equal(key, await File.ReadAllBytesAsync(Path.Combine(certs, "patrol.one.key.pem")));
        await using (var services = Services(await StoreAsync()))
        await using (var scope = services.CreateAsyncScope())
        {
            Assert.Equal(1, await scope.ServiceProvider.GetRequiredService<ConcordDb>().DeviceCertificates.CountAsync());
        }

        // An IP address, and a host it already names: only the new one changes it.
        var second = await Run(["cert", "issue", "--user", "patrol.one", "--host", "10.20.30.40", "--out", certs + "-2", .. StoreArguments]);
        Assert.Contains("now also names 10.20.30.40", second.Output, StringComparison.Ordinal);
        var again = await Run(["cert", "issue", "--user", "patrol.one", "--host", "concord.mission.example", "--out", certs + "-3", .. StoreArguments]);
        Assert.Equal(0, again.Exit);
        Assert.DoesNotContain("now also names", again.Output, StringComparison.Ordinal);
        using var updated = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(
            Path.Combine(DataDirectory, "keys", "tak", "server.pfx"), null);
        Assert.True(updated.MatchesHostname("10.20.30.40") && updated.MatchesHostname("concord.mission.example"));
        Assert.Equal(server.Issuer, updated.Issuer);

        // Run with another data directory than the server's (as a PostgreSQL store allows), there is no authority to sign
        // with: none is made up, whose certificates the server would refuse.
        File.Move(Path.Combine(DataDirectory, "keys", "tak", "ca.pfx"), Path.Combine(DataDirectory, "ca.pfx.away"));
        var elsewhere = await Run(["cert", "issue", "--user", "patrol.one", "--out", certs, .. StoreArguments]);
        Assert.Equal(1, elsewhere.Exit);
        Assert.Contains("holds no certificate authority", elsewhere.Errors, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(DataDirectory, "keys", "tak", "ca.pfx")));
    }
}

public sealed class CliTests_Postgres : CliTests
{
    private readonly PostgresDatabase _database = new();
    private string _connection = "";

    internal override string[] StoreArguments => ["--store", "postgres", "--connection", _connection];

    internal override Task<StoreOptions> StoreAsync() => Task.FromResult(StoreOptions.Postgres(_connection));

    public override async Task InitializeAsync() => _connection = await _database.CreateAsync();

    public override async Task DisposeAsync()
    {
        await _database.DropAsync();
        await base.DisposeAsync();
    }

    [Fact]
    public async Task The_writer_lease_lost_with_its_connection_is_taken_again_unless_another_process_took_it()
    {
        await Run(["migrate", .. StoreArguments]);
        await using var lease = new WriterLease(await StoreAsync());
        await lease.AcquireAsync(CancellationToken.None);

        // A database restart or an idle timeout ends the lease's session: the next batch finds out and takes it again.
        Assert.Equal(1, await TerminateLeaseSessionsAsync());
        await Task.Delay(1100);
        // Taken again, it says so: what another process wrote meanwhile is not known to the writer's caches.
        Assert.True(await lease.EnsureHeldAsync(CancellationToken.None));
        await Task.Delay(1100);
        Assert.False(await lease.EnsureHeldAsync(CancellationToken.None));
        Assert.Equal(1, await TerminateLeaseSessionsAsync());

        // Meanwhile another process took it: this one is told, instead of writing beside it.
        await using var other = new WriterLease(await StoreAsync());
        await other.AcquireAsync(CancellationToken.None);
        await Task.Delay(1100);
        await Assert.ThrowsAsync<StoreBusyException>(() => lease.EnsureHeldAsync(CancellationToken.None));

        // When the other process ends, a request takes the lease back before the writer looks (ReportWriter.WriteAsync):
        // the writer is still told that it was not held meanwhile, and reads fusion's incidents anew.
        await other.DisposeAsync();
        // PostgreSQL ends the other's session (and its lock) a moment after its client has closed the connection: on a loaded
        // machine the first try can still find it held, as a request would (answered 503, to retry).
        for (var tries = 0; ; tries++)
        {
            try
            {
                await lease.AcquireAsync(CancellationToken.None);
                break;
            }
            catch (StoreBusyException) when (tries < 50)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(await lease.EnsureHeldAsync(CancellationToken.None));
        Assert.False(await lease.EnsureHeldAsync(CancellationToken.None));
    }

    [Fact]
    public async Task An_agreement_retired_while_the_command_line_records_its_next_version_stays_retired()
    {
        await Run(["org", "add", "--code", "OCHX", "--name", "Humanitarian coordination", "--kind", "humanitarian", .. StoreArguments]);
        await Run(["org", "add", "--code", "FORX", "--name", "Force", "--kind", "military", .. StoreArguments]);
        var file = Path.Combine(DataDirectory, "race.json");
        await File.WriteAllTextAsync(file, """
            {"code": "mou-race", "name": "Site data", "parties": ["OCHX", "FORX"],
             "rules": [{"reporter": "org:OCHX", "category": "*", "marking": {"classification": "UNCLASSIFIED", "releasableTo": ["org:FORX"]}, "tlp": "amber"}]}
            """);
        Assert.Equal(0, (await Run(["agreement", "add", "--file", file, .. StoreArguments])).Exit);

        // A retirement through the API holds the audit chain's lock while it commits: the command line has read version 1
        // and waits for the lock to write version 2.
        await using var api = new Npgsql.NpgsqlConnection(_connection);
        await api.OpenAsync();
        await using var retiring = await api.BeginTransactionAsync();
        await using (var lockChain = new Npgsql.NpgsqlCommand("SELECT pg_advisory_xact_lock(4242002)", api, retiring))
        {
            await lockChain.ExecuteNonQueryAsync();
        }

        var revising = Task.Run(() => Run(["agreement", "add", "--file", file, .. StoreArguments]));
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!await WaitingForAsync(4242002))
        {
            if (revising.IsCompleted)
            {
                Assert.Fail((await revising).Errors);
            }

            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), "the command line to wait for the audit chain");
            await Task.Delay(50);
        }

        await using (var retire = new Npgsql.NpgsqlCommand("UPDATE agreements SET retired_at = now() WHERE code = 'MOU-RACE'", api, retiring))
        {
            Assert.Equal(1, await retire.ExecuteNonQueryAsync());
        }

        await retiring.CommitAsync();
        var revised = await revising;
        Assert.Equal(1, revised.Exit);
        Assert.Contains("agreement 'MOU-RACE' was revised or retired meanwhile", revised.Errors, StringComparison.Ordinal);
        await using var services = Services(await StoreAsync());
        await using var scope = services.CreateAsyncScope();
        var versions = await scope.ServiceProvider.GetRequiredService<ConcordDb>().Agreements.Where(a => a.Code == "MOU-RACE").ToListAsync();
        Assert.NotNull(Assert.Single(versions).RetiredAt);
    }

    /// <summary>Whether a session of this test's database waits for the advisory lock <paramref name="key"/>.</summary>
    private async Task<bool> WaitingForAsync(int key)
    {
        await using var admin = new Npgsql.NpgsqlConnection(_connection);
        await admin.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            $"SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.objid = {key} AND NOT l.granted AND d.datname = current_database()", admin);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Ends the sessions holding the writer's advisory lock on this test's database; how many there were.</summary>
    private async Task<int> TerminateLeaseSessionsAsync()
    {
        await using var admin = new Npgsql.NpgsqlConnection(_connection);
        await admin.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.objid = 4242003 AND d.datname = current_database()", admin);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

public sealed class CommandLineTests
{
    [Theory]
    [InlineData(new[] { "frobnicate" }, "unknown verb 'frobnicate'")]
    [InlineData(new[] { "serve", "--port", "1" }, "unknown option '--port' for 'serve'")]
    [InlineData(new[] { "serve", "--data" }, "option '--data' needs a value (DIR)")]
    [InlineData(new[] { "serve", "--data", "" }, "option '--data' needs a value (DIR), not an empty one")]
    [InlineData(new[] { "cert", "issue", "--user", "a", "--out=" }, "option '--out' needs a value (DIR), not an empty one")]
    [InlineData(new[] { "migrate", "--store", "postgres", "--connection", "Host=127.0.0.1;Username=concord" }, "--connection names no Database")]
    [InlineData(new[] { "user" }, "did you mean 'user add' or 'user set'?")]
    [InlineData(new[] { "user", "add", "--org", "X" }, "'user add' needs --user NAME")]
    [InlineData(new[] { "serve", "--store", "mysql" }, "--store must be sqlite or postgres, not 'mysql'")]
    [InlineData(new[] { "serve", "--store", "postgres" }, "--store postgres needs --connection")]
    [InlineData(new[] { "serve", "--urls", "localhost" }, "--urls 'localhost' must be http(s)://HOST:PORT")]
    [InlineData(new[] { "serve", "--urls", "http://ops.mission.lan:5080" }, "--urls host 'ops.mission.lan' is a name: the server would listen on every interface for it")]
    [InlineData(new[] { "serve", "--urls", "http://127.0.0.1:5080;http://concord:5081" }, "--urls host 'concord' is a name")]
    [InlineData(new[] { "serve", "--classification", "secret" }, "unknown classification scheme 'secret'")]
    [InlineData(new[] { "token", "create", "--user", "a", "--days", "999" }, "--days must be a whole number from 1 to 365")]
    [InlineData(new[] { "token", "revoke", "--user", "a", "--id", "x" }, "--id must be a token id (a UUID)")]
    [InlineData(new[] { "cert", "issue", "--user", "a", "--days", "0" }, "--days must be a whole number from 1 to 3650")]
    [InlineData(new[] { "cert", "issue", "--user", "a", "--port", "70000" }, "--port must be a port number")]
    [InlineData(new[] { "serve", "--tile-url", "http://tiles/x.png" }, "--tile-url 'http://tiles/x.png' must contain {z}, {x} and {y}")]
    [InlineData(new[] { "serve", "--tile-dir", "/nonexistent/tiles" }, "--tile-dir '/nonexistent/tiles' is not a directory")]
    [InlineData(new[] { "serve", "--tile-url", "http://tiles.mission/{z}/{x}/{y}.png", "--tile-dir", "/tmp" }, "--tile-url and --tile-dir each give the map its tiles: give one")]
    [InlineData(new[] { "serve", "--no-tak", "--tak-port", "9000" }, "--tak-port contradicts --no-tak")]
    [InlineData(new[] { "serve", "--no-tak", "--tak-tcp-port", "8087", "--tak-tcp-user", "viewer" }, "--tak-tcp-port contradicts --no-tak")]
    [InlineData(new[] { "serve", "--tak-tcp-user", "viewer" }, "--tak-tcp-user needs --tak-tcp-port")]
    [InlineData(new[] { "import", "--file", "/nonexistent/events.csv", "--user", "a" }, "--file '/nonexistent/events.csv' does not exist")]
    [InlineData(new[] { "import", "--file", "/etc", "--user", "a" }, "--file '/etc' is a folder, not a file")]
    [InlineData(new[] { "import", "--file", "/etc/passwd", "--format", "xml", "--user", "a" }, "--format must be ged, acled or geojson, not 'xml'")]
    [InlineData(new[] { "import", "--file", "/etc/passwd", "--format", "ged", "--user", "a", "--caveats", "X" }, "--releasable-to and --caveats go with --level")]
    [InlineData(new[] { "forecast", "evaluate", "--file", "/nonexistent/ged.csv" }, "'/nonexistent/ged.csv' does not exist")]
    [InlineData(new[] { "forecast", "evaluate", "--out", "/etc/hostname/evaluation" }, "--out '/etc/hostname/evaluation' cannot be written")]
    [InlineData(new[] { "forecast", "evaluate", "--file", "/etc" }, "'/etc' is a folder, not a file")]
    [InlineData(new[] { "demo", "--seed-only", "--urls", "http://0.0.0.0:5080" }, "--urls is for serving; --seed-only seeds the store and exits")]
    [InlineData(new[] { "demo", "--seed-only", "--tak-tcp-port", "8087", "--tak-tcp-user", "x" }, "--tak-tcp-port is for serving")]
    public async Task Bad_command_lines_print_a_reason_and_the_usage_and_exit_2(string[] args, string reason)
    {
        var (exit, _, errors) = await CliTests.Run(args);

        Assert.Equal(2, exit);
        Assert.Contains(reason, errors);
        Assert.Contains("usage: concord", errors);
    }

    [Fact]
    public async Task An_interrupted_forecast_evaluation_exits_130_and_writes_nothing()
    {
        // It ignored Ctrl+C: a back-test over a whole GED file ran to its end, wrote its files and exited 0.
        var directory = Directory.CreateTempSubdirectory("concord-evaluation-").FullName;
        try
        {
            using var interrupted = new CancellationTokenSource();
            await interrupted.CancelAsync();
            var (output, errors) = (new StringWriter(), new StringWriter());
            var exit = await Commands.RunAsync(["forecast", "evaluate", "--out", directory], output, errors, interrupted.Token);

            Assert.Equal(130, exit);
            Assert.Contains("interrupted", errors.ToString(), StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task An_agreement_file_that_cannot_be_read_is_named_not_blamed_on_the_store()
    {
        var (exit, _, errors) = await CliTests.Run(["agreement", "add", "--file", "/etc", "--data", Path.Combine(Path.GetTempPath(), "concord-unused-" + Guid.NewGuid().ToString("N"))]);

        Assert.Equal(1, exit);
        Assert.StartsWith("concord: /etc: ", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("store", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forecast_file_that_cannot_be_read_is_named_not_blamed_on_the_store()
    {
        // /proc/self/mem is there and opens, but reading it from its start fails (the first page is not mapped): an input
        // error such as a failing disk gives. The verb uses no store, yet the catch-all said "the store could not be used".
        var (exit, _, errors) = await CliTests.Run(["forecast", "evaluate", "--file", "/proc/self/mem"]);

        Assert.Equal(1, exit);
        Assert.StartsWith("concord: ", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("store", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_password_in_the_connection_string_is_warned_of_and_not_repeated()
    {
        // A serving process keeps its command line, readable by every user of the machine (ps, /proc), for months.
        var (exit, _, errors) = await CliTests.Run(["migrate", "--store", "postgres", "--connection", "Host=127.0.0.1;Port=1;Database=concord;Username=concord;Password=s3cret-Pw;Timeout=3"]);

        Assert.Equal(1, exit);
        Assert.Contains("the password in --connection is visible to other users", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-Pw", errors, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--caveats", new[] { "user", "set", "--user", "a", "--caveats", "" })]
    [InlineData("--releasable-to", new[] { "import", "--file", "f.csv", "--user", "a", "--level", "UNCLASSIFIED", "--releasable-to=" })]
    public void A_list_option_may_be_given_empty(string option, string[] args)
    {
        Assert.True(Cli.CommandLine.TryParse(args, out var invocation, out var error), error);
        Assert.Equal("", invocation[option]);
    }

    [Fact]
    public async Task Help_lists_every_verb()
    {
        var (exit, output, _) = await CliTests.Run("--help");
        var (verbExit, verbHelp, _) = await CliTests.Run("user", "add", "--help");

        Assert.Equal(0, exit);
        foreach (var verb in new[] { "serve", "demo", "migrate", "org add", "user add", "user set", "token create", "token revoke", "cert issue", "cert revoke", "audit verify", "caveat add", "group add", "agreement add" })
        {
            Assert.Contains(verb, output);
        }

        Assert.Equal(0, verbExit);
        Assert.Contains("--clearance LEVEL", verbHelp);
        var (helpVerbExit, helpVerb, _) = await CliTests.Run("help", "token", "create");
        Assert.Equal(0, helpVerbExit);
        Assert.Contains("--name", helpVerb);

        // The first word of two-word verbs lists them with their options.
        var (groupExit, groupHelp, groupErrors) = await CliTests.Run("token", "--help");
        Assert.True(groupExit == 0, groupErrors);
        Assert.Contains("token create", groupHelp);
        Assert.Contains("token revoke", groupHelp);
        Assert.Contains("--name", groupHelp);
        Assert.DoesNotContain("cert issue", groupHelp);
    }

    [Fact]
    public async Task Help_is_asked_only_where_an_option_may_stand_and_only_for_known_verbs()
    {
        // "help" as the value of an option is that value: a token named "help".
        Assert.False(Commands.HelpAsked(["token", "create", "--user", "force.g2", "--name", "help"], out _));
        Assert.False(Commands.HelpAsked(["token", "create", "--user", "force.g2", "--name", "-h"], out _));
        Assert.True(Commands.HelpAsked(["token", "create", "--help"], out var words));
        Assert.Equal("token create", words);
        var (unknown, _, errors) = await CliTests.Run("frobnicate", "--help");
        Assert.Equal(2, unknown);
        Assert.Contains("unknown verb 'frobnicate'", errors);
    }

    [Fact]
    public async Task Serve_with_its_tak_port_in_use_says_so_and_exits_non_zero()
    {
        var (port, exit, output, errors) = await ServeWithAPortTakenAsync((data, port) =>
            ["serve", "--data", data, "--urls", "http://127.0.0.1:0", "--tak-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

        Assert.Equal(1, exit);
        Assert.Contains($"cannot listen for TAK devices on 127.0.0.1 (TLS port {port})", errors);
        Assert.Contains("--tak-port", errors);
        Assert.DoesNotContain("listening", output);
    }

    [Fact]
    public async Task Serve_on_a_port_in_use_says_so_and_never_that_it_listens()
    {
        var (port, exit, output, errors) = await ServeWithAPortTakenAsync((data, port) =>
            ["serve", "--data", data, "--urls", $"http://127.0.0.1:{port}", "--no-tak"]);

        Assert.Equal(1, exit);
        Assert.Contains($"cannot listen on http://127.0.0.1:{port}", errors);
        Assert.DoesNotContain("listening", output);
    }

    [Fact]
    public async Task Serve_on_https_without_a_certificate_says_so_and_exits_1()
    {
        // The slim host left HTTPS out: an https address crashed the process with a stack trace ("Call
        // UseKestrelHttpsConfiguration()"), and the hint to configure a certificate could not have worked.
        var (_, exit, output, errors) = await ServeWithAPortTakenAsync((data, _) => ["serve", "--data", data, "--urls", "https://127.0.0.1:0", "--no-tak"]);

        Assert.Equal(1, exit);
        Assert.Contains("cannot listen on https://127.0.0.1:0", errors);
        Assert.Contains("certificate", errors);
        Assert.DoesNotContain("listening", output);
    }

    [Fact]
    public async Task Serve_on_an_address_the_machine_does_not_have_says_so_and_exits_1()
    {
        // 192.0.2.1 is reserved for documentation (RFC 5737): no machine has it, and binding it fails with its own socket
        // error (not "address in use"), which used to crash the process with a stack trace.
        var (_, exit, output, errors) = await ServeWithAPortTakenAsync((data, _) => ["serve", "--data", data, "--urls", "http://192.0.2.1:5080", "--no-tak"]);

        Assert.Equal(1, exit);
        Assert.Contains("cannot listen on http://192.0.2.1:5080", errors);
        Assert.DoesNotContain("listening", output);
    }

    /// <summary>Runs <c>concord</c> with a fresh data directory while another listener holds a loopback port.</summary>
    private static async Task<(int Port, int Exit, string Output, string Errors)> ServeWithAPortTakenAsync(Func<string, int, string[]> arguments)
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        var data = Path.Combine(Path.GetTempPath(), "concord-port-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var (exit, output, errors) = await CliTests.Run(arguments(data, port));
            return (port, exit, output, errors);
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}

using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Areas;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Organizations;
using Concord.Server.Reports;
using Concord.Server.Ucdp;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Demo;

/// <summary>
/// A demo peace operation in the Central African Republic: organisations of every kind, members with different
/// clearances and caveats, the 17 prefectures from Natural Earth, and the 1,848 UCDP GED 23.1 events as reports
/// with a spread of markings. Seeding twice changes nothing.
/// </summary>
internal static class DemoMission
{
    public const string Password = "concord-demo";

    public static readonly string ReferenceDirectory = Path.Combine(AppContext.BaseDirectory, "reference");

    internal sealed record DemoOrganization(string Code, string Name, string Kind, string? Nation);

    internal sealed record DemoMember(string UserName, string Organization, string DisplayName, string Roles, string Clearance, string Caveats);

    public static readonly IReadOnlyList<DemoOrganization> Organizations =
    [
        new("JOC", "MINUSCA Joint Operations Centre", "civilian", null),
        new("JMAC", "MINUSCA Joint Mission Analysis Centre", "intelligence", null),
        new("FORCE", "MINUSCA Force Headquarters", "military", null),
        new("RWABATT", "Rwandan Battalion, Sector Centre", "military", "RWA"),
        new("UNPOL", "MINUSCA United Nations Police", "police", null),
        new("CIVAFF", "MINUSCA Civil Affairs Section", "civilian", null),
        new("OCHA", "OCHA Central African Republic", "humanitarian", null),
        new("NGO-MED", "Medical NGO consortium", "humanitarian", null),
        new("PREF-OUHAM", "Préfecture de l'Ouham", "local-authority", "CAF"),
        new("CAN-BAMBARI", "Community Alert Network, Bambari", "community", "CAF"),
        new("AU", "African Union liaison office", "regional-organization", null),
    ];

    public static readonly IReadOnlyList<DemoMember> Members =
    [
        new("admin", "JOC", "Mission administrator", "mission-admin,org-admin,auditor,analyst", "STRICTLY CONFIDENTIAL", "SOURCE-PROTECTED,DECONFLICTION-ONLY"),
        new("joc.officer", "JOC", "JOC duty officer", "analyst,reporter", "STRICTLY CONFIDENTIAL", ""),
        new("jmac.analyst", "JMAC", "JMAC analyst", "analyst,reporter", "STRICTLY CONFIDENTIAL", "SOURCE-PROTECTED"),
        new("force.g2", "FORCE", "Force U2 analyst", "analyst,reporter", "CONFIDENTIAL", ""),
        new("rwabatt.patrol", "RWABATT", "RWABATT patrol leader", "reporter", "UNCLASSIFIED", ""),
        new("unpol.officer", "UNPOL", "UNPOL investigator", "reporter,analyst", "CONFIDENTIAL", "SOURCE-PROTECTED"),
        new("civaff.officer", "CIVAFF", "Civil affairs officer", "reporter", "CONFIDENTIAL", ""),
        new("ocha.cmcoord", "OCHA", "Humanitarian CMCoord officer", "reporter,analyst", "CONFIDENTIAL", "DECONFLICTION-ONLY"),
        new("ngo.med", "NGO-MED", "NGO field coordinator", "reporter", "UNCLASSIFIED", ""),
        new("prefet.ouham", "PREF-OUHAM", "Secrétaire général de préfecture", "reporter", "UNCLASSIFIED", ""),
        new("can.bambari", "CAN-BAMBARI", "Community alert focal point", "reporter", "UNCLASSIFIED", ""),
        new("au.liaison", "AU", "AU liaison officer", "reporter", "CONFIDENTIAL", ""),
    ];

    /// <summary>Who files which GED events, under which marking: a spread so that every viewer sees a different picture.</summary>
    private static readonly (string Author, MarkingDto Marking)[] Profiles =
    [
        ("joc.officer", new MarkingDto("UNCLASSIFIED", ["mission"], [])),
        ("joc.officer", new MarkingDto("UNCLASSIFIED", ["mission"], [])),
        ("force.g2", new MarkingDto("CONFIDENTIAL", ["kind:military", "org:JOC", "org:JMAC"], [])),
        ("unpol.officer", new MarkingDto("CONFIDENTIAL", ["kind:police", "org:JMAC"], ["SOURCE-PROTECTED"])),
        ("ocha.cmcoord", new MarkingDto("CONFIDENTIAL", ["kind:humanitarian", "org:JOC"], ["DECONFLICTION-ONLY"])),
        ("jmac.analyst", new MarkingDto("STRICTLY CONFIDENTIAL", ["org:JOC"], [])),
        ("civaff.officer", new MarkingDto("UNCLASSIFIED", ["mission"], [])),
        ("rwabatt.patrol", new MarkingDto("UNCLASSIFIED", ["kind:military", "org:JOC"], [])),
    ];

    private const string AnotherMission = "this store holds organisations or members the demo did not make; the demo seeds a store of its own: give it a new --data directory (or database)";

    /// <summary>
    /// The demo's own store is the one its seeding audited (or, made before that was audited, one holding all its members):
    /// a real mission's store with a JOC of its own is another mission, and gets no demo areas or reports.
    /// </summary>
    private static async Task<bool> DemoMadeAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        var names = Members.Select(m => m.UserName).ToList();
        return await db.Audit.AnyAsync(e => e.Action == AuditActions.Administer && e.Entity == "demo" && e.Actor == Audits.SystemActor, cancellationToken)
            || await db.Members.CountAsync(m => names.Contains(m.UserName), cancellationToken) == names.Count;
    }

    private static async Task<bool> HoldsAnotherMissionAsync(ConcordDb db, CancellationToken cancellationToken) =>
        !await DemoMadeAsync(db, cancellationToken) && (await db.Organizations.AnyAsync(cancellationToken) || await db.Members.AnyAsync(cancellationToken));

    /// <summary>
    /// Refuses a store holding another mission before the demo migrates it or records its scheme there (a newer build's
    /// demo pointed at a production store by mistake would otherwise upgrade it past what the production build reads).
    /// A store with no Concord schema yet is the demo's to make.
    /// </summary>
    public static async Task RefuseAnotherMissionsStoreAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        if (await Migrator.PendingAsync(db, services.GetRequiredService<StoreOptions>().Kind, cancellationToken) is not null
            && await HoldsAnotherMissionAsync(db, cancellationToken))
        {
            throw new DemoSeedException(AnotherMission);
        }
    }

    public static async Task SeedAsync(IServiceProvider services, TextWriter output, CancellationToken cancellationToken)
    {
        // The demo writes reports: it must be their one writer before it writes anything (see WriterLease).
        await services.GetRequiredService<Data.WriterLease>().AcquireAsync(cancellationToken);
        var time = services.GetRequiredService<TimeProvider>();
        var scheme = services.GetRequiredService<ClassificationScheme>();
        var directory = services.GetRequiredService<MissionDirectory>();
        await using (var scope = services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            if (!await DemoMadeAsync(db, cancellationToken))
            {
                // A store holding another mission gets no demo organisations and no members with a printed password.
                if (await HoldsAnotherMissionAsync(db, cancellationToken))
                {
                    throw new DemoSeedException(AnotherMission);
                }

                // All or nothing, and audited: a refusal half-way left some organisations behind, and every later run then
                // skipped the seeding because JOC was there.
                var entry = Audits.Entry(null, AuditActions.Administer, "demo", null, AuditMarking.None, time.GetUtcNow().UtcDateTime, Audits.Detail(new
                {
                    organizations = Organizations.Select(o => o.Code),
                    // With what each may do (the clearance in the store's scheme): the audit tells who was given the mission's keys.
                    members = Members.Select(m => new
                    {
                        user = m.UserName,
                        organization = m.Organization,
                        roles = m.Roles.Split(','),
                        clearance = LevelFor(scheme, m.Clearance),
                        caveats = m.Caveats.Split(',', StringSplitOptions.RemoveEmptyEntries),
                    }),
                }));
                await services.GetRequiredService<AuditChain>().SaveAsync(db, [entry], cancellationToken, async inTransaction =>
                {
                    foreach (var o in Organizations)
                    {
                        var (_, error) = await OrganizationAdmin.AddAsync(inTransaction, o.Code, o.Name, o.Kind, o.Nation, time, cancellationToken);
                        Check(error);
                    }

                    // Members name their organisation by code, read from the store: the organisations are written first.
                    await inTransaction.SaveChangesAsync(cancellationToken);
                    foreach (var m in Members)
                    {
                        var (_, error) = await MemberAdmin.AddAsync(inTransaction, new NewMember(m.UserName, m.Organization, m.DisplayName,
                            m.Roles.Split(','), LevelFor(scheme, m.Clearance), m.Caveats.Split(',', StringSplitOptions.RemoveEmptyEntries), Password),
                            scheme, services.GetRequiredService<CaveatRegistry>(), time, cancellationToken);
                        Check(error);
                    }
                });
            }

            if (!await db.Areas.AnyAsync(cancellationToken))
            {
                // Audited as every administrative change is: areas decide routing and who leads where.
                var areas = ReadAreas(Path.Combine(ReferenceDirectory, "geo", "ne10m_admin1_caf.geojson")).ToList();
                db.Areas.AddRange(areas);
                await services.GetRequiredService<AuditChain>().SaveAsync(db, [Audits.Entry(null, AuditActions.Administer, "area", null, AuditMarking.None,
                    time.GetUtcNow().UtcDateTime, Audits.Detail(new { added = areas.Select(a => a.Code), source = "Natural Earth admin-1, CAR" }))], cancellationToken);
            }
        }

        await directory.ReloadAsync(force: true, cancellationToken);
        bool seeded;
        await using (var scope = services.CreateAsyncScope())
        {
            seeded = await DemoCoordination.SeededAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), cancellationToken);
        }

        if (seeded)
        {
            // Seeded whole before (the coordination, seeded last, is there): served as it is. Seeding the reports again
            // would add nothing, and would judge each as new against what changed since (an author disabled or cleared
            // lower: "rejected" for reports that are stored, or no run at all).
            await output.WriteLineAsync($"Demo mission: {Organizations.Count} organisations, {Members.Count} members, {directory.Areas.Count()} areas; seeded before, nothing added.");
        }
        else
        {
            var (created, rejected, duplicates) = await SeedReportsAsync(services, scheme, cancellationToken);
            await DemoCoordination.SeedAsync(services, output, cancellationToken);
            await output.WriteLineAsync($"Demo mission: {Organizations.Count} organisations, {Members.Count} members, {directory.Areas.Count()} areas; {created} reports added from UCDP GED 23.1 (CC BY 4.0){(rejected > 0 ? $", {rejected} rejected" : "")}, and {duplicates} accounts of the same events by other organisations for fusion to match.");
        }

        await SignInsAsync(services, output, cancellationToken);
    }

    /// <summary>
    /// The demo's members as the store holds them now (clearance, caveats and roles changed since, disabled ones left out),
    /// not as the demo first made them: a list that names an account that cannot sign in misleads whoever reads it.
    /// </summary>
    private static async Task SignInsAsync(IServiceProvider services, TextWriter output, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var markings = services.GetRequiredService<MarkingFormat>();
        var names = Members.Select(m => m.UserName).ToList();
        var members = await db.Members.AsNoTracking().Where(m => names.Contains(m.UserName) && !m.Disabled)
            .Join(db.Organizations.AsNoTracking(), m => m.OrganizationId, o => o.Id, (m, o) => new { m.UserName, Organization = o.Code, m.Clearance, m.Caveats, m.Roles })
            .ToListAsync(cancellationToken);
        await output.WriteLineAsync($"Sign in with any of these names and the password '{Password}' (unless changed since):");
        foreach (var m in members.OrderBy(m => names.IndexOf(m.UserName)))
        {
            var caveats = markings.Caveats.CodesOf(m.Caveats);
            await output.WriteLineAsync($"  {m.UserName,-16} {m.Organization,-12} {markings.Scheme.Label(m.Clearance),-22} {(caveats.Count > 0 ? string.Join(',', caveats) : "-"),-36} {m.Roles}");
        }
    }

    public static IEnumerable<Area> ReadAreas(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        foreach (var feature in document.RootElement.GetProperty("features").EnumerateArray())
        {
            var properties = feature.GetProperty("properties");
            var geometryElement = feature.GetProperty("geometry");
            var envelope = GeoJsonGeometry.Read(geometryElement).EnvelopeInternal;
            yield return new Area
            {
                Id = Guid.CreateVersion7(),
                // Natural Earth gives most CAF prefectures no ISO 3166-2 code; adm1_code is unique.
                Code = properties.GetProperty("adm1_code").GetString()!,
                Name = properties.GetProperty("name").GetString()!,
                Kind = "admin1",
                GeometryJson = geometryElement.GetRawText(),
                MinLatitude = envelope.MinY,
                MinLongitude = envelope.MinX,
                MaxLatitude = envelope.MaxY,
                MaxLongitude = envelope.MaxX,
            };
        }
    }

    /// <summary>The seed of the demo's duplicate accounts: the fusion quality test regenerates them to know the truth.</summary>
    public const int DuplicateSeed = 2311;

    /// <summary>Share of GED events that other organisations also report.</summary>
    public const double DuplicateShare = 0.4;

    private static async Task<(int Created, int Rejected, int Duplicates)> SeedReportsAsync(IServiceProvider services, ClassificationScheme scheme, CancellationToken cancellationToken)
    {
        var viewers = services.GetRequiredService<ViewerDirectory>();
        var byAuthor = new Dictionary<string, List<CreateReport>>(StringComparer.Ordinal);
        var duplicatesByAuthor = new Dictionary<string, List<CreateReport>>(StringComparer.Ordinal);
        var random = new Random(DuplicateSeed);
        const string GedFile = "ged231_caf_events.csv";
        var version = GedMapping.Version(GedFile);
        using (var reader = new StreamReader(Path.Combine(ReferenceDirectory, "ucdp", GedFile)))
        {
            foreach (var row in GedReader.Read(reader))
            {
                if (row.Event is not { } e)
                {
                    continue;
                }

                var (author, marking) = Profiles[(int)(e.Id % Profiles.Length)];
                var scaled = marking with { Classification = LevelFor(scheme, marking.Classification) };
                (byAuthor.TryGetValue(author, out var list) ? list : byAuthor[author] = []).Add(GedMapping.ToReport(e, scaled, version));
                foreach (var d in DemoDuplicates.For(e, random, DuplicateShare))
                {
                    var copy = d.Report with { Marking = d.Report.Marking! with { Classification = LevelFor(scheme, d.Report.Marking!.Classification) } };
                    (duplicatesByAuthor.TryGetValue(d.Author, out var more) ? more : duplicatesByAuthor[d.Author] = []).Add(copy);
                }
            }
        }

        // The GED events first, then the other organisations' accounts of them: fusion links those to the events' incidents.
        var (created, rejected) = await CreateAllAsync(services, viewers, byAuthor, cancellationToken);
        var (duplicates, rejectedDuplicates) = await CreateAllAsync(services, viewers, duplicatesByAuthor, cancellationToken);
        return (created, rejected + rejectedDuplicates, duplicates);
    }

    private static async Task<(int Created, int Rejected)> CreateAllAsync(
        IServiceProvider services, ViewerDirectory viewers, Dictionary<string, List<CreateReport>> byAuthor, CancellationToken cancellationToken)
    {
        var created = 0;
        var rejected = 0;
        foreach (var (userName, requests) in byAuthor)
        {
            var memberId = Members.Any(m => m.UserName == userName) ? await MemberIdAsync(services, userName, cancellationToken) : Guid.Empty;
            var author = await viewers.ForMemberAsync(memberId, cancellationToken) ?? throw new DemoSeedException(MissingMember(userName));
            foreach (var batch in requests.Chunk(500))
            {
                await using var scope = services.CreateAsyncScope();
                var intake = scope.ServiceProvider.GetRequiredService<ReportIntake>();
                var result = await intake.CreateManyAsync(batch, author, cancellationToken);
                created += result.Created;
                rejected += result.Rejected.Count;
            }
        }

        return (created, rejected);
    }

    internal static async Task<Guid> MemberIdAsync(IServiceProvider services, string userName, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var id = await scope.ServiceProvider.GetRequiredService<ConcordDb>().Members.Where(m => m.UserName == userName).Select(m => (Guid?)m.Id).SingleOrDefaultAsync(cancellationToken);
        return id ?? throw new DemoSeedException(MissingMember(userName));
    }

    private static string MissingMember(string userName) =>
        $"the demo's member {userName} is missing or disabled in this store; the demo seeds a store of its own: give it a new --data directory (or database)";

    /// <summary>The demo is written in UN levels; under another scheme it uses the level at the same rank.</summary>
    internal static string LevelFor(ClassificationScheme scheme, string unLevel) =>
        ClassificationScheme.Un.TryParse(unLevel, out var rank) ? scheme.Label(Math.Min(rank, scheme.Highest)) : unLevel;

    private static void Check(AdminRefusal? error)
    {
        if (error is not null)
        {
            throw new DemoSeedException("demo seeding failed: " + error);
        }
    }
}

/// <summary>The demo cannot be seeded into this store (a store that was not made by the demo, or was changed since).</summary>
internal sealed class DemoSeedException(string message) : Exception(message);

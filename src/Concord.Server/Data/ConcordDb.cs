using System.Text;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Areas;
using Concord.Server.Audit;
using Concord.Server.Incidents;
using Concord.Server.Organizations;
using Concord.Server.Realtime;
using Concord.Server.Reports;
using Concord.Server.Sharing;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query.SqlExpressions;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Concord.Server.Data;

/// <summary>The one DbContext. The schema itself lives in the numbered SQL migrations; a test proves the two agree on both stores.</summary>
internal sealed class ConcordDb(DbContextOptions<ConcordDb> options) : DbContext(options)
{
    public DbSet<Organization> Organizations => Set<Organization>();

    public DbSet<Member> Members => Set<Member>();

    public DbSet<AccessToken> AccessTokens => Set<AccessToken>();

    public DbSet<EndedSession> EndedSessions => Set<EndedSession>();

    public DbSet<Caveat> Caveats => Set<Caveat>();

    public DbSet<Area> Areas => Set<Area>();

    public DbSet<Category> Categories => Set<Category>();

    public DbSet<Report> Reports => Set<Report>();

    public DbSet<Incident> Incidents => Set<Incident>();

    public DbSet<IncidentReport> IncidentReports => Set<IncidentReport>();

    public DbSet<Fusion.FusionProposal> FusionProposals => Set<Fusion.FusionProposal>();

    public DbSet<EarlyWarning.Forecast> Forecasts => Set<EarlyWarning.Forecast>();

    public DbSet<EarlyWarning.AreaForecast> AreaForecasts => Set<EarlyWarning.AreaForecast>();

    public DbSet<Change> Changes => Set<Change>();

    public DbSet<Setting> Settings => Set<Setting>();

    public DbSet<SharingGroup> SharingGroups => Set<SharingGroup>();

    public DbSet<SharingGroupMember> SharingGroupMembers => Set<SharingGroupMember>();

    public DbSet<Agreement> Agreements => Set<Agreement>();

    public DbSet<AuditEntry> Audit => Set<AuditEntry>();

    public DbSet<DeviceCertificate> DeviceCertificates => Set<DeviceCertificate>();

    public DbSet<Track> Tracks => Set<Track>();

    public DbSet<TakItem> TakItems => Set<TakItem>();

    public DbSet<ChatMessage> Messages => Set<ChatMessage>();

    public DbSet<Coordination.CoordinationTask> Tasks => Set<Coordination.CoordinationTask>();

    public DbSet<Coordination.TaskComment> TaskComments => Set<Coordination.TaskComment>();

    public DbSet<Coordination.AssistanceRequest> Requests => Set<Coordination.AssistanceRequest>();

    public DbSet<Coordination.Escalation> Escalations => Set<Coordination.Escalation>();

    public DbSet<Coordination.Patrol> Patrols => Set<Coordination.Patrol>();

    public DbSet<Coordination.Meeting> Meetings => Set<Coordination.Meeting>();

    public DbSet<Coordination.LiaisonEntry> LiaisonLog => Set<Coordination.LiaisonEntry>();

    /// <summary>
    /// Lower case beyond ASCII, in SQL only. SQLite's own lower() changes only A–Z, so a search for "éboumbou" missed
    /// "ÉBOUMBOU" (place names in a francophone mission); on SQLite this calls <see cref="LowerFunction"/>, which
    /// the store (<c>Data/Store.cs</c>) registers on every connection, and on PostgreSQL lower(normalize(…)), which follows
    /// the database's UTF-8 character type (C.UTF-8 or a language's; under the C type lower() changes ASCII only). Both
    /// compose accents first (NFC), as <see cref="Http.TextSearch.Fold"/> does. The managed function costs more per row than SQLite's, so searches use it only for words
    /// beyond ASCII (<see cref="Http.TextSearch"/>): lower-casing a letter beyond ASCII gives one within it only for a few
    /// compatibility letters (the Kelvin sign), which such a search would miss.
    /// </summary>
    public static string Lower(string text) => throw new InvalidOperationException($"{nameof(Lower)} is translated to SQL only ({text.Length} characters)");

    /// <summary>The name of <see cref="Lower"/> on SQLite.</summary>
    public const string LowerFunction = "concord_lower";

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        if (Database.IsSqlite())
        {
            // SQLite returns times without a kind; everything Concord stores is UTC.
            configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        }
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        var lower = modelBuilder.HasDbFunction(typeof(ConcordDb).GetMethod(nameof(Lower))!);
        if (Database.IsSqlite())
        {
            lower.HasName(LowerFunction).IsBuiltIn();
        }
        else
        {
            // lower(normalize(text)): normalize() composes (NFC) by default, so text stored decomposed is found too.
            lower.HasTranslation(arguments => new SqlFunctionExpression("lower",
                [new SqlFunctionExpression("normalize", [arguments[0]], nullable: true, argumentsPropagateNullability: [true], typeof(string), arguments[0].TypeMapping)],
                nullable: true, argumentsPropagateNullability: [true], typeof(string), arguments[0].TypeMapping));
        }

        modelBuilder.Entity<Organization>(e =>
        {
            e.ToTable("organizations");
            e.Ignore(o => o.FeedName);
            e.Property(o => o.Kind).HasConversion(k => OrganizationKinds.Token(k), s => ParseKind(s));
        });
        modelBuilder.Entity<Member>(e =>
        {
            e.ToTable("members");
            e.Ignore(m => m.RoleSet);
            e.Ignore(m => m.FeedName);
            // Who may change a member is decided on what the member holds (an administrator may not change one who holds
            // more than they do): a save checks that it still holds what the request read, so a change racing a raise in
            // clearance or roles, or a password reset, is refused (409) rather than applied to the member as it now is.
            e.Property(m => m.OrganizationId).IsConcurrencyToken();
            e.Property(m => m.Roles).IsConcurrencyToken();
            e.Property(m => m.Clearance).IsConcurrencyToken();
            e.Property(m => m.Caveats).IsConcurrencyToken();
            e.Property(m => m.Disabled).IsConcurrencyToken();
            e.Property(m => m.DisabledByMission).IsConcurrencyToken();
            e.Property(m => m.SessionVersion).IsConcurrencyToken();
        });
        modelBuilder.Entity<AccessToken>(e =>
        {
            e.ToTable("access_tokens");
            e.Ignore(t => t.FeedName);
        });
        modelBuilder.Entity<EndedSession>().ToTable("ended_sessions");
        modelBuilder.Entity<Caveat>(e =>
        {
            e.ToTable("caveats");
            e.HasKey(c => c.Code);
        });
        modelBuilder.Entity<Area>().ToTable("areas");
        modelBuilder.Entity<Category>(e =>
        {
            e.ToTable("categories");
            e.HasKey(c => c.Code);
        });
        modelBuilder.Entity<Report>(e =>
        {
            e.ToTable("reports");
            e.HasKey(r => r.Number);
            e.Property(r => r.Number).ValueGeneratedOnAdd();
            e.HasIndex(r => r.Id).IsUnique();
            e.Property(r => r.ObservedPrecision).HasConversion(LowerCaseEnum<TimePrecision>());
            e.Property(r => r.Tlp).HasConversion(t => Tlps.Token(t), s => Tlps.Parse(s));
            e.Ignore(r => r.FeedName);
        });
        modelBuilder.Entity<Incident>(e =>
        {
            e.ToTable("incidents");
            e.HasKey(i => i.Number);
            e.Property(i => i.Number).ValueGeneratedOnAdd();
            e.HasIndex(i => i.Id).IsUnique();
            e.Property(i => i.Status).HasConversion(LowerCaseEnum<IncidentStatus>());
            e.Property(i => i.Tlp).HasConversion(t => Tlps.Token(t), s => Tlps.Parse(s));
            e.Ignore(i => i.FeedName);
        });
        modelBuilder.Entity<IncidentReport>(e =>
        {
            e.ToTable("incident_reports");
            e.HasKey(l => new { l.IncidentId, l.ReportId });
        });
        modelBuilder.Entity<EarlyWarning.Forecast>(e =>
        {
            e.ToTable("forecasts");
            e.HasKey(f => new { f.Gid, f.Month });
        });
        modelBuilder.Entity<EarlyWarning.AreaForecast>(e =>
        {
            e.ToTable("area_forecasts");
            e.HasKey(f => new { f.AreaId, f.Month });
        });
        modelBuilder.Entity<Fusion.FusionProposal>(e =>
        {
            e.ToTable("fusion_proposals");
            e.HasKey(p => p.Id);
        });
        modelBuilder.Entity<Change>(e =>
        {
            e.ToTable("changes");
            e.HasKey(c => c.Sequence);
            e.Property(c => c.Sequence).ValueGeneratedOnAdd();
        });

        modelBuilder.Entity<Setting>(e =>
        {
            e.ToTable("settings");
            e.HasKey(s => s.Key);
        });
        modelBuilder.Entity<SharingGroup>(e =>
        {
            e.ToTable("sharing_groups");
            e.Ignore(g => g.FeedName);
        });
        modelBuilder.Entity<SharingGroupMember>(e =>
        {
            e.ToTable("sharing_group_members");
            e.HasKey(m => new { m.GroupId, m.OrganizationId });
            // Declared so that EF inserts a new group before its members (the schema has the foreign key).
            e.HasOne<SharingGroup>().WithMany().HasForeignKey(m => m.GroupId);
        });
        modelBuilder.Entity<Agreement>(e =>
        {
            e.ToTable("agreements");
            e.Ignore(a => a.FeedName);
            e.HasKey(a => new { a.Id, a.Version });
            e.Ignore(a => a.Rules);
        });
        modelBuilder.Entity<AuditEntry>(e =>
        {
            e.ToTable("audit");
            // The chain index is the key, assigned by the chain itself: no value comes back from the database per insert.
            e.HasKey(a => a.ChainIndex);
            e.Property(a => a.ChainIndex).ValueGeneratedNever();
        });

        modelBuilder.Entity<DeviceCertificate>(e =>
        {
            e.ToTable("device_certificates");
            e.HasKey(c => c.Thumbprint);
        });
        modelBuilder.Entity<Track>(e =>
        {
            e.ToTable("tracks");
            e.HasKey(t => t.Uid);
        });
        modelBuilder.Entity<TakItem>(e =>
        {
            e.ToTable("tak_items");
            e.HasKey(t => t.Uid);
        });
        modelBuilder.Entity<ChatMessage>().ToTable("messages");

        modelBuilder.Entity<Coordination.CoordinationTask>(e =>
        {
            e.ToTable("tasks");
            Numbered(e);
            // Who may act next depends on the status: a save checks that it is still the one read (see Http.ConcurrentChange).
            e.Property(x => x.Status).IsConcurrencyToken();
            // The router narrows a routed task's marking when its incident narrows; an escalation read before that must not
            // raise a notice (or save the task) under the marking it read: the save is refused and the scheduler reads again.
            e.Property(x => x.Classification).IsConcurrencyToken();
            e.Property(x => x.ReleasableTo).IsConcurrencyToken();
            e.Property(x => x.Caveats).IsConcurrencyToken();
        });
        modelBuilder.Entity<Coordination.TaskComment>().ToTable("task_comments");
        modelBuilder.Entity<Coordination.AssistanceRequest>(e =>
        {
            e.ToTable("requests");
            Numbered(e);
            // Who may act next depends on the status: a save checks that it is still the one read (see Http.ConcurrentChange).
            e.Property(x => x.Status).IsConcurrencyToken();
        });
        modelBuilder.Entity<Coordination.Escalation>().ToTable("escalations");
        modelBuilder.Entity<Coordination.Patrol>(e =>
        {
            e.ToTable("patrols");
            Numbered(e);
            // As for tasks and requests: a cancel racing the report (or a start) is a 409, not the last write winning.
            e.Property(x => x.Status).IsConcurrencyToken();
        });
        modelBuilder.Entity<Coordination.Meeting>(e =>
        {
            e.ToTable("meetings");
            Numbered(e);
        });
        modelBuilder.Entity<Coordination.LiaisonEntry>(e =>
        {
            e.ToTable("liaison_log");
            Numbered(e);
        });

        foreach (var entity in modelBuilder.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties())
            {
                property.SetColumnName(SnakeCase(property.Name));
            }
        }
    }

    /// <summary>Records keyed by a store number (for keyset paging) with a unique public id; the feed name is not a column.</summary>
    private static void Numbered<T>(Microsoft.EntityFrameworkCore.Metadata.Builders.EntityTypeBuilder<T> e)
        where T : class, IFeedEntity
    {
        e.HasKey("Number");
        e.Property<long>("Number").ValueGeneratedOnAdd();
        e.HasIndex(nameof(IFeedEntity.Id)).IsUnique();
        e.Ignore(nameof(IFeedEntity.FeedName));
    }

    internal static string SnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString();
    }

    private static OrganizationKind ParseKind(string token) =>
        OrganizationKinds.TryParse(token, out var kind) ? kind : throw new InvalidOperationException($"unknown organisation kind '{token}' in store");

    private static ValueConverter<T, string> LowerCaseEnum<T>()
        where T : struct, Enum =>
        new(v => v.ToString().ToLowerInvariant(), s => Enum.Parse<T>(s, true));

    private sealed class UtcDateTimeConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));
}

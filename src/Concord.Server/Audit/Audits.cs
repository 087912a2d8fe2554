using System.Globalization;
using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Audit;

/// <summary>Builds audit entries in one shape, so that the log reads the same whatever wrote it.</summary>
internal static class Audits
{
    public const int MaxIdsPerEntry = 5000;

    /// <summary>The actor of what no member did (the CLI, the server's own schedulers): no member may take this name.</summary>
    public const string SystemActor = "system";

    public static string Detail(object value) => JsonSerializer.Serialize(value, JsonSerializerOptions.Web);

    /// <summary>An entry marked as the records it names (<paramref name="marking"/>); <see cref="AuditMarking.None"/> when it names none.</summary>
    public static AuditEntry Entry(Viewer? actor, string action, string? entity, Guid? entityId, AuditMarking marking, DateTime at, string detail) => new()
    {
        At = AuditChain.Truncate(at),
        MemberId = actor?.MemberId,
        Actor = actor?.UserName ?? SystemActor,
        Action = action,
        Entity = entity,
        EntityId = entityId,
        Detail = detail,
        Classification = marking.Level,
        Caveats = marking.Caveats,
    };

    public static AuditEntry Created(Viewer author, Report report, MarkingFormat markings, DateTime at) => Entry(
        author, AuditActions.Create, "report", report.Id, AuditMarking.Of(report), at,
        Detail(new { organization = author.OrganizationCode, category = report.Category, marking = markings.ToDto(report).Label, agreement = report.AgreementId, report.AgreementVersion }));

    /// <summary>
    /// How an entry speaks of words a member wrote (a reason, a title, a counterpart's name): by their length only. The
    /// log is mission-wide, read by auditors by their clearance and caveats alone, and the words are released only as
    /// their record is; the record itself (which the auditor can look up, if they may read it) holds them.
    /// </summary>
    public static string? Words(string? text) => text is null ? null : string.Create(CultureInfo.InvariantCulture, $"{text.Length} characters");

    /// <summary>
    /// Whether reading a record of this marking is audited: above the lowest level, or under a caveat at any level (a
    /// DECONFLICTION-ONLY humanitarian record is unclassified, and who read it is what its owners will ask).
    /// </summary>
    public static bool IsAudited(int level, long caveats) => level > 0 || caveats != 0;

    /// <summary>What <see cref="Read"/> needs of each record: its id and its marking's level and caveats.</summary>
    public static List<(Guid Id, int Classification, long Caveats)> Named<T>(IEnumerable<T> records)
        where T : IMarked, Realtime.IFeedEntity => [.. records.Select(r => (r.Id, r.Classification, r.Caveats))];

    /// <summary>
    /// The entries for a request that returned records above the lowest level or under a caveat, naming every one of them:
    /// one entry for the records of each marking (level and caveats), marked as they are, so that an auditor who may see
    /// some of them finds their read without learning of the others; for more than <see cref="MaxIdsPerEntry"/> records
    /// of one marking (an export) one entry per that many, each saying which part of how many it is. Records are named by
    /// their id (a device's track by its uid); the entry's entity id is the record's when it names one record with a Guid id.
    /// </summary>
    public static List<AuditEntry> Read<TId>(Viewer viewer, string entity, IReadOnlyCollection<(TId Id, int Classification, long Caveats)> records, string path, DateTime at)
    {
        var entries = new List<AuditEntry>();
        var markings = records.Where(r => IsAudited(r.Classification, r.Caveats))
            .GroupBy(r => new AuditMarking(r.Classification, r.Caveats))
            .OrderBy(g => g.Key.Level).ThenBy(g => g.Key.Caveats);
        foreach (var marking in markings)
        {
            var named = marking.ToList();
            var parts = named.Chunk(MaxIdsPerEntry).ToList();
            entries.AddRange(parts.Select((part, i) => Entry(viewer, AuditActions.Read, entity, part is [{ Id: Guid id }] ? id : null, marking.Key, at,
                Detail(parts.Count == 1
                    ? new { path, count = named.Count, ids = part.Select(r => r.Id) }
                    : (object)new { path, count = named.Count, part = i + 1, parts = parts.Count, ids = part.Select(r => r.Id) }))));
        }

        return entries;
    }

    /// <summary>
    /// The entries for a request answered with figures (counts, sums, scores, forecasts) computed from records above the
    /// lowest level or under a caveat, none when no such record went into them. Figures reveal something of every record
    /// they count, so the read is audited; an entry says how many records of each level were counted (<paramref name="counted"/>:
    /// level, caveats → records) rather than naming them, since a country-wide count would name tens of thousands at every
    /// refresh. One entry per set of caveats, marked with it and the highest level under it, as reads are split by marking:
    /// an auditor sees the part of the figures they may (an auditor without SOURCE-PROTECTED does not learn how many
    /// source-protected records a count took in).
    /// </summary>
    public static List<AuditEntry> Aggregate(Viewer viewer, string entity, IEnumerable<(int Level, long Caveats, long Count)> counted, string path, DateTime at) =>
        [.. counted.Where(c => IsAudited(c.Level, c.Caveats) && c.Count > 0).GroupBy(c => c.Caveats).OrderBy(g => g.Key).Select(group =>
        {
            var levels = group.GroupBy(c => c.Level).Select(g => (Level: g.Key, Count: g.Sum(c => c.Count))).OrderBy(c => c.Level).ToList();
            return Entry(viewer, AuditActions.Read, entity, null, new AuditMarking(levels[^1].Level, group.Key), at, Detail(new
            {
                path,
                aggregate = true,
                count = levels.Sum(c => c.Count),
                levels = levels.ToDictionary(c => c.Level.ToString(System.Globalization.CultureInfo.InvariantCulture), c => c.Count),
            }));
        })];

    /// <summary>Records counted per marking, from the level and caveats of each.</summary>
    public static List<(int Level, long Caveats, long Count)> CountMarkings(IEnumerable<(int Level, long Caveats)> records) =>
        [.. records.CountBy(r => r).Select(c => (c.Key.Level, c.Key.Caveats, (long)c.Value))];
}

using System.Collections.Frozen;
using Concord.Server.Access;
using Concord.Server.Areas;
using Concord.Server.Organizations;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;
using NetTopologySuite.Geometries.Prepared;

namespace Concord.Server.Data;

/// <summary>
/// The slowly changing reference data every request needs — organisations, areas (with prepared polygons for
/// point-in-area lookups), categories and caveats — held in memory and reloaded when something unknown is asked for.
/// </summary>
internal sealed class MissionDirectory(IServiceScopeFactory scopes, CaveatRegistry caveats, TimeProvider time) : IDisposable
{
    public static readonly TimeSpan MaximumAge = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan MinimumReloadInterval = TimeSpan.FromSeconds(2);

    /// <summary>How long the agreements in force are taken as read before the store is asked whether they changed.</summary>
    public static readonly TimeSpan AgreementsCheckedEvery = TimeSpan.FromSeconds(1);

    // The agreements table as last read (its rows: every version, and how many are retired), and when the store was last
    // asked for it: a version recorded or an agreement retired elsewhere (another node, `concord agreement`) changes it.
    private (int Versions, int Retired) _agreementRows;
    private DateTimeOffset _agreementsCheckedAt = DateTimeOffset.MinValue;

    private Snapshot _snapshot = Snapshot.Empty;
    private DateTimeOffset _loadedAt = DateTimeOffset.MinValue;

    // When a reload last failed: the callers queued behind it keep the snapshot they have for a moment rather than each
    // wait out the same failure (a store unreachable for a connect timeout, one caller after the other).
    private DateTimeOffset _failedAt = DateTimeOffset.MinValue;
    private readonly SemaphoreSlim _reload = new(1, 1);
    private long _changesThrough;

    internal sealed record AreaEntry(Area Area, IPreparedGeometry Geometry);

    private sealed record Snapshot(
        FrozenDictionary<Guid, Organization> OrganizationsById,
        FrozenDictionary<string, Organization> OrganizationsByCode,
        FrozenDictionary<Guid, AreaEntry> AreasById,
        FrozenDictionary<string, AreaEntry> AreasByCode,
        FrozenSet<string> Categories,
        IReadOnlyList<Agreement> Agreements,
        FrozenSet<string> GroupCodes,
        FrozenDictionary<Guid, string[]> GroupsByOrganization)
    {
        public static readonly Snapshot Empty = new(
            FrozenDictionary<Guid, Organization>.Empty,
            FrozenDictionary<string, Organization>.Empty,
            FrozenDictionary<Guid, AreaEntry>.Empty,
            FrozenDictionary<string, AreaEntry>.Empty,
            FrozenSet<string>.Empty,
            [],
            FrozenSet<string>.Empty,
            FrozenDictionary<Guid, string[]>.Empty);
    }

    public IEnumerable<Organization> Organizations => _snapshot.OrganizationsById.Values;

    public IEnumerable<AreaEntry> Areas => _snapshot.AreasById.Values;

    public bool IsKnownCategory(string code) => _snapshot.Categories.Contains(code);

    /// <summary>
    /// The latest version of every agreement in force. They decide the marking of new reports, and a report keeps its
    /// marking: a version recorded or an agreement retired on another node or with the command line applies within
    /// <see cref="AgreementsCheckedEvery"/> (the store is asked for the table's row counts, and the directory read again
    /// when they changed), not only when the directory is reloaded (<see cref="MaximumAge"/>).
    /// </summary>
    public async Task<IReadOnlyList<Agreement>> AgreementsAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (now - _loadedAt > MaximumAge)
        {
            await ReloadAsync(force: false, cancellationToken);
        }
        else if (now - _agreementsCheckedAt > AgreementsCheckedEvery)
        {
            _agreementsCheckedAt = now;
            await using var scope = scopes.CreateAsyncScope();
            var rows = await AgreementRowsAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), cancellationToken);
            if (rows != _agreementRows)
            {
                await ReloadAsync(force: true, cancellationToken);
            }
        }

        return _snapshot.Agreements;
    }

    private static async Task<(int Versions, int Retired)> AgreementRowsAsync(ConcordDb db, CancellationToken cancellationToken)
    {
        var counts = await db.Agreements.GroupBy(_ => 1).Select(g => new { Versions = g.Count(), Retired = g.Count(a => a.RetiredAt != null) })
            .FirstOrDefaultAsync(cancellationToken);
        return counts is null ? (0, 0) : (counts.Versions, counts.Retired);
    }

    /// <summary>
    /// Why an encoded releasability set names a community that does not exist (an organisation or sharing group code), or
    /// null: a record released to a mistyped code would silently go to nobody.
    /// </summary>
    public async Task<string?> UnknownCommunityAsync(string releasableTo, CancellationToken cancellationToken)
    {
        foreach (var token in Access.Releasability.Decode(releasableTo))
        {
            if (token.StartsWith("org:", StringComparison.Ordinal) && await OrganizationAsync(token[4..], cancellationToken) is null)
            {
                return $"no organisation has the code '{token[4..]}'";
            }

            if (token.StartsWith("group:", StringComparison.Ordinal) && !await IsKnownGroupAsync(token[6..], cancellationToken))
            {
                return $"no sharing group has the code '{token[6..]}'";
            }

            // A nation is released to through its organisations: one no organisation has (a typo, RWD for RWA) reaches nobody.
            if (token.StartsWith("nation:", StringComparison.Ordinal) && !await IsKnownNationAsync(token[7..], cancellationToken))
            {
                return $"no organisation has the nation '{token[7..]}'";
            }
        }

        return null;
    }

    private async Task<bool> IsKnownNationAsync(string nation, CancellationToken cancellationToken)
    {
        bool Known() => Organizations.Any(o => string.Equals(o.Nation, nation, StringComparison.OrdinalIgnoreCase));
        if (Known())
        {
            return true;
        }

        await ReloadAsync(force: false, cancellationToken);
        return Known();
    }

    public async Task<bool> IsKnownGroupAsync(string code, CancellationToken cancellationToken)
    {
        if (_snapshot.GroupCodes.Contains(code))
        {
            return true;
        }

        await ReloadAsync(force: false, cancellationToken);
        return _snapshot.GroupCodes.Contains(code);
    }

    /// <summary>
    /// Reads the directory again when a caveat code is unknown here: one defined on another node or with <c>concord caveat</c>
    /// beside this server is known at once, not after up to <see cref="MaximumAge"/> (a marking naming it refused meanwhile).
    /// </summary>
    public async Task KnowCaveatsAsync(IEnumerable<string?>? codes, CancellationToken cancellationToken)
    {
        if (codes is null || caveats.KnowsAll(codes))
        {
            return;
        }

        // Caveats are added, never removed: one more row than this node knows is one defined elsewhere since it read them
        // (a mistyped code costs a count, not a reload).
        await using var scope = scopes.CreateAsyncScope();
        if (await scope.ServiceProvider.GetRequiredService<ConcordDb>().Caveats.CountAsync(cancellationToken) != caveats.Codes.Count)
        {
            await ReloadAsync(force: true, cancellationToken);
        }
    }

    public Organization? Organization(Guid id) => _snapshot.OrganizationsById.GetValueOrDefault(id);

    /// <summary>An organisation by its code as stored (capitals), from the directory as loaded.</summary>
    public Organization? OrganizationByCode(string code) => _snapshot.OrganizationsByCode.GetValueOrDefault(code);

    public async Task<Organization?> OrganizationAsync(string code, CancellationToken cancellationToken)
    {
        if (_snapshot.OrganizationsByCode.TryGetValue(code, out var organization))
        {
            return organization;
        }

        await ReloadAsync(force: false, cancellationToken);
        return _snapshot.OrganizationsByCode.GetValueOrDefault(code);
    }

    public Area? Area(Guid? id) => id is { } value ? _snapshot.AreasById.GetValueOrDefault(value)?.Area : null;

    /// <summary>
    /// Whether a marking's releasability reaches an organisation as a whole (the mission, its kind, itself, its nation or one
    /// of its sharing groups). Clearance and caveats are per member and are checked when each member reads.
    /// </summary>
    public bool ReleasesTo(string releasableTo, Organization organization)
    {
        if (releasableTo.Contains(Releasability.Pattern(Community.Mission), StringComparison.Ordinal)
            || releasableTo.Contains(Releasability.Pattern(Community.Kind(organization.Kind)), StringComparison.Ordinal)
            || releasableTo.Contains(Releasability.Pattern(Community.Organization(organization.Code)), StringComparison.Ordinal)
            || (organization.Nation is { } nation && releasableTo.Contains(Releasability.Pattern(Community.Nation(nation)), StringComparison.Ordinal)))
        {
            return true;
        }

        return _snapshot.GroupsByOrganization.TryGetValue(organization.Id, out var groups)
            && groups.Any(g => releasableTo.Contains(Releasability.Pattern(Community.Group(g)), StringComparison.Ordinal));
    }

    public Area? AreaByCode(string code) => _snapshot.AreasByCode.GetValueOrDefault(code)?.Area;

    /// <summary>The area a point lies in, if any (smallest bounding box first, so sectors win over the region around them).</summary>
    public Area? AreaAt(double latitude, double longitude)
    {
        var point = GeoJsonGeometry.Point(latitude, longitude);
        AreaEntry? best = null;
        foreach (var entry in _snapshot.AreasById.Values)
        {
            var a = entry.Area;
            if (latitude < a.MinLatitude || latitude > a.MaxLatitude || longitude < a.MinLongitude || longitude > a.MaxLongitude)
            {
                continue;
            }

            if (entry.Geometry.Covers(point) && (best is null || BoxSize(a) < BoxSize(best.Area)))
            {
                best = entry;
            }
        }

        return best?.Area;
    }

    /// <summary>
    /// Reads the directory again (unless <paramref name="force"/> is false and it was read less than
    /// <see cref="MinimumReloadInterval"/> ago). With <paramref name="changesThrough"/>, for the change feed's access changes
    /// up to that sequence: read once however many feeds of this node see them (the browsers' and the TAK devices').
    /// </summary>
    public async Task ReloadAsync(bool force, CancellationToken cancellationToken, long? changesThrough = null)
    {
        await _reload.WaitAsync(cancellationToken);
        try
        {
            var now = time.GetUtcNow();
            var recent = now - _loadedAt < MinimumReloadInterval || (now - _failedAt < MinimumReloadInterval && changesThrough is null);
            if ((!force && recent) || changesThrough <= _changesThrough)
            {
                return;
            }

            try
            {
                await LoadAsync(now, changesThrough, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _failedAt = time.GetUtcNow();
                throw;
            }
        }
        finally
        {
            _reload.Release();
        }
    }

    private async Task LoadAsync(DateTimeOffset now, long? changesThrough, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var organizations = await db.Organizations.AsNoTracking().ToListAsync(cancellationToken);
        var areas = (await db.Areas.AsNoTracking().ToListAsync(cancellationToken))
            .Select(a => new AreaEntry(a, PreparedGeometryFactory.Prepare(GeoJsonGeometry.Read(a.GeometryJson))))
            .ToList();
        var categories = await db.Categories.Select(c => c.Code).ToListAsync(cancellationToken);
        var caveatList = await db.Caveats.AsNoTracking().ToListAsync(cancellationToken);
        var agreementRows = await db.Agreements.AsNoTracking().ToListAsync(cancellationToken);
        var agreements = agreementRows
            .GroupBy(a => a.Id).Select(g =>
            {
                var latest = g.MaxBy(a => a.Version)!;
                latest.FirstRecordedAt(g.Min(a => a.CreatedAt));
                return latest;
            }).Where(a => a.RetiredAt is null).ToList();
        var groups = await db.SharingGroups.Select(g => g.Code).ToListAsync(cancellationToken);
        var memberships = await db.SharingGroupMembers.Join(db.SharingGroups, m => m.GroupId, g => g.Id, (m, g) => new { m.OrganizationId, g.Code })
            .ToListAsync(cancellationToken);
        // Applied together with the rest, once everything is read: a reload failing after the caveats left them newer
        // than the agreements that use them.
        caveats.Load(caveatList);
        _snapshot = new Snapshot(
            organizations.ToFrozenDictionary(o => o.Id),
            organizations.ToFrozenDictionary(o => o.Code, StringComparer.OrdinalIgnoreCase),
            areas.ToFrozenDictionary(a => a.Area.Id),
            areas.ToFrozenDictionary(a => a.Area.Code, StringComparer.OrdinalIgnoreCase),
            categories.ToFrozenSet(StringComparer.Ordinal),
            agreements,
            groups.ToFrozenSet(StringComparer.OrdinalIgnoreCase),
            memberships.GroupBy(m => m.OrganizationId).ToFrozenDictionary(g => g.Key, g => g.Select(m => m.Code).ToArray()));
        _agreementRows = (agreementRows.Count, agreementRows.Count(a => a.RetiredAt is not null));
        _agreementsCheckedAt = now;
        _loadedAt = now;
        // Read after the changes were committed (the feeds see committed changes only): they are in what was read. Noted
        // only now: a reload cancelled or failed part-way (a page closed during its catch-up) read none of them, and
        // the feed that reloads for the same changes next must not skip its reload.
        _changesThrough = Math.Max(_changesThrough, changesThrough ?? 0);
    }

    public void Dispose() => _reload.Dispose();

    private static double BoxSize(Area a) => (a.MaxLatitude - a.MinLatitude) * (a.MaxLongitude - a.MinLongitude);
}

using System.Collections.Concurrent;
using Concord.Server.Accounts;
using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Access;

/// <summary>
/// Resolves members and access tokens to viewers, with a short cache: a change of clearance, caveats, roles or a revoked
/// token takes effect within <see cref="Lifetime"/> on every node, and at once on the node that made the change.
/// </summary>
internal sealed class ViewerDirectory(IServiceScopeFactory scopes, TimeProvider time)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(10);

    private const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, (Viewer? Viewer, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    // Bumped by Invalidate: a lookup that read the store before a change and finishes after it caches nothing.
    private long _generation;

    public async Task<Viewer?> ForMemberAsync(Guid memberId, CancellationToken cancellationToken) =>
        await Cached("m:" + memberId.ToString("N"), async db => (await Load(db, memberId, time.GetUtcNow().UtcDateTime, cancellationToken), null));

    /// <summary>A token by the hash of its secret (<see cref="AccessTokens.HashSecret"/>; a live connection opened with a token keeps it to check it again).</summary>
    public Task<Viewer?> ForTokenHashAsync(string hash, CancellationToken cancellationToken) =>
        Cached("t:" + hash, async db =>
        {
            var now = time.GetUtcNow().UtcDateTime;
            // A token made under an earlier session version than the member's now (a password change or a disable since)
            // has ended with the sessions.
            var token = await db.AccessTokens
                .Where(t => t.SecretHash == hash && t.RevokedAt == null && t.ExpiresAt > now)
                .Where(t => t.SessionVersion == null || db.Members.Any(m => m.Id == t.MemberId && m.SessionVersion == t.SessionVersion))
                .Select(t => new { t.MemberId, t.ExpiresAt })
                .SingleOrDefaultAsync(cancellationToken);
            return token is null ? (null, null) : (await Load(db, token.MemberId, now, cancellationToken), token.ExpiresAt);
        });

    /// <summary>
    /// Forgets one member's entry: the cache is behind the store for that member only (a newer session seen, one of their
    /// sessions ended). A lookup already reading the store caches nothing.
    /// </summary>
    public void Forget(Guid memberId)
    {
        Interlocked.Increment(ref _generation);
        _cache.TryRemove("m:" + memberId.ToString("N"), out _);
    }

    /// <summary>Forgets everything cached, after a change made on this node.</summary>
    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _cache.Clear();
    }

    /// <summary>A viewer from the cache or the store; a token's entry lasts no longer than the token itself.</summary>
    private async Task<Viewer?> Cached(string key, Func<ConcordDb, Task<(Viewer? Viewer, DateTime? ExpiresAt)>> load)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(key, out var entry) && entry.Until > now)
        {
            return entry.Viewer;
        }

        var generation = Interlocked.Read(ref _generation);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var (viewer, expiresAt) = await load(db);
        // Only hits are cached: caching misses would let anyone grow the cache with made-up tokens.
        if (viewer is not null)
        {
            if (_cache.Count > MaxEntries)
            {
                _cache.Clear();
            }

            var until = now + Lifetime;
            (Viewer? Viewer, DateTimeOffset Until) cached = (viewer, expiresAt is { } expires && expires < until.UtcDateTime ? new DateTimeOffset(expires, TimeSpan.Zero) : until);
            _cache[key] = cached;
            // Written first and checked after: an Invalidate between the read and now takes the entry out again.
            if (Interlocked.Read(ref _generation) != generation)
            {
                _cache.TryRemove(new KeyValuePair<string, (Viewer?, DateTimeOffset)>(key, cached));
            }
        }

        return viewer;
    }

    private static async Task<Viewer?> Load(ConcordDb db, Guid memberId, DateTime now, CancellationToken cancellationToken)
    {
        var row = await db.Members
            .Where(m => m.Id == memberId && !m.Disabled)
            .Join(db.Organizations, m => m.OrganizationId, o => o.Id, (m, o) => new { Member = m, Organization = o })
            .AsNoTracking()
            .SingleOrDefaultAsync(cancellationToken);
        if (row is null)
        {
            return null;
        }

        var groups = await db.SharingGroupMembers.Where(m => m.OrganizationId == row.Organization.Id)
            .Join(db.SharingGroups, m => m.GroupId, g => g.Id, (m, g) => g.Code)
            .ToListAsync(cancellationToken);
        var ended = await db.EndedSessions.Where(e => e.MemberId == memberId && e.ExpiresAt > now).Select(e => e.Id).ToListAsync(cancellationToken);
        return new Viewer
        {
            MemberId = row.Member.Id,
            UserName = row.Member.UserName,
            DisplayName = row.Member.DisplayName,
            OrganizationId = row.Organization.Id,
            OrganizationCode = row.Organization.Code,
            OrganizationName = row.Organization.Name,
            OrganizationKind = row.Organization.Kind,
            Nation = row.Organization.Nation,
            Clearance = row.Member.Clearance,
            SessionVersion = row.Member.SessionVersion,
            EndedSessions = ended.ToHashSet(),
            CaveatBits = row.Member.Caveats,
            Roles = row.Member.RoleSet,
            Groups = groups,
        };
    }
}

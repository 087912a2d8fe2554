using Concord.Server.Access;
using Concord.Server.Data;

namespace Concord.Server.Realtime;

/// <summary>
/// Changes of the feed that change what members may read: a member, an organisation, a sharing group or an agreement.
/// The request that made one forgets its node's cached viewers only after the commit, and other nodes and the CLI not at
/// all; a feed that tells pages or devices of such a change first reads the directory again and forgets the cached
/// viewers, so that whoever reads next reads with what members hold now.
/// </summary>
internal static class AccessChanges
{
    /// <summary>Whether a change of <paramref name="entity"/> changes what members may read.</summary>
    public static bool Concerns(string entity) => entity is "member" or "organization" or "group" or "agreement";

    /// <summary>True when <paramref name="window"/> holds an access change, after the directory and viewers were refreshed for it.</summary>
    public static async Task<bool> RefreshAsync(IReadOnlyList<Change> window, MissionDirectory directory, ViewerDirectory viewers, CancellationToken cancellationToken)
    {
        if (!window.Any(c => Concerns(c.Entity)))
        {
            return false;
        }

        await directory.ReloadAsync(force: true, cancellationToken, changesThrough: window[^1].Sequence);
        viewers.Invalidate();
        return true;
    }
}

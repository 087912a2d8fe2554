using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Data;

/// <summary>The secrets this deployment's store holds (schema 12), read once.</summary>
internal sealed class DeploymentKeys(IServiceScopeFactory scopes)
{
    private byte[]? _sourceIds;
    private bool? _legacySourceIds;
    private Http.CursorKeys? _cursors;

    /// <summary>Reads the keys the server needs before its first request (<see cref="Hosting.ConcordServices.PrepareStoreAsync"/>).</summary>
    public async Task LoadAsync(CancellationToken cancellationToken) =>
        _cursors = new Http.CursorKeys(await SourceIdsAsync(cancellationToken));

    /// <summary>The keys of paging cursors, derived from the deployment's secret (loaded by <see cref="LoadAsync"/>).</summary>
    public Http.CursorKeys Cursors => _cursors ?? throw new InvalidOperationException("The deployment's keys are read when the store is prepared.");

    /// <summary>The key of imported reports' ids (<see cref="Reports.SourceIds"/>).</summary>
    public async ValueTask<byte[]> SourceIdsAsync(CancellationToken cancellationToken)
    {
        if (_sourceIds is { } known)
        {
            return known;
        }

        return _sourceIds = Convert.FromHexString((await ValuesAsync("source-ids", cancellationToken)).Single());
    }

    /// <summary>Whether the store held imported reports before schema 12, under the ids the readers give (<see cref="Reports.SourceIds.Unkeyed"/>).</summary>
    public async ValueTask<bool> LegacySourceIdsAsync(CancellationToken cancellationToken)
    {
        if (_legacySourceIds == true)
        {
            return true;
        }

        // Read again while absent (once per import batch, from a table of two rows), so that the answer follows the store.
        return (_legacySourceIds = (await ValuesAsync("legacy-source-ids", cancellationToken)).Count > 0).Value;
    }

    private async Task<List<string>> ValuesAsync(string name, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        return await db.Database.SqlQuery<string>($"SELECT value AS \"Value\" FROM deployment_keys WHERE name = {name}").ToListAsync(cancellationToken);
    }
}

namespace Concord.Server.Incidents;

/// <summary>
/// One change to incidents at a time. The report writer's batches, an analyst's merge, split or accepted proposal, a
/// status change and a sanitised release each read incidents and their links and write them back. Interleaved, a
/// report fused into an incident a merge was removing was linked to an incident that no longer existed, and each
/// wrote back a summary rebuilt from a list of reports the other had changed. Each of them holds this gate from its
/// first read to its commit, so each sees what the one before it stored. A correction waits for the writer's current
/// batch (one transaction of up to <see cref="Reports.ReportWriter.MaxBatch"/> reports; a batch the store refuses is
/// retried a report at a time), and the writer's next batch waits for the correction, which tells fusion's index the
/// incidents it changed (<see cref="Fusion.FusionEngine.Changed"/>, <see cref="Fusion.FusionEngine.Removed"/>) before it
/// lets the gate go.
/// </summary>
/// <remarks>
/// The gate is the process's: one Concord server writes to a store (its fusion index and TAK sessions are in
/// memory too), which is how Concord is deployed on either store.
/// </remarks>
internal sealed class IncidentGate : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Waits for the gate; disposing the result lets the next one in.</summary>
    public async Task<Held> EnterAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        return new Held(_gate);
    }

    public void Dispose() => _gate.Dispose();

    internal sealed class Held(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}

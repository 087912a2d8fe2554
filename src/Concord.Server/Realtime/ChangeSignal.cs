using System.Diagnostics;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Concord.Server.Realtime;

/// <summary>
/// Wakes the change-feed tailers (live browser pushes, TAK incident pushes, incident routing) when this process commits,
/// so that they read the feed when there is something to read instead of each polling the store on a timer. Writes by
/// other processes (a command-line import, a second node) are still found by a slower fallback read.
/// </summary>
internal sealed class ChangeSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes at the next commit. Take it before reading the feed, so that a commit during the read is not missed.</summary>
    public Task Next => Volatile.Read(ref _next).Task;

    public void Pulse() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Waits for <paramref name="next"/> or <paramref name="fallback"/>, whichever comes first, then until at least
    /// <paramref name="minimumGap"/> has passed since <paramref name="lastRun"/> (a <see cref="Stopwatch"/> timestamp):
    /// under load the tailer reads once per gap, batching many commits; when idle it sleeps. Pacing is wall-clock time,
    /// not the business clock. A tailer whose last read was <paramref name="held"/> at a gap in the feed waits no longer
    /// than <see cref="Data.ChangeWindows.GapNotice"/>: a rolled-back write wakes nobody, and the gap can be judged then.
    /// </summary>
    public static async Task WaitAsync(Task next, TimeSpan fallback, TimeSpan minimumGap, long lastRun, bool held, CancellationToken cancellationToken)
    {
        if (held && fallback > Data.ChangeWindows.GapNotice)
        {
            fallback = Data.ChangeWindows.GapNotice;
        }

        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            var delay = Task.Delay(fallback, timeout.Token);
            await Task.WhenAny(next, delay);
            await timeout.CancelAsync();
        }

        cancellationToken.ThrowIfCancellationRequested();
        var elapsed = Stopwatch.GetElapsedTime(lastRun);
        if (elapsed < minimumGap)
        {
            await Task.Delay(minimumGap - elapsed, cancellationToken);
        }
    }
}

/// <summary>Pulses the <see cref="ChangeSignal"/> after every commit of this process's contexts.</summary>
internal sealed class ChangeCommitInterceptor(ChangeSignal signal) : DbTransactionInterceptor
{
    public override void TransactionCommitted(System.Data.Common.DbTransaction transaction, TransactionEndEventData eventData) => signal.Pulse();

    public override Task TransactionCommittedAsync(System.Data.Common.DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        signal.Pulse();
        return Task.CompletedTask;
    }
}

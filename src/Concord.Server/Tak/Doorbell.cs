using System.Threading.Tasks.Sources;

namespace Concord.Server.Tak;

/// <summary>
/// Wakes one waiting task, without a lock: any number of threads ring, one task waits. Rings while nobody waits are
/// remembered as one; the next wait returns at once. A ring never runs the waiter's continuation on the ringing thread
/// (a router ringing two hundred devices must not write to each itself).
/// </summary>
internal sealed class Doorbell : IValueTaskSource
{
    private const int Quiet = 0;
    private const int Rung = 1;
    private const int Waiting = 2;

    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    public void Ring()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Rung:
                    return;
                case Quiet when Interlocked.CompareExchange(ref _state, Rung, Quiet) == Quiet:
                    return;
                case Waiting when Interlocked.CompareExchange(ref _state, Quiet, Waiting) == Waiting:
                    _core.SetResult(true);
                    return;
            }
        }
    }

    /// <summary>Completes at the next ring, or at once if rung since the last wait. One waiter at a time.</summary>
    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Quiet, Rung) == Rung)
        {
            return ValueTask.CompletedTask;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Quiet) != Quiet)
        {
            // Rung between the two steps: take the ring.
            Volatile.Write(ref _state, Quiet);
            return ValueTask.CompletedTask;
        }

        return new ValueTask(this, _core.Version);
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}

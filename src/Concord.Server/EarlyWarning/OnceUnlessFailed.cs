namespace Concord.Server.EarlyWarning;

/// <summary>
/// A value computed once and kept, like <see cref="Lazy{T}"/> of a task, except that a computation that failed or was
/// cancelled is not kept: the next caller starts it again (callers waiting on the failed one see its failure).
/// </summary>
internal sealed class OnceUnlessFailed<T>(Func<Task<T>> start)
{
    private readonly Lock _lock = new();
    private Task<T>? _task;

    public Task<T> Value
    {
        get
        {
            lock (_lock)
            {
                if (_task is null or { IsFaulted: true } or { IsCanceled: true })
                {
                    _task = start();
                }

                return _task;
            }
        }
    }
}

namespace Concord.Server.Tak;

/// <summary>
/// What one device (one certificate) may still send this minute, and the stores of its events under way. Kept for the
/// certificate, not for its connection: a device that reconnects (as often as it can) finds its minute as it left it, and
/// its earlier stores still ahead of its new ones, rather than a fresh allowance with each connection.
/// </summary>
internal sealed class DeviceAllowance
{
    /// <summary>
    /// Stores of this device's events (reports, messages) begun and not yet done, at most: past it the device waits. Enough
    /// for what a person sends between two writes of the store; few enough that a device flooding markers is held back by
    /// the store as before, rather than filling the other devices' queues of alerts (which are never dropped).
    /// </summary>
    public const int MaxStoring = 16;

    private readonly Lock _lock = new();
    private MinuteCount _newItems;
    private MinuteCount _newAlerts;
    private MinuteCount _edits;
    private Task _stored = Task.CompletedTask;
    private int _storing;

    /// <summary>
    /// Counts a new item (a uid the replay check has not seen) against this device's minute: false once it has sent
    /// <see cref="TakRouter.MaxNewItemsPerMinute"/> in the minute.
    /// </summary>
    public bool TakeNewItem(DateTimeOffset now) => Take(ref _newItems, now, TakRouter.MaxNewItemsPerMinute);

    /// <summary>
    /// As <see cref="TakeNewItem"/>, for new emergencies and CASEVAC requests, which have a minute of their own: they are
    /// never held back by a device's other items, but a device inventing them as fast as it can send would grow the replay
    /// check's memory and fill every other device's queue of alerts, which is never dropped (cutting those devices).
    /// </summary>
    public bool TakeNewAlert(DateTimeOffset now) => Take(ref _newAlerts, now, TakRouter.MaxNewAlertsPerMinute);

    /// <summary>As <see cref="TakeNewItem"/>, for edits of items the replay check holds (<see cref="TakRouter.MaxEditsPerMinute"/>).</summary>
    public bool TakeEdit(DateTimeOffset now) => Take(ref _edits, now, TakRouter.MaxEditsPerMinute);

    // A lock, not the reading loop's order alone: the connection being replaced may still be reading its last events.
    private bool Take(ref MinuteCount count, DateTimeOffset now, int limit)
    {
        lock (_lock)
        {
            return count.Take(now, limit);
        }
    }

    /// <summary>
    /// Runs <paramref name="store"/> (which handles its own failures) once this device's earlier stores are done, without
    /// waiting for it: the device's later events are handled meanwhile. With <see cref="MaxStoring"/> stores waiting, the
    /// device waits for them (its reading stops), so a device cannot queue more work than the store takes, however often
    /// it reconnects.
    /// </summary>
    public async ValueTask StoreAsync(Func<Task> store)
    {
        if (Volatile.Read(ref _storing) >= MaxStoring)
        {
            await Stored;
        }

        Interlocked.Increment(ref _storing);
        lock (_lock)
        {
            _stored = After(_stored, store);
        }

        async Task After(Task previous, Func<Task> next)
        {
            await previous;
            try
            {
                await next();
            }
            finally
            {
                Interlocked.Decrement(ref _storing);
            }
        }
    }

    /// <summary>Done once every store begun for this device is (they never fail: each handles its own failure).</summary>
    public Task Stored
    {
        get
        {
            lock (_lock)
            {
                return _stored;
            }
        }
    }

    /// <summary>What was counted in the current minute of the clock; a new minute starts from none.</summary>
    private struct MinuteCount
    {
        private long _minute;
        private int _count;

        public bool Take(DateTimeOffset now, int limit)
        {
            var minute = now.UtcTicks / TimeSpan.TicksPerMinute;
            if (minute != _minute)
            {
                (_minute, _count) = (minute, 0);
            }

            return ++_count <= limit;
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Realtime;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Primitives;
using Microsoft.JSInterop;

namespace Concord.Server.Ui;

/// <summary>
/// An operations view that stays current: rendered on the server at once, then live in a server circuit, where it
/// re-reads itself (through the same visibility predicate as any read) when the live feed tells its member of a change to
/// a kind of record it shows. Only ids reach it, and only ids of records the member may see.
/// </summary>
public abstract class LiveComponent : UiComponent, IDisposable
{
    protected LiveComponent()
    {
        _closing = new();
        _closed = _closing.Token;
    }

    private readonly CancellationTokenSource _closing;

    // Taken once: the source's own Token throws once the component is disposed, and reads may still be finishing then.
    private readonly CancellationToken _closed;
    private IDisposable? _subscription;
    private Guid _member;
    private bool _loading;
    private bool _again;

    // Ids changed while a read ran: the next read marks them fresh (the renderer's one thread touches this set).
    private readonly HashSet<Guid> _pending = [];

    private Dictionary<string, StringValues>? _opened;

    [Inject]
    private IJSRuntime Js { get; set; } = null!;

    /// <summary>The query the page was opened with; parameters the page does not set itself are kept in its reads and address.</summary>
    private protected IReadOnlyDictionary<string, StringValues> Opened => _opened ??= QueryHelpers.ParseQuery(new Uri(Navigation.Uri).Query);

    /// <summary>A parameter of the opened query (null when absent or empty).</summary>
    private protected string? Parameter(string key) =>
        Opened.TryGetValue(key, out var values) && values.Count > 0 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

    /// <summary>The opened query with the page's own values over it, as the API's list parameters read it.</summary>
    private protected QueryCollection Query(IReadOnlyDictionary<string, string?> own)
    {
        var query = new Dictionary<string, StringValues>(Opened, StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in own)
        {
            query[key] = value;
        }

        return new QueryCollection(query);
    }

    /// <summary>The page's address for <paramref name="own"/> values, keeping the other parameters it was opened with.</summary>
    private protected string Address(string path, IReadOnlyDictionary<string, string?> own)
    {
        var query = new Dictionary<string, string?>(own, StringComparer.Ordinal);
        foreach (var (key, value) in Opened.Where(p => !query.ContainsKey(p.Key)))
        {
            query[key] = value.ToString();
        }

        return path + QueryString.Create(query.Where(p => !string.IsNullOrEmpty(p.Value)));
    }

    /// <summary>
    /// Where the change feed stood just before the view was first read. The first read happens in the prerender (its result is
    /// carried into the circuit), and the circuit listens only once the browser has loaded its script and connected, seconds
    /// later on a slow link: the changes in between are looked up from here when it starts listening.
    /// </summary>
    [PersistentState]
    public long? FeedPosition { get; set; }

    /// <summary>
    /// Notes where the change feed stands; a page calls it just before its first read (once: a carried position is kept). The
    /// live feed's own position when it has one (it has examined everything up to it), else the end of the feed.
    /// </summary>
    private protected async Task NoteFeedPositionAsync()
    {
        FeedPosition ??= await FeedPositionAsync(Aborted);
    }

    /// <summary>True once the circuit listens to the live feed (pages show it, tests wait for it).</summary>
    private protected bool Live => _subscription is not null;

    /// <summary>
    /// "on" while the view listens and its last read succeeded; "stale" while it listens but its last read failed (the
    /// store unreachable, say: it shows what it last read and tries again); "off" before it listens.
    /// </summary>
    private protected string LiveState => !Live ? "off" : _failedAt is null ? "on" : "stale";

    /// <summary>What the page says of its state: <paramref name="liveKey"/>'s text, or since when it is not current.</summary>
    private protected string LiveText(UiText text, string liveKey) => LiveState switch
    {
        "on" => text[liveKey],
        "stale" => text.Format("live.stale", _failedAt!.Value.ToString("HH:mm:ss", CultureInfo.InvariantCulture)),
        _ => "",
    };

    /// <summary>When reads began to fail (UTC), while they do; null while the view is current.</summary>
    private DateTimeOffset? _failedAt;

    /// <summary>The wait before the next try after a failed read: doubles from five seconds to a minute while reads fail.</summary>
    private TimeSpan _retryIn = FirstRetry;

    private static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan LastRetry = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The least time between the starts of two reads one after the other: during an import or a busy hour the feed tells
    /// of changes every fraction of a second, and each read of a whole list (its counts, every mixed incident rebuilt, an
    /// audit entry) would follow the last at once, for every page open. Changes told meanwhile go with the next read.
    /// </summary>
    public static readonly TimeSpan ReadInterval = TimeSpan.FromSeconds(1);

    /// <summary>When the last read started (<see cref="Stopwatch"/> ticks), 0 before the first.</summary>
    private long _readAt;
    private bool _retrying;

    /// <summary>Reads so far, in this render mode (pages expose it so a test can tell a re-read from none).</summary>
    private protected int Loads { get; set; }

    /// <summary>Cancelled when the request ends (static) or the circuit closes (live).</summary>
    private protected CancellationToken Aborted => HttpContext?.RequestAborted ?? _closed;

    /// <summary>The kinds of records (change-feed entities) whose changes make this view read itself again.</summary>
    private protected abstract IReadOnlySet<string> Watched { get; }

    /// <summary>Reads the view again (state only; the caller renders).</summary>
    private protected abstract Task ReloadAsync(IReadOnlyCollection<Guid> changed);

    /// <summary>The address of the view as it stands, for the address bar and the audit.</summary>
    private protected abstract string Link();

    protected override async Task OnAfterRenderAsync(bool firstRender)
    {
        if (firstRender && await ViewerAsync() is { } viewer && !_closing.IsCancellationRequested)
        {
            _member = viewer.MemberId;
            // The circuit's language, for renders the live feed starts from its own thread (whose culture is the process's).
            _culture = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
            var subscription = Service<LiveFeed>().Subscribe(viewer.MemberId, OnChanges);
            try
            {
                try
                {
                    await CatchUpAsync(viewer);
                }
                catch (OperationCanceledException) when (_closing.IsCancellationRequested)
                {
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The changes since the first read could not be looked up: read the view again rather than risk missing one.
                    Service<ILogger<LiveComponent>>().LogWarning(e, "looking up the changes since a live page's first read failed; reading it again");
                    await RefreshAsync([]);
                }

                if (!_closing.IsCancellationRequested)
                {
                    // Live once caught up: a page that says it listens shows every change since its first read.
                    _subscription = subscription;
                }
            }
            finally
            {
                // Closed meanwhile (a failed read does not end here: the page says it is not current and tries again): the
                // feed must not hold on to this page.
                if (_subscription is null)
                {
                    subscription.Dispose();
                }
            }

            if (_subscription is not null)
            {
                await OnLiveAsync();
                StateHasChanged();
            }
        }
    }

    /// <summary>
    /// Takes the changes committed between the first read and the subscription as the live feed would have told them, and
    /// reads the view again if one concerns it. Nothing is read again when nothing changed; a change the feed also delivers
    /// costs one more read at most; changes that cannot be told one by one (<see cref="LiveFeed.SinceAsync"/>) make the view
    /// be read again whole.
    /// </summary>
    private async Task CatchUpAsync(Viewer viewer)
    {
        if (FeedPosition is not { } position)
        {
            return;
        }

        if (await Service<LiveFeed>().SinceAsync(viewer.MemberId, position, _closed) is not { } changes)
        {
            await RefreshAsync([]);
        }
        else if (Concerns(changes, out var touched))
        {
            await RefreshAsync(touched);
        }
    }

    /// <summary>Called once the circuit has started listening (after its first interactive render).</summary>
    private protected virtual Task OnLiveAsync() => Task.CompletedTask;

    public void Dispose()
    {
        _subscription?.Dispose();
        _closing.Cancel();
        _closing.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Whether changes concern this view: a record of a kind it shows (<paramref name="touched"/>), or this member's access.</summary>
    private bool Concerns(IReadOnlyList<LiveChange> changes, out List<Guid> touched)
    {
        touched = [.. changes.Where(c => Watched.Contains(c.Entity)).Select(c => c.Id)];
        // A change to this member (clearance, caveats, organisation), a sharing group or an agreement may take records
        // away from what the member may see, and the feed does not tell of records one no longer sees: the view is read
        // again with the viewer as it now is.
        return touched.Count > 0 || changes.Any(c => c.Entity is "group" or "agreement" or "organization" || (c.Entity == "member" && c.Id == _member));
    }

    private void OnChanges(IReadOnlyList<LiveChange> changes)
    {
        if (Concerns(changes, out var touched))
        {
            _ = InvokeAsync(() =>
            {
                // Restored for the re-read and render: a French page stays French (dates, numbers, labels) when the live
                // feed refreshes it.
                (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = _culture;
                return RefreshAsync(touched);
            });
        }
    }

    private (CultureInfo Culture, CultureInfo UiCulture) _culture = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);

    /// <summary>Re-reads and renders; changes that arrive while a read runs are taken by one more read, not one each.</summary>
    private protected async Task RefreshAsync(IReadOnlyCollection<Guid> changed)
    {
        if (_loading)
        {
            _again = true;
            _pending.UnionWith(changed);
            return;
        }

        _loading = true;
        if (_pending.Count > 0)
        {
            // Changes a failed read could not show yet go with this one.
            changed = [.. changed.Union(_pending)];
            _pending.Clear();
        }

        try
        {
            do
            {
                // The first read of a view is not held (_readAt 0), nor a read a second or more after the last.
                if (_readAt != 0 && Stopwatch.GetElapsedTime(_readAt) is var since && since < ReadInterval)
                {
                    await Task.Delay(ReadInterval - since, _closed);
                    changed = [.. changed.Union(_pending)];
                    _pending.Clear();
                }

                _again = false;
                _readAt = Stopwatch.GetTimestamp();
                try
                {
                    await ReloadAsync(changed);
                }
                catch (Exception e) when (e is not OperationCanceledException || !_closing.IsCancellationRequested)
                {
                    // The view could not be read again: it says since when it is not current rather than pass for live, keeps
                    // the changes it has not shown, and tries again, less often the longer reads fail.
                    Service<ILogger<LiveComponent>>().LogWarning(e, "a live page could not read itself again; trying again in {Delay}", _retryIn);
                    _pending.UnionWith(changed);
                    _failedAt ??= DateTimeOffset.UtcNow;
                    StateHasChanged();
                    RetryLater();
                    return;
                }

                _failedAt = null;
                _retryIn = FirstRetry;
                changed = [.. _pending];
                _pending.Clear();
                Loads++;
                StateHasChanged();
                // Inside the loop: a change that arrives while the address is set is read too, not left pending.
                await Js.InvokeVoidAsync("history.replaceState", null, "", Link());
            }
            while (_again && !_closing.IsCancellationRequested);
        }
        catch (OperationCanceledException) when (_closing.IsCancellationRequested)
        {
        }
        catch (JSDisconnectedException)
        {
        }
        finally
        {
            _loading = false;
        }
    }

    /// <summary>Reads the view again after the current wait (one try pending at a time), with the changes not yet shown.</summary>
    private void RetryLater()
    {
        if (_retrying)
        {
            return;
        }

        _retrying = true;
        var delay = _retryIn;
        _retryIn = TimeSpan.FromTicks(Math.Min(_retryIn.Ticks * 2, LastRetry.Ticks));
        _ = TryAgainAsync(delay);
    }

    private async Task TryAgainAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _closed);
            await InvokeAsync(() =>
            {
                _retrying = false;
                // A read prompted by a change may have succeeded meanwhile: nothing left to try again.
                if (_failedAt is null)
                {
                    return Task.CompletedTask;
                }

                (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = _culture;
                return RefreshAsync([]);
            });
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
            // The circuit closed meanwhile.
        }
    }

    /// <summary>Calls a page script (charts) once the circuit renders; ignored when the browser has gone.</summary>
    private protected async Task CallScriptAsync(string identifier, params object?[] arguments)
    {
        try
        {
            await Js.InvokeVoidAsync(identifier, arguments);
        }
        catch (JSDisconnectedException)
        {
        }
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using Concord.Cot;
using Concord.Server.Access;
using Concord.Server.Data;
using Concord.Server.Reports;

namespace Concord.Server.Tak;

/// <summary>
/// Routes what devices send. Every event is checked once: duplicates and replays (same uid, no newer time) are dropped;
/// a device's own positions update its track and go to every session whose member may see the device's marking;
/// markers and spot reports become Concord reports (and go to those sessions at once); GeoChat is stored and routed the
/// same way. Each event is stamped with the marking (CoT <c>access</c> and a <c>__concord</c> detail) and Concord's flow tag.
/// </summary>
internal sealed class TakRouter(IServiceScopeFactory scopes, TrackStore tracks, TimeProvider time, ILogger<TakRouter> logger)
{
    /// <summary>The flow tag this node adds; an event coming back with it and no newer time is a loop.</summary>
    public string FlowTag { get; } = "concord-" + Guid.NewGuid().ToString("N")[..8];

    private readonly ConcurrentDictionary<TakSession, byte> _sessions = new();
    private readonly ConcurrentDictionary<string, TakSession> _byDevice = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TakSession> _byCertificate = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _latest = new(StringComparer.Ordinal);
    private long _routed;
    private long _ignored;

    public ICollection<TakSession> Sessions => _sessions.Keys;

    public long Routed => Interlocked.Read(ref _routed);

    public long Ignored => Interlocked.Read(ref _ignored);

    /// <summary>One live session per certificate: a reconnecting device replaces its older session.</summary>
    public void Attach(TakSession session)
    {
        _sessions[session] = 0;
        if (!session.Certificate.StartsWith("tcp:", StringComparison.Ordinal))
        {
            _byCertificate[session.Certificate] = session;
            foreach (var other in _sessions.Keys.Where(s => s != session && s.Certificate == session.Certificate))
            {
                other.Close("replaced by a newer connection with the same certificate");
            }
        }
    }

    public void Detach(TakSession session)
    {
        _sessions.TryRemove(session, out _);
        _byCertificate.TryRemove(new KeyValuePair<string, TakSession>(session.Certificate, session));
        if (session.DeviceUid is { } uid)
        {
            _byDevice.TryRemove(new KeyValuePair<string, TakSession>(uid, session));
        }
    }

    public async ValueTask OnEventAsync(TakSession from, CotEvent e, ReadOnlyMemory<byte> raw = default)
    {
        var now = time.GetUtcNow();
        if (CotControl.IsPing(e))
        {
            from.Send(new Outbound(CotControl.CreatePong(now), droppable: false));
            return;
        }

        if (e.Type == CotControl.VersionRequestType)
        {
            var accepted = CotControl.TryGetRequestedVersion(e, out var version) && version == 1;
            from.SwitchRequested = accepted;
            from.Send(new Outbound(CotControl.CreateVersionResponse("concord", now, accepted), droppable: false) { SwitchesToProtobuf = accepted });
            return;
        }

        if (e.Type.StartsWith("t-", StringComparison.Ordinal))
        {
            return;
        }

        // Replays, duplicates and loops: nothing newer than what was already routed for this uid. A re-sent event that
        // carries our flow tag but a newer time is a legitimate edit and goes through.
        // An event already stale is a replay (or a very late delivery) that no device should display.
        if (e.IsStaleAt(now))
        {
            Interlocked.Increment(ref _ignored);
            return;
        }

        if (_latest.Count > MaxTrackedUids)
        {
            Forget(now - TimeSpan.FromDays(1));
        }

        var fresh = true;
        _latest.AddOrUpdate(e.Uid, e.Time, (_, last) =>
        {
            fresh = e.Time > last;
            return fresh ? e.Time : last;
        });
        if (!fresh)
        {
            Interlocked.Increment(ref _ignored);
            return;
        }

        if (e.Type == CotMapping.ChatType)
        {
            await ChatAsync(from, e);
        }
        else if (CotMapping.IsPosition(e, from.DeviceUid))
        {
            Position(from, e, raw);
        }
        else if (CotMapping.MarkerCategory(e.Type) is { } category)
        {
            await MarkerAsync(from, e, category, raw);
        }
        else
        {
            Interlocked.Increment(ref _ignored);
        }
    }

    /// <summary>How many uids the replay check remembers before it forgets those not seen for a day (markers each have their own uid).</summary>
    public const int MaxTrackedUids = 200_000;

    private void Forget(DateTimeOffset before)
    {
        foreach (var (uid, time) in _latest)
        {
            if (time < before)
            {
                _latest.TryRemove(new KeyValuePair<string, DateTimeOffset>(uid, time));
            }
        }
    }

    /// <summary>Sends to every other session whose member may see <paramref name="marking"/>.</summary>
    public int Broadcast(Outbound item, MarkingDefault marking, TakSession? except)
    {
        var sent = 0;
        foreach (var session in _sessions.Keys)
        {
            if (session != except && Marking.AllowsRead(marking.Classification, marking.ReleasableTo, marking.Caveats, session.Viewer) && session.Send(item))
            {
                sent++;
            }
        }

        Interlocked.Increment(ref _routed);
        return sent;
    }

    /// <summary>
    /// The event as it goes out. The usual case — an event with a detail and no access attribute, flow tags or marking of
    /// its own — is stamped by inserting into the bytes the device sent, which spares a second parse and a serialisation
    /// for every event routed; anything else goes through <see cref="Stamp"/>.
    /// </summary>
    public Outbound Stamped(CotEvent e, ReadOnlyMemory<byte> raw, MarkingDefault marking, bool droppable)
    {
        var stamp = time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        return RawStamp.TryInsert(raw.Span, marking.Label, FlowTag, stamp) is { } xml
            ? new Outbound(xml, () => Stamp(e, marking), droppable)
            : new Outbound(Stamp(e, marking), droppable);
    }

    public CotEvent Stamp(CotEvent e, MarkingDefault marking)
    {
        var tags = string.Join(' ', e.Detail.FlowTags.Where(t => t.Key != FlowTag).Select(t => $"{t.Key}=\"{System.Security.SecurityElement.Escape(t.Value)}\""));
        var stamp = time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        var detail = e.Detail.WithMarking(marking.Label).Without("_flow-tags_").Xml + $"<_flow-tags_ {tags} {FlowTag}=\"{stamp}\"/>";
        return e with { Access = marking.Label, DetailXml = detail };
    }

    private void Position(TakSession from, CotEvent e, ReadOnlyMemory<byte> raw)
    {
        if (from.DeviceUid is null)
        {
            from.DeviceUid = e.Uid;
            _byDevice[e.Uid] = from;
            foreach (var other in _sessions.Keys.Where(s => s != from && s.DeviceUid == e.Uid))
            {
                other.Close("replaced by a newer connection of the same device");
            }
        }

        var stamped = Stamped(e, raw, from.Marking, droppable: true);
        tracks.Update(e, from, stamped);
        Broadcast(stamped, from.Marking, from);
    }

    private async Task MarkerAsync(TakSession from, CotEvent e, string category, ReadOnlyMemory<byte> raw)
    {
        Broadcast(Stamped(e, raw, from.Marking, droppable: false), from.Marking, from);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var intake = scope.ServiceProvider.GetRequiredService<ReportIntake>();
            var outcome = await intake.CreateAsync(CotMapping.ToReport(e, category, from.Viewer.UserName), from.Viewer, from.Closing);
            if (outcome is ReportIntake.Outcome.Invalid invalid)
            {
                logger.LogInformation("marker {Uid} from {User} was not taken as a report: {Errors}", e.Uid, from.Viewer.UserName,
                    string.Join("; ", invalid.Errors.Select(x => $"{x.Key}: {string.Join(' ', x.Value)}")));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ChatAsync(TakSession from, CotEvent e)
    {
        Broadcast(new Outbound(Stamp(e, from.Marking), droppable: false), from.Marking, from);
        var text = e.Detail.Remarks ?? "";
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        db.Messages.Add(new ChatMessage
        {
            Id = Guid.CreateVersion7(),
            MemberId = from.Viewer.MemberId,
            Chatroom = e.Detail.Chat?.Chatroom ?? "All Chat Rooms",
            Sender = e.Detail.Chat?.SenderCallsign ?? from.Viewer.UserName,
            Text = text.Length > 4000 ? text[..4000] : text,
            SentAt = e.Time.UtcDateTime,
            Classification = from.Marking.Classification,
            ReleasableTo = from.Marking.ReleasableTo,
            Caveats = from.Marking.Caveats,
        });
        await db.SaveChangesAsync(CancellationToken.None);
    }
}

using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Concord.Cot;
using Concord.Server.Access;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Incidents;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Tak;

/// <summary>Where the TAK listeners listen. Port 0 picks a free port (tests); null switches a listener off.</summary>
internal sealed record TakOptions
{
    public const int DefaultTlsPort = 8089;

    public IPAddress Address { get; init; } = IPAddress.Loopback;

    public int? TlsPort { get; init; } = DefaultTlsPort;

    /// <summary>Plain TCP (no certificates): off unless set, and then bound to one named low-privilege member.</summary>
    public int? TcpPort { get; init; }

    public string? TcpUser { get; init; }

    /// <summary>How long a device may stay silent (TAK clients ping every few seconds) before it is cut.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Per-device queue lengths: positions (oldest dropped when full) and everything else (device cut when full).</summary>
    public int PositionQueue { get; init; } = TakSession.DefaultPositionQueue;

    public int AlertQueue { get; init; } = TakSession.DefaultAlertQueue;

    /// <summary>How many recent incidents a device receives when it connects.</summary>
    public int InitialIncidents { get; init; } = 500;

    /// <summary>How many markers, drawings, routes and alerts other devices sent a device receives when it connects (those relayed most recently).</summary>
    public int InitialItems { get; init; } = 2000;

    /// <summary>
    /// How often connected devices are checked against their certificates and members: a revoked or expired certificate,
    /// a disabled member or a changed clearance, organisation, caveats, roles or groups ends the session.
    /// </summary>
    public TimeSpan AccessCheckInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Connections held at once over both listeners (a field deployment has hundreds of devices): above it a new
    /// connection is closed at once, so that a flood cannot take every file handle the server has.
    /// </summary>
    public int MaxConnections { get; init; } = 4_000;

    /// <summary>
    /// Connections still in their TLS handshake (or, on plain TCP, not yet a session) held at once, of
    /// <see cref="MaxConnections"/>: connections that never finish a handshake (15 s each) cannot take the places of
    /// devices.
    /// </summary>
    public int MaxHandshakes { get; init; } = 1_000;

    /// <summary>
    /// Handshakes from one address at once: one host opening connections and never finishing them cannot take the
    /// handshake places of the others. A real handshake takes well under a second, so even a gateway in front of a whole
    /// company of devices reconnecting together stays far below it.
    /// </summary>
    public int MaxHandshakesPerAddress { get; init; } = 64;
}

/// <summary>
/// The TAK listeners: TLS with client certificates signed by the deployment's CA (8089), and optionally plain TCP (8087)
/// bound to one named member. Each connection becomes a <see cref="TakSession"/> for the member its certificate maps to.
/// </summary>
internal sealed class TakServer(
    TakOptions options, TakCertificates certificates, TakRouter router, TrackStore tracks, TakItemStore items, ViewerDirectory viewers,
    DeviceMarkings deviceMarkings, MarkingFormat markings, Audit.AuditWriter audit, RelayAuditor relayAudit, IServiceScopeFactory scopes, TimeProvider time, ILogger<TakServer> logger)
    : BackgroundService
{
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _connections = [];

    /// <summary>
    /// Each certificate's allowance (its minute's counts, its stores under way), kept across its connections: as many
    /// entries as certificates that connected since the start, which an administrator issues. Plain TCP devices send nothing.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DeviceAllowance> _allowances = new(StringComparer.Ordinal);

    // Connections not yet sessions, by address (under the lock of _connections); the refusals for it, for sampled logging.
    private readonly Dictionary<IPAddress, int> _handshaking = [];
    private int _handshakingCount;
    private long _handshakesRefused;

    public int? BoundTlsPort { get; private set; }

    public int? BoundTcpPort { get; private set; }

    /// <summary>Completes when the listeners accept connections.</summary>
    public Task Listening => _listening.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var listeners = new List<Task>();
        try
        {
            await tracks.LoadAsync(stoppingToken);
            router.LoadDevices(await tracks.RecentDevicesAsync(stoppingToken));
            router.LoadCallsigns(tracks.Current.Select(c => c.Track));
            await items.LoadAsync(stoppingToken);
            if (options.TlsPort is { } tlsPort)
            {
                _ = certificates.Server;
                if (!options.Address.Equals(IPAddress.Any) && !options.Address.Equals(IPAddress.IPv6Any))
                {
                    // The address devices dial when the listener is bound to one.
                    try
                    {
                        certificates.EnsureServerNames([options.Address.ToString()]);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
                    {
                        logger.LogWarning(e, "the server's TLS certificate could not be made to name {Address}; it keeps the names it has", options.Address);
                    }
                }

                certificates.ServerReloadFailed ??= e => logger.LogWarning(e, "the changed server certificate could not be read; the server keeps the one it has");
                var tls = new TcpListener(options.Address, tlsPort);
                tls.Start();
                BoundTlsPort = ((IPEndPoint)tls.LocalEndpoint).Port;
                listeners.Add(AcceptAsync(tls, tlsMode: true, stoppingToken));
                logger.LogInformation("TAK over TLS on {Address}:{Port}", options.Address, BoundTlsPort);
            }

            if (options.TcpPort is { } tcpPort)
            {
                var tcp = new TcpListener(options.Address, tcpPort);
                tcp.Start();
                BoundTcpPort = ((IPEndPoint)tcp.LocalEndpoint).Port;
                listeners.Add(AcceptAsync(tcp, tlsMode: false, stoppingToken));
                logger.LogWarning("TAK over plain TCP on {Address}:{Port}, acting as {User}", options.Address, BoundTcpPort, options.TcpUser);
            }

            _listening.TrySetResult();
            router.CheckAccess = CheckAccessOnceAsync;
            listeners.Add(CheckAccessAsync(stoppingToken));
            await Task.WhenAll(listeners);
        }
        catch (SocketException e)
        {
            logger.LogCritical("cannot listen for TAK devices on {Address} (TLS port {Tls}, TCP port {Tcp}): {Reason}. Choose another port with --tak-port, or --no-tak.",
                options.Address, options.TlsPort, options.TcpPort, e.Message);
            _listening.TrySetException(e);
            throw;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _listening.TrySetException(e);
            throw;
        }
        finally
        {
            // Stopped before the listeners were up (the host shutting down while the tracks load): nobody waits for ever.
            _listening.TrySetCanceled(stoppingToken);
        }
    }

    /// <summary>
    /// Cancelled once the server has stopped and waited <see cref="StoreGrace"/> for devices' stores: what a device sent and
    /// the others were given (a marker's report, a message) is stored under it, not under the host's stopping token, which
    /// gave up every store still waiting behind the writer the moment a restart began: the marker stayed on every map
    /// (its item is kept) with no report, and the device sending it again after the restart was taken for a replay.
    /// </summary>
    private readonly CancellationTokenSource _storing = new();

    /// <summary>How long a stopping server waits for what devices sent to be stored (a busy writer, an import).</summary>
    public static readonly TimeSpan StoreGrace = TimeSpan.FromSeconds(10);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        foreach (var session in router.Sessions)
        {
            session.Close("the server is shutting down");
        }

        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        // Each connection ends once its device's stores are done (HandleAsync); those still waiting after the grace are
        // given up, and a session that began as the server stopped is closed with them.
        await Task.WhenAll(open).WaitAsync(StoreGrace, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        await _storing.CancelAsync();
        await Task.WhenAll(open).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private async Task AcceptAsync(TcpListener listener, bool tlsMode, CancellationToken stoppingToken)
    {
        using var registration = stoppingToken.Register(listener.Stop);
        while (!stoppingToken.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stoppingToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (SocketException e)
            {
                // Out of file handles, or a connection reset before it was accepted: the listener itself is fine, so it
                // goes on accepting once the moment has passed rather than stop taking devices until a restart.
                logger.LogWarning("TAK listener on port {Port}: accepting a connection failed ({Reason}); accepting again in a second",
                    ((IPEndPoint)listener.LocalEndpoint).Port, e.SocketErrorCode);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                continue;
            }

            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                if (_connections.Count >= options.MaxConnections)
                {
                    logger.LogWarning("TAK: {Count} connections are open, the most allowed; a connection from {Remote} was closed", _connections.Count, client.Client.RemoteEndPoint);
                    client.Dispose();
                    continue;
                }

                var address = (client.Client.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.None;
                var fromAddress = _handshaking.GetValueOrDefault(address);
                if (_handshakingCount >= options.MaxHandshakes || fromAddress >= options.MaxHandshakesPerAddress)
                {
                    // Sampled: a flood of such connections must not become a flood of log lines.
                    if (++_handshakesRefused is 1 or 10 or 100 || _handshakesRefused % 1000 == 0)
                    {
                        logger.LogWarning("TAK: {Count} connections are in their handshake, {FromAddress} of them from {Address} (at most {Max} and {MaxPerAddress}); a new one was closed ({Refused} so far)",
                            _handshakingCount, fromAddress, address, options.MaxHandshakes, options.MaxHandshakesPerAddress, _handshakesRefused);
                    }

                    client.Dispose();
                    continue;
                }

                _handshaking[address] = fromAddress + 1;
                _handshakingCount++;
                _connections.Add(Task.Run(() => HandleAsync(client, address, tlsMode, stoppingToken), CancellationToken.None));
            }
        }
    }

    /// <summary>Gives back the handshake place of a connection from <paramref name="address"/>.</summary>
    private void Handshaken(IPAddress address)
    {
        lock (_connections)
        {
            _handshakingCount--;
            if (_handshaking[address] == 1)
            {
                _handshaking.Remove(address);
            }
            else
            {
                _handshaking[address]--;
            }
        }
    }

    private async Task HandleAsync(TcpClient client, IPAddress address, bool tlsMode, CancellationToken stoppingToken)
    {
        var remote = "?";
        Stream? stream = null;
        TakSession? session = null;
        var handshaking = true;
        try
        {
            // Inside the try: a peer gone between the accept and here (a port scan) fails these, and must cost only itself.
            remote = client.Client.RemoteEndPoint?.ToString() ?? "?";
            client.NoDelay = true;
            stream = client.GetStream();
            Viewer? viewer;
            string certificate;
            if (tlsMode)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                using var handshake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                handshake.CancelAfter(TimeSpan.FromSeconds(15));
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = certificates.Server,
                    ClientCertificateRequired = true,
                    EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                    RemoteCertificateValidationCallback = (_, presented, _, _) => presented is X509Certificate2 c && certificates.IsIssuedByUs(c),
                }, handshake.Token);
                var presented = (X509Certificate2)ssl.RemoteCertificate!;
                certificate = TakCertificates.Thumbprint(presented);
                viewer = await MemberForAsync(certificate, stoppingToken);
                if (viewer is null)
                {
                    logger.LogWarning("TAK connection from {Remote} refused: certificate {Subject} is unknown, revoked or expired, or its member is disabled", remote, presented.Subject);
                    return;
                }
            }
            else
            {
                certificate = "tcp:" + remote;
                viewer = await NamedViewerAsync(stoppingToken);
                if (viewer is null)
                {
                    logger.LogWarning("plain TCP connection from {Remote} refused: no member {User}, or the member is disabled", remote, options.TcpUser);
                    return;
                }

                if (NotLowPrivilege(viewer) is { } reason)
                {
                    logger.LogWarning("plain TCP connection from {Remote} refused: --tak-tcp-user {User} is not a low-privilege member ({Reason})", remote, options.TcpUser, reason);
                    return;
                }
            }

            session = new TakSession(stream, viewer, certificate, remote, await deviceMarkings.ForAsync(viewer, DeviceMarkings.Positions, stoppingToken), _storing.Token, options.PositionQueue, options.AlertQueue,
                allowance: tlsMode ? _allowances.GetOrAdd(certificate, _ => new DeviceAllowance()) : null)
            {
                ReceiveOnly = !tlsMode,
            };
            handshaking = false;
            Handshaken(address);
            router.Attach(session);
            logger.LogInformation("TAK device of {User} connected from {Remote}", viewer.UserName, remote);
            var writer = session.WriteLoopAsync();
            // The device is read while its opening picture goes out (thousands of tracks, hundreds of incidents, at the
            // pace of its link): an emergency it sends on reconnecting is routed at once, not after the picture.
            var opening = OpenAsync(session, stoppingToken);
            await ReadLoopAsync(session, stream);
            session.Close(session.CloseReason ?? "the device disconnected");
            await opening;
            await writer;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            logger.LogInformation("TAK connection from {Remote} ended: {Reason}", remote, e.Message);
        }
        catch (Exception e)
        {
            logger.LogError(e, "TAK connection from {Remote} failed", remote);
        }
        finally
        {
            if (handshaking)
            {
                Handshaken(address);
            }

            if (session is not null)
            {
                router.Detach(session);
                // What it sent and the others were given is stored before the session goes (under the server's stopping token).
                await session.Allowance.Stored;
                logger.LogInformation("TAK device of {User} disconnected ({Reason}); positions dropped for it: {Dropped}; edits skipped for a newer one: {Superseded}; events it could not be sent in its format: {Unwritable}",
                    session.Viewer.UserName, session.CloseReason, session.Dropped, session.Superseded, session.Unwritable);
                await session.DisposeAsync();
            }
            else if (stream is not null)
            {
                await stream.DisposeAsync();
            }

            client.Dispose();
        }
    }

    /// <summary>Sends the opening picture; a failure to read it ends the session (the device reconnects for a whole one).</summary>
    private async Task OpenAsync(TakSession session, CancellationToken stoppingToken)
    {
        try
        {
            // Read before the withdrawals: deletions after it reach this device live, it being attached. The picture stops
            // when the session closes or begins its end: what it would still query and audit would never reach the device.
            var began = time.GetUtcNow();
            var told = await SettledAsync(router.Told, session.Ending);
            await SendInitialAsync(session, session.Ending);
            session.Opened = true;
            // Recorded once the withdrawals and the picture are on the wire: a device cut with them still queued (a slow
            // link, access narrowed meanwhile, which drops them) keeps the access recorded before, and is told again.
            if (await session.WrittenAsync())
            {
                await RecordAccessAsync(session, told, began, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "the opening picture for the TAK device of {User} ({Remote}) failed; the device is cut", session.Viewer.UserName, session.Remote);
            session.Close("its opening picture could not be sent; reconnect");
        }
    }

    private async Task ReadLoopAsync(TakSession session, Stream stream)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        var xml = new CotXmlFramer();
        var deliveries = new Deliveries();
        TakStreamFramer? protobuf = null;
        var errors = new ErrorWindow(time);
        var leading = false;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(session.Closing);
        try
        {
            while (true)
            {
                // What the last read queued for other devices goes out now, one write per receiving device. Then this
                // reader goes to the back of the thread pool's queue: a device that never stops sending would otherwise
                // keep reading (its reads complete at once) while the writers it just woke wait, and its receivers would
                // lose positions they had room for.
                if (deliveries.Ring())
                {
                    await Task.Yield();
                }

                idle.CancelAfter(options.IdleTimeout);
                int read;
                try
                {
                    read = await stream.ReadAsync(buffer, idle.Token);
                }
                catch (OperationCanceledException) when (!session.Closing.IsCancellationRequested)
                {
                    session.Close($"silent for {options.IdleTimeout.TotalSeconds:0} s");
                    return;
                }

                if (read == 0)
                {
                    return;
                }

                if (protobuf is null)
                {
                    xml.Append(buffer.AsSpan(0, read));
                    while (true)
                    {
                        ReadOnlyMemory<byte> document;
                        try
                        {
                            if (!xml.TryReadEvent(out document))
                            {
                                break;
                            }
                        }
                        catch (CotFramingException e)
                        {
                            if (Malformed(session, errors, e.Reason))
                            {
                                return;
                            }

                            continue;
                        }

                        if (CotXml.TryParse(document, out var cotEvent, out var reason))
                        {
                            await router.OnEventAsync(session, cotEvent!, document, deliveries);
                            if (cotEvent!.Type == CotControl.VersionRequestType && session.SwitchRequested)
                            {
                                protobuf = new TakStreamFramer();
                                leading = true;
                                Append(protobuf, xml.TakeBufferedBytes(), ref leading);
                                break;
                            }
                        }
                        else if (Malformed(session, errors, reason))
                        {
                            return;
                        }
                    }
                }
                else
                {
                    Append(protobuf, buffer.AsSpan(0, read), ref leading);
                }

                if (protobuf is not null)
                {
                    while (true)
                    {
                        TakMessage? message;
                        try
                        {
                            if (!protobuf.TryReadMessage(out message))
                            {
                                break;
                            }
                        }
                        catch (CotFramingException e) when (!protobuf.IsFaulted)
                        {
                            // An oversized frame: the framer skips its bytes and stays in step, so it costs only itself.
                            if (Malformed(session, errors, e.Reason))
                            {
                                return;
                            }

                            continue;
                        }
                        catch (CotFramingException e)
                        {
                            // The length prefixes can no longer be trusted: the stream cannot be followed.
                            logger.LogInformation("TAK device of {User} ({Remote}) sent a broken TAK protocol stream: {Reason}", session.Viewer.UserName, session.Remote, e.Reason);
                            session.Close("broken TAK protocol stream: " + e.Reason);
                            return;
                        }
                        catch (CotParseException e)
                        {
                            // One frame whose content does not decode: the framer has already stepped over it.
                            if (Malformed(session, errors, e.Message))
                            {
                                return;
                            }

                            continue;
                        }

                        if (message?.CotEvent is { } takEvent)
                        {
                            CotEvent decoded;
                            try
                            {
                                decoded = takEvent.ToCotEvent();
                            }
                            catch (CotParseException e)
                            {
                                if (Malformed(session, errors, e.Message))
                                {
                                    return;
                                }

                                continue;
                            }

                            await router.OnEventAsync(session, decoded, deliveries: deliveries);
                        }
                    }
                }
            }
        }
        finally
        {
            deliveries.Ring();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Counts a malformed event against the device and logs why (the first few, then one in a hundred, so that a broken
    /// device cannot fill the log); true when the device sent so many in a minute that it is cut.
    /// </summary>
    private bool Malformed(TakSession session, ErrorWindow errors, string reason)
    {
        var count = errors.Add();
        if (session.ShouldLogMalformed())
        {
            logger.LogInformation("TAK device of {User} ({Remote}) sent an event that was rejected: {Reason}", session.Viewer.UserName, session.Remote, reason);
        }

        if (count > ErrorWindow.MaxPerMinute)
        {
            logger.LogWarning("TAK device of {User} ({Remote}) cut: {Count} malformed events within a minute, the last: {Reason}", session.Viewer.UserName, session.Remote, count, reason);
            session.Close("too many malformed events: " + reason);
            return true;
        }

        return false;
    }

    /// <summary>Malformed events of one connection within the last minute: a long-lived device is cut for a burst of them, not for a total.</summary>
    private sealed class ErrorWindow(TimeProvider time)
    {
        public const int MaxPerMinute = 100;

        private readonly Queue<long> _at = new();

        public int Add()
        {
            var now = time.GetTimestamp();
            while (_at.Count > 0 && time.GetElapsedTime(_at.Peek(), now) > TimeSpan.FromMinutes(1))
            {
                _at.Dequeue();
            }

            _at.Enqueue(now);
            return _at.Count;
        }
    }

    /// <summary>Feeds the protobuf framer, skipping the whitespace that may separate the last XML event from the first frame.</summary>
    private static void Append(TakStreamFramer framer, ReadOnlySpan<byte> bytes, ref bool leading)
    {
        if (leading)
        {
            var start = 0;
            while (start < bytes.Length && bytes[start] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                start++;
            }

            bytes = bytes[start..];
            leading = bytes.IsEmpty;
        }

        framer.Append(bytes);
    }

    /// <summary>
    /// The markers, drawings, routes and alerts other devices sent, that a device connecting later would otherwise never see
    /// (an incident made only of markers is not sent: devices have the markers): the latest version of each, as it went
    /// out to every device that may see it, if the member may see it, it is not stale and this device did not send it; the
    /// <see cref="TakOptions.InitialItems"/> relayed most recently.
    /// Read from the server's memory, so named in the audit before they go out, as tracks are. An item edited, deleted or
    /// withdrawn while the picture went out (which may then have overtaken the live change) is sent again as it is now.
    /// </summary>
    private async Task SendItemsAsync(TakSession session, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var items = router.CurrentItemsFor(session.Viewer, session.Certificate, now, options.InitialItems);
        if (items.Count == 0)
        {
            return;
        }

        await audit.RecordReadAsync(session.Viewer, RelayEntities.Item, items.Select(i => (i.Uid, i.Marking.Classification, i.Marking.Caveats)).ToList(), $"tak:opening {session.Remote}",
            now.UtcDateTime, cancellationToken);
        // Read on this connection now: their next relays need no entry of their own.
        session.Relays.MarkAudited(items.Select(i => RelayRecord.Of(RelayEntities.Item, i.Uid, i.Marking)).OfType<RelayRecord>());
        var sent = new List<(string Uid, byte[] Xml)>(items.Count);
        foreach (var (uid, _, _) in items)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // As it is when queued (the picture waits for room on a slow link): an item edited since the list was read goes
            // out in its newer version, which went to the device live as well, and one gone stale or deleted not at all.
            if (router.CurrentItemFor(uid, session.Viewer, session.Certificate, time.GetUtcNow()) is { } xml)
            {
                await session.SendWaitingAsync(TakRouter.ItemOutbound(uid, xml));
                sent.Add((uid, xml));
            }
        }

        for (var round = 0; round < OpeningRounds && sent.Count > 0; round++)
        {
            var again = new List<(string Uid, byte[] Xml)>();
            foreach (var (uid, xml) in sent)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // A newer version relayed meanwhile went to the device live as well: it is no read of the server's memory.
                if (router.CurrentItem(uid, xml, session.Viewer, session.Certificate, time.GetUtcNow()) is var (current, latest))
                {
                    await session.SendWaitingAsync(current);
                    if (latest is not null)
                    {
                        again.Add((uid, latest));
                    }
                }
            }

            sent = again;
        }
    }

    /// <summary>What a device sees when it connects: the protocols on offer, current tracks and recent incidents it may see.</summary>
    private async Task SendInitialAsync(TakSession session, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        session.Send(new Outbound(CotControl.CreateVersionSupport("concord", now, 1), droppable: false));
        await WithdrawWhatChangedMeanwhileAsync(session, now, cancellationToken);
        // Current tracks are read from the server's memory, not relayed from a device as they arrive: classified ones are
        // named in the audit before they go out, as a read of the tracks through the API is.
        var currentTracks = tracks.LastEventsFor(session.Viewer);
        await audit.RecordReadAsync(session.Viewer, RelayEntities.Track, currentTracks.Select(t => (t.Uid, t.Classification, t.Caveats)).ToList(), $"tak:opening {session.Remote}", now.UtcDateTime,
            cancellationToken);
        session.Relays.MarkAudited(currentTracks.Select(t => RelayRecord.Of(RelayEntities.Track, t.Uid, t.Classification, t.Caveats)).OfType<RelayRecord>());
        foreach (var (_, _, _, last) in currentTracks)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Waiting for room, like the incidents below: a picture of more tracks than the position queue holds must
            // not lose its oldest ones on the way to a device that has just connected.
            await session.SendWaitingAsync(last);
        }

        await SendItemsAsync(session, cancellationToken);
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var directory = scope.ServiceProvider.GetRequiredService<MissionDirectory>();
        var (incidents, _) = await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking(), new Http.ListQuery(), session.Viewer, directory, markings, cancellationToken);
        var sent = new List<Guid>();
        var latest = await incidents!.LatestChangedAsync(options.InitialIncidents, cancellationToken);
        var latestIds = latest.Select(i => i.Id).ToList();
        // As the live feed: an incident made only of devices' markers is not echoed back (the devices have the markers),
        // judged on the reports the member may see.
        var fromItemsOnly = (await db.IncidentReports.AsNoTracking().Where(l => latestIds.Contains(l.IncidentId))
                .Join(db.Reports, l => l.ReportId, r => r.Id, (l, r) => new { l.IncidentId, r.ExternalRef, r.Classification, r.ReleasableTo, r.Caveats }).ToListAsync(cancellationToken))
            .Where(x => Marking.AllowsRead(x.Classification, x.ReleasableTo, x.Caveats, session.Viewer))
            .GroupBy(x => x.IncidentId)
            .Where(g => g.All(x => CotMapping.IsItemRef(x.ExternalRef)))
            .Select(g => g.Key).ToHashSet();
        var picture = latest.Where(i => !fromItemsOnly.Contains(i.Id)).ToList();
        // Classified incidents are read like any classified record: named in the audit before they are sent.
        Task AuditedAsync(IEnumerable<Incident> sending, DateTimeOffset at) =>
            audit.RecordReadAsync(session.Viewer, "incident", Audits.Named(sending), $"tak:opening {session.Remote}", at.UtcDateTime, cancellationToken);
        await AuditedAsync(picture, now);
        foreach (var incident in picture)
        {
            if (BeforeOpeningIncident is { } pause)
            {
                await pause(incident.Id);
            }

            cancellationToken.ThrowIfCancellationRequested();
            router.RememberSent(incident.Id, incident, session.Viewer);
            await session.SendWaitingAsync(CotMapping.Outgoing(incident, markings, now));
            sent.Add(incident.Id);
        }

        // The picture was queried before it went out, and goes out slowly to a slow device: the live feed may meanwhile
        // have sent a newer view of one of its incidents (which the picture then overtook with the older one), or withdrawn
        // it (after which the picture sent it back), or it may have been deleted (merged away, emptied when its last report moved to another). Those
        // incidents are sent again as the member sees them now, or withdrawn; what the feed sends after that is newer.
        // Sending them again waits for room while the feed's sends do not, so the feed may overtake that too: a few rounds,
        // each for what the feed sent during the last.
        var deleted = sent.Except(await db.Incidents.AsNoTracking().Where(i => sent.Contains(i.Id)).Select(i => i.Id).ToListAsync(cancellationToken));
        for (var round = 0; round < OpeningRounds; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var touched = session.TakeLiveIncidents(last: round == OpeningRounds - 1).Intersect(sent).Union(deleted).ToList();
            deleted = [];
            if (touched.Count == 0)
            {
                session.TakeLiveIncidents(last: true);
                break;
            }

            var (again, _) = await IncidentQuery.ApplyAsync(db, db.Incidents.AsNoTracking().Where(i => touched.Contains(i.Id)), new Http.ListQuery(), session.Viewer,
                directory, markings, cancellationToken);
            var current = (await again!.LatestChangedAsync(touched.Count, cancellationToken)).ToDictionary(i => i.Id);
            var later = time.GetUtcNow();
            await AuditedAsync(current.Values, later);
            foreach (var id in touched)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (current.TryGetValue(id, out var incident))
                {
                    router.RememberSent(incident.Id, incident, session.Viewer);
                    await session.SendWaitingAsync(CotMapping.Outgoing(incident, markings, later));
                }
                else
                {
                    await session.SendWaitingAsync(CotMapping.Withdrawal(id, later));
                }
            }
        }
    }

    /// <summary>How many times the end of the opening picture reconciles incidents the live feed sent meanwhile.</summary>
    private const int OpeningRounds = 3;

    /// <summary>For tests: runs before the opening picture sends each incident, the moment the live feed can overtake it.</summary>
    internal Func<Guid, Task>? BeforeOpeningIncident { get; set; }

    /// <summary>
    /// Ends the sessions whose access has gone or changed since they connected: a lost device's certificate revoked, a
    /// member disabled, moved or given another clearance. A device that may still connect reconnects and gets what its
    /// member may now see.
    /// </summary>
    private readonly Hosting.FailureRun _accessCheckFailures = new(logger, "checking the access of connected TAK devices");

    private async Task CheckAccessAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.AccessCheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await CheckAccessOnceAsync(stoppingToken);
                    _accessCheckFailures.Succeeded();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (_accessCheckFailures.Failed(e))
                    {
                        logger.LogWarning(e, "checking the access of connected TAK devices failed; trying again");
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One check at a time (the timer's and the incident feed's): two would cut a device twice, withdrawals and all.</summary>
    private readonly SemaphoreSlim _checking = new(1, 1);

    public override void Dispose()
    {
        _checking.Dispose();
        _storing.Dispose();
        base.Dispose();
    }

    internal async Task CheckAccessOnceAsync(CancellationToken cancellationToken)
    {
        await _checking.WaitAsync(cancellationToken);
        try
        {
            await CheckSessionsAsync(cancellationToken);
        }
        finally
        {
            _checking.Release();
        }
    }

    private async Task CheckSessionsAsync(CancellationToken cancellationToken)
    {
        // A session being cut that kept its queue (its access grew, or where its positions go changed) is judged too while
        // it writes that queue: access withdrawn or narrowed meanwhile drops it, and sends what its member may no longer see.
        var sessions = router.Sessions.Where(s => !s.Closing.IsCancellationRequested && (!s.Draining || s.DrainingWithQueue)).ToList();
        if (sessions.Count == 0)
        {
            return;
        }

        var thumbprints = sessions.Select(s => s.Certificate).Where(c => !c.StartsWith("tcp:", StringComparison.Ordinal)).Distinct().ToList();
        Dictionary<string, Guid> valid;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var now = time.GetUtcNow().UtcDateTime;
            valid = await db.DeviceCertificates.Where(c => thumbprints.Contains(c.Thumbprint) && c.RevokedAt == null && c.ExpiresAt > now)
                .ToDictionaryAsync(c => c.Thumbprint, c => c.MemberId, cancellationToken);
        }

        var tcpViewer = sessions.Any(s => s.ReceiveOnly) ? await NamedViewerAsync(cancellationToken) : null;
        // Once per member, however many devices it has connected.
        var positionMarkings = new Dictionary<Guid, MarkingDefault>();
        async Task<MarkingDefault> PositionMarkingAsync(Viewer member) =>
            positionMarkings.TryGetValue(member.MemberId, out var known)
                ? known
                : positionMarkings[member.MemberId] = await deviceMarkings.ForAsync(member, DeviceMarkings.Positions, cancellationToken);

        foreach (var session in sessions)
        {
            Viewer? current;
            if (session.ReceiveOnly)
            {
                current = tcpViewer is not null && NotLowPrivilege(tcpViewer) is null ? tcpViewer : null;
            }
            else
            {
                current = valid.TryGetValue(session.Certificate, out var memberId) ? await viewers.ForMemberAsync(memberId, cancellationToken) : null;
            }

            if (session.Draining)
            {
                if (current is null || Narrower(session.Viewer, current))
                {
                    logger.LogInformation("TAK device of {User} ({Remote}), being cut, loses its queue: its member's access was withdrawn or narrowed meanwhile", session.Viewer.UserName, session.Remote);
                    await CutAsync(session, current, "access withdrawn or narrowed", cancellationToken);
                }

                continue;
            }

            if (current is null)
            {
                logger.LogWarning("TAK device of {User} ({Remote}) cut: its certificate was revoked or has expired, or its member was disabled", session.Viewer.UserName, session.Remote);
                await CutAsync(session, null, "access withdrawn: certificate revoked or expired, or member disabled", cancellationToken);
            }
            else if (!SameAccess(session.Viewer, current))
            {
                logger.LogInformation("TAK device of {User} ({Remote}) cut: the member's access changed; it may reconnect", session.Viewer.UserName, session.Remote);
                await CutAsync(session, current, "the member's access changed; reconnect", cancellationToken);
            }
            else if (await PositionMarkingAsync(current) is var marking
                && (marking.Classification, marking.ReleasableTo, marking.Caveats) != (session.Marking.Classification, session.Marking.ReleasableTo, session.Marking.Caveats))
            {
                // An agreement changed what the device's positions and chat may reach: they must not keep going where the
                // old one sent them, including the rest of a read under way (the session's events are handled no more from
                // here, as on any cut). What is queued for the device is written: its member's access did not change. On
                // reconnecting the device gets the new marking.
                logger.LogInformation("TAK device of {User} ({Remote}) cut: the marking of its positions changed; it may reconnect", session.Viewer.UserName, session.Remote);
                session.StopSending("the marking of the member's positions changed; reconnect", CutWithin, dropQueued: false);
                // With the relays that were waiting for their audit entry: they were relayed under the old marking.
                session.SendLast(await relayAudit.TakeForLastAsync(session), dropQueued: false);
            }
        }
    }

    /// <summary>
    /// A device keeps the incidents it was sent until they go stale, a week later, and withdrawals reach only devices
    /// connected at the time. On connecting, a device is first told to remove:
    /// <list type="bullet">
    /// <item>the incidents deleted since its last connection began (merged into another, emptied by a move) that it may have
    /// had: those whose reports (named by their deletion's change row) its member may read, or could when it last
    /// connected; the <see cref="MaxWithdrawalsOnCut"/> deleted most recently within the week;</item>
    /// <item>after a narrowing of its member's access since then (a lower clearance, a caveat, group or organisation lost
    /// while it was switched off), what the old access showed and the new one does not (the <see cref="MaxWithdrawalsOnCut"/>
    /// changed most recently, whatever their age), and the mixed incidents both show, which it holds as the old access saw
    /// them.</item>
    /// </list>
    /// The opening picture then sends what the member now sees. The access is recorded with the certificate once the
    /// picture is sent (<see cref="RecordAccessAsync"/>).
    /// </summary>
    private async Task WithdrawWhatChangedMeanwhileAsync(TakSession session, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (session.Certificate.StartsWith("tcp:", StringComparison.Ordinal))
        {
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        if (await db.DeviceCertificates.SingleOrDefaultAsync(c => c.Thumbprint == session.Certificate, cancellationToken) is not { } certificate)
        {
            return;
        }

        // A certificate connecting for the first time may be a renewed or re-issued one on a device that held records under
        // an earlier certificate of the member's (a yearly renewal; a new one after a disable, which revokes them all). Which
        // of the member's devices it is cannot be told: what each of the member's other certificates last knew stands for it
        // (the newest MaxEarlierAccesses), so that the device is told what the member lost meanwhile whichever it was; the
        // latest record alone may be another device's, back already and knowing the narrower access.
        // (On a new device this withdraws what it never had, which it ignores.)
        var accesses = certificate.LastAccess is { } own ? [own] : await db.DeviceCertificates.AsNoTracking()
            .Where(c => c.MemberId == certificate.MemberId && c.Thumbprint != certificate.Thumbprint && c.LastAccess != null)
            .OrderByDescending(c => c.IssuedAt).Take(MaxEarlierAccesses).Select(c => c.LastAccess!).ToListAsync(cancellationToken);
        var since = (now - CotMapping.IncidentLifetime).UtcDateTime;
        var deleted = new HashSet<Guid>();
        var narrowed = new HashSet<Guid>();
        var items = new HashSet<string>(StringComparer.Ordinal);
        foreach (var access in accesses.Distinct(StringComparer.Ordinal))
        {
            if (DeviceAccess.Read(access) is not { } last)
            {
                continue;
            }

            var before = last.As(session.Viewer);
            if (last.Told is { } told)
            {
                deleted.UnionWith(await DeletedSinceAsync(db, told, since, session.Viewer, before, cancellationToken));
            }

            if (Narrower(before, session.Viewer))
            {
                // However long ago an incident last changed: the opening picture sends the latest changed whatever their age,
                // and a device keeps each a week after it was sent.
                var had = await db.VisibleIncidents(db.Incidents.AsNoTracking(), before)
                    .OrderByDescending(i => i.UpdatedAt).Take(MaxWithdrawalsOnCut).Select(i => i.Id).ToListAsync(cancellationToken);
                narrowed.UnionWith(await NoLongerShownAsync(db, had, session.Viewer, narrower: true, cancellationToken));
            }

            // Markers, drawings and alerts of other devices deleted since (as the device may have had them), or relayed under a
            // marking the member could read then and no longer may: the device keeps them, archived, until told.
            items.UnionWith(router.ItemsGoneSince(before, session.Viewer, last.Began, Narrower(before, session.Viewer), MaxWithdrawalsOnCut));
        }

        narrowed.ExceptWith(deleted);
        if (deleted.Count + narrowed.Count + items.Count == 0)
        {
            return;
        }

        foreach (var id in deleted.Concat(narrowed))
        {
            await session.SendWaitingAsync(CotMapping.Withdrawal(id, now));
        }

        foreach (var uid in items)
        {
            await session.SendWaitingAsync(TakRouter.ItemDeletion(uid, now));
        }

        logger.LogInformation("TAK device of {User} ({Remote}) told to remove {Deleted} incidents deleted, {Narrowed} no longer shown to it and {Items} items deleted or no longer shown since it last connected",
            session.Viewer.UserName, session.Remote, deleted.Count, narrowed.Count, items.Count);
    }

    /// <summary>How many incident deletions a connecting device's withdrawals look at, the latest first.</summary>
    private const int MaxDeletionsRead = 20_000;

    /// <summary>
    /// The incidents deleted after position <paramref name="told"/> of the change feed, within the week, that a device of
    /// <paramref name="viewer"/> may have had: those holding a report the member may read, or could as
    /// <paramref name="before"/> (their last connection). The latest first, read by the feed's index of deletions
    /// (schema 19) a page at a time until <see cref="MaxWithdrawalsOnCut"/> are found.
    /// </summary>
    private static async Task<List<Guid>> DeletedSinceAsync(ConcordDb db, long told, DateTime since, Viewer viewer, Viewer before, CancellationToken cancellationToken)
    {
        var gone = new List<Guid>();
        var below = long.MaxValue;
        for (var looked = 0; looked < MaxDeletionsRead && gone.Count < MaxWithdrawalsOnCut;)
        {
            var page = await db.Changes.AsNoTracking()
                .Where(c => c.Entity == "incident" && c.Operation == "deleted" && c.Sequence > told && c.Sequence < below)
                .OrderByDescending(c => c.Sequence).Take(500).ToListAsync(cancellationToken);
            var recent = page.Where(c => c.At >= since).ToList();
            var held = recent.SelectMany(c => c.CauseIds).Distinct().ToList();
            var readable = (await db.Reports.AsNoTracking().Where(r => held.Contains(r.Id))
                    .Select(r => new { r.Id, r.Classification, r.ReleasableTo, r.Caveats }).ToListAsync(cancellationToken))
                .Where(r => Marking.AllowsRead(r.Classification, r.ReleasableTo, r.Caveats, viewer) || Marking.AllowsRead(r.Classification, r.ReleasableTo, r.Caveats, before))
                .Select(r => r.Id).ToHashSet();
            gone.AddRange(recent.Where(c => c.CauseIds.Any(readable.Contains)).Select(c => c.EntityId).Except(gone).Take(MaxWithdrawalsOnCut - gone.Count));
            // Older pages are older still: past the week (or the end of the feed), nothing more is looked at.
            if (page.Count < 500 || recent.Count < page.Count)
            {
                break;
            }

            looked += page.Count;
            below = page[^1].Sequence;
        }

        return gone;
    }

    /// <summary>
    /// <paramref name="told"/>, or the last change before it written more than <see cref="ChangeWindows.GapGrace"/> ago if
    /// later ones were written since: on PostgreSQL a change may commit after one with a higher sequence, and the incident
    /// feed's position, taken as the latest sequence while no device was connected, may have passed a deletion still to
    /// come. Recorded with the certificate, such a position would never be read below again; this one is, at the cost of
    /// telling again of the deletions of the last few seconds.
    /// </summary>
    /// <returns>Null while the incident feed has not read yet (no position known).</returns>
    private async Task<long?> SettledAsync(long told, CancellationToken cancellationToken)
    {
        if (told <= 0)
        {
            return null;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var settled = (time.GetUtcNow() - ChangeWindows.GapGrace).UtcDateTime;
        return await db.Changes.AsNoTracking().Where(c => c.Sequence <= told && c.At < settled).OrderByDescending(c => c.Sequence)
            .Select(c => (long?)c.Sequence).FirstOrDefaultAsync(cancellationToken) ?? 0;
    }

    /// <summary>
    /// Records with the certificate what the member may read, once the device has been sent its withdrawals and opening
    /// picture and is still connected: a session cut before (a weak link, a reconnect replacing it) leaves the access
    /// recorded before, so the next connection withdraws again.
    /// </summary>
    /// <param name="told">The incident feed's position when the connection began (<see cref="SettledAsync"/>); null (not
    /// read yet) keeps the position recorded before, which withdraws no less.</param>
    /// <param name="began">When the connection began: deletions of items routed after it reached the device live.</param>
    private async Task RecordAccessAsync(TakSession session, long? told, DateTimeOffset began, CancellationToken cancellationToken)
    {
        if (session.Certificate.StartsWith("tcp:", StringComparison.Ordinal) || session.Closing.IsCancellationRequested || session.Draining)
        {
            return;
        }

        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            if (await db.DeviceCertificates.SingleOrDefaultAsync(c => c.Thumbprint == session.Certificate, cancellationToken) is { } certificate
                && JsonSerializer.Serialize(DeviceAccess.Of(session.Viewer, told ?? DeviceAccess.Read(certificate.LastAccess)?.Told, began)) is var recorded
                && recorded != certificate.LastAccess)
            {
                certificate.LastAccess = recorded;
                await db.SaveChangesAsync(cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Not recorded: the next connection compares with the access recorded before, which withdraws no less. The
            // device stays connected.
            logger.LogWarning(e, "the access of the TAK device of {User} ({Remote}) could not be recorded", session.Viewer.UserName, session.Remote);
        }
    }

    /// <summary>How many incidents a device cut for narrower access is told to remove at most: the most recently sent.</summary>
    public const int MaxWithdrawalsOnCut = 2_000;

    /// <summary>How many of a member's other certificates' last access a certificate connecting for the first time is judged against.</summary>
    public const int MaxEarlierAccesses = 8;

    /// <summary>How long a device cut for narrower access has to take its withdrawals before it is cut anyway.</summary>
    public static readonly TimeSpan CutWithin = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Cuts a device whose access was withdrawn (<paramref name="now"/> null) or narrowed. It stops at once: nothing more
    /// is sent to it and nothing it sends is handled. Before the cut it is sent a deletion of each incident it may have
    /// been sent (the <see cref="MaxWithdrawalsOnCut"/> sent most recently) that its member may no longer see, or may see
    /// only in part now (a mixed incident, after a narrowing): a device
    /// keeps an incident until it goes stale, a week after it was sent, and neither a reconnect's opening picture nor the
    /// live feed would tell it to remove one it may no longer see. The cut follows once they are written, or after
    /// <see cref="CutWithin"/>.
    /// </summary>
    private async Task CutAsync(TakSession session, Viewer? now, string reason, CancellationToken cancellationToken)
    {
        var narrower = now is null || Narrower(session.Viewer, now);
        session.StopSending(reason, CutWithin, dropQueued: narrower);
        var had = router.MayHaveLatest(session.Viewer, MaxWithdrawalsOnCut);
        var withdrawn = had;
        if (now is not null && had.Count > 0)
        {
            await using var scope = scopes.CreateAsyncScope();
            withdrawn = await NoLongerShownAsync(scope.ServiceProvider.GetRequiredService<ConcordDb>(), had, now, narrower, cancellationToken);
        }

        // Markers, drawings and alerts other devices sent, relayed under markings the member may no longer read, go too.
        var items = router.ItemsNoLongerReadable(session.Viewer, now, MaxWithdrawalsOnCut);
        var at = time.GetUtcNow();
        // A device whose access only grew keeps its queue, and the relays that were waiting for their audit entry with it
        // (written first: a withdrawal may name one of them); after a narrowing they go with the queue.
        var held = await relayAudit.TakeForLastAsync(session, keep: !narrower);
        session.SendLast([.. held, .. withdrawn.Select(id => CotMapping.Withdrawal(id, at)), .. items.Select(uid => new Outbound(CotControl.CreateDelete(uid, at), droppable: false))],
            dropQueued: narrower);
    }

    /// <summary>
    /// Of the incidents a device may hold, those to withdraw for <paramref name="viewer"/>: the ones they may no longer see
    /// and, after a narrowing, the mixed ones still in sight, which are built for each member from the reports they may
    /// see, so the device holds them as the member saw them before (words and figures they may no longer read).
    /// </summary>
    private static async Task<List<Guid>> NoLongerShownAsync(ConcordDb db, List<Guid> had, Viewer viewer, bool narrower, CancellationToken cancellationToken)
    {
        var still = new HashSet<Guid>();
        foreach (var chunk in had.Chunk(500))
        {
            still.UnionWith(await db.VisibleIncidents(db.Incidents.AsNoTracking().Where(i => chunk.Contains(i.Id) && !(narrower && i.Mixed)), viewer)
                .Select(i => i.Id).ToListAsync(cancellationToken));
        }

        return [.. had.Where(id => !still.Contains(id))];
    }

    /// <summary>
    /// Whether <paramref name="now"/> may read less than <paramref name="before"/> did: a lower clearance, a caveat or a
    /// group lost, another organisation or nation. (Roles decide what a member may do, not what they may read.)
    /// </summary>
    internal static bool Narrower(Viewer before, Viewer now) =>
        now.Clearance < before.Clearance || (before.CaveatBits & ~now.CaveatBits) != 0 || now.OrganizationId != before.OrganizationId
        || now.OrganizationKind != before.OrganizationKind || now.Nation != before.Nation || !before.Groups.All(now.Groups.Contains);

    /// <summary>Whether two views of a member decide the same reads: organisation, clearance, caveats, roles, groups, nation.</summary>
    internal static bool SameAccess(Viewer a, Viewer b) =>
        a.MemberId == b.MemberId && a.OrganizationId == b.OrganizationId && a.OrganizationKind == b.OrganizationKind && a.Clearance == b.Clearance
        && a.CaveatBits == b.CaveatBits && a.Nation == b.Nation && a.Roles.SetEquals(b.Roles) && a.Groups.Order(StringComparer.Ordinal).SequenceEqual(b.Groups.Order(StringComparer.Ordinal));

    private async Task<Viewer?> MemberForAsync(string thumbprint, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var now = time.GetUtcNow().UtcDateTime;
        var memberId = await db.DeviceCertificates.Where(c => c.Thumbprint == thumbprint && c.RevokedAt == null && c.ExpiresAt > now)
            .Select(c => (Guid?)c.MemberId).SingleOrDefaultAsync(cancellationToken);
        return memberId is { } id ? await viewers.ForMemberAsync(id, cancellationToken) : null;
    }

    private async Task<Viewer?> NamedViewerAsync(CancellationToken cancellationToken)
    {
        if (options.TcpUser is not { } user)
        {
            return null;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var name = user.ToLowerInvariant();
        var id = await db.Members.Where(m => m.UserName == name).Select(m => (Guid?)m.Id).SingleOrDefaultAsync(cancellationToken);
        return id is { } memberId ? await viewers.ForMemberAsync(memberId, cancellationToken) : null;
    }

    /// <summary>
    /// Why <paramref name="viewer"/> may not be the member plain TCP connections act as, or null when it may: nobody on the
    /// network proves who they are there, so the member must hold the lowest classification, no caveats and no role beyond
    /// reporting (and plain connections only receive: see <see cref="TakSession.ReceiveOnly"/>).
    /// </summary>
    internal static string? NotLowPrivilege(Viewer viewer)
    {
        var roles = viewer.Roles.Where(r => r != MemberRoles.Reporter).Order(StringComparer.Ordinal).ToList();
        return viewer.Clearance > 0 ? "its clearance is above the lowest level"
            : viewer.CaveatBits != 0 ? "it holds caveats"
            : roles.Count > 0 ? $"it has the role(s) {string.Join(", ", roles)}"
            : null;
    }
}

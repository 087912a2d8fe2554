using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using Concord.Cot;

namespace Concord.Server.Tests;

/// <summary>A minimal TAK device for tests: TLS with a client certificate (or plain TCP), XML out, events in.</summary>
internal sealed class TakClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly Stream _stream;
    private readonly Channel<CotEvent> _received = Channel.CreateUnbounded<CotEvent>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private volatile bool _protobuf;

    // A device reads what the server writes without Concord's limit for untrusted input: a detail rewritten in canonical
    // form (text escaped) may be longer than the one the sending device wrote.
    private static readonly CotParseOptions ReceivedDetails = new() { MaxDocumentBytes = 1 << 20 };

    private TakClient(TcpClient tcp, Stream stream, bool read)
    {
        _tcp = tcp;
        _stream = stream;
        _reader = read ? Task.Run(ReadAsync) : Task.CompletedTask;
    }

    /// <summary>Connects; with a certificate over TLS, checking the server against the deployment's <paramref name="authority"/>.</summary>
    public static async Task<TakClient> ConnectAsync(int port, X509Certificate2? certificate, X509Certificate2? authority, bool read = true)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        Stream stream = tcp.GetStream();
        if (certificate is not null)
        {
            var ssl = new SslStream(stream, false, (_, presented, _, _) => presented is X509Certificate2 server && IssuedBy(server, authority!));
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                ClientCertificates = [certificate],
            });
            stream = ssl;
        }

        return new TakClient(tcp, stream, read);
    }

    private static bool IssuedBy(X509Certificate2 server, X509Certificate2 authority)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(server);
    }

    public async Task SendAsync(string xml)
    {
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(xml + "\n"));
        await _stream.FlushAsync();
    }

    public async Task SendProtobufAsync(CotEvent e)
    {
        await _stream.WriteAsync(TakFraming.EncodeStreamFrame(e.ToTakMessage()));
        await _stream.FlushAsync();
    }

    public void UseProtobuf() => _protobuf = true;

    /// <summary>The next received event matching <paramref name="match"/>, or null after <paramref name="timeout"/>.</summary>
    public async Task<CotEvent?> WaitForAsync(Func<CotEvent, bool> match, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        try
        {
            while (true)
            {
                var e = await _received.Reader.ReadAsync(cancel.Token);
                if (match(e))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    public bool Closed => _reader.IsCompleted;

    /// <summary>The size in bytes of the last XML event received under each uid, as it came over the wire.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<string, int> Sizes { get; } = new(StringComparer.Ordinal);

    /// <summary>The device's own port, which the server sees as the remote end of its session.</summary>
    public int LocalPort => ((System.Net.IPEndPoint)_tcp.Client.LocalEndPoint!).Port;

    private async Task ReadAsync()
    {
        var framer = new CotXmlFramer();
        TakStreamFramer? protobuf = null;
        var buffer = new byte[16 * 1024];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var read = await _stream.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                if (protobuf is null)
                {
                    framer.Append(buffer.AsSpan(0, read));
                    while (framer.TryReadEvent(out var document))
                    {
                        var e = CotXml.Parse(document);
                        Sizes[e.Uid] = document.Length;
                        _received.Writer.TryWrite(e);
                        if (e.Type == CotControl.VersionResponseType && _protobuf)
                        {
                            protobuf = new TakStreamFramer(1 << 20);
                            protobuf.Append(framer.TakeBufferedBytes());
                            break;
                        }
                    }
                }
                else
                {
                    protobuf.Append(buffer.AsSpan(0, read));
                }

                while (protobuf is not null && protobuf.TryReadMessage(out var message))
                {
                    if (message?.CotEvent is { } takEvent)
                    {
                        _received.Writer.TryWrite(takEvent.ToCotEvent(ReceivedDetails));
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or CotParseException or CotFramingException)
        {
        }
        finally
        {
            _received.Writer.TryComplete();
        }
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _stop.CancelAsync();
        await _stream.DisposeAsync();
        _tcp.Dispose();
        try
        {
            await _reader;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }
}

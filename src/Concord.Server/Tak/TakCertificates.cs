using System.IO.Compression;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Concord.Server.Hosting;

namespace Concord.Server.Tak;

/// <summary>
/// The deployment's certificate authority for TAK: created on first use in <c>DATA/keys/tak</c>, it signs the server's
/// TLS certificate and one client certificate per device. Devices are identified by their certificate, which is recorded
/// against a member (<see cref="DeviceCertificate"/>); Concord trusts only certificates its own CA signed.
/// RSA 2048 keys and PKCS#12 with 3DES/SHA-1: what ATAK, WinTAK and iTAK import.
/// </summary>
internal sealed class TakCertificates(ServerOptions options, TimeProvider time)
{
    public const string DefaultPassword = "atakatak";

    private readonly Lock _gate = new();
    private X509Certificate2? _ca;
    private X509Certificate2? _server;
    private DateTime _serverWritten;

    public string Directory => Path.Combine(Path.GetFullPath(options.DataDirectory), "keys", "tak");

    /// <summary>Whether this data directory holds a certificate authority yet (the first certificate creates one).</summary>
    public bool HasAuthority => File.Exists(Path.Combine(Directory, AuthorityFile));

    public X509Certificate2 Authority
    {
        get
        {
            lock (_gate)
            {
                return _ca ??= LoadOrCreate(AuthorityFile, CreateAuthority);
            }
        }
    }

    /// <summary>
    /// The server's TLS certificate. Read again when <c>server.pfx</c> changed (<c>concord cert issue --host</c> adds a
    /// name to it while the server runs), so new connections get the new one.
    /// </summary>
    public X509Certificate2 Server
    {
        get
        {
            lock (_gate)
            {
                var path = Path.Combine(Directory, ServerFile);
                var now = time.GetUtcNow();
                if (_server is null)
                {
                    _server = LoadOrCreate(ServerFile, () => CreateServer(DefaultNames()));
                    _serverWritten = File.GetLastWriteTimeUtc(path);
                }
                else if (File.GetLastWriteTimeUtc(path) is var written && written != _serverWritten && File.Exists(path))
                {
                    // Tried once per change of the file: one that cannot be read (written by another user, say) leaves
                    // the server with the certificate it has, not every device refused.
                    _serverWritten = written;
                    try
                    {
                        _server = X509CertificateLoader.LoadPkcs12FromFile(path, null, X509KeyStorageFlags.Exportable);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
                    {
                        ServerReloadFailed?.Invoke(e);
                    }
                }

                // One that has expired, or soon will, is made again with the same names, signed by the same CA (what
                // devices trust): expired, every device's handshake would fail, and nothing said why. Judged at the start
                // and then at most once an hour as connections come: a server certificate lasts 825 days (ServerLifetime),
                // which a server may run through without a restart.
                // (Not when the CA has ended too: it signs nothing any more. A renewal that fails, a folder not writable say,
                // leaves the certificate it had and is said as a failed reload is: the rest of the server starts.)
                if (now - _renewalJudged >= TimeSpan.FromHours(1))
                {
                    _renewalJudged = now;
                    // So is one made for longer than iOS accepts (five years, until 2026-12), at once.
                    var ending = new DateTimeOffset(_server.NotAfter.ToUniversalTime()) - now < RenewBefore && Authority.NotAfter > _server.NotAfter;
                    var tooLong = _server.NotAfter - _server.NotBefore > ServerLifetime + TimeSpan.FromDays(1);
                    if ((ending || tooLong) && new DateTimeOffset(Authority.NotAfter.ToUniversalTime()) > now.AddDays(1))
                    {
                        try
                        {
                            var (dns, ips) = NamesOf(_server);
                            Replace([.. dns, .. ips.Select(ip => ip.ToString())]);
                        }
                        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
                        {
                            ServerReloadFailed?.Invoke(e);
                        }
                    }
                }

                return _server;
            }
        }
    }

    private const string ServerFile = "server.pfx";

    private const string AuthorityFile = "ca.pfx";

    /// <summary>Told when a changed <c>server.pfx</c> could not be read (the server keeps the certificate it had).</summary>
    public Action<Exception>? ServerReloadFailed { get; set; }

    /// <summary>Whether <paramref name="host"/> is a DNS name or IP address a certificate can name.</summary>
    public static bool IsHostName(string host) =>
        Uri.CheckHostName(host.Trim().Trim('[', ']')) is UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6;

    /// <summary>
    /// Makes the server's certificate name every one of <paramref name="hosts"/> (DNS names or IP addresses), so that a
    /// client checking the name it dialled accepts it: a new certificate with the names it had and these, signed by the
    /// same CA (which is what devices trust, so none needs anything new). True when it had to be replaced.
    /// </summary>
    public bool EnsureServerNames(IEnumerable<string> hosts)
    {
        lock (_gate)
        {
            var current = Server;
            var (dns, ips) = NamesOf(current);
            var missing = hosts.Where(IsHostName).Select(h => h.Trim().Trim('[', ']'))
                .Where(h => IPAddress.TryParse(h, out var ip) ? !ips.Contains(ip) : !dns.Contains(h)).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            if (missing.Count == 0)
            {
                return false;
            }

            Replace([.. dns, .. ips.Select(ip => ip.ToString()), .. missing]);
            return true;
        }
    }

    /// <summary>How long before it expires the server's certificate is made again (at the server's start, or as it runs).</summary>
    public static readonly TimeSpan RenewBefore = TimeSpan.FromDays(30);

    /// <summary>
    /// How long a server certificate lasts: iOS and macOS (iTAK) refuse a TLS server certificate valid for more than 825
    /// days, whatever root it chains to (Apple, "Requirements for trusted certificates in iOS 13 and macOS 10.15").
    /// </summary>
    public static readonly TimeSpan ServerLifetime = TimeSpan.FromDays(825);

    private DateTimeOffset _renewalJudged = DateTimeOffset.MinValue;

    /// <summary>Writes a new server certificate naming <paramref name="hosts"/> and takes it. Under _gate.</summary>
    private void Replace(IEnumerable<string> hosts)
    {
        var replaced = CreateServer(hosts);
        var path = Path.Combine(Directory, ServerFile);
        // A running server never reads half a file.
        WritePrivateAside(path, replaced.Export(X509ContentType.Pkcs12), overwrite: true);
        _server = X509CertificateLoader.LoadPkcs12FromFile(path, null, X509KeyStorageFlags.Exportable);
        _serverWritten = File.GetLastWriteTimeUtc(path);
    }

    /// <summary>The DNS names and IP addresses a certificate's subject alternative names give.</summary>
    internal static (HashSet<string> Dns, HashSet<IPAddress> Ips) NamesOf(X509Certificate2 certificate)
    {
        var dns = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var ips = new HashSet<IPAddress>();
        foreach (var names in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            dns.UnionWith(names.EnumerateDnsNames());
            ips.UnionWith(names.EnumerateIPAddresses());
        }

        return (dns, ips);
    }

    /// <summary>
    /// The names a new server certificate gets: this machine by name and loopback, and every address of its network
    /// interfaces, so that devices on the mission's network reach it by IP address from the start.
    /// </summary>
    private static List<string> DefaultNames()
    {
        List<string> names = ["localhost", Environment.MachineName, IPAddress.Loopback.ToString(), IPAddress.IPv6Loopback.ToString()];
        try
        {
            names.AddRange(System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address)
                .Where(a => !a.IsIPv6LinkLocal).Select(a => a.ToString()));
        }
        catch (System.Net.NetworkInformation.NetworkInformationException)
        {
            // Without the interfaces: the names above, and what cert issue --host adds.
        }

        return names;
    }

    /// <summary>Issues a client certificate (with its private key) for a member's device.</summary>
    public X509Certificate2 IssueClient(string userName, TimeSpan lifetime)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={userName}, O=Concord"), key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var authority = Authority;
        var now = time.GetUtcNow();
        var notAfter = now + lifetime < authority.NotAfter ? now + lifetime : new DateTimeOffset(authority.NotAfter.ToUniversalTime());
        using var certificate = request.Create(authority, Latest(now.AddMinutes(-5), authority.NotBefore), notAfter, RandomNumberGenerator.GetBytes(16));
        return certificate.CopyWithPrivateKey(key);
    }

    public static string Thumbprint(X509Certificate2 certificate) => Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>True when <paramref name="certificate"/> was signed by this deployment's CA and is in its validity period.</summary>
    public bool IsIssuedByUs(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = time.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        return chain.Build(certificate) && chain.ChainElements[^1].Certificate.Thumbprint == Authority.Thumbprint;
    }

    /// <summary>The files <see cref="Write"/> writes for one member's device (beside the deployment's CA and trust store, which every device's set shares).</summary>
    public static string[] DeviceFiles(string userName) => [$"{userName}.cert.pem", $"{userName}.key.pem", $"{userName}.p12", $"{userName}-concord.zip"];

    /// <summary>The files every device's set shares: the same for every member (the deployment's CA, a trust store of it).</summary>
    private static readonly string[] SharedFiles = ["concord-ca.pem", "truststore-concord.p12"];

    /// <summary>
    /// Writes the files a device needs: PEM for scripts (node-tak), PKCS#12 and a TAK data package for ATAK/WinTAK. Returns
    /// them all, and those it made (not there before: what is to go if the certificate is not recorded after all).
    /// </summary>
    public (IReadOnlyList<string> Written, IReadOnlyList<string> Made) Write(X509Certificate2 client, string userName, string outputDirectory, string host, int port, string password, bool package)
    {
        var written = new List<string>();
        // Files there before (another device's set shares the CA and the trust store): not removed if this set fails.
        var replaced = new HashSet<string>(StringComparer.Ordinal);
        string Save(string name, byte[] bytes)
        {
            var path = Path.Combine(outputDirectory, name);
            if (File.Exists(path))
            {
                replaced.Add(path);
            }

            WritePrivate(path, bytes);
            written.Add(path);
            return path;
        }

        try
        {
            System.IO.Directory.CreateDirectory(outputDirectory);
            Save(DeviceFiles(userName)[0], Encoding.ASCII.GetBytes(client.ExportCertificatePem()));
            Save(DeviceFiles(userName)[1], Encoding.ASCII.GetBytes(client.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem()));
            Save(SharedFiles[0], Encoding.ASCII.GetBytes(Authority.ExportCertificatePem()));
            var clientP12 = client.ExportPkcs12(Pkcs12ExportPbeParameters.Pkcs12TripleDesSha1, password);
            Save(DeviceFiles(userName)[2], clientP12);
            var trustStore = TrustStore(password);
            Save(SharedFiles[1], trustStore);
            if (package)
            {
                Save(DeviceFiles(userName)[3], DataPackage(userName, host, port, password, clientP12, trustStore));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Half a set (a key without its package, a disk filled half-way) is not left behind for a device to be given.
            foreach (var path in written.Where(p => !replaced.Contains(p)))
            {
                File.Delete(path);
            }

            throw new TakKeyFileException($"--out '{outputDirectory}' cannot be written: {e.Message}", e);
        }

        return (written, [.. written.Where(p => !replaced.Contains(p))]);
    }

    private byte[] TrustStore(string password)
    {
        using var authority = X509CertificateLoader.LoadCertificate(Authority.RawData);
        var collection = new X509Certificate2Collection(authority);
        return collection.ExportPkcs12(Pkcs12ExportPbeParameters.Pkcs12TripleDesSha1, password)!;
    }

    /// <summary>A TAK data package: a manifest, a preference file with the connection and the two PKCS#12 files.</summary>
    private static byte[] DataPackage(string userName, string host, int port, string password, byte[] clientP12, byte[] trustStore)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, byte[] bytes)
            {
                using var entry = zip.CreateEntry(name, CompressionLevel.Optimal).Open();
                entry.Write(bytes);
            }

            var pref = $"""
                <?xml version='1.0' standalone='yes'?>
                <preferences>
                  <preference version="1" name="cot_streams">
                    <entry key="count" class="class java.lang.Integer">1</entry>
                    <entry key="description0" class="class java.lang.String">Concord</entry>
                    <entry key="enabled0" class="class java.lang.Boolean">true</entry>
                    <entry key="connectString0" class="class java.lang.String">{Escape(host)}:{port}:ssl</entry>
                  </preference>
                  <preference version="1" name="com.atakmap.app_preferences">
                    <entry key="displayServerConnectionWidget" class="class java.lang.Boolean">true</entry>
                    <entry key="caLocation" class="class java.lang.String">cert/truststore-concord.p12</entry>
                    <entry key="caPassword" class="class java.lang.String">{Escape(password)}</entry>
                    <entry key="clientPassword" class="class java.lang.String">{Escape(password)}</entry>
                    <entry key="certificateLocation" class="class java.lang.String">cert/{Escape(userName)}.p12</entry>
                  </preference>
                </preferences>
                """;
            var manifest = $"""
                <MissionPackageManifest version="2">
                  <Configuration>
                    <Parameter name="uid" value="{Guid.NewGuid()}"/>
                    <Parameter name="name" value="concord-{Escape(userName)}"/>
                    <Parameter name="onReceiveDelete" value="true"/>
                  </Configuration>
                  <Contents>
                    <Content ignore="false" zipEntry="certs/concord.pref"/>
                    <Content ignore="false" zipEntry="certs/truststore-concord.p12"/>
                    <Content ignore="false" zipEntry="certs/{Escape(userName)}.p12"/>
                  </Contents>
                </MissionPackageManifest>
                """;
            Add("MANIFEST/manifest.xml", Encoding.UTF8.GetBytes(manifest));
            Add("certs/concord.pref", Encoding.UTF8.GetBytes(pref));
            Add("certs/truststore-concord.p12", trustStore);
            Add($"certs/{userName}.p12", clientP12);
        }

        return buffer.ToArray();
    }

    private static string Escape(string text) => SecurityElementEscape(text);

    private static string SecurityElementEscape(string text) =>
        text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
            .Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal).Replace("'", "&apos;", StringComparison.Ordinal);

    private X509Certificate2 LoadOrCreate(string file, Func<X509Certificate2> create)
    {
        var path = Path.Combine(Directory, file);
        if (!File.Exists(path))
        {
            System.IO.Directory.CreateDirectory(Directory);
            // A run stopped half-way through the write left a truncated authority that every later run took for the
            // deployment's, and failed on. Another process that made one meanwhile keeps its own.
            WritePrivateAside(path, create().Export(X509ContentType.Pkcs12), overwrite: false);
        }

        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(path, null, X509KeyStorageFlags.Exportable);
        }
        catch (CryptographicException e)
        {
            throw new TakKeyFileException(
                $"{path} cannot be read as a certificate and key ({e.Message}): restore it from a backup of the data folder"
                + (file == AuthorityFile ? " (a new authority, made by removing it, means issuing every device's certificate again)" : " (removed, it is made again at the next start)"));
        }
    }

    private X509Certificate2 CreateAuthority()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(new X500DistinguishedName($"CN=Concord TAK CA {Environment.MachineName}, O=Concord"), key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = time.GetUtcNow();
        return request.CreateSelfSigned(now.AddDays(-1), now.AddYears(10));
    }

    private X509Certificate2 CreateServer(IEnumerable<string> hosts)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(new X500DistinguishedName("CN=concord, O=Concord"), key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var names = new SubjectAlternativeNameBuilder();
        foreach (var host in hosts.Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (IPAddress.TryParse(host, out var ip))
            {
                names.AddIpAddress(ip);
            }
            else
            {
                names.AddDnsName(host);
            }
        }

        request.CertificateExtensions.Add(names.Build());
        var authority = Authority;
        var now = time.GetUtcNow();
        // Never past its CA (which refuses to sign so): a CA near its end signs one that ends with it. Its start is a day
        // back (a device whose clock runs behind), within the 825 days counted from it.
        var notBefore = Latest(now.AddDays(-1), authority.NotBefore);
        var notAfter = notBefore + ServerLifetime < authority.NotAfter ? notBefore + ServerLifetime : new DateTimeOffset(authority.NotAfter.ToUniversalTime());
        using var certificate = request.Create(authority, notBefore, notAfter, RandomNumberGenerator.GetBytes(16));
        return certificate.CopyWithPrivateKey(key);
    }

    /// <summary>A certificate may not start before its issuer does.</summary>
    private static DateTimeOffset Latest(DateTimeOffset wanted, DateTime issuerNotBefore)
    {
        var issuer = new DateTimeOffset(issuerNotBefore.ToUniversalTime()).AddSeconds(1);
        return wanted > issuer ? wanted : issuer;
    }

    /// <summary>
    /// Writes a file only its owner may read aside, under a name of its own, and renames it into place: no reader ever
    /// reads half of it. Without <paramref name="overwrite"/>, a file another process put there meanwhile is kept.
    /// </summary>
    private static void WritePrivateAside(string path, byte[] bytes, bool overwrite)
    {
        var written = $"{path}.{Guid.NewGuid():N}.new";
        WritePrivate(written, bytes);
        try
        {
            File.Move(written, path, overwrite);
        }
        catch (IOException) when (!overwrite && File.Exists(path))
        {
            File.Delete(written);
        }
    }

    /// <summary>Writes a file only its owner may read: from its creation on, and also when it replaces an older one.</summary>
    private static void WritePrivate(string path, byte[] bytes)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        {
            stream.Write(bytes);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}

/// <summary>A TAK key file of the deployment that is there but cannot be read (truncated, overwritten), or a device's files that
/// cannot be written: said in one line.</summary>
internal sealed class TakKeyFileException(string message, Exception? inner = null) : Exception(message, inner);

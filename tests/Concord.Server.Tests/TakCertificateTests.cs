using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Concord.Server.Hosting;
using Concord.Server.Tak;
using Microsoft.Extensions.Time.Testing;

namespace Concord.Server.Tests;

/// <summary>The deployment's TAK certificates over the years a mission runs.</summary>
public sealed class TakCertificateTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), "concord-certs-" + Guid.NewGuid().ToString("N"));

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public void The_servers_certificate_ends_with_its_CA_and_is_made_again_before_it_expires()
    {
        // The server's certificate was made for five years and the CA for ten: past five, the server's had expired (every
        // device's handshake failed, nothing said why), and naming a new host asked the CA to sign past its own end, which
        // it refuses (an exception after the device's certificate was announced as issued, or a server that would not start).
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new ServerOptions { DataDirectory = _data, Store = Data.StoreOptions.Sqlite(_data) };
        var first = new TakCertificates(options, clock);
        var ca = first.Authority.NotAfter;
        var original = first.Server.NotAfter;
        Assert.True(original < ca);

        // Six years on, at the server's next start: a new certificate with the same names, ending with the CA.
        clock.Advance(TimeSpan.FromDays(6 * 365));
        var later = new TakCertificates(options, clock);
        var renewed = later.Server;
        Assert.True(renewed.NotAfter > original);
        Assert.True(renewed.NotAfter <= ca);
        Assert.True(TakCertificates.NamesOf(first.Server).Dns.SetEquals(TakCertificates.NamesOf(renewed).Dns));
        Assert.Equal(TakCertificates.Thumbprint(first.Authority), TakCertificates.Thumbprint(later.Authority));

        // A host named then is added without asking the CA to sign past its end.
        Assert.True(later.EnsureServerNames(["10.9.9.9"]));
        Assert.Contains(System.Net.IPAddress.Parse("10.9.9.9"), TakCertificates.NamesOf(later.Server).Ips);
        Assert.True(later.Server.NotAfter <= ca);
    }

    [Fact]
    public void The_servers_certificate_lasts_no_longer_than_iOS_accepts_and_is_renewed_while_the_server_runs()
    {
        // iTAK (iOS) refuses a TLS server certificate valid for more than 825 days, whatever its root: it was made for
        // five years. Renewed only at a start, one server running through its 825 days would then refuse every device.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new ServerOptions { DataDirectory = _data, Store = Data.StoreOptions.Sqlite(_data) };
        var certificates = new TakCertificates(options, clock);
        var first = certificates.Server;
        Assert.True(first.NotAfter - first.NotBefore <= TimeSpan.FromDays(825), $"{first.NotBefore:O} to {first.NotAfter:O}");

        clock.Advance(TimeSpan.FromDays(810));
        var renewed = certificates.Server;
        Assert.NotEqual(TakCertificates.Thumbprint(first), TakCertificates.Thumbprint(renewed));
        Assert.True(renewed.NotAfter > first.NotAfter);
        Assert.True(renewed.NotAfter - renewed.NotBefore <= TimeSpan.FromDays(825));
        Assert.True(TakCertificates.NamesOf(first).Dns.SetEquals(TakCertificates.NamesOf(renewed).Dns));
        // Judged at most once an hour: the next connection is given the same one.
        Assert.Equal(TakCertificates.Thumbprint(renewed), TakCertificates.Thumbprint(certificates.Server));

        // One made for five years (as before 2026-12), signed by the same CA, is made again at once.
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=concord, O=Concord", key,
                HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var now = clock.GetUtcNow();
            using var old = request.Create(certificates.Authority, now.AddDays(-1), now.AddYears(5), [1, 2, 3, 4]);
            using var withKey = old.CopyWithPrivateKey(key);
            File.WriteAllBytes(Path.Combine(certificates.Directory, "server.pfx"), withKey.Export(X509ContentType.Pkcs12));
        }

        var restarted = new TakCertificates(options, clock).Server;
        Assert.True(restarted.NotAfter - restarted.NotBefore <= TimeSpan.FromDays(825), $"{restarted.NotBefore:O} to {restarted.NotAfter:O}");
    }

    [Fact]
    public void A_server_started_after_its_CA_ended_keeps_the_certificate_it_has()
    {
        // Nothing can be signed past the CA's end: a renewal tried then threw, and stopped the whole server (API and pages
        // too), where TAK alone is refused, as it would be anyway.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var options = new ServerOptions { DataDirectory = _data, Store = Data.StoreOptions.Sqlite(_data) };
        var first = new TakCertificates(options, clock);
        var thumbprint = TakCertificates.Thumbprint(first.Server);
        clock.Advance(TimeSpan.FromDays((10 * 365) + 180));
        Assert.Equal(thumbprint, TakCertificates.Thumbprint(new TakCertificates(options, clock).Server));
    }
}

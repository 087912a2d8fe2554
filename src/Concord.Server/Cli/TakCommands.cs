using System.Globalization;
using Concord.Server.Data;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Cli;

/// <summary>The <c>cert</c> verbs: client certificates for members' TAK devices.</summary>
internal static class TakCommands
{
    public static async Task<int> IssueAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            var days = 365;
            if (invocation["--days"] is { } daysText && (!int.TryParse(daysText, NumberStyles.None, CultureInfo.InvariantCulture, out days) || days is < 1 or > 3650))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--days must be a whole number from 1 to 3650");
            }

            var port = TakOptions.DefaultTlsPort;
            if (invocation["--port"] is { } portText && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--port must be a port number");
            }

            var password = invocation["--password"] ?? TakCertificates.DefaultPassword;
            if (password.Length < 6)
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, "--password must be at least 6 characters (TAK clients require it)");
            }

            if (invocation["--host"] is { } named && !TakCertificates.IsHostName(named))
            {
                return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--host '{named}' must be a DNS name or an IP address");
            }

            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken))
            {
                return 1;
            }
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var name = invocation["--user"]!.Trim().ToLowerInvariant();
            var member = await db.Members.SingleOrDefaultAsync(m => m.UserName == name, cancellationToken);
            if (member is null)
            {
                await errors.WriteLineAsync($"concord: no member is named '{name}'");
                return 1;
            }

            if (member.Disabled)
            {
                await errors.WriteLineAsync($"concord: {member.UserName} is disabled; a certificate for them would not connect (enable them with 'concord user set --enable')");
                return 1;
            }

            var certificates = services.GetRequiredService<TakCertificates>();
            if (!certificates.HasAuthority && await db.DeviceCertificates.AnyAsync(cancellationToken))
            {
                // Another data directory than the server's (with PostgreSQL the store does not say where that is): a new
                // authority here would sign a certificate the server refuses, in a data package that does not trust it.
                await errors.WriteLineAsync($"concord: {certificates.Directory} holds no certificate authority, but this store's devices have certificates signed by one: " +
                    "run cert issue with the --data directory the server runs with");
                return 1;
            }

            // Another device's key is not overwritten: its certificate stays valid, and the operator may not have handed it
            // out yet (or has, and would hand out a key that no longer matches it).
            var outDirectory = invocation["--out"] ?? "certs";
            if (TakCertificates.DeviceFiles(member.UserName).Select(name => Path.Combine(outDirectory, name)).FirstOrDefault(File.Exists) is { } earlier)
            {
                await errors.WriteLineAsync($"concord: {earlier} exists (a certificate issued before for {member.UserName}): move that device's files away or choose another --out; nothing was issued");
                return 1;
            }

            using var certificate = certificates.IssueClient(member.UserName, TimeSpan.FromDays(days));
            var thumbprint = TakCertificates.Thumbprint(certificate);
            // The files first: a certificate recorded as issued whose key could not be written would be one nobody holds.
            var host = invocation["--host"] ?? Environment.MachineName;
            var (files, made) = certificates.Write(certificate, member.UserName, outDirectory, host, port, password, invocation.Has("--package"));
            db.DeviceCertificates.Add(new DeviceCertificate
            {
                Thumbprint = thumbprint,
                MemberId = member.Id,
                Subject = certificate.Subject,
                Serial = certificate.SerialNumber,
                IssuedAt = certificate.NotBefore.ToUniversalTime(),
                ExpiresAt = certificate.NotAfter.ToUniversalTime(),
            });
            // A device credential like a token: recorded in the audit with the certificate, never its key. Inside the chain's
            // transaction (which a disable takes too) the member is read again: one disabled since the check above gets no
            // certificate that would work again once they are enabled.
            try
            {
                await AdminCommands.SaveAuditedAsync(services, db, "certificate",
                    new { issued = thumbprint, member = member.UserName, expiresAt = certificate.NotAfter.ToUniversalTime() }, cancellationToken,
                    beforeSave: async d =>
                    {
                        if (await d.Members.AsNoTracking().AnyAsync(m => m.Id == member.Id && m.Disabled, cancellationToken))
                        {
                            throw new Http.AccessChangedException();
                        }
                    });
            }
            catch (Exception e)
            {
                // Not recorded (disabled meanwhile, or the store failed): a key for a certificate the server does not know
                // is not left for a device to be given; the shared files other devices' sets use stay.
                foreach (var file in made)
                {
                    File.Delete(file);
                }

                if (e is not Http.AccessChangedException)
                {
                    throw;
                }

                await errors.WriteLineAsync($"concord: {member.UserName} was disabled meanwhile; no certificate was issued");
                return 1;
            }
            await output.WriteLineAsync($"issued certificate {thumbprint} for {member.UserName}, valid until {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd}");
            if (certificates.EnsureServerNames([host]))
            {
                // Devices check the name they dial against the server's certificate: it now names this host too.
                await output.WriteLineAsync($"the server's TLS certificate now also names {host} (a running server uses it for new connections)");
            }

            foreach (var file in files)
            {
                await output.WriteLineAsync("  " + file);
            }

            return 0;
        }
    }

    public static async Task<int> RevokeAsync(ServiceProvider services, Invocation invocation, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using (services)
        {
            if (!await Commands.PrepareHeldStoreAsync(services, errors, cancellationToken))
            {
                return 1;
            }
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
            var thumbprint = invocation["--thumbprint"]!.Trim().ToLowerInvariant();
            var certificate = await db.DeviceCertificates.SingleOrDefaultAsync(c => c.Thumbprint == thumbprint, cancellationToken);
            if (certificate is null)
            {
                await errors.WriteLineAsync($"concord: no device certificate has the thumbprint {thumbprint}");
                return 1;
            }

            // Revoked already: nothing changes, nothing to record again.
            if (certificate.RevokedAt is null)
            {
                certificate.RevokedAt = services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
                var member = await db.Members.Where(m => m.Id == certificate.MemberId).Select(m => m.UserName).SingleOrDefaultAsync(cancellationToken);
                await AdminCommands.SaveAuditedAsync(services, db, "certificate", new { revoked = thumbprint, member }, cancellationToken);
            }

            await output.WriteLineAsync($"revoked certificate {thumbprint}; the device cannot connect any more, and a running server cuts it within 10 seconds if it is connected");
            return 0;
        }
    }
}

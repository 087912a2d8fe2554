using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Demo;
using Concord.Server.Hosting;
using Concord.Server.Organizations;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Cli;

/// <summary>Runs the verbs of the <c>concord</c> executable. Exit codes: 0 done, 1 the work failed, 2 the command line was wrong.</summary>
internal static class Commands
{
    /// <summary>
    /// Whether the command line asks for help: <c>concord help [VERB]</c>, or <c>--help</c>/<c>-h</c> where an option may
    /// stand (not as the value of an option: <c>--name help</c> names a token "help"). <paramref name="words"/> is the verb
    /// the help is for, as typed.
    /// </summary>
    internal static bool HelpAsked(string[] args, out string words)
    {
        if (args.Length > 0 && args[0] == "help")
        {
            words = string.Join(' ', args.Skip(1));
            return true;
        }

        words = string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')));
        var valued = CommandLine.Verbs.SelectMany(v => v.Options).Where(o => !o.IsFlag).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--help" or "-h" && (i == 0 || !valued.Contains(args[i - 1])))
            {
                return true;
            }
        }

        return false;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        if (HelpAsked(args, out var words))
        {
            var verb = CommandLine.Verbs.FirstOrDefault(v => v.Name == words || v.Name.StartsWith(words + " ", StringComparison.Ordinal));
            if (verb is null && words.Length > 0)
            {
                await errors.WriteLineAsync($"concord: unknown verb '{words}'");
                await errors.WriteLineAsync();
                await errors.WriteAsync(CommandLine.Usage());
                return 2;
            }

            await output.WriteAsync(CommandLine.Usage(verb is null ? null : words));
            return 0;
        }

        if (!CommandLine.TryParse(args, out var invocation, out var error))
        {
            await errors.WriteLineAsync("concord: " + error);
            await errors.WriteLineAsync();
            await errors.WriteAsync(CommandLine.Usage());
            return 2;
        }

        if (!TryBuildOptions(invocation, out var options, out error))
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, error);
        }

        if (invocation["--connection"] is { } connection && new Npgsql.NpgsqlConnectionStringBuilder(connection).Password is { Length: > 0 })
        {
            // As for --password: a serving process keeps its command line, readable by every user of the machine, for months.
            await errors.WriteLineAsync("concord: warning: the password in --connection is visible to other users of this machine while Concord runs; "
                + "keep it in a PostgreSQL password file instead (~/.pgpass, mode 0600, or Passfile=PATH in the connection string)");
        }

        if (invocation.Verb == "demo" && invocation.Has("--seed-only") && CommandLine.ServingOnly.FirstOrDefault(invocation.Has) is { } serving)
        {
            // Taken and ignored, it would look applied: --urls with --seed-only listens nowhere.
            return await CommandLine.RefuseAsync(errors, invocation.Verb, $"{serving} is for serving; --seed-only seeds the store and exits");
        }

        try
        {
            return invocation.Verb switch
            {
                "serve" => await ServeAsync(options, output, errors, seedDemo: false, cancellationToken),
                "demo" when invocation.Has("--seed-only") => await SeedDemoAsync(options, output, cancellationToken),
                "demo" => await ServeAsync(options, output, errors, seedDemo: true, cancellationToken),
                "migrate" => await MigrateAsync(options, output, cancellationToken),
                "org add" => await AddOrganizationAsync(invocation, options, output, errors, cancellationToken),
                "user add" => await AddUserAsync(invocation, options, output, errors, cancellationToken),
                "token create" => await CreateTokenAsync(invocation, options, output, errors, cancellationToken),
                "token revoke" => await RevokeTokenAsync(invocation, options, output, errors, cancellationToken),
                "cert issue" => await TakCommands.IssueAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "cert revoke" => await TakCommands.RevokeAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "user set" => await AdminCommands.SetUserAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "audit verify" => await AdminCommands.VerifyAuditAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "caveat add" => await AdminCommands.AddCaveatAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "group add" => await AdminCommands.AddGroupAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "agreement add" => await AdminCommands.AddAgreementAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                "forecast" => await EarlyWarning.ForecastCommands.RunAsync(CoreServices(options), output, errors, cancellationToken),
                "forecast evaluate" => await EarlyWarning.ForecastCommands.EvaluateAsync(invocation, output, errors, cancellationToken),
                "import" => await Import.ImportCommand.RunAsync(CoreServices(options), invocation, output, errors, cancellationToken),
                _ => throw new InvalidOperationException($"verb '{invocation.Verb}' has no handler"),
            };
        }
        catch (Microsoft.EntityFrameworkCore.DbUpdateException e)
        {
            // Another writer got there first (the same code or name added at the same moment), or a constraint of the store.
            await errors.WriteLineAsync($"concord: the store refused the change: {e.GetBaseException().Message}");
            return 1;
        }
        catch (Exception e) when (e is SchemeMismatchException or Demo.DemoSeedException or StoreBusyException or StoreTooNewException or StoreUnsuitableException or Tak.TakKeyFileException)
        {
            await errors.WriteLineAsync("concord: " + e.Message);
            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C during a migration, an import or the demo's seeding: what was committed stays, the rest was not written.
            await errors.WriteLineAsync("concord: interrupted");
            return 130;
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException)
        {
            await errors.WriteLineAsync($"concord: the store could not be used: {e.Message}");
            return 1;
        }
    }

    internal static bool TryBuildOptions(Invocation invocation, out ServerOptions options, out string error)
    {
        options = null!;
        error = "";
        var data = invocation["--data"] ?? "data";
        var storeKind = invocation["--store"] ?? "sqlite";
        StoreOptions store;
        switch (storeKind.ToLowerInvariant())
        {
            case "sqlite":
                if (invocation.Has("--connection"))
                {
                    error = "--connection is for --store postgres; SQLite uses --data DIR";
                    return false;
                }

                store = StoreOptions.Sqlite(data);
                break;
            case "postgres" or "postgresql":
                if (invocation["--connection"] is not { Length: > 0 } connection)
                {
                    error = "--store postgres needs --connection \"Host=...;Database=...;Username=...\"";
                    return false;
                }

                try
                {
                    if (new Npgsql.NpgsqlConnectionStringBuilder(connection).Database is not { Length: > 0 })
                    {
                        error = "--connection names no Database: give Database=NAME (Concord creates it when it is missing)";
                        return false;
                    }
                }
                catch (ArgumentException e)
                {
                    error = $"--connection is not a PostgreSQL connection string: {e.Message}";
                    return false;
                }

                store = StoreOptions.Postgres(connection);
                break;
            default:
                error = $"--store must be sqlite or postgres, not '{storeKind}'";
                return false;
        }

        ClassificationScheme scheme;
        try
        {
            scheme = ClassificationScheme.Named(invocation["--classification"] ?? "un");
        }
        catch (ArgumentException e)
        {
            error = e.Message.Split(" (Parameter", StringSplitOptions.None)[0];
            return false;
        }

        var urls = invocation["--urls"] ?? ServerOptions.DefaultUrls;
        if (urls.Split(';').Any(u => !Uri.TryCreate(u, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/" || uri.Query.Length > 0))
        {
            error = $"--urls '{urls}' must be http(s)://HOST:PORT (no path), several separated by ';'";
            return false;
        }

        // The web server listens on a host name's addresses only for localhost: any other name it takes for "every interface",
        // which a mission network reachable from outside the operations centre should not get by a slip.
        if (urls.Split(';').Select(u => new Uri(u).Host).FirstOrDefault(h => h != "localhost" && Uri.CheckHostName(h.Trim('[', ']')) is not (UriHostNameType.IPv4 or UriHostNameType.IPv6)) is { } name)
        {
            error = $"--urls host '{name}' is a name: the server would listen on every interface for it; give an IP address (0.0.0.0 for every interface) or localhost";
            return false;
        }

        if (!TryBuildTakOptions(invocation, urls, out var tak, out error))
        {
            return false;
        }

        var tileDirectory = invocation["--tile-dir"];
        if (tileDirectory is not null && !Directory.Exists(tileDirectory))
        {
            error = $"--tile-dir '{tileDirectory}' is not a directory";
            return false;
        }

        var tileUrl = invocation["--tile-url"];
        if (tileUrl is not null && tileDirectory is not null)
        {
            // One would be ignored: the map shows one source of tiles.
            error = "--tile-url and --tile-dir each give the map its tiles: give one";
            return false;
        }

        if (tileUrl is not null && !(tileUrl.Contains("{z}", StringComparison.Ordinal) && tileUrl.Contains("{x}", StringComparison.Ordinal) && tileUrl.Contains("{y}", StringComparison.Ordinal)))
        {
            error = $"--tile-url '{tileUrl}' must contain {{z}}, {{x}} and {{y}}";
            return false;
        }

        if (tileUrl is not null && !Http.ResponseHeaders.TryTileSource(tileUrl, out _, out var tileError))
        {
            // Pages may load images only from where the content security policy names: a host it cannot name would be blocked.
            error = $"--tile-url '{tileUrl}' {tileError}";
            return false;
        }

        var proxies = new List<System.Net.IPAddress>();
        foreach (var text in (invocation["--trusted-proxy"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!System.Net.IPAddress.TryParse(text, out var proxy))
            {
                error = $"--trusted-proxy '{text}' is not an IP address";
                return false;
            }

            proxies.Add(proxy);
        }

        options = new ServerOptions
        {
            Store = store,
            Urls = urls,
            TrustedProxies = proxies,
            DataDirectory = data,
            Classification = scheme,
            ClassificationChosen = invocation["--classification"] is not null,
            Tak = tak,
            TileUrl = tileUrl ?? (tileDirectory is null ? null : "/tiles/{z}/{x}/{y}.png"),
            TileDirectory = tileDirectory is null ? null : Path.GetFullPath(tileDirectory),
        };
        return true;
    }

    private static bool TryBuildTakOptions(Invocation invocation, string urls, out TakOptions tak, out string error)
    {
        tak = new TakOptions();
        error = "";
        string[] listenerOptions = ["--tak-address", "--tak-port", "--tak-tcp-port", "--tak-tcp-user"];
        if (invocation.Has("--no-tak"))
        {
            // No listener: an option for one would be dropped, and the operator left believing a port is open.
            if (listenerOptions.FirstOrDefault(o => invocation[o] is not null) is { } contradicting)
            {
                error = $"{contradicting} contradicts --no-tak (no TAK listener is started)";
                return false;
            }

            tak = new TakOptions { TlsPort = null, TcpPort = null };
            return true;
        }

        if (invocation["--tak-tcp-user"] is not null && invocation["--tak-tcp-port"] is null)
        {
            error = "--tak-tcp-user needs --tak-tcp-port PORT: plain TCP is off unless a port is given";
            return false;
        }

        var host = new Uri(urls.Split(';')[0]).Host;
        var addressText = invocation["--tak-address"] ?? (host is "localhost" or "" ? "127.0.0.1" : host.Trim('[', ']'));
        if (!System.Net.IPAddress.TryParse(addressText, out var address))
        {
            error = $"--tak-address '{addressText}' must be an IP address (or give --urls with an IP host)";
            return false;
        }

        int? Port(string option, int? fallback, out string problem)
        {
            problem = "";
            if (invocation[option] is not { } text)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
            {
                problem = $"{option} must be a port number (0 to 65535)";
                return null;
            }

            return port;
        }

        var tls = Port("--tak-port", TakOptions.DefaultTlsPort, out error);
        if (error.Length > 0)
        {
            return false;
        }

        var tcp = Port("--tak-tcp-port", null, out error);
        if (error.Length > 0)
        {
            return false;
        }

        if (tcp is not null && invocation["--tak-tcp-user"] is null)
        {
            error = "--tak-tcp-port needs --tak-tcp-user NAME: plain TCP connections have no certificate, so they act as one named low-privilege member";
            return false;
        }

        tak = new TakOptions
        {
            Address = address,
            TlsPort = tls,
            TcpPort = tcp,
            TcpUser = invocation["--tak-tcp-user"],
        };
        return true;
    }

    private static async Task<int> ServeAsync(ServerOptions options, TextWriter output, TextWriter errors, bool seedDemo, CancellationToken cancellationToken)
    {
        WebApplication app;
        try
        {
            app = ConcordApp.Build(options);
        }
        catch (IOException e)
        {
            // The key ring's folder (DATA/keys), made before anything starts: without it every sign-in would fail.
            await errors.WriteLineAsync($"concord: --data {options.DataDirectory} cannot be used: {e.Message}");
            return 1;
        }

        try
        {
            // Before the store is migrated or anything started on it: a second server must leave a live store alone.
            await options.Store.EnsureExistsAsync(cancellationToken);
            await app.Services.GetRequiredService<WriterLease>().AcquireAsync(cancellationToken);
        }
        catch (StoreBusyException e)
        {
            await errors.WriteLineAsync("concord: " + e.Message);
            await app.DisposeAsync();
            return 1;
        }

        if (seedDemo)
        {
            await DemoMission.RefuseAnotherMissionsStoreAsync(app.Services, cancellationToken);
        }

        await app.Services.PrepareStoreAsync(cancellationToken);

        if (seedDemo)
        {
            await DemoMission.SeedAsync(app.Services, output, cancellationToken);
        }

        var tak = app.Services.GetRequiredService<Tak.TakServer>();
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && tak.Listening.IsFaulted)
        {
            // The TAK listener failed while the web server was still starting, and its failure stopped the host: said below.
        }
        catch (Exception e) when (e is Microsoft.AspNetCore.Connections.AddressInUseException or System.Net.Sockets.SocketException
            || e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException or System.Net.Sockets.SocketException)
        {
            // Said only once it is true: "listening" is printed after the server has bound its addresses.
            await errors.WriteLineAsync($"concord: cannot listen on {options.Urls}: {e.Message}. Choose another address with --urls.");
            await app.DisposeAsync();
            return 1;
        }
        catch (Exception e) when (app.Configuration[ConcordApp.CertificatePathKey] is { Length: > 0 } certificate
            && e is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException)
        {
            // The certificate configured for HTTPS cannot be read (a wrong password, no such file, not a certificate): said
            // as such, not as a store's failure, nor as a crash with a stack trace.
            await errors.WriteLineAsync($"concord: the HTTPS certificate '{certificate}' cannot be used: {e.Message.Split('\n')[0].Trim()}");
            await app.DisposeAsync();
            return 1;
        }
        catch (InvalidOperationException e) when (options.Urls.Contains("https:", StringComparison.OrdinalIgnoreCase) && e.Message.Contains("certificate", StringComparison.OrdinalIgnoreCase))
        {
            // Kestrel's own words (no certificate configured for HTTPS); Concord serves HTTPS only with one set in its configuration.
            await errors.WriteLineAsync($"concord: cannot listen on {options.Urls}: {e.Message.Split('\n')[0].Trim()} Serve plain HTTP on loopback behind a TLS proxy (named with --trusted-proxy), or configure a certificate (Kestrel__Certificates__Default__Path and __Password in the environment).");
            await app.DisposeAsync();
            return 1;
        }

        try
        {
            // The TAK listeners bind in a background service, after the host has started: wait for them too.
            await tak.Listening.WaitAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await errors.WriteLineAsync(e is System.Net.Sockets.SocketException
                ? $"concord: cannot listen for TAK devices on {options.Tak.Address} (TLS port {options.Tak.TlsPort}{(options.Tak.TcpPort is { } tcp ? $", TCP port {tcp}" : "")}): {e.Message}. Choose another port with --tak-port, or --no-tak."
                : $"concord: the TAK listener could not start: {e.Message}. Start without it with --no-tak.");
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            return 1;
        }

        await output.WriteLineAsync($"Concord is listening on {options.Urls} ({options.Store.Describe()}). API description: {options.Urls.Split(';')[0]}/openapi/v1.json");
        await app.WaitForShutdownAsync(cancellationToken);
        // A background service that failed stops the host (it is logged); the server did not stop because it was asked
        // to, so a supervisor (systemd's Restart=on-failure) must see a failure, not the 0 of a requested stop.
        var failed = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().FirstOrDefault(s => s.ExecuteTask is { IsFaulted: true });
        await app.DisposeAsync();
        if (failed is not null)
        {
            await errors.WriteLineAsync($"concord: stopped because {failed.GetType().Name} failed: {failed.ExecuteTask!.Exception!.GetBaseException().Message}");
            return 1;
        }

        // Stopped by Ctrl+C: 130, as the README says, like the other verbs an interrupt ends; by SIGTERM, 0.
        return cancellationToken.IsCancellationRequested ? 130 : 0;
    }

    private static async Task<int> SeedDemoAsync(ServerOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        await using var services = CoreServices(options);
        // As serve does: the lease before the store is migrated, so that a running server's store is left alone.
        await options.Store.EnsureExistsAsync(cancellationToken);
        await services.GetRequiredService<WriterLease>().AcquireAsync(cancellationToken);
        await DemoMission.RefuseAnotherMissionsStoreAsync(services, cancellationToken);
        await services.PrepareStoreAsync(cancellationToken);
        await DemoMission.SeedAsync(services, output, cancellationToken);
        return 0;
    }

    private static async Task<int> MigrateAsync(ServerOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        await using var services = CoreServices(options);
        // The schema only: a store migrated before its first serve gets its scheme from the verb that first names one
        // (or from serve's default), not "un" from here.
        var applied = await services.PrepareStoreAsync(cancellationToken, schemeMatters: options.ClassificationChosen);
        await output.WriteLineAsync(applied.Count == 0
            ? $"{options.Store.Describe()}: schema is up to date"
            : $"{options.Store.Describe()}: applied {string.Join(", ", applied.Select(m => m.Name))}");
        return 0;
    }

    private static async Task<int> AddOrganizationAsync(Invocation invocation, ServerOptions options, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using var services = CoreServices(options);
        await services.PrepareStoreAsync(cancellationToken);
        await using var scope = services.CreateAsyncScope();
        var (organization, error) = await OrganizationAdmin.AddAsync(
            scope.ServiceProvider.GetRequiredService<ConcordDb>(), invocation["--code"]!, invocation["--name"]!, invocation["--kind"]!, invocation["--nation"],
            services.GetRequiredService<TimeProvider>(), cancellationToken);
        if (organization is null)
        {
            await errors.WriteLineAsync("concord: " + error);
            return 1;
        }

        await AdminCommands.SaveAuditedAsync(services, scope.ServiceProvider.GetRequiredService<ConcordDb>(), "organization", new { created = organization.Code }, cancellationToken);
        await output.WriteLineAsync($"added organisation {organization.Code} ({organization.Name}, {OrganizationKinds.Token(organization.Kind)})");
        return 0;
    }

    private static async Task<int> AddUserAsync(Invocation invocation, ServerOptions options, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        await using var services = CoreServices(options);
        // A member belongs to an organisation, which a store that is not there has none of (a mistyped --data).
        if (!await PrepareHeldStoreAsync(services, errors, cancellationToken))
        {
            return 1;
        }

        var fromEnvironment = Environment.GetEnvironmentVariable("CONCORD_PASSWORD");
        var generated = invocation["--password"] is null && string.IsNullOrEmpty(fromEnvironment);
        var password = invocation["--password"] ?? (generated ? MemberAdmin.GeneratePassword() : fromEnvironment!);
        await using var scope = services.CreateAsyncScope();
        var (member, error) = await MemberAdmin.AddAsync(
            scope.ServiceProvider.GetRequiredService<ConcordDb>(),
            new NewMember(invocation["--user"]!, invocation["--org"]!, invocation["--display"], List(invocation["--roles"]), invocation["--clearance"], List(invocation["--caveats"]), password),
            options.Classification, services.GetRequiredService<CaveatRegistry>(), services.GetRequiredService<TimeProvider>(), cancellationToken);
        if (member is null)
        {
            await errors.WriteLineAsync("concord: " + error);
            return 1;
        }

        await AdminCommands.SaveAuditedAsync(services, scope.ServiceProvider.GetRequiredService<ConcordDb>(), "member",
            new { created = member.UserName, organization = invocation["--org"]!.ToUpperInvariant(), displayName = member.DisplayName, roles = member.Roles, clearance = member.Clearance, caveats = member.Caveats },
            cancellationToken, record: member.Id);
        await output.WriteLineAsync($"added member {member.UserName} ({member.Roles}; clearance {options.Classification.Label(member.Clearance)})");
        if (generated)
        {
            await output.WriteLineAsync($"password: {password}");
        }

        if (invocation["--password"] is not null)
        {
            // Accepted (scripts use it), but a command line is readable by every user of the machine (ps, /proc) and
            // often kept in a shell's history.
            await errors.WriteLineAsync("concord: warning: --password is visible to other users of this machine while the command runs and may stay in your shell's history; give it in CONCORD_PASSWORD instead");
        }

        return 0;
    }

    private static async Task<int> CreateTokenAsync(Invocation invocation, ServerOptions options, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        var days = 90;
        if (invocation["--days"] is { } daysText && (!int.TryParse(daysText, NumberStyles.None, CultureInfo.InvariantCulture, out days) || days is < 1 or > AccountEndpoints.MaxTokenDays))
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--days must be a whole number from 1 to {AccountEndpoints.MaxTokenDays}");
        }

        var name = invocation["--name"]?.Trim() ?? "cli";
        if (!AccessTokens.IsValidName(name, out var nameError))
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, $"--name {nameError}");
        }

        await using var services = CoreServices(options);
        if (!await PrepareHeldStoreAsync(services, errors, cancellationToken))
        {
            return 1;
        }
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await FindMemberAsync(db, invocation["--user"]!, cancellationToken);
        if (member is null)
        {
            await errors.WriteLineAsync($"concord: no member is named '{invocation["--user"]}'");
            return 1;
        }

        if (member.Disabled)
        {
            await errors.WriteLineAsync($"concord: {member.UserName} is disabled; a token for them would not work (enable them with 'concord user set --enable')");
            return 1;
        }

        var (token, secret) = await AccessTokens.CreateAsync(db, services.GetRequiredService<AuditChain>(), null, member, name, TimeSpan.FromDays(days), services.GetRequiredService<TimeProvider>(), cancellationToken);
        await errors.WriteLineAsync($"token {token.Id} for {member.UserName}, expires {token.ExpiresAt:yyyy-MM-dd}; it is shown only now:");
        await output.WriteLineAsync(secret);
        return 0;
    }

    private static async Task<int> RevokeTokenAsync(Invocation invocation, ServerOptions options, TextWriter output, TextWriter errors, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(invocation["--id"], out var id))
        {
            return await CommandLine.RefuseAsync(errors, invocation.Verb, "--id must be a token id (a UUID)");
        }

        await using var services = CoreServices(options);
        if (!await PrepareHeldStoreAsync(services, errors, cancellationToken))
        {
            return 1;
        }
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var member = await FindMemberAsync(db, invocation["--user"]!, cancellationToken);
        if (member is null || !await AccessTokens.RevokeAsync(db, services.GetRequiredService<AuditChain>(), null, member.Id, id, services.GetRequiredService<TimeProvider>(), cancellationToken))
        {
            await errors.WriteLineAsync($"concord: {invocation["--user"]} has no token {id}");
            return 1;
        }

        await output.WriteLineAsync($"revoked token {id}; servers stop accepting it within {ViewerDirectory.Lifetime.TotalSeconds:0} seconds");
        return 0;
    }

    private static Task<Member?> FindMemberAsync(ConcordDb db, string userName, CancellationToken cancellationToken)
    {
        var normalized = userName.Trim().ToLowerInvariant();
        return db.Members.SingleOrDefaultAsync(m => m.UserName == normalized, cancellationToken);
    }

    /// <summary>
    /// Prepares the store of a verb that acts on what it holds (a member, a token, a certificate): a store that is not
    /// there is said, not made (a mistyped --data made an empty store, fixed to this run's classification scheme, and the
    /// verb then found no member in it). False once said.
    /// </summary>
    internal static async Task<bool> PrepareHeldStoreAsync(IServiceProvider services, TextWriter errors, CancellationToken cancellationToken, string? nothingThere = null)
    {
        if (!await StoreThereAsync(services, errors, cancellationToken, nothingThere))
        {
            return false;
        }

        await services.PrepareStoreAsync(cancellationToken);
        return true;
    }

    /// <summary>Whether the store is there; if not, says so (see <see cref="PrepareHeldStoreAsync"/>).</summary>
    /// <param name="nothingThere">What the verb would find missing, said in its place ("so no incidents to learn from").</param>
    internal static async Task<bool> StoreThereAsync(IServiceProvider services, TextWriter errors, CancellationToken cancellationToken, string? nothingThere = null)
    {
        var store = services.GetRequiredService<StoreOptions>();
        if (await store.ExistsAsync(cancellationToken))
        {
            return true;
        }

        await errors.WriteLineAsync(nothingThere is null
            ? $"concord: there is no store at {store.Describe()}, so nobody to act on: check --data (or --connection), or make one with 'concord migrate' and add members with 'concord user add'"
            : $"concord: there is no store at {store.Describe()}, so {nothingThere}: check --data (or --connection)");
        return false;
    }

    internal static ServiceProvider CoreServices(ServerOptions options)
    {
        var services = new ServiceCollection();
        // Warnings and errors on standard error: an import's "the store refused this report" points the operator there.
        services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole(console => console.SingleLine = true));
        services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        services.AddConcordCore(options);
        return services.BuildServiceProvider();
    }

    private static List<string> List(string? text) =>
        text?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList() ?? [];
}

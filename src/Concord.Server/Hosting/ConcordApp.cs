using System.Text.Json.Serialization;
using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Areas;
using Concord.Server.Audit;
using Concord.Server.Coordination;
using Concord.Server.EarlyWarning;
using Concord.Server.Fusion;
using Concord.Server.Import;
using Concord.Server.Incidents;
using Concord.Server.Organizations;
using Concord.Server.Realtime;
using Concord.Server.Reports;
using Concord.Server.Sharing;
using Concord.Server.Tak;
using Concord.Server.Ui;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Logging.Console;

namespace Concord.Server.Hosting;

/// <summary>The web application: read this file to see what Concord serves.</summary>
internal static class ConcordApp
{
    /// <summary>The largest request body read unless an endpoint sets its own limit (imports lift it).</summary>
    public const long MaxRequestBodyBytes = 1024 * 1024;

    /// <summary>Where Kestrel reads the HTTPS certificate from (<c>Kestrel__Certificates__Default__Path</c> in the environment).</summary>
    public const string CertificatePathKey = "Kestrel:Certificates:Default:Path";

    public static WebApplication Build(ServerOptions options, Action<IServiceCollection>? overrides = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.WebHost.UseUrls(options.Urls);
        // The slim builder leaves HTTPS out: an https:// address then failed with an exception rather than Kestrel's own
        // words (no certificate), and a certificate configured under Kestrel:Certificates:Default was never read.
        builder.WebHost.UseKestrelHttpsConfiguration();
        // A relative certificate path is the operator's, from where they started the server, not from the program's folder
        // (the content root), where Kestrel would look for it.
        if (builder.Configuration[CertificatePathKey] is { Length: > 0 } certificate && !Path.IsPathRooted(certificate))
        {
            builder.Configuration[CertificatePathKey] = Path.GetFullPath(certificate);
        }

        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // No body the API or the pages take is near a megabyte (JSON bodies set their own, smaller, limit; an import
            // lifts it for itself): Kestrel's default, 30 MB, let any request, signed in or not, have that much read.
            k.Limits.MaxRequestBodySize = MaxRequestBodyBytes;
        });
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        // Logs are diagnostics: they go to standard error, so that what a verb prints (sign-in names, tokens, tables) stays clean.
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
        // A failed query, command, save or connection is thrown to its caller, which logs it once (a request's failure, a
        // background loop's run of failures: Hosting/FailureRun); EF's own error lines for it doubled every failure with a
        // second and third stack trace (11,000 lines in a minute of PostgreSQL down).
        foreach (var category in new[] { "Database.Connection", "Database.Command", "Database.Transaction", "Query", "Update" })
        {
            builder.Logging.AddFilter($"Microsoft.EntityFrameworkCore.{category}", LogLevel.Critical);
        }

        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        builder.Services.AddConcordCore(options);
        // Session cookies stay valid across restarts: the key ring lives beside the data, in a folder of the owner's only.
        var keys = Path.Combine(Path.GetFullPath(options.DataDirectory), "keys");
        Data.StoreOptions.PrivateDirectory(keys);
        builder.Services.AddDataProtection().SetApplicationName("concord").PersistKeysToFileSystem(new DirectoryInfo(keys));
        builder.Services.AddConcordAuthentication();
        builder.Services.AddHttpContextAccessor();
        builder.Services.AddConcordPolicies();
        // A request in French (the UI's language cookie, or Accept-Language) is told why its input was refused in French; the
        // field names stay the API's. Reasons without a translation stay English (Ui/UiText.Reason).
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = c =>
        {
            if (c.ProblemDetails is HttpValidationProblemDetails { Errors.Count: > 0 } invalid && Ui.UiText.Language != Ui.UiText.Languages[0]
                && c.HttpContext.RequestServices.GetService<Ui.UiText>() is { } text)
            {
                foreach (var field in invalid.Errors.Keys.ToList())
                {
                    invalid.Errors[field] = [.. invalid.Errors[field].Select(text.Reason)];
                }
            }
        });
        builder.Services.AddExceptionHandler<Http.ConcurrentChange>();
        builder.Services.AddExceptionHandler<Http.StoreUnavailable>();
        // A concurrent change is a conflict the client resolves, not a failure to log.
        builder.Services.Configure<ExceptionHandlerOptions>(o => o.SuppressDiagnosticsCallback = c => c.Exception is Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException or Http.AccessChangedException);
        builder.Services.AddOpenApi(Http.ApiDescription.Configure);
        builder.Services.AddSingleton<Http.ApiDescription.DocumentCache>();
        builder.Services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        });
        builder.Services.AddSingleton<DeviceMarkings>();
        builder.Services.AddSingleton<RelayAuditor>();
        builder.Services.AddSingleton<TakRouter>();
        builder.Services.AddSingleton<TrackStore>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TrackStore>());
        // Before the TAK server: stopped after it, so the items its last moments changed are written.
        builder.Services.AddSingleton<TakItemStore>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TakItemStore>());
        builder.Services.AddSingleton<TakServer>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<TakServer>());
        builder.Services.AddHostedService<IncidentFeed>();
        builder.Services.AddConcordUi();
        builder.Services.AddHostedService<ForecastRefresher>();
        builder.Services.AddSingleton<EscalationScheduler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EscalationScheduler>());
        builder.Services.AddSingleton<IncidentRouter>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<IncidentRouter>());
        // The report writer starts with the server, and loads fusion's index before the first report (provenance needs it).
        builder.Services.AddHostedService(sp => new StartWith<Reports.ReportWriter>(sp));
        overrides?.Invoke(builder.Services);

        var app = builder.Build();
        if (options.TrustedProxies.Count > 0)
        {
            // Only the named proxies are believed: any client can send the header, and the limits per address would
            // then count whatever it says.
            // Every trusted proxy of a chain (a balancer, then nginx) is passed, to the first address none of them is: the
            // default stops after one, and every sign-in would then count against the balancer's address.
            var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto, ForwardLimit = null };
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            foreach (var proxy in options.TrustedProxies)
            {
                forwarded.KnownProxies.Add(proxy);
            }

            app.UseForwardedHeaders(forwarded);
        }

        Http.ResponseHeaders.UseResponseHeaders(app);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        // A request the server found bad as it read it (a body past its limit, sent without its length; a form cut short)
        // is answered with that status, not as a server error.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (BadHttpRequestException bad) when (!context.Response.HasStarted)
            {
                context.Response.Clear();
                context.Response.StatusCode = bad.StatusCode;
            }
        });
        app.UseConcordUiAssets();
        app.UseAuthentication();
        app.UseHeldReportLimit();
        Http.QueryReader.UseOneValueEach(app);
        Http.SameOriginChanges.UseSameOriginChanges(app);
        app.UseConcordTiles();
        app.UseAuthorization();
        app.UseAntiforgery();
        Http.ApiDescription.UseCachedDocument(app);

        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        app.MapGet("/health", Health.CheckAsync).AllowAnonymous().ExcludeFromDescription();
        app.MapAccounts();
        app.MapOrganizations();
        app.MapAreas();
        app.MapReports();
        app.MapIncidents();
        app.MapChanges();
        app.MapReleases();
        app.MapExports();
        app.MapAdministration();
        app.MapAudit();
        app.MapTracks();
        app.MapFusion();
        app.MapImports();
        app.MapEarlyWarning();
        app.MapTasks();
        app.MapRequests();
        app.MapCoordinationField();
        app.MapCoordinationViews();
        app.MapConcordUi();
        return app;
    }
}

/// <summary>Creates a singleton when the host starts instead of at its first use (its constructor starts its work).</summary>
internal sealed class StartWith<T>(IServiceProvider services) : IHostedService
    where T : notnull
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = services.GetRequiredService<T>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

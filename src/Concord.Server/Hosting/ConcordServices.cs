using Concord.Server.Access;
using Concord.Server.Accounts;
using Concord.Server.Audit;
using Concord.Server.Data;
using Concord.Server.Reports;
using Concord.Server.Tak;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Hosting;

/// <summary>The services every verb needs, with or without the web server.</summary>
internal static class ConcordServices
{
    public static IServiceCollection AddConcordCore(this IServiceCollection services, ServerOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton(options.Store);
        services.AddSingleton(options.Classification);
        services.AddSingleton(options.Clock ?? TimeProvider.System);
        services.AddSingleton<Realtime.ChangeSignal>();
        services.AddSingleton<ChangeFeedInterceptor>();
        services.AddSingleton<Realtime.ChangeCommitInterceptor>();
        services.AddDbContextPool<ConcordDb>((provider, builder) =>
        {
            options.Store.Configure(builder);
            builder.AddInterceptors(provider.GetRequiredService<ChangeFeedInterceptor>(), provider.GetRequiredService<Realtime.ChangeCommitInterceptor>());
            builder.UseQueryTrackingBehavior(QueryTrackingBehavior.TrackAll);
        });
        services.AddSingleton<CaveatRegistry>();
        services.AddSingleton<MarkingFormat>();
        services.AddSingleton<MissionDirectory>();
        services.AddSingleton<DeploymentKeys>();
        services.AddSingleton(sp => sp.GetRequiredService<DeploymentKeys>().Cursors);
        services.AddSingleton<ViewerDirectory>();
        services.AddSingleton<SignInThrottle>();
        services.AddSingleton<SignInDevices>();
        services.AddSingleton<AuditChain>();
        services.AddSingleton<AuditWriter>();
        services.AddSingleton<Probes>();
        services.AddSingleton<Fusion.FusionEngine>();
        services.AddSingleton<Incidents.IncidentGate>();
        services.AddSingleton<Import.Importer>();
        services.AddSingleton<Import.ImportSlots>();
        services.AddScoped<Incidents.IncidentCorrections>();
        services.AddScoped<EarlyWarning.ForecastService>();
        services.AddSingleton<EarlyWarning.ForecastHistoryCache>();
        services.AddScoped<Coordination.CoordinationDesk>();
        services.AddSingleton<WalCheckpointer>();
        services.AddSingleton<WriterLease>();
        services.AddSingleton<ReportWriter>();
        services.AddScoped<ReportIntake>();
        services.AddSingleton(options.Tak);
        services.AddSingleton<TakCertificates>();
        return services;
    }

    /// <summary>Creates the database if needed, applies migrations, seeds reference data, loads the directory and the deployment's keys and starts the store's background checkpoints.</summary>
    /// <param name="schemeMatters">False for a verb that sets no markings and was given no scheme: the store's scheme is neither checked nor recorded.</param>
    public static async Task<IReadOnlyList<Migrator.Migration>> PrepareStoreAsync(this IServiceProvider services, CancellationToken cancellationToken, bool schemeMatters = true)
    {
        var store = services.GetRequiredService<StoreOptions>();
        await store.EnsureExistsAsync(cancellationToken);
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ConcordDb>();
        var applied = await Migrator.MigrateAsync(db, store.Kind, services.GetRequiredService<TimeProvider>(), cancellationToken);
        await ReferenceData.EnsureAsync(db, schemeMatters ? services.GetRequiredService<ClassificationScheme>() : null, cancellationToken);
        await services.GetRequiredService<MissionDirectory>().ReloadAsync(force: true, cancellationToken);
        await services.GetRequiredService<DeploymentKeys>().LoadAsync(cancellationToken);
        services.GetRequiredService<WalCheckpointer>().Start();
        return applied;
    }
}

using Microsoft.AspNetCore.Authorization;

namespace Concord.Server.Access;

/// <summary>
/// Authorisation policies, one per role. Each endpoint declares one (or the default: any signed-in member), and a test walks
/// every endpoint to check it does. The role check reads the resolved <see cref="Viewer"/>, so it follows role changes
/// within the viewer cache's lifetime.
/// </summary>
internal static class Policies
{
    public const string Analyst = "analyst";
    public const string Releaser = "releaser";
    public const string Auditor = "auditor";
    public const string OrganizationAdmin = "org-admin";
    public const string MissionAdmin = "mission-admin";

    public static IServiceCollection AddConcordPolicies(this IServiceCollection services)
    {
        services.AddSingleton<IAuthorizationHandler, RoleHandler>();
        services.AddAuthorizationBuilder()
            .AddPolicy(Analyst, p => p.RequireAuthenticatedUser().AddRequirements(new RoleRequirement([MemberRoles.Analyst])))
            .AddPolicy(Releaser, p => p.RequireAuthenticatedUser().AddRequirements(new RoleRequirement([MemberRoles.Releaser])))
            .AddPolicy(Auditor, p => p.RequireAuthenticatedUser().AddRequirements(new RoleRequirement([MemberRoles.Auditor])))
            .AddPolicy(OrganizationAdmin, p => p.RequireAuthenticatedUser().AddRequirements(new RoleRequirement([MemberRoles.OrganizationAdmin, MemberRoles.MissionAdmin])))
            .AddPolicy(MissionAdmin, p => p.RequireAuthenticatedUser().AddRequirements(new RoleRequirement([MemberRoles.MissionAdmin])));
        return services;
    }

    internal sealed record RoleRequirement(IReadOnlyList<string> AnyOf) : IAuthorizationRequirement;

    private sealed class RoleHandler(IHttpContextAccessor accessor) : AuthorizationHandler<RoleRequirement>
    {
        protected override async Task HandleRequirementAsync(AuthorizationHandlerContext context, RoleRequirement requirement)
        {
            var http = accessor.HttpContext ?? (context.Resource as HttpContext);
            if (http is not null && await ViewerBinding.ResolveAsync(http) is { } viewer && requirement.AnyOf.Any(viewer.HasRole))
            {
                context.Succeed(requirement);
            }
        }
    }
}

using Concord.Server.Data;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Concord.Server.Organizations;

internal static class OrganizationEndpoints
{
    public static RouteGroupBuilder MapOrganizations(this IEndpointRouteBuilder app)
    {
        // Which organisations take part in the mission is shared knowledge among its members.
        var group = app.MapGroup("/api/organizations").WithTags("Organizations").RequireAuthorization();
        group.MapGet("/", (MissionDirectory directory) => TypedResults.Ok(directory.Organizations.OrderBy(o => o.Name).Select(o => o.ToDto()).ToList()))
            .WithSummary("The organisations of the mission.");
        group.MapGet("/{code}", Results<Ok<OrganizationDto>, NotFound> (string code, MissionDirectory directory) =>
            directory.Organizations.FirstOrDefault(o => string.Equals(o.Code, code, StringComparison.OrdinalIgnoreCase)) is { } o
                ? TypedResults.Ok(o.ToDto())
                : TypedResults.NotFound())
            .WithSummary("One organisation by code.");
        return group;
    }
}

using Concord.Server.Access;

namespace Concord.Server.Organizations;

internal sealed class Organization : Realtime.IFeedEntity
{
    public string FeedName => "organization";

    public required Guid Id { get; init; }

    /// <summary>Short, stable code used in releasability (<c>org:CODE</c>); never changes once records name it.</summary>
    public required string Code { get; init; }

    public required string Name { get; set; }

    public required OrganizationKind Kind { get; set; }

    /// <summary>ISO 3166-1 alpha-3 of the contributing nation, where there is one.</summary>
    public string? Nation { get; set; }

    public required DateTime CreatedAt { get; init; }
}

internal sealed record OrganizationDto(Guid Id, string Code, string Name, string Kind, string? Nation);

internal static class OrganizationMapping
{
    public static OrganizationDto ToDto(this Organization o) =>
        new(o.Id, o.Code, o.Name, OrganizationKinds.Token(o.Kind), o.Nation);
}

namespace Concord.Server.Sharing;

/// <summary>A named community of organisations (e.g. a protection working group), managed by its owner organisation.</summary>
internal sealed class SharingGroup : Realtime.IFeedEntity
{
    public string FeedName => "group";

    public required Guid Id { get; init; }

    public required string Code { get; init; }

    public required string Name { get; set; }

    public required Guid OwnerOrganizationId { get; init; }

    public required DateTime CreatedAt { get; init; }
}

internal sealed class SharingGroupMember
{
    public required Guid GroupId { get; init; }

    public required Guid OrganizationId { get; init; }
}

internal sealed class Setting
{
    public const string ClassificationScheme = "classification-scheme";

    public required string Key { get; init; }

    public required string Value { get; set; }
}

namespace Concord.Server.Reports;

/// <summary>A node of the data-driven taxonomy (ACLED, UCDP, protection of civilians, OCHA access constraints …).</summary>
internal sealed class Category
{
    public required string Code { get; init; }

    public string? Parent { get; set; }

    public required string Scheme { get; set; }

    public required string Label { get; set; }

    public required string LabelFr { get; set; }

    public required string Description { get; set; }
}

internal sealed record CategoryDto(string Code, string? Parent, string Scheme, string Label, string LabelFr, string Description);

namespace Concord.Server.Access;

internal enum OrganizationKind
{
    Military,
    Police,
    Civilian,
    Humanitarian,
    Intelligence,
    LocalAuthority,
    Community,
    RegionalOrganization,
}

internal static class OrganizationKinds
{
    public static readonly IReadOnlyList<OrganizationKind> All = Enum.GetValues<OrganizationKind>();

    private static readonly Dictionary<string, OrganizationKind> ByToken =
        All.ToDictionary(Token, k => k, StringComparer.OrdinalIgnoreCase);

    public static string Token(OrganizationKind kind) => kind switch
    {
        OrganizationKind.Military => "military",
        OrganizationKind.Police => "police",
        OrganizationKind.Civilian => "civilian",
        OrganizationKind.Humanitarian => "humanitarian",
        OrganizationKind.Intelligence => "intelligence",
        OrganizationKind.LocalAuthority => "local-authority",
        OrganizationKind.Community => "community",
        OrganizationKind.RegionalOrganization => "regional-organization",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool TryParse(string token, out OrganizationKind kind) => ByToken.TryGetValue(token.Trim(), out kind);
}

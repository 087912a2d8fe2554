namespace Concord.Server.Http;

/// <summary>
/// Reads a value of an enum from one of its names, in any case, and from nothing else: <see cref="Enum.TryParse{TEnum}(string?, bool, out TEnum)"/>
/// also takes numbers and comma-separated lists of names, which it ORs together ("reported,verified" is verified).
/// </summary>
internal static class EnumNames
{
    public static bool TryParse<T>(string? text, out T value)
        where T : struct, Enum
    {
        foreach (var (name, candidate) in Names<T>.All)
        {
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase))
            {
                value = candidate;
                return true;
            }
        }

        value = default;
        return false;
    }

    private static class Names<T>
        where T : struct, Enum
    {
        public static readonly (string Name, T Value)[] All = [.. Enum.GetValues<T>().Select(v => (Enum.GetName(v)!, v))];
    }
}

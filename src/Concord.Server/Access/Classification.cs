namespace Concord.Server.Access;

/// <summary>
/// An ordered set of classification levels. Levels are stored as their index, so ordering in SQL is integer ordering.
/// The UN scheme (ST/SGB/2007/6) is the default; a deployment may choose another.
/// </summary>
internal sealed class ClassificationScheme
{
    public static readonly ClassificationScheme Un = new("un", ["UNCLASSIFIED", "CONFIDENTIAL", "STRICTLY CONFIDENTIAL"]);

    public static readonly ClassificationScheme Nato = new("nato", ["NATO UNCLASSIFIED", "NATO RESTRICTED", "NATO CONFIDENTIAL", "NATO SECRET"]);

    private readonly Dictionary<string, int> _byLabel;

    public ClassificationScheme(string name, IReadOnlyList<string> levels)
    {
        Name = name;
        Levels = levels;
        _byLabel = levels.Select((label, index) => (label, index)).ToDictionary(x => x.label, x => x.index, StringComparer.OrdinalIgnoreCase);
    }

    public string Name { get; }

    public IReadOnlyList<string> Levels { get; }

    public int Highest => Levels.Count - 1;

    public static ClassificationScheme Named(string name) => name.ToLowerInvariant() switch
    {
        "un" => Un,
        "nato" => Nato,
        _ => throw new ArgumentException($"unknown classification scheme '{name}' (known: un, nato)", nameof(name)),
    };

    public bool TryParse(string label, out int level) => _byLabel.TryGetValue(label.Trim(), out level);

    public string Label(int level) => level >= 0 && level < Levels.Count ? Levels[level] : $"LEVEL {level}";
}

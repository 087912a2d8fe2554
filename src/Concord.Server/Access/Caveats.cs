using System.Collections.Frozen;
using System.Text.RegularExpressions;

namespace Concord.Server.Access;

/// <summary>A compartment: a member must hold every caveat on a record to read it. Each has a bit in the record's caveat set.</summary>
internal sealed class Caveat
{
    public const string SourceProtected = "SOURCE-PROTECTED";
    public const string DeconflictionOnly = "DECONFLICTION-ONLY";

    public required string Code { get; init; }

    public required int Bit { get; init; }

    public required string Description { get; set; }
}

/// <summary>
/// The deployment's caveats and their bits, read once from the store. A deployment has at most 63 caveats:
/// compartments are few by design, and a 64-bit set keeps the access check a single integer operation in SQL.
/// </summary>
internal sealed partial class CaveatRegistry
{
    public const int MaxCaveats = 63;

    private FrozenDictionary<string, int> _bitByCode = FrozenDictionary<string, int>.Empty;
    private string[] _codeByBit = new string[MaxCaveats];

    public IReadOnlyCollection<string> Codes => _bitByCode.Keys;

    public void Load(IEnumerable<Caveat> caveats)
    {
        var byBit = new string[MaxCaveats];
        foreach (var caveat in caveats)
        {
            byBit[caveat.Bit] = caveat.Code;
        }

        _codeByBit = byBit;
        _bitByCode = caveats.ToFrozenDictionary(c => c.Code, c => c.Bit, StringComparer.OrdinalIgnoreCase);
    }

    public bool TryGetBits(IEnumerable<string> codes, out long bits, out string unknown)
    {
        bits = 0;
        unknown = "";
        foreach (var code in codes)
        {
            // A JSON list may hold nulls whatever the declared type says: one is a code no caveat has.
            if (code is null || !_bitByCode.TryGetValue(code.Trim(), out var bit))
            {
                unknown = code ?? "null";
                return false;
            }

            bits |= 1L << bit;
        }

        return true;
    }

    /// <summary>Whether every code names a caveat this node knows (a null or blank one counts as known: it is refused as such).</summary>
    public bool KnowsAll(IEnumerable<string?> codes) => codes.All(code => string.IsNullOrWhiteSpace(code) || _bitByCode.ContainsKey(code.Trim()));

    public long Bits(IEnumerable<string> codes) =>
        TryGetBits(codes, out var bits, out var unknown) ? bits : throw new ArgumentException($"unknown caveat '{unknown}'", nameof(codes));

    public IReadOnlyList<string> CodesOf(long bits)
    {
        var codes = new List<string>();
        for (var bit = 0; bit < MaxCaveats; bit++)
        {
            if ((bits & (1L << bit)) != 0)
            {
                codes.Add(_codeByBit[bit] ?? $"CAVEAT-{bit}");
            }
        }

        return codes;
    }

    public static bool IsValidCode(string code) => CodePattern().IsMatch(code);

    [GeneratedRegex(@"^[A-Z0-9][A-Z0-9-]{1,39}\z")]
    private static partial Regex CodePattern();
}

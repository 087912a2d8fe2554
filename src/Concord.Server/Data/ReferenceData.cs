using System.Text.Json;
using Concord.Server.Access;
using Concord.Server.Reports;
using Concord.Server.Sharing;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Data;

/// <summary>Seeds what every deployment starts with: the category taxonomy (from taxonomy.json) and the standard caveats.</summary>
internal static class ReferenceData
{
    private sealed record TaxonomyFile(int Version, List<TaxonomyEntry> Categories);

    private sealed record TaxonomyEntry(string Code, string? Parent, string Scheme, string Label, string LabelFr, string Description);

    public static readonly IReadOnlyList<(string Code, string Description)> StandardCaveats =
    [
        (Caveat.SourceProtected, "Reveals or could reveal a protected source (informant, community contact)."),
        (Caveat.DeconflictionOnly, "Humanitarian data shared only to deconflict military operations, never for targeting or intelligence."),
    ];

    public static IReadOnlyList<Category> Taxonomy()
    {
        using var stream = typeof(ReferenceData).Assembly.GetManifestResourceStream("taxonomy.json")
            ?? throw new InvalidOperationException("taxonomy.json is not embedded");
        var file = JsonSerializer.Deserialize<TaxonomyFile>(stream, JsonSerializerOptions.Web)
            ?? throw new InvalidOperationException("taxonomy.json is empty");
        return file.Categories.Select(e => new Category
        {
            Code = e.Code,
            Parent = e.Parent,
            Scheme = e.Scheme,
            Label = e.Label,
            LabelFr = e.LabelFr,
            Description = e.Description,
        }).ToList();
    }

    /// <param name="scheme">The scheme the verb runs with; null for one that sets no markings (migrate): neither checked nor recorded.</param>
    public static async Task EnsureAsync(ConcordDb db, ClassificationScheme? scheme, CancellationToken cancellationToken)
    {
        // Levels are stored as numbers: a deployment keeps the scheme it started with, or every marking would change meaning.
        var stored = await db.Settings.SingleOrDefaultAsync(s => s.Key == Setting.ClassificationScheme, cancellationToken);
        if (scheme is not null && stored is null)
        {
            db.Settings.Add(new Setting { Key = Setting.ClassificationScheme, Value = scheme.Name });
        }
        else if (scheme is not null && stored!.Value != scheme.Name)
        {
            throw new SchemeMismatchException($"this deployment uses the '{stored.Value}' classification scheme; it cannot be served with '{scheme.Name}' (use --classification {stored.Value})");
        }

        var known = await db.Categories.ToDictionaryAsync(c => c.Code, cancellationToken);
        foreach (var category in Taxonomy())
        {
            if (known.TryGetValue(category.Code, out var existing))
            {
                existing.Parent = category.Parent;
                existing.Scheme = category.Scheme;
                existing.Label = category.Label;
                existing.LabelFr = category.LabelFr;
                existing.Description = category.Description;
            }
            else
            {
                db.Categories.Add(category);
            }
        }

        var caveats = await db.Caveats.ToListAsync(cancellationToken);
        foreach (var (code, description) in StandardCaveats)
        {
            if (caveats.All(c => c.Code != code))
            {
                var bit = Enumerable.Range(0, CaveatRegistry.MaxCaveats).First(b => caveats.All(c => c.Bit != b));
                var caveat = new Caveat { Code = code, Bit = bit, Description = description };
                caveats.Add(caveat);
                db.Caveats.Add(caveat);
            }
        }

        await db.SaveChangesAsync(cancellationToken);
    }
}

internal sealed class SchemeMismatchException(string message) : Exception(message);

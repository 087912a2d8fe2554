using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Ui;

/// <summary>Category labels in English and French for pages, read once from the taxonomy in the store.</summary>
internal sealed class CategoryLabels(IServiceScopeFactory scopes)
{
    private readonly Lazy<IReadOnlyDictionary<string, (string En, string Fr)>> _labels = new(() =>
    {
        using var scope = scopes.CreateScope();
        return scope.ServiceProvider.GetRequiredService<ConcordDb>().Categories.AsNoTracking()
            .ToDictionary(c => c.Code, c => (c.Label, c.LabelFr), StringComparer.Ordinal);
    });

    public string Label(string code, string language) =>
        _labels.Value.TryGetValue(code, out var label) ? (language == "fr" ? label.Fr : label.En) : code;
}

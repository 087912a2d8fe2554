using Concord.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Ui;

/// <summary>Category labels in English and French for pages, read once from the taxonomy in the store.</summary>
internal sealed class CategoryLabels(IServiceScopeFactory scopes)
{
    // Publication only: a first read that fails (the store failing over) is tried again by the next page, not kept as the
    // answer of every page until the server restarts (as the default mode keeps a failed initialisation's exception).
    private readonly Lazy<IReadOnlyDictionary<string, (string En, string Fr)>> _labels = new(() =>
    {
        using var scope = scopes.CreateScope();
        return scope.ServiceProvider.GetRequiredService<ConcordDb>().Categories.AsNoTracking()
            .ToDictionary(c => c.Code, c => (c.Label, c.LabelFr), StringComparer.Ordinal);
    }, LazyThreadSafetyMode.PublicationOnly);

    public string Label(string code, string language) =>
        _labels.Value.TryGetValue(code, out var label) ? (language == "fr" ? label.Fr : label.En) : code;
}

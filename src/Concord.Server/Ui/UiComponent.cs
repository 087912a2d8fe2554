using Concord.Server.Access;
using Microsoft.AspNetCore.Components;
using Microsoft.EntityFrameworkCore;

namespace Concord.Server.Ui;

/// <summary>A server-rendered page or part of one, with the request and the signed-in member at hand.</summary>
public abstract class UiComponent : ComponentBase
{
    /// <summary>The request being rendered (static server rendering always has one).</summary>
    [CascadingParameter]
    public HttpContext? HttpContext { get; set; }

    [Inject]
    private IHttpContextAccessor Accessor { get; set; } = null!;

    private protected HttpContext Http => HttpContext ?? Accessor.HttpContext ?? throw new InvalidOperationException("no request to render");

    /// <summary>The signed-in member as a viewer (null only on anonymous pages).</summary>
    private protected Task<Viewer?> ViewerAsync() => ViewerBinding.ResolveAsync(Http).AsTask();

    private protected T Service<T>()
        where T : notnull => Http.RequestServices.GetRequiredService<T>();
}

/// <summary>One entry of the taxonomy for pickers, labelled in the page's language.</summary>
public sealed record CategoryOption(string Code, string? Parent, string Scheme, string Label)
{
    internal static async Task<List<CategoryOption>> AllAsync(Data.ConcordDb db, CancellationToken cancellationToken)
    {
        var french = UiText.Language == "fr";
        return await db.Categories.AsNoTracking().OrderBy(c => c.Code)
            .Select(c => new CategoryOption(c.Code, c.Parent, c.Scheme, french ? c.LabelFr : c.Label))
            .ToListAsync(cancellationToken);
    }
}

using System.Globalization;
using System.Text.Json;

namespace Concord.Server.Ui;

/// <summary>
/// The UI's strings in every language it speaks, from <c>Ui/Strings/{language}.json</c>. Pages ask for a key and get it in
/// the request's UI culture (chosen by the language switch, a cookie, or the browser's Accept-Language).
/// </summary>
internal sealed class UiText
{
    public static readonly IReadOnlyList<string> Languages = ["en", "fr"];

    public static readonly IReadOnlyList<CultureInfo> Cultures = [CultureInfo.GetCultureInfo("en-GB"), CultureInfo.GetCultureInfo("fr-FR")];

    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _byLanguage = new(StringComparer.Ordinal);

    public UiText()
    {
        var assembly = typeof(UiText).Assembly;
        foreach (var language in Languages)
        {
            using var stream = assembly.GetManifestResourceStream($"ui-strings/{language}.json")
                ?? throw new InvalidOperationException($"the UI strings for '{language}' are not embedded");
            _byLanguage[language] = JsonSerializer.Deserialize<Dictionary<string, string>>(stream)
                ?? throw new InvalidOperationException($"the UI strings for '{language}' are empty");
        }
    }

    /// <summary>The current request's language: one of <see cref="Languages"/>.</summary>
    public static string Language => CultureInfo.CurrentUICulture.TwoLetterISOLanguageName is var l && Languages.Contains(l) ? l : Languages[0];

    public string this[string key] => Strings(Language).TryGetValue(key, out var text) ? text : Strings(Languages[0]).GetValueOrDefault(key, $"[{key}]");

    /// <summary>A string with arguments formatted in the current culture.</summary>
    public string Format(string key, params object[] arguments) => string.Format(CultureInfo.CurrentCulture, this[key], arguments);

    public IReadOnlyDictionary<string, string> Strings(string language) => _byLanguage[language];

    /// <summary>The strings scripts need (keys starting with "js."), for the page to hand to them.</summary>
    public IReadOnlyDictionary<string, string> ScriptStrings() =>
        Strings(Language).Where(p => p.Key.StartsWith("js.", StringComparison.Ordinal)).ToDictionary(p => p.Key[3..], p => p.Value, StringComparer.Ordinal);
}

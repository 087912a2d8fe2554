using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Concord.Server.Ui;

/// <summary>
/// The UI's strings in every language it speaks, from <c>Ui/Strings/{language}.json</c>. Pages ask for a key and get it in
/// the request's UI culture (chosen by the language switch, a cookie, or the browser's Accept-Language).
/// </summary>
internal sealed partial class UiText
{
    public static readonly IReadOnlyList<string> Languages = ["en", "fr"];

    public static readonly IReadOnlyList<CultureInfo> Cultures = [CultureInfo.GetCultureInfo("en-GB"), CultureInfo.GetCultureInfo("fr-FR")];

    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _byLanguage = new(StringComparer.Ordinal);

    /// <summary>The server's validation reasons as patterns (from the "reason." strings of the first language), with their keys.</summary>
    private readonly List<(Regex Pattern, string Key)> _reasons = [];

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

        // The most literal text first: "at most {0} characters" must not take "at most 100 decisions, each 1 to 4000 characters".
        foreach (var (key, english) in Strings(Languages[0]).Where(p => p.Key.StartsWith(ReasonPrefix, StringComparison.Ordinal))
            .OrderByDescending(p => Placeholder().Replace(p.Value, "").Length).ThenBy(p => p.Key, StringComparer.Ordinal))
        {
            // {0}, {1}…: any text, given back in the same place of the translation.
            var pattern = EscapedPlaceholder().Replace(Regex.Escape(english), m => $"(?<a{m.Groups[1].Value}>.+?)");
            _reasons.Add((new Regex("^" + pattern + "$", RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100)), key));
        }
    }

    private const string ReasonPrefix = "reason.";

    private const int MaxReasonLength = 1000;

    /// <summary>A placeholder ({0}) of a string.</summary>
    [GeneratedRegex(@"\{(\d)\}")]
    private static partial Regex Placeholder();

    /// <summary>A placeholder as <see cref="Regex.Escape"/> leaves it (\{0}).</summary>
    [GeneratedRegex(@"\\\{(\d)\}")]
    private static partial Regex EscapedPlaceholder();

    /// <summary>
    /// A validation reason as the server states it (in English, as the API gives it to scripts) in the current language. Each
    /// "reason." string of the first language is the pattern of one reason, its placeholders standing for the record's own
    /// values (a code, a figure), which are given back unchanged in that reason's translation. A reason no pattern matches
    /// stays as it is.
    /// </summary>
    public string Reason(string reason)
    {
        // A reason quoting a long value (up to a whole request body) is left as it is rather than matched at length.
        if (Language == Languages[0] || reason.Length > MaxReasonLength)
        {
            return reason;
        }

        try
        {
            foreach (var (pattern, key) in _reasons)
            {
                if (pattern.Match(reason) is { Success: true } match)
                {
                    return Placeholder().Replace(Strings(Language)[key], m => match.Groups["a" + m.Groups[1].Value].Value);
                }
            }
        }
        catch (RegexMatchTimeoutException)
        {
            // Said in English rather than not at all.
        }

        return reason;
    }

    /// <summary>
    /// A filter's refusal as a list page shows it: the field by its label on the page's form (the API's name for one the
    /// form does not show), each reason in the page's language.
    /// </summary>
    public string FilterError(string field, IEnumerable<string> reasons) =>
        field == NoField ? string.Join("; ", reasons.Select(Reason))
        : Format("filter.error", FilterLabels.TryGetValue(field, out var key) ? this[key] : field, string.Join("; ", reasons.Select(Reason)));

    /// <summary>The key of a list page's refusal that is about no field (its session ended): said as a sentence.</summary>
    public const string NoField = "";

    private static readonly Dictionary<string, string> FilterLabels = new(StringComparer.Ordinal)
    {
        ["q"] = "filter.text",
        ["category"] = "filter.category",
        ["status"] = "filter.status",
        ["from"] = "filter.from",
        ["to"] = "filter.to",
    };

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

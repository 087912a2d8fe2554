using System.Globalization;
using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Ui;

/// <summary>
/// The report form's fields as the browser sends them (text), turned into the API's <see cref="CreateReport"/> with an
/// error per field that is not a number or a time. Numbers and times are read in the invariant culture: the browser sends
/// them so whatever the page's language.
/// </summary>
public sealed class ReportForm
{
    /// <summary>The form's element for each field name the API's validation uses.</summary>
    internal static readonly IReadOnlyDictionary<string, string> FieldIds = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["observedAt"] = "r-observed",
        ["observedPrecision"] = "r-observed-precision",
        ["location"] = "r-lat",
        ["location.latitude"] = "r-lat",
        ["location.longitude"] = "r-lon",
        ["location.precisionMeters"] = "r-precision",
        ["location.area"] = "r-area",
        ["category"] = "r-category",
        ["casualties.killedCivilian"] = "r-killed-civilian",
        ["casualties.killedOther"] = "r-killed-other",
        ["casualties.injuredCivilian"] = "r-injured-civilian",
        ["casualties.injuredOther"] = "r-injured-other",
        ["narrative"] = "r-narrative",
        ["language"] = "r-language",
        ["source.reliability"] = "r-reliability",
        ["source.credibility"] = "r-credibility",
        ["source.description"] = "r-source",
        ["source.protectedIdentity"] = "r-protected",
        ["marking"] = "r-marking",
        ["marking.classification"] = "r-classification",
        ["marking.releasableTo"] = "r-marking",
        ["marking.caveats"] = "r-marking",
        ["tlp"] = "r-tlp",
    };

    /// <summary>The report's client-side id: rendered with the form, so that sending it twice creates one report.</summary>
    public string? Id { get; set; }

    public string? ObservedAt { get; set; }

    public string? ObservedPrecision { get; set; }

    public string? Latitude { get; set; }

    public string? Longitude { get; set; }

    public string? PrecisionMeters { get; set; }

    public string? Area { get; set; }

    public string? Category { get; set; }

    public string? KilledCivilian { get; set; }

    public string? KilledOther { get; set; }

    public string? InjuredCivilian { get; set; }

    public string? InjuredOther { get; set; }

    public string? Narrative { get; set; }

    public string? Language { get; set; }

    public string? Reliability { get; set; }

    public string? Credibility { get; set; }

    public string? SourceDescription { get; set; }

    public string? ProtectedIdentity { get; set; }

    /// <summary>"agreement" (the organisation's agreements decide) or "explicit".</summary>
    public string? MarkingMode { get; set; }

    public string? Classification { get; set; }

    public string? Tlp { get; set; }

    public static ReportForm Fresh(DateTimeOffset now, string language) => new()
    {
        Id = Guid.NewGuid().ToString("D"),
        ObservedAt = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture),
        ObservedPrecision = "hour",
        PrecisionMeters = "100",
        Language = language,
        Reliability = "C",
        Credibility = "3",
        MarkingMode = "agreement",
    };

    internal (CreateReport Request, Dictionary<string, string[]> Errors) ToRequest(IReadOnlyCollection<string> releasableTo, IReadOnlyCollection<string> caveats)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        Guid? id = Guid.TryParse(Id, out var parsedId) ? parsedId : null;
        if (id is null)
        {
            errors["id"] = ["the form has no report id: reload the page"];
        }

        DateTimeOffset? observed = null;
        if (DateTime.TryParseExact(ObservedAt, ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss"], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
        {
            observed = new DateTimeOffset(at, TimeSpan.Zero);
        }
        else
        {
            errors["observedAt"] = ["is required: a date and time (UTC)"];
        }

        var latitude = Number(Latitude, "location.latitude", errors, required: true);
        var longitude = Number(Longitude, "location.longitude", errors, required: true);
        var precision = Number(PrecisionMeters, "location.precisionMeters", errors, required: false);
        var credibility = Number(Credibility, "source.credibility", errors, required: false);
        CasualtyRange? Count(string? text, string field) => Number(text, "casualties." + field, errors, required: false) is { } n
            ? (n == Math.Floor(n) ? new CasualtyRange((int)Math.Min(n, int.MaxValue), (int)Math.Min(n, int.MaxValue), (int)Math.Min(n, int.MaxValue)) : Error(field))
            : null;
        CasualtyRange? Error(string field)
        {
            errors["casualties." + field] = ["must be a whole number"];
            return null;
        }

        var casualties = new CasualtiesInput(Count(KilledCivilian, "killedCivilian"), Count(KilledOther, "killedOther"), Count(InjuredCivilian, "injuredCivilian"), Count(InjuredOther, "injuredOther"));
        var request = new CreateReport
        {
            Id = id,
            ObservedAt = observed,
            ObservedPrecision = Blank(ObservedPrecision),
            Location = new LocationInput(latitude, longitude, precision, Blank(Area)),
            Category = Blank(Category),
            Casualties = casualties,
            // A browser sends a text area's line breaks as CRLF but counts each as one character against its maxlength: as
            // sent, a narrative the form let the member type in full could be refused as too long. Stored as the API's are, with LF.
            Narrative = (Narrative ?? "").Replace("\r\n", "\n", StringComparison.Ordinal),
            Language = Blank(Language),
            Source = new SourceInput(Blank(Reliability), credibility is { } c ? (int)c : null, Blank(SourceDescription), Blank(ProtectedIdentity)),
            Marking = MarkingMode == "explicit" ? new MarkingDto(Classification ?? "", [.. releasableTo], [.. caveats]) : null,
            Tlp = MarkingMode == "explicit" ? Blank(Tlp) : null,
        };
        return (request, errors);
    }

    private static string? Blank(string? text) => string.IsNullOrWhiteSpace(text) ? null : text.Trim();

    private static double? Number(string? text, string field, Dictionary<string, string[]> errors, bool required)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            if (required)
            {
                errors[field] = ["is required"];
            }

            return null;
        }

        if (double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value))
        {
            return value;
        }

        errors[field] = [$"'{text.Trim()}' is not a number (use a point for decimals, e.g. 4.3612)"];
        return null;
    }
}

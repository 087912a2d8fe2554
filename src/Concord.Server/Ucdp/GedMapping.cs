using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Concord.Server.Access;
using Concord.Server.Reports;

namespace Concord.Server.Ucdp;

/// <summary>Maps a GED event to a Concord report request. The report id is derived from the GED id, so importing twice never duplicates.</summary>
internal static partial class GedMapping
{
    public const string Dataset = "ucdp-ged";

    public static string Category(int typeOfViolence) => typeOfViolence switch
    {
        1 => "ucdp.state-based",
        2 => "ucdp.non-state",
        3 => "ucdp.one-sided",
        _ => throw new ArgumentOutOfRangeException(nameof(typeOfViolence)),
    };

    /// <summary>GED date_prec: 1 exact day, 2 within 2–6 days, 3 within a week, 4 within a month, 5 within a year.</summary>
    public static TimePrecision Precision(int datePrecision) => datePrecision switch
    {
        1 => TimePrecision.Day,
        2 => TimePrecision.Days,
        3 => TimePrecision.Week,
        4 => TimePrecision.Month,
        _ => TimePrecision.Year,
    };

    /// <summary>
    /// GED where_prec to an uncertainty radius in metres: exact place, within 25 km, admin-2, admin-1, then 5, a place larger
    /// than an admin-1 region but smaller than the country ("northern Central African Republic"), a linear feature or
    /// between two places (so wider than an admin-1's radius, which it used to be given less of), then country and waters.
    /// </summary>
    public static double PrecisionMeters(int wherePrecision) => wherePrecision switch
    {
        1 => 1_000,
        2 => 25_000,
        3 => 50_000,
        4 => 150_000,
        5 => 250_000,
        _ => 500_000,
    };

    /// <summary>
    /// The GED version a file name gives, as UCDP names its releases: <c>ged231</c> is 23.1, <c>GEDEvent_v24_1</c> is 24.1,
    /// a monthly candidate <c>GEDEvent_v25_0_3</c> is 25.0.3. Null when the name does not say.
    /// </summary>
    public static string? Version(string? source)
    {
        if (source is null || VersionPattern().Match(source) is not { Success: true } match)
        {
            return null;
        }

        return match.Groups[3].Success ? $"{match.Groups[1].Value}.{match.Groups[2].Value}.{match.Groups[3].Value}" : $"{match.Groups[1].Value}.{match.Groups[2].Value}";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"ged(?:event)?[_-]?v?(\d{2})[._-]?(\d)(?:[._-](\d{1,2})(?!\d))?(?!\d)", System.Text.RegularExpressions.RegexOptions.IgnoreCase | System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex VersionPattern();

    public static Guid ReportId(long gedId) => NameBasedGuid($"{Dataset}:{gedId.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>
    /// GED's own figures are not always ordered (20 CAR events have low &gt; best or best &gt; high): the range is widened to
    /// hold best, and civilians never exceed the total, so the report keeps UCDP's best estimate exactly.
    /// </summary>
    /// <param name="version">The GED release the event comes from (<see cref="Version"/>), credited in the report's source; null when unknown.</param>
    public static CreateReport ToReport(GedEvent e, MarkingDto? marking, string? version)
    {
        var low = Math.Min(e.Low, e.Best);
        var high = Math.Max(e.High, e.Best);
        var civilians = Math.Min(e.DeathsCivilians, e.Best);
        return new CreateReport
        {
            Id = ReportId(e.Id),
            ObservedAt = new DateTimeOffset(e.DateStart, TimeSpan.Zero),
            ObservedPrecision = Precision(e.DatePrecision).ToString().ToLowerInvariant(),
            Location = new LocationInput(e.Latitude, e.Longitude, PrecisionMeters(e.WherePrecision), null),
            Category = Category(e.TypeOfViolence),
            Casualties = new CasualtiesInput(
                KilledCivilian: new CasualtyRange(null, civilians, null),
                KilledOther: new CasualtyRange(Math.Max(0, low - civilians), e.Best - civilians, high - civilians),
                InjuredCivilian: null,
                InjuredOther: null),
            Narrative = Narrative(e),
            Language = "en",
            Actors = [e.SideA, e.SideB],
            // UCDP codes from several vetted sources; clarity 1 means the event is clearly described.
            Source = new SourceInput("B", e.EventClarity == 1 ? 2 : 3,
                string.Create(CultureInfo.InvariantCulture, $"UCDP GED {(version is null ? "" : version + " ")}event {e.Id}"), null),
            Marking = marking,
            ExternalRef = string.Create(CultureInfo.InvariantCulture, $"{Dataset}:{e.Id}"),
        };
    }

    private static string Narrative(GedEvent e)
    {
        var deaths = e.Low == e.High
            ? e.Best.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{e.Best} (between {e.Low} and {e.High})");
        var place = e.Adm1 is null ? e.WhereCoordinates : $"{e.WhereCoordinates}, {e.Adm1}";
        return string.Create(CultureInfo.InvariantCulture,
            $"{e.SideA} – {e.SideB} at {place}: {deaths} killed, {e.DeathsCivilians} of them civilians. Conflict: {e.ConflictName}.");
    }

    /// <summary>A deterministic id from a name (SHA-256 truncated, marked as an RFC 9562 version 8 UUID).</summary>
    internal static Guid NameBasedGuid(string name) => Version8(SHA256.HashData(Encoding.UTF8.GetBytes(name)));

    /// <summary>The first 16 bytes of a hash as an RFC 9562 version 8 (custom) UUID.</summary>
    internal static Guid Version8(ReadOnlySpan<byte> hash)
    {
        Span<byte> bytes = stackalloc byte[16];
        hash[..16].CopyTo(bytes);
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }
}

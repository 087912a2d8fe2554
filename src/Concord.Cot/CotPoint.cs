using System.Globalization;

namespace Concord.Cot;

/// <summary>The &lt;point&gt; of a CoT event: WGS-84 degrees, height above ellipsoid and errors in metres.</summary>
public readonly record struct CotPoint
{
    /// <summary>CoT's "no value" for hae, ce and le.</summary>
    public const double NoValue = 9999999.0;

    public CotPoint(double lat, double lon, double hae = NoValue, double ce = NoValue, double le = NoValue)
    {
        if (Validate(lat, lon, hae, ce, le) is { } problem)
        {
            throw new ArgumentOutOfRangeException(nameof(lat), problem);
        }

        Lat = lat;
        Lon = lon;
        Hae = hae;
        Ce = ce;
        Le = le;
    }

    /// <summary>0,0 with unknown height and errors, as TAK control messages carry.</summary>
    public static CotPoint Unknown { get; } = new(0, 0);

    public double Lat { get; }

    public double Lon { get; }

    public double Hae { get; }

    public double Ce { get; }

    public double Le { get; }

    internal static string? Validate(double lat, double lon, double hae, double ce, double le)
    {
        if (!double.IsFinite(lat))
        {
            return NotFinite("latitude", lat);
        }

        if (lat is < -90 or > 90)
        {
            return string.Create(CultureInfo.InvariantCulture, $"latitude {CotNumber.ToText(lat)} out of range [-90,90]");
        }

        if (!double.IsFinite(lon))
        {
            return NotFinite("longitude", lon);
        }

        if (lon is < -180 or > 180)
        {
            return string.Create(CultureInfo.InvariantCulture, $"longitude {CotNumber.ToText(lon)} out of range [-180,180]");
        }

        return !double.IsFinite(hae) ? NotFinite("hae", hae)
            : !double.IsFinite(ce) ? NotFinite("ce", ce)
            : !double.IsFinite(le) ? NotFinite("le", le)
            : null;
    }

    private static string NotFinite(string name, double value) =>
        string.Concat(name, " ", value.ToString(CultureInfo.InvariantCulture), " is not a finite number");
}

using System.Globalization;
using System.Text;

namespace Concord.Server.Http;

/// <summary>An opaque keyset cursor: the sort time and the store number of the last item of a page.</summary>
internal readonly record struct Cursor(DateTime At, long Number)
{
    public string Encode() => Convert.ToBase64String(Encoding.ASCII.GetBytes(
        At.Ticks.ToString(CultureInfo.InvariantCulture) + ":" + Number.ToString(CultureInfo.InvariantCulture)));

    public static bool TryDecode(string? text, out Cursor cursor)
    {
        cursor = default;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        try
        {
            var parts = Encoding.ASCII.GetString(Convert.FromBase64String(text)).Split(':');
            if (parts.Length == 2
                && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                && ticks >= DateTime.MinValue.Ticks && ticks <= DateTime.MaxValue.Ticks)
            {
                cursor = new Cursor(new DateTime(ticks, DateTimeKind.Utc), number);
                return true;
            }
        }
        catch (FormatException)
        {
        }

        return false;
    }
}

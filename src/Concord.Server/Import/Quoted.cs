using System.Globalization;

namespace Concord.Server.Import;

/// <summary>
/// A value from a file as a rejected row's reason quotes it: whole when short, else its start and its length. A record may
/// hold a megabyte in one field, and a thousand reasons are kept and sent back: quoting it whole would hold gigabytes.
/// </summary>
internal static class Quoted
{
    /// <summary>The longest value quoted whole.</summary>
    public const int MaxLength = 60;

    /// <summary>'value', or 'its first 40 characters…' (N characters).</summary>
    public static string Of(string value) =>
        value.Length <= MaxLength
            ? $"'{value}'"
            : string.Create(CultureInfo.InvariantCulture, $"'{value[..(char.IsHighSurrogate(value[39]) ? 39 : 40)]}…' ({value.Length:N0} characters)");

    /// <summary>As <see cref="Of(string)"/>, without quotes: a JSON value's own text (a number, a literal).</summary>
    public static string Raw(string text) =>
        text.Length <= MaxLength ? text : string.Create(CultureInfo.InvariantCulture, $"{text[..40]}… ({text.Length:N0} characters)");
}

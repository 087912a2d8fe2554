using System.Globalization;

namespace Concord.Cot;

// CoT numbers are written in plain decimal notation (never "1E-05": XSD decimals and several TAK
// clients reject exponents) with the shortest digits that round-trip, always culture-invariant.
internal static class CotNumber
{
    // Sign, up to 17 significant digits, a point and up to 323 zeros for the smallest subnormal.
    internal const int MaxChars = 350;

    internal static bool TryParse(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);

    internal static string Describe(string text) => text.Length <= 32 ? text : string.Concat(text.AsSpan(0, 32), "…");

    internal static string ToText(double value)
    {
        Span<char> buffer = stackalloc char[MaxChars];
        var written = Format(value, buffer);
        return new string(buffer[..written]);
    }

    internal static int Format(double value, Span<char> destination)
    {
        Span<char> shortest = stackalloc char[32];
        if (!value.TryFormat(shortest, out var length, "R", CultureInfo.InvariantCulture))
        {
            throw new InvalidOperationException("double did not fit its formatting buffer");
        }

        var text = shortest[..length];
        var exponentAt = text.IndexOfAny('E', 'e');
        if (exponentAt < 0)
        {
            text.CopyTo(destination);
            return length;
        }

        var exponent = int.Parse(text[(exponentAt + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        var mantissa = text[..exponentAt];
        var written = 0;
        if (mantissa[0] == '-')
        {
            destination[written++] = '-';
            mantissa = mantissa[1..];
        }

        Span<char> digits = stackalloc char[32];
        var digitCount = 0;
        var pointAt = mantissa.Length;
        foreach (var c in mantissa)
        {
            if (c == '.')
            {
                pointAt = digitCount;
            }
            else
            {
                digits[digitCount++] = c;
            }
        }

        var integerDigits = pointAt + exponent;
        if (integerDigits <= 0)
        {
            destination[written++] = '0';
            destination[written++] = '.';
            destination.Slice(written, -integerDigits).Fill('0');
            written += -integerDigits;
            digits[..digitCount].CopyTo(destination[written..]);
            written += digitCount;
        }
        else if (integerDigits >= digitCount)
        {
            digits[..digitCount].CopyTo(destination[written..]);
            written += digitCount;
            destination.Slice(written, integerDigits - digitCount).Fill('0');
            written += integerDigits - digitCount;
        }
        else
        {
            digits[..integerDigits].CopyTo(destination[written..]);
            written += integerDigits;
            destination[written++] = '.';
            digits[integerDigits..digitCount].CopyTo(destination[written..]);
            written += digitCount - integerDigits;
        }

        return written;
    }
}

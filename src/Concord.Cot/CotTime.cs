namespace Concord.Cot;

// ISO-8601 as CoT uses it: yyyy-MM-ddTHH:mm:ss[.f…][Z|±hh:mm]. Hand-written because it runs three
// times per event on the routing path; DateTime.Parse is both slower and culture-sensitive.
internal static class CotTime
{
    internal const int MaxBytes = 28;

    internal static bool TryParse(ReadOnlySpan<char> text, out DateTimeOffset value)
    {
        value = default;
        text = text.Trim();
        if (text.Length < 19
            || !TryDigits(text, 0, 4, out var year) || text[4] != '-'
            || !TryDigits(text, 5, 2, out var month) || text[7] != '-'
            || !TryDigits(text, 8, 2, out var day) || (text[10] != 'T' && text[10] != 't' && text[10] != ' ')
            || !TryDigits(text, 11, 2, out var hour) || text[13] != ':'
            || !TryDigits(text, 14, 2, out var minute) || text[16] != ':'
            || !TryDigits(text, 17, 2, out var second))
        {
            return false;
        }

        var at = 19;
        long fractionTicks = 0;
        if (at < text.Length && text[at] == '.')
        {
            at++;
            var digits = 0;
            long scale = TimeSpan.TicksPerSecond / 10;
            while (at < text.Length && char.IsAsciiDigit(text[at]))
            {
                // Beyond 100 ns the digits cannot be represented; they are read and dropped.
                if (digits < 7)
                {
                    fractionTicks += (text[at] - '0') * scale;
                    scale /= 10;
                }

                digits++;
                at++;
            }

            if (digits == 0)
            {
                return false;
            }
        }

        long offsetTicks = 0;
        if (at < text.Length)
        {
            var designator = text[at++];
            if (designator is '+' or '-')
            {
                if (!TryDigits(text, at, 2, out var offsetHours))
                {
                    return false;
                }

                at += 2;
                if (at < text.Length && text[at] == ':')
                {
                    at++;
                }

                var offsetMinutes = 0;
                if (at < text.Length)
                {
                    if (!TryDigits(text, at, 2, out offsetMinutes))
                    {
                        return false;
                    }

                    at += 2;
                }

                if (offsetHours > 14 || offsetMinutes > 59)
                {
                    return false;
                }

                offsetTicks = ((offsetHours * 60L) + offsetMinutes) * TimeSpan.TicksPerMinute;
                if (designator == '-')
                {
                    offsetTicks = -offsetTicks;
                }
            }
            else if (designator is not ('Z' or 'z'))
            {
                return false;
            }
        }

        if (at != text.Length
            || year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month)
            || hour > 23 || minute > 59 || second > 59)
        {
            return false;
        }

        var ticks = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc).Ticks + fractionTicks - offsetTicks;
        if (ticks < DateTime.MinValue.Ticks || ticks > DateTime.MaxValue.Ticks)
        {
            return false;
        }

        value = new DateTimeOffset(ticks, TimeSpan.Zero);
        return true;
    }

    // Milliseconds as every TAK client writes them, seven digits only when the value has sub-millisecond
    // precision, so that parse(serialize(x)) == x.
    internal static int Format(DateTimeOffset time, Span<byte> destination)
    {
        var utc = time.UtcDateTime;
        DateOnly.FromDateTime(utc).Deconstruct(out var year, out var month, out var day);
        var timeOfDay = utc.TimeOfDay.Ticks;
        var seconds = timeOfDay / TimeSpan.TicksPerSecond;
        var fraction = timeOfDay % TimeSpan.TicksPerSecond;

        Write(destination, 0, year, 4);
        destination[4] = (byte)'-';
        Write(destination, 5, month, 2);
        destination[7] = (byte)'-';
        Write(destination, 8, day, 2);
        destination[10] = (byte)'T';
        Write(destination, 11, (int)(seconds / 3600), 2);
        destination[13] = (byte)':';
        Write(destination, 14, (int)(seconds / 60 % 60), 2);
        destination[16] = (byte)':';
        Write(destination, 17, (int)(seconds % 60), 2);
        destination[19] = (byte)'.';
        int end;
        if (fraction % TimeSpan.TicksPerMillisecond == 0)
        {
            Write(destination, 20, (int)(fraction / TimeSpan.TicksPerMillisecond), 3);
            end = 23;
        }
        else
        {
            Write(destination, 20, (int)fraction, 7);
            end = 27;
        }

        destination[end] = (byte)'Z';
        return end + 1;
    }

    internal static string ToText(DateTimeOffset time)
    {
        Span<byte> buffer = stackalloc byte[MaxBytes];
        var written = Format(time, buffer);
        return System.Text.Encoding.ASCII.GetString(buffer[..written]);
    }

    private static void Write(Span<byte> destination, int at, int value, int width)
    {
        for (var i = at + width - 1; i >= at; i--)
        {
            destination[i] = (byte)('0' + (value % 10));
            value /= 10;
        }
    }

    private static bool TryDigits(ReadOnlySpan<char> text, int at, int count, out int value)
    {
        value = 0;
        if (at + count > text.Length)
        {
            return false;
        }

        for (var i = at; i < at + count; i++)
        {
            var c = text[i];
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            value = (value * 10) + (c - '0');
        }

        return true;
    }
}

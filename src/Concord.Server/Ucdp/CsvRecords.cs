using System.Globalization;
using System.Text;

namespace Concord.Server.Ucdp;

/// <summary>
/// A streaming RFC 4180 CSV reader: quoted fields, doubled quotes, line breaks inside quotes, CRLF, LF or CR alone.
/// It yields each record with the line it starts on and keeps only one record in memory.
/// (Written here because the CsvHelper version served to this project changed its API; the format is small.)
/// </summary>
/// <remarks>
/// A quote opened and never closed on its line would otherwise swallow every line up to the next quote in the file,
/// valid rows included. So a record that runs over several lines and then does not have the header's number of fields is
/// taken for such a mistake: its first line is rejected with that reason and the lines after it are read again as rows
/// of their own; so is one whose fields add up but where text follows a closing quote (the quote that closed was the
/// opening quote of a field further down). A quoted field that really holds line breaks keeps them when the record has
/// the header's field count and nothing but a separator follows its closing quote. Should a record that starts in lines
/// so read again need the same recovery, the rest of them is read a line at a time, so that every character is read at
/// most three times whatever the file holds.
/// </remarks>
internal static class CsvRecords
{
    internal sealed record Record(long Line, string[] Fields, string? Error)
    {
        /// <summary>
        /// A row with nothing in it: an empty line, spaces, or only separators (spreadsheets write <c>,,,,</c> for rows
        /// that were formatted and left empty). Skipped, as blank lines are, rather than rejected field by field.
        /// </summary>
        public bool IsBlank => Error is null && Fields.All(string.IsNullOrWhiteSpace);
    }

    /// <summary>The longest record (in characters) kept whole so that its lines can be read again: 1 MiB.</summary>
    public const int MaxRecovered = 1 << 20;

    /// <summary>A header's names as the readers match them: without a byte order mark, spaces around them or letter case.</summary>
    public static string[] Header(string[] fields) => [.. fields.Select(h => h.TrimStart('\uFEFF').Trim().ToLowerInvariant())];

    /// <summary>Why a header (<see cref="Header"/>) cannot be read: required columns missing, or a column given twice (which copy would count?).</summary>
    public static string? HeaderProblem(string[] header, IReadOnlyList<string> required, string dataset)
    {
        var missing = required.Where(c => !header.Contains(c, StringComparer.Ordinal)).ToList();
        if (missing.Count > 0)
        {
            // A file saved by a spreadsheet in a French (or other) locale separates its columns with ';', Excel's
            // "Unicode text" with tabs: the whole header is then one column holding every name. Said so, rather than
            // that the names the user sees in it are missing.
            if (header.Length == 1 && new[] { ';', '\t', '|' }.FirstOrDefault(c => header[0].Contains(c, StringComparison.Ordinal)) is var separator and not '\0'
                && header[0].Split(separator).Count(name => required.Contains(name.Trim(), StringComparer.Ordinal)) > 1)
            {
                return $"the columns are separated by {(separator == '\t' ? "tabs" : $"'{separator}'")}, not commas: save the file as CSV with commas (a spreadsheet in a French locale writes ';')";
            }

            return $"the header lacks the {dataset} column(s) {string.Join(", ", missing)}";
        }

        var twice = header.Where(h => h.Length > 0).GroupBy(h => h, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        return twice.Count > 0 ? $"the header names the column(s) {string.Join(", ", twice)} more than once" : null;
    }

    /// <summary>Moves to the header: the first record that is not blank (blank lines before it are counted, not taken for it).</summary>
    public static bool MoveToHeader(IEnumerator<Record> records)
    {
        while (records.MoveNext())
        {
            if (!records.Current.IsBlank)
            {
                return true;
            }
        }

        return false;
    }

    public static IEnumerable<Record> Read(TextReader reader)
    {
        var source = new Source(reader);
        var fields = new List<string>();
        var field = new StringBuilder();
        // The record's text as read, to read its lines again if it turns out to be an unclosed quote's doing.
        var raw = new StringBuilder();
        int? expected = null;
        var line = 1L;
        var recordLine = 1L;
        var inQuotes = false;
        var quotedField = false;
        // Text after a field's closing quote ("abc"def) is taken as it is on one line; in a record that ran over lines it
        // says that the quote that closed was another field's opening one: a quote was left open further up.
        var afterClose = false;
        var stray = false;
        var any = false;
        var overflow = false;
        // What one record keeps of its fields, bounded like its raw text: a quote left open in a large file would
        // otherwise gather the rest of the file into one field (the record is rejected whole then).
        var kept = 0;
        var tooLong = false;
        bool Keep()
        {
            if (kept < MaxRecovered)
            {
                kept++;
                return true;
            }

            tooLong = true;
            return false;
        }

        Record TooLong() => new(recordLine, [], string.Create(CultureInfo.InvariantCulture, $"is longer than {MaxRecovered:N0} characters (lines {recordLine}–{line}) and is skipped"));

        // The lines after a rejected first line are read again. Should a record that starts in them need the same
        // recovery, the rest of what was put back is read a line at a time (a quote no longer runs past its line):
        // otherwise a file of such lines would be read again once per line (time and memory growing with its square).
        var lineAtATime = false;
        var fromBack = false;
        void Begin(long at)
        {
            fields.Clear();
            field.Clear();
            raw.Clear();
            overflow = false;
            kept = 0;
            tooLong = false;
            inQuotes = false;
            quotedField = false;
            afterClose = false;
            stray = false;
            any = false;
            line = at;
            recordLine = at;
            fromBack = source.Pending;
            lineAtATime &= fromBack;
        }

        Record NotClosedOnItsLine(string first) => new(recordLine, Split(first), "a quoted field opened on this line is not closed on it");

        while (true)
        {
            var c = source.Read();
            if (c == -1)
            {
                if (!inQuotes && !any)
                {
                    yield break;
                }

                fields.Add(field.ToString());
                if (inQuotes)
                {
                    expected ??= fields.Count;
                }

                var ranOn = inQuotes || (!tooLong && expected is { } width && (fields.Count != width || stray));
                if (ranOn && line > recordLine && !overflow && Unclosed(raw, source) is { } first)
                {
                    // As at the end of a line: a quote left open swallowed the lines after it up to the end of the file.
                    yield return NotClosedOnItsLine(first);
                    lineAtATime = fromBack;
                    Begin(recordLine + 1);
                    continue;
                }

                yield return !inQuotes ? (tooLong ? TooLong() : Checked(recordLine, fields))
                    : tooLong ? new Record(recordLine, [], string.Create(CultureInfo.InvariantCulture,
                        $"a quoted field is not closed before the end of the file; lines {recordLine}–{line} are skipped"))
                    : new Record(recordLine, [.. fields], "a quoted field is not closed before the end of the file");
                yield break;
            }

            var ch = (char)c;
            any = true;
            // A record longer than this is not read again if it turns out to be an unclosed quote's doing: memory stays bounded.
            if (raw.Length < MaxRecovered)
            {
                raw.Append(ch);
            }
            else
            {
                overflow = true;
            }

            if (inQuotes)
            {
                if (ch == '"')
                {
                    if (source.Peek() == '"')
                    {
                        var doubled = (char)source.Read();
                        if (raw.Length < MaxRecovered)
                        {
                            raw.Append(doubled);
                        }

                        if (Keep())
                        {
                            field.Append('"');
                        }
                    }
                    else
                    {
                        inQuotes = false;
                        afterClose = true;
                    }
                }
                else if (lineAtATime && ch is '\n' or '\r')
                {
                    if (ch == '\r' && source.Peek() == '\n')
                    {
                        source.Read();
                    }

                    yield return tooLong || overflow ? TooLong() : NotClosedOnItsLine(raw.ToString(0, raw.Length - 1));
                    Begin(line + 1);
                }
                else
                {
                    // A line ends with LF, CRLF or CR alone (old Mac spreadsheets): counted once each.
                    if (ch == '\n' || (ch == '\r' && source.Peek() != '\n'))
                    {
                        line++;
                    }

                    if (Keep())
                    {
                        field.Append(ch);
                    }
                }

                continue;
            }

            switch (ch)
            {
                case '"' when field.Length == 0 && !quotedField:
                    inQuotes = true;
                    quotedField = true;
                    break;
                case ',':
                    if (Keep())
                    {
                        fields.Add(field.ToString());
                    }

                    field.Clear();
                    quotedField = false;
                    afterClose = false;
                    break;
                case '\r' when source.Peek() == '\n':
                    break;
                case '\n' or '\r':
                    fields.Add(field.ToString());
                    // A blank line before the header (empty, spaces, or separators only) is not the header: the width
                    // comes from the first record with text.
                    if (!fields.All(string.IsNullOrWhiteSpace))
                    {
                        expected ??= fields.Count;
                    }

                    if (tooLong)
                    {
                        yield return TooLong();
                        Begin(line + 1);
                    }
                    else if (line > recordLine && (fields.Count != expected || stray) && !overflow && Unclosed(raw, source) is { } first)
                    {
                        // Read again from the second line of this record: only the first line is lost.
                        yield return NotClosedOnItsLine(first);
                        lineAtATime = fromBack;
                        Begin(recordLine + 1);
                    }
                    else
                    {
                        yield return Checked(recordLine, fields);
                        Begin(line + 1);
                    }

                    break;
                default:
                    stray |= afterClose && ch is not (' ' or '\t');
                    if (Keep())
                    {
                        field.Append(ch);
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// When <paramref name="raw"/> (one record's text) spans lines, puts everything after its first line back into
    /// <paramref name="source"/> and returns that first line; null when it is a single line.
    /// </summary>
    private static string? Unclosed(StringBuilder raw, Source source)
    {
        var text = raw.ToString();
        var end = text.AsSpan().IndexOfAny('\r', '\n');
        var next = end < 0 ? -1 : end + (text[end] == '\r' && end + 1 < text.Length && text[end + 1] == '\n' ? 2 : 1);
        if (end < 0 || next >= text.Length)
        {
            return null;
        }

        source.PushBack(text[next..]);
        return text[..end];
    }

    /// <summary>The first line's fields as well as they read, for the rejection's context.</summary>
    private static string[] Split(string line) => line.Split(',');

    /// <summary>A record whose text did not decode (the reader put U+FFFD in place of bad bytes) is rejected, not imported garbled.</summary>
    private static Record Checked(long line, List<string> fields) =>
        fields.Any(f => f.Contains('\uFFFD', StringComparison.Ordinal))
            ? new Record(line, [.. fields], "is not valid UTF-8 text: some bytes could not be decoded (a file saved as Windows-1252 or Latin-1, as a spreadsheet may save accented place names such as Ndélé: save it again as CSV UTF-8)")
            : new Record(line, [.. fields], null);

    /// <summary>A reader with characters pushed back in front of it.</summary>
    private sealed class Source(TextReader reader)
    {
        private string _back = "";
        private int _at;

        public int Read() => _at < _back.Length ? _back[_at++] : reader.Read();

        public int Peek() => _at < _back.Length ? _back[_at] : reader.Peek();

        public void PushBack(string text)
        {
            _back = text + _back[_at..];
            _at = 0;
        }

        /// <summary>Whether characters put back are still to be read.</summary>
        public bool Pending
        {
            get
            {
                if (_at < _back.Length)
                {
                    return true;
                }

                (_back, _at) = ("", 0);
                return false;
            }
        }
    }
}

using System.Text;

namespace Concord.Server.Ucdp;

/// <summary>
/// A streaming RFC 4180 CSV reader: quoted fields, doubled quotes, line breaks inside quotes, CRLF or LF.
/// It yields each record with the line it starts on and keeps only one record in memory.
/// (Written here because the CsvHelper version served to this project changed its API; the format is small.)
/// </summary>
internal static class CsvRecords
{
    internal sealed record Record(long Line, string[] Fields, string? Error);

    public static IEnumerable<Record> Read(TextReader reader)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        var line = 1L;
        var recordLine = 1L;
        var inQuotes = false;
        var quotedField = false;
        var any = false;
        int c;
        while ((c = reader.Read()) != -1)
        {
            var ch = (char)c;
            any = true;
            if (inQuotes)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"')
                    {
                        reader.Read();
                        field.Append('"');
                    }
                    else
                    {
                        inQuotes = false;
                    }
                }
                else
                {
                    if (ch == '\n')
                    {
                        line++;
                    }

                    field.Append(ch);
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
                    fields.Add(field.ToString());
                    field.Clear();
                    quotedField = false;
                    break;
                case '\r' when reader.Peek() == '\n':
                    break;
                case '\n' or '\r':
                    fields.Add(field.ToString());
                    yield return Checked(recordLine, fields);
                    fields.Clear();
                    field.Clear();
                    quotedField = false;
                    any = false;
                    line++;
                    recordLine = line;
                    break;
                default:
                    field.Append(ch);
                    break;
            }
        }

        if (inQuotes)
        {
            fields.Add(field.ToString());
            yield return new Record(recordLine, [.. fields], "a quoted field is not closed before the end of the file");
        }
        else if (any)
        {
            fields.Add(field.ToString());
            yield return Checked(recordLine, fields);
        }
    }

    /// <summary>A record whose text did not decode (the reader put U+FFFD in place of bad bytes) is rejected, not imported garbled.</summary>
    private static Record Checked(long line, List<string> fields) =>
        fields.Any(f => f.Contains('\uFFFD', StringComparison.Ordinal))
            ? new Record(line, [.. fields], "is not valid UTF-8 text: some bytes could not be decoded")
            : new Record(line, [.. fields], null);
}

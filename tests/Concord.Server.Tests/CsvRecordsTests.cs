using Concord.Server.Ucdp;

namespace Concord.Server.Tests;

public sealed class CsvRecordsTests
{
    private static List<CsvRecords.Record> Read(string text)
    {
        using var reader = new StringReader(text);
        return [.. CsvRecords.Read(reader)];
    }

    [Fact]
    public void A_file_read_from_a_pipe_is_read_as_from_a_file()
    {
        // A pipe gives a few bytes at a time (concord import --file <(…)). StreamReader's Peek once answered "the end" at
        // the end of such a read (dotnet/runtime#41981), which would take a CRLF split between two reads for two line ends
        // (every later line number one too high) and a doubled quote split so for a closing one; .NET 10's does not, and
        // this keeps it so for the reader.
        var text = string.Concat(Enumerable.Range(1, 200).Select(i => $"{i},\"say \"\"hello\"\", {i}\",\"two\r\nlines\"\r\n"));
        using var piped = new StreamReader(new Trickle(System.Text.Encoding.UTF8.GetBytes("id,quote,note\r\n" + text)), System.Text.Encoding.UTF8, false, 16);

        var fromPipe = CsvRecords.Read(piped).ToList();
        var fromFile = Read("id,quote,note\r\n" + text);

        Assert.Equal(201, fromPipe.Count);
        Assert.Equal(fromFile.Select(r => (r.Line, string.Join("|", r.Fields), r.Error)), fromPipe.Select(r => (r.Line, string.Join("|", r.Fields), r.Error)));
        Assert.Equal(["200", "say \"hello\", 200", "two\r\nlines"], fromPipe[^1].Fields);
    }

    /// <summary>A stream that gives at most three bytes a read, as a pipe gives what has arrived.</summary>
    private sealed class Trickle(byte[] bytes) : Stream
    {
        private int _at;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, 3), bytes.Length - _at);
            Array.Copy(bytes, _at, buffer, offset, n);
            _at += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public void A_quote_left_open_costs_only_its_own_line(string end)
    {
        // Old Mac spreadsheets end lines with CR alone: the lost line and the numbers of the lines after it are the same.
        var records = Read("id,place,note\n1,Bangui,ok\n2,\"Bangui centre,open quote\n3,Bria,fine\n4,\"Ndele, north\",fine\n5,Obo,\"last\"\n".Replace("\n", end, StringComparison.Ordinal));

        Assert.Equal([1L, 2, 3, 4, 5, 6], records.Select(r => r.Line));
        Assert.Equal("a quoted field opened on this line is not closed on it", records[2].Error);
        Assert.All(records.Where(r => r.Line != 3), r => Assert.Null(r.Error));
        Assert.Equal(["3", "Bria", "fine"], records[3].Fields);
        Assert.Equal(["4", "Ndele, north", "fine"], records[4].Fields);
        Assert.Equal(["5", "Obo", "last"], records[5].Fields);
    }

    [Fact]
    public void A_quote_left_open_to_the_end_of_the_file_costs_only_its_own_line()
    {
        var records = Read("id,place,note\n1,\"Bangui,open\n2,Bria,fine\n3,Obo,fine");

        Assert.Equal([1L, 2, 3, 4], records.Select(r => r.Line));
        Assert.NotNull(records[1].Error);
        Assert.Equal(["2", "Bria", "fine"], records[2].Fields);
        Assert.Equal(["3", "Obo", "fine"], records[3].Fields);
        Assert.Null(records[3].Error);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void A_quote_left_open_costs_only_its_own_line_when_a_later_quote_closes_it_on_the_last_line(string end)
    {
        // The stray quote of line 3 is closed by the one on line 4: with or without a newline at the end, line 4 is a row.
        var records = Read("id,place,note\n1,Bangui,ok\n2,\"Bangui centre,open\n3,Obo,\"last\"" + end);

        Assert.Equal([1L, 2, 3, 4], records.Select(r => r.Line));
        Assert.Equal("a quoted field opened on this line is not closed on it", records[2].Error);
        Assert.Equal(["3", "Obo", "last"], records[3].Fields);
        Assert.Null(records[3].Error);
    }

    [Fact]
    public void A_quote_left_open_in_a_large_file_keeps_memory_bounded_and_says_which_lines_it_lost()
    {
        // Three million characters after the open quote: more than a record is read again for (1 MiB).
        var body = string.Concat(Enumerable.Range(0, 150_000).Select(i => $"{i},Bria,fine\n"));
        var records = Read("id,place,note\n1,Bangui,ok\n2,\"Bangui centre,open quote\n" + body);

        Assert.Equal(3, records.Count);
        Assert.Null(records[1].Error);
        Assert.Equal(3L, records[2].Line);
        Assert.Empty(records[2].Fields);
        Assert.Equal("a quoted field is not closed before the end of the file; lines 3–150004 are skipped", records[2].Error);

        // A record that is simply too long is skipped with its lines, and the rows after it are read.
        var wide = Read("id,place,note\n1," + new string('x', CsvRecords.MaxRecovered + 10) + ",z\n2,Obo,fine\n");
        Assert.Equal("is longer than 1,048,576 characters (lines 2–2) and is skipped", wide[1].Error);
        Assert.Equal(["2", "Obo", "fine"], wide[2].Fields);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("")]
    public void A_quote_left_open_is_found_when_a_later_fields_opening_quote_closes_it_and_the_fields_add_up(string end)
    {
        // Line 2's quote closes at line 4's opening one; the rest of line 4 gives the header's four fields. Read as one
        // record, it was row CAF1 with CAF3's fatalities, and CAF2 and CAF3 were lost without a word.
        var records = Read("id,date,notes,fatalities\nCAF1,2024-05-01,\"Armed men attacked Bria,3\nCAF2,2024-05-02,Looting in Kaga-Bandoro,0\n"
            + "CAF3,2024-05-03,\"Clashes near Bambari\",7" + end);

        Assert.Equal([1L, 2, 3, 4], records.Select(r => r.Line));
        Assert.Equal("a quoted field opened on this line is not closed on it", records[1].Error);
        Assert.Equal(["CAF2", "2024-05-02", "Looting in Kaga-Bandoro", "0"], records[2].Fields);
        Assert.Equal(["CAF3", "2024-05-03", "Clashes near Bambari", "7"], records[3].Fields);
        Assert.All(records.Where(r => r.Line != 2), r => Assert.Null(r.Error));

        // On one line, text after a closing quote is read as it is (spreadsheets write such rows), and a multi-line field
        // followed by spaces before its separator is still one field.
        Assert.Equal(["1", "Bria centre", "x"], Read("id,place,n\n1,\"Bria\" centre,x\n")[1].Fields);
        Assert.Equal(["1", "two\nlines ", "x"], Read("id,note,n\n1,\"two\nlines\" ,x\n")[1].Fields);
    }

    [Theory]
    [InlineData("")]
    [InlineData("x\",1,2\n")]
    public void A_file_of_lines_that_each_leave_a_quote_open_is_read_once_not_once_a_line(string last)
    {
        // Each line's last field opens a quote the next line's first field closes: read as one record, it fails, its first
        // line is rejected and the rest read again, which fails the same way. Read again from each line in turn, 20,000
        // lines were read 200 million characters' worth (copying what remained each time), one nested reader a line
        // until the stack ran out and took the server with it.
        const int lines = 20_000;
        var text = "id,place,note\n" + string.Concat(Enumerable.Repeat("b\",2,\"c\n", lines)) + last;
        List<CsvRecords.Record>? records = null;
        var allocated = 0L;
        // A thread with a 1 MiB stack, as the server's threads have on some systems.
        var reader = new Thread(() =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            records = Read(text);
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }, 1 << 20);
        reader.Start();
        reader.Join();

        Assert.NotNull(records);
        Assert.Equal(Enumerable.Range(1, lines + (last.Length > 0 ? 2 : 1)).Select(n => (long)n), records.Select(r => r.Line));
        Assert.All(records.Skip(1).Take(lines), r => Assert.Equal("a quoted field opened on this line is not closed on it", r.Error));
        Assert.Equal(["b\"", "2", "\"c"], records[lines].Fields);
        if (last.Length > 0)
        {
            Assert.Equal(["x\"", "1", "2"], records[^1].Fields);
            Assert.Null(records[^1].Error);
        }

        // The records themselves and a few copies of the text: not a copy of the rest of the file for every line.
        Assert.True(allocated < 1_000L * lines, $"{allocated:N0} bytes allocated for {text.Length:N0} characters");
    }

    [Theory]
    [InlineData("\r\n")]
    [InlineData("\r")]
    public void Line_breaks_inside_a_quoted_field_are_kept_when_the_row_has_the_headers_fields(string end)
    {
        var records = Read("id,note,n\r\n1,\"two\r\nlines, and \"\"quotes\"\"\",3\r\n2,plain,4\r\n".Replace("\r\n", end, StringComparison.Ordinal));

        Assert.Equal([1L, 2, 4], records.Select(r => r.Line));
        Assert.Equal($"two{end}lines, and \"quotes\"", records[1].Fields[1]);
        Assert.All(records, r => Assert.Null(r.Error));
    }
}

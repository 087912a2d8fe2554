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
    public void A_quote_left_open_costs_only_its_own_line()
    {
        var records = Read("id,place,note\n1,Bangui,ok\n2,\"Bangui centre,open quote\n3,Bria,fine\n4,\"Ndele, north\",fine\n5,Obo,\"last\"\n");

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

    [Fact]
    public void Line_breaks_inside_a_quoted_field_are_kept_when_the_row_has_the_headers_fields()
    {
        var records = Read("id,note,n\r\n1,\"two\r\nlines, and \"\"quotes\"\"\",3\r\n2,plain,4\r\n");

        Assert.Equal([1L, 2, 4], records.Select(r => r.Line));
        Assert.Equal("two\r\nlines, and \"quotes\"", records[1].Fields[1]);
        Assert.All(records, r => Assert.Null(r.Error));
    }
}

using Concord.Server.Ucdp;

namespace Concord.Server.Tests;

public sealed class GedMappingTests
{
    [Fact]
    public void Place_precision_widens_as_where_prec_grows()
    {
        // where_prec 5 is a place larger than an admin-1 region but smaller than the country ("northern Central African
        // Republic", as every such row of the CAR file says): it was given 100 km, less than an admin-1's 150 km, so
        // an incident took its point from it over a province's.
        var radii = Enumerable.Range(1, 7).Select(GedMapping.PrecisionMeters).ToList();
        Assert.Equal(radii.Order(), radii);
        Assert.True(GedMapping.PrecisionMeters(5) > GedMapping.PrecisionMeters(4));
        Assert.True(GedMapping.PrecisionMeters(5) < GedMapping.PrecisionMeters(6));
    }

    [Theory]
    [InlineData("ged231_caf_events", "23.1")]
    [InlineData("ged231", "23.1")]
    [InlineData("GEDEvent_v24_1", "24.1")]
    [InlineData("gedevent-v22-1.csv", "22.1")]
    [InlineData("GEDEvent_v25_0_3", "25.0.3")]
    [InlineData("GEDEvent_v25_0_12", "25.0.12")]
    [InlineData("ged2311", null)]
    [InlineData("upload", null)]
    [InlineData("acled_2024", null)]
    [InlineData(null, null)]
    public void The_release_comes_from_the_file_name_when_it_says(string? name, string? version) =>
        Assert.Equal(version, GedMapping.Version(name));

    private static readonly Dictionary<string, string> Row = new(StringComparer.Ordinal)
    {
        ["id"] = "4242",
        ["type_of_violence"] = "3",
        ["conflict_name"] = "LRA - Civilians",
        ["side_a"] = "LRA",
        ["side_b"] = "Civilians",
        ["where_prec"] = "1",
        ["where_coordinates"] = "Obo town",
        ["adm_1"] = "Haut-Mbomou prefecture",
        ["latitude"] = "5.4",
        ["longitude"] = "26.5",
        ["event_clarity"] = "1",
        ["date_prec"] = "1",
        ["date_start"] = "2010-03-05 00:00:00.000",
        ["date_end"] = "2010-03-05 00:00:00.000",
        ["deaths_civilians"] = "3",
        ["best"] = "3",
        ["high"] = "4",
        ["low"] = "3",
    };

    private static List<GedRow> Read(IEnumerable<string> header, Func<string, string> value)
    {
        var names = header.ToList();
        using var text = new StringReader(string.Join(",", names) + "\n" + string.Join(",", names.Select(n => value(n.Trim().ToLowerInvariant()))) + "\n");
        return [.. GedReader.Read(text)];
    }

    [Fact]
    public void Header_names_match_whatever_their_case_and_spaces_but_a_column_named_twice_refuses_the_file()
    {
        var loose = Read(GedReader.RequiredColumns.Select(c => c == "id" ? " ID " : c.ToUpperInvariant()), n => Row[n]);
        Assert.Equal(4242, Assert.Single(loose).Event?.Id);

        var twice = Read(GedReader.RequiredColumns.Append("best"), n => Row[n]);
        var refused = Assert.Single(twice);
        Assert.Equal((1L, "the header names the column(s) best more than once"), (refused.Line, refused.Error));
    }

    [Fact]
    public void Blank_lines_before_the_header_are_counted_not_taken_for_it()
    {
        var names = string.Join(",", GedReader.RequiredColumns);
        var row = string.Join(",", GedReader.RequiredColumns.Select(n => Row[n]));
        // A quoted field over two lines in the first row: the width it is judged by is the header's, not the blank line's.
        var multiline = string.Join(",", GedReader.RequiredColumns.Select(n => n == "conflict_name" ? "\"CAR:\r\nGovernment\"" : Row[n]));
        using var text = new StringReader($"\r\n\r\n{names}\r\n{multiline}\r\n{row}\r\n");

        var rows = GedReader.Read(text).ToList();

        Assert.Equal([4L, 6L], rows.Select(r => r.Line));
        Assert.All(rows, r => Assert.Null(r.Error));
        Assert.Equal("CAR:\r\nGovernment", rows[0].Event?.ConflictName);
        using var headerOnlyBad = new StringReader("\n\nid,best\n1,2\n");
        Assert.Equal(3L, Assert.Single(GedReader.Read(headerOnlyBad)).Line);

        // A line of spaces, or of separators, before the header is as blank: the width is still the header's.
        using var spaced = new StringReader($"   \r\n,,\r\n{names}\r\n{multiline}\r\n{row}\r\n");
        var spacedRows = GedReader.Read(spaced).ToList();
        Assert.Equal([4L, 6L], spacedRows.Select(r => r.Line));
        Assert.All(spacedRows, r => Assert.Null(r.Error));
    }

    [Fact]
    public void Rows_of_separators_or_spaces_only_are_skipped_as_blank_lines_are()
    {
        // Spreadsheets write ",,,,," for rows formatted and left empty; a line of spaces is as empty.
        var names = string.Join(",", GedReader.RequiredColumns);
        var row = string.Join(",", GedReader.RequiredColumns.Select(n => Row[n]));
        var separators = new string(',', GedReader.RequiredColumns.Count - 1);
        var quotedEmpty = string.Join(",", GedReader.RequiredColumns.Select(_ => "\"\""));
        using var text = new StringReader($"{names}\n{row}\n{separators}\n   \n{quotedEmpty}\n{row.Replace("4242", "4243", StringComparison.Ordinal)}\n,,,\n");

        var rows = GedReader.Read(text).ToList();

        Assert.Equal([(2L, 4242), (6L, 4243)], rows.Select(r => (r.Line, r.Event?.Id ?? 0)));
        Assert.All(rows, r => Assert.Null(r.Error));
    }

    [Fact]
    public void A_code_that_is_not_a_number_is_refused_once_for_what_the_file_holds()
    {
        var row = Assert.Single(Read(GedReader.RequiredColumns, n => n == "type_of_violence" ? "x" : Row[n]));

        Assert.Equal("type_of_violence 'x' is not a whole number", row.Error);
    }

    [Fact]
    public void A_GED_day_written_with_an_offset_stays_that_day()
    {
        var rows = Read(GedReader.RequiredColumns, n => n is "date_start" or "date_end" ? "2010-03-05T00:00:00+02:00" : Row[n]);

        Assert.Equal(new DateTime(2010, 3, 5, 0, 0, 0, DateTimeKind.Utc), Assert.Single(rows).Event?.DateStart);
    }
}

using Concord.Server.Import;

namespace Concord.Server.Tests;

public sealed class IsoDatesTests
{
    [Theory]
    [InlineData("2024-05-01", "2024-05-01T00:00:00Z")]
    [InlineData("2024-05-01T10:30", "2024-05-01T10:30:00Z")]
    [InlineData("2024-05-01 10:30:15.5", "2024-05-01T10:30:15.5Z")]
    [InlineData("2024-05-01t10:30:00z", "2024-05-01T10:30:00Z")]
    [InlineData("2024-05-01T10:30:00+01:00", "2024-05-01T09:30:00Z")]
    [InlineData("2024-05-01T10:30:00+0100", "2024-05-01T09:30:00Z")]
    [InlineData("2024-05-01T10:30:00-0230", "2024-05-01T13:00:00Z")]
    [InlineData("2024-05-01T10:30:00+01", "2024-05-01T09:30:00Z")]
    [InlineData("2024-05-01T10:30:00+0000", "2024-05-01T10:30:00Z")]
    [InlineData("2024-05-01T10:30:00.123456789Z", "2024-05-01T10:30:00.1234567Z")]
    [InlineData("2024-05-01T10:30:00.123456789+01:00", "2024-05-01T09:30:00.1234567Z")]
    public void Reads_the_forms_of_ISO_8601_and_RFC_3339(string text, string expected)
    {
        Assert.True(IsoDates.TryParse(text, out var value), text);
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), value);
        Assert.Equal(TimeSpan.Zero, value.Offset);
    }

    [Theory]
    [InlineData("01/05/2024")]
    [InlineData("1 May 2024")]
    [InlineData("2024-05-01T10:30:00+1")]
    [InlineData("2024-05-01T10:30:00+01:0")]
    [InlineData("2024-05-01T10:30:00 01:00")]
    [InlineData("2024-05-01T10:30:00+25:00")]
    [InlineData("2024-13-01")]
    [InlineData("2024-05-01x10:30")]
    [InlineData("2024-05-01T10:30:00.Z")]
    [InlineData("")]
    public void Refuses_what_is_not_an_ISO_date(string text) => Assert.False(IsoDates.TryParse(text, out _), text);

    [Fact]
    public void Keeps_the_day_as_written_when_asked()
    {
        Assert.True(IsoDates.TryParseAsWritten("2024-05-01T23:30:00-0300", out var written));
        Assert.Equal(new DateTime(2024, 5, 1, 23, 30, 0, DateTimeKind.Utc), written);
    }
}

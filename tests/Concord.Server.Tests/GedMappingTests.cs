using Concord.Server.Ucdp;

namespace Concord.Server.Tests;

public sealed class GedMappingTests
{
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
}

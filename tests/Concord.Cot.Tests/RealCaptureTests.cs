using System.Globalization;
using System.Text;

namespace Concord.Cot.Tests;

public sealed class RealCaptureTests
{
    private static Dictionary<string, int> ExpectedTypes { get; } = new(StringComparer.Ordinal)
    {
        ["a-f-G-U-C"] = 502,
        ["a-f-G-E-V-C"] = 228,
        ["a-u-G"] = 69,
        ["a-h-G"] = 33,
        ["a-u-A-M-F"] = 23,
        ["a-u-G-E-V"] = 11,
        ["b-m-p-s-m"] = 10,
        ["a-f-G"] = 9,
        ["a-u-A-M-H"] = 1,
        ["b-t-f"] = 1,
    };

    [Fact]
    public void Every_real_capture_round_trips()
    {
        var archive = Captures.FreeTakServerArchive;
        Assert.Equal(887, archive.Count);
        var types = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, bytes) in archive)
        {
            var parsed = CotXml.Parse(bytes);
            var again = CotXml.Parse(CotXml.SerializeToUtf8Bytes(parsed));
            Assert.Equal(parsed, again);
            Assert.Equal(parsed, CotXml.Parse(CotXml.Serialize(parsed)));
            Assert.StartsWith("cot/" + parsed.Type + "/", name, StringComparison.Ordinal);
            types[parsed.Type] = types.GetValueOrDefault(parsed.Type) + 1;
        }

        Assert.Equal(ExpectedTypes.OrderBy(t => t.Key, StringComparer.Ordinal), types.OrderBy(t => t.Key, StringComparer.Ordinal));
    }

    [Fact]
    public void Every_real_capture_keeps_every_detail_element()
    {
        foreach (var (_, bytes) in Captures.FreeTakServerArchive)
        {
            var parsed = CotXml.Parse(bytes);
            var original = System.Xml.Linq.XElement.Parse(Encoding.UTF8.GetString(bytes)).Element("detail")!;
            var expected = original.Elements().Select(e => e.Name.LocalName).ToList();
            Assert.Equal(expected, parsed.Detail.ElementNames.ToList());
        }
    }

    [Fact]
    public void Every_real_capture_survives_the_tak_protocol_round_trip()
    {
        foreach (var (_, bytes) in Captures.FreeTakServerArchive)
        {
            var parsed = CotXml.Parse(bytes);
            var frame = TakFraming.EncodeStreamFrame(parsed.ToTakMessage());
            var framer = new TakStreamFramer();
            framer.Append(frame);
            Assert.True(framer.TryReadMessage(out var message));
            var back = message.CotEvent!.ToCotEvent();

            Assert.Equal(parsed with { Detail = CotDetail.Empty }, back with { Detail = CotDetail.Empty });
            Assert.Equal(Captures.Elements(parsed.Detail), Captures.Elements(back.Detail));
        }
    }

    [Fact]
    public void Real_captures_read_and_write_the_same_under_a_comma_decimal_culture()
    {
        var invariant = Captures.FreeTakServerArchive.Take(100).Select(c => CotXml.Serialize(CotXml.Parse(c.Bytes))).ToList();
        var previous = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("fr-FR");
            CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo("fr-FR");
            var french = Captures.FreeTakServerArchive.Take(100).Select(c => CotXml.Serialize(CotXml.Parse(c.Bytes))).ToList();
            Assert.Equal(invariant, french);
            Assert.Contains("lat=\"43.", string.Concat(french), StringComparison.Ordinal);
        }
        finally
        {
            CultureInfo.CurrentCulture = previous;
            CultureInfo.CurrentUICulture = previous;
        }
    }
}

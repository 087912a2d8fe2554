using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using System.Xml.Linq;

namespace Concord.Cot.Tests;

// Real captures copied next to the test assembly (see the csproj); never read from ../shared.
internal static class Captures
{
    private static Lazy<IReadOnlyList<(string Name, byte[] Bytes)>> Archive { get; } = new(ReadArchive);

    public static string PathOf(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "cot", .. parts]);

    public static byte[] Bytes(params string[] parts) => File.ReadAllBytes(PathOf(parts));

    public static string Text(params string[] parts) => File.ReadAllText(PathOf(parts));

    public static IReadOnlyList<(string Name, byte[] Bytes)> FreeTakServerArchive => Archive.Value;

    public static IEnumerable<string> SampleNames =>
        Directory.GetFiles(PathOf("samples"), "*.xml").Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    public static JsonElement Vector(string name)
    {
        using var json = JsonDocument.Parse(Bytes("tak_proto_v1_vectors_node-cot.json"));
        foreach (var vector in json.RootElement.GetProperty("vectors").EnumerateArray())
        {
            if (vector.GetProperty("name").GetString() == name)
            {
                return vector.Clone();
            }
        }

        throw new InvalidOperationException("no vector " + name);
    }

    public static IEnumerable<string> VectorNames => ["pli", "chat", "hostile", "spot"];

    // Each direct child of <detail> as a comparable string: attributes sorted, numbers normalised.
    public static List<string> Elements(CotDetail detail, params string[] except)
    {
        var root = XElement.Parse("<detail>" + detail.Xml + "</detail>");
        return root.Elements()
            .Where(e => !except.Contains(e.Name.LocalName))
            .Select(Normalise)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    private static string Normalise(XElement element)
    {
        var copy = new XElement(element.Name);
        foreach (var attribute in element.Attributes().OrderBy(a => a.Name.LocalName, StringComparer.Ordinal))
        {
            var value = double.TryParse(attribute.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                && attribute.Value.Any(char.IsAsciiDigit)
                ? number.ToString("R", CultureInfo.InvariantCulture)
                : attribute.Value;
            copy.SetAttributeValue(attribute.Name, value);
        }

        foreach (var node in element.Nodes())
        {
            copy.Add(node is XElement child ? XElement.Parse(Normalise(child)) : node);
        }

        return copy.ToString(SaveOptions.DisableFormatting);
    }

    private static List<(string Name, byte[] Bytes)> ReadArchive()
    {
        var entries = new List<(string, byte[])>();
        using var file = File.OpenRead(PathOf("freetakserver_example_cot_2020.tar.gz"));
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
            {
                continue;
            }

            using var memory = new MemoryStream();
            entry.DataStream.CopyTo(memory);
            entries.Add((entry.Name, memory.ToArray()));
        }

        return entries;
    }

    public static byte[] FromHex(string hex) => Convert.FromHexString(hex);

    // Feeds bytes to a framer in random-sized chunks and returns copies of every framed document.
    public static List<byte[]> FrameInChunks(CotXmlFramer framer, byte[] stream, Random random, int maxChunk)
    {
        var documents = new List<byte[]>();
        var at = 0;
        while (at < stream.Length)
        {
            var size = Math.Min(random.Next(1, maxChunk + 1), stream.Length - at);
            framer.Append(stream.AsSpan(at, size));
            at += size;
            while (framer.TryReadEvent(out var document))
            {
                documents.Add(document.ToArray());
            }
        }

        return documents;
    }
}

using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace Concord.Cot.Tests;

// Seeded, time-boxed mutation fuzzing of real captures: the codec may refuse input, but only with
// CotParseException or CotFramingException, and it must never hang.
public sealed class FuzzTests(ITestOutputHelper output)
{
    private static readonly byte[][] Tokens =
    [
        .. new[]
        {
            "<", ">", "/>", "\"", "'", "=", "&", "&amp;", "&#0;", "&#x1F680;", "&lol;", "</event>", "<event ", "<event>", "<detail>",
            "</detail>", "<point lat=\"91\" lon=\"0\"/>", "<!--", "-->", "<![CDATA[", "]]>", "<?xml version='1.0'?>", "?>",
            "<!DOCTYPE event [<!ENTITY a \"b\">]>", " uid=''", " lat='NaN'", " time='2020-02-30T00:00:00Z'", "\r\n", "\t", "é", "🚁",
        }.Select(Encoding.UTF8.GetBytes),
        [0xbf],
        [0xbf, 0x01, 0xbf],
        [0xff, 0xfe],
        [0xc3],
        [0xf0, 0x9f],
        [0x00],
        Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("<a>", 40))),
    ];

    [Fact]
    public async Task Mutated_xml_captures_only_ever_fail_with_codec_exceptions_and_never_hang()
    {
        var seeds = new List<byte[]>();
        seeds.AddRange(Captures.SampleNames.Select(name => Captures.Bytes("samples", name)));
        seeds.Add(Captures.Bytes("node-tak-capture", "node-tak-8.3.0_tls_client_to_server.bin"));
        seeds.Add(Captures.Bytes("node-tak-capture", "node-cot_plain_tcp_client_to_server.bin"));
        seeds.Add(Captures.Bytes("node-tak-capture", "server_to_client_reply.txt"));
        seeds.AddRange(Captures.FreeTakServerArchive.Where((_, i) => i % 25 == 0).Select(c => c.Bytes));

        var run = Task.Run(() => FuzzXml(seeds, new Random(20261122), TimeSpan.FromSeconds(3)));
        var stats = await run.WaitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"{stats.Iterations} inputs, {stats.Parsed} accepted, {stats.Refused} refused");
        Assert.True(stats.Parsed > 0 && stats.Refused > 0, $"parsed {stats.Parsed}, refused {stats.Refused}");
    }

    [Fact]
    public async Task Mutated_protobuf_frames_only_ever_fail_with_codec_exceptions_and_never_hang()
    {
        var seeds = Captures.VectorNames
            .SelectMany(v => new[] { "takmessage_v1_hex", "stream_frame_hex", "mesh_frame_hex" }.Select(f => Captures.FromHex(Captures.Vector(v).GetProperty(f).GetString()!)))
            .ToList();

        var run = Task.Run(() => FuzzProtobuf(seeds, new Random(5), TimeSpan.FromSeconds(1.5)));
        var stats = await run.WaitAsync(TimeSpan.FromSeconds(60));

        output.WriteLine($"{stats.Iterations} inputs, {stats.Parsed} accepted, {stats.Refused} refused");
        Assert.True(stats.Parsed > 0 && stats.Refused > 0, $"parsed {stats.Parsed}, refused {stats.Refused}");
    }

    /// <summary>
    /// Inputs tried at the least, however long they take: a time budget alone tried too few on a loaded machine (and the
    /// test's minute-long wait is what catches a hang).
    /// </summary>
    private const int MinimumIterations = 500;

    private static Stats FuzzXml(List<byte[]> seeds, Random random, TimeSpan budget)
    {
        var stats = new Stats();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < budget || stats.Iterations < MinimumIterations)
        {
            stats.Iterations++;
            var input = Mutate(seeds[random.Next(seeds.Count)], random);
            Parse(input, stats);

            var framer = new CotXmlFramer(random.Next(2) == 0 ? CotParseOptions.DefaultMaxDocumentBytes : 600);
            var at = 0;
            while (at < input.Length)
            {
                var size = Math.Min(random.Next(1, 400), input.Length - at);
                framer.Append(input.AsSpan(at, size));
                at += size;
                for (var reads = 0; reads < 10_000; reads++)
                {
                    try
                    {
                        if (!framer.TryReadEvent(out var document))
                        {
                            break;
                        }

                        Parse(document.ToArray(), stats);
                    }
                    catch (CotFramingException e)
                    {
                        Assert.False(string.IsNullOrEmpty(e.Reason));
                        stats.Refused++;
                    }
                }

                Assert.True(framer.BufferedBytes <= (2 * CotParseOptions.DefaultMaxDocumentBytes) + 400);
            }
        }

        return stats;
    }

    private static void Parse(byte[] input, Stats stats)
    {
        CotEvent parsed;
        try
        {
            parsed = CotXml.Parse(input);
        }
        catch (CotParseException e)
        {
            Assert.False(string.IsNullOrEmpty(e.Reason));
            stats.Refused++;
            return;
        }

        stats.Parsed++;
        // Whatever the parser accepts must serialise to something it reads back identically, under the same limits (a
        // refusal of its own output is a failure, not a refusal of the input).
        Assert.Equal(parsed, CotXml.Parse(CotXml.SerializeToUtf8Bytes(parsed)));
        var viaProtobuf = TakProtobuf.Decode(TakProtobuf.Encode(parsed.ToTakMessage())).CotEvent!.ToCotEvent();
        Assert.Equal(parsed.Uid, viaProtobuf.Uid);
        Assert.Equal(parsed.Point, viaProtobuf.Point);
    }

    private static Stats FuzzProtobuf(List<byte[]> seeds, Random random, TimeSpan budget)
    {
        var stats = new Stats();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < budget || stats.Iterations < MinimumIterations)
        {
            stats.Iterations++;
            var input = Mutate(seeds[random.Next(seeds.Count)], random);
            Decode(() => TakProtobuf.Decode(input), stats);
            Decode(() => TakFraming.DecodeMeshDatagram(input), stats);

            var framer = new TakStreamFramer(random.Next(2) == 0 ? CotParseOptions.DefaultMaxDocumentBytes : 300);
            var at = 0;
            while (at < input.Length && !framer.IsFaulted)
            {
                var size = Math.Min(random.Next(1, 300), input.Length - at);
                framer.Append(input.AsSpan(at, size));
                at += size;
                for (var reads = 0; reads < 10_000; reads++)
                {
                    try
                    {
                        if (!framer.TryReadPayload(out var payload))
                        {
                            break;
                        }

                        var bytes = payload.ToArray();
                        Decode(() => TakProtobuf.Decode(bytes), stats);
                    }
                    catch (CotFramingException)
                    {
                        stats.Refused++;
                        if (framer.IsFaulted)
                        {
                            break;
                        }
                    }
                }
            }
        }

        return stats;
    }

    private static void Decode(Func<TakMessage> decode, Stats stats)
    {
        try
        {
            var message = decode();
            Assert.Equal(message, TakProtobuf.Decode(TakProtobuf.Encode(message)));
            if (message.CotEvent is { } takEvent)
            {
                var cotEvent = takEvent.ToCotEvent();
                Assert.Equal(cotEvent, CotXml.Parse(CotXml.Serialize(cotEvent)));
            }

            stats.Parsed++;
        }
        catch (Exception e) when (e is CotParseException or CotFramingException)
        {
            stats.Refused++;
        }
    }

    private static byte[] Mutate(byte[] seed, Random random)
    {
        var bytes = new List<byte>(seed);
        var mutations = random.Next(1, 5);
        for (var i = 0; i < mutations; i++)
        {
            var at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
            switch (random.Next(7))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes.InsertRange(at, Tokens[random.Next(Tokens.Length)]);
                    break;
                case 3 when bytes.Count > 0:
                    bytes.RemoveRange(at, Math.Min(random.Next(1, 64), bytes.Count - at));
                    break;
                case 4 when bytes.Count > 0:
                    var length = Math.Min(random.Next(1, 200), bytes.Count - at);
                    bytes.InsertRange(random.Next(bytes.Count), bytes.GetRange(at, length));
                    break;
                case 5:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                default:
                    break;
            }
        }

        return [.. bytes];
    }

    private sealed class Stats
    {
        public int Iterations { get; set; }

        public int Parsed { get; set; }

        public int Refused { get; set; }
    }
}

using System.Globalization;
using System.Text;
using Concord.Server.Import;

namespace Concord.Server.Tests;

/// <summary>GeoJSON import reads a FeatureCollection one feature at a time, whatever its size and layout.</summary>
public sealed class FeatureStreamTests
{
    private static string Feature(int n, string narrative = "x") => string.Create(CultureInfo.InvariantCulture,
        $$"""{ "type": "Feature", "id": "f{{n}}", "geometry": { "type": "Point", "coordinates": [18.5, 4.3] }, "properties": { "observedAt": "2025-06-01", "category": "poc", "narrative": "{{narrative}}" } }""");

    private static List<FeatureStream.Step> All(TextReader text, int maxFeatureBytes = 4096)
    {
        var stream = new FeatureStream(text, maxFeatureBytes);
        var steps = new List<FeatureStream.Step>();
        for (var step = stream.Next(); step.Kind != FeatureStream.StepKind.End; step = stream.Next())
        {
            steps.Add(step);
            if (step.Kind == FeatureStream.StepKind.Broken)
            {
                break;
            }
        }

        return steps;
    }

    private static string? Id(FeatureStream.Step step) => step.Feature?.RootElement.GetProperty("id").GetString();

    [Fact]
    public void A_features_id_is_the_same_whole_number_however_it_is_written()
    {
        // GeoPandas and GDAL write an integer column as 7.0 once it has a missing value: the same features, imported again
        // from such a file, are the same reports, not new ones. A blank properties.id leaves the feature's own id.
        static string? Reference(string feature) => ImportReaders.Read(ImportFormat.GeoJson, new StringReader($$"""{ "type": "FeatureCollection", "features": [{{feature}}] }"""),
            new Access.MarkingDto("UNCLASSIFIED", ["mission"], []), "geopandas").Single().Report?.ExternalRef;
        static string With(string id, string properties = "") =>
            $$"""{ "type": "Feature", "id": {{id}}, "geometry": { "type": "Point", "coordinates": [18.5, 4.3] }, "properties": { {{properties}}"observedAt": "2025-06-01", "category": "poc", "narrative": "x" } }""";

        var seven = Reference(With("7"));
        Assert.NotNull(seven);
        Assert.Equal(seven, Reference(With("7.0")));
        Assert.Equal(seven, Reference(With("\"7\"")));
        Assert.Equal(seven, Reference(With("\" 7 \"")));
        Assert.Equal(seven, Reference(With("\"other\"", "\"id\": \"7\\t\", ")));
        Assert.Equal(seven, Reference(With("70e-1")));
        Assert.Equal(seven, Reference(With("\"other\"", "\"id\": 7.0, ")));
        Assert.Equal(seven, Reference(With("7", "\"id\": \" \", ")));
        Assert.NotEqual(seven, Reference(With("7.5")));
    }

    [Fact]
    public void A_large_collection_is_read_feature_by_feature_in_bounded_memory()
    {
        // About 40 MB of features, with members before and after the features (skipped wherever they stand).
        const int Count = 200_000;
        var stream = new FeatureStream(new LargeCollection(Count), 1024 * 1024);
        var n = 0;
        var largest = 0;
        for (var step = stream.Next(); step.Kind != FeatureStream.StepKind.End; step = stream.Next())
        {
            Assert.Equal(FeatureStream.StepKind.Feature, step.Kind);
            Assert.Null(step.Reason);
            using (step.Feature)
            {
                Assert.Equal($"f{n}", Id(step));
            }

            n++;
            largest = Math.Max(largest, stream.BufferBytes);
        }

        Assert.Equal(Count, n);
        Assert.True(largest <= 256 * 1024, $"the reader held {largest} bytes");
    }

    [Fact]
    public void Features_that_cannot_be_imported_are_named_and_the_rest_are_read()
    {
        var huge = new string('a', 10_000);
        var text = $$"""
            {"type":"FeatureCollection","name":{"nested":[1,2,{"features":[]}]},"features":[
              {{Feature(1)}},
              null,
              "not a feature",
              {{Feature(4, huge)}},
              {{Feature(5, "d\uFFFDcoded badly")}},
              {{Feature(6, "caf\u00e9 \ud83d\ude00")}},
              {{Feature(7, new string('b', 20_000))}},
              {{Feature(8)}}
            ],"bbox":[18,4,19,5]}
            """;
        var steps = All(new StringReader(text));

        // Feature 4 is read whole and found too large; feature 7 is too large before it is read whole, and is skipped.
        Assert.Equal(8, steps.Count);
        Assert.Equal("f1", Id(steps[0]));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, steps[1].Feature!.RootElement.ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.String, steps[2].Feature!.RootElement.ValueKind);
        Assert.Null(steps[3].Feature);
        Assert.Contains("larger than 4 KB", steps[3].Reason);
        Assert.Contains("not UTF-8", steps[4].Reason);
        Assert.Null(steps[5].Reason);
        Assert.Equal("caf\u00e9 \ud83d\ude00", steps[5].Feature!.RootElement.GetProperty("properties").GetProperty("narrative").GetString());
        Assert.Null(steps[6].Feature);
        Assert.Contains("larger than 4 KB", steps[6].Reason);
        Assert.Equal("f8", Id(steps[7]));
    }

    [Fact]
    public void A_feature_that_is_not_JSON_costs_only_itself()
    {
        // NaN where a figure is missing (Python's json.dumps writes it so), brackets and escaped quotes inside its strings;
        // a feature nested deeper than the reader goes; one whose fault comes before the end of the text held (its end
        // is read in a later chunk). Each is returned with the reason, and the features after it are read.
        static string Bad(string id, string properties) =>
            $$"""{ "type": "Feature", "id": "{{id}}", "geometry": { "type": "Point", "coordinates": [18.5, 4.3] }, "properties": {{properties}} }""";
        var deep = string.Concat(Enumerable.Repeat("{\"a\": ", 70)) + "1" + new string('}', 70);
        var text = "{\"type\": \"FeatureCollection\", \"features\": [" + string.Join(", ",
            Feature(1),
            Bad("nan", "{ \"narrative\": \"a } ] \\\" { b\", \"killed\": NaN }"),
            Feature(3),
            Bad("deep", deep),
            Feature(5),
            Bad("long", "{ \"killed\": Infinity, \"narrative\": \"" + new string('x', 40_000) + "\" }"),
            Feature(7)) + "]}";

        var steps = All(new StringReader(text), maxFeatureBytes: 64 * 1024);

        Assert.Equal(7, steps.Count);
        Assert.All(steps, s => Assert.Equal(FeatureStream.StepKind.Feature, s.Kind));
        Assert.Equal(["f1", "f3", "f5", "f7"], steps.Where(s => s.Feature is not null).Select(Id));
        Assert.Equal([1, 3, 5], steps.Select((s, i) => (s, i)).Where(p => p.s.Feature is null).Select(p => p.i));
        Assert.All(steps.Where(s => s.Feature is null), s => Assert.StartsWith("feature is not valid JSON: ", s.Reason, StringComparison.Ordinal));
        Assert.DoesNotContain("LineNumber", steps[1].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_member_of_the_collection_that_is_not_JSON_costs_nothing()
    {
        // GeoPandas writes a bbox of NaN for an empty layer's bounds; a crs may nest deeper than the reader goes; a bare
        // word may stand where a figure is missing, before the features or after them, or reach into the next chunk of text.
        var deep = string.Concat(Enumerable.Repeat("{\"a\": ", 70)) + "1" + new string('}', 70);
        var text = "{\"type\": \"FeatureCollection\", \"bbox\": [NaN, NaN, NaN, NaN], \"crs\": " + deep
            + ", \"count\" :  -Infinity,\n\"name\": \"" + new string('n', 40_000) + "\", \"scale\": NaN, \"long\": [NaN, \"" + new string('l', 100_000)
            + "\"], \"features\": ["
            + string.Join(", ", Feature(1), Feature(2)) + "], \"bbox2\": { \"w\": NaN }, \"last\": NaN}";

        var steps = All(new StringReader(text), maxFeatureBytes: 64 * 1024);

        Assert.Equal(["f1", "f2"], steps.Select(Id));
        Assert.All(steps, s => Assert.Equal(FeatureStream.StepKind.Feature, s.Kind));
        Assert.All(steps, s => Assert.Null(s.Reason));

        // Only the words Python writes for a figure that is no number are put aside: any other bare word is no JSON, and
        // the document breaks off there with the reason.
        var word = All(new StringReader("{\"name\": Layer1, \"features\": [" + Feature(1) + "]}"));
        Assert.Equal(FeatureStream.StepKind.Broken, Assert.Single(word).Kind);
        Assert.Contains("not valid JSON", word[0].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_feature_too_large_to_hold_costs_only_itself_whatever_it_holds()
    {
        // Features over the limit are skipped by their brackets, whatever is inside: NaN near the start (the reader fails
        // before the end is held), NaN after the limit, nesting deeper than the reader goes, brackets and escaped quotes in
        // strings, and a single string (a single value is held, up to eight times the limit). The buffer never holds one
        // of the features whole.
        static string Bad(string id, string properties) =>
            $$"""{ "type": "Feature", "id": "{{id}}", "geometry": { "type": "Polygon", "coordinates": [[{{string.Join(", ", Enumerable.Repeat("[18.5, 4.3]", 20_000))}}]] }, "properties": {{properties}} }""";
        var deep = string.Concat(Enumerable.Repeat("{\"a\": ", 70)) + "1" + new string('}', 70);
        var text = "{\"type\": \"FeatureCollection\", \"features\": [" + string.Join(",\n",
            Feature(1),
            $$"""{ "type": "Feature", "properties": { "killed": NaN, "narrative": "{{new string('x', 300_000)}}" } }""",
            Feature(3),
            Bad("late-nan", "{ \"narrative\": \"a } ] \\\" { b\", \"killed\": NaN }"),
            Feature(5),
            Bad("deep", deep),
            Feature(7),
            "\"" + new string('s', 100_000) + "\"",
            Feature(9)) + "]}";

        var stream = new FeatureStream(new StringReader(text), 64 * 1024);
        var steps = new List<FeatureStream.Step>();
        var largest = 0;
        for (var step = stream.Next(); step.Kind != FeatureStream.StepKind.End; step = stream.Next())
        {
            Assert.Equal(FeatureStream.StepKind.Feature, step.Kind);
            steps.Add(step);
            largest = Math.Max(largest, stream.BufferBytes);
        }

        Assert.Equal(9, steps.Count);
        Assert.Equal(["f1", "f3", "f5", "f7", "f9"], steps.Where(s => s.Feature is not null).Select(Id));
        Assert.Equal([1, 3, 5, 7], steps.Select((s, i) => (s, i)).Where(p => p.s.Feature is null).Select(p => p.i));
        Assert.All(steps.Where(s => s.Feature is null), s => Assert.Contains("larger than 64 KB", s.Reason, StringComparison.Ordinal));
        Assert.True(largest <= 256 * 1024, $"the reader held {largest} bytes");
    }

    [Theory]
    [InlineData("[1, 2]", "not an object")]
    [InlineData("{\"type\": \"FeatureCollection\"}", "no 'features' array")]
    [InlineData("{\"features\": {}}", "'features' is not an array")]
    [InlineData("{\"features\": [{\"id\": 1}, {\"id\": ", "not valid JSON")]
    [InlineData("{\"features\": [{\"id\": 1} {\"id\": 2}]}", "not valid JSON")]
    [InlineData("{\"features\": [{\"id\": 1}, {\"id\": \"open]}", "not valid JSON")]
    [InlineData("{\"features\": [{\"id\": 1}], \"name\": \"HUGE\"}", "without the end of a value")]
    [InlineData("{\"features\": [{\"id\": 1}], \"features\": [{\"id\": 2}]}", "a second 'features' member")]
    [InlineData("{\"features\": [{\"id\": 1}], \"bbox\": NaN NaN}", "not valid JSON")]
    [InlineData("{\"features\": [{\"id\": 1}], \"bbox\" NaN}", "not valid JSON")]
    [InlineData("{\"features\": NaN}", "'features' is not an array")]
    [InlineData("{\"features\": [{\"id\": 1}]}\n{\"features\": [{\"id\": 2}]}\n", "more text after the end of the feature collection")]
    [InlineData("{\"features\": [{\"id\": 1}]} ,", "more text after the end of the feature collection")]
    public void A_document_that_breaks_off_keeps_the_features_before_it(string text, string reason)
    {
        var steps = All(new StringReader(text.Replace("HUGE", new string('h', 100_000), StringComparison.Ordinal)));
        var broken = steps[^1];
        Assert.Equal(FeatureStream.StepKind.Broken, broken.Kind);
        Assert.Contains(reason, broken.Reason);
        Assert.All(steps[..^1], s => Assert.Equal(FeatureStream.StepKind.Feature, s.Kind));
        Assert.Equal(text.Contains("[{\"id\": 1}", StringComparison.Ordinal) ? 1 : 0, steps.Count - 1);
    }

    [Fact]
    public void White_space_after_the_collection_ends_it_as_usual()
    {
        var steps = All(new StringReader("{\"features\": [" + Feature(1) + "]}\r\n" + new string(' ', 100_000) + "\n\t\n"));
        Assert.Equal("f1", Id(Assert.Single(steps)));
    }

    /// <summary>A FeatureCollection written as it is read, never held whole.</summary>
    private sealed class LargeCollection(int count) : TextReader
    {
        private readonly StringBuilder _pending = new("{\"type\":\"FeatureCollection\",\"crs\":{\"type\":\"name\"},\"features\":[");
        private int _next;
        private int _offset;
        private bool _closed;

        public override int Read(char[] buffer, int index, int length)
        {
            while (_pending.Length - _offset < length && !_closed)
            {
                if (_offset > 0)
                {
                    _pending.Remove(0, _offset);
                    _offset = 0;
                }

                if (_next < count)
                {
                    _pending.Append(_next > 0 ? "," : "").Append(Feature(_next, "an account of what happened at the market, in a few words " + _next));
                    _next++;
                }
                else
                {
                    _pending.Append("],\"bbox\":[18,4,19,5]}");
                    _closed = true;
                }
            }

            var n = Math.Min(length, _pending.Length - _offset);
            _pending.CopyTo(_offset, buffer, index, n);
            _offset += n;
            return n;
        }
    }
}

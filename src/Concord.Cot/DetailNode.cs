namespace Concord.Cot;

// One direct child element of <detail>: where its canonical XML sits in CotDetail.Xml and, for the
// elements we interpret, its attributes.
internal readonly record struct DetailNode(string Name, int Start, int Length, KeyValuePair<string, string>[]? Attributes, bool HasContent)
{
    internal string? Attribute(string name)
    {
        if (Attributes is null)
        {
            return null;
        }

        foreach (var attribute in Attributes)
        {
            if (string.Equals(attribute.Key, name, StringComparison.Ordinal))
            {
                return attribute.Value;
            }
        }

        return null;
    }

    // Elements whose attributes the typed accessors or the TAK protocol mapping read.
    internal static bool IsInterpreted(string name) => name switch
    {
        "contact" or "__group" or "remarks" or "__chat" or "__chatreceipt" or "link" or "_flow-tags_" or "status" or "track"
            or "takv" or "precisionlocation" or "__concord" => true,
        _ => false,
    };
}

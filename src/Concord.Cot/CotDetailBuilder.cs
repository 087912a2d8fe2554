using System.Globalization;
using System.Text;
using System.Xml;

namespace Concord.Cot;

/// <summary>Builds detail XML for events Concord originates; values are escaped, null attributes omitted.</summary>
public sealed class CotDetailBuilder
{
    private readonly StringBuilder _xml = new();

    public CotDetailBuilder Element(string name, params ReadOnlySpan<(string Name, string? Value)> attributes)
    {
        StartTag(name, attributes);
        _xml.Append("/>");
        return this;
    }

    /// <summary>An element whose content is the elements of <paramref name="children"/>.</summary>
    public CotDetailBuilder Element(string name, CotDetailBuilder children, params ReadOnlySpan<(string Name, string? Value)> attributes)
    {
        ArgumentNullException.ThrowIfNull(children);
        StartTag(name, attributes);
        _xml.Append('>').Append(children._xml).Append("</").Append(name).Append('>');
        return this;
    }

    public CotDetailBuilder TextElement(string name, string text, params ReadOnlySpan<(string Name, string? Value)> attributes)
    {
        ArgumentNullException.ThrowIfNull(text);
        StartTag(name, attributes);
        _xml.Append('>');
        XmlText.AppendEscaped(_xml, text, attribute: false);
        _xml.Append("</").Append(name).Append('>');
        return this;
    }

    public CotDetailBuilder Contact(string callsign, string? endpoint = null) =>
        Element("contact", ("callsign", callsign), ("endpoint", endpoint));

    public CotDetailBuilder Group(string name, string role) => Element("__group", ("name", name), ("role", role));

    public CotDetailBuilder Remarks(string text) => TextElement("remarks", text);

    public CotDetailBuilder Track(double course, double speed) =>
        Element("track", ("course", CotNumber.ToText(course)), ("speed", CotNumber.ToText(speed)));

    public CotDetailBuilder Status(int battery) => Element("status", ("battery", battery.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Concord's security marking element, &lt;__concord marking="…"/&gt;.</summary>
    public CotDetailBuilder Marking(string marking) => Element("__concord", ("marking", marking));

    /// <summary>Appends the children of an existing detail.</summary>
    public CotDetailBuilder Append(CotDetail detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        _xml.Append(detail.Xml);
        return this;
    }

    public CotDetail Build() => CotDetail.Parse(_xml.ToString());

    private void StartTag(string name, ReadOnlySpan<(string Name, string? Value)> attributes)
    {
        VerifyName(name);
        _xml.Append('<').Append(name);
        foreach (var (attributeName, value) in attributes)
        {
            VerifyName(attributeName);
            if (value is not null)
            {
                XmlText.AppendAttribute(_xml, attributeName, value);
            }
        }
    }

    private static void VerifyName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        try
        {
            XmlConvert.VerifyName(name);
        }
        catch (XmlException e)
        {
            throw new ArgumentException("'" + name + "' is not an XML name", nameof(name), e);
        }
    }
}

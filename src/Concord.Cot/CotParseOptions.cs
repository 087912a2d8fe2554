using System.Xml;

namespace Concord.Cot;

/// <summary>Limits applied when parsing untrusted CoT XML.</summary>
public sealed class CotParseOptions
{
    public const int DefaultMaxDocumentBytes = 64 * 1024;
    public const int DefaultMaxDepth = 32;

    private XmlReaderSettings? _readerSettings;

    public static CotParseOptions Default { get; } = new();

    /// <summary>Largest accepted document, in bytes for UTF-8 input and characters for string input.</summary>
    public int MaxDocumentBytes
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 64);
            field = value;
        }
    } = DefaultMaxDocumentBytes;

    /// <summary>Deepest accepted element nesting; &lt;event&gt; is level 1, &lt;detail&gt; level 2.</summary>
    public int MaxDepth
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 3);
            field = value;
        }
    } = DefaultMaxDepth;

    internal XmlReaderSettings ReaderSettings => _readerSettings ??= new XmlReaderSettings
    {
        DtdProcessing = DtdProcessing.Prohibit,
        XmlResolver = null,
        MaxCharactersInDocument = MaxDocumentBytes,
        MaxCharactersFromEntities = 1024,
        IgnoreComments = true,
        IgnoreProcessingInstructions = true,
        IgnoreWhitespace = false,
        CheckCharacters = true,
        CloseInput = true,
        ConformanceLevel = ConformanceLevel.Document,
    };
}

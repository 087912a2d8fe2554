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

    [ThreadStatic]
    private static ThreadCache? _threadSettings;

    internal XmlReaderSettings ReaderSettings => _readerSettings ??= CreateReaderSettings(nameTable: null);

    // XmlReader atomises every element and attribute name into its NameTable; a fresh table per event
    // costs more than the parse itself. Each thread keeps one per options instance and starts a new one
    // every 64 documents, so names from hostile input cannot pile up.
    internal XmlReaderSettings ThreadReaderSettings()
    {
        var cached = _threadSettings;
        if (cached is null || !ReferenceEquals(cached.Options, this) || ++cached.Uses > 64)
        {
            cached = new ThreadCache(this, CreateReaderSettings(new NameTable()));
            _threadSettings = cached;
        }

        return cached.Settings;
    }

    private XmlReaderSettings CreateReaderSettings(XmlNameTable? nameTable) => new()
    {
        NameTable = nameTable,
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

    private sealed class ThreadCache(CotParseOptions options, XmlReaderSettings settings)
    {
        public CotParseOptions Options { get; } = options;

        public XmlReaderSettings Settings { get; } = settings;

        public int Uses { get; set; }
    }
}

using System.Globalization;
using System.Text;

namespace CaptureAgent.Targets.Lvm;

public enum MetadataValueKind { Integer, Float, String, Array }

/// <summary>A value of the text metadata: an integer, a number with a point (kept as text), a string, or an array of those.</summary>
public sealed class MetadataValue
{
    public MetadataValueKind Kind { get; private init; }
    public long Integer { get; private init; }
    /// <summary>The string, or a float's text.</summary>
    public string Text { get; private init; } = "";
    public IReadOnlyList<MetadataValue> Items { get; private init; } = [];

    public static MetadataValue Of(long n) => new() { Kind = MetadataValueKind.Integer, Integer = n };
    public static MetadataValue Of(string s) => new() { Kind = MetadataValueKind.String, Text = s };
    public static MetadataValue FloatOf(string s) => new() { Kind = MetadataValueKind.Float, Text = s };
    public static MetadataValue Of(List<MetadataValue> items) => new() { Kind = MetadataValueKind.Array, Items = items };

    public override string ToString() => Kind switch
    {
        MetadataValueKind.Integer => Integer.ToString(CultureInfo.InvariantCulture),
        MetadataValueKind.String => "\"" + Text + "\"",
        MetadataValueKind.Float => Text,
        _ => "[" + string.Join(", ", Items) + "]",
    };
}

/// <summary>A section of the text metadata: <c>name { key = value ... subsection { ... } }</c>, in file order.</summary>
public sealed class MetadataSection(string name)
{
    private readonly Dictionary<string, MetadataValue> _values = new(StringComparer.Ordinal);
    private readonly List<MetadataSection> _sections = [];

    public string Name { get; } = name;
    public IReadOnlyList<MetadataSection> Sections => _sections;
    public IReadOnlyDictionary<string, MetadataValue> Values => _values;

    public MetadataSection? Section(string name) => _sections.FirstOrDefault(s => s.Name == name);
    public MetadataValue? Value(string key) => _values.GetValueOrDefault(key);

    internal bool Has(string name) => _values.ContainsKey(name) || _sections.Any(s => s.Name == name);
    internal void Add(string key, MetadataValue value) => _values.Add(key, value);
    internal void Add(MetadataSection section) => _sections.Add(section);
}

/// <summary>
/// A parser of LVM's text metadata (the grammar of libdm's config parser): sections
/// <c>name { ... }</c>, <c>key = value</c>, values that are integers, numbers with a point,
/// "strings" with backslash escapes, 'strings' without, bare words, and <c>[ ... ]</c> arrays of
/// those; # starts a comment; a NUL ends the text. Written for hostile input: nesting, the number
/// of entries and every token are bounded, and a duplicate key is an error rather than a choice.
/// </summary>
public sealed class MetadataText
{
    public const int MaxDepth = 16;
    public const int MaxEntries = 200_000;
    private readonly byte[] _text;
    private readonly int _end;
    private int _pos, _line = 1, _entries;

    private MetadataText(byte[] text)
    {
        _text = text;
        int nul = Array.IndexOf(text, (byte)0);
        _end = nul < 0 ? text.Length : nul;
    }

    /// <summary>The whole text as one unnamed section holding the top-level entries.</summary>
    public static MetadataSection Parse(byte[] text) => new MetadataText(text).ParseRoot();

    public static MetadataSection Parse(string text) => Parse(Encoding.UTF8.GetBytes(text));

    private MetadataSection ParseRoot()
    {
        var root = new MetadataSection("");
        while (true)
        {
            SkipSpace();
            if (_pos >= _end) return root;
            ParseEntry(root, 1);
        }
    }

    /// <summary><c>name { entries }</c> or <c>name = value</c>, added to <paramref name="parent"/>.</summary>
    private void ParseEntry(MetadataSection parent, int depth)
    {
        if (++_entries > MaxEntries) throw Error($"more than {MaxEntries} entries");
        int line = _line;
        string name = ReadName();
        if (parent.Has(name)) throw Error($"'{name}' appears twice in {Describe(parent)}", line);
        SkipSpace();
        if (Peek() == '{')
        {
            if (depth > MaxDepth) throw Error($"sections nested deeper than {MaxDepth}");
            _pos++;
            var section = new MetadataSection(name);
            while (true)
            {
                SkipSpace();
                if (_pos >= _end) throw Error($"section '{name}' (line {line}) is not closed");
                if (Peek() == '}') { _pos++; break; }
                ParseEntry(section, depth + 1);
            }
            parent.Add(section);
            return;
        }
        if (Peek() != '=') throw Error($"expected '=' or '{{' after '{name}'");
        _pos++;
        SkipSpace();
        parent.Add(name, Peek() == '[' ? ParseArray() : ParseScalar());
    }

    private MetadataValue ParseArray()
    {
        _pos++;   // '['
        var items = new List<MetadataValue>();
        while (true)
        {
            SkipSpace();
            if (_pos >= _end) throw Error("array is not closed");
            if (Peek() == ']') { _pos++; return MetadataValue.Of(items); }
            if (++_entries > MaxEntries) throw Error($"more than {MaxEntries} entries");
            items.Add(ParseScalar());
            SkipSpace();
            if (Peek() == ',') _pos++;
        }
    }

    private MetadataValue ParseScalar()
    {
        if (_pos >= _end) throw Error("value missing at the end of the text");
        byte c = _text[_pos];
        if (c == '"') return MetadataValue.Of(ReadQuoted(escapes: true));
        if (c == '\'') return MetadataValue.Of(ReadQuoted(escapes: false));
        if (c is (byte)'[' or (byte)']' or (byte)'{' or (byte)'}' or (byte)'=' or (byte)',') throw Error($"expected a value, found '{(char)c}'");
        if (char.IsAsciiDigit((char)c) || c is (byte)'+' or (byte)'-' or (byte)'.') return ReadNumber();
        return MetadataValue.Of(ReadBare());
    }

    private MetadataValue ReadNumber()
    {
        int start = _pos++;
        bool point = _text[start] == '.';
        for (; _pos < _end; _pos++)
        {
            char ch = (char)_text[_pos];
            if (char.IsAsciiDigit(ch)) continue;
            if (ch == '.' && !point) { point = true; continue; }
            break;
        }
        string s = Encoding.ASCII.GetString(_text, start, _pos - start);
        if (point)
            return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _) ? MetadataValue.FloatOf(s) : throw Error($"'{s}' is not a number");
        return long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) ? MetadataValue.Of(n) : throw Error($"'{s}' is not a 64-bit integer");
    }

    /// <summary>A section or key name: a bare word, or a quoted string.</summary>
    private string ReadName()
    {
        byte c = Peek();
        string name = c == '"' ? ReadQuoted(true) : c == '\'' ? ReadQuoted(false) : ReadBare();
        return name.Length > 0 ? name : throw Error("empty name");
    }

    /// <summary>A bare word runs to white space, '#', '=', '{' or '}' (libdm's identifier rule).</summary>
    private string ReadBare()
    {
        int start = _pos;
        while (_pos < _end && !IsSpace(_text[_pos]) && _text[_pos] is not ((byte)'#' or (byte)'=' or (byte)'{' or (byte)'}')) _pos++;
        if (_pos == start) throw Error($"unexpected '{(char)Peek()}'");
        return Encoding.UTF8.GetString(_text, start, _pos - start);
    }

    private string ReadQuoted(bool escapes)
    {
        byte quote = _text[_pos++];
        int line = _line;
        var bytes = new List<byte>();
        while (true)
        {
            if (_pos >= _end) throw Error("string is not closed", line);
            byte c = _text[_pos++];
            if (c == quote) return Encoding.UTF8.GetString(bytes.ToArray());
            if (c == '\n') _line++;
            if (escapes && c == '\\' && _pos < _end) c = _text[_pos++];
            bytes.Add(c);
        }
    }

    private void SkipSpace()
    {
        while (_pos < _end)
        {
            byte c = _text[_pos];
            if (c == '#')
            {
                while (_pos < _end && _text[_pos] != '\n') _pos++;
                continue;
            }
            if (!IsSpace(c)) return;
            if (c == '\n') _line++;
            _pos++;
        }
    }

    private byte Peek() => _pos < _end ? _text[_pos] : (byte)0;

    private static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r' or (byte)'\v' or (byte)'\f';

    private static string Describe(MetadataSection s) => s.Name.Length == 0 ? "the top level" : $"section '{s.Name}'";

    /// <summary>The text does not parse: the message names the line.</summary>
    private InvalidDataException Error(string what, int? line = null) => new($"metadata line {line ?? _line}: {what}");
}

using System.Text.Encodings.Web;
using System.Text.Json;

namespace CaptureAgent.Common;

/// <summary>
/// The one way capture-agent writes JSON, for command output (`--json`) and the files it leaves
/// (manifest.json): Utf8JsonWriter (no reflection serializer in an AOT binary), indented,
/// snake_case names, '+' and '&lt;' left unescaped (kernel symbols and log lines stay readable),
/// every document ending with a newline. Each top-level object — and each element of a command
/// whose output is an array — starts with <c>"schema"</c> and <c>"capture_agent_version"</c>, so
/// a script can tell which field set it reads (docs/json-output.md lists them per schema).
/// </summary>
public static class JsonOutput
{
    /// <summary>
    /// The version of the field sets in docs/json-output.md. Raised when a field is removed,
    /// renamed or changes meaning; adding a field keeps it.
    /// </summary>
    public const int Schema = 1;

    public static readonly JsonWriterOptions Options = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The two fields every object of ours starts with.</summary>
    public static void WriteHeader(Utf8JsonWriter w)
    {
        w.WriteNumber("schema", Schema);
        w.WriteString("capture_agent_version", BuildInfo.Version);
    }

    /// <summary>One object: the header, then what <paramref name="body"/> writes, then a newline.</summary>
    public static void WriteObject(Stream output, Action<Utf8JsonWriter> body) =>
        WriteDocument(output, w =>
        {
            w.WriteStartObject();
            WriteHeader(w);
            body(w);
            w.WriteEndObject();
        });

    /// <summary>An array of objects, each starting with the header, then a newline.</summary>
    public static void WriteArray<T>(Stream output, IEnumerable<T> items, Action<Utf8JsonWriter, T> body) =>
        WriteDocument(output, w =>
        {
            w.WriteStartArray();
            foreach (var item in items)
            {
                w.WriteStartObject();
                WriteHeader(w);
                body(w, item);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });

    /// <summary>The object to standard output.</summary>
    public static void WriteObject(Action<Utf8JsonWriter> body) => ToStdout(s => WriteObject(s, body));

    /// <summary>The array to standard output.</summary>
    public static void WriteArray<T>(IEnumerable<T> items, Action<Utf8JsonWriter, T> body) => ToStdout(s => WriteArray(s, items, body));

    /// <summary>
    /// What <paramref name="write"/> writes, through Console.Out: one writer for standard output
    /// whoever redirected it (the in-process tests do). JSON output is small: a report of many dumps is kilobytes.
    /// </summary>
    public static void ToStdout(Action<Stream> write)
    {
        var buf = new MemoryStream();
        write(buf);
        Console.Out.Write(System.Text.Encoding.UTF8.GetString(buf.GetBuffer(), 0, (int)buf.Length));
        Console.Out.Flush();
    }

    /// <summary>The object as UTF-8 bytes (a file's contents).</summary>
    public static byte[] ObjectBytes(Action<Utf8JsonWriter> body)
    {
        var buf = new MemoryStream();
        WriteObject(buf, body);
        return buf.ToArray();
    }

    private static void WriteDocument(Stream output, Action<Utf8JsonWriter> write)
    {
        using (var w = new Utf8JsonWriter(output, Options)) write(w);
        output.Write("\n"u8);
        output.Flush();
    }

    /// <summary>A string or null.</summary>
    public static void StringOrNull(this Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }

    /// <summary>A number or null.</summary>
    public static void NumberOrNull(this Utf8JsonWriter w, string name, long? value)
    {
        if (value is long v) w.WriteNumber(name, v); else w.WriteNull(name);
    }

    /// <summary>An array of strings.</summary>
    public static void StringArray(this Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    /// <summary>A time as the UTC second, "2026-03-01T10:00:07Z" (manifest.json and every command).</summary>
    public static string Time(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
}

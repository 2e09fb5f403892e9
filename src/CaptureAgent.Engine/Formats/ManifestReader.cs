using System.Globalization;
using System.Text.Json;
using CaptureAgent.Common;
namespace CaptureAgent.Formats;

/// <summary>How a manifest is read.</summary>
public enum ManifestReading
{
    /// <summary>`verify`: a field of the wrong type, or a missing "complete" or "files", makes the manifest invalid.</summary>
    Strict,
    /// <summary>
    /// `report`: whatever can be learnt. Wrong or missing fields are left at their defaults, a
    /// file entry without a plain name is skipped, a file without a size gets -1, and camelCase
    /// names (written by early agents and hand-made manifests) are accepted too.
    /// </summary>
    Lenient,
}

/// <summary>
/// The one reader of manifest.json (<see cref="DumpManifest"/>): one code path, the mode decides
/// only whether a field that does not fit is an error or is left out.
/// </summary>
public static class ManifestReader
{
    /// <summary>The largest manifest read: a real one is a few hundred bytes.</summary>
    public const int MaxBytes = 1 << 20;

    /// <summary>Reads a manifest file (no link followed, at most 1 MiB).</summary>
    public static DumpManifest Read(string path, ManifestReading mode) => Parse(InputFile.ReadText(path, MaxBytes), mode);

    /// <summary>Parses manifest text; anything malformed is one InvalidDataException line.</summary>
    public static DumpManifest Parse(string json, ManifestReading mode)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = new Fields(doc.RootElement, mode);
            var m = new DumpManifest
            {
                Schema = root.Int32("schema") ?? root.Int32("version") ?? 1,
                AgentVersion = root.String("capture_agent_version") ?? "unknown",
                Complete = root.Boolean("complete") ?? (mode == ManifestReading.Lenient ? false : throw Missing("complete")),
                IncompleteReason = root.String("incomplete_reason", "incompleteReason"),
                Host = root.String("host") ?? "",
                KernelRelease = root.String("kernel_release", "kernelRelease") ?? "",
                CrashTime = CrashTime(root) ?? DateTimeOffset.MinValue,
                DumpLevel = root.Int32("dump_level", "dumpLevel") ?? 0,
                RequestedDumpLevel = root.Int32("requested_dump_level"),
                Compression = root.String("compression") ?? "",
                Format = root.String("format") ?? "",
                DumpablePages = root.Unsigned("dumpable_pages", "dumpablePages"),
            };
            ReadFiles(root, m);
            foreach (var p in root.Array("problems")) m.Problems.Add(p.ValueKind == JsonValueKind.String ? p.GetString()! : p.ToString());
            return m;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{DumpManifest.FileName} is not a valid manifest: {ErrorText.Of(e)}");
        }
    }

    private static void ReadFiles(Fields root, DumpManifest m)
    {
        if (!root.Has("files") && root.Mode == ManifestReading.Strict) throw Missing("files");
        foreach (var element in root.Array("files"))
        {
            var file = new Fields(element, root.Mode);
            string? name = file.String("name");
            if (name is null || name.Contains('/') || name is "" or "." or "..")
            {
                if (root.Mode == ManifestReading.Lenient) continue;
                throw new FormatException(name is null ? "a file without a name" : $"file name '{name}' is not a plain name");
            }
            long size = file.Integer("size") ?? (root.Mode == ManifestReading.Lenient ? -1 : throw Missing("size"));
            m.Files.Add(new ManifestFile(name, size, file.String("crc64") ?? ""));
        }
    }

    private static DateTimeOffset? CrashTime(Fields root)
    {
        if (root.String("crash_time", "crashTime") is not { } text) return null;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)) return t.ToUniversalTime();
        return root.Mode == ManifestReading.Lenient ? null : throw new FormatException($"crash_time '{text}' is not a time");
    }

    private static FormatException Missing(string name) => new($"no \"{name}\"");

    /// <summary>
    /// One JSON object's fields. A field that is absent or null is null; one of another type is an
    /// error when strict and null when lenient. Lenient reading also takes the alternative names.
    /// </summary>
    private readonly struct Fields(JsonElement obj, ManifestReading mode)
    {
        public ManifestReading Mode => mode;

        public bool Has(string name) => obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out _);

        public string? String(params string[] names) => Get(names, JsonValueKind.String)?.GetString();

        public bool? Boolean(string name) =>
            Get([name], JsonValueKind.True, JsonValueKind.False) is { } v ? v.ValueKind == JsonValueKind.True : null;

        public long? Integer(params string[] names) =>
            Get(names, JsonValueKind.Number) is { } v ? v.TryGetInt64(out long n) ? n : Wrong<long?>(names[0], "an integer") : null;

        public int? Int32(params string[] names) =>
            Get(names, JsonValueKind.Number) is { } v ? v.TryGetInt32(out int n) ? n : Wrong<int?>(names[0], "a small integer") : null;

        public ulong? Unsigned(params string[] names) =>
            Get(names, JsonValueKind.Number) is { } v ? v.TryGetUInt64(out ulong n) ? n : Wrong<ulong?>(names[0], "a count") : null;

        public IEnumerable<JsonElement> Array(string name) =>
            Get([name], JsonValueKind.Array) is { } v ? v.EnumerateArray() : [];

        private JsonElement? Get(string[] names, params JsonValueKind[] kinds)
        {
            if (obj.ValueKind != JsonValueKind.Object)
                return mode == ManifestReading.Lenient ? null : throw new FormatException("not a JSON object");
            int tried = mode == ManifestReading.Lenient ? names.Length : 1;
            for (int i = 0; i < tried; i++)
            {
                if (!obj.TryGetProperty(names[i], out var v) || v.ValueKind == JsonValueKind.Null) continue;
                if (kinds.Contains(v.ValueKind)) return v;
                return Wrong<JsonElement?>(names[i], kinds[0] switch
                {
                    JsonValueKind.String => "a string",
                    JsonValueKind.Number => "a number",
                    JsonValueKind.Array => "an array",
                    _ => "true or false",
                });
            }
            return null;
        }

        private T? Wrong<T>(string name, string what) =>
            mode == ManifestReading.Lenient ? default : throw new FormatException($"\"{name}\" is not {what}");
    }
}

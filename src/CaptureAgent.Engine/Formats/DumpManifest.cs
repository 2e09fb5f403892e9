using System.Globalization;
using System.Text.Json;
using CaptureAgent.Common;
namespace CaptureAgent.Formats;

/// <summary>One saved file: its size and CRC-64/XZ (16 lowercase hex digits).</summary>
public sealed record ManifestFile(string Name, long Size, string Crc64);

/// <summary>
/// manifest.json next to a saved dump: what was saved, whether it is complete, and a checksum of
/// every file, so `capture-agent verify` can tell a good dump from a damaged or cut one long after
/// the capture. Written last, so a dump without one was interrupted before it was finished.
/// The same snake_case fields as the SSH target writes on a collector.
/// </summary>
public sealed class DumpManifest
{
    public const string FileName = "manifest.json";

    public int Version { get; set; } = 1;
    /// <summary>The capture-agent release that saved the dump (older manifests: "unknown").</summary>
    public string AgentVersion { get; set; } = BuildInfo.Version;
    public bool Complete { get; set; }
    public string? IncompleteReason { get; set; }
    public string Host { get; set; } = "";
    public string KernelRelease { get; set; } = "";
    public DateTimeOffset CrashTime { get; set; }
    public int DumpLevel { get; set; }
    /// <summary>The level asked for, when space made the agent raise it.</summary>
    public int? RequestedDumpLevel { get; set; }
    public string Compression { get; set; } = "";
    public string Format { get; set; } = "kdump-compressed";
    public ulong DumpablePages { get; set; }
    public List<ManifestFile> Files { get; set; } = new();
    public List<string> Problems { get; set; } = new();

    public string ToJson()
    {
        var buf = new MemoryStream();
        using (var w = new Utf8JsonWriter(buf, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("version", Version);
            w.WriteString("capture_agent_version", AgentVersion);
            w.WriteBoolean("complete", Complete);
            if (IncompleteReason is null) w.WriteNull("incomplete_reason"); else w.WriteString("incomplete_reason", IncompleteReason);
            w.WriteString("host", Host);
            w.WriteString("kernel_release", KernelRelease);
            w.WriteString("crash_time", CrashTime.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
            w.WriteNumber("dump_level", DumpLevel);
            if (RequestedDumpLevel is int r) w.WriteNumber("requested_dump_level", r);
            w.WriteString("compression", Compression);
            w.WriteString("format", Format);
            w.WriteNumber("dumpable_pages", DumpablePages);
            w.WriteStartArray("files");
            foreach (var f in Files)
            {
                w.WriteStartObject();
                w.WriteString("name", f.Name);
                w.WriteNumber("size", f.Size);
                w.WriteString("crc64", f.Crc64);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("problems");
            foreach (var p in Problems) w.WriteStringValue(p);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buf.ToArray()) + "\n";
    }

    /// <summary>Reads a manifest; anything malformed is one InvalidDataException line.</summary>
    public static DumpManifest Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var m = new DumpManifest
            {
                Version = root.TryGetProperty("version", out var v) ? v.GetInt32() : 1,
                AgentVersion = root.TryGetProperty("capture_agent_version", out var av) && av.ValueKind == JsonValueKind.String ? av.GetString() ?? "unknown" : "unknown",
                Complete = root.GetProperty("complete").GetBoolean(),
                IncompleteReason = root.TryGetProperty("incomplete_reason", out var ir) && ir.ValueKind == JsonValueKind.String ? ir.GetString() : null,
                Host = root.TryGetProperty("host", out var h) ? h.GetString() ?? "" : "",
                KernelRelease = root.TryGetProperty("kernel_release", out var k) ? k.GetString() ?? "" : "",
                DumpLevel = root.TryGetProperty("dump_level", out var d) ? d.GetInt32() : 0,
                RequestedDumpLevel = root.TryGetProperty("requested_dump_level", out var rd) ? rd.GetInt32() : null,
                Compression = root.TryGetProperty("compression", out var c) ? c.GetString() ?? "" : "",
                Format = root.TryGetProperty("format", out var f) ? f.GetString() ?? "" : "",
                DumpablePages = root.TryGetProperty("dumpable_pages", out var dp) && dp.ValueKind == JsonValueKind.Number ? dp.GetUInt64() : 0,
            };
            if (root.TryGetProperty("crash_time", out var t) && t.ValueKind == JsonValueKind.String)
                m.CrashTime = DateTimeOffset.Parse(t.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            foreach (var file in root.GetProperty("files").EnumerateArray())
            {
                string name = file.GetProperty("name").GetString() ?? throw new InvalidDataException("a file without a name");
                if (name.Contains('/') || name is "." or "..") throw new InvalidDataException($"file name '{name}' is not a plain name");
                var crc = file.GetProperty("crc64");
                m.Files.Add(new ManifestFile(name, file.GetProperty("size").GetInt64(), crc.ValueKind == JsonValueKind.String ? crc.GetString()! : ""));
            }
            if (root.TryGetProperty("problems", out var probs))
                foreach (var p in probs.EnumerateArray()) m.Problems.Add(p.GetString() ?? "");
            return m;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{FileName} is not a valid manifest: {ErrorText.Of(e)}");
        }
    }

    /// <summary>Size and CRC-64 of a file, read in 1 MiB chunks.</summary>
    public static ManifestFile Checksum(string path)
    {
        using var f = new FileStream(InputFile.OpenRegular(path), FileAccess.Read, 1);
        var buf = new byte[1 << 20];
        ulong crc = 0;
        long size = 0;
        int n;
        while ((n = f.Read(buf)) > 0)
        {
            crc = Crc64.Update(crc, buf.AsSpan(0, n));
            size += n;
        }
        return new ManifestFile(Path.GetFileName(path), size, crc.ToString("x16", CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Writes the manifest 0600 under a temporary name, fsyncs it and renames it into place. On a
    /// full target the old manifest's blocks are what is left: it is then replaced in place.
    /// </summary>
    public void WriteTo(string directory)
    {
        string tmp = Path.Combine(directory, FileName + ".tmp"), final = Path.Combine(directory, FileName);
        var bytes = System.Text.Encoding.UTF8.GetBytes(ToJson());
        try
        {
            Write(tmp, bytes);
            File.Move(tmp, final, overwrite: true);
        }
        catch (IOException e) when (Native.Libc.IsOutOfSpace(e) && File.Exists(final))
        {
            File.Delete(tmp);
            File.Delete(final);
            Write(final, bytes);
        }
        Native.Libc.FsyncDirectory(directory);
    }

    private static void Write(string path, byte[] bytes)
    {
        using var f = Output.FileSink.OpenStream(path);
        f.Write(bytes);
        f.Flush(flushToDisk: true);
    }
}

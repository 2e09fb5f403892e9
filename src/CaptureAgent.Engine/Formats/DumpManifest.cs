using System.Globalization;
using CaptureAgent.Common;
namespace CaptureAgent.Formats;

/// <summary>One saved file: its size and CRC-64/XZ (16 lowercase hex digits; "" when unknown).</summary>
public sealed record ManifestFile(string Name, long Size, string Crc64);

/// <summary>
/// manifest.json next to a saved dump: what was saved, whether it is complete, and a checksum of
/// every file, so `capture-agent verify` can tell a good dump from a damaged or cut one long after
/// the capture. Written last, so a dump without one was interrupted before it was finished.
/// One model for every writer (the capture, savecore, the SSH target on a collector) and every
/// reader (<see cref="ManifestReader"/>: strict for verify, lenient for report). Fields:
/// docs/formats.md.
/// </summary>
public sealed class DumpManifest
{
    public const string FileName = "manifest.json";

    /// <summary>The field set: "schema" (written since 0.9.0) or the older "version"; both 1 so far.</summary>
    public int Schema { get; set; } = JsonOutput.Schema;
    /// <summary>The capture-agent release that saved the dump (older manifests: "unknown").</summary>
    public string AgentVersion { get; set; } = BuildInfo.Version;
    public bool Complete { get; set; }
    public string? IncompleteReason { get; set; }
    public string Host { get; set; } = "";
    public string KernelRelease { get; set; } = "";
    /// <summary>The crash time; DateTimeOffset.MinValue when a manifest read leniently had none.</summary>
    public DateTimeOffset CrashTime { get; set; }
    public int DumpLevel { get; set; }
    /// <summary>The level asked for, when space made the agent raise it.</summary>
    public int? RequestedDumpLevel { get; set; }
    public string Compression { get; set; } = "";
    public string Format { get; set; } = "kdump-compressed";
    /// <summary>Pages the dump's bitmap holds; null when the writer never got to count them (SSH, dump not sent).</summary>
    public ulong? DumpablePages { get; set; }
    public List<ManifestFile> Files { get; set; } = new();
    public List<string> Problems { get; set; } = new();

    /// <summary>The manifest as JSON, through the one writer (schema and capture_agent_version first).</summary>
    public byte[] ToJsonBytes() => JsonOutput.ObjectBytes(w =>
    {
        // "version" stays beside "schema" for agents before 0.9.0, which read it.
        w.WriteNumber("version", Schema);
        w.WriteBoolean("complete", Complete);
        w.StringOrNull("incomplete_reason", IncompleteReason);
        w.WriteString("host", Host);
        w.WriteString("kernel_release", KernelRelease);
        w.WriteString("crash_time", JsonOutput.Time(CrashTime));
        w.WriteNumber("dump_level", DumpLevel);
        if (RequestedDumpLevel is int r) w.WriteNumber("requested_dump_level", r);
        w.WriteString("compression", Compression);
        w.WriteString("format", Format);
        if (DumpablePages is ulong pages) w.WriteNumber("dumpable_pages", pages); else w.WriteNull("dumpable_pages");
        w.WriteStartArray("files");
        foreach (var f in Files)
        {
            w.WriteStartObject();
            w.WriteString("name", f.Name);
            w.WriteNumber("size", f.Size);
            w.StringOrNull("crc64", f.Crc64.Length == 0 ? null : f.Crc64);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.StringArray("problems", Problems);
    });

    public string ToJson() => System.Text.Encoding.UTF8.GetString(ToJsonBytes());

    /// <summary>Reads a manifest strictly (verify); anything malformed is one InvalidDataException line.</summary>
    public static DumpManifest Parse(string json) => ManifestReader.Parse(json, ManifestReading.Strict);

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
        var bytes = ToJsonBytes();
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

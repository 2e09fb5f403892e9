using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CaptureAgent.Config;
using CaptureAgent.Dmesg;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Dump;
using CaptureAgent.Formats;

namespace CaptureAgent.Report;

public enum DumpStatus { Complete, Incomplete, NoVmcore, Unverified }

/// <summary>One saved dump directory and what could be learnt about its crash.</summary>
public sealed class DumpEntry
{
    public required string Directory { get; init; }
    /// <summary>"capture-agent" (manifest.json or dmesg.txt), "rhel" (vmcore-dmesg.txt), "debian" (dump.STAMP, dmesg.STAMP), "kdump" (a bare host-date/vmcore either could have left) or "unknown".</summary>
    public required string Layout { get; init; }
    public string? Host { get; set; }
    public string? KernelRelease { get; set; }
    public DateTimeOffset? CrashTime { get; set; }
    /// <summary>Where the crash time came from: manifest, vmcoreinfo, kdump-header, directory-name, mtime.</summary>
    public string? CrashTimeSource { get; set; }
    public DumpStatus Status { get; set; }
    public string StatusDetail { get; set; } = "";
    /// <summary>The dump file's name inside <see cref="Directory"/>, and its format (kdump-compressed, flattened, elf).</summary>
    public string? DumpFile { get; set; }
    public string? DumpFormat { get; set; }
    public long? DumpBytes { get; set; }
    public string? DmesgFile { get; set; }
    public long? DmesgBytes { get; set; }
    public long TotalBytes { get; set; }
    /// <summary>Where the kernel log read came from: the dmesg file's name, or "vmcore".</summary>
    public string? LogSource { get; set; }
    public PanicReport? Panic { get; set; }
    public CrashSignature? Signature { get; set; }
    public List<string> Problems { get; } = new();

    public static string StatusName(DumpStatus s) => s switch
    {
        DumpStatus.Complete => "complete",
        DumpStatus.Incomplete => "incomplete",
        DumpStatus.NoVmcore => "no vmcore",
        _ => "unverified",
    };
}

/// <summary>
/// Finds saved dumps under a directory: capture-agent's &lt;host&gt;-&lt;date&gt;/ (manifest.json,
/// dmesg.txt, vmcore[-incomplete][.flat]), RHEL's &lt;ip&gt;-&lt;date&gt;/ (vmcore, vmcore-dmesg.txt) and
/// Debian's &lt;YYYYMMDDHHMM&gt;/ (dump.STAMP, dmesg.STAMP). Reads only headers, the manifest and the
/// tail of the kernel log; the vmcore's printk buffer only when no log file was saved.
/// Symbolic links are never followed.
/// </summary>
public static partial class DumpCatalog
{
    private const int MaxDepth = 3;
    private static readonly string[] DumpNames = ["vmcore", "vmcore-incomplete", "vmcore.flat", "vmcore-incomplete.flat", "dump-incomplete", "vmcore.raw"];
    private static readonly string[] LogNames = ["dmesg.txt", "vmcore-dmesg.txt", "vmcore-dmesg-incomplete.txt"];

    [GeneratedRegex(@"^(.+)-(\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2})(?:-\d+)?$")]
    private static partial Regex HostDateName();
    [GeneratedRegex(@"^(\d{12})$")]
    private static partial Regex DebianStampName();
    [GeneratedRegex(@"^(?:dump|dmesg)\.\d{12}$")]
    private static partial Regex DebianFile();

    /// <summary>
    /// Where dumps are by default: the config's path up to its first placeholder
    /// ("/var/crash/{host}-{date}" → /var/crash), else /var/crash.
    /// </summary>
    public static string DefaultDirectory(string configPath = AgentConfig.DefaultPath)
    {
        try
        {
            var template = AgentConfig.Load(configPath).Path;
            var parts = template.Split('/', StringSplitOptions.RemoveEmptyEntries).TakeWhile(p => !p.Contains('{'));
            string dir = "/" + string.Join('/', parts);
            return dir;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "/var/crash";
        }
    }

    /// <summary>
    /// The dumps under <paramref name="root"/> (or root itself when it is one), newest first;
    /// at most <paramref name="limit"/> when positive. With <paramref name="analyze"/> each entry's
    /// kernel log is read for the panic and signature; <paramref name="readVmcoreLog"/> allows
    /// reading it from the vmcore when no log file was saved (slower on big dumps).
    /// </summary>
    public static List<DumpEntry> Scan(string root, int limit = 0, bool analyze = true, bool readVmcoreLog = true)
    {
        var dirs = new List<string>();
        if (IsDumpDirectory(root)) dirs.Add(root);
        else Collect(root, 0, dirs);
        var entries = dirs.Select(SafeRead).ToList();
        entries = entries
            .OrderByDescending(e => e.CrashTime ?? DateTimeOffset.MinValue)
            .ThenBy(e => e.Directory, StringComparer.Ordinal)
            .ToList();
        if (limit > 0 && entries.Count > limit) entries = entries.GetRange(0, limit);
        if (analyze)
            foreach (var e in entries) Analyze(e, readVmcoreLog);
        return entries;
    }

    private static void Collect(string dir, int depth, List<string> found)
    {
        IEnumerable<DirectoryInfo> children;
        try
        {
            children = new DirectoryInfo(dir).EnumerateDirectories().ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (depth == 0) throw new IOException($"cannot read {dir}: {ErrorText.Of(e)}", e);
            return;
        }
        foreach (var child in children.OrderBy(c => c.Name, StringComparer.Ordinal))
        {
            if (child.LinkTarget is not null) continue;
            if (IsDumpDirectory(child.FullName)) found.Add(child.FullName);
            else if (depth + 1 < MaxDepth) Collect(child.FullName, depth + 1, found);
        }
    }

    /// <summary>Whether a directory holds a dump, a manifest or a crashed kernel's log.</summary>
    public static bool IsDumpDirectory(string dir)
    {
        try
        {
            foreach (var f in new DirectoryInfo(dir).EnumerateFiles())
            {
                string n = f.Name;
                if (n == "manifest.json" || DumpNames.Contains(n) || LogNames.Contains(n) || DebianFile().IsMatch(n)) return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>One unreadable directory must not hide the others.</summary>
    private static DumpEntry SafeRead(string dir)
    {
        try { return Read(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var entry = new DumpEntry { Directory = dir, Layout = "unknown", Status = DumpStatus.Unverified, StatusDetail = $"unreadable: {ErrorText.Of(e)}" };
            entry.Problems.Add(ErrorText.Of(e));
            return entry;
        }
    }

    /// <summary>Everything about one dump directory except its kernel log (see <see cref="Analyze"/>).</summary>
    public static DumpEntry Read(string dir)
    {
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        var info = new DirectoryInfo(dir);
        foreach (var f in info.EnumerateFiles())
            if (f.LinkTarget is null) files[f.Name] = f.Length;

        string? dump = DumpNames.FirstOrDefault(files.ContainsKey)
            ?? files.Keys.Where(n => n.StartsWith("dump.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();
        string? log = LogNames.FirstOrDefault(files.ContainsKey)
            ?? files.Keys.Where(n => n.StartsWith("dmesg.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();
        bool ours = files.ContainsKey("manifest.json") || files.ContainsKey("dmesg.txt");
        string layout = ours ? "capture-agent"
            : files.ContainsKey("vmcore-dmesg.txt") || files.ContainsKey("vmcore-dmesg-incomplete.txt") ? "rhel"
            : files.Keys.Any(n => DebianFile().IsMatch(n)) || files.ContainsKey("dump-incomplete") ? "debian"
            : HostDateName().IsMatch(info.Name) ? "kdump" : "unknown";

        var e = new DumpEntry
        {
            Directory = info.FullName,
            Layout = layout,
            DumpFile = dump,
            DumpBytes = dump is null ? null : files[dump],
            DmesgFile = log,
            DmesgBytes = log is null ? null : files[log],
            TotalBytes = files.Values.Sum(),
        };

        Manifest? manifest = null;
        if (files.ContainsKey("manifest.json"))
        {
            try { manifest = Manifest.Read(Path.Combine(dir, "manifest.json")); }
            catch (Exception x) when (x is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                e.Problems.Add($"manifest.json: {ErrorText.Of(x)}");
            }
        }

        HeaderFacts? header = null;
        string? headerError = null;
        if (dump is not null)
        {
            try { header = ReadHeader(Path.Combine(dir, dump)); }
            catch (Exception x) when (x is IOException or UnauthorizedAccessException or VmcoreException or InvalidDataException)
            {
                headerError = ErrorText.Of(x);
                e.Problems.Add($"{dump}: {ErrorText.Of(x)}");
            }
            e.DumpFormat = header?.Format;
        }

        // Facts: the manifest first (written by the agent from the crashed kernel), then the dump's headers, then the names.
        var nameMatch = HostDateName().Match(info.Name);
        e.Host = NonEmpty(manifest?.Host) ?? NonEmpty(header?.Host) ?? (nameMatch.Success ? nameMatch.Groups[1].Value : null);
        e.KernelRelease = NonEmpty(manifest?.KernelRelease) ?? NonEmpty(header?.Release);
        if (manifest?.CrashTime is { } mt) (e.CrashTime, e.CrashTimeSource) = (mt, "manifest");
        else if (header?.VmcoreInfoTime is { } vt) (e.CrashTime, e.CrashTimeSource) = (vt, "vmcoreinfo");
        else if (header?.HeaderTime is { } ht) (e.CrashTime, e.CrashTimeSource) = (ht, "kdump-header");
        else if (TimeFromName(info.Name) is { } nt) (e.CrashTime, e.CrashTimeSource) = (nt, "directory-name");
        else (e.CrashTime, e.CrashTimeSource) = (new DateTimeOffset(info.LastWriteTimeUtc, TimeSpan.Zero), "mtime");

        SetStatus(e, manifest, header, headerError, files);
        return e;
    }

    private static void SetStatus(DumpEntry e, Manifest? manifest, HeaderFacts? header, string? headerError, Dictionary<string, long> files)
    {
        if (e.DumpFile is null)
        {
            e.Status = DumpStatus.NoVmcore;
            e.StatusDetail = manifest?.IncompleteReason is { Length: > 0 } r ? $"no vmcore: {r}" : "no vmcore in this directory";
            return;
        }
        bool cutName = e.DumpFile.Contains("incomplete", StringComparison.Ordinal);
        if (headerError is not null) { e.Status = DumpStatus.Incomplete; e.StatusDetail = $"{e.DumpFile} unreadable: {headerError}"; return; }
        if (manifest is not null)
        {
            if (!manifest.Complete)
            {
                e.Status = DumpStatus.Incomplete;
                e.StatusDetail = "manifest: incomplete" + (manifest.IncompleteReason is { Length: > 0 } r ? $": {r}" : "");
                return;
            }
            foreach (var (name, size) in manifest.Files)
            {
                if (!files.TryGetValue(name, out long actual))
                {
                    e.Status = DumpStatus.Incomplete;
                    e.StatusDetail = $"{name} is listed in the manifest but missing";
                    return;
                }
                if (size >= 0 && actual != size)
                {
                    e.Status = DumpStatus.Incomplete;
                    e.StatusDetail = $"{name} is {actual} bytes, the manifest says {size} (run capture-agent verify)";
                    return;
                }
            }
        }
        if (cutName || header?.Incomplete == true)
        {
            e.Status = DumpStatus.Incomplete;
            e.StatusDetail = header?.IncompleteWhy ?? $"{e.DumpFile}: the capture did not finish";
            return;
        }
        if (manifest is not null)
        {
            e.Status = DumpStatus.Complete;
            e.StatusDetail = "manifest: complete, file sizes match";
        }
        else
        {
            e.Status = DumpStatus.Unverified;
            e.StatusDetail = "no manifest (made by another tool or an older agent): run capture-agent verify";
        }
    }

    /// <summary>Reads the entry's kernel log (saved file, else the vmcore's printk buffer) for the panic and signature.</summary>
    public static void Analyze(DumpEntry e, bool readVmcoreLog = true)
    {
        if (e.DmesgFile is not null && e.DmesgBytes > 0)
        {
            try
            {
                e.Panic = PanicAnalysis.AnalyzeFile(Path.Combine(e.Directory, e.DmesgFile));
                e.LogSource = e.DmesgFile;
            }
            catch (Exception x) when (x is IOException or UnauthorizedAccessException)
            {
                e.Problems.Add($"{e.DmesgFile}: {ErrorText.Of(x)}");
            }
        }
        if (e.Panic is null && readVmcoreLog && e.DumpFile is not null && e.DumpFormat is "kdump-compressed" or "elf")
        {
            try
            {
                var text = ReadVmcoreLog(Path.Combine(e.Directory, e.DumpFile));
                e.Panic = PanicAnalysis.Analyze(text, e.KernelRelease);
                e.LogSource = "vmcore";
            }
            // A damaged dump can break the ring walk in any way: say so and go on with the other dumps.
            catch (Exception x) when (x is not OutOfMemoryException)
            {
                e.Problems.Add($"kernel log not readable from {e.DumpFile}: {ErrorText.Of(x)}");
            }
        }
        if (e.Panic is null)
        {
            if (e.DmesgFile is null && e.LogSource is null && !e.Problems.Any(p => p.StartsWith("kernel log not readable", StringComparison.Ordinal)))
                e.Problems.Add("no kernel log saved and none read from the dump");
            else if (e.LogSource is not null) e.Problems.Add($"no panic, oops or lockup report found in the log ({e.LogSource})");
            return;
        }
        e.KernelRelease ??= e.Panic.KernelRelease;
        e.Signature = CrashSignature.From(e.Panic);
    }

    /// <summary>The tail of the crashed kernel's log from a vmcore (ELF or kdump-compressed).</summary>
    public static string ReadVmcoreLog(string path)
    {
        using var mem = DumpOpener.OpenMemory(path, out var info, out var segments);
        if (info is null) throw new VmcoreException($"{Path.GetFileName(path)} has no VMCOREINFO");
        var tables = X86_64PageTables.FromVmcoreInfo((IPhysicalMemory)mem, info, segments);
        var log = new PrintkLog(new KernelMemory((IPhysicalMemory)mem, tables), info);
        var tail = new TailStream(PanicAnalysis.TailBytes);
        log.WriteTo(tail);
        return Encoding.Latin1.GetString(tail.ToArray());
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) || s == "unknown-host" || s == "unknown-kernel" ? null : s;

    /// <summary>The crash time in a directory's name: host-2024-01-31-10:22:33 (ours, RHEL) or 202401311022 (Debian).</summary>
    public static DateTimeOffset? TimeFromName(string name)
    {
        var m = HostDateName().Match(name);
        if (m.Success && DateTime.TryParseExact(m.Groups[2].Value, "yyyy-MM-dd-HH:mm:ss", CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t))
            return new DateTimeOffset(t, TimeSpan.Zero);
        m = DebianStampName().Match(name);
        if (m.Success && DateTime.TryParseExact(m.Groups[1].Value, "yyyyMMddHHmm", CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out t))
            return new DateTimeOffset(t, TimeSpan.Zero);
        return null;
    }

    /// <summary>What a dump file's headers say.</summary>
    internal sealed record HeaderFacts(string Format, string? Host, string? Release, DateTimeOffset? VmcoreInfoTime, DateTimeOffset? HeaderTime, bool Incomplete, string? IncompleteWhy);

    /// <summary>Reads only the headers (and notes) of a kdump-compressed, flattened or ELF dump.</summary>
    internal static HeaderFacts ReadHeader(string path)
    {
        using var f = InputFile.OpenRegular(path);
        long length = RandomAccess.GetLength(f);
        var magic = new byte[DumpProbe.HeadLength];
        int got = RandomAccess.Read(f, magic, 0);
        var kind = DumpProbe.Kind(magic.AsSpan(0, got));
        if (kind == DumpKind.KdumpCompressed)
            return FromKdump("kdump-compressed", (buf, off) => RandomAccess.Read(f, buf, off), length);
        if (kind == DumpKind.Flattened)
        {
            var front = FlattenedFront(f, length);
            var h = FromKdump("flattened", (buf, off) =>
            {
                if (off >= front.Length) return 0;
                int n = (int)Math.Min(buf.Length, front.Length - off);
                front.AsSpan((int)off, n).CopyTo(buf);
                return n;
            }, front.Length);
            return h;
        }
        if (kind == DumpKind.Elf)
        {
            f.Dispose();
            using var elf = new ElfVmcore(path);
            var vi = elf.Info;
            return new HeaderFacts("elf", null, vi?.OsRelease, UnixTime(vi?.CrashTime), null,
                elf.TruncationWarning is not null, elf.TruncationWarning);
        }
        throw new InvalidDataException(got == 0 ? "empty file" : "neither a kdump-compressed, flattened nor ELF dump");
    }

    private delegate int ReadAt(Span<byte> buffer, long offset);

    private static HeaderFacts FromKdump(string format, ReadAt read, long length)
    {
        var main = new byte[KdumpHeader.HeaderSize];
        if (read(main, 0) != main.Length) throw new InvalidDataException("kdump header truncated");
        int blockSize = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(428));
        if (blockSize is < 4096 or > 262144) throw new InvalidDataException($"bad kdump block_size {blockSize}");
        var sub = new byte[KdumpHeader.SubHeaderSize];
        if (read(sub, blockSize) != sub.Length) throw new InvalidDataException("kdump sub header truncated");
        var h = KdumpHeader.Parse(main, sub, out _, out _, out long notesOffset, out long notesSize);
        VmcoreInfo? vi = null;
        if (notesSize is > 0 and <= 1 << 20 && notesOffset > 0 && notesOffset + notesSize <= length)
        {
            var notes = new byte[notesSize];
            if (read(notes, notesOffset) == notes.Length)
                foreach (var n in ElfNotes.Parse(notes))
                    if (n.Name == "VMCOREINFO") { vi = VmcoreInfo.Parse(notes.AsSpan(n.DescOffset, n.DescSize)); break; }
        }
        bool incomplete = (h.Status & KdumpHeader.StatusIncomplete) != 0;
        string node = h.Field(1);
        return new HeaderFacts(format, node is "" or "(none)" ? null : node, NonEmpty(h.Field(2)) ?? vi?.OsRelease,
            UnixTime(vi?.CrashTime), UnixTime(h.CrashTime), incomplete,
            incomplete ? "the dump's header says the capture did not finish (DUMP_DH_COMPRESSED_INCOMPLETE)" : null);
    }

    /// <summary>
    /// The first 64 KiB of the file a flattened stream describes, from its leading records: enough
    /// for the headers and notes, which every writer emits first.
    /// </summary>
    private static byte[] FlattenedFront(Microsoft.Win32.SafeHandles.SafeFileHandle f, long length)
    {
        const int Front = 64 << 10;
        var front = new byte[Front];
        int filled = 0;
        long pos = 4096;
        Span<byte> rec = stackalloc byte[16];
        for (int i = 0; i < 256 && pos + 16 <= length; i++)
        {
            if (RandomAccess.Read(f, rec, pos) != 16) break;
            long offset = BinaryPrimitives.ReadInt64BigEndian(rec), size = BinaryPrimitives.ReadInt64BigEndian(rec[8..]);
            if (offset == -1 && size == -1) break;
            if (offset < 0 || size <= 0 || size > 1L << 32) throw new InvalidDataException($"bad flattened record at {pos}");
            if (offset < Front)
            {
                int n = (int)Math.Min(size, Front - offset);
                RandomAccess.Read(f, front.AsSpan((int)offset, n), pos + 16);
                filled = Math.Max(filled, (int)offset + n);
            }
            pos += 16 + size;
        }
        return front.AsSpan(0, filled).ToArray();
    }

    private static DateTimeOffset? UnixTime(long? seconds) =>
        seconds is long s && s > 0 && s < 253402300799 ? DateTimeOffset.FromUnixTimeSeconds(s) : null;

    /// <summary>The manifest fields the report uses, read leniently (snake_case or camelCase).</summary>
    internal sealed class Manifest
    {
        public bool Complete;
        public string? IncompleteReason, Host, KernelRelease;
        public DateTimeOffset? CrashTime;
        public List<(string Name, long Size)> Files = new();

        public static Manifest Read(string path)
        {
            var fi = new FileInfo(path);
            if (fi.Length > 1 << 20) throw new InvalidDataException("larger than 1 MiB");
            try
            {
                using var doc = JsonDocument.Parse(InputFile.ReadText(path, 1 << 20));
                var root = doc.RootElement;
                var m = new Manifest
                {
                    Complete = Prop(root, "complete") is { ValueKind: JsonValueKind.True },
                    IncompleteReason = Str(root, "incomplete_reason", "incompleteReason"),
                    Host = Str(root, "host"),
                    KernelRelease = Str(root, "kernel_release", "kernelRelease"),
                };
                if (Str(root, "crash_time", "crashTime") is { } t
                    && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when) && when > DateTimeOffset.UnixEpoch)
                    m.CrashTime = when.ToUniversalTime();
                if (Prop(root, "files") is { ValueKind: JsonValueKind.Array } files)
                    foreach (var file in files.EnumerateArray())
                    {
                        if (Str(file, "name") is not { } name || name.Contains('/') || name is "." or "..") continue;
                        long size = Prop(file, "size") is { ValueKind: JsonValueKind.Number } s && s.TryGetInt64(out long v) ? v : -1;
                        m.Files.Add((name, size));
                    }
                return m;
            }
            catch (JsonException x)
            {
                throw new InvalidDataException($"not valid JSON: {ErrorText.Of(x)}");
            }
        }

        private static JsonElement? Prop(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v : null;

        private static string? Str(JsonElement e, params string[] names)
        {
            foreach (var n in names)
                if (Prop(e, n) is { ValueKind: JsonValueKind.String } v) return v.GetString();
            return null;
        }
    }

    /// <summary>A write-only stream that keeps the last <c>capacity</c> bytes written.</summary>
    private sealed class TailStream(int capacity) : Stream
    {
        private readonly byte[] _ring = new byte[capacity];
        private long _written;

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> data)
        {
            if (data.Length >= _ring.Length) data = data[^_ring.Length..];
            int at = (int)(_written % _ring.Length);
            int first = Math.Min(data.Length, _ring.Length - at);
            data[..first].CopyTo(_ring.AsSpan(at));
            data[first..].CopyTo(_ring);
            _written += data.Length;
        }

        public byte[] ToArray()
        {
            if (_written <= _ring.Length) return _ring.AsSpan(0, (int)_written).ToArray();
            int at = (int)(_written % _ring.Length);
            return [.. _ring.AsSpan(at), .. _ring.AsSpan(0, at)];
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

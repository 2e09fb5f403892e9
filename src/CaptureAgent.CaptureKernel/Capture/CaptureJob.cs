using System.Diagnostics;
using System.Globalization;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Native;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Capture;

/// <summary>The outcome of one capture, for the console and the status report.</summary>
public sealed record CaptureResult(string Directory, string? DmesgPath, string? VmcorePath, long VmcoreBytes, TimeSpan Elapsed, List<string> Problems)
{
    /// <summary>The dump holds every page it set out to save (it may still be degraded: see Problems).</summary>
    public bool Complete { get; init; }
    public DumpLevel LevelUsed { get; init; }
    public long EstimatedBytes { get; init; }
}

/// <summary>
/// Saves one crash into &lt;root&gt;/&lt;path template&gt;/: old dumps are pruned first (retention), then
/// dmesg.txt (small, most valuable), then the dump written as vmcore-incomplete and renamed to vmcore
/// only after fsync, then manifest.json with a checksum of each file. A dump cut short (full disk)
/// keeps the name vmcore-incomplete and is readable up to where it stopped. Directories 0700,
/// files 0600, no symlink followed below root.
/// </summary>
public static class CaptureJob
{
    public static CaptureResult Run(string vmcore, string root, CaptureSettings settings, Action<string>? report = null)
    {
        report ??= Log.Info;
        var clock = Stopwatch.StartNew();
        var problems = new List<string>();
        using var source = new DumpSource(vmcore);
        var facts = Facts(source, settings.BootId);
        string rel = PathTemplate.Expand(settings.PathTemplate, facts);
        string parentRel = Path.GetDirectoryName(rel) ?? "", leaf = Path.GetFileName(rel);

        // Retention first, so the new dump has the room the old ones took.
        var estimate = KdumpCompressedWriter.Estimate(source, settings.Dump);
        string parent = CreateDumpDirectory(root, parentRel, null);
        foreach (var removed in Retention.Apply(parent, settings.KeepDumps, settings.KeepBytes, estimate.Bytes, p => { problems.Add(p); report("capture-agent: " + p); }))
            report($"capture-agent: removed old dump {removed}");
        string dir = CreateDumpDirectory(root, parentRel, leaf);
        settings.DirectoryCreated?.Invoke(dir);
        report($"capture-agent: saving to {dir} (about {estimate.Bytes >> 20} MiB expected, {Free(dir) >> 20} MiB free)");

        string? dmesgPath = Path.Combine(dir, "dmesg.txt");
        try
        {
            if (source.Kernel is null || source.Info is null) throw new VmcoreException("no usable VMCOREINFO or page tables");
            using (var f = FileSink.OpenStream(dmesgPath))
            using (var b = new BufferedStream(f, 64 * 1024))
            {
                var log = new PrintkLog(source.Kernel, source.Info);
                log.WriteTo(b);
                b.Flush();
                f.Flush(flushToDisk: true);
                if (log.Problem is not null) problems.Add($"kernel log damaged: {log.Problem}");
            }
            report("capture-agent: dmesg.txt saved");
        }
        catch (Exception e) when (e is VmcoreException or IOException)
        {
            problems.Add($"kernel log not saved: {e.Message}");
            report("capture-agent: " + problems[^1]);
            // An empty file would look like a saved log; a partial one is kept for what it holds.
            if (File.Exists(dmesgPath) && new FileInfo(dmesgPath).Length == 0) File.Delete(dmesgPath);
            dmesgPath = null;
        }

        // A manifest that says "interrupted" until the end replaces it: a power cut leaves the
        // truth, and its blocks are there for the final one even when the dump fills the target.
        var manifest = new DumpManifest
        {
            Complete = false,
            IncompleteReason = "the capture was interrupted before it finished",
            Host = facts.Host,
            KernelRelease = facts.KernelRelease,
            CrashTime = facts.CrashTime,
            DumpLevel = (int)settings.Dump.Level,
            Compression = settings.Dump.AutoCodec ? "auto" : Compression.PageCompressors.Name(settings.Dump.Codec),
            Format = "kdump-compressed",
            DumpablePages = estimate.Pages,
            Problems = problems,
        };
        manifest.WriteTo(dir);

        string incomplete = Path.Combine(dir, "vmcore-incomplete");
        string final = Path.Combine(dir, "vmcore");
        var options = new DumpOptions
        {
            Level = settings.Dump.Level,
            Codec = settings.Dump.Codec,
            AutoCodec = settings.Dump.AutoCodec,
            Format = settings.Dump.Format,
            WindowPfns = settings.Dump.WindowPfns,
            ZstdLevel = settings.Dump.ZstdLevel,
            Threads = settings.Dump.Threads,
            Progress = settings.Dump.Progress,
            Heartbeat = settings.Dump.Heartbeat,
            FreeSpace = () => Free(dir) - settings.MinFreeBytes,
            FallbackLevel = settings.FallbackLevel,
        };
        DumpResult result;
        using (var sink = FileSink.Create(incomplete))
            result = DumpWriters.Create(source, sink, options).Write();   // fsyncs before it returns
        problems.AddRange(result.Problems);
        if (result.CodecChoice is { } why) report($"capture-agent: {why}");
        string saved = incomplete;
        if (!result.Incomplete)
        {
            File.Move(incomplete, final);
            saved = final;
        }
        Libc.FsyncDirectory(dir);
        report(result.Incomplete
            ? $"capture-agent: vmcore-incomplete kept ({result.BytesWritten} bytes): {result.IncompleteReason}"
            : $"capture-agent: vmcore saved: {result.DumpablePages} pages, {result.BytesWritten} bytes in {clock.Elapsed.TotalSeconds:0.00} s");
        if (settings.SaveRawCopy && !result.Incomplete)
        {
            var copyClock = Stopwatch.StartNew();
            try
            {
                long copied = CopyRaw(vmcore, Path.Combine(dir, "vmcore.raw"));
                report($"capture-agent: vmcore.raw saved: {copied} bytes in {copyClock.Elapsed.TotalSeconds:0.0} s");
            }
            catch (IOException e) when (Libc.IsOutOfSpace(e))
            {
                // The raw copy is a bonus: it must not cost the dump its room.
                File.Delete(Path.Combine(dir, "vmcore.raw"));
                problems.Add($"vmcore.raw not saved: {e.Message}");
            }
        }

        var level = result.LevelRaisedTo ?? settings.Dump.Level;
        manifest.Complete = !result.Incomplete;
        manifest.IncompleteReason = result.IncompleteReason;
        manifest.DumpLevel = (int)level;
        manifest.RequestedDumpLevel = result.LevelRaisedTo is null ? null : (int)settings.Dump.Level;
        manifest.DumpablePages = result.DumpablePages;
        manifest.Compression = Compression.PageCompressors.Name(result.Codec);
        try
        {
            foreach (var f in new[] { dmesgPath, saved, Path.Combine(dir, "vmcore.raw") })
                if (f is not null && File.Exists(f)) manifest.Files.Add(DumpManifest.Checksum(f));
            manifest.WriteTo(dir);
        }
        catch (IOException e)
        {
            // Without room for a few hundred bytes the dump itself is still what matters.
            problems.Add($"{DumpManifest.FileName} not saved: {e.Message}");
        }
        return new CaptureResult(dir, dmesgPath, saved, result.BytesWritten, clock.Elapsed, problems)
        {
            Complete = !result.Incomplete,
            LevelUsed = level,
            EstimatedBytes = estimate.Bytes,
        };
    }

    /// <summary>What the target can take; when statvfs fails (an NFS hiccup) the space is not limited by it.</summary>
    private static long Free(string dir)
    {
        try
        {
            return Libc.AvailableBytes(dir);
        }
        catch (IOException)
        {
            return long.MaxValue / 2;
        }
    }

    /// <summary>A byte copy of the vmcore through a 1 MiB buffer, fsynced.</summary>
    private static long CopyRaw(string vmcore, string path)
    {
        using var input = File.OpenHandle(vmcore);
        using var output = FileSink.Create(path);
        var buf = new byte[1 << 20];
        long offset = 0;
        int n;
        while ((n = RandomAccess.Read(input, buf, offset)) > 0)
        {
            output.Write(offset, buf.AsSpan(0, n));
            offset += n;
        }
        output.Complete();
        return offset;
    }

    /// <summary>The crashed host's nodename, crash time and release: what path templates name.</summary>
    public static CrashFacts Facts(DumpSource source, string? bootId)
    {
        string host = "unknown-host";
        if (source.Kernel is { } k && source.Info?.Symbol("init_uts_ns") is ulong uts)
        {
            var name = new byte[65];
            ulong off = (ulong)(source.Info.Offset("uts_namespace.name") ?? 0) + 65;   // nodename is field 1
            if (k.TryRead(uts + off, name))
            {
                int nul = Array.IndexOf(name, (byte)0);
                var s = System.Text.Encoding.ASCII.GetString(name, 0, nul < 0 ? name.Length : nul);
                // "(none)" is the kernel's default; anything else is kept to safe file-name characters.
                if (s != "(none)") s = new string(s.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_').ToArray());
                if (s.Length > 0 && s != "(none)") host = s;
            }
        }
        var when = source.Info?.CrashTime is long t && t > 0 ? DateTimeOffset.FromUnixTimeSeconds(t) : DateTimeOffset.UtcNow;
        return new CrashFacts(host, when, source.Info?.OsRelease ?? "unknown-kernel", bootId);
    }

    /// <summary>Creates root/relPath/name (0700), refusing any component that is a symlink.</summary>
    public static string CreateDumpDirectory(string root, string relPath, string? name)
    {
        string current = Path.GetFullPath(root);
        var parts = relPath.Split('/', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (name is not null) parts.Add(name);
        for (int i = 0; i < parts.Count; i++)
        {
            if (parts[i] is "." or "..") throw new IOException($"dump path component '{parts[i]}' is not allowed");
            string next = Path.Combine(current, parts[i]);
            bool last = name is not null && i == parts.Count - 1;
            var info = new DirectoryInfo(next);
            if (info.LinkTarget is not null || (File.Exists(next) && new FileInfo(next).LinkTarget is not null))
                throw new IOException($"{next} is a symbolic link; refusing to write a dump through it");
            if (last && info.Exists)
            {
                // Two crashes in the same second: never overwrite a saved dump.
                for (int n = 1; ; n++)
                {
                    next = $"{Path.Combine(current, parts[i])}-{n}";
                    if (!Directory.Exists(next) && !File.Exists(next)) break;
                }
                info = new DirectoryInfo(next);
            }
            if (!info.Exists) Directory.CreateDirectory(next, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (last) File.SetUnixFileMode(next, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            current = next;
        }
        return current;
    }
}

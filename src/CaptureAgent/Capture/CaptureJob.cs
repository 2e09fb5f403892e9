using System.Diagnostics;
using System.Globalization;
using CaptureAgent.Cli;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Native;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Capture;

/// <summary>The outcome of one capture, for the console and the status report.</summary>
public sealed record CaptureResult(string Directory, string? DmesgPath, string? VmcorePath, long VmcoreBytes, TimeSpan Elapsed, List<string> Problems);

/// <summary>
/// Saves one crash into &lt;root&gt;/&lt;path&gt;/&lt;host&gt;-&lt;date&gt;/: dmesg.txt first (small, most valuable),
/// then the dump written as vmcore-incomplete and renamed to vmcore only after fsync, so a file
/// named vmcore is always complete. Directories 0700, files 0600, no symlink followed below root.
/// </summary>
public static class CaptureJob
{
    public static CaptureResult Run(string vmcore, string root, string relPath, DumpOptions options, bool saveRawCopy = false)
    {
        var clock = Stopwatch.StartNew();
        var problems = new List<string>();
        using var source = new DumpSource(vmcore);
        string dir = CreateDumpDirectory(root, relPath, DirectoryName(source));
        Log.Info($"capture-agent: saving to {dir}");

        string? dmesgPath = Path.Combine(dir, "dmesg.txt");
        try
        {
            if (source.Kernel is null || source.Info is null) throw new VmcoreException("no usable VMCOREINFO or page tables");
            using (var f = FileSink.OpenStream(dmesgPath))
            using (var b = new BufferedStream(f, 64 * 1024))
            {
                new PrintkLog(source.Kernel, source.Info).WriteTo(b);
                b.Flush();
                f.Flush(flushToDisk: true);
            }
            Log.Info("capture-agent: dmesg.txt saved");
        }
        catch (Exception e) when (e is VmcoreException or IOException)
        {
            problems.Add($"kernel log not saved: {e.Message}");
            Log.Warn(problems[^1]);
            // An empty file would look like a saved log; a partial one is kept for what it holds.
            if (File.Exists(dmesgPath) && new FileInfo(dmesgPath).Length == 0) File.Delete(dmesgPath);
            dmesgPath = null;
        }

        string incomplete = Path.Combine(dir, "vmcore-incomplete");
        string final = Path.Combine(dir, "vmcore");
        DumpResult result;
        using (var sink = FileSink.Create(incomplete))
            result = new KdumpCompressedWriter(source, sink, options).Write();   // Complete() fsyncs
        problems.AddRange(result.Problems);
        File.Move(incomplete, final);
        Libc.FsyncDirectory(dir);
        Log.Info($"capture-agent: vmcore saved: {result.DumpablePages} pages, {result.BytesWritten} bytes in {clock.Elapsed.TotalSeconds:0.0} s");
        if (saveRawCopy)
        {
            var copyClock = Stopwatch.StartNew();
            long copied = CopyRaw(vmcore, Path.Combine(dir, "vmcore.raw"));
            Log.Info($"capture-agent: vmcore.raw saved: {copied} bytes in {copyClock.Elapsed.TotalSeconds:0.0} s");
        }
        return new CaptureResult(dir, dmesgPath, final, result.BytesWritten, clock.Elapsed, problems);
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

    /// <summary>&lt;crashed host's nodename&gt;-&lt;crash time, UTC&gt;, as RHEL's kdump names it.</summary>
    public static string DirectoryName(DumpSource source)
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
        return $"{host}-{when.UtcDateTime.ToString("yyyy-MM-dd-HH:mm:ss", CultureInfo.InvariantCulture)}";
    }

    /// <summary>Creates root/relPath/name (0700), refusing any component that is a symlink.</summary>
    public static string CreateDumpDirectory(string root, string relPath, string name)
    {
        string current = Path.GetFullPath(root);
        var parts = relPath.Split('/', StringSplitOptions.RemoveEmptyEntries).Append(name).ToList();
        for (int i = 0; i < parts.Count; i++)
        {
            if (parts[i] is "." or "..") throw new IOException($"dump path component '{parts[i]}' is not allowed");
            string next = Path.Combine(current, parts[i]);
            bool last = i == parts.Count - 1;
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

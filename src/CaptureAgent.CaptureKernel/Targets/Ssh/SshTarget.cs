using System.Diagnostics;
using System.Globalization;
using System.Text;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Targets.Ssh;

/// <summary>What an ssh save left on the collector.</summary>
/// <param name="Where">user@host:/dir of the dump directory.</param>
/// <param name="Complete">vmcore.flat is there, whole (ssh and the remote cat both ended well).</param>
/// <param name="Reason">Why the dump is incomplete (ssh's last error line), or null.</param>
public sealed record SshSaveResult(string Where, string RemoteDirectory, bool Complete, string? Reason, long VmcoreBytes,
                                   string? VmcoreCrc64, string? DmesgCrc64, TimeSpan Elapsed, List<string> Problems);

/// <summary>A remote step that never got going: the connection, the login or the remote command failed.</summary>
public sealed class SshStepException(string message, bool started) : IOException(message)
{
    /// <summary>The remote command ran and failed (not a connection problem): its renames may have run.</summary>
    public bool Started { get; } = started;
}

/// <summary>
/// Saves a crash to a collector over ssh: the system's OpenSSH client carries makedumpfile's
/// flattened stream (what RHEL does with <c>makedumpfile -F | ssh … dd</c>), so no crypto is ours.
/// The collector needs only a POSIX shell, mkdir, cat and mv. Every step is its own ssh run:
/// <list type="number">
/// <item>make the dump directory (umask 077; a name taken by a symlink is refused, one taken by an
/// earlier dump gets -1, -2… as locally);</item>
/// <item>dmesg.txt.tmp, streamed;</item>
/// <item>rename it to dmesg.txt, then stream the dump into vmcore-incomplete.flat;</item>
/// <item>only when that ssh exited 0: rename to vmcore.flat, then manifest.json.tmp;</item>
/// <item>rename manifest.json.tmp to manifest.json.</item>
/// </list>
/// A remote <c>cat</c> ends "successfully" when the connection drops (it just sees end of input),
/// which is why a rename is never in the same run as the data it vouches for. Every streamed step
/// first makes the remote shell say "ready": until then nothing is sent, so a connection failure
/// (ssh exit 255) can be retried without loss; after it, a failure leaves the -incomplete file.
/// </summary>
public static class SshTarget
{
    public const string DmesgName = "dmesg.txt";
    public const string VmcoreName = "vmcore.flat";
    public const string IncompleteName = "vmcore-incomplete.flat";
    public const string ManifestName = "manifest.json";
    private const string Ready = "ready";
    private const int StreamBuffer = 256 << 10;

    public static SshSaveResult Save(SshDestination dest, DumpSource source, DumpOptions options, CrashFacts facts, string relativeDir,
                                     Action<string>? report = null)
    {
        var clock = Stopwatch.StartNew();
        var problems = new List<string>();
        var steps = new Steps(dest, report);

        // 1. The directory. Nothing exists on the collector before this succeeds, so failures throw.
        string rel = relativeDir.Trim('/');
        if (rel.Length == 0 || rel.Split('/').Any(p => p is "" or "." or ".."))
            throw new IOException($"dump directory '{relativeDir}' is not a usable path");
        int slash = rel.LastIndexOf('/');
        string parent = "/" + (slash < 0 ? "" : rel[..slash]);
        string dir = steps.MakeDirectory(parent, rel[(slash + 1)..]);
        string where = $"{dest}:{dir}";
        report?.Invoke($"capture-agent: ssh: saving to {where}");

        // 2. The kernel log, small and most valuable, first.
        var dmesg = new Sent();
        if (source.Kernel is null || source.Info is null)
            problems.Add("kernel log not saved: no usable VMCOREINFO or page tables");
        else if (source.Info.Symbol("prb") is null && source.Info.Symbol("log_buf") is null)
            problems.Add("kernel log not saved: VMCOREINFO has neither SYMBOL(prb) nor SYMBOL(log_buf)");
        else
        {
            try
            {
                string? logProblem = null;
                dmesg = steps.Stream($"{dir}/{DmesgName}.tmp", "the kernel log", s =>
                {
                    try
                    {
                        var printk = new PrintkLog(source.Kernel, source.Info);
                        printk.WriteTo(s);
                        logProblem = printk.Problem;
                    }
                    catch (VmcoreException e) { logProblem = e.Message; }   // what was read is kept, as locally
                });
                if (logProblem is not null) problems.Add($"kernel log incomplete: {logProblem}");
                if (!dmesg.Ok) problems.Add($"kernel log not sent whole (left as {DmesgName}.tmp): {dmesg.Reason}");
            }
            catch (SshStepException e)
            {
                problems.Add($"kernel log not saved: {e.Message}");
            }
        }
        bool dmesgWhole = dmesg.Ok && dmesg.Bytes > 0;
        string dmesgName = DmesgName + ".tmp";

        // 3. The dump; the log is renamed in the same run, before any dump byte is sent.
        Sent vmcore;
        DumpResult? result = null;
        try
        {
            vmcore = steps.Stream($"{dir}/{IncompleteName}", "the dump", s =>
            {
                using var sink = DumpWriters.Flattened(s, leaveOpen: true);
                result = DumpWriters.Create(source, sink, options).Write();
            }, dmesgWhole ? ($"{dir}/{DmesgName}.tmp", $"{dir}/{DmesgName}") : null);
            if (dmesgWhole) dmesgName = DmesgName;
        }
        catch (SshStepException e)
        {
            // The collector is out of reach now: a manifest would only wait through the retries again.
            if (dmesg.Started) problems.Add($"the kernel log is left as {DmesgName}.tmp");
            report?.Invoke($"capture-agent: ssh: the dump was not sent: {e.Message}");
            return new SshSaveResult(where, dir, false, e.Message, 0, null, dmesg.Crc(), clock.Elapsed, problems);
        }
        if (result is not null) problems.AddRange(result.Problems);
        string? reason = vmcore.Ok ? null : vmcore.Reason ?? "the connection broke";
        if (reason is not null) report?.Invoke($"capture-agent: ssh: the dump stopped after {vmcore.Bytes} bytes: {reason}");

        // 4. The manifest; a whole dump is renamed in the same run first. 5. The manifest's own rename.
        var files = new List<(string, Sent)>();
        if (dmesg.Started) files.Add((dmesgName, dmesg));
        files.Add((vmcore.Ok ? VmcoreName : IncompleteName, vmcore));
        byte[] manifest = ManifestJson(facts, options, result, reason, problems, files);
        try
        {
            var m = steps.Stream($"{dir}/{ManifestName}.tmp", "the manifest", s => s.Write(manifest),
                vmcore.Ok ? ($"{dir}/{IncompleteName}", $"{dir}/{VmcoreName}") : null);
            if (m.Ok) steps.Rename($"{dir}/{ManifestName}.tmp", $"{dir}/{ManifestName}");
            else problems.Add($"{ManifestName} not saved: {m.Reason}");
        }
        catch (SshStepException e)
        {
            problems.Add($"{ManifestName} not saved: {e.Message}");
            // The rename of a whole dump rode on that run: if it never got to it, try it alone.
            if (vmcore.Ok && !e.Started)
            {
                try { steps.Rename($"{dir}/{IncompleteName}", $"{dir}/{VmcoreName}"); }
                catch (SshStepException e2) { reason = $"the dump was sent whole but is still named {IncompleteName}: {e2.Message}"; }
            }
        }
        foreach (var p in problems) report?.Invoke($"capture-agent: ssh: {p}");
        return new SshSaveResult(where, dir, reason is null, reason, vmcore.Bytes, vmcore.Crc(), dmesg.Crc(), clock.Elapsed, problems);
    }

    /// <summary>What one streamed step sent: bytes, their CRC-64, and whether ssh ended well.</summary>
    internal sealed class Sent
    {
        /// <summary>The remote shell said ready: the file exists on the collector.</summary>
        public bool Started;
        public long Bytes;
        public ulong Crc64;
        public bool Ok;
        public string? Reason;
        public string? Crc() => Started ? Crc64.ToString("x16", CultureInfo.InvariantCulture) : null;
    }

    /// <summary>The collector's manifest.json: the same model as a local target's, the flattened format and the sent bytes.</summary>
    private static byte[] ManifestJson(CrashFacts facts, DumpOptions options, DumpResult? result, string? reason, List<string> problems,
                                       List<(string Name, Sent Sent)> files)
    {
        bool elf = options.Format == DumpFormat.Elf;
        var manifest = new DumpManifest
        {
            Complete = reason is null,
            IncompleteReason = reason,
            Host = facts.Host,
            KernelRelease = facts.KernelRelease,
            CrashTime = facts.CrashTime,
            DumpLevel = (int)options.Level,
            Compression = elf ? "none" : Compression.PageCompressors.Name(result?.Codec ?? options.Codec),
            Format = elf ? "flattened-elf" : "flattened",
            DumpablePages = result?.DumpablePages,
            Files = files.Select(f => new ManifestFile(f.Name, f.Sent.Bytes, f.Sent.Crc() ?? "")).ToList(),
            Problems = problems,
        };
        return manifest.ToJsonBytes();
    }

    /// <summary>A string as one single-quoted sh word: nothing inside is expanded.</summary>
    public static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    /// <summary>ssh's arguments for one remote command (OpenSSH joins the words and hands them to the login shell).</summary>
    public static List<string> Arguments(SshDestination d, string remoteCommand)
    {
        int connect = Math.Max(1, (int)Math.Ceiling(d.ConnectTimeout.TotalSeconds));
        return
        [
            "-F", "none",                              // neither ~/.ssh/config nor /etc/ssh/ssh_config
            "-i", d.KeyPath,
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", $"UserKnownHostsFile={d.KnownHostsPath}",
            "-o", "GlobalKnownHostsFile=none",
            "-o", "UpdateHostKeys=no",
            "-o", $"ConnectTimeout={connect}",
            "-o", "ConnectionAttempts=1",              // retries are ours, with a pause
            "-o", "ServerAliveInterval=10",
            "-o", "ServerAliveCountMax=3",
            "-o", "Compression=no",                    // the pages are compressed already
            "-o", "LogLevel=ERROR",
            "-T", "-a", "-x",
            "-p", d.Port.ToString(CultureInfo.InvariantCulture),
            "-l", d.User,
            "--", d.Host,
            remoteCommand,
        ];
    }

    /// <summary><c>sh -c SCRIPT sh ARGS…</c>, quoted for the remote login shell.</summary>
    private static string Sh(string script, params string[] args) =>
        "sh -c " + Quote(script) + " sh" + string.Concat(args.Select(a => " " + Quote(a)));

    internal const string MakeDirectoryScript = """
        umask 077
        p=${1%/}
        mkdir -p -- "${p:-/}" || exit 3
        d="$p/$2"; i=0
        until mkdir -- "$d" 2>/dev/null; do
          if [ -L "$d" ]; then echo "$d is a symbolic link; refusing to write a dump through it" >&2; exit 3; fi
          if [ ! -e "$d" ]; then mkdir -- "$d"; exit 3; fi
          i=$((i + 1))
          if [ "$i" -gt 99 ]; then echo "$p/$2 and $p/$2-1 to -99 all exist" >&2; exit 3; fi
          d="$p/$2-$i"
        done
        echo "dir:$d"
        """;

    // $1 the file to fill; $2/$3 an optional rename done first (dmesg.txt.tmp, or vmcore-incomplete.flat).
    internal const string StreamScript = """
        umask 077
        if [ -n "$2" ]; then mv -f -- "$2" "$3" || exit 3; fi
        echo ready
        exec cat > "$1"
        """;

    internal const string RenameScript = """mv -f -- "$1" "$2" """;

    /// <summary>The ssh runs of one save, with the retry policy.</summary>
    private sealed class Steps(SshDestination d, Action<string>? report)
    {
        private TimeSpan ReadyTimeout => d.ConnectTimeout + TimeSpan.FromSeconds(30);

        public string MakeDirectory(string parent, string name)
        {
            string stdout = Run("making the dump directory", Sh(MakeDirectoryScript, parent, name), null);
            var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("dir:", StringComparison.Ordinal));
            if (line is null || line.Length <= 4) throw new SshStepException($"{d}: the remote shell did not report the directory it made", true);
            return line[4..];
        }

        public void Rename(string from, string to) => Run($"renaming {Path.GetFileName(from)}", Sh(RenameScript, from, to), null);

        /// <summary>
        /// Streams <paramref name="produce"/>'s bytes into a remote file, after the optional rename
        /// <paramref name="renameFirst"/>. A failure before the remote shell is ready throws
        /// SshStepException (after the retries); a failure after it returns Sent.Ok false.
        /// </summary>
        public Sent Stream(string file, string what, Action<Stream> produce, (string From, string To)? renameFirst = null)
        {
            var sent = new Sent();
            Run($"sending {what}", Sh(StreamScript, file, renameFirst?.From ?? "", renameFirst?.To ?? ""), ssh =>
            {
                sent.Started = true;
                var counting = new CrcStream(ssh.Input, sent);
                try
                {
                    using (var buffered = new BufferedStream(counting, StreamBuffer))
                    {
                        produce(buffered);
                        buffered.Flush();
                    }
                    int code = ssh.Finish(d.IdleTimeout);
                    sent.Ok = code == 0;
                    if (!sent.Ok) sent.Reason = Describe(ssh, code);
                }
                catch (IOException)
                {
                    // ssh went away under us (EPIPE) or the watchdog killed it: its stderr says why.
                    sent.Reason = Describe(ssh, ssh.Finish(TimeSpan.FromSeconds(10)));
                }
            });
            return sent;
        }

        private string Describe(SshProcess ssh, int code) =>
            ssh.LastError ?? (ssh.Killed ? $"no progress for {d.IdleTimeout.TotalSeconds:0} s; ssh was stopped" : $"ssh exited with status {code}");

        /// <summary>
        /// One remote command, tried again while the connection itself fails (exit 255, or no
        /// answer, before the remote shell spoke). With a body, the body runs once the shell said
        /// "ready"; without one, the command runs with empty input and must exit 0. Returns stdout.
        /// </summary>
        private string Run(string what, string command, Action<SshProcess>? body)
        {
            for (int attempt = 0; ; attempt++)
            {
                using var ssh = new SshProcess(d.SshPath, Arguments(d, command), d.IdleTimeout);
                if (body is not null && ssh.WaitForLine(Ready, ReadyTimeout))
                {
                    body(ssh);
                    return ssh.Stdout;
                }
                int code = ssh.Finish(body is null ? ReadyTimeout : TimeSpan.FromSeconds(10));
                if (body is null && code == 0) return ssh.Stdout;
                var lines = ssh.StderrLinesSnapshot();
                string last = lines.Count > 0 ? lines[^1] : ssh.Killed ? $"no answer within {ReadyTimeout.TotalSeconds:0} s" : $"ssh exited with status {code}";
                bool connection = code == 255 || ssh.Killed;
                bool hopeless = lines.Any(l => l.Contains("Host key verification failed", StringComparison.OrdinalIgnoreCase)
                                               || l.Contains("Permission denied", StringComparison.OrdinalIgnoreCase)
                                               || l.Contains("REMOTE HOST IDENTIFICATION HAS CHANGED", StringComparison.Ordinal)
                                               || l.Contains("Could not resolve hostname", StringComparison.Ordinal));
                if (!connection || hopeless || attempt >= d.Retries)
                {
                    string tries = connection && !hopeless && attempt > 0 ? $" after {attempt + 1} attempts" : "";
                    throw new SshStepException($"{d}: {what} failed{tries}: {last}", started: !connection);
                }
                report?.Invoke($"capture-agent: ssh: {d}: {last}; trying again in {d.RetryPause.TotalSeconds:0.#} s ({attempt + 1}/{d.Retries})");
                Thread.Sleep(d.RetryPause);
            }
        }
    }

    /// <summary>Counts and checksums what goes to ssh.</summary>
    private sealed class CrcStream(Stream inner, Sent sent) : Stream
    {
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            sent.Crc64 = Crc64.Update(sent.Crc64, buffer);
            sent.Bytes += buffer.Length;
        }

        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => sent.Bytes; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { }   // ssh's stdin is closed by SshProcess.Finish
    }
}

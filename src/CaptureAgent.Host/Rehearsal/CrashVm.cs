using System.Diagnostics;
using System.Text;
using CaptureAgent.Initramfs;

namespace CaptureAgent.Rehearsal;

/// <summary>One QEMU boot of a crash rehearsal.</summary>
public sealed record VmBootOptions
{
    public required string Kernel { get; init; }
    /// <summary>The first kernel's initramfs (<see cref="CrashVm.WriteFirstInitramfs"/>).</summary>
    public required string FirstInitramfs { get; init; }
    public required long Crashkernel { get; init; }
    public long GuestMemory { get; init; } = 1L << 30;
    /// <summary>QEMU arguments that attach the scratch target (see <see cref="ScratchDisk.QemuArguments"/>).</summary>
    public IReadOnlyList<string> DiskArguments { get; init; } = [];
    public int TimeoutSeconds { get; init; } = 900;
    /// <summary>
    /// How long the console may stay silent before the agent has started in the capture kernel:
    /// a kernel that boots prints all the time, so that long a silence is a hung boot, not a slow one.
    /// </summary>
    public int SilenceSeconds { get; init; } = 240;
    public string Qemu { get; init; } = "qemu-system-x86_64";
    public required string ConsoleLog { get; init; }
    /// <summary>What the first kernel's /init does: arm and crash (<see cref="RehearsalGuest.CrashRole"/>) or run commands (<see cref="RehearsalGuest.CommandsRole"/>).</summary>
    public string Role { get; init; } = RehearsalGuest.CrashRole;
}

/// <summary>A boot's console and how it ended; <paramref name="SilentSeconds"/> is non-zero when it was stopped as hung.</summary>
public sealed record VmBootResult(string Console, double Seconds, bool TimedOut, string ConsoleLog, int SilentSeconds = 0);

/// <summary>
/// The host side of a crash rehearsal in QEMU (TCG): the capture kernel boots as a first kernel with
/// crashkernel=SIZE and a tiny initramfs whose /init is the agent in a <see cref="RehearsalGuest"/>
/// role. That role arms the capture kernel and capture initramfs with kexec_file_load exactly as
/// `load` does, then crashes through sysrq; the capture kernel runs the real capture initramfs.
/// `estimate --measure` and `selftest` both boot this way; nothing of the host is touched but the
/// files given.
/// </summary>
public static class CrashVm
{
    /// <summary>
    /// The first kernel's initramfs: the agent as /init (with its loader and libraries when it is
    /// dynamically linked), the capture kernel and initramfs to arm, and what `load` would append.
    /// Plain newc: every kernel unpacks it.
    /// </summary>
    public static void WriteFirstInitramfs(string path, string agent, string kernel, string initrd,
                                           string? append = null, IReadOnlyList<string>? blacklist = null)
    {
        var libraries = new List<ElfDependency>();
        if (ElfDependencies.IsDynamic(agent))
            libraries.AddRange(new ElfDependencies().Resolve(agent));
        using var output = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var cpio = new CpioNewcWriter(output, leaveOpen: true);
        var made = new HashSet<string>(StringComparer.Ordinal);
        void Directories(string file)
        {
            var parts = file.Split('/', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 1; i < parts.Length; i++)
            {
                string d = string.Join('/', parts[..i]);
                if (made.Add(d)) cpio.WriteDirectory(d);
            }
        }
        foreach (var d in new[] { "dev", "proc", "sys", "boot", "tmp" }) { cpio.WriteDirectory(d); made.Add(d); }
        cpio.WriteCharDevice("dev/console", 0x180, 5, 1);
        using (var f = File.OpenRead(agent)) cpio.WriteFile("init", 0x1ed, f);
        foreach (var lib in libraries)
        {
            Directories(lib.Destination);
            using var f = File.OpenRead(lib.Source);
            cpio.WriteFile(lib.Destination.TrimStart('/'), 0x1ed, f);
        }
        using (var f = File.OpenRead(kernel)) cpio.WriteFile(RehearsalGuest.Kernel.TrimStart('/'), 0x1a4, f);
        using (var f = File.OpenRead(initrd)) cpio.WriteFile(RehearsalGuest.Initrd.TrimStart('/'), 0x1a4, f);
        if (append is not null || blacklist is { Count: > 0 })
            cpio.WriteFile(RehearsalGuest.AppendFile.TrimStart('/'), 0x1a4, Encoding.UTF8.GetBytes($"{append}\n{string.Join(',', blacklist ?? [])}\n"));
        cpio.Finish();
    }

    /// <summary>Boots once and returns the serial console; stops as soon as the outcome is on it.</summary>
    public static VmBootResult Boot(VmBootOptions o)
    {
        var sw = Stopwatch.StartNew();
        var console = new SerialConsole();
        using var p = Process.Start(QemuStartInfo(o)) ?? throw new IOException($"cannot start {o.Qemu}");
        p.StandardInput.Close();
        p.OutputDataReceived += (_, e) => console.Append(e.Data);
        p.ErrorDataReceived += (_, e) => console.Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var end = WaitForOutcome(p, console, sw, o);
        if (!p.HasExited) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
        p.WaitForExit();
        string log = console.Text();
        File.WriteAllText(o.ConsoleLog, log);
        return new VmBootResult(log, sw.Elapsed.TotalSeconds, end != BootEnd.Outcome, o.ConsoleLog, end == BootEnd.Silent ? o.SilenceSeconds : 0);
    }

    private static ProcessStartInfo QemuStartInfo(VmBootOptions o)
    {
        var psi = new ProcessStartInfo(o.Qemu) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "-accel", "tcg", "-cpu", "max,la57=off", "-smp", "2", "-m", $"{o.GuestMemory >> 20}",
                                  "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none",
                                  "-kernel", o.Kernel, "-initrd", o.FirstInitramfs,
                                  "-append", $"console=ttyS0 crashkernel={o.Crashkernel >> 20}M panic=-1 {RehearsalGuest.RoleVariable}={o.Role}" })
            psi.ArgumentList.Add(a);
        foreach (var a in o.DiskArguments) psi.ArgumentList.Add(a);
        return psi;
    }

    private enum BootEnd { Outcome, TimedOut, Silent }

    /// <summary>
    /// Waits until QEMU exits or the outcome is on the console (a final action of halt would keep
    /// QEMU up), the time runs out, or the boot hangs: silent for <see cref="VmBootOptions.SilenceSeconds"/>
    /// before the agent started in the capture kernel (once it has, its own stall_timeout rules).
    /// </summary>
    private static BootEnd WaitForOutcome(Process p, SerialConsole console, Stopwatch sw, VmBootOptions o)
    {
        int length = 0;
        var lastOutput = sw.Elapsed;
        while (!p.WaitForExit(1000))
        {
            string text = console.Text();
            if (Ended(text) && sw.Elapsed.TotalSeconds > 5) { Thread.Sleep(3000); return BootEnd.Outcome; }
            if (sw.Elapsed.TotalSeconds > o.TimeoutSeconds) return BootEnd.TimedOut;
            if (text.Length != length) { length = text.Length; lastOutput = sw.Elapsed; }
            else if ((sw.Elapsed - lastOutput).TotalSeconds > o.SilenceSeconds && !text.Contains(AgentStartedMarker, StringComparison.Ordinal))
                return BootEnd.Silent;
        }
        return BootEnd.Outcome;
    }

    /// <summary>The capture kernel's PID 1 says this first; before it, the capture kernel is still booting.</summary>
    public const string AgentStartedMarker = "capture-agent: capture kernel started";

    /// <summary>QEMU's stdout and stderr as one text, lines appended from both reader threads.</summary>
    private sealed class SerialConsole
    {
        private readonly StringBuilder _text = new();
        private readonly object _gate = new();

        public void Append(string? line)
        {
            if (line is null) return;
            lock (_gate) _text.Append(line.Replace("\r", "")).Append('\n');
        }

        public string Text()
        {
            lock (_gate) return _text.ToString();
        }
    }

    public static bool Ended(string console) =>
        console.Contains("capture-agent: reboot", StringComparison.Ordinal) || console.Contains("capture-agent: halt", StringComparison.Ordinal)
        || console.Contains("capture-agent: poweroff", StringComparison.Ordinal) || console.Contains("measure-guest: giving up", StringComparison.Ordinal)
        || console.Contains("commands-guest: done", StringComparison.Ordinal);

    public static string? FindOnPath(string name)
    {
        if (name.Contains('/')) return File.Exists(name) ? name : null;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            string p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static (int Rc, string Output) RunTool(string file, IEnumerable<string> args, int timeoutSeconds)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new IOException($"cannot start {file}");
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(timeoutSeconds * 1000)) { p.Kill(true); throw new IOException($"{file} did not finish in {timeoutSeconds} s"); }
        return (p.ExitCode, output + err.Result);
    }
}

using System.Diagnostics;
using System.Text;
using CaptureAgent.Boot;
using CaptureAgent.Initramfs;
using CaptureAgent.Kexec;
using CaptureAgent.Native;
using CaptureAgent.Common;
using CaptureAgent.Config;

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
    public string Qemu { get; init; } = "qemu-system-x86_64";
    public required string ConsoleLog { get; init; }
    /// <summary>What the first kernel's /init does: arm and crash (<see cref="CrashVm.GuestRole"/>) or run commands (<see cref="CrashVm.CommandsRole"/>).</summary>
    public string Role { get; init; } = CrashVm.GuestRole;
}

public sealed record VmBootResult(string Console, double Seconds, bool TimedOut, string ConsoleLog);

/// <summary>
/// A crash rehearsal in QEMU (TCG): the capture kernel boots as a first kernel with crashkernel=SIZE
/// and a tiny initramfs whose /init is the agent in the "rehearsal guest" role. That role arms the
/// capture kernel and capture initramfs with kexec_file_load exactly as `load` does, then crashes
/// through sysrq; the capture kernel runs the real capture initramfs. `estimate --measure` and
/// `selftest` both boot this way; nothing of the host is touched but the files given.
/// </summary>
public static class CrashVm
{
    /// <summary>
    /// Unknown key=value kernel parameters reach /init as environment variables (init/main.c,
    /// unknown_bootoption); a dotted name would be taken for a module parameter and swallowed.
    /// </summary>
    public const string RoleVariable = "CAPTURE_AGENT_ROLE";
    public const string GuestRole = "measure-guest";
    /// <summary>
    /// The other first-kernel role: run the agent's own commands, one per line of
    /// <see cref="GuestCommands"/> (say `load --auto`, `status`, `test --crash --yes`), as on an
    /// installed host; the VM powers off after the last one if none crashed it.
    /// </summary>
    public const string CommandsRole = "commands-guest";
    public const string GuestCommands = "/etc/capture-agent-guest-commands";
    public const string GuestKernel = "/boot/vmlinuz";
    public const string GuestInitrd = "/boot/capture.img";
    /// <summary>Extra capture command line (line 1) and blacklist (line 2), as `load` takes them from the config.</summary>
    public const string GuestAppend = "/boot/capture.append";

    /// <summary>The first-kernel role this PID 1 was started in, or null: it is /init of a capture initramfs.</summary>
    public static string? Role() => Environment.GetEnvironmentVariable(RoleVariable) switch
    {
        GuestRole => GuestRole,
        CommandsRole => CommandsRole,
        _ => null,
    };

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
        using (var f = File.OpenRead(kernel)) cpio.WriteFile(GuestKernel.TrimStart('/'), 0x1a4, f);
        using (var f = File.OpenRead(initrd)) cpio.WriteFile(GuestInitrd.TrimStart('/'), 0x1a4, f);
        if (append is not null || blacklist is { Count: > 0 })
            cpio.WriteFile(GuestAppend.TrimStart('/'), 0x1a4, Encoding.UTF8.GetBytes($"{append}\n{string.Join(',', blacklist ?? [])}\n"));
        cpio.Finish();
    }

    /// <summary>Boots once and returns the serial console; stops as soon as the outcome is on it.</summary>
    public static VmBootResult Boot(VmBootOptions o)
    {
        var psi = new ProcessStartInfo(o.Qemu) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "-accel", "tcg", "-cpu", "max,la57=off", "-smp", "2", "-m", $"{o.GuestMemory >> 20}",
                                  "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none",
                                  "-kernel", o.Kernel, "-initrd", o.FirstInitramfs,
                                  "-append", $"console=ttyS0 crashkernel={o.Crashkernel >> 20}M panic=-1 {RoleVariable}={o.Role}" })
            psi.ArgumentList.Add(a);
        foreach (var a in o.DiskArguments) psi.ArgumentList.Add(a);

        var sw = Stopwatch.StartNew();
        var console = new StringBuilder();
        var gate = new object();
        using var p = Process.Start(psi) ?? throw new IOException($"cannot start {o.Qemu}");
        p.StandardInput.Close();
        void Append(string? line) { if (line is null) return; lock (gate) console.Append(line.Replace("\r", "")).Append('\n'); }
        p.OutputDataReceived += (_, e) => Append(e.Data);
        p.ErrorDataReceived += (_, e) => Append(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        bool timedOut = false;
        // Stop as soon as the outcome is on the console: a final action of halt would keep QEMU up.
        while (!p.WaitForExit(1000))
        {
            string text;
            lock (gate) text = console.ToString();
            if (Ended(text) && sw.Elapsed.TotalSeconds > 5) { Thread.Sleep(3000); break; }
            if (sw.Elapsed.TotalSeconds > o.TimeoutSeconds) { timedOut = true; break; }
        }
        if (!p.HasExited) { try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
        p.WaitForExit();
        string log;
        lock (gate) log = console.ToString();
        File.WriteAllText(o.ConsoleLog, log);
        return new VmBootResult(log, sw.Elapsed.TotalSeconds, timedOut, o.ConsoleLog);
    }

    public static bool Ended(string console) =>
        console.Contains("capture-agent: reboot", StringComparison.Ordinal) || console.Contains("capture-agent: halt", StringComparison.Ordinal)
        || console.Contains("capture-agent: poweroff", StringComparison.Ordinal) || console.Contains("measure-guest: giving up", StringComparison.Ordinal)
        || console.Contains("commands-guest: done", StringComparison.Ordinal);

    /// <summary>
    /// PID 1 of the <see cref="CommandsRole"/>: each line of <see cref="GuestCommands"/> through the
    /// agent's command dispatcher, its exit status on the console, then power off.
    /// </summary>
    public static int RunCommandsGuest(Func<string[], int> dispatch) => AsFirstKernel(CommandsRole, "done", () =>
    {
        foreach (var line in File.ReadAllLines(GuestCommands).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            Log.Info($"{CommandsRole}: $ capture-agent {line}");
            int rc;
            try { rc = dispatch(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)); }
            catch (Exception e) { Log.Info($"{CommandsRole}: {e.GetType().Name}: {e.Message}"); rc = ExitCodes.Failed; }
            Console.Out.Flush();
            Log.Info($"{CommandsRole}: exit {rc}");
        }
    });

    /// <summary>
    /// PID 1 of the rehearsal VM's first kernel: arm the capture kernel the way `load` does, then
    /// crash. Never returns normally; every failure powers the VM off with one line saying why.
    /// </summary>
    public static int RunGuest() => AsFirstKernel(GuestRole, "giving up", () =>
    {
        var state = CrashKernelState.Read();
        string? append = null;
        string[] blacklist = [];
        if (File.Exists(GuestAppend))
        {
            var lines = File.ReadAllLines(GuestAppend);
            if (lines.Length > 0 && lines[0].Length > 0) append = lines[0];
            if (lines.Length > 1) blacklist = lines[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
        }
        // Build drops our role variable: the capture kernel's /init is the real capture agent.
        string cmdline = CaptureCommandLine.Build(state.CommandLine, append, blacklist);
        try
        {
            KexecLoader.LoadCrashKernel(GuestKernel, GuestInitrd, cmdline, state);
        }
        catch (Exception e) when (e is KexecLoader.KexecException or IOException)
        {
            Log.Info($"{GuestRole}: load refused: {e.Message}");
            return;
        }
        Log.Info($"{GuestRole}: armed in {state.ReservedBytes >> 20} MiB; capture command line: {cmdline}");
        Log.Info($"{GuestRole}: crashing");
        CrashTrigger.Trigger();
    });

    /// <summary>
    /// The frame of both roles: console, /proc /sys /dev, the body, then one closing line, sync and
    /// power off (PID 1 must not return). Started in a capture kernel by mistake, it captures.
    /// </summary>
    private static int AsFirstKernel(string role, string closing, Action body)
    {
        try
        {
            BootEnvironment.EnsureConsole();
            BootEnvironment.MountPseudoFilesystems();
            if (File.Exists("/proc/vmcore")) return CaptureInit.Run();
            Log.Info($"{role}: first kernel up; {ProcessMemory.MemorySummary()}");
            body();
        }
        catch (Exception e)
        {
            Log.Info($"{role}: {e.GetType().Name}: {e.Message}");
        }
        Log.Info($"{role}: {closing}");
        Libc.Sync();
        Libc.Reboot(Libc.RB_POWER_OFF);
        return ExitCodes.Failed;
    }

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

/// <summary>
/// The crash itself, for `test --crash` and the rehearsal guest: sync, then sysrq 'c' through
/// /proc/sysrq-trigger (which works whatever kernel.sysrq allows from the keyboard).
/// </summary>
public static class CrashTrigger
{
    public static void Trigger(string procRoot = "/proc")
    {
        // What was just said on a serial console or an ssh session may still sit in the tty's
        // buffer: the kernel stops transmitting it the moment it panics.
        Console.Out.Flush();
        Console.Error.Flush();
        Libc.TcDrain(1);
        Libc.TcDrain(2);
        Libc.Sync();
        File.WriteAllText(Path.Combine(procRoot, "sysrq-trigger"), "c");
    }
}

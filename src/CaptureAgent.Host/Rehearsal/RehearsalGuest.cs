using CaptureAgent.Boot;
using CaptureAgent.Common;
using CaptureAgent.Config;
using CaptureAgent.Kexec;
using CaptureAgent.Native;

namespace CaptureAgent.Rehearsal;

/// <summary>
/// The guest side of a crash rehearsal: PID 1 of the first kernel that <see cref="CrashVm"/> boots
/// in QEMU. Its role comes from the kernel command line; its files are the ones
/// <see cref="CrashVm.WriteFirstInitramfs"/> put in the first kernel's initramfs.
/// </summary>
public static class RehearsalGuest
{
    /// <summary>
    /// Unknown key=value kernel parameters reach /init as environment variables (init/main.c,
    /// unknown_bootoption); a dotted name would be taken for a module parameter and swallowed.
    /// </summary>
    public const string RoleVariable = "CAPTURE_AGENT_ROLE";
    /// <summary>Arm the capture kernel as `load` does, then crash (<see cref="RunCrash"/>).</summary>
    public const string CrashRole = "measure-guest";
    /// <summary>
    /// The other first-kernel role: run the agent's own commands, one per line of
    /// <see cref="CommandsFile"/> (say `load --auto`, `status`, `test --crash --yes`), as on an
    /// installed host; the VM powers off after the last one if none crashed it.
    /// </summary>
    public const string CommandsRole = "commands-guest";
    public const string CommandsFile = "/etc/capture-agent-guest-commands";
    public const string Kernel = "/boot/vmlinuz";
    public const string Initrd = "/boot/capture.img";
    /// <summary>Extra capture command line (line 1) and blacklist (line 2), as `load` takes them from the config.</summary>
    public const string AppendFile = "/boot/capture.append";

    /// <summary>The first-kernel role this PID 1 was started in, or null: it is /init of a capture initramfs.</summary>
    public static string? Role() => Environment.GetEnvironmentVariable(RoleVariable) switch
    {
        CrashRole => CrashRole,
        CommandsRole => CommandsRole,
        _ => null,
    };

    /// <summary>
    /// PID 1 of the <see cref="CommandsRole"/>: each line of <see cref="CommandsFile"/> through the
    /// agent's command dispatcher, its exit status on the console, then power off.
    /// </summary>
    public static int RunCommands(Func<string[], int> dispatch) => AsFirstKernel(CommandsRole, "done", () =>
    {
        foreach (var line in File.ReadAllLines(CommandsFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')))
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
    /// PID 1 of the <see cref="CrashRole"/>: arm the capture kernel the way `load` does, then
    /// crash. Never returns normally; every failure powers the VM off with one line saying why.
    /// </summary>
    public static int RunCrash() => AsFirstKernel(CrashRole, "giving up", () =>
    {
        var state = CrashKernelState.Read();
        var (append, blacklist) = ReadAppendFile();
        // Build drops our role variable: the capture kernel's /init is the real capture agent.
        string cmdline = CaptureCommandLine.Build(state.CommandLine, append, blacklist);
        try
        {
            KexecLoader.LoadCrashKernel(Kernel, Initrd, cmdline, state);
        }
        catch (Exception e) when (e is KexecLoader.KexecException or IOException)
        {
            Log.Info($"{CrashRole}: load refused: {e.Message}");
            return;
        }
        Log.Info($"{CrashRole}: armed in {state.ReservedBytes >> 20} MiB; capture command line: {cmdline}");
        Log.Info($"{CrashRole}: crashing");
        CrashTrigger.Trigger();
    });

    /// <summary>What `load` would have appended from the config: none when the launcher wrote no <see cref="AppendFile"/>.</summary>
    private static (string? Append, string[] Blacklist) ReadAppendFile()
    {
        string? append = null;
        string[] blacklist = [];
        if (File.Exists(AppendFile))
        {
            var lines = File.ReadAllLines(AppendFile);
            if (lines.Length > 0 && lines[0].Length > 0) append = lines[0];
            if (lines.Length > 1) blacklist = lines[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
        }
        return (append, blacklist);
    }

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
}

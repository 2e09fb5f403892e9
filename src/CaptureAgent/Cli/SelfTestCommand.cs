using CaptureAgent.Host;
using CaptureAgent.Kexec;
using CaptureAgent.Rehearsal;
using CaptureAgent.Common;
namespace CaptureAgent.Cli;

/// <summary>`capture-agent selftest` (a crash rehearsed in QEMU) and `capture-agent test --crash` (the real one).</summary>
public static class SelfTestCommand
{
    public const string Usage = """
        usage: capture-agent selftest [--kernel-version KVER] [--crashkernel SIZE] [--memory SIZE] [--root DIR]
                                      [--work DIR] [--keep] [--timeout SECONDS] [--json]
          Rehearses a crash of this host without crashing it: the kernel and capture initramfs that
          load --auto arms (rebuilt first when stale) boot in QEMU with this host's reservation; the
          VM's first kernel arms them and crashes; the capture kernel saves to a scratch disk made
          with the first local target's filesystem type and LABEL/UUID; the dump is then read back
          from the scratch disk and verified. Exit 0 when a complete, readable dump appeared.
          Needs qemu-system-x86 and the target's mkfs; ext2/3/4 are read back with debugfs, other
          filesystems with a loop mount (root). Rebuilds a stale stored image, as the service would.
          --timeout bounds the whole boot (900 s); a boot whose console stays silent for 240 s
          before the agent starts in the capture kernel is stopped then, and called hung.
        """;

    public const string CrashUsage = """
        usage: capture-agent test --crash [--yes]
          Crashes THIS machine now (sysrq 'c') so the armed capture kernel saves a real dump, then
          reboots as the config says. Asks for CRASH on standard input unless --yes.
        """;

    public static int SelfTest(string[] args) => CommandLine.Run(Usage, args, Rehearse);

    private static int Rehearse(string[] args)
    {
        var o = new SelfTestOptions { Root = HostLayout.DefaultRoot() };
        bool json = false;
        var cli = new ArgReader("selftest", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--kernel-version": o = o with { Release = cli.Value() }; break;
                case "--crashkernel": o = o with { Crashkernel = Size(cli) }; break;
                case "--memory": o = o with { GuestMemory = Size(cli) }; break;
                case "--root": o = o with { Root = cli.Value() }; break;
                case "--work": o = o with { WorkDir = cli.Value() }; break;
                case "--keep": o = o with { Keep = true }; break;
                case "--timeout": o = o with { TimeoutSeconds = cli.Int(1, int.MaxValue, "seconds") }; break;
                case "--qemu": o = o with { Qemu = cli.Value() }; break;
                case "--json": json = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (o.Release is not null && !HostLayout.IsValidRelease(o.Release)) throw cli.Error($"'{o.Release}' is not a kernel release");
        SelfTestResult r;
        try
        {
            r = Rehearsal.SelfTest.Run(o, json ? Log.Info : m => Console.Out.WriteLine(m));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException)
        {
            Log.Error($"selftest: cannot run: {e.Message}");
            return ExitCodes.Failed;
        }
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteJson(stdout, r));
        }
        else
        {
            foreach (var n in r.Notes) Console.Out.WriteLine("note: " + n);
            if (r.AgentPeakKiB is long kib) Console.Out.WriteLine($"selftest: agent peak memory {kib / 1024.0:0.0} MiB in the capture kernel");
            Console.Out.WriteLine($"selftest: {r.Summary}");
        }
        return r.Passed ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private static long Size(ArgReader cli) =>
        SizeText.Parse(cli.Value()) is long v and > 0 ? v : throw cli.Error($"{cli.Option} takes a size like 256M");

    /// <summary>selftest --json (docs/json-output.md).</summary>
    internal static void WriteJson(Stream output, SelfTestResult r) => JsonOutput.WriteObject(output, w =>
    {
        w.WriteBoolean("passed", r.Passed);
        w.WriteString("summary", r.Summary);
        w.WriteString("kernel_release", r.Release);
        w.WriteString("kernel", r.Kernel);
        w.WriteString("initramfs", r.Initramfs);
        w.WriteNumber("crashkernel_bytes", r.Crashkernel);
        w.WriteNumber("guest_memory_bytes", r.GuestMemory);
        w.WriteString("target", r.Target);
        w.WriteString("scratch_disk", r.ScratchFilesystem);
        w.WriteString("outcome", r.Outcome);
        w.WriteNumber("seconds", Math.Round(r.Seconds, 1));
        w.NumberOrNull("agent_peak_kib", r.AgentPeakKiB);
        w.WriteString("dump_directory", r.DumpDirectory);
        w.WriteString("verify", r.Verify);
        w.WriteString("read_back", r.ReadBack);
        w.WriteString("panic_message", r.PanicMessage);
        w.WriteString("console_log", r.ConsoleLog);
        w.StringArray("notes", r.Notes);
    });

    /// <summary>`test --crash`: only when armed, only after the answer CRASH (or --yes).</summary>
    public static int Test(string[] args) =>
        CommandLine.Run(CrashUsage, args, a => Test(a, Console.In, Console.Out, CrashKernelState.Read(), () => CrashTrigger.Trigger()));

    public static int Test(string[] args, TextReader input, TextWriter output, CrashKernelState state, Action crash) =>
        CommandLine.Run(CrashUsage, args, a => Crash(a, input, output, state, crash), output);

    private static int Crash(string[] args, TextReader input, TextWriter output, CrashKernelState state, Action crash)
    {
        bool crashFlag = false, yes = false;
        var cli = new ArgReader("test", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--crash": crashFlag = true; break;
                case "--yes" or "-y": yes = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!crashFlag) throw cli.Error("give --crash to crash this machine for real (capture-agent selftest rehearses it in a VM instead)");
        if (!state.Loaded)
        {
            // Crashing unarmed would only lose the machine's work: no dump would come of it.
            Log.Error($"test --crash: refused, {state.Explain()}");
            return ExitCodes.Failed;
        }
        output.WriteLine($"test --crash: {state.Explain()}");
        if (!yes)
        {
            output.WriteLine("This crashes the running kernel NOW: unsaved work is lost, every service stops, the");
            output.WriteLine("capture kernel saves a dump and the machine reboots as the config says.");
            output.Write("Type CRASH to go on: ");
            output.Flush();
            string? answer = input.ReadLine();
            if (answer?.Trim() != "CRASH")
            {
                output.WriteLine();
                output.WriteLine("test --crash: not confirmed; nothing done");
                return ExitCodes.Failed;
            }
        }
        output.WriteLine("test --crash: syncing and crashing (sysrq c)");
        output.Flush();
        try
        {
            crash();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"test --crash: cannot write /proc/sysrq-trigger: {e.Message}");
            return ExitCodes.Failed;
        }
        // Only reached when the trigger did not take the kernel down.
        Log.Error("test --crash: the kernel is still running after sysrq c");
        return ExitCodes.Failed;
    }
}

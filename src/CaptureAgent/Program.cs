using CaptureAgent.Cli;
using CaptureAgent.Common;

namespace CaptureAgent;

public static class Program
{
    internal const string Usage = """
        capture-agent: Linux kernel crash capture in one binary
          capture-agent dump [options] VMCORE [DUMPFILE]   filter and compress a vmcore (makedumpfile-style; -f overwrites)
          capture-agent dmesg VMCORE|DUMP [OUTFILE]         the crashed kernel's log
          capture-agent rearrange OUTFILE < FLATTENED        turn a flattened (-F) stream into a dump file
          capture-agent load [--kernel K] [--initrd I]        arm the capture kernel (kexec_file_load)
          capture-agent unload | status [--json]             disarm it | say whether a crash would be captured
          capture-agent initramfs build -o IMAGE ...          write the capture initramfs
          capture-agent capture [--config FILE] [--vmcore F]  save a dump to the configured targets, as the capture kernel does
          capture-agent verify DIR|DUMPFILE [--json]          is a saved dump complete, cut short or corrupt?
          capture-agent savecore [--device DEV] [--dir DIR]   extract a dump the capture kernel wrote onto a raw device
          capture-agent report [DIR] [--json] [--limit N]     saved dumps: what crashed, call trace, signature
          capture-agent config import|check ...              a kdump.conf / kdump-tools setup as capture-agent.conf; validate a config
          capture-agent net up|list|modules ...               the network without ip(8): DHCP or static address, NICs, NIC modules
          capture-agent estimate [--measure] [--json] ...      how much crashkernel= the capture kernel needs (computed, or measured in QEMU)
          capture-agent crashkernel [--size SIZE|auto] [--apply]  put crashkernel= into GRUB / BLS entries / /etc/kernel/cmdline
          capture-agent install | uninstall [--root DIR] [--dry-run]  the service, default config and kernel package hooks
          capture-agent kernel-hook add|remove KVER [IMAGE]   keep /var/lib/capture-agent/KVER/initramfs.img (the kernel hooks call this)
          capture-agent pin [KVER | --unpin]                  arm this kernel with load --auto instead of the running one
          capture-agent selftest [--json] ...                 rehearse a crash of this host's setup in QEMU, check the dump (crashes nothing)
          capture-agent test --crash [--yes]                  crash this machine for real (asks first)
          capture-agent propagate [--target ssh:U@H] [--yes]  ssh targets: make the key, pin the host key, install it on the collector
          capture-agent version | help COMMAND                 this release | a command's help (also: COMMAND --help; man capture-agent)
        makedumpfile-style calls work too: capture-agent -d 31 -c VMCORE DUMPFILE, capture-agent --dump-dmesg VMCORE OUT
        every command reads its options alike: short ones clustered or with the value attached (-cd31),
        long ones with the value after = (--message-level=1), -- before operands that start with -
        """;

    public static int Main(string[] args)
    {
        // A write past the file size limit (ulimit -f) fails with EFBIG, which the writers handle
        // (the dump ends as incomplete, said so), instead of SIGXFSZ killing the process silently.
        Native.Libc.IgnoreSignal(Native.Libc.SIGXFSZ);
        // As /init of the capture initramfs the kernel starts us as PID 1. Its arguments are kernel
        // parameters the kernel did not recognise, not a command: PID 1 must never take another path.
        if (Environment.ProcessId == 1)
            return Rehearsal.RehearsalGuest.Role() switch
            {
                Rehearsal.RehearsalGuest.CrashRole => Rehearsal.RehearsalGuest.RunCrash(),
                Rehearsal.RehearsalGuest.CommandsRole => Rehearsal.RehearsalGuest.RunCommands(Dispatch),
                _ => Boot.CaptureInit.Run(),
            };
        try
        {
            return Dispatch(args);
        }
        catch (Exception e)
        {
            // Never die with an unhandled exception: say what broke in one line.
            Log.Error(ErrorText.Of(e));
            return ExitCodes.Failed;
        }
    }

    private static int Dispatch(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" || args is ["help"])
        {
            Console.Out.WriteLine(Usage);
            return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
        }
        // COMMAND ... --help: that command's help whatever else the line holds, before any of it is
        // read or done (each command checks again when called directly). The text is the help table's.
        if (HelpTopic(args[0]) is { } doc && ArgReader.AsksForHelp(args.Skip(1)))
        {
            Console.Out.WriteLine(doc.Usage);
            return ExitCodes.Ok;
        }
        return args[0] switch
        {
            "version" or "--version" => HelpCommand.Version(args[1..]),
            "help" => HelpCommand.Run(args[1..]),
            "dump" => DumpCommand.Run(args[1..]),
            Boot.CaptureWorker.Command => Boot.CaptureWorker.Run(args),   // started by the capture kernel's PID 1
            "dmesg" or "--dump-dmesg" => DmesgCommand.Run(args[1..]),
            "rearrange" or "-R" => RearrangeCommand.Run(args[1..]),
            "load" => LoadCommand.Load(args[1..]),
            "unload" => LoadCommand.Unload(args[1..]),
            "status" => LoadCommand.Status(args[1..]),
            "initramfs" => InitramfsCommand.Run(args[1..]),
            "capture" => CaptureCommand.Run(args[1..]),
            "verify" => VerifyCommand.Run(args[1..]),
            "savecore" => SavecoreCommand.Run(args[1..]),
            "report" => ReportCommand.Run(args[1..]),
            "net" => NetCommand.Run(args[1..]),
            "config" => ConfigCommand.Run(args[1..]),
            "estimate" => EstimateCommand.Run(args[1..]),
            "crashkernel" => CrashkernelCommand.Run(args[1..]),
            "install" => InstallCommand.Install(args[1..]),
            "uninstall" => InstallCommand.Uninstall(args[1..]),
            "kernel-hook" => KernelHookCommand.Run(args[1..]),
            "pin" => KernelHookCommand.Pin(args[1..]),
            "selftest" => SelfTestCommand.SelfTest(args[1..]),
            "test" => SelfTestCommand.Test(args[1..]),
            "propagate" => PropagateCommand.Run(args[1..]),
            _ when args[0].StartsWith('-') => DumpCommand.Run(args),   // makedumpfile-style: capture-agent -d 31 -c VMCORE DUMPFILE
            _ => UnknownCommand(args[0]),
        };
    }

    /// <summary>Whose help a first word asks for: a command's, or for makedumpfile's forms dmesg's, rearrange's or dump's.</summary>
    private static CommandDoc? HelpTopic(string first) => first switch
    {
        Boot.CaptureWorker.Command => null,
        "--dump-dmesg" => CommandHelp.Find("dmesg"),
        "-R" => CommandHelp.Find("rearrange"),
        "--version" => CommandHelp.Find("version"),
        _ when first.StartsWith('-') => CommandHelp.Find("dump"),
        _ => CommandHelp.Find(first),
    };

    private static int UnknownCommand(string name)
    {
        CommandLine.UsageError($"unknown command '{name}' (capture-agent --help lists the commands)");
        return ExitCodes.Usage;
    }
}

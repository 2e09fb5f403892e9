namespace CaptureAgent.Cli;

/// <summary>One command: what `capture-agent COMMAND --help` prints, and its section of capture-agent(8).</summary>
public sealed record CommandDoc(string Name, string Summary, string Usage);

/// <summary>
/// The commands and their help texts, next to the code that parses them: `COMMAND --help`,
/// `help COMMAND`, the man page capture-agent(8) and the bash completion are all made from this
/// table, so they cannot disagree.
/// </summary>
public static class CommandHelp
{
    public static readonly CommandDoc[] All =
    [
        new("dump", "filter and compress a vmcore (makedumpfile-style)", DumpCommand.Usage),
        new("dmesg", "the crashed kernel's log", DmesgCommand.Usage),
        new("rearrange", "turn a flattened stream into a dump file (makedumpfile -R)", RearrangeCommand.Usage),
        new("load", "arm the capture kernel (kexec_file_load)", LoadCommand.Usage),
        new("unload", "disarm it", LoadCommand.Usage),
        new("status", "whether a crash would be captured, and why not", LoadCommand.Usage),
        new("initramfs", "write a capture initramfs", InitramfsCommand.Usage),
        new("capture", "save a dump to the configured targets, as the capture kernel does", CaptureCommand.Usage),
        new("verify", "is a saved dump complete, cut short or corrupt?", VerifyCommand.Usage),
        new("savecore", "extract a dump the capture kernel wrote onto a raw device", SavecoreCommand.Usage),
        new("report", "saved dumps: what crashed, call trace, signature", ReportCommand.Usage),
        new("config", "import a kdump setup, check a config, write the default one", ConfigCommand.Usage),
        new("net", "the network without ip(8): DHCP or a static address, NICs, NIC modules", NetCommand.Usage),
        new("estimate", "how much crashkernel= the capture kernel needs", EstimateCommand.Usage),
        new("crashkernel", "put crashkernel= into GRUB, BLS entries or /etc/kernel/cmdline", CrashkernelCommand.Usage),
        new("install", "the service, default config, kernel and early-boot hooks, without a package", InstallCommand.Usage),
        new("uninstall", "remove what install wrote", InstallCommand.Usage),
        new("kernel-hook", "keep the capture initramfs of a kernel (the kernel package hooks call this)", KernelHookCommand.Usage),
        new("pin", "arm this kernel with load --auto instead of the running one", KernelHookCommand.PinUsage),
        new("propagate", "make an ssh: target ready: key, host key, authorized_keys, writable directory", PropagateCommand.Usage),
        new("selftest", "rehearse a crash of this host's setup in QEMU and check the dump", SelfTestCommand.Usage),
        new("test", "crash this machine for real (asks first)", SelfTestCommand.CrashUsage),
        new("version", "the release of this binary", HelpCommand.VersionUsage),
        new("help", "these texts, the man pages, the bash completion", HelpCommand.Usage),
    ];

    public static CommandDoc? Find(string name) => All.FirstOrDefault(c => c.Name == name);

    /// <summary>The overview `capture-agent --help` prints (<see cref="Program.Usage"/>).</summary>
    public static string Overview => Program.Usage;
}

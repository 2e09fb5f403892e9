using CaptureAgent.Initramfs;
using CaptureAgent.Rehearsal;
using CaptureAgent.Sizing;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;
using static CaptureAgent.Tests.Host.Rehearsal.SelfTestEndToEndTests;

namespace CaptureAgent.Tests.Host.Rehearsal;

/// <summary>
/// The service's own commands in a real kernel: the scratch root installed by `install` and the
/// kernel hook becomes the root filesystem of a QEMU VM (TCG) whose first kernel runs, as PID 1,
/// `load --auto` (what capture-agent.service starts), `status`, and `test --crash --yes`. The
/// capture kernel it armed must save a complete dump of that crash on the VM's disk.
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time
[Trait("Category", "Vm")]
public class ServiceCommandsEndToEndTests(ITestOutputHelper log)
{
    private const string Config = "target = LABEL=crashdump\nfstype = ext4\npath = /var/crash\ndump_level = 31\nextra_modules = virtio_pci virtio_blk\ndevice_timeout = 30\nkernel_cmdline_append = capture_agent_test=1\n";

    [Fact]
    public void LoadAutoArmsAndTestCrashIsCaptured()
    {
        using var root = new InstalledRoot(Config);
        string work = root.Dir.File("work");
        Directory.CreateDirectory(work);
        File.WriteAllText(Path.Combine(root.Root, "etc/capture-agent-guest-commands"), "load --auto\nstatus\ntest --crash --yes\n");
        string first = Path.Combine(work, "first.cpio");
        WriteRootAsInitramfs(root.Root, first);

        var disk = ScratchDisk.Plan(Target("LABEL=crashdump"), "ext4", null, new HashSet<string> { "virtio_blk" }, null, []);
        string image = Path.Combine(work, "scratch.img");
        ScratchDisk.Create(disk, image, 1536L << 20, m => log.WriteLine(m));
        var boot = CrashVm.Boot(new VmBootOptions
        {
            Kernel = Path.Combine(root.Root, "boot", $"vmlinuz-{Release}"), FirstInitramfs = first, Crashkernel = 256L << 20,
            DiskArguments = ScratchDisk.QemuArguments(disk, image), Role = RehearsalGuest.CommandsRole, TimeoutSeconds = 900,
            ConsoleLog = Path.Combine(work, "console.log"),
        });
        string console = boot.Console;
        log.WriteLine(console.Length > 20000 ? console[^20000..] : console);

        // load --auto: the running kernel (nothing pinned), its stored capture initramfs, armed.
        int load = console.IndexOf("commands-guest: $ capture-agent load --auto", StringComparison.Ordinal);
        int status = console.IndexOf("commands-guest: $ capture-agent status", StringComparison.Ordinal);
        int crash = console.IndexOf("commands-guest: $ capture-agent test --crash --yes", StringComparison.Ordinal);
        Assert.True(load >= 0 && status > load && crash > status, "the three commands did not run in order");
        log.WriteLine("---- the commands' output ----\n" + console[load..Math.Min(console.Length, crash + 2000)]);
        string loadOutput = console[load..status];
        Assert.Contains("the running kernel", loadOutput);
        Assert.Contains($"capture kernel: /boot/vmlinuz-{Release}", loadOutput);
        Assert.Contains($"capture initramfs: /var/lib/capture-agent/{Release}/initramfs.img", loadOutput);
        Assert.Contains("capture_agent_test=1", loadOutput);   // the config's kernel_cmdline_append
        Assert.DoesNotContain("CAPTURE_AGENT_ROLE", loadOutput[loadOutput.IndexOf("capture command line:", StringComparison.Ordinal)..].Split('\n')[0]);
        Assert.Contains("commands-guest: exit 0", loadOutput);
        string statusOutput = console[status..crash];
        Assert.Contains("armed: a capture kernel is loaded in a 256 MiB reservation", statusOutput);
        Assert.Contains($"load --auto arms {Release} (the running kernel)", statusOutput);
        Assert.Contains("commands-guest: exit 0", statusOutput);

        // test --crash: no prompt with --yes, the kernel goes down, the capture kernel saves.
        string after = console[crash..];
        Assert.Contains("test --crash: syncing and crashing (sysrq c)", after);
        Assert.Contains("sysrq triggered crash", after);
        Assert.DoesNotContain("commands-guest: exit", after);
        Assert.Contains("complete dump saved", after);
        Assert.Equal((true, "complete dump saved"), CrashkernelMeasure.Classify(console[status..], diskTarget: true, boot.TimedOut));

        // The dump, read back from the disk image with debugfs, is complete; report finds the panic.
        string readback = Path.Combine(work, "readback");
        Directory.CreateDirectory(readback);
        var rd = Fixtures.Exec("/usr/sbin/debugfs", ["-R", $"rdump /var/crash {readback}", image]);
        Assert.Equal(0, rd.ExitCode);
        string dumpDir = Assert.Single(Directory.GetDirectories(Path.Combine(readback, "crash")));
        var verify = Fixtures.Exec(Fixtures.Binary, ["verify", dumpDir]);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        var report = Fixtures.Exec(Fixtures.Binary, ["report", Path.Combine(readback, "crash")]);
        Assert.Contains("sysrq triggered crash", report.Stdout);
    }

    private static CaptureAgent.Config.TargetEntry Target(string text)
    {
        Assert.True(CaptureAgent.Config.TargetEntry.TryParse(text, out var t, out var error), error);
        return t;
    }

    /// <summary>
    /// The installed root as a plain newc archive: its files as they are, the agent as /init with
    /// its loader and libraries, and of the module tree only the index files and the modules the
    /// stored capture initramfs holds (what a rebuild in the VM would need).
    /// </summary>
    private static void WriteRootAsInitramfs(string root, string output)
    {
        using var f = File.Create(output);
        using var cpio = new CpioNewcWriter(f, leaveOpen: true);
        var made = new HashSet<string>(StringComparer.Ordinal);
        void Dir(string rel)
        {
            var parts = rel.Split('/', StringSplitOptions.RemoveEmptyEntries);
            for (int i = 1; i <= parts.Length; i++)
            {
                string d = string.Join('/', parts[..i]);
                if (made.Add(d)) cpio.WriteDirectory(d);
            }
        }
        void Add(string source, string rel, uint mode)
        {
            Dir(Path.GetDirectoryName(rel)!);
            using var s = File.OpenRead(source);
            cpio.WriteFile(rel, mode, s);
        }
        foreach (var d in new[] { "dev", "proc", "sys", "run", "tmp" }) Dir(d);
        cpio.WriteCharDevice("dev/console", 0x180, 5, 1);
        string agent = Path.Combine(root, "usr/sbin/capture-agent");
        Add(agent, "init", 0x1ed);
        foreach (var lib in new ElfDependencies().Resolve(agent)) Add(lib.Source, lib.Destination.TrimStart('/'), 0x1ed);
        string modules = Path.Combine("lib", "modules", Release);
        foreach (var e in FileTree.Entries(root))
        {
            string rel = Path.GetRelativePath(root, e);
            if (rel.StartsWith("lib", StringComparison.Ordinal)) continue;
            var info = new FileInfo(e);
            if (info.LinkTarget is not null) { Dir(Path.GetDirectoryName(rel)!); cpio.WriteSymlink(rel, info.LinkTarget); }
            else if (Directory.Exists(e)) Dir(rel);
            else Add(e, rel, (uint)File.GetUnixFileMode(e));
        }
        string tree = Path.Combine(root, modules);
        foreach (var index in Directory.GetFiles(tree)) Add(index, Path.Combine(modules, Path.GetFileName(index)), 0x1a4);
        var stored = InitramfsScan.Scan(Path.Combine(root, "var/lib/capture-agent", Release, "initramfs.img"));
        foreach (var m in stored.Modules)
        {
            string rel = m.Path.TrimStart('/');
            string source = Path.Combine(root, rel);
            if (File.Exists(source)) Add(source, rel, 0x1a4);
        }
        cpio.Finish();
    }
}

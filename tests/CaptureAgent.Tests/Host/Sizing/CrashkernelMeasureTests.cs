using CaptureAgent.Initramfs;
using CaptureAgent.Sizing;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Compression;
using CaptureAgent.Rehearsal;

namespace CaptureAgent.Tests.Host.Sizing;

/// <summary>Reading a measuring VM's console into an outcome (console excerpts shaped like real runs).</summary>
public class CrashkernelMeasureTests
{
    private const string Armed = "measure-guest: first kernel up; MemTotal: 760000 kB\nmeasure-guest: armed in 96 MiB\nmeasure-guest: crashing\n[   20.1] sysrq: Trigger a crash\n";

    [Fact]
    public void AGarbledCrashLineStillCountsWhenTheKernelPanicked()
    {
        // Seen in CI: our line interleaved with kernel messages on the serial console.
        var (works, outcome) = CrashkernelMeasure.Classify("measure-guest: cra[   12.1] sysrq: Trigger a crash\n[   12.1] Kernel panic - not syncing: sysrq triggered crash\nshing\n" +
            "capture-agent: capture kernel started\ncapture-agent: LABEL=crashdump: complete dump saved in /mnt/target0/x\n", diskTarget: true, timedOut: false);
        Assert.True(works, outcome);
    }

    [Fact]
    public void CompleteDumpWorks()
    {
        var (works, outcome) = CrashkernelMeasure.Classify(Armed + "capture-agent: capture kernel started\ncapture-agent: LABEL=crashdump: complete dump saved in /mnt/target0/var/crash/x\ncapture-agent: reboot\n", diskTarget: true, timedOut: false);
        Assert.True(works);
        Assert.Equal("complete dump saved", outcome);
    }

    [Fact]
    public void OomBeforeInitFails()
    {
        var (works, outcome) = CrashkernelMeasure.Classify(Armed + "[    1.3] Out of memory and no killable processes...\n[    1.3] Kernel panic - not syncing: System is deadlocked on memory\n", true, false);
        Assert.False(works);
        Assert.Equal("out of memory before /init (capture kernel boot)", outcome);
    }

    [Fact]
    public void OomWhileTheAgentRunsFails()
    {
        var (works, outcome) = CrashkernelMeasure.Classify(Armed + "capture-agent: capture kernel started\n[ 5.0] capture-agent invoked oom-killer: gfp_mask=0x1100cca\n", true, false);
        Assert.False(works);
        Assert.Equal("out of memory while the agent ran", outcome);
    }

    [Fact]
    public void MemoryOutsideTheCaptureKernelDoesNotCount()
    {
        // An OOM line before the crash belongs to the first kernel; the capture itself worked.
        var (works, _) = CrashkernelMeasure.Classify("[ 3.0] Out of memory: Killed process 42\n" + Armed + "capture-agent: capture kernel started\ncapture-agent: x: complete dump saved in y\n", true, false);
        Assert.True(works);
    }

    [Fact]
    public void TheFirstKernelsOwnPanicIsNotTheCaptureKernels()
    {
        // Seen in CI: a capture kernel that went silent at 64M was reported as "capture kernel panic:
        // ... sysrq triggered crash", the first kernel's panic, which every rehearsal has by design.
        string firstPanic = Armed + "[   20.2] Kernel panic - not syncing: sysrq triggered crash\n[    0.0] Linux version 6.1.0\n";
        Assert.Equal((false, "timed out before the agent started in the capture kernel"), CrashkernelMeasure.Classify(firstPanic, true, timedOut: true));
        Assert.Equal((false, "the capture kernel hung (no console output for 240 s) before the agent started"),
            CrashkernelMeasure.Classify(firstPanic, true, timedOut: true, silentSeconds: 240));
        // A panic of the capture kernel itself still counts as one.
        Assert.Equal((false, "capture kernel panic: Kernel panic - not syncing: VFS: Unable to mount root fs"),
            CrashkernelMeasure.Classify(firstPanic + "[    1.9] Kernel panic - not syncing: VFS: Unable to mount root fs\n", true, false));
    }

    [Fact]
    public void AFirstKernelThatHangsSaysSo()
    {
        var (works, outcome) = CrashkernelMeasure.Classify("[    0.0] Linux version 6.1.0\n[    1.2] Run /init as init process\n", true, timedOut: true, silentSeconds: 240);
        Assert.False(works);
        Assert.Equal("the first kernel hung (no console output for 240 s) before it armed the capture kernel", outcome);
    }

    [Fact]
    public void RefusedLoadAndMissingTargetFail()
    {
        var refused = CrashkernelMeasure.Classify("measure-guest: load refused: the 48 MiB crash reservation is too small\nmeasure-guest: giving up\n", true, false);
        Assert.False(refused.Works);
        Assert.Contains("too small", refused.Outcome);
        var noDisk = CrashkernelMeasure.Classify(Armed + "capture-agent: capture kernel started\ncapture-agent: error: capture failed: no target could save the dump\ncapture-agent: reboot\n", true, false);
        Assert.False(noDisk.Works);
        Assert.Contains("capture failed", noDisk.Outcome);
        // Without an emulated target, reaching the agent's end is the evidence there is.
        Assert.True(CrashkernelMeasure.Classify(Armed + "capture-agent: capture kernel started\ncapture-agent: error: capture failed\ncapture-agent: reboot\n", false, false).Works);
        Assert.False(CrashkernelMeasure.Classify("booting...\n", true, timedOut: true).Works);
    }

    [Fact]
    public void ABootThatFallsSilentIsStoppedAsHung()
    {
        // A stand-in for QEMU: boots, crashes, and the "capture kernel" prints one line and hangs.
        using var dir = new TempDir();
        string qemu = dir.File("qemu");
        File.WriteAllText(qemu, "#!/bin/sh\nprintf 'measure-guest: crashing\\nKernel panic - not syncing: sysrq triggered crash\\nLinux version 6.1.0\\n'\nexec sleep 600\n");
        File.SetUnixFileMode(qemu, (UnixFileMode)0x1ed);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var boot = CrashVm.Boot(new VmBootOptions
        {
            Kernel = "k", FirstInitramfs = "i", Crashkernel = 64L << 20, Qemu = qemu, SilenceSeconds = 3, TimeoutSeconds = 120,
            ConsoleLog = dir.File("console.log"),
        });
        Assert.True(sw.Elapsed.TotalSeconds < 60, $"stopped after {sw.Elapsed.TotalSeconds:0} s");
        Assert.Equal(3, boot.SilentSeconds);
        Assert.Equal((false, "the capture kernel hung (no console output for 3 s) before the agent started"),
            CrashkernelMeasure.Classify(boot.Console, true, boot.TimedOut, boot.SilentSeconds));
    }

    [Fact]
    public void FirstInitramfsHoldsTheAgentAndBothImages()
    {
        using var dir = new TempDir();
        string agent = dir.File("agent"), kernel = dir.File("k"), initrd = dir.File("i");
        File.WriteAllBytes(agent, new byte[12345]);
        File.WriteAllBytes(kernel, new byte[2000]);
        File.WriteAllBytes(initrd, new byte[3000]);
        string first = dir.File("first.cpio");
        CaptureAgent.Rehearsal.CrashVm.WriteFirstInitramfs(first, agent, kernel, initrd);
        var facts = InitramfsScan.Scan(first);
        Assert.Equal(12345, facts.InitBytes);
        Assert.Equal("none", facts.Compression);   // every kernel unpacks plain newc
        var listing = Fixtures.Exec("/usr/bin/cpio", ["-t", "--quiet", "-F", first]).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("init", listing);
        Assert.Contains("boot/vmlinuz", listing);
        Assert.Contains("boot/capture.img", listing);
        Assert.Contains("dev/console", listing);
    }
}

/// <summary>
/// The measurement for real: the cached Debian 6.1 kernel boots under QEMU TCG as the first kernel
/// with crashkernel=128M, 96M and 64M; the static agent as /init arms the capture kernel and
/// crashes; the capture initramfs saves a dump to an emulated LABEL= disk. 128M and 96M must
/// capture (the lab's floor is 80M), 64M must not (the capture kernel runs out of memory booting).
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time: they share the static build and two cores
[Trait("Category", "Vm")]
public class CrashkernelMeasureEndToEndTests(ITestOutputHelper log)
{
    private static string Release => Fixtures.Kernel("6.1").Release;

    [Fact]
    public void SmallestWorkingSizeIsFoundByBooting()
    {
        string kdir = Fixtures.Kernel("6.1").Root;
        string kernel = Path.Combine(kdir, "boot", $"vmlinuz-{Release}");
        Assert.True(File.Exists(kernel), $"{kernel} is missing: run scripts/fixtures.sh (it caches the Debian kernel)");
        string agent = StaticAgent();
        using var dir = new TempDir();
        string conf = dir.File("capture-agent.conf");
        File.WriteAllText(conf, "target = LABEL=crashdump\npath = /var/crash\ndump_level = 31\ncompression = zstd\nfinal_action = reboot\nfailure_action = reboot\ndevice_timeout = 30\n");
        string initrd = dir.File("capture.img");
        using (var f = File.Create(initrd))
            InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = agent, ConfigPath = conf, KernelRelease = Release, ModulesRoot = kdir,
                Modules = ["virtio_pci", "virtio_blk"],
            }, f);

        var result = CrashkernelMeasure.Run(new MeasureOptions
        {
            Kernel = kernel, Initrd = initrd, Agent = agent, WorkDir = dir.File("work"),
            From = 128L << 20, DownTo = 64L << 20, Step = 32L << 20, Resolution = 32L << 20, GuestMemory = 1L << 30, TimeoutSeconds = 900,
        }, m => log.WriteLine(m));
        foreach (var a in result.Attempts) log.WriteLine($"{a.Crashkernel >> 20}M: {a.Works} {a.Outcome} {a.Seconds:0}s peak={a.AgentPeakKiB} {a.MemoryAtInit}");
        Assert.True(result.DiskTarget);
        Assert.Equal([128L << 20, 96L << 20, 64L << 20], result.Attempts.Select(a => a.Crashkernel));
        Assert.True(result.Attempts[0].Works, File.ReadAllText(result.Attempts[0].ConsoleLog));
        Assert.True(result.Attempts[1].Works, File.ReadAllText(result.Attempts[1].ConsoleLog));
        Assert.False(result.Attempts[2].Works);
        Assert.Equal(96L << 20, result.SmallestWorking);
        Assert.Equal(128L << 20, result.Recommended);   // 96M + max(16M, 19.2M), in 16 MiB steps
        // The peak line sums PID 1 (the supervisor) and the capture worker, two processes of one
        // binary whose shared text counts twice: 21.2 MiB measured, where the single process of
        // before the supervisor (issue 12) peaked at 15.6 MiB. The sizes above are what binds.
        Assert.All(result.Attempts.Take(2), a => Assert.InRange(a.AgentPeakKiB ?? 0, 1, 24 * 1024));
    }

    /// <summary>
    /// Issue 11's goal on the cached 6.1 kernel: a 1 GiB and a 4 GiB guest are captured at the size
    /// `estimate` recommends for the image (84M here; the image unpacks inside the reservation:
    /// 1 MiB zstd window), the floor is found below it at 4 MiB resolution, and the estimate lands
    /// on the floor or at most 8 MiB above. The search starts at the estimate, not at the floor
    /// (80M): a boot at the floor itself fails now and then (a CI run's 6.1 capture kernel
    /// panicked "System is deadlocked on memory" at 80M while unpacking the image; another ran out
    /// of memory at 80M right after saving, when the estimate still left out PID 1's own 2 MiB and
    /// recommended 80M).
    /// </summary>
    [Fact]
    public void OneAndFourGiBGuestsAreCapturedAtTheEstimateWithin8MOfTheFloor()
    {
        string kdir = Fixtures.Kernel("6.1").Root;
        string kernel = Path.Combine(kdir, "boot", $"vmlinuz-{Release}");
        string agent = StaticAgent();
        using var dir = new TempDir();
        string conf = dir.File("capture-agent.conf");
        File.WriteAllText(conf, "target = LABEL=crashdump\nfstype = ext4\npath = /var/crash\nfinal_action = poweroff\nfailure_action = poweroff\n");
        string initrd = dir.File("capture.img");
        using (var f = File.Create(initrd))
            InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = agent, ConfigPath = conf, KernelRelease = Release, ModulesRoot = kdir, Modules = ["virtio_pci", "virtio_blk"],
            }, f);
        log.WriteLine($"capture image: {new FileInfo(initrd).Length} bytes");
        foreach (long guest in new[] { 1L << 30, 4L << 30 })
        {
            var result = CrashkernelMeasure.Run(new MeasureOptions
            {
                Kernel = kernel, Initrd = initrd, Agent = agent, WorkDir = dir.File($"work-{guest >> 30}g"),
                From = CrashkernelEstimate.Compute(kernel, initrd, guest, ramRanges: 3).RecommendedBytes, DownTo = 64L << 20, Step = 4L << 20, GuestMemory = guest, TimeoutSeconds = 1200,
            }, m => log.WriteLine(m));
            foreach (var a in result.Attempts) log.WriteLine($"{guest >> 30} GiB, {a.Crashkernel >> 20}M: {a.Works} {a.Outcome} {a.Seconds:0}s peak={a.AgentPeakKiB} {a.MemoryAtInit}");
            Assert.True(result.Attempts[0].Works, $"{guest >> 30} GiB guest at the estimate {result.Attempts[0].Crashkernel >> 20}M: {result.Attempts[0].Outcome}\n{File.ReadAllText(result.Attempts[0].ConsoleLog)}");
            Assert.False(result.Attempts[^1].Works, "the search must end on a size that fails, or the floor is not known");
            long floor = result.SmallestWorking!.Value;
            var est = CrashkernelEstimate.Compute(kernel, initrd, guest, ramRanges: 3);
            log.WriteLine($"{guest >> 30} GiB: floor {floor >> 20}M, estimate {est.Recommended} (boot {est.BootBytes >> 20} MiB, capture {est.CaptureBytes >> 20} MiB)");
            Assert.InRange(est.RecommendedBytes, floor, floor + (8L << 20));
        }
    }

    /// <summary>
    /// xz modules on a kernel that cannot decompress them (6.1: no CONFIG_MODULE_DECOMPRESS, like
    /// every kernel before 5.17 and RHEL 8/9's): with the kernel's config at build time the agent
    /// decompresses them itself from the start; without it, the kernel's refusal (EOPNOTSUPP) turns
    /// the agent to doing so. Either way virtio_blk loads through init_module and the dump is saved.
    /// </summary>
    [Fact]
    public void XzModulesLoadOnAKernelThatCannotDecompressThem()
    {
        string kdir = Fixtures.Kernel("6.1").Root;
        string kernel = Path.Combine(kdir, "boot", $"vmlinuz-{Release}");
        string agent = StaticAgent();
        using var dir = new TempDir();
        // The fixture tree with the virtio modules compressed as Kbuild does (on a hard-linked copy).
        string root = dir.File("root"), mods = Path.Combine(root, "lib", "modules", Release);
        Directory.CreateDirectory(mods);
        Fixtures.Sh($"cp -al '{kdir}/lib/modules/{Release}/kernel' '{mods}/' && cp '{kdir}/lib/modules/{Release}'/modules.builtin* '{mods}/'");
        Fixtures.Sh($"cd '{mods}/kernel/drivers' && for f in virtio/*.ko block/virtio_blk.ko; do xz --check=crc32 --lzma2=dict=1MiB -c \"$f\" > \"$f.xz\" && rm \"$f\"; done");
        string conf = dir.File("capture-agent.conf");
        File.WriteAllText(conf, "target = LABEL=crashdump\nfstype = ext4\npath = /var/crash\nfinal_action = poweroff\nfailure_action = poweroff\n");
        foreach (bool withConfig in new[] { true, false })
        {
            string bootDir = Path.Combine(root, "boot");
            if (withConfig) { Directory.CreateDirectory(bootDir); File.Copy(Path.Combine(kdir, "boot", $"config-{Release}"), Path.Combine(bootDir, $"config-{Release}"), overwrite: true); }
            else if (Directory.Exists(bootDir)) Directory.Delete(bootDir, recursive: true);
            string initrd = dir.File($"capture-{withConfig}.img");
            InitramfsReport report;
            using (var f = File.Create(initrd))
                report = InitramfsBuilder.Build(new InitramfsSpec
                {
                    AgentPath = agent, ConfigPath = conf, KernelRelease = Release, ModulesRoot = root, Modules = ["virtio_pci", "virtio_blk"],
                }, f);
            Assert.All(report.Modules, m => Assert.Equal(ModuleCodec.Xz, m.Codec));
            var result = CrashkernelMeasure.Run(new MeasureOptions
            {
                Kernel = kernel, Initrd = initrd, Agent = agent, WorkDir = dir.File($"work-{withConfig}"),
                From = 128L << 20, DownTo = 128L << 20, GuestMemory = 1L << 30, TimeoutSeconds = 1200,
            }, m => log.WriteLine(m));
            string console = File.ReadAllText(result.Attempts[0].ConsoleLog);
            Assert.True(result.Attempts[0].Works, $"config at build time: {withConfig}: {result.Attempts[0].Outcome}\n{console}");
            Assert.Contains($"capture-agent: {report.Modules.Count} modules loaded", console);
            Assert.DoesNotContain("not loaded", console);
            // Asked once and refused only when the builder could not read the config.
            Assert.Equal(!withConfig, console.Contains("the kernel does not decompress xz modules (", StringComparison.Ordinal));
        }
    }

    private static string StaticAgent() => Fixtures.StaticAgent();
}

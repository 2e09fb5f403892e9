using CaptureAgent.Initramfs;
using CaptureAgent.Sizing;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Sizing;

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
            From = 128L << 20, DownTo = 64L << 20, Step = 32L << 20, GuestMemory = 1L << 30, TimeoutSeconds = 900,
        }, m => log.WriteLine(m));
        foreach (var a in result.Attempts) log.WriteLine($"{a.Crashkernel >> 20}M: {a.Works} {a.Outcome} {a.Seconds:0}s peak={a.AgentPeakKiB} {a.MemoryAtInit}");
        Assert.True(result.DiskTarget);
        Assert.Equal([128L << 20, 96L << 20, 64L << 20], result.Attempts.Select(a => a.Crashkernel));
        Assert.True(result.Attempts[0].Works, File.ReadAllText(result.Attempts[0].ConsoleLog));
        Assert.True(result.Attempts[1].Works, File.ReadAllText(result.Attempts[1].ConsoleLog));
        Assert.False(result.Attempts[2].Works);
        Assert.Equal(96L << 20, result.SmallestWorking);
        Assert.Equal(128L << 20, result.Recommended);   // 96M + max(16M, 19.2M), in 16 MiB steps
        Assert.All(result.Attempts.Take(2), a => Assert.InRange(a.AgentPeakKiB ?? 0, 1, 16 * 1024));
    }

    /// <summary>The statically linked agent (the first kernel's /init), built as scripts/e2e builds it if absent or stale.</summary>
    private static string StaticAgent()
    {
        if (Environment.GetEnvironmentVariable("CAPTURE_AGENT_STATIC_BIN") is { Length: > 0 } env) return env;
        string repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "CaptureAgent.sln"))) repo = Path.GetDirectoryName(repo) ?? throw new InvalidOperationException("repository root not found");
        string bin = Path.Combine(repo, "artifacts", "static", "capture-agent");
        // Older than any source file: the first kernel's role it would run may not be today's.
        var newestSource = Directory.EnumerateFiles(Path.Combine(repo, "src", "CaptureAgent"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal)).Max(File.GetLastWriteTimeUtc);
        bool stale = !File.Exists(bin) || File.GetLastWriteTimeUtc(bin) < newestSource;
        if (stale)
        {
            var r = Fixtures.Exec("dotnet", ["publish", Path.Combine(repo, "src/CaptureAgent/CaptureAgent.csproj"), "-c", "Release", "-p:StaticBuild=true",
                "--artifacts-path", Path.Combine(repo, "artifacts/static-build"), "-o", Path.Combine(repo, "artifacts/static"), "-v", "quiet", "-nologo"], timeoutSeconds: 1800);
            Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        }
        return bin;
    }
}

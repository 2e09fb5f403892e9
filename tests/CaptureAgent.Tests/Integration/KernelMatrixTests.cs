using System.Text.RegularExpressions;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Issue 11's kernel matrix: every series of scripts/lib/kernel-selection.sh (older and newer
/// kernels, cloud and generic flavours, and a pre-5.17 tree whose modules are xz-compressed)
/// captured end to end by scripts/e2e in a 1 GiB guest at crashkernel=88M (see <see cref="Crashkernel"/>).
/// The dump must pass
/// `capture-agent verify`, hold the crashed kernel's release, and be read by drgn: with the debug
/// vmlinux where the cache has it, otherwise without symbols through the dump's own page tables.
/// crash reads it too where crash 8.0.2 knows the kernel and the vmlinux is there.
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time: they share the static build and two cores
[Trait("Category", "Vm")]
public class KernelMatrixTests(ITestOutputHelper log)
{
    /// <summary>
    /// Above every one of these kernels' measured floors (72–80M); it was the largest estimate among them
    /// (trixie's generic 6.12) until the estimate counted PID 1's own memory (now 76–92M). The
    /// matrix proves each kernel captures, the floors are CrashkernelMeasureEndToEndTests' job. At a
    /// floor a boot fails now and then: 6.1 at 80M panicked "System is deadlocked on memory" once
    /// while unpacking the image (a CI run; the out-of-memory report at 76M shows the page allocator's
    /// 2 MiB watermark boost with 1.9 MiB free), and trixie's generic 6.12 once after saving.
    /// </summary>
    private const string Crashkernel = "88M";
    private const int GuestMib = 1024;
    /// <summary>The newest kernel crash 8.0.2 (Debian bookworm's) can open.</summary>
    private static readonly Version NewestForCrash = new(6, 1);

    [Theory]
    [InlineData("5.10")]
    [InlineData("5.10-xz")]
    [InlineData("6.1")]
    [InlineData("6.12")]
    [InlineData("6.12-generic")]
    public void CapturesOnEveryKernelOfTheMatrix(string series)
    {
        var kernel = Fixtures.Kernel(series);
        string repo = Fixtures.RepoRoot;
        using var dir = new TempDir();
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", ["KERNEL_SELECTION=keep", "SKIP_DBG=1", $"MEM={GuestMib}", $"CRASHKERNEL={Crashkernel}",
            "TIMEOUT=900", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), series], timeoutSeconds: 1200);
        log.WriteLine(r.Stdout);
        Assert.True(r.ExitCode == 0, $"scripts/e2e {series} failed:\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("capture-agent: vmcore saved", r.Stdout);

        string build = File.ReadAllText(Path.Combine(outDir, "build", "initramfs.log"));
        string console = File.ReadAllText(Path.Combine(outDir, "console.log"));
        log.WriteLine(build);
        ImageFitsTheTree(kernel, build, console);

        string dumpDir = Path.Combine(outDir, "dump");
        var verify = Fixtures.Exec(Fixtures.Binary, ["verify", dumpDir]);
        Assert.True(verify.ExitCode == 0, $"verify: {verify.Stdout}{verify.Stderr}");
        string vmcore = Path.Combine(dumpDir, "vmcore"), marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        string vmcoreinfo = dir.File("vmcoreinfo.txt");
        using (var kd = new KdumpFile(vmcore))
        {
            Assert.Equal(kernel.Release, kd.Info?.OsRelease);
            File.WriteAllText(vmcoreinfo, kd.Info!.Text);
        }
        DrgnReads(kernel, vmcore, vmcoreinfo, marker);
        CrashReads(kernel, vmcore);
    }

    /// <summary>
    /// The modules the image carries load: no "not loaded" line on the console. xz modules on a kernel
    /// without CONFIG_MODULE_DECOMPRESS are decompressed by the agent; a flavour with ext4 as a module
    /// carries it (the disk is not attached when the image is built: fstype decides).
    /// </summary>
    private static void ImageFitsTheTree(Fixtures.KernelChoice kernel, string build, string console)
    {
        string modules = Regex.Match(build, @" bytes \(\d+ uncompressed\), modules: (.*)$", RegexOptions.Multiline).Groups[1].Value;
        Assert.Contains("virtio_blk", modules.Split(' '));
        Assert.DoesNotMatch(@"module \S+( not loaded|: not in the initramfs)", console);
        Assert.Matches(@"capture-agent: [1-9][0-9]* modules loaded", console);
        if (kernel.ModuleCompression == "xz")
            Assert.Contains("xz modules: the kernel cannot decompress them", build);
        bool ext4BuiltIn = File.ReadLines(ModulesBuiltin(kernel)).Any(l => l.EndsWith("/ext4.ko", StringComparison.Ordinal));
        if (!ext4BuiltIn)
            Assert.Contains("ext4", modules.Split(' '));
    }

    private static string ModulesBuiltin(Fixtures.KernelChoice kernel)
    {
        foreach (var lib in new[] { "lib", Path.Combine("usr", "lib") })
        {
            string f = Path.Combine(kernel.Root, lib, "modules", kernel.Release, "modules.builtin");
            if (File.Exists(f)) return f;
        }
        throw new InvalidOperationException($"{kernel.Root} has no modules.builtin for {kernel.Release}: run scripts/kernels fetch {kernel.Series}");
    }

    private void DrgnReads(Fixtures.KernelChoice kernel, string vmcore, string vmcoreinfo, string marker)
    {
        Fixtures.Run drgn;
        if (File.Exists(kernel.Vmlinux))
        {
            drgn = Fixtures.Exec("/usr/bin/drgn", ["-q", "-c", vmcore, "-s", kernel.Vmlinux, Fixtures.OracleScript("drgn_check.py")]);
            log.WriteLine(drgn.Stdout + drgn.Stderr);
            Assert.Contains($"marker CAPTURE-FIXTURE-MARKER {marker} crashing now", drgn.Stdout);
        }
        else
        {
            drgn = Fixtures.Exec("/usr/bin/drgn", ["-q", "-c", vmcore, "--no-default-symbols", Fixtures.OracleScript("drgn_nodebug.py"), vmcoreinfo]);
            log.WriteLine(drgn.Stdout + drgn.Stderr);
            Assert.Contains($"log CAPTURE-FIXTURE-MARKER {marker} crashing now", drgn.Stdout);
            Assert.Contains("log sysrq triggered crash", drgn.Stdout);
        }
        Assert.True(drgn.ExitCode == 0, $"drgn: {drgn.Stderr}");
        Assert.Contains($"release {kernel.Release}", drgn.Stdout);
    }

    private void CrashReads(Fixtures.KernelChoice kernel, string vmcore)
    {
        var version = Version.Parse(Regex.Match(kernel.Release, @"^\d+\.\d+").Value);
        if (version > NewestForCrash || !File.Exists(kernel.Vmlinux)) return;   // drgn alone is the oracle there
        var crash = Fixtures.Exec("/usr/bin/crash", ["-s", kernel.Vmlinux, vmcore], stdin: "sys\nbt\nquit\n");
        log.WriteLine(crash.Stdout + crash.Stderr);
        Assert.Matches(@"PANIC: "".*(sysrq|SysRq).*""", crash.Stdout);
        Assert.Contains(kernel.Release, crash.Stdout);
    }
}

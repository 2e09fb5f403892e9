using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Tests.Engine.Dump;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// The whole capture path in QEMU (scripts/e2e): `capture-agent load` arms the capture kernel,
/// sysrq crashes the first kernel, the agent as PID 1 saves dmesg.txt and vmcore to a virtio
/// disk found by LABEL=, and also a byte copy of /proc/vmcore so the dump can be checked against
/// the oracles: the page set makedumpfile selects from that copy, and every page's content.
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time: they share the static build and two cores
[Trait("Category", "Vm")]
public class EndToEndTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("6.1")]
    [InlineData("6.12")]
    public void RealCrashIsCapturedByTheAgent(string series)
    {
        string repo = Fixtures.RepoRoot;
        using var dir = new TempDir();
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", ["E2E_RAW_COPY=1", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), series], timeoutSeconds: 1800);
        log.WriteLine(r.Stdout);
        Assert.True(r.ExitCode == 0, $"scripts/e2e {series} failed:\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("capture-agent: vmcore saved", r.Stdout);
        Assert.Contains("capture-agent: reboot", r.Stdout);

        string dump = Path.Combine(outDir, "dump", "vmcore"), raw = Path.Combine(outDir, "dump", "vmcore.raw");
        string marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        var dmesg = File.ReadAllText(Path.Combine(outDir, "dump", "dmesg.txt"));
        Assert.Contains("Kernel panic - not syncing: sysrq triggered crash", dmesg);
        Assert.Contains($"CAPTURE-FIXTURE-MARKER {marker} crashing now", dmesg);

        // The page set: what makedumpfile selects from the raw copy (6.1), or what we select
        // offline from it (6.12, which Debian's makedumpfile does not know; see RealVmcoreTests).
        string reference = dir.File("reference");
        if (series == "6.1") Assert.Equal(0, Fixtures.Exec(Fixtures.Makedumpfile, ["-d", "31", raw, reference]).ExitCode);
        else SyntheticDumpTests.Dump(raw, reference, new DumpOptions { Level = DumpLevel.All });
        var ours = KdumpFileFacts.Read(dump);
        var theirs = KdumpFileFacts.Read(reference);
        Assert.Equal(theirs.MaxMapnr, ours.MaxMapnr);
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(theirs.Bitmap1, ours.Bitmap1));
        Assert.Equal(0, KdumpFileFacts.CountDifferentBits(theirs.Bitmap2, ours.Bitmap2));

        // Every stored page equals the raw copy of /proc/vmcore.
        using var elf = new ElfVmcore(raw);
        using var kd = new KdumpFile(dump);
        var a = new byte[4096];
        var b = new byte[4096];
        ulong n = 0;
        for (ulong pfn = 0; pfn < kd.MaxPfn; pfn++)
        {
            if (!kd.IsDumpable(pfn)) continue;
            Assert.True(kd.TryReadPage(pfn, a) && elf.TryRead(pfn * 4096, b) && a.AsSpan().SequenceEqual(b), $"pfn {pfn:x}");
            n++;
        }
        Assert.True(n > 10_000);
        log.WriteLine($"{series}: {n} pages checked against the raw copy; bitmaps equal to the reference");
    }
}

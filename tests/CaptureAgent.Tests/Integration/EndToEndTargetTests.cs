using System.Text.Json;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Each kind of dump target, and the fallback chain with its faults, in a real capture kernel
/// (scripts/e2e with E2E_SCENARIO): the servers run on the host's loopback, which QEMU's user
/// network shows the guest as 10.0.2.2; the guest gets its address by DHCP from QEMU.
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time: they share the static build and two cores
[Trait("Category", "Vm")]
public class EndToEndTargetTests(ITestOutputHelper log)
{
    private (string Out, Fixtures.Run Run) RunScenario(string scenario, TempDir dir)
    {
        string repo = Fixtures.RepoRoot;
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", [$"E2E_SCENARIO={scenario}", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), "6.1"], timeoutSeconds: 1800);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        Assert.True(r.ExitCode == 0, $"scripts/e2e ({scenario}) failed:\n{r.Stdout}\n{r.Stderr}");
        return (outDir, r);
    }

    private static void AssertSavedDump(string dumpDir, string marker)
    {
        var dmesg = File.ReadAllText(Path.Combine(dumpDir, "dmesg.txt"));
        Assert.Contains("Kernel panic - not syncing: sysrq triggered crash", dmesg);
        Assert.Contains($"CAPTURE-FIXTURE-MARKER {marker} crashing now", dmesg);
        using var kd = new KdumpFile(Path.Combine(dumpDir, "vmcore"));
        Assert.False(kd.Incomplete);
        Assert.Contains("Mode: 700", File.ReadAllText(Path.Combine(dumpDir, "dir-mode.txt")).Replace("  ", " ").Replace("0700", "700"));
    }

    [Theory]
    [InlineData("nfs")]
    [InlineData("ssh")]
    [InlineData("raw")]
    public void EachTargetKindReceivesTheDump(string scenario)
    {
        using var dir = new TempDir();
        var (outDir, r) = RunScenario(scenario, dir);
        string marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        string dump = Path.Combine(outDir, "dump");
        AssertSavedDump(dump, marker);
        // Copied with their modes from where they were saved.
        foreach (var f in new[] { "vmcore", "dmesg.txt" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dump, f)));
        switch (scenario)
        {
            case "nfs":
                Assert.Matches(@"network: eth\d+ 10\.0\.2\.\d+/24 via 10\.0\.2\.2 \(dhcp\)", r.Stdout);
                Assert.Contains("(NFS 4.1)", r.Stdout);
                break;
            case "ssh":
                Assert.True(File.Exists(Path.Combine(dump, "vmcore.flat")));
                Assert.Contains("(dhcp)", r.Stdout);
                break;
            case "raw":
                Assert.Contains("no dump on", File.ReadAllText(Path.Combine(outDir, "savecore-again.log")));
                break;
        }
        if (scenario != "raw")
        {
            using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dump, "manifest.json")));
            Assert.True(manifest.RootElement.GetProperty("complete").GetBoolean());
        }
    }

    [Fact]
    public void FallbackChainSurvivesEveryFaultAndRaisesTheLevelToFit()
    {
        using var dir = new TempDir();
        var (outDir, r) = RunScenario("chain", dir);
        string marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        // The script already checked the console for each failure and the config errors; here the files.
        string tiny = Path.Combine(outDir, "tiny");
        Assert.Contains($"CAPTURE-FIXTURE-MARKER {marker} crashing now", File.ReadAllText(Path.Combine(tiny, "dmesg.txt")));
        using (var cut = new KdumpFile(Path.Combine(tiny, "vmcore-incomplete")))
        {
            Assert.True(cut.Incomplete);
            // Readable up to where it stopped: the first dumpable pages are there.
            var page = new byte[4096];
            int read = 0;
            for (ulong pfn = 0; pfn < cut.MaxPfn && read < 100; pfn++)
                if (cut.IsDumpable(pfn) && cut.TryReadPage(pfn, page)) read++;
            Assert.Equal(100, read);
        }
        string dump = Path.Combine(outDir, "dump");
        AssertSavedDump(dump, marker);
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dump, "manifest.json")));
        Assert.True(manifest.RootElement.GetProperty("complete").GetBoolean());
        // dump_level = 1 did not fit in the 72 MiB disk: the agent raised it to the fallback, 31.
        Assert.Equal(31, manifest.RootElement.GetProperty("dump_level").GetInt32());
    }
}

using System.Text.Json;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Dumps onto LVM in a real capture kernel (scripts/e2e, E2E_SCENARIO=lvm-linear, lvm-striped and
/// lvm-md): PVs made by lvm2 on the host without device-mapper; in the capture kernel the agent
/// reads the metadata (assembling the md RAID1 under the PV first for lvm-md), creates the LV with
/// device-mapper ioctls and saves the dump into its ext4, which the host reads back from the images.
/// </summary>
[Trait("Category", TestCategory.Vm)]
[Collection("VirtualMachines")]   // one QEMU boot at a time: they share the static build and two cores
public class LvmEndToEndTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData("lvm-linear", "e2e-vg/dump-linear activated as /dev/mapper/e2e--vg-dump--linear", "1 linear segment")]
    [InlineData("lvm-striped", "e2e-vg/dump-striped activated as /dev/mapper/e2e--vg-dump--striped", "1 striped segment")]
    public void DumpIsSavedIntoAnLvTheAgentActivates(string scenario, string activated, string table)
    {
        using var dir = new TempDir();
        var (stdout, outDir) = E2e.Run(log, scenario, dir);
        Assert.Contains($"capture-agent: lvm: {activated} (dm-0, {table})", stdout);
        E2e.AssertCompleteDump(outDir);
    }

    [Fact]
    public void AnLvOnAnMdMirrorIsActivatedAfterTheArrayIsAssembled()
    {
        using var dir = new TempDir();
        var (stdout, outDir) = E2e.Run(log, "lvm-md", dir);
        string console = File.ReadAllText(Path.Combine(outDir, "console.log"));
        int md = console.IndexOf("capture-agent: md: md127 started: md array", StringComparison.Ordinal);
        int lv = console.IndexOf("capture-agent: lvm: e2e-vg/dump-md activated as /dev/mapper/e2e--vg-dump--md (dm-0, 1 linear segment)", StringComparison.Ordinal);
        Assert.True(md >= 0, $"the console does not show md127 assembled:\n{stdout}");
        Assert.True(lv > md, $"the console does not show the LV activated after the array:\n{stdout}");
        Assert.DoesNotContain("degraded", console[md..console.IndexOf('\n', md)]);   // both members were there
        E2e.AssertCompleteDump(outDir);
    }
}

/// <summary>Running one scripts/e2e scenario and checking the dump it pulled out.</summary>
internal static class E2e
{
    public static (string Stdout, string OutDir) Run(ITestOutputHelper log, string scenario, TempDir dir, int timeoutSeconds = 2400)
    {
        string repo = Fixtures.RepoRoot;
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", [$"E2E_SCENARIO={scenario}", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), "6.1"], timeoutSeconds: timeoutSeconds);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        Assert.True(r.ExitCode == 0, $"scripts/e2e ({scenario}) failed:\n{r.Stdout}\n{r.Stderr}");
        return (r.Stdout, outDir);
    }

    /// <summary>The dump the scenario pulled out: the panic and this run's marker in its log, every page readable, complete.</summary>
    public static void AssertCompleteDump(string outDir)
    {
        string dump = Path.Combine(outDir, "dump");
        string marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        var dmesg = File.ReadAllText(Path.Combine(dump, "dmesg.txt"));
        Assert.Contains("Kernel panic - not syncing: sysrq triggered crash", dmesg);
        Assert.Contains($"CAPTURE-FIXTURE-MARKER {marker} crashing now", dmesg);
        using (var kd = new KdumpFile(Path.Combine(dump, "vmcore")))
        {
            Assert.False(kd.Incomplete);
            Assert.Equal(kd.DumpablePages, kd.Scan().Ok);
        }
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dump, "manifest.json")));
        Assert.True(manifest.RootElement.GetProperty("complete").GetBoolean());
    }
}

using System.Text.Json;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// Dumps onto LVM in a real capture kernel (scripts/e2e, E2E_SCENARIO=lvm-linear and lvm-striped):
/// PVs made by lvm2 on the host without device-mapper; in the capture kernel the agent reads the
/// metadata, creates the LV with device-mapper ioctls and saves the dump into its ext4, which the
/// host reads back from the PV images.
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
        string repo = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(Fixtures.Binary)!, "..", ".."));
        using var dir = new TempDir();
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", [$"E2E_SCENARIO={scenario}", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), "6.1"], timeoutSeconds: 2400);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        Assert.True(r.ExitCode == 0, $"scripts/e2e ({scenario}) failed:\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains($"capture-agent: lvm: {activated} (dm-0, {table})", r.Stdout);

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

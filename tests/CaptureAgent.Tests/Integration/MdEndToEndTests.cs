using System.Text.Json;
using CaptureAgent.Vmcore;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// A dump onto md RAID1 with one member missing (scripts/e2e, E2E_SCENARIO=md): real mdadm makes
/// the array in a first boot, the capture initramfs is planned from a member, and in the capture
/// kernel the agent assembles the array itself (no mdadm, no udev), mounts its partition and saves.
/// </summary>
[Trait("Category", "Vm")]
[Collection("VirtualMachines")]
public class MdEndToEndTests(ITestOutputHelper log)
{
    [Fact]
    public void ADegradedMirrorMadeByMdadmReceivesTheDump()
    {
        using var dir = new TempDir();
        string repo = Fixtures.RepoRoot;
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", ["E2E_SCENARIO=md", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), "6.1"], timeoutSeconds: 1800);
        log.WriteLine(r.Stdout);
        log.WriteLine(r.Stderr);
        Assert.True(r.ExitCode == 0, $"scripts/e2e (md) failed:\n{r.Stdout}\n{r.Stderr}");

        // The image got the md modules from the member's superblock, not from a --module option.
        string initramfsLog = File.ReadAllText(Path.Combine(outDir, "build", "initramfs.log"));
        Assert.Matches(@"\bmd_mod\b", initramfsLog);
        Assert.Matches(@"\braid1\b", initramfsLog);
        string console = File.ReadAllText(Path.Combine(outDir, "console.log"));
        Assert.Contains("capture-agent: md: md127 started: md array", console);
        Assert.Contains("degraded: 1 of 2 members missing", console);

        string dump = Path.Combine(outDir, "dump");
        string marker = File.ReadAllText(Path.Combine(outDir, "marker.txt")).Trim();
        Assert.Contains($"CAPTURE-FIXTURE-MARKER {marker} crashing now", File.ReadAllText(Path.Combine(dump, "dmesg.txt")));
        using (var kd = new KdumpFile(Path.Combine(dump, "vmcore"))) Assert.False(kd.Incomplete);
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(dump, "manifest.json")));
        Assert.True(manifest.RootElement.GetProperty("complete").GetBoolean());
        // The member's superblock moved on: the capture kernel wrote through md, not around it.
        long Events(string file) => long.Parse(File.ReadAllLines(Path.Combine(outDir, file)).Select(l => l.Trim())
            .First(l => l.StartsWith("Events :", StringComparison.Ordinal))["Events :".Length..].Trim());
        Assert.True(Events("member-after.txt") > Events("member-before.txt"));
    }
}

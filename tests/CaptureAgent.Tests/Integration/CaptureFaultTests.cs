using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Integration;

/// <summary>
/// PID 1 of a real capture kernel (QEMU) outlives its capture process: with
/// capture_agent.fault=1:segv,2:kill,3:hang the capture of the first disk dies by SIGSEGV, the
/// second by SIGKILL, the third stops making progress. Each time PID 1 says so in one line, syncs
/// and starts a new capture at the next disk; each of the three keeps its log and a
/// vmcore-incomplete that verify reads as incomplete, and the fourth disk gets a complete dump.
/// </summary>
[Trait("Category", "Vm")]
[Collection("VirtualMachines")]
public class CaptureFaultTests(ITestOutputHelper log)
{
    [Fact]
    public void Pid1GoesOnWhenTheCaptureDiesOrHangs()
    {
        string repo = Fixtures.RepoRoot;
        using var dir = new TempDir();
        string outDir = dir.File("e2e");
        var r = Fixtures.Exec("/usr/bin/env", ["E2E_SCENARIO=faults", $"OUT={outDir}", Path.Combine(repo, "scripts", "e2e"), "6.1"], timeoutSeconds: 2400);
        log.WriteLine(r.Stdout);
        Assert.True(r.ExitCode == 0, $"scripts/e2e faults failed:\n{r.Stdout}\n{r.Stderr}");

        string console = File.ReadAllText(Path.Combine(outDir, "console.log"));
        Assert.Contains("target 1/4 (LABEL=fault1): the capture process was killed by signal 11 (SIGSEGV)", console);
        Assert.Contains("target 2/4 (LABEL=fault2): the capture process was killed by signal 9 (SIGKILL)", console);
        Assert.Contains("target 3/4 (LABEL=fault3): the capture process made no progress and was killed", console);
        Assert.Contains("LABEL=crashdump: complete dump saved", console);
        Assert.Contains("capture-agent: reboot", console);
        Assert.DoesNotContain("Kernel panic - not syncing: Attempted to kill init", console);

        foreach (var n in new[] { 1, 2, 3 })
        {
            string kept = Path.Combine(outDir, $"fault{n}");
            Assert.True(File.Exists(Path.Combine(kept, "dmesg.txt")), $"fault {n}: dmesg.txt");
            Assert.True(new FileInfo(Path.Combine(kept, "vmcore-incomplete")).Length > 1 << 20, $"fault {n}: vmcore-incomplete holds the pages written before the fault");
            var v = Fixtures.Exec(Fixtures.Binary, ["verify", kept]);
            Assert.True(v.ExitCode == 3, $"fault {n}: verify exit {v.ExitCode}: {v.Stdout}");
        }
        var whole = Fixtures.Exec(Fixtures.Binary, ["verify", Path.Combine(outDir, "dump")]);
        Assert.True(whole.ExitCode == 0, whole.Stdout);
    }
}

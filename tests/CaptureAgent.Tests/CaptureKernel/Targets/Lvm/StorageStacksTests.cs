using CaptureAgent.Targets;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>The orchestrator: rounds in order, bounded, nothing escapes, a hung activator does not hang the wait.</summary>
public class StorageStacksTests
{
    private sealed class Scripted(string name, Func<IReadOnlyList<SysfsBlockDevice>, StackStep> step) : IStorageStackActivator
    {
        public List<string> Saw { get; } = [];
        public string Name => name;

        public StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
        {
            Saw.Add(string.Join(' ', devices.Select(d => d.Name)));
            return step(devices);
        }
    }

    private static readonly TargetSpec Target = TargetSpec.Parse("LABEL=x");

    [Fact]
    public void ALayerBroughtUpIsSeenByTheNextActivatorInTheNextRound()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        var md = new Scripted("md", devices =>
        {
            if (devices.Any(d => d.Name == "md0")) return StackStep.Nothing;
            t.AddDisk(null, "md0", "9:0", 2048);
            return new StackStep { Activated = ["md0 assembled"] };
        });
        var lvm = new Scripted("lvm", _ => StackStep.Nothing);
        var reports = new List<string>();
        var stacks = new StorageStacks(t.Sys, t.Dev, [md, lvm]) { Report = reports.Add };
        Assert.True(stacks.Activate(Target));
        Assert.Equal(["vda", "md0 vda"], md.Saw);
        Assert.Equal(["md0 vda", "md0 vda"], lvm.Saw);   // after md in the first round, and in the round md's change started
        Assert.Equal(["capture-agent: md: md0 assembled"], reports);
        // Nothing changed since: nothing runs.
        Assert.False(stacks.Activate(Target));
        Assert.Equal(2, md.Saw.Count);
    }

    [Fact]
    public void AnActivatorWaitingOnTimeRunsAgainThoughNothingChanged()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        bool waiting = true;   // md: a degraded array within its grace for the missing members
        var md = new Scripted("md", _ => new StackStep { Waiting = waiting });
        var stacks = new StorageStacks(t.Sys, t.Dev, [md]);
        Assert.False(stacks.Activate(Target));
        Assert.False(stacks.Activate(Target));
        Assert.Equal(2, md.Saw.Count);
        waiting = false;
        Assert.False(stacks.Activate(Target));
        Assert.False(stacks.Activate(Target));   // no longer waiting, devices the same: not run
        Assert.Equal(3, md.Saw.Count);
    }

    [Fact]
    public void RoundsAreBounded()
    {
        using var t = new FakeSysfs();
        int n = 0;
        var greedy = new Scripted("x", _ =>
        {
            t.AddDisk(null, $"x{n}", $"240:{n}", 8);
            return new StackStep { Activated = [$"x{n++}"] };
        });
        Assert.True(new StorageStacks(t.Sys, t.Dev, [greedy]).Activate(Target));
        Assert.Equal(StorageStacks.MaxRounds, greedy.Saw.Count);
    }

    [Fact]
    public void AThrowingActivatorIsAProblemLineAndTheOthersStillRun()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        var bad = new Scripted("md", _ => throw new InvalidOperationException("superblock makes no sense"));
        var lvm = new Scripted("lvm", _ => new StackStep { Problems = ["no volume group vg"] });
        var stacks = new StorageStacks(t.Sys, t.Dev, [bad, lvm]);
        Assert.False(stacks.Activate(Target));
        Assert.Equal(["md: superblock makes no sense", "lvm: no volume group vg"], stacks.Problems);
        Assert.Single(lvm.Saw);
    }

    /// <summary>What an activator's guard does not catch must not reach the run's thread: that would end PID 1.</summary>
    [Fact]
    public void EvenWhatTheGuardLetsThroughEndsAsAProblem()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        var bad = new Scripted("md", _ => throw new OutOfMemoryException("no memory for the bitmap"));
        var stacks = new StorageStacks(t.Sys, t.Dev, [bad]);
        Assert.False(stacks.Activate(Target));
        Assert.Equal(["bringing up storage stacks failed: no memory for the bitmap"], stacks.Problems);
    }

    [Fact]
    public void ARefusalStopsTheRun()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        var lvm = new Scripted("lvm", _ => new StackStep { Refusal = "vg/thin is a thin volume" });
        var after = new Scripted("later", _ => StackStep.Nothing);
        var stacks = new StorageStacks(t.Sys, t.Dev, [lvm, after]);
        Assert.False(stacks.Activate(Target));
        Assert.Equal("lvm: vg/thin is a thin volume", stacks.Refusal);
        Assert.Empty(after.Saw);
    }

    [Fact]
    public void AnActivatorThatDoesNotReturnLeavesTheWaitGoing()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        using var release = new ManualResetEventSlim();
        bool assembled = false;
        var stuck = new Scripted("md", _ =>
        {
            if (assembled) return StackStep.Nothing;
            release.Wait();
            assembled = true;
            return new StackStep { Activated = ["md0 assembled at last"] };
        });
        var reports = new List<string>();
        var stacks = new StorageStacks(t.Sys, t.Dev, [stuck]) { RunTimeout = TimeSpan.FromMilliseconds(200), Report = reports.Add };
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(stacks.Activate(Target));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
        Assert.Contains("has not finished after", Assert.Single(stacks.Problems));
        Assert.False(stacks.Activate(Target));   // still pending: no second run
        Assert.Single(stuck.Saw);
        release.Set();
        Thread.Sleep(200);
        Assert.True(stacks.Activate(Target));    // the late result is taken
        Assert.Equal(["capture-agent: md: md0 assembled at last"], reports);
    }
    [Fact]
    public void TheChainsNextTargetGetsARunOfItsOwnAndNotTheLastOnesRefusal()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 2048);
        var lvm = new ScriptedByTarget("lvm", target => target.ToString() == "/dev/vg/thin"
            ? new StackStep { Refusal = "vg/thin is a thin volume" }
            : new StackStep { Problems = ["no volume group other on the PVs here"] });
        var stacks = new StorageStacks(t.Sys, t.Dev, [lvm]);
        Assert.False(stacks.Activate(TargetSpec.Parse("/dev/vg/thin")));
        Assert.Equal("lvm: vg/thin is a thin volume", stacks.Refusal);
        // The same devices, another target: it is looked for, and the thin volume's refusal is not its own.
        Assert.False(stacks.Activate(TargetSpec.Parse("/dev/other/lv")));
        Assert.Null(stacks.Refusal);
        Assert.Equal(["lvm: no volume group other on the PVs here"], stacks.Problems);
        Assert.Equal(["/dev/vg/thin", "/dev/other/lv"], lvm.Targets);
        Assert.False(stacks.Activate(TargetSpec.Parse("/dev/other/lv")));   // same target, same devices: not again
        Assert.Equal(2, lvm.Targets.Count);
    }

    private sealed class ScriptedByTarget(string name, Func<TargetSpec, StackStep> step) : IStorageStackActivator
    {
        public List<string> Targets { get; } = [];
        public string Name => name;

        public StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
        {
            Targets.Add(target.ToString());
            return step(target);
        }
    }
}

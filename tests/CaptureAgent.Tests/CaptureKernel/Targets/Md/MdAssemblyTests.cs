using CaptureAgent.Targets;
using CaptureAgent.Targets.Md;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Md;

/// <summary>Which members make an array (MdArrays) and when it is started (MdAssembly), on synthetic superblocks and a recording kernel.</summary>
public class MdAssemblyTests
{
    private static readonly byte[] UuidA = Convert.FromHexString("aaaaaaaa11111111aaaaaaaa11111111");
    private static readonly byte[] UuidB = Convert.FromHexString("bbbbbbbb22222222bbbbbbbb22222222");

    private static MdSuperblock Sb(int role, ulong events = 20, int level = 1, int disks = 2, byte[]? uuid = null, bool clean = true, int minor = 2)
    {
        var m = new MdImages.Member { Level = level, RaidDisks = disks, Events = events, DevNumber = role, Roles = Enumerable.Range(0, disks).Select(i => (ushort)i).ToArray(), Uuid = uuid ?? UuidA, Clean = clean };
        return Assert.Single(MdSuperblock.ReadAll(BlockSource.FromBytes(MdImages.Version1(m, minor, 1 << 20)), 1 << 20));
    }

    private static MdCandidate C(string dev, int minor, params MdSuperblock[] sbs) => new(dev, 254, minor, sbs, InUse: false);

    [Fact]
    public void StaleMembersStayOutAndOneBehindStillCounts()
    {
        var r = MdArrays.Plan([C("vda", 0, Sb(0, 30)), C("vdb", 16, Sb(1, 29)), C("vdc", 32, Sb(2, 12, disks: 3))]);
        // vdc is stale (and claims 3 disks): left out; vdb one event behind is fresh (super_1_validate).
        var plan = Assert.Single(r.Startable);
        Assert.Equal(["vda", "vdb"], plan.Members.Select(m => m.Device));
        Assert.Contains(plan.Notes, n => n.StartsWith("vdc is stale (events 12, the array is at 30)"));
        Assert.False(plan.Degraded);
    }

    [Fact]
    public void DegradedMirrorIsStartableAndMissingParityIsWaitedFor()
    {
        var r = MdArrays.Plan([C("vda", 0, Sb(0)), C("vdc", 32, Sb(0, level: 5, disks: 4, uuid: UuidB)), C("vdd", 48, Sb(3, level: 5, disks: 4, uuid: UuidB))]);
        var mirror = Assert.Single(r.Startable);
        Assert.True(mirror.Degraded);
        Assert.Equal(1, mirror.MissingRoles);
        var waiting = Assert.Single(r.Waiting);
        Assert.Contains("has 2 of 4 members (needs 3; missing role 1,2)", waiting);
    }

    [Fact]
    public void StripesNeedEveryMemberAndRaid10LosesOneCopy()
    {
        var r0 = MdArrays.Plan([C("vda", 0, Sb(0, level: 0))]);
        Assert.Empty(r0.Startable);
        Assert.Contains("needs 2", Assert.Single(r0.Waiting));
        var m = new MdImages.Member { Level = 10, Layout = 0x102, RaidDisks = 4, Roles = [0, 1, 2, 3] };
        Assert.Equal(3, MdArrays.MinimumMembers(Assert.Single(MdSuperblock.ReadAll(BlockSource.FromBytes(MdImages.Version1(m, 2, 1 << 20)), 1 << 20))));
        Assert.Equal(2, MdArrays.Raid10Copies(0x102));
        Assert.Equal(3, MdArrays.Raid10Copies(0x103));
    }

    [Fact]
    public void TwoArraysClaimingOneDeviceAndLoopsAreRefusedInOneLine()
    {
        var twoClaims = C("vda", 0, Sb(0), Sb(0, uuid: UuidB));
        // md127 carrying a 0.90 superblock whose member table names md127 itself.
        var self = MdImages.Version090(new MdImages.Member { Uuid = UuidB }, 1 << 20, 0, 0, [(9, 127), (254, 16)]);
        var selfSb = Assert.Single(MdSuperblock.ReadAll(BlockSource.FromBytes(self), self.Length));
        var loop = new MdCandidate("md127", 9, 127, [selfSb], InUse: false);
        var r = MdArrays.Plan([twoClaims, loop]);
        Assert.Empty(r.Startable);
        Assert.Contains(r.Refused, l => l.StartsWith("vda is claimed by two md arrays") && !l.Contains('\n'));
        Assert.Contains(r.Refused, l => l.StartsWith("md127 is an md device that names itself"));
    }

    [Fact]
    public void MemberCountsAreCappedAndDuplicateRolesResolved()
    {
        var many = Enumerable.Range(0, MdArrays.MaxMembersPerArray + 1).Select(i => C($"sd{i}", i, Sb(0))).ToList();
        Assert.Contains("claimed by 65 devices", Assert.Single(MdArrays.Plan(many).Refused));

        var r = MdArrays.Plan([C("sda", 0, Sb(0)), C("sdb", 16, Sb(0)), C("sdc", 32, Sb(1))]);
        var plan = Assert.Single(r.Startable);
        Assert.Equal(["sda", "sdc"], plan.Members.Select(m => m.Device));
        Assert.Contains(plan.Notes, n => n.Contains("both claim role 0"));
    }

    [Fact]
    public void NamesGiveTheDevMdLinkAndANumberWhenTheyAreOne()
    {
        Assert.Equal("dump", MdArrays.ShortName("host:dump"));
        Assert.Equal("root", MdArrays.ShortName("root"));
        Assert.Null(MdArrays.ShortName("host:../etc"));
        Assert.Null(MdArrays.ShortName("host:"));
        Assert.Null(MdArrays.PreferredNumber(Sb(0)));   // "host:dump"
        var numbered = new MdImages.Member { Name = "e2e:3" };
        Assert.Equal(3, MdArrays.PreferredNumber(Assert.Single(MdSuperblock.ReadAll(BlockSource.FromBytes(MdImages.Version1(numbered, 2, 1 << 20)), 1 << 20))));
        var old = MdImages.Version090(new MdImages.Member(), 1 << 20, 0, 0);
        Assert.Equal(0, MdArrays.PreferredNumber(Assert.Single(MdSuperblock.ReadAll(BlockSource.FromBytes(old), old.Length))));
    }

    /// <summary>A stack activator that starts md127 on its first turn (the storage stacks' view of an md pass).</summary>
    private sealed class StartsMd127(FakeSysfs t) : IStorageStackActivator
    {
        public int Passes { get; private set; }
        public string Name => "md";

        public StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
        {
            if (Passes++ > 0) return StackStep.Nothing;
            t.AddDisk(null, "md127", "9:127", 16384);
            t.Node("md127", new byte[4096]);
            return new StackStep { Activated = ["md127 started"] };
        }
    }

    [Fact]
    public void ADiskShowingItsLastPartitionsSuperblockIsLeftOut()
    {
        // 0.90 on sda2, the last partition, ending where the disk ends: sda shows the same superblock.
        var member = Sb(0);
        var disk = C("sda", 0, member);
        var part = C("sda2", 2, member);
        var other = C("sdb", 16, Sb(1));
        var kept = MdDevices.WithoutShadows([disk, part, other], new Dictionary<string, string> { ["sda2"] = "sda" });
        Assert.Equal(["sda2", "sdb"], kept.Select(c => c.Device));
        Assert.Equal(["sda2", "sdb"], Assert.Single(MdArrays.Plan(kept).Startable).Members.Select(m => m.Device));
        // A disk whose own superblock differs from its partitions' keeps its place.
        Assert.Equal(3, MdDevices.WithoutShadows([C("sdc", 32, Sb(0, uuid: UuidB)), C("sdc1", 33, Sb(0)), other], new Dictionary<string, string> { ["sdc1"] = "sdc" }).Count);
    }

    [Fact]
    public void WhatTheStacksMakeBetweenLooksIsFoundAtOnce()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "vda", "254:0", 16384);
        var clock = new MdAssemblyClock();
        var md = new StartsMd127(t);
        var reports = new List<string>();
        var locator = new TargetLocator(t.Sys, t.Dev)
        {
            ProbeTimeout = Timeout.InfiniteTimeSpan,
            Probe = (node, _) => node.EndsWith("md127", StringComparison.Ordinal) ? new VolumeIdentity("ext4", null, "dump") { Usage = VolumeUsage.Filesystem } : VolumeIdentity.Unknown,
            Stacks = new StorageStacks(t.Sys, t.Dev, [md]) { Report = reports.Add },
        };
        var match = locator.WaitFor(TargetSpec.Parse("LABEL=dump"), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1), clock);
        Assert.Equal(Path.Combine(t.Dev, "md127"), match.Node);
        Assert.Equal(2, md.Passes);   // the pass that started md127, and the round after it that found nothing new
        Assert.Equal(["capture-agent: md: md127 started"], reports);
        Assert.Equal(TimeSpan.Zero, clock.Elapsed);   // no poll interval slept
    }

    [Fact]
    public void ATargetNamedByItsDevMdLinkIsFound()
    {
        using var t = new FakeSysfs();
        t.AddDisk(null, "md127", "9:127", 16384);
        t.Node("md127", new byte[4096]);
        Directory.CreateDirectory(Path.Combine(t.Dev, "md"));
        File.CreateSymbolicLink(Path.Combine(t.Dev, "md", "dump"), "../md127");
        var locator = new TargetLocator(t.Sys, t.Dev);
        Assert.Equal(Path.Combine(t.Dev, "md127"), locator.Find(TargetSpec.Parse("/dev/md/dump"), out _)!.Node);
        // A link leading out of /dev is not followed to a device (the probe says where it leads).
        File.WriteAllBytes(t.Scratch("elsewhere"), new byte[4096]);
        File.CreateSymbolicLink(Path.Combine(t.Dev, "md", "out"), t.Scratch("elsewhere"));
        var outside = locator.Find(TargetSpec.Parse("/dev/md/out"), out _);
        Assert.Null(outside?.Device);
        Assert.Contains("outside", outside?.Volume.Problem ?? "outside");
    }

    [Fact]
    public void RunningArraysAndUnsupportedLevelsAreNotAssembled()
    {
        var running = new MdCandidate("vda", 254, 0, [Sb(0)], InUse: true);
        Assert.Empty(MdArrays.Plan([running, C("vdb", 16, Sb(1))]).Startable);
        var multipath = MdArrays.Plan([C("vdc", 32, Sb(0, level: -4, disks: 1))]);
        Assert.Contains("multipath was removed", Assert.Single(multipath.Refused));
    }

    private sealed class FakeClock : IWaitClock
    {
        public TimeSpan Elapsed { get; set; }
        public void Sleep(TimeSpan duration) => Elapsed += duration;
    }

    private sealed class RecordingKernel : IMdKernel
    {
        public List<string> Calls { get; } = new();
        public string? Problem { get; set; }
        public string? FailWith { get; set; }
        public bool StartsDirtyDegraded { get; set; }
        private int _next = 127;
        public string? DriverProblem(MdSuperblock reference) => Problem;
        public List<int?> Preferred { get; } = new();
        public string Allocate(int? preferred)
        {
            Preferred.Add(preferred);
            return $"md{_next--}";
        }
        public void Start(string md, MdArrayPlan plan)
        {
            Calls.Add($"{md}: {string.Join(',', plan.Members.Select(m => m.Device))}");
            if (FailWith is not null) throw new IOException(FailWith);
        }
    }

    [Fact]
    public void ADegradedArrayWaitsForItsGraceThenStarts()
    {
        var clock = new FakeClock();
        var kernel = new RecordingKernel();
        var devices = new List<MdCandidate> { C("vda", 0, Sb(0)) };
        var said = new List<string>();
        var md = new MdAssembly(kernel, () => devices, said.Add, clock) { DegradedGrace = TimeSpan.FromSeconds(10) };
        Assert.False(md.Activate());
        Assert.Empty(kernel.Calls);
        Assert.Contains(said, l => l.Contains("waiting up to 10 s for the rest"));
        clock.Elapsed = TimeSpan.FromSeconds(10);
        Assert.True(md.Activate());
        Assert.Equal(["md127: vda"], kernel.Calls);
        Assert.Contains(said, l => l.StartsWith("capture-agent: md: md127 started:") && l.Contains("degraded: 1 of 2 members missing"));
        // Its member is now held by md127: nothing more to do.
        devices[0] = devices[0] with { InUse = true };
        Assert.False(md.Activate());
        Assert.Single(kernel.Calls);
    }

    [Fact]
    public void ACompleteArrayStartsAtOnceAndAFailureIsNotRetriedUntilMembersChange()
    {
        var kernel = new RecordingKernel { FailWith = "md127 did not start: Invalid argument (errno 22)" };
        var devices = new List<MdCandidate> { C("vda", 0, Sb(0, level: 5, disks: 3)), C("vdb", 16, Sb(1, level: 5, disks: 3)), C("vdc", 32, Sb(2, level: 5, disks: 3)) };
        var said = new List<string>();
        var md = new MdAssembly(kernel, () => devices, said.Add, new FakeClock());
        Assert.False(md.Activate());
        Assert.False(md.Activate());
        Assert.Single(kernel.Calls);
        Assert.Single(said, l => l.Contains("could not be started: md127 did not start"));
        kernel.FailWith = null;
        devices.Add(C("vdd", 48, Sb(0, 21, level: 5, disks: 3)));   // a fresher copy of role 0 appears
        Assert.True(md.Activate());
        Assert.Equal("md126: vdd,vdb,vdc", kernel.Calls[^1]);
    }

    [Fact]
    public void MissingDriversAndDirtyDegradedParityAreSaidOnceWithWhatToDo()
    {
        var kernel = new RecordingKernel { Problem = "the raid1 personality is not loaded: raid1 is not in the capture initramfs (extra_modules = raid1)" };
        var said = new List<string>();
        var md = new MdAssembly(kernel, () => [C("vda", 0, Sb(0)), C("vdb", 16, Sb(1))], said.Add, new FakeClock());
        md.Activate();
        md.Activate();
        Assert.Single(said, l => l.Contains("extra_modules = raid1"));
        Assert.Empty(kernel.Calls);

        var dirty = new RecordingKernel();
        said.Clear();
        var raid5 = new MdAssembly(dirty, () => [C("vda", 0, Sb(0, level: 5, disks: 3, clean: false)), C("vdb", 16, Sb(1, level: 5, disks: 3, clean: false))],
            said.Add, new FakeClock()) { DegradedGrace = TimeSpan.Zero };
        Assert.False(raid5.Activate());
        Assert.Contains(said, l => l.Contains("md_mod.start_dirty_degraded=1"));
        dirty.StartsDirtyDegraded = true;
        var forced = new MdAssembly(dirty, () => [C("vda", 0, Sb(0, level: 5, disks: 3, clean: false)), C("vdb", 16, Sb(1, level: 5, disks: 3, clean: false))],
            said.Add, new FakeClock()) { DegradedGrace = TimeSpan.Zero };
        Assert.True(forced.Activate());
    }
}

/// <summary>A wait clock that only moves when slept on: wait loops in tests take no real time.</summary>
public sealed class MdAssemblyClock : IWaitClock
{
    public TimeSpan Elapsed { get; set; }
    public void Sleep(TimeSpan duration) => Elapsed += duration;
}

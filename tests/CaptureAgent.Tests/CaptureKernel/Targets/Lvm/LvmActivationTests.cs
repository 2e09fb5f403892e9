using System.Text;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Lvm;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// The capture kernel's wait for a target on LVM, in a fake /sys and /dev: two virtio disks that
/// are PVs of "vg-data" (written by the tests, with real ext4 filesystems inside the LVs), the
/// locator's wait with the storage stacks, and a fake device-mapper that builds each dm device's
/// content from the table it is given.
/// </summary>
public class LvmActivationTests
{
    private const long Extent = 2048, PeStart = SyntheticLvm.PeStart;
    private static readonly string VgId = SyntheticLvm.Id(100), Pv0 = SyntheticLvm.Id(101), Pv1 = SyntheticLvm.Id(102);
    private const string StrUuid = "5e1f0c2a-0b6d-4c3e-9f10-2a3b4c5d6e7f";

    private static readonly TestLv Lin = new("lin", SyntheticLvm.Id(110), [new TestSegment(0, 10, "striped", 0, ("pv0", 0))]);
    private static readonly TestLv Str = new("str", SyntheticLvm.Id(111), [new TestSegment(0, 20, "striped", 128, ("pv0", 10), ("pv1", 0))]);
    private static readonly TestLv Split = new("split", SyntheticLvm.Id(112),
        [new TestSegment(0, 3, "striped", 0, ("pv0", 20)), new TestSegment(3, 5, "striped", 0, ("pv1", 10))]);
    private static readonly TestLv Thin = new("thin", SyntheticLvm.Id(113), [new TestSegment(0, 4, "thin", 0)]);

    private static VgText Vg(long seqno = 3, string name = "vg-data", string? id = null, params TestLv[] lvs) => new()
    {
        Name = name, Id = id ?? VgId, Seqno = seqno,
        Pvs = [new TestPv("pv0", Pv0, 24 * 2048, 23), new TestPv("pv1", Pv1, 24 * 2048, 23)],
        Lvs = lvs.Length > 0 ? [.. lvs] : [Lin, Str, Split, Thin],
    };

    /// <summary>vda and vdb: the PVs, with ext4 in lin (LABEL=linear), str (UUID=StrUuid) and split (LABEL=split).</summary>
    private sealed class Machine : IDisposable
    {
        public FakeSysfs T { get; } = new();
        public FakeDeviceMapper Dm { get; }
        public int DmOpens { get; private set; }
        public byte[] Vda { get; } = new byte[24 << 20];
        public byte[] Vdb { get; } = new byte[24 << 20];
        public List<string> Reports { get; } = [];
        public Func<IDeviceMapper>? OpenDm { get; set; }

        public Machine()
        {
            Dm = new FakeDeviceMapper(T);
            SyntheticLvm.WriteLabel(Vda, Pv0);
            SyntheticLvm.WriteLabel(Vdb, Pv1);
            Fill(Lin, Ext4(10, "-L", "linear"));
            Fill(Str, Ext4(20, "-U", StrUuid, "-L", "striped"));
            Fill(Split, Ext4(8, "-L", "split"));
        }

        public void Attach(string metadataVda, string? metadataVdb = null)
        {
            SyntheticLvm.WriteMetadata(Vda, metadataVda);
            SyntheticLvm.WriteMetadata(Vdb, metadataVdb ?? metadataVda);
            T.AddDisk("pci0000:00/0000:00:04.0/virtio2", "vda", "254:0", Vda.Length / 512);
            T.Node("vda", Vda);
        }

        public void AttachSecond()
        {
            T.AddDisk("pci0000:00/0000:00:05.0/virtio3", "vdb", "254:16", Vdb.Length / 512);
            T.Node("vdb", Vdb);
        }

        private byte[] Ext4(int megabytes, params string[] identity)
        {
            string image = Blkid.Image(T.Scratch($"fs{megabytes}.img"), megabytes);
            Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", .. identity, image]);
            return File.ReadAllBytes(image);
        }

        /// <summary>The tests' own placement of a filesystem into its LV's extents: linear runs, striped chunks in turn.</summary>
        private void Fill(TestLv lv, byte[] fs)
        {
            foreach (var seg in lv.Segments)
            {
                long lvStart = seg.Start * Extent * 512, bytes = seg.Count * Extent * 512;
                long chunk = seg.Stripes.Length == 1 ? bytes : seg.StripeSize * 512;
                for (long k = 0; k * chunk < bytes; k++)
                {
                    var (pv, pe) = seg.Stripes[k % seg.Stripes.Length];
                    long to = (PeStart + pe * Extent) * 512 + k / seg.Stripes.Length * chunk;
                    long from = lvStart + k * chunk;
                    int n = (int)Math.Min(chunk, Math.Max(0, fs.Length - from));
                    if (n > 0) fs.AsSpan((int)from, n).CopyTo((pv == "pv0" ? Vda : Vdb).AsSpan((int)to));
                }
            }
        }

        public TargetLocator Locator() => new(T.Sys, T.Dev)
        {
            Report = Reports.Add,
            Stacks = new StorageStacks(T.Sys, T.Dev, [new LvmActivator(T.Sys, T.Dev, () => { DmOpens++; return OpenDm?.Invoke() ?? Dm; })]) { Report = Reports.Add },
        };

        public TargetMatch Wait(string target, TimeSpan? timeout = null) =>
            Locator().WaitFor(TargetSpec.Parse(target), timeout ?? TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(250), new NoSleepClock());

        public void Dispose() => T.Dispose();
    }

    /// <summary>Time passes at each sleep, instantly.</summary>
    private sealed class NoSleepClock : IWaitClock
    {
        public TimeSpan Elapsed { get; private set; }
        public int Sleeps { get; private set; }
        public void Sleep(TimeSpan duration) { Elapsed += duration; Sleeps++; }
    }

    private static Machine Both(VgText? vg = null)
    {
        var m = new Machine();
        m.Attach((vg ?? Vg()).ToString());
        m.AttachSecond();
        return m;
    }

    [Fact]
    public void UuidOnAStripedLvIsFoundAndOnlyThatLvIsActivated()
    {
        using var m = Both();
        var match = m.Wait("UUID=" + StrUuid);
        Assert.Equal(Path.Combine(m.T.Dev, "dm-0"), match.Node);
        Assert.Equal(("ext4", "striped"), (match.Volume.Type, match.Volume.Label));
        string created = Assert.Single(m.Dm.Created);
        Assert.Equal($"vg--data-str LVM-{VgId}{Str.Id}: 0 40960 striped 2 128 254:0 22528 254:16 2048", created);
        Assert.Equal("vg--data-str", match.Device!.DmName);
        Assert.Equal(Path.Combine("..", "mapper", "vg--data-str"), new FileInfo(Path.Combine(m.T.Dev, "vg-data", "str")).LinkTarget);
        Assert.Contains(m.Reports, r => r == "capture-agent: lvm: vg-data/str activated as /dev/mapper/vg--data-str (dm-0, 1 striped segment)");
    }

    [Fact]
    public void LabelOnAnLvSpanningBothPvs()
    {
        using var m = Both();
        var match = m.Wait("LABEL=split");
        Assert.Equal("split", match.Volume.Label);
        Assert.Equal($"vg--data-split LVM-{VgId}{Split.Id}: 0 6144 linear 254:0 43008 | 6144 10240 linear 254:16 22528", Assert.Single(m.Dm.Created));
    }

    [Theory]
    [InlineData("/dev/mapper/vg--data-lin")]
    [InlineData("/dev/vg-data/lin")]
    public void PathsNamingTheLv(string target)
    {
        using var m = Both();
        var match = m.Wait(target);
        Assert.Equal("vg--data-lin", match.Device!.DmName);
        Assert.Equal("linear", match.Volume.Label);
        Assert.Single(m.Dm.Created);
    }

    [Fact]
    public void AThinLvIsRefusedAtOnceNamingItsType()
    {
        using var m = Both();
        var clock = new NoSleepClock();
        var e = Assert.Throws<TargetNotFoundException>(() =>
            m.Locator().WaitFor(TargetSpec.Parse("/dev/vg-data/thin"), TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250), clock));
        Assert.Equal("/dev/vg-data/thin: lvm: vg-data/thin is a thin volume: the capture kernel activates only linear and striped LVs", e.Message);
        Assert.Equal(0, clock.Sleeps);
        Assert.Empty(m.Dm.Created);
    }

    [Fact]
    public void AMissingPvIsNamedWhenTheWaitEndsAndLvsWithoutItStillWork()
    {
        using var m = new Machine();
        m.Attach(Vg().ToString());   // vdb never comes
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("/dev/vg-data/str"));
        Assert.Contains($"lvm: vg-data/str needs PV {SyntheticLvm.Dashed(Pv1)} (was /dev/pv1), not here", e.Message);
        Assert.Empty(m.Dm.Created);
        Assert.Equal("linear", m.Wait("LABEL=linear").Volume.Label);
    }

    [Fact]
    public void TheWaitTakesAPvThatAppearsLate()
    {
        using var m = new Machine();
        m.Attach(Vg().ToString());
        var clock = new NoSleepClock();
        var locator = m.Locator();
        var spec = TargetSpec.Parse("UUID=" + StrUuid);
        var attachAt = new AttachingClock(clock, 3, m.AttachSecond);
        var match = locator.WaitFor(spec, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(250), attachAt);
        Assert.Equal("striped", match.Volume.Label);
        Assert.Contains(m.Reports, r => r.Contains("LVs not looked into: vg-data/str (PV missing)", StringComparison.Ordinal));
    }

    private sealed class AttachingClock(NoSleepClock inner, int atSleep, Action attach) : IWaitClock
    {
        public TimeSpan Elapsed => inner.Elapsed;
        public void Sleep(TimeSpan duration)
        {
            inner.Sleep(duration);
            if (inner.Sleeps == atSleep) attach();
        }
    }

    [Fact]
    public void TheNewestMetadataCopyWinsWhicheverPvHoldsIt()
    {
        // vda's copy is older and has no "lin" yet; vdb's is newer.
        using var m = new Machine();
        m.Attach(Vg(4, lvs: [Str]).ToString(), Vg(5).ToString());
        m.AttachSecond();
        Assert.Equal("linear", m.Wait("/dev/vg-data/lin").Volume.Label);
    }

    [Fact]
    public void TwoDifferentCopiesWithOneSeqnoMakeTheVgUnusable()
    {
        using var m = new Machine();
        m.Attach(Vg(5).ToString(), Vg(5, lvs: [Lin, Str]).ToString());
        m.AttachSecond();
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("/dev/vg-data/lin"));
        Assert.Contains("VG vg-data: its PVs hold different metadata with the same seqno 5", e.Message);
        Assert.Empty(m.Dm.Created);
    }

    [Fact]
    public void CorruptMetadataIsOneLineAndNoException()
    {
        using var m = new Machine();
        m.Attach(Vg().ToString());
        m.Vda[SyntheticLvm.MdaOffset + 600] ^= 0x01;
        m.T.Node("vda", m.Vda);
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("/dev/vg-data/lin"));
        Assert.Contains("lvm: vda: metadata text at byte 4608 fails its checksum", e.Message);
        Assert.Contains("lvm: no volume group vg-data on the PVs here (vda: no VG read)", e.Message);
    }

    [Fact]
    public void TwoVgsOfOneNameAreRefusedByNameButFoundByUuid()
    {
        using var m = new Machine();
        // vdb is a PV of another VG also called vg-data, holding a copy of "str".
        var otherId = SyntheticLvm.Id(200);
        var other = new VgText
        {
            Name = "vg-data", Id = otherId, Seqno = 9,
            Pvs = [new TestPv("pv0", Pv1, 24 * 2048, 23)],
            Lvs = [new TestLv("lin", SyntheticLvm.Id(201), [new TestSegment(0, 2, "striped", 0, ("pv0", 20))])],
        };
        var mine = Vg(lvs: [Lin]);
        mine.Pvs.RemoveAt(1);
        m.Attach(mine.ToString(), other.ToString());
        m.AttachSecond();
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("/dev/vg-data/lin"));
        Assert.StartsWith("/dev/vg-data/lin: lvm: 2 volume groups are named vg-data (ids ", e.Message);
        Assert.EndsWith("name the target by the UUID= of its filesystem", e.Message);
        Assert.Equal("linear", m.Wait("LABEL=linear").Volume.Label);
        Assert.Contains($"LVM-{VgId}{Lin.Id}", Assert.Single(m.Dm.Created));
    }

    [Fact]
    public void AnExistingDmDeviceWithAnotherTableIsLeftAlone()
    {
        using var m = Both();
        m.Dm.Existing("vg--data-lin", "LVM-something-else", new DmTarget(0, 100, "linear", "8:1 0"));
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("/dev/vg-data/lin"));
        Assert.Contains("device-mapper already has vg--data-lin (uuid LVM-something-else) with another table than vg-data/lin needs; it is left as it is", e.Message);
        Assert.Empty(m.Dm.Created);
    }

    [Fact]
    public void AnExistingDmDeviceWithOurTableIsTakenAsItIs()
    {
        using var m = Both();
        m.Dm.Existing("vg--data-lin", $"LVM-{VgId}{Lin.Id}", new DmTarget(0, 20480, "linear", "254:0  2048"));
        var step = new LvmActivator(m.T.Sys, m.T.Dev, () => m.Dm).Activate(TargetSpec.Parse("/dev/vg-data/lin"), SysfsBlockDevices.List(m.T.Sys, m.T.Dev));
        Assert.Null(step.Refusal);
        Assert.Empty(step.Activated);
        Assert.Empty(m.Dm.Created);
        Assert.Equal(Path.Combine("..", "mapper", "vg--data-lin"), new FileInfo(Path.Combine(m.T.Dev, "vg-data", "lin")).LinkTarget);
    }

    [Fact]
    public void WithoutDeviceMapperTheWaitSaysWhy()
    {
        using var m = Both();
        m.OpenDm = () => throw new IOException("device-mapper is not in this kernel (dm_mod not loaded?)");
        var e = Assert.Throws<TargetNotFoundException>(() => m.Wait("UUID=" + StrUuid));
        Assert.Contains("lvm: device-mapper is not in this kernel (dm_mod not loaded?)", e.Message);
    }

    [Fact]
    public void DisksWithoutLvmCostNoDeviceMapper()
    {
        using var m = new Machine();
        string ext4 = Blkid.Image(m.T.Scratch("plain.img"), 8);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "plain", ext4]);
        m.T.AddDisk("pci0000:00/0000:00:04.0/virtio2", "vda", "254:0", 16384);
        m.T.NodeFromImage("vda", ext4);
        Assert.Throws<TargetNotFoundException>(() => m.Wait("LABEL=absent"));
        Assert.Equal(0, m.DmOpens);
        Assert.Equal("plain", m.Wait("LABEL=plain").Volume.Label);
    }

    [Fact]
    public void LvmUnrelatedTargetsAreNotScanned()
    {
        using var m = Both();
        var step = new LvmActivator(m.T.Sys, m.T.Dev, () => m.Dm).Activate(TargetSpec.Parse("PARTUUID=1234abcd-01"), SysfsBlockDevices.List(m.T.Sys, m.T.Dev));
        Assert.Same(StackStep.Nothing, step);
        step = new LvmActivator(m.T.Sys, m.T.Dev, () => m.Dm).Activate(TargetSpec.Parse("/dev/vda1"), SysfsBlockDevices.List(m.T.Sys, m.T.Dev));
        Assert.Same(StackStep.Nothing, step);
    }

    [Fact]
    public void BuildTimeCheckGivesTheCaptureKernelsRefusalInAdvance()
    {
        using var m = Both();
        // The running system: thin active as dm-0 with dm-crypt on it (dm-1), lin as dm-2, a thin pool's layer as dm-3.
        void Dm(string name, string dmName, string uuid, params string[] slaves)
        {
            m.T.AddDisk(null, name, "253:" + name[3..], 8192);
            m.T.Attribute(name, "dm/name", dmName);
            m.T.Attribute(name, "dm/uuid", uuid);
            foreach (var s in slaves) m.T.Stack(name, s);
        }
        Dm("dm-0", "vg--data-thin", $"LVM-{VgId}{Thin.Id}", "vda");
        Dm("dm-1", "dump", "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-dump", "dm-0");
        Dm("dm-2", "vg--data-lin", $"LVM-{VgId}{Lin.Id}", "vda");
        Dm("dm-3", "vg--data-pool-tpool", $"LVM-{VgId}{SyntheticLvm.Id(114)}-tpool", "vdb");
        Assert.Equal(["vg-data/thin is a thin volume: the capture kernel activates only linear and striped LVs"], LvmTargetCheck.Problems("dm-1", m.T.Sys, m.T.Dev));
        Assert.Empty(LvmTargetCheck.Problems("dm-2", m.T.Sys, m.T.Dev));
        Assert.Empty(LvmTargetCheck.Problems("vda", m.T.Sys, m.T.Dev));
        Assert.Equal(["vg--data-pool-tpool is an internal layer (tpool) of an LVM volume"], LvmTargetCheck.Problems("dm-3", m.T.Sys, m.T.Dev));
    }
}

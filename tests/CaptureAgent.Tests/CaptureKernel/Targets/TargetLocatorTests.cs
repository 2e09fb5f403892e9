using System.Diagnostics;
using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>Finding the dump target in a fake /sys and /dev whose nodes are real mkfs images.</summary>
public class TargetLocatorTests
{
    private const string Uuid = "6b1d3c5e-7a2f-4b8c-9d0e-1f2a3b4c5d6e";
    private const string Virtio = "pci0000:00/0000:00:02.0/virtio1";
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>vda: GPT disk (vda1 ext4 "crashes", vda2 nothing), vdb: whole-disk vfat "EFI", sr0: no medium.</summary>
    private sealed class Machine : IDisposable
    {
        public FakeSysfs T { get; } = new();
        public string Ext4Image { get; }
        public string Vda1PartUuid { get; }

        public Machine()
        {
            string disk = Blkid.Image(T.Scratch("disk.img"), 64);
            Blkid.Run("/usr/sbin/sfdisk", ["-q", disk], "label: gpt\nsize=20M, type=linux, name=\"crash dumps\"\nsize=10M, type=swap\n");
            Vda1PartUuid = Fixtures.Exec("/usr/sbin/sfdisk", ["--part-uuid", disk, "1"]).Stdout.Trim().ToLowerInvariant();
            Ext4Image = Blkid.Image(T.Scratch("ext4.img"), 8);
            Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", Uuid, "-L", "crashes", Ext4Image]);
            string vfat = Blkid.Image(T.Scratch("vfat.img"), 8);
            Blkid.Run("/usr/sbin/mkfs.vfat", ["-i", "1234abcd", "-n", "EFI", vfat]);

            T.AddDisk(Virtio, "vda", "254:0", 131072);
            T.AddPartition("vda", "vda1", 1, "254:1", 40960);
            T.AddPartition("vda", "vda2", 2, "254:2", 20480, partName: "swapspace");
            T.AddDisk("pci0000:00/0000:00:03.0/virtio2", "vdb", "254:16", 16384);
            T.AddDisk("pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0", "sr0", "11:0", 0, removable: true);
            T.NodeFromImage("vda", disk);
            T.NodeFromImage("vda1", Ext4Image);
            T.Node("vda2", new byte[64 * 1024]);
            T.NodeFromImage("vdb", vfat);
            T.Node("sr0", []);
        }

        public TargetLocator Locator(Func<string, long, VolumeIdentity>? probe = null, Action<string>? report = null) =>
            probe is null ? new TargetLocator(T.Sys, T.Dev) { Report = report } : new TargetLocator(T.Sys, T.Dev) { Probe = probe, Report = report };

        public void Dispose() => T.Dispose();
    }

    private sealed class FakeClock(Action<int>? onSleep = null) : IWaitClock
    {
        public TimeSpan Elapsed { get; private set; }
        public List<TimeSpan> Sleeps { get; } = [];

        public void Sleep(TimeSpan duration)
        {
            Sleeps.Add(duration);
            Elapsed += duration;
            onSleep?.Invoke(Sleeps.Count);
        }
    }

    [Fact]
    public void FindsByEverySpecKind()
    {
        using var m = new Machine();
        var locator = m.Locator();
        string vda1 = Path.Combine(m.T.Dev, "vda1");
        foreach (var text in new[]
        {
            "UUID=" + Uuid.ToUpperInvariant(), "LABEL=crashes", "/dev/vda1", "PARTUUID=" + m.Vda1PartUuid,
            "PARTLABEL=crash dumps", "/dev/disk/by-label/crashes", "/dev/disk/by-uuid/" + Uuid,
        })
        {
            var match = locator.Find(TargetSpec.Parse(text), out _);
            Assert.True(match is not null, text);
            Assert.Equal(vda1, match!.Node);
            Assert.Equal(("ext4", "crashes", Uuid), (match.Volume.Type, match.Volume.Label, match.Volume.Uuid));
            Assert.Equal("vda1", match.Device!.Name);
            Assert.Empty(match.Notes);
        }
        Assert.Equal(Path.Combine(m.T.Dev, "vda2"), locator.Find(TargetSpec.Parse("PARTLABEL=swapspace"), out _)!.Node);   // from uevent PARTNAME
        var vfat = locator.Find(TargetSpec.Parse("UUID=1234-abcd"), out _)!;
        Assert.Equal(("vdb", "vfat", "EFI"), (vfat.Device!.Name, vfat.Volume.Type, vfat.Volume.Label));
    }

    [Fact]
    public void SaysWhatItSawInOneLine()
    {
        using var m = new Machine();
        var locator = m.Locator();
        var spec = TargetSpec.Parse("LABEL=nothere");
        Assert.Null(locator.Find(spec, out var seen));
        Assert.Equal("vda (partitioned), vda1 (ext4 LABEL=crashes), vda2 (unknown), vdb (vfat LABEL=EFI); empty: sr0", locator.DescribeSeen(seen, spec));

        var byUuid = TargetSpec.Parse("UUID=0000");
        Assert.Null(locator.Find(byUuid, out seen));
        Assert.Contains($"vda1 (ext4 LABEL=crashes UUID={Uuid})", locator.DescribeSeen(seen, byUuid));
        Assert.Contains("vdb (vfat LABEL=EFI UUID=1234-ABCD)", locator.DescribeSeen(seen, byUuid));

        var byPartUuid = TargetSpec.Parse("PARTUUID=0000");
        Assert.Null(locator.Find(byPartUuid, out seen));
        Assert.Contains($"vda1 (PARTUUID={m.Vda1PartUuid})", locator.DescribeSeen(seen, byPartUuid));
    }

    [Fact]
    public void WaitsUntilTheDeviceAppears()
    {
        using var m = new Machine();
        string image = m.Ext4Image;
        var t = m.T;
        // The driver "binds" during the third sleep: sysfs first, the node a poll later.
        var clock = new FakeClock(n =>
        {
            if (n == 3) t.AddDisk("pci0000:00/0000:00:04.0/virtio3", "vdc", "254:32", 16384);
            if (n == 4) t.NodeFromImage("vdc", image);
        });
        var locator = new TargetLocator(t.Sys, t.Dev);
        var match = locator.WaitFor(TargetSpec.Parse("/dev/vdc"), TimeSpan.FromSeconds(30), Poll, clock);
        Assert.Equal(Path.Combine(t.Dev, "vdc"), match.Node);
        Assert.Equal("ext4", match.Volume.Type);
        Assert.Equal(4, clock.Sleeps.Count);
        Assert.All(clock.Sleeps, s => Assert.Equal(Poll, s));
    }

    [Fact]
    public void AMappingOfALuksContainerThatNeverComesNamesTheContainer()
    {
        using var t = new FakeSysfs();
        var luks = new byte[1 << 20];
        "LUKS"u8.CopyTo(luks);
        luks[4] = 0xBA; luks[5] = 0xBE; luks[7] = 2;
        "0a1b2c3d-1111-2222-3333-444455556666"u8.CopyTo(luks.AsSpan(168));
        t.AddDisk("pci0000:00/0000:00:04.0/virtio2", "vda", "254:0", luks.Length / 512);
        t.Node("vda", luks);
        var e = Assert.Throws<TargetNotFoundException>(() => new TargetLocator(t.Sys, t.Dev)
            .WaitFor(TargetSpec.Parse("/dev/mapper/luks-0a1b2c3d-1111-2222-3333-444455556666"), TimeSpan.Zero, Poll, new FakeClock()));
        Assert.Equal("no block device /dev/mapper/luks-0a1b2c3d-1111-2222-3333-444455556666 after 0 s; seen: vda; vda is an encrypted volume (LUKS): "
            + "if the target is inside, the capture kernel cannot unlock it; put the dump target outside the encrypted volume, or use a network target (nfs:, ssh:)", e.Message);
    }

    [Fact]
    public void TimesOutNamingWhatWasWantedAndSeen()
    {
        using var m = new Machine();
        var clock = new FakeClock();
        var reports = new List<string>();
        var locator = m.Locator(report: reports.Add);
        var e = Assert.Throws<TargetNotFoundException>(() =>
            locator.WaitFor(TargetSpec.Parse("LABEL=nothere"), TimeSpan.FromSeconds(30.1), Poll, clock));
        Assert.Equal("no block device with LABEL=nothere after 30.1 s; seen: vda (partitioned), vda1 (ext4 LABEL=crashes), vda2 (unknown), vdb (vfat LABEL=EFI); empty: sr0", e.Message);
        Assert.IsAssignableFrom<IOException>(e);
        Assert.Equal(121, clock.Sleeps.Count);
        Assert.Equal(TimeSpan.FromMilliseconds(100), clock.Sleeps[^1]);   // the last sleep ends at the deadline
        Assert.Equal(TimeSpan.FromSeconds(30.1), clock.Elapsed);
        Assert.Single(reports);   // told once: nothing changed while waiting

        var path = Assert.Throws<TargetNotFoundException>(() => locator.WaitFor(TargetSpec.Parse("/dev/vdz1"), TimeSpan.Zero, Poll, new FakeClock()));
        Assert.Equal("no block device /dev/vdz1 after 0 s; seen: vda (partitioned), vda1, vda2, vdb; empty: sr0", path.Message);
        var byId = Assert.Throws<TargetNotFoundException>(() => locator.WaitFor(TargetSpec.Parse("/dev/disk/by-id/virtio-crash"), TimeSpan.Zero, Poll, new FakeClock()));
        Assert.EndsWith("(no udev here to make /dev/disk/ links: name the target by UUID= or LABEL=)", byId.Message);
    }

    [Fact]
    public void NothingThereGetsAHint()
    {
        using var t = new FakeSysfs();
        var e = Assert.Throws<TargetNotFoundException>(() =>
            new TargetLocator(t.Sys, t.Dev).WaitFor(TargetSpec.Parse("UUID=x"), TimeSpan.FromSeconds(1), Poll, new FakeClock()));
        Assert.EndsWith("seen: no block devices (is the disk's driver in the initramfs?)", e.Message);
        var noSys = Assert.Throws<TargetNotFoundException>(() =>
            new TargetLocator(t.Scratch("nosys"), t.Dev).WaitFor(TargetSpec.Parse("UUID=x"), TimeSpan.Zero, Poll, new FakeClock()));
        Assert.Contains("is sysfs mounted?", noSys.Message);
    }

    [Fact]
    public void ANodeSysfsListsButDevtmpfsHasNotMadeIsNotYetAMatch()
    {
        using var m = new Machine();
        m.T.AddDisk("pci0000:00/0000:00:04.0/virtio3", "vdc", "254:32", 16384);
        var locator = m.Locator();
        Assert.Null(locator.Find(TargetSpec.Parse("/dev/vdc"), out _));
        m.T.NodeFromImage("vdc", m.Ext4Image);
        Assert.NotNull(locator.Find(TargetSpec.Parse("/dev/vdc"), out _));
    }

    [Fact]
    public void EmptyDevicesAreNotProbed()
    {
        using var m = new Machine();
        var probed = new List<string>();
        var locator = m.Locator(probe: (node, length) => { lock (probed) probed.Add(Path.GetFileName(node)); return SuperblockProbe.ProbePath(node, knownLength: length); });
        Assert.NotNull(locator.Find(TargetSpec.Parse("LABEL=EFI"), out _));
        Assert.DoesNotContain("sr0", probed);
        Assert.Contains("vdb", probed);
    }

    /// <summary>A disk that never answers must not hang the capture: it is reported and passed over.</summary>
    [Fact]
    public void AHungDeviceIsReportedNotWaitedOnForever()
    {
        using var m = new Machine();
        m.T.AddDisk("pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", "sda", "8:0", 1 << 20);
        m.T.Node("sda", new byte[4096]);
        using var release = new ManualResetEventSlim();
        int hungProbes = 0;
        var locator = new TargetLocator(m.T.Sys, m.T.Dev)
        {
            ProbeTimeout = TimeSpan.FromMilliseconds(300),
            Probe = (node, length) =>
            {
                if (node.EndsWith("/sda", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref hungProbes);
                    release.Wait();
                }
                return SuperblockProbe.ProbePath(node, knownLength: length);
            },
        };
        try
        {
            var spec = TargetSpec.Parse("LABEL=crashes");
            var first = Stopwatch.StartNew();
            var match = locator.Find(spec, out var seen);
            Assert.True(match is not null, locator.DescribeSeen(seen, spec));
            Assert.Equal("vda1", match!.Device?.Name);
            Assert.InRange(first.Elapsed.TotalSeconds, 0.25, 5);
            Assert.Contains("sda (unreadable: not responding (a read has taken over 0.3 s))", locator.DescribeSeen(seen, spec));

            // Counted, not timed: a loaded machine makes any second Find slow.
            Assert.NotNull(locator.Find(spec, out _));
            Assert.True(Volatile.Read(ref hungProbes) == 1, $"the hung device was probed {hungProbes} times: waited on again");
        }
        finally
        {
            release.Set();
        }
        // Once the read finishes the device is probed again.
        Thread.Sleep(100);
        Assert.Null(locator.Find(TargetSpec.Parse("LABEL=nothere"), out var later));
        Assert.Contains("sda (unknown)", locator.DescribeSeen(later, TargetSpec.Parse("LABEL=nothere")));
    }

    [Fact]
    public void AMemberOfAStackYieldsToTheStack()
    {
        using var m = new Machine();
        // md0 (a RAID1 with metadata at the end) shows the same filesystem as its member vda1.
        m.T.AddDisk(null, "md0", "9:0", 16384);
        m.T.Stack("md0", "vda1");
        m.T.NodeFromImage("md0", m.Ext4Image);
        var match = m.Locator().Find(TargetSpec.Parse("UUID=" + Uuid), out var seen);
        Assert.Equal("md0", match!.Device!.Name);
        Assert.Equal([$"vda1 matches UUID={Uuid} too; using md0"], match.Notes);
        Assert.Contains("vda1 (ext4 LABEL=crashes UUID=" + Uuid + ", in md0)", m.Locator().DescribeSeen(seen, TargetSpec.Parse("UUID=" + Uuid)));
    }

    [Fact]
    public void ANodeThatLinksOutOfDevIsNotOpened()
    {
        using var m = new Machine();
        m.T.AddDisk("pci0000:00/0000:00:04.0/virtio3", "vdc", "254:32", 16384);
        File.CreateSymbolicLink(Path.Combine(m.T.Dev, "vdc"), m.Ext4Image);   // the image lives outside the /dev root
        var spec = TargetSpec.Parse("LABEL=crashes");
        var match = m.Locator().Find(spec, out var seen);
        Assert.Equal("vda1", match!.Device!.Name);
        Assert.Contains("vdc (unreadable: ", m.Locator().DescribeSeen(seen, spec));
        Assert.Contains("outside " + m.T.Dev, m.Locator().DescribeSeen(seen, spec));
    }

    [Fact]
    public void NonsenseRootsAreJustEmpty()
    {
        var locator = new TargetLocator("", "");
        Assert.Null(locator.Find(TargetSpec.Parse("UUID=x"), out var seen));
        Assert.Empty(seen);
        Assert.Empty(SysfsBlockDevices.List("", ""));
    }

    [Fact]
    public void MapperPathsAndImageFiles()
    {
        using var m = new Machine();
        m.T.AddDisk(null, "dm-0", "253:0", 16384);
        m.T.Attribute("dm-0", "dm/name", "vg-crash");
        m.T.NodeFromImage("dm-0", m.Ext4Image);
        Assert.Equal(Path.Combine(m.T.Dev, "dm-0"), m.Locator().Find(TargetSpec.Parse("/dev/mapper/vg-crash"), out _)!.Node);

        // A path sysfs does not list is taken only if it is a non-empty regular file (an image).
        m.T.NodeFromImage("image.img", m.Ext4Image);
        var image = m.Locator().Find(TargetSpec.Parse("/dev/image.img"), out _);
        Assert.Null(image!.Device);
        Assert.Equal("ext4", image.Volume.Type);
        m.T.Node("emptyfile", []);
        Assert.Null(m.Locator().Find(TargetSpec.Parse("/dev/emptyfile"), out _));
    }
}

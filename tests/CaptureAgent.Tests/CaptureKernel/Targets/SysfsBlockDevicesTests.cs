using CaptureAgent.Targets;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

public class SysfsBlockDevicesTests(ITestOutputHelper output)
{
    private const string Virtio = "pci0000:00/0000:00:02.0/virtio1";
    private const string Scsi = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";

    private static FakeSysfs Tree()
    {
        var t = new FakeSysfs();
        t.AddDisk(Virtio, "vda", "254:0", 2097152);
        t.AddPartition("vda", "vda1", 1, "254:1", 1024, partName: "root");
        t.AddPartition("vda", "vda2", 2, "254:2", 2048);
        t.AddPartition("vda", "vda10", 10, "254:10", 4096);
        t.AddDisk(Scsi, "sdb", "8:16", 4096, removable: true);
        t.AddPartition("sdb", "sdb1", 1, "8:17", 2048);
        t.AddDisk("pci0000:00/0000:00:05.0/cciss0", "cciss!c0d0", "104:0", 8192, readOnly: true);
        t.AddDisk(null, "dm-0", "253:0", 1024);
        t.Attribute("dm-0", "dm/name", "vg-crash");
        t.Attribute("dm-0", "dm/uuid", "LVM-abc");
        t.Stack("dm-0", "vda2");
        return t;
    }

    [Fact]
    public void ListsDisksThenTheirPartitionsInNumberOrder()
    {
        using var t = Tree();
        var list = SysfsBlockDevices.List(t.Sys, t.Dev);
        Assert.Equal(["cciss!c0d0", "dm-0", "sdb", "sdb1", "vda", "vda1", "vda2", "vda10"], list.Select(d => d.Name));
    }

    [Fact]
    public void ReadsEveryAttribute()
    {
        using var t = Tree();
        var vda1 = SysfsBlockDevices.Get("vda1", t.Sys, t.Dev)!;
        Assert.Equal((254, 1, "254:1"), (vda1.Major, vda1.Minor, vda1.DeviceNumber));
        Assert.True(vda1.IsPartition);
        Assert.Equal((1, "vda", "root"), (vda1.PartitionNumber, vda1.Parent, vda1.PartitionName));
        Assert.Equal(Path.Combine(t.Dev, "vda1"), vda1.Node);
        Assert.Equal((1024L, 512L * 1024), (vda1.Sectors, vda1.SizeBytes));
        Assert.EndsWith("/devices/" + Virtio + "/block/vda/vda1", vda1.SysfsPath);

        var vda = SysfsBlockDevices.Get("vda", t.Sys, t.Dev)!;
        Assert.False(vda.IsPartition);
        Assert.Equal((0, (string?)null), (vda.PartitionNumber, vda.Parent));

        var sdb1 = SysfsBlockDevices.Get("sdb1", t.Sys, t.Dev)!;
        Assert.True(sdb1.Removable);   // a partition has no removable file; its disk says
        Assert.False(sdb1.ReadOnly);

        var cciss = SysfsBlockDevices.Get("cciss!c0d0", t.Sys, t.Dev)!;
        Assert.Equal(Path.Combine(t.Dev, "cciss", "c0d0"), cciss.Node);   // uevent DEVNAME, '!' is '/'
        Assert.True(cciss.ReadOnly);

        var dm = SysfsBlockDevices.Get("dm-0", t.Sys, t.Dev)!;
        Assert.Equal(("vg-crash", "LVM-abc"), (dm.DmName, dm.DmUuid));
        Assert.Equal(["vda2"], dm.Slaves);
        Assert.Equal(["dm-0"], SysfsBlockDevices.Get("vda2", t.Sys, t.Dev)!.Holders);
        Assert.Empty(SysfsBlockDevices.Get("vda1", t.Sys, t.Dev)!.Holders);
    }

    [Fact]
    public void OddEntriesAreSkippedNotFatal()
    {
        using var t = Tree();
        string classBlock = Path.Combine(t.Sys, "class", "block");
        // A device whose dev file is nonsense, a link out of sysfs, a dangling link.
        string bad = Directory.CreateDirectory(Path.Combine(t.Sys, "devices", "virtual", "block", "bad0")).FullName;
        File.WriteAllText(Path.Combine(bad, "dev"), "garbage\n");
        File.CreateSymbolicLink(Path.Combine(classBlock, "bad0"), "../../devices/virtual/block/bad0");
        string outside = Directory.CreateDirectory(t.Scratch("elsewhere")).FullName;
        File.WriteAllText(Path.Combine(outside, "dev"), "1:1\n");
        File.CreateSymbolicLink(Path.Combine(classBlock, "escape0"), outside);
        File.CreateSymbolicLink(Path.Combine(classBlock, "gone0"), "../../devices/virtual/block/gone0");
        var names = SysfsBlockDevices.List(t.Sys, t.Dev).Select(d => d.Name).ToList();
        Assert.DoesNotContain("bad0", names);
        Assert.DoesNotContain("escape0", names);
        Assert.DoesNotContain("gone0", names);
        Assert.Equal(8, names.Count);
        Assert.Null(SysfsBlockDevices.Get("../../etc", t.Sys, t.Dev));
        Assert.Null(SysfsBlockDevices.Get("nothere", t.Sys, t.Dev));
    }

    [Fact]
    public void NoSysfsIsAnEmptyListAndSaysSo()
    {
        using var dir = new TempDir();
        Assert.Empty(SysfsBlockDevices.List(dir.File("nosys"), "/dev"));
        Assert.False(SysfsBlockDevices.SysfsPresent(dir.File("nosys")));
    }

    [Theory]
    [InlineData("sda1", "sda")]
    [InlineData("vda15", "vda")]
    [InlineData("nvme0n1p2", "nvme0n1")]
    [InlineData("mmcblk0p1", "mmcblk0")]
    [InlineData("loop0p3", "loop0")]
    [InlineData("sda", "sda")]
    public void DiskNameFromAPartitionName(string partition, string disk) =>
        Assert.Equal(disk, SysfsBlockDevices.DiskNameOf(partition));

    /// <summary>This machine's real /sys (read only): the kernel's /proc/partitions is the oracle.</summary>
    [Fact]
    public void HostSysfsAgreesWithProcPartitions()
    {
        var list = SysfsBlockDevices.List();
        foreach (var d in list)
            output.WriteLine($"{d.Name,-12} {d.DeviceNumber,-8} {d.Sectors,12} sectors  node {d.Node}  part={d.PartitionNumber} parent={d.Parent} removable={d.Removable} ro={d.ReadOnly} {d.SysfsPath}");
        Assert.NotEmpty(list);
        foreach (var line in File.ReadLines("/proc/partitions").Skip(2))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 4) continue;
            var d = list.FirstOrDefault(x => x.Name == f[3]);
            if (d is null && !File.Exists($"/sys/class/block/{f[3]}/dev")) continue;   // detached meanwhile
            Assert.NotNull(d);
            Assert.Equal($"{f[0]}:{f[1]}", d!.DeviceNumber);
            Assert.Equal(long.Parse(f[2]), d.Sectors / 2);   // /proc/partitions counts KiB
            Assert.Equal("/dev/" + f[3], d.Node);
        }
    }
}

using CaptureAgent.Host;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Lvm;
using CaptureAgent.Tests.Host.Host;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Lvm;

/// <summary>
/// Image planning on a host whose dump target is an LV: found through the PVs even when the
/// running system has not activated it, with device-mapper and the PVs' disk drivers in the
/// image; an LV the capture kernel would refuse is named with its type.
/// </summary>
public class LvmImagePlanTests
{
    private const string K = "6.1.0-99-amd64";
    private const string DumpUuid = "7d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a09";
    private const string VirtioB = "pci0000:00/0000:00:05.0/virtio4";
    private static readonly string VgId = SyntheticLvm.Id(300), PvId = SyntheticLvm.Id(301);

    /// <summary>vdb: a PV of vg0 with "dump" (linear, ext4 UUID=DumpUuid) and "thin" (a thin volume); neither active.</summary>
    private static FakeHost Host(string config)
    {
        var h = new FakeHost();
        h.FakeAgent();
        h.AddKernel(K);
        string dir = h.ModuleDir(K);
        Directory.CreateDirectory(Path.Combine(dir, "kernel/drivers/md"));
        File.WriteAllText(Path.Combine(dir, "kernel/drivers/md/dm-mod.ko"), "module dm-mod\n");
        File.AppendAllText(Path.Combine(dir, "modules.dep"), "kernel/drivers/md/dm-mod.ko:\n");
        var vg = new VgText
        {
            Name = "vg0", Id = VgId,
            Pvs = [new TestPv("pv0", PvId, 24 * 2048, 23)],
            Lvs =
            [
                new TestLv("dump", SyntheticLvm.Id(302), [new TestSegment(0, 10, "striped", 0, ("pv0", 0))]),
                new TestLv("thin", SyntheticLvm.Id(303), [new TestSegment(0, 4, "thin", 0)]),
            ],
        };
        var pv = SyntheticLvm.Pv(24, PvId, vg.ToString());
        string fs = Blkid.Image(h.Machine.Scratch("dump.fs"), 10);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", DumpUuid, fs]);
        File.ReadAllBytes(fs).CopyTo(pv, SyntheticLvm.PeStart * 512);
        h.Machine.AddDisk(VirtioB, "vdb", "254:16", pv.Length / 512);
        h.Machine.BindDriver(VirtioB, "virtio", "virtio_blk", "virtio_blk");
        h.Machine.BindDriver("pci0000:00/0000:00:05.0", "pci", "virtio-pci", "virtio_pci");
        h.Machine.Node("vdb", pv);
        h.Config(config);
        return h;
    }

    [Fact]
    public void AnInactiveLvTargetBringsDeviceMapperAndItsPvsDrivers()
    {
        using var h = Host($"target = UUID={DumpUuid}\n");
        var plan = CaptureImagePlan.Make(h.Layout, K);
        Assert.Equal([$"UUID={DumpUuid} -> LVM vg0/dump on vdb, not active here (ext4 UUID={DumpUuid}) needs virtio_blk virtio_pci dm_mod ext4"], plan.TargetIdentity);
        Assert.Contains("dm_mod", plan.Wanted);
        Assert.Contains(plan.Resolved, m => m.Name == "dm_mod");
        Assert.DoesNotContain(plan.Notes, n => n.Contains("cannot work", StringComparison.Ordinal));
    }

    [Fact]
    public void AThinLvTargetIsNamedAsOneTheCaptureKernelRefuses()
    {
        using var h = Host("target = /dev/vg0/thin\n");
        var plan = CaptureImagePlan.Make(h.Layout, K);
        Assert.Contains("target /dev/vg0/thin cannot work: vg0/thin is a thin volume: the capture kernel activates only linear and striped LVs", plan.Notes);
        Assert.DoesNotContain("dm_mod", plan.Wanted);
    }

    [Fact]
    public void LocateFindsWhatTheCaptureKernelWill()
    {
        using var h = Host("target = LABEL=none\n");
        var lv = LvmTargetCheck.Locate(TargetSpec.Parse("/dev/mapper/vg0-dump"), h.Machine.Sys, h.Machine.Dev);
        Assert.Equal(("vg0/dump", "vdb", DumpUuid, null), (lv!.Name, Assert.Single(lv.PvDevices).Name, lv.Volume.Uuid, lv.Refusal));
        Assert.Null(LvmTargetCheck.Locate(TargetSpec.Parse("LABEL=none"), h.Machine.Sys, h.Machine.Dev));
        Assert.Null(LvmTargetCheck.Locate(TargetSpec.Parse("/dev/vg0/absent"), h.Machine.Sys, h.Machine.Dev));
    }
}

using CaptureAgent.Host;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Host.Initramfs;
using Xunit;
using CaptureAgent.Compression;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// Planning a capture image whose target disk is not attached while it is built (a VM image made
/// before its data disk, a kernel hook run in a chroot): the filesystem module still goes in, with
/// its soft dependencies, from a merged-/usr module tree.
/// </summary>
public class CaptureImagePlanTests
{
    private const string Generic = "6.12.48+deb13-amd64";
    private const string Absent = "5a1e0c4b-3f2d-4e1c-9b8a-7d6c5b4a3f2e";

    private static FakeHost HostWithGenericKernel()
    {
        var h = new FakeHost();
        h.FakeAgent();
        // trixie's generic flavour as dpkg -x leaves it: usr/lib/modules only, no depmod output, ext4 a module.
        new SyntheticTree(h.Root, Generic, ModuleCodec.Xz, usrMerged: true).AddGenericExt4();
        return h;
    }

    [Fact]
    public void AnAbsentTargetGetsItsFilesystemFromFstabWithTheSoftDependencies()
    {
        using var h = HostWithGenericKernel();
        h.Write("etc/fstab", $"UUID={FakeHost.Uuid} / ext4 defaults 0 1\nUUID={Absent} /var/crash ext4 defaults,nofail 0 2\n");
        h.Config($"target = UUID={Absent}\npath = /var/crash\n");
        var plan = CaptureImagePlan.Make(h.Layout, Generic);
        Assert.Equal(Path.Combine(h.Root, "usr/lib/modules", Generic), plan.ModuleDirectory);
        Assert.Contains($"UUID={Absent} -> not found", plan.TargetIdentity);
        Assert.Contains($"UUID={Absent} filesystem ext4 needs ext4", plan.TargetIdentity);
        Assert.Equal(["crc16", "crc32c_generic", "crc32c_intel", "jbd2", "mbcache", "ext4"], plan.Resolved.Select(m => m.Name));
        Assert.Contains("crc32c is an alias of crc32c_generic crc32c_intel", plan.Notes);
    }

    [Fact]
    public void TheConfigsFstypeWinsOverFstab()
    {
        using var h = HostWithGenericKernel();
        h.Write("etc/fstab", $"UUID={Absent} /var/crash xfs defaults 0 2\n");
        h.Config($"target = UUID={Absent}\nfstype = ext4\n");
        Assert.Contains("ext4", CaptureImagePlan.Make(h.Layout, Generic).Resolved.Select(m => m.Name));
    }

    [Fact]
    public void AnUnknownFilesystemTypeIsSaidInTheNotes()
    {
        using var h = HostWithGenericKernel();
        h.Write("etc/fstab", $"UUID={FakeHost.Uuid} / ext4 defaults 0 1\nLABEL=dumps /var/crash auto defaults 0 2\n");
        h.Config("target = LABEL=dumps\n");
        var plan = CaptureImagePlan.Make(h.Layout, Generic);
        Assert.Empty(plan.Resolved);
        Assert.Contains(plan.Notes, n => n.StartsWith("the filesystem type of target LABEL=dumps is unknown", StringComparison.Ordinal) && n.Contains("set fstype ="));
    }

    [Fact]
    public void FstabMatchesTheTargetsIdentityNotItsSpelling()
    {
        using var h = new FakeHost();
        h.Write("etc/fstab", $"UUID={Absent.ToUpperInvariant()} /a btrfs defaults 0 0\nLABEL=x /b vfat defaults 0 0\n/dev/disk/by-partlabel/dumps /c xfs defaults 0 0\n");
        Assert.Equal("btrfs", CaptureImagePlan.FstabType(h.Layout, CaptureAgent.Targets.TargetSpec.Parse($"UUID={Absent}")));
        Assert.Equal("vfat", CaptureImagePlan.FstabType(h.Layout, CaptureAgent.Targets.TargetSpec.Parse("LABEL=x")));
        Assert.Equal("xfs", CaptureImagePlan.FstabType(h.Layout, CaptureAgent.Targets.TargetSpec.Parse("PARTLABEL=dumps")));
        Assert.Null(CaptureImagePlan.FstabType(h.Layout, CaptureAgent.Targets.TargetSpec.Parse("LABEL=X")));
    }

    [Fact]
    public void AVfatTargetGetsTheCharsetsTheKernelDefaultsTo()
    {
        using var h = HostWithGenericKernel();
        var tree = new SyntheticTree(h.Root, Generic, ModuleCodec.Xz, usrMerged: true);
        tree.Add("fs/fat", "fat");
        tree.Add("fs/fat", "vfat", "depends=fat");
        tree.Add("fs/nls", "nls_cp437");
        tree.Add("fs/nls", "nls_ascii");
        tree.Add("fs/nls", "nls_iso8859-1");
        h.Config($"target = UUID=ABCD-1234\nfstype = vfat\n");
        // Debian's choice: codepage 437, iocharset ascii.
        tree.Config("CONFIG_FAT_DEFAULT_CODEPAGE=437", "CONFIG_FAT_DEFAULT_IOCHARSET=\"ascii\"", "CONFIG_NLS_ASCII=m");
        var plan = CaptureImagePlan.Make(h.Layout, Generic);
        Assert.Equal(["fat", "vfat", "nls_cp437", "nls_ascii"], plan.Resolved.Select(m => m.Name));
        Assert.Contains("vfat charsets (codepage 437, iocharset ascii) need nls_cp437 nls_ascii", plan.TargetIdentity);
        // No config to read: upstream's defaults.
        File.Delete(Path.Combine(h.Root, "boot", "config-" + Generic));
        plan = CaptureImagePlan.Make(h.Layout, Generic);
        Assert.Contains("nls_iso8859_1", plan.Resolved.Select(m => m.Name));
        Assert.Contains(plan.Notes, n => n.StartsWith("no kernel config for " + Generic, StringComparison.Ordinal));
    }
}

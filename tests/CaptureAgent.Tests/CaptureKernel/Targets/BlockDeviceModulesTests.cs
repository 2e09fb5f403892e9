using CaptureAgent.Targets;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>Driver chains read from fake sysfs trees laid out like real machines', and from this machine's /sys.</summary>
public class BlockDeviceModulesTests(ITestOutputHelper output)
{
    private const string VirtioPci = "pci0000:00/0000:00:02.0", Virtio = VirtioPci + "/virtio1";
    private const string Ahci = "pci0000:00/0000:00:1f.2", ScsiDisk = Ahci + "/ata1/host0/target0:0:0/0:0:0:0";
    private const string NvmePort = "pci0000:00/0000:00:1d.0", NvmePci = NvmePort + "/0000:01:00.0", NvmeCtrl = NvmePci + "/nvme/nvme0";

    private static FakeSysfs Machine()
    {
        var t = new FakeSysfs();
        // virtio-blk disk: the virtio device is driven by virtio_blk, its PCI function by virtio_pci.
        t.AddDisk(Virtio, "vda", "254:0", 1 << 21);
        t.AddPartition("vda", "vda1", 1, "254:1", 1 << 20);
        t.AddPartition("vda", "vda2", 2, "254:2", 1 << 20);
        t.BindDriver(Virtio, "virtio", "virtio_blk", "virtio_blk");
        t.BindDriver(VirtioPci, "pci", "virtio-pci", "virtio_pci");
        // SATA disk: sd on the SCSI device, nothing on target/host/port, ahci on the controller.
        t.AddDisk(ScsiDisk, "sda", "8:0", 1 << 21);
        t.AddPartition("sda", "sda1", 1, "8:1", 1 << 20);
        t.BindDriver(ScsiDisk, "scsi", "sd", "sd_mod");
        t.BindDriver(Ahci, "pci", "ahci", "ahci");
        // NVMe: the controller is a class device with no driver; the PCI function has nvme; the root port's pcieport is built in.
        t.AddDisk(NvmeCtrl, "nvme0n1", "259:0", 1 << 21);
        t.AddPartition("nvme0n1", "nvme0n1p1", 1, "259:1", 1 << 20);
        t.BindDriver(NvmePci, "pci", "nvme", "nvme");
        t.BindDriver(NvmePort, "pci_express", "pcieport", module: null);
        return t;
    }

    [Fact]
    public void VirtioPartitionNeedsBlkPciAndTheFilesystem()
    {
        using var t = Machine();
        var chain = BlockDeviceModules.Resolve("vda1", "ext4", builtIn: null, t.Sys, t.Dev);
        Assert.Equal(["virtio_blk", "virtio_pci", "ext4"], chain.Modules);
        Assert.Equal([new DriverLevel(Virtio, "virtio_blk", "virtio_blk", false), new DriverLevel(VirtioPci, "virtio-pci", "virtio_pci", false)], chain.Levels);
        Assert.Empty(chain.Notes);
    }

    [Fact]
    public void BuiltInModulesAreLeftOut()
    {
        using var t = Machine();
        var builtIn = new HashSet<string> { "virtio_pci", "ext4" };
        var chain = BlockDeviceModules.Resolve("/dev/vda", "ext3", builtIn, t.Sys, t.Dev);
        Assert.Equal(["virtio_blk"], chain.Modules);
        Assert.True(chain.Levels.Single(l => l.Driver == "virtio-pci").BuiltIn);

        // Without a modules.builtin, the running kernel's /sys/module says: no initstate means built in.
        using var t2 = new FakeSysfs();
        t2.AddDisk(Virtio, "vda", "254:0", 1 << 21);
        t2.BindDriver(Virtio, "virtio", "virtio_blk", "virtio_blk", moduleIsBuiltIn: true);
        t2.BindDriver(VirtioPci, "pci", "virtio-pci", module: null);
        string proc = Directory.CreateDirectory(t2.Scratch("proc")).FullName;
        File.WriteAllText(Path.Combine(proc, "filesystems"), "nodev\tsysfs\n\text4\n");
        var here = BlockDeviceModules.Resolve("vda", "xfs", builtIn: null, t2.Sys, t2.Dev, proc);
        Assert.Equal(["xfs"], here.Modules);
        Assert.Empty(BlockDeviceModules.Resolve("vda", "ext4", builtIn: null, t2.Sys, t2.Dev, proc).Modules);   // registered, no module: built in
        Assert.Equal([new DriverLevel(Virtio, "virtio_blk", "virtio_blk", true), new DriverLevel(VirtioPci, "virtio-pci", null, true)], here.Levels);
    }

    [Fact]
    public void ScsiAndNvmeChains()
    {
        using var t = Machine();
        Assert.Equal(["sd_mod", "ahci", "xfs"], BlockDeviceModules.Resolve("sda1", "xfs", null, t.Sys, t.Dev).Modules);
        var nvme = BlockDeviceModules.Resolve("nvme0n1p1", "btrfs", null, t.Sys, t.Dev);
        Assert.Equal(["nvme", "btrfs"], nvme.Modules);
        Assert.Equal(["nvme", "pcieport"], nvme.Levels.Select(l => l.Driver));
    }

    [Fact]
    public void StackedDevicesBringTheirMembersChains()
    {
        using var t = Machine();
        t.AddDisk(null, "dm-0", "253:0", 1 << 20);
        t.Attribute("dm-0", "dm/name", "cryptdump");
        t.Attribute("dm-0", "dm/uuid", "CRYPT-LUKS2-0123456789abcdef-cryptdump");
        t.Stack("dm-0", "vda2");
        var crypt = BlockDeviceModules.Resolve("dm-0", "ext4", null, t.Sys, t.Dev);
        Assert.Equal(["virtio_blk", "virtio_pci", "dm_mod", "dm_crypt", "ext4"], crypt.Modules);
        Assert.Contains(crypt.Notes, n => n.Contains("dm-crypt", StringComparison.Ordinal));

        // Reached through /dev/mapper, as an admin would name it on the host.
        Directory.CreateDirectory(Path.Combine(t.Dev, "mapper"));
        File.WriteAllBytes(Path.Combine(t.Dev, "dm-0"), []);
        File.CreateSymbolicLink(Path.Combine(t.Dev, "mapper", "cryptdump"), "../dm-0");
        Assert.Equal(crypt.Modules, BlockDeviceModules.Resolve(Path.Combine(t.Dev, "mapper", "cryptdump"), "ext4", null, t.Sys, t.Dev).Modules);

        t.AddDisk(null, "md0", "9:0", 1 << 20);
        t.Attribute("md0", "md/level", "raid1");
        t.Stack("md0", "sda1");
        t.Stack("md0", "nvme0n1p1");
        Assert.Equal(["nvme", "sd_mod", "ahci", "md_mod", "raid1", "xfs"], BlockDeviceModules.Resolve("md0", "xfs", null, t.Sys, t.Dev).Modules);
    }

    [Fact]
    public void UnknownDeviceIsAnError()
    {
        using var t = Machine();
        var e = Assert.Throws<IOException>(() => BlockDeviceModules.Resolve("vdz", "ext4", null, t.Sys, t.Dev));
        Assert.Contains("no block device vdz", e.Message);
    }

    [Fact]
    public void ModulesBuiltinAndFilesystemNames()
    {
        using var dir = new TempDir();
        string file = dir.File("modules.builtin");
        File.WriteAllText(file, "kernel/fs/ext4/ext4.ko\nkernel/drivers/block/virtio_blk.ko\nkernel/crypto/crc32c-generic.ko\n\n");
        Assert.Equal(new HashSet<string> { "ext4", "virtio_blk", "crc32c_generic" }, BlockDeviceModules.ReadModulesBuiltin(file));
        Assert.Equal(["ext4"], BlockDeviceModules.FilesystemModules("ext2"));
        Assert.Equal(["xfs"], BlockDeviceModules.FilesystemModules("xfs"));
        Assert.Equal(["vfat", "nls_cp437"], BlockDeviceModules.FilesystemModules("vfat"));
        Assert.Empty(BlockDeviceModules.FilesystemModules("swap"));
    }

    /// <summary>This machine's root disk, read only from the real /sys; prints what it found.</summary>
    [Fact]
    public void HostRootDiskChain()
    {
        var root = File.ReadLines("/proc/mounts").Select(l => l.Split(' ')).FirstOrDefault(f => f.Length > 2 && f[1] == "/" && f[0].StartsWith("/dev/", StringComparison.Ordinal));
        string? device = root?[0];
        string? fs = root?[2];
        // Containers often mount something else on /; fall back to the first disk with hardware behind it.
        if (device is null || SysfsBlockDevices.Get(Path.GetFileName(device)) is null)
        {
            device = SysfsBlockDevices.List().FirstOrDefault(d => Directory.Exists(Path.Combine(d.SysfsPath, "device")))?.Name;
            fs = null;
        }
        Assert.True(device is not null, "this test needs a disk with a device link in /sys/class/block (a VM or real machine, not a container)");
        string release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        string builtinFile = $"/lib/modules/{release}/modules.builtin";
        var builtIn = File.Exists(builtinFile) ? BlockDeviceModules.ReadModulesBuiltin(builtinFile) : null;
        var chain = BlockDeviceModules.Resolve(device, fs, builtIn);
        output.WriteLine($"root {device} ({fs ?? "filesystem not known"}), kernel {release}, modules.builtin {(builtIn is null ? "absent: judged by /sys/module and /proc/filesystems" : "read")}");
        foreach (var l in chain.Levels)
            output.WriteLine($"  /sys/devices/{l.Device}: driver {l.Driver}, {(l.Module is null ? "no module link" : "module " + l.Module)}{(l.BuiltIn ? " (built in)" : "")}");
        output.WriteLine($"  modules to load: {(chain.Modules.Count == 0 ? "none" : string.Join(' ', chain.Modules))}");
        foreach (var n in chain.Notes) output.WriteLine("  note: " + n);
        Assert.NotEmpty(chain.Levels);
        if (Path.GetFileName(device).StartsWith("vd", StringComparison.Ordinal))
            Assert.Equal("virtio_blk", chain.Levels[0].Driver);
    }
}

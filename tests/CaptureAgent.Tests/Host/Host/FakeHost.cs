using CaptureAgent.Host;
using CaptureAgent.Tests.CaptureKernel.Targets;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>
/// A scratch root laid out like an installed host: /sys and /dev with a virtio disk (vda1) and a
/// SATA disk (sda1) whose nodes are image files, a root filesystem made by the real mkfs.ext4 with
/// a known UUID on vda1, /etc/fstab naming it, /boot/vmlinuz-KVER and a module tree with a depmod-style
/// modules.dep for each kernel (the files are small stand-ins: the builder copies them as they are).
/// </summary>
public sealed class FakeHost : IDisposable
{
    public const string Uuid = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    public const string Virtio = "pci0000:00/0000:00:04.0/virtio3";
    public const string VirtioPci = "pci0000:00/0000:00:04.0";
    public const string ScsiDisk = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    public const string Ahci = "pci0000:00/0000:00:1f.2";

    public FakeSysfs Machine { get; } = new();
    public string Root { get; }
    public HostLayout Layout { get; }
    public string Ext4Image { get; }
    public string Agent => Path.Combine(Root, "usr/sbin/capture-agent");

    // kernel/PATH: dependencies (paths), like depmod writes them.
    private static readonly (string Path, string[] Deps)[] Modules =
    [
        ("kernel/drivers/virtio/virtio_ring.ko", []),
        ("kernel/drivers/virtio/virtio.ko", ["kernel/drivers/virtio/virtio_ring.ko"]),
        ("kernel/drivers/virtio/virtio_pci.ko", ["kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"]),
        ("kernel/drivers/block/virtio_blk.ko", ["kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"]),
        ("kernel/fs/mbcache.ko", []),
        ("kernel/fs/jbd2/jbd2.ko", []),
        ("kernel/fs/ext4/ext4.ko", ["kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko"]),
        ("kernel/drivers/scsi/sd_mod.ko", []),
        ("kernel/drivers/ata/libahci.ko", []),
        ("kernel/drivers/ata/ahci.ko", ["kernel/drivers/ata/libahci.ko"]),
        ("kernel/drivers/nvme/host/nvme-core.ko", []),
        ("kernel/drivers/nvme/host/nvme.ko", ["kernel/drivers/nvme/host/nvme-core.ko"]),
        ("kernel/lib/crc16.ko", []),
    ];

    public FakeHost()
    {
        Root = Path.GetDirectoryName(Machine.Sys)!;
        Layout = new HostLayout(Root);
        Ext4Image = Blkid.Image(Machine.Scratch("ext4.img"), 8);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", Uuid, "-L", "root", Ext4Image]);
        Machine.AddDisk(Virtio, "vda", "254:0", 65536);
        Machine.AddPartition("vda", "vda1", 1, "254:1", 16384);
        Machine.BindDriver(Virtio, "virtio", "virtio_blk", "virtio_blk");
        Machine.BindDriver(VirtioPci, "pci", "virtio-pci", "virtio_pci");
        Machine.AddDisk(ScsiDisk, "sda", "8:0", 65536);
        Machine.AddPartition("sda", "sda1", 1, "8:1", 16384);
        Machine.BindDriver(ScsiDisk, "scsi", "sd", "sd_mod");
        Machine.BindDriver(Ahci, "pci", "ahci", "ahci");
        Machine.NodeFromImage("vda1", Ext4Image);
        Machine.Node("vda", new byte[4096]);
        Machine.Node("sda", new byte[4096]);
        Machine.Node("sda1", new byte[8192]);
        Write("etc/fstab", $"# <file system> <mount point> <type> <options> <dump> <pass>\nUUID={Uuid} / ext4 errors=remount-ro 0 1\n/dev/sda1 /srv ext4 defaults 0 2\n");
    }

    /// <summary>The ext4 filesystem moves from vda1 to sda1 (the target is now reached through other drivers).</summary>
    public void MoveFilesystemToSda()
    {
        Machine.NodeFromImage("sda1", Ext4Image);
        Machine.Node("vda1", new byte[8192]);
    }

    public string Write(string relative, string text, int mode = 0x1a4)
    {
        string p = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, text);
        File.SetUnixFileMode(p, (UnixFileMode)mode);
        return p;
    }

    /// <summary>A stand-in agent (not ELF, so no loader or libraries are looked for).</summary>
    public void FakeAgent(string content = "#!/bin/sh\n# capture-agent stand-in\n") => Write("usr/sbin/capture-agent", content, 0x1ed);

    public string Config(string text) => Write("etc/capture-agent.conf", text, 0x180);

    public const string DefaultConfig = $"target = UUID={Uuid}\npath = /var/crash\n";

    /// <summary>/boot/vmlinuz-KVER and lib/modules/KVER with modules.dep, modules.builtin and the module files.</summary>
    public void AddKernel(string release, bool withImage = true)
    {
        if (withImage) Write($"boot/vmlinuz-{release}", $"kernel {release}\n");
        string dir = ModuleDir(release);
        foreach (var (path, _) in Modules)
        {
            Directory.CreateDirectory(Path.Combine(dir, Path.GetDirectoryName(path)!));
            File.WriteAllText(Path.Combine(dir, path), $"module {path} of {release}\n");
        }
        File.WriteAllText(Path.Combine(dir, "modules.dep"), string.Concat(Modules.Select(m => $"{m.Path}: {string.Join(' ', m.Deps)}\n")));
        File.WriteAllText(Path.Combine(dir, "modules.builtin"), "kernel/drivers/block/loop.ko\nkernel/fs/fat/vfat.ko\n");
    }

    public string ModuleDir(string release) => Path.Combine(Root, "lib", "modules", release);

    /// <summary>Every file and link below the root except the fake machine's sys, dev and scratch images.</summary>
    public SortedSet<string> Tree()
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in FileTree.Entries(Root))
        {
            string rel = "/" + Path.GetRelativePath(Root, e);
            if (rel.StartsWith("/sys", StringComparison.Ordinal) || rel.StartsWith("/dev", StringComparison.Ordinal) || rel.EndsWith(".img", StringComparison.Ordinal) && !rel.Contains("/var/")) continue;
            if (Directory.Exists(e) && new DirectoryInfo(e).LinkTarget is null) continue;
            set.Add(rel);
        }
        return set;
    }

    public void Dispose() => Machine.Dispose();
}

using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>Module resolution on the real Debian trees, from .modinfo (as dpkg -x leaves them) and from depmod's modules.dep.</summary>
[Trait("Category", "Fixture")]
public class KernelModulesTests
{
    /// <summary>The same tree twice: as unpacked (no modules.dep), and after depmod.</summary>
    private static (KernelModules FromModinfo, KernelModules FromDepmod) BothWays(TempDir dir, string release)
    {
        string plain = ModuleTrees.CopyWithoutDepmod(release, dir.File("plain"));
        string depmod = ModuleTrees.CopyWithoutDepmod(release, dir.File("depmod"));
        ModuleTrees.Depmod(depmod, release);
        var a = new KernelModules(plain, release);
        var b = new KernelModules(depmod, release);
        Assert.False(a.HasModulesDep);
        Assert.True(b.HasModulesDep);
        return (a, b);
    }

    [Theory]
    [InlineData("6.1")]
    [InlineData("6.12")]
    public void ModinfoAndModulesDepGiveTheSameOrder(string series)
    {
        string release = ModuleTrees.Release(series);
        using var dir = new TempDir();
        var (fromModinfo, fromDepmod) = BothWays(dir, release);
        string[][] requests =
        [
            ["virtio_blk"], ["xfs"], ["btrfs"],
            ["virtio_pci", "virtio-blk", "xfs", "btrfs"],
            ["btrfs", "nvme", "ext4", "dm_crypt", "virtio_scsi", "sd_mod"],
        ];
        foreach (var request in requests)
        {
            var notesA = new List<string>();
            var notesB = new List<string>();
            var a = fromModinfo.Resolve(request, [], notesA);
            var b = fromDepmod.Resolve(request, [], notesB);
            Assert.Equal(b, a);
            // The same notes, besides the one saying where the aliases came from.
            Assert.Equal(notesB, notesA.Where(n => !n.StartsWith("no modules.alias", StringComparison.Ordinal)));
            // Every module comes after everything depmod says it needs.
            var closure = File.ReadLines(Path.Combine(ModuleTrees.ModuleDir(dir.File("depmod"), release), "modules.dep"))
                .Select(l => l.Split(':')).ToDictionary(p => p[0], p => p[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
            var paths = a.Select(m => m.RelativePath).ToList();
            for (int i = 0; i < paths.Count; i++)
                foreach (var needed in closure[paths[i]])
                    Assert.InRange(paths.IndexOf(needed), 0, i - 1);
        }
    }

    [Fact]
    public void KnownOrdersOfTheDebianTrees()
    {
        using var dir = new TempDir();
        var notes = new List<string>();
        var old = new KernelModules(ModuleTrees.CopyWithoutDepmod(ModuleTrees.Debian61, dir.File("61")), ModuleTrees.Debian61);
        Assert.Equal(["virtio_ring", "virtio", "virtio_blk"], old.Resolve(["virtio_blk"], [], notes).Select(m => m.Name));
        // btrfs's soft dependencies blake2b-256 and xxhash64 are modules of 6.1 (crc32c and sha256 are built in).
        Assert.Equal(["blake2b_generic", "libcrc32c", "raid6_pq", "xor", "xxhash_generic", "zstd_compress", "btrfs"], old.Resolve(["btrfs"], [], notes).Select(m => m.Name));
        Assert.All(old.Resolve(["btrfs"], [], notes), m => Assert.False(m.Compressed));

        var current = new KernelModules(ModuleTrees.CopyWithoutDepmod(ModuleTrees.Debian612, dir.File("612")), ModuleTrees.Debian612);
        notes.Clear();
        var list = current.Resolve(["virtio_pci", "virtio_blk", "xfs"], [], notes);
        Assert.Equal(["virtio_blk", "libcrc32c", "xfs"], list.Select(m => m.Name));
        Assert.Equal(["kernel/drivers/block/virtio_blk.ko.xz", "kernel/lib/libcrc32c.ko.xz", "kernel/fs/xfs/xfs.ko.xz"], list.Select(m => m.RelativePath));
        Assert.All(list, m => Assert.True(m.Compressed));
        Assert.Contains("virtio_pci is built into the kernel", notes);
        notes.Clear();
        // btrfs's soft dependencies (blake2b-256 crc32c sha256 xxhash64: aliases of crypto modules)
        // load before it, or are built in.
        var withSoft = current.Resolve(["btrfs"], [], notes).Select(m => m.Name).ToList();
        var btrfs = ModuleInfo.Read(Path.Combine(current.Directory, "kernel/fs/btrfs/btrfs.ko.xz"));
        Assert.NotEmpty(btrfs.SoftdepPre);
        foreach (var soft in btrfs.SoftdepPre)
        {
            var found = current.Lookup(soft);
            Assert.True(found is not null, $"{soft} is neither a module nor an alias of the 6.12 tree");
            Assert.True(found!.BuiltinBy is not null || found.Modules.Count > 0);
            foreach (var m in found.Modules) Assert.InRange(withSoft.IndexOf(m), 0, withSoft.IndexOf("btrfs") - 1);
        }
    }

    [Fact]
    public void ABlacklistedModuleTakesWhatNeedsItAndWhatOnlyItNeededWithIt()
    {
        using var dir = new TempDir();
        var tree = new KernelModules(ModuleTrees.CopyWithoutDepmod(ModuleTrees.Debian61, dir.Path), ModuleTrees.Debian61);
        var notes = new List<string>();
        // btrfs needs raid6_pq: btrfs goes, and so do xor and zstd_compress, which only it needed;
        // libcrc32c stays because xfs needs it too.
        var list = tree.Resolve(["btrfs", "xfs"], ["raid6-pq"], notes);
        Assert.Equal(["libcrc32c", "xfs"], list.Select(m => m.Name));
        Assert.Contains("raid6_pq is blacklisted: left out, and btrfs with it", notes);
        notes.Clear();
        Assert.Empty(tree.Resolve(["libcrc32c", "xfs"], ["libcrc32c"], notes));
        Assert.Contains("libcrc32c is blacklisted: left out", notes);
        Assert.Contains("libcrc32c is blacklisted: left out, and xfs with it", notes);
        var e = Assert.Throws<IOException>(() => tree.Resolve(["no-such-module"], [], notes));
        Assert.Contains("module no_such_module not found", e.Message);
    }

    [Fact]
    public void ImageFor612WithoutModulesDepHoldsTheModulesInOrder()
    {
        using var dir = new TempDir();
        string root = ModuleTrees.CopyWithoutDepmod(ModuleTrees.Debian612, dir.File("root"));
        File.WriteAllBytes(dir.File("agent"), new byte[100_000]);
        InitramfsReport report;
        using (var f = File.Create(dir.File("img")))
            report = InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = dir.File("agent"), ModulesRoot = root, KernelRelease = ModuleTrees.Debian612,
                Modules = ["virtio_blk", "xfs"], Mtime = 1_700_000_000,
            }, f);
        Assert.Equal(["virtio_blk", "libcrc32c", "xfs"], report.Modules.Select(m => m.Name));
        string x = dir.File("x");
        Directory.CreateDirectory(x);
        var list = Fixtures.Sh($"zstd -dc {dir.File("img")} | cpio -t -v --quiet");
        Assert.Matches(@"(?m)^crw------- .* 5, +1 Nov 14  2023 dev/console$", list);
        Fixtures.Sh($"cd {x} && zstd -dc {dir.File("img")} | cpio -i -d --quiet -f 'dev/*'");
        Assert.Equal(["kernel/drivers/block/virtio_blk.ko.xz", "kernel/lib/libcrc32c.ko.xz", "kernel/fs/xfs/xfs.ko.xz"],
            File.ReadAllLines(Path.Combine(x, "lib", "modules", ModuleTrees.Debian612, InitramfsBuilder.ModuleListName)));
        // Level 19, window pinned to 1 MiB (descriptor byte: exponent 20 - 10, mantissa 0).
        var img = File.ReadAllBytes(dir.File("img"));
        Assert.Equal(10 << 3, img[5]);
    }
}

using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>The ELF .modinfo reader, on synthetic ELF files and on every module of the real trees against depmod.</summary>
public class ModuleInfoTests
{
    private static byte[] Modinfo(params string[] entries) => SyntheticModules.Modinfo(entries);

    [Fact]
    public void ParsesDependsSoftdepNameAndSkipsPadding()
    {
        var info = ModuleInfo.Parse(Modinfo("license=GPL", "", "", "softdep=pre: crc32c-intel crypto-crc32c post: foo", "softdep=pre:bar",
            "depends=virtio,virtio-ring,virtio", "name=virtio_blk", "vermagic=6.1.0 SMP mod_unload modversions "));
        Assert.Equal("virtio_blk", info.Name);
        Assert.Equal(["virtio", "virtio_ring"], info.Depends);
        Assert.Equal(["crc32c_intel", "crypto_crc32c", "bar"], info.SoftdepPre);
        Assert.Equal(["foo"], info.SoftdepPost);
        Assert.StartsWith("6.1.0 SMP", info.Vermagic);
        Assert.Empty(ModuleInfo.Parse(Modinfo("depends=", "name=virtio")).Depends);
        // Aliases are kept as written: modprobe's '-'/'_' equivalence applies when they are matched.
        Assert.Equal(["crypto-crc32c", "crc32c", "cpu:type:x86,ven*fam*mod*:feature:*0094*"],
            ModuleInfo.Parse(Modinfo("alias=crypto-crc32c", "alias=crc32c", "alias=crypto-crc32c", "alias=", "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*")).Aliases);
    }

    private static byte[] Elf(bool is64, bool bigEndian, byte[] modinfo) => SyntheticModules.Elf(is64, bigEndian, modinfo);

    /// <summary>A stream that cannot seek, as a decompressor is.</summary>
    private sealed class ForwardOnly(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void FindsModinfoThroughTheSectionHeaders(bool is64, bool bigEndian)
    {
        // The first bytes of the junk section spell a decoy, so a plain byte search would be fooled.
        var elf = Elf(is64, bigEndian, Modinfo("depends=libcrc32c", "name=xfs"));
        Encoding.ASCII.GetBytes("\0depends=decoy\0").CopyTo(elf, is64 ? 64 : 52);
        int opened = 0;
        foreach (bool seekable in new[] { true, false })
        {
            using var sections = new ElfSections(() => { opened++; return seekable ? new MemoryStream(elf) : new ForwardOnly(elf); });
            var info = ModuleInfo.Parse(sections.Read(".modinfo", 1 << 20));
            Assert.Equal(["libcrc32c"], info.Depends);
            Assert.Equal("xfs", info.Name);
        }
        Assert.Equal(1 + 3, opened);   // seekable: one open; forward-only: header+table, names, .modinfo
        using var none = new ElfSections(() => new MemoryStream(elf));
        Assert.Null(none.Read(".gnu.linkonce.this_module", 1 << 20));
    }

    [Fact]
    public void DamagedFilesFailNamingTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.ko"), "not an elf at all, but long enough to hold an ELF header of 64 bytes..........");
        Assert.Contains("a.ko: not an ELF file", Assert.Throws<IOException>(() => ModuleInfo.Read(dir.File("a.ko"))).Message);
        var elf = Elf(true, false, Modinfo("name=x"));
        File.WriteAllBytes(dir.File("b.ko"), elf[..(elf.Length - 10)]);
        Assert.Contains("b.ko: ELF data", Assert.Throws<IOException>(() => ModuleInfo.Read(dir.File("b.ko"))).Message);
        File.WriteAllBytes(dir.File("c.ko.xz"), [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0, 0, 1, 0x69, 0x22]);
        Assert.Contains("c.ko.xz: xz: the input ends", Assert.Throws<IOException>(() => ModuleInfo.Read(dir.File("c.ko.xz"))).Message);
    }

    [Fact]
    [Trait("Category", "Fixture")]
    public void ReadsTheSameFromEveryCompression()
    {
        string src = Path.Combine(ModuleTrees.ModuleDir(ModuleTrees.Root(ModuleTrees.Debian61), ModuleTrees.Debian61), "kernel", "fs", "btrfs", "btrfs.ko");
        using var dir = new TempDir();
        File.Copy(src, dir.File("btrfs.ko"));
        Fixtures.Sh($"cd {dir.Path} && xz -k --check=crc32 --lzma2=dict=1MiB btrfs.ko && gzip -k -9 btrfs.ko && zstd -q -k -19 btrfs.ko");
        var plain = ModuleInfo.Read(dir.File("btrfs.ko"));
        Assert.Equal("btrfs", plain.Name);
        Assert.Equal(["zstd_compress", "raid6_pq", "xor", "libcrc32c"], plain.Depends);
        Assert.Equal(["blake2b_256", "sha256", "xxhash64", "crypto_crc32c"], plain.SoftdepPre);
        foreach (var ext in new[] { ".xz", ".gz", ".zst" })
        {
            var other = ModuleInfo.Read(dir.File("btrfs.ko" + ext));
            Assert.Equal(plain.Depends, other.Depends);
            Assert.Equal(plain.SoftdepPre, other.SoftdepPre);
            Assert.Equal(plain.Vermagic, other.Vermagic);
        }
    }

    /// <summary>modules.dep as depmod writes it: name -> every module it needs (the transitive closure).</summary>
    private static Dictionary<string, HashSet<string>> DepmodClosures(string moduleDir)
    {
        var result = new Dictionary<string, HashSet<string>>();
        foreach (var line in File.ReadLines(Path.Combine(moduleDir, "modules.dep")))
        {
            int colon = line.IndexOf(':');
            result[NameOf(line[..colon])] = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(NameOf).ToHashSet();
        }
        return result;
    }

    private static string NameOf(string path)
    {
        string f = Path.GetFileName(path);
        return KernelModules.Normalize(f[..f.IndexOf(".ko", StringComparison.Ordinal)]);
    }

    private static HashSet<string> Closure(string name, IReadOnlyDictionary<string, IReadOnlyList<string>> depends)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>(depends[name]);
        while (stack.Count > 0)
        {
            var d = stack.Pop();
            if (seen.Add(d)) foreach (var x in depends[d]) stack.Push(x);
        }
        return seen;
    }

    [Theory]
    [Trait("Category", "Fixture")]
    [InlineData("6.1")]
    [InlineData("6.12")]
    public void EveryModulesDependsAgreesWithDepmod(string series)
    {
        string release = ModuleTrees.Release(series);
        using var dir = new TempDir();
        string root = ModuleTrees.CopyWithoutDepmod(release, dir.Path);
        ModuleTrees.Depmod(root, release);
        string moduleDir = ModuleTrees.ModuleDir(root, release);
        var expected = DepmodClosures(moduleDir);
        var files = Directory.EnumerateFiles(Path.Combine(moduleDir, "kernel"), "*.ko*", SearchOption.AllDirectories).ToList();
        var depends = new System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<string>>();
        Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, f =>
        {
            var info = ModuleInfo.Read(f);
            Assert.Equal(NameOf(f), KernelModules.Normalize(info.Name ?? "?"));
            depends[NameOf(f)] = info.Depends;
        });
        Assert.Equal(expected.Count, depends.Count);
        var snapshot = depends.ToDictionary(p => p.Key, p => p.Value);
        foreach (var (name, closure) in expected)
            Assert.True(closure.SetEquals(Closure(name, snapshot)), $"{name}: depmod says {string.Join(',', closure.Order())}, .modinfo gives {string.Join(',', Closure(name, snapshot).Order())}");
    }
}

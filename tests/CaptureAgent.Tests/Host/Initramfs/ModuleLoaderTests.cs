using CaptureAgent.Boot;
using CaptureAgent.Initramfs;
using Xunit;
using CaptureAgent.Compression;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>
/// Loading modules on kernels that do and do not decompress them: what reaches the kernel (the
/// system calls are recorded by a stand-in that answers like the kernel in question).
/// </summary>
public class ModuleLoaderTests
{
    private const int EINVAL = 22, EOPNOTSUPP = 95, ENOENT = 2, EEXIST = 17;

    /// <summary>A kernel: finit_module with MODULE_INIT_COMPRESSED_FILE answered as the kernel would.</summary>
    private sealed class FakeKernel(int compressedAnswer) : IModuleCalls
    {
        public List<(string Path, int Flags)> Finit { get; } = new();
        public List<byte[]> Init { get; } = new();

        public int FinitModule(string path, int flags)
        {
            if (!File.Exists(path)) return ENOENT;
            Finit.Add((Path.GetFileName(path), flags));
            return flags == ModuleLoader.MODULE_INIT_COMPRESSED_FILE ? compressedAnswer : 0;
        }

        public int InitModule(ReadOnlySpan<byte> image)
        {
            Init.Add(image.ToArray());
            return 0;
        }
    }

    private static (string Dir, Dictionary<string, byte[]> Elf) Modules(TempDir dir, params (string Name, ModuleCodec Codec)[] modules)
    {
        var elf = new Dictionary<string, byte[]>();
        foreach (var (name, codec) in modules)
        {
            var content = SyntheticModules.Module(name, "license=GPL");
            elf[name] = content;
            File.WriteAllBytes(dir.File(name + SyntheticModules.Extension(codec)), SyntheticModules.Compress(content, codec));
        }
        return (dir.Path, elf);
    }

    [Theory]
    [InlineData(ModuleCodec.Xz)]
    [InlineData(ModuleCodec.Gzip)]
    [InlineData(ModuleCodec.Zstd)]
    public void BeforeFiveSeventeenCompressedModulesAreDecompressedHereAndLoadedFromMemory(ModuleCodec codec)
    {
        using var dir = new TempDir();
        var (d, elf) = Modules(dir, ("crc16", codec), ("jbd2", codec), ("plain", ModuleCodec.None));
        var kernel = new FakeKernel(compressedAnswer: EINVAL);
        var warnings = new List<string>();
        string ext = SyntheticModules.Extension(codec);
        using var loader = new ModuleLoader(kernel, "5.10.0-35-amd64", warnings.Add);
        int loaded = loader.LoadAll(d, new ModuleList(["crc16" + ext, "jbd2" + ext, "plain.ko"], null));
        Assert.Equal(3, loaded);
        Assert.Empty(warnings);
        // The compressed flag never reaches a 5.10 kernel; the plain module goes by file descriptor.
        Assert.Equal([("plain.ko", 0)], kernel.Finit);
        Assert.Equal(2, kernel.Init.Count);
        Assert.Equal(elf["crc16"], kernel.Init[0]);
        Assert.Equal(elf["jbd2"], kernel.Init[1]);
        Assert.Equal(2, loader.DecompressedHere);
    }

    [Theory]
    [InlineData(EINVAL)]        // built for another format
    [InlineData(EOPNOTSUPP)]    // no CONFIG_MODULE_DECOMPRESS
    public void ARefusalOfTheFormatSwitchesToDecompressingHereForTheRest(int answer)
    {
        using var dir = new TempDir();
        var (d, elf) = Modules(dir, ("a", ModuleCodec.Xz), ("b", ModuleCodec.Xz), ("c", ModuleCodec.Xz));
        var kernel = new FakeKernel(answer);
        var warnings = new List<string>();
        var infos = new List<string>();
        using var loader = new ModuleLoader(kernel, "6.1.0-41-amd64", warnings.Add, infos.Add);
        Assert.Equal(3, loader.LoadAll(d, new ModuleList(["a.ko.xz", "b.ko.xz", "c.ko.xz"], null)));
        Assert.Equal([("a.ko.xz", ModuleLoader.MODULE_INIT_COMPRESSED_FILE)], kernel.Finit);   // asked once
        Assert.Equal([elf["a"], elf["b"], elf["c"]], kernel.Init);
        Assert.Empty(warnings);
        Assert.Single(infos, i => i.Contains("the kernel does not decompress xz modules") && i.Contains($"(errno {answer})"));
    }

    [Fact]
    public void TheBuildConfigDecidesWithoutAskingAndAWrongOneIsSurvived()
    {
        using var dir = new TempDir();
        var (d, elf) = Modules(dir, ("a", ModuleCodec.Xz), ("b", ModuleCodec.Zstd));
        // The config said xz is the kernel's: it gets the file. zstd is not: decompressed here, even on 6.12.
        var kernel = new FakeKernel(compressedAnswer: 0);
        using (var loader = new ModuleLoader(kernel, "6.12.48+deb13-amd64", _ => { }))
            Assert.Equal(2, loader.LoadAll(d, new ModuleList(["a.ko.xz", "b.ko.zst"], new HashSet<ModuleCodec> { ModuleCodec.Xz })));
        Assert.Equal([("a.ko.xz", ModuleLoader.MODULE_INIT_COMPRESSED_FILE)], kernel.Finit);
        Assert.Equal([elf["b"]], kernel.Init);

        // "none" on a kernel that would take it: nothing is asked of the kernel.
        kernel = new FakeKernel(compressedAnswer: 0);
        using (var loader = new ModuleLoader(kernel, "6.12.48+deb13-amd64", _ => { }))
            Assert.Equal(1, loader.LoadAll(d, new ModuleList(["a.ko.xz"], new HashSet<ModuleCodec>())));
        Assert.Empty(kernel.Finit);

        // The config claimed xz but the kernel refuses: decompressed here all the same.
        kernel = new FakeKernel(compressedAnswer: EINVAL);
        using (var loader = new ModuleLoader(kernel, "6.12.48+deb13-amd64", _ => { }))
            Assert.Equal(1, loader.LoadAll(d, new ModuleList(["a.ko.xz"], new HashSet<ModuleCodec> { ModuleCodec.Xz })));
        Assert.Equal([elf["a"]], kernel.Init);
    }

    [Fact]
    public void MissingDamagedAndOversizedModulesAreNamedWithTheirErrnoAndTheRestLoad()
    {
        using var dir = new TempDir();
        var (d, elf) = Modules(dir, ("good", ModuleCodec.Xz));
        var big = SyntheticModules.Elf(true, false, SyntheticModules.Modinfo("name=big"), textBytes: 20_000);
        File.WriteAllBytes(dir.File("big.ko.gz"), SyntheticModules.Compress(big, ModuleCodec.Gzip));
        var damaged = File.ReadAllBytes(dir.File("good.ko.xz"));
        damaged[damaged.Length / 2] ^= 0x55;
        File.WriteAllBytes(dir.File("damaged.ko.xz"), damaged);
        var kernel = new FakeKernel(compressedAnswer: EINVAL);
        var warnings = new List<string>();
        using var loader = new ModuleLoader(kernel, "5.14.0-427.el9.x86_64", warnings.Add) { MaxModuleBytes = big.Length - 1 };
        int loaded = loader.LoadAll(d, new ModuleList(["missing.ko.xz", "missing.ko", "damaged.ko.xz", "big.ko.gz", "good.ko.xz"], null));
        Assert.Equal(1, loaded);
        Assert.Equal([elf["good"]], kernel.Init);
        Assert.Equal(4, warnings.Count);
        Assert.StartsWith("module missing.ko.xz: not in the initramfs: ", warnings[0]);
        Assert.EndsWith("(errno 2)", warnings[0]);
        Assert.StartsWith("module missing.ko: not in the initramfs: ", warnings[1]);
        Assert.StartsWith("module damaged.ko.xz not loaded: cannot decompress it: ", warnings[2]);
        Assert.EndsWith("(errno 8)", warnings[2]);
        Assert.StartsWith("module big.ko.gz not loaded: larger than ", warnings[3]);
        Assert.EndsWith("(errno 27)", warnings[3]);
        Assert.All(warnings, w => Assert.DoesNotContain('\n', w));
    }

    [Fact]
    public void AModuleTheKernelAlreadyHasIsNoFailure()
    {
        using var dir = new TempDir();
        var (d, _) = Modules(dir, ("dup", ModuleCodec.None));
        var warnings = new List<string>();
        var kernel = new AlreadyLoaded();
        using var loader = new ModuleLoader(kernel, "6.1.0-41-amd64", warnings.Add);
        Assert.Equal(0, loader.LoadAll(d, new ModuleList(["dup.ko"], null)));
        Assert.Empty(warnings);
    }

    private sealed class AlreadyLoaded : IModuleCalls
    {
        public int FinitModule(string path, int flags) => EEXIST;
        public int InitModule(ReadOnlySpan<byte> image) => EEXIST;
    }

    [Theory]
    [InlineData("5.10.0-35-amd64", 5, 10)]
    [InlineData("4.18.0-553.el8_10.x86_64", 4, 18)]
    [InlineData("6.12.48+deb13-amd64", 6, 12)]
    [InlineData("5.17", 5, 17)]
    public void KernelVersionsAreReadFromTheRelease(string release, int major, int minor)
    {
        Assert.Equal((major, minor), ModuleLoader.ParseVersion(release));
    }

    [Fact]
    public void UnreadableReleasesHaveNoVersion()
    {
        Assert.Null(ModuleLoader.ParseVersion("linux"));
        Assert.Null(ModuleLoader.ParseVersion("6.x"));
    }

    [Fact]
    public void TheListCarriesTheConfigsVerdictAndDropsPathsOutsideTheTree()
    {
        var list = new ModuleList(["kernel/fs/ext4/ext4.ko.xz", "kernel/lib/crc16.ko"], new HashSet<ModuleCodec> { ModuleCodec.Xz });
        Assert.Equal("# kernel decompresses: xz\nkernel/fs/ext4/ext4.ko.xz\nkernel/lib/crc16.ko\n", list.Format());
        var back = ModuleList.Parse(list.Format());
        Assert.Equal(list.Paths, back.Paths);
        Assert.Equal([ModuleCodec.Xz], back.KernelDecompresses!);
        Assert.Equal("# kernel decompresses: none\n", new ModuleList([], new HashSet<ModuleCodec>()).Format());
        Assert.Empty(ModuleList.Parse("# kernel decompresses: none\n").KernelDecompresses!);
        // A list of an older agent: no verdict, found out at run time.
        var old = ModuleList.Parse("kernel/a.ko\n\n# comment\n../../etc/shadow.ko\n/abs.ko\nkernel/notamodule.txt\nkernel/b.ko.zst\n");
        Assert.Null(old.KernelDecompresses);
        Assert.Equal(["kernel/a.ko", "kernel/b.ko.zst"], old.Paths);
    }

    [Fact]
    public void KernelConfigsSayWhichFormatTheKernelDecompresses()
    {
        KernelConfig Config(params string[] lines) => KernelConfig.Parse(lines, "test");
        // 5.10 (bullseye, RHEL 9's 5.14): the option does not exist.
        var old = Config("CONFIG_MODULE_COMPRESS=y", "CONFIG_MODULE_COMPRESS_XZ=y", "CONFIG_MODULE_SIG=y");
        Assert.False(old.KernelDecompresses(ModuleCodec.Xz));
        Assert.True(old.KernelDecompresses(ModuleCodec.None));
        // 6.1 bookworm: plain modules.
        Assert.False(Config("CONFIG_MODULE_COMPRESS_NONE=y", "# CONFIG_MODULE_COMPRESS_XZ is not set").KernelDecompresses(ModuleCodec.Xz));
        // 6.12: xz with in-kernel decompression, for xz only.
        var current = Config("CONFIG_MODULE_COMPRESS=y", "# CONFIG_MODULE_COMPRESS_GZIP is not set", "CONFIG_MODULE_COMPRESS_XZ=y",
                             "# CONFIG_MODULE_COMPRESS_ZSTD is not set", "CONFIG_MODULE_COMPRESS_ALL=y", "CONFIG_MODULE_DECOMPRESS=y");
        Assert.True(current.KernelDecompresses(ModuleCodec.Xz));
        Assert.False(current.KernelDecompresses(ModuleCodec.Zstd));
        Assert.False(current.KernelDecompresses(ModuleCodec.Gzip));
        Assert.Equal("y", current.Value("CONFIG_MODULE_COMPRESS_ALL"));
        Assert.Null(current.Value("CONFIG_MODULE_COMPRESS_GZIP"));
    }

    [Fact]
    public void TheConfigIsFoundInBootOrBesideTheModules()
    {
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, "6.12.48+deb13-amd64", usrMerged: true);
        Assert.Null(KernelConfig.Find(dir.Path, tree.Release, tree.Dir));
        File.WriteAllText(Path.Combine(tree.Dir, "config"), "CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_ZSTD=y\n");
        Assert.True(KernelConfig.Find(dir.Path, tree.Release, tree.Dir)!.KernelDecompresses(ModuleCodec.Zstd));
        string boot = tree.Config("CONFIG_MODULE_COMPRESS_XZ=y");
        var found = KernelConfig.Find(dir.Path, tree.Release, tree.Dir)!;
        Assert.Equal(boot, found.Source);
        Assert.False(found.KernelDecompresses(ModuleCodec.Zstd));
    }
}

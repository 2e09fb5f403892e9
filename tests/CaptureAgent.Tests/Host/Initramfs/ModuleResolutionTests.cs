using CaptureAgent.Initramfs;
using Xunit;
using CaptureAgent.Compression;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>
/// Soft dependencies, aliases and merged-/usr trees on synthetic module trees: what Debian's generic
/// kernels (ext4 a module, crc32c behind the crypto-crc32c alias, modules in usr/lib/modules) need.
/// </summary>
public class ModuleResolutionTests
{
    private const string Release = "6.12.48+deb13-amd64";

    private static List<string> Names(IEnumerable<ModuleFile> list) => list.Select(m => m.Name).ToList();

    [Theory]
    [InlineData(ModuleCodec.None)]
    [InlineData(ModuleCodec.Xz)]
    public void Ext4BringsItsCrc32cSoftDependencyThroughTheAliasesOfTheModinfo(ModuleCodec codec)
    {
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, Release, codec, usrMerged: true);
        tree.AddGenericExt4();
        var modules = new KernelModules(dir.Path, Release);
        Assert.Equal(tree.Dir, modules.Directory);
        Assert.False(modules.HasModulesDep);
        Assert.False(modules.HasModulesAlias);
        var notes = new List<string>();
        var list = modules.Resolve(["virtio_blk", "ext4"], [], notes);
        // crc32c (pre:) loads before ext4; its two providers in name order; ext4's hard dependencies first too.
        Assert.Equal(["virtio_blk", "crc16", "crc32c_generic", "crc32c_intel", "jbd2", "mbcache", "ext4"], Names(list));
        Assert.Contains("crc32c is an alias of crc32c_generic crc32c_intel", notes);
        Assert.Contains(notes, n => n.StartsWith("no modules.alias (depmod has not run on this tree)", StringComparison.Ordinal));
        Assert.All(list, m => Assert.Equal(codec, m.Codec));
        Assert.True(File.Exists(Path.Combine(modules.Directory, list[2].RelativePath)));
    }

    [Fact]
    public void DepmodOutputGivesTheSameListAsTheModinfo()
    {
        using var dir = new TempDir();
        var plain = new SyntheticTree(dir.File("plain"), Release);
        plain.AddGenericExt4();
        var depmod = new SyntheticTree(dir.File("depmod"), Release);
        depmod.AddGenericExt4();
        // What depmod writes for that tree (kmod 34): modules.dep, modules.softdep, modules.alias.
        File.WriteAllText(Path.Combine(depmod.Dir, "modules.dep"),
            "kernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\nkernel/fs/jbd2/jbd2.ko:\n" +
            "kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n" +
            "kernel/crypto/crc32c_generic.ko:\nkernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/drivers/block/virtio_blk.ko:\n");
        File.WriteAllText(Path.Combine(depmod.Dir, "modules.softdep"), "# Soft dependencies extracted from modules themselves.\nsoftdep ext4 pre: crc32c\n");
        File.WriteAllText(Path.Combine(depmod.Dir, "modules.alias"),
            "# Aliases extracted from modules themselves.\nalias crypto-crc32c-intel crc32c_intel\nalias crypto-crc32c crc32c_intel\nalias crc32c crc32c_intel\n" +
            "alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n" +
            "alias fs-ext4 ext4\nalias virtio:d00000002v* virtio_blk\n");
        var a = new KernelModules(plain.Root, Release);
        var b = new KernelModules(depmod.Root, Release);
        Assert.True(b.HasModulesDep);
        Assert.True(b.HasModulesAlias);
        foreach (var request in new[] { new[] { "ext4" }, ["virtio_blk", "ext4"], ["fs-ext4"], ["crypto-crc32c", "virtio-blk"] })
        {
            var notesA = new List<string>();
            var notesB = new List<string>();
            Assert.Equal(b.Resolve(request, [], notesB), a.Resolve(request, [], notesA));
        }
        // A device alias (a shell pattern in modules.alias) resolves too.
        Assert.Equal(["virtio_blk"], b.Lookup("virtio:d00000002v00001AF4")!.Modules);
        Assert.Equal(["virtio_blk"], a.Lookup("virtio:d00000002v00001AF4")!.Modules);
    }

    [Fact]
    public void AnAliasAnsweredByABuiltinModuleAddsNothing()
    {
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, Release);
        tree.AddGenericExt4();
        File.Delete(Path.Combine(tree.Dir, "kernel/crypto/crc32c_generic.ko"));
        tree.AddBuiltin("crypto", "crc32c_generic", "alias=crypto-crc32c", "alias=crc32c");
        var notes = new List<string>();
        Assert.Equal(["crc16", "jbd2", "mbcache", "ext4"], Names(new KernelModules(dir.Path, Release).Resolve(["ext4"], [], notes)));
        Assert.Contains("crc32c is built into the kernel (crc32c_generic)", notes);
    }

    [Fact]
    public void ABuiltinFilesystemStillGetsItsModularSoftDependency()
    {
        // The cloud flavour: ext4 built in, its softdep in modules.builtin.modinfo, crc32c a module.
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, Release);
        tree.Add("crypto", "crc32c_generic", "alias=crypto-crc32c", "alias=crc32c");
        tree.AddBuiltin("fs/ext4", "ext4", "softdep=pre: crypto-crc32c", "alias=fs-ext4");
        var notes = new List<string>();
        Assert.Equal(["crc32c_generic"], Names(new KernelModules(dir.Path, Release).Resolve(["ext4"], [], notes)));
        Assert.Contains("ext4 is built into the kernel", notes);
        Assert.Contains("crypto_crc32c is an alias of crc32c_generic", notes);
    }

    [Fact]
    public void PostSoftDependenciesLoadAfterAndMissingOrBlacklistedOnesAreLeftOutWithANote()
    {
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, Release);
        tree.Add("a", "zz_first", "softdep=post: aa_after pre: no-such-thing sha256");
        tree.Add("a", "aa_after", "softdep=post: zz_first");   // contradicts zz_first's post: (a cycle): the first edge recorded stays
        tree.Add("crypto", "sha256_generic", "alias=sha256", "alias=crypto-sha256");
        var modules = new KernelModules(dir.Path, Release);
        var notes = new List<string>();
        Assert.Equal(["sha256_generic", "zz_first", "aa_after"], Names(modules.Resolve(["zz_first"], [], notes)));
        Assert.Contains("no_such_thing (soft dependency of zz_first) is neither a module nor an alias in " + Release + ": left out", notes);

        notes.Clear();
        Assert.Equal(["zz_first"], Names(modules.Resolve(["zz_first"], ["aa-after", "sha256_generic"], notes)));
        Assert.Contains("aa_after (soft dependency of zz_first) is blacklisted: left out", notes);
        Assert.Contains("sha256_generic (soft dependency of zz_first) is blacklisted: left out", notes);
    }

    [Fact]
    public void LibModulesIsPreferredAndAMissingTreeNamesBothPlaces()
    {
        using var dir = new TempDir();
        var usr = new SyntheticTree(dir.Path, Release, usrMerged: true);
        usr.Add("fs", "only_in_usr");
        Assert.Equal(usr.Dir, KernelModules.FindDirectory(dir.Path, Release));
        var lib = new SyntheticTree(dir.Path, Release);
        lib.Add("fs", "only_in_lib");
        Assert.Equal(lib.Dir, KernelModules.FindDirectory(dir.Path, Release));
        Assert.True(new KernelModules(dir.Path, Release).Exists("only_in_lib"));
        var e = Assert.Throws<IOException>(() => new KernelModules(dir.Path, "5.10.0-99-amd64"));
        Assert.Contains("lib/modules/5.10.0-99-amd64 or ", e.Message);
        Assert.Contains("usr/lib/modules/5.10.0-99-amd64", e.Message);
    }

    [Fact]
    public void AWantedAliasThatNothingAnswersFailsNamingIt()
    {
        using var dir = new TempDir();
        new SyntheticTree(dir.Path, Release).AddGenericExt4();
        var e = Assert.Throws<IOException>(() => new KernelModules(dir.Path, Release).Resolve(["crypto-nothing"], [], []));
        Assert.Contains("module crypto_nothing not found", e.Message);
    }

    [Fact]
    public void AnAliasOfTooManyModulesIsANoteForASoftDependencyAndAnErrorForAWantedOne()
    {
        using var dir = new TempDir();
        var tree = new SyntheticTree(dir.Path, Release);
        for (int i = 0; i <= KernelModules.MaxProviders; i++) tree.Add("drivers/net", $"nic{i}", "alias=pci:v00008086d*");
        tree.Add("fs", "user_of_nics", "softdep=pre: pci:v00008086d00001521");
        var modules = new KernelModules(dir.Path, Release);
        var notes = new List<string>();
        Assert.Equal(["user_of_nics"], Names(modules.Resolve(["user_of_nics"], [], notes)));
        Assert.Contains(notes, n => n.StartsWith("pci:v00008086d00001521 (soft dependency of user_of_nics): ", StringComparison.Ordinal)
                                    && n.Contains($"is an alias of {KernelModules.MaxProviders + 1} modules") && n.EndsWith(": left out", StringComparison.Ordinal));
        Assert.Contains("name the module to load", Assert.Throws<IOException>(() => modules.Resolve(["pci:v00008086d00001521"], [], [])).Message);
    }

    [Theory]
    [InlineData("crypto_crc32c", "crypto_crc32c", true)]
    [InlineData("virtio:d00000002v*", "virtio:d00000002v00001AF4", true)]
    [InlineData("cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod0055:feature:,0001,0094,00A0", true)]
    [InlineData("cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod0055:feature:,0001,0095", false)]
    [InlineData("pci:v00008086d0000[12]5*", "pci:v00008086d00001521", true)]
    [InlineData("pci:v00008086d0000[!12]5*", "pci:v00008086d00001521", false)]
    [InlineData("pci:v00008086d0000[0-3]?21", "pci:v00008086d00002921", true)]
    [InlineData("a*b*c", "abxbxc", true)]
    [InlineData("a*b*c", "abxbx", false)]
    public void AliasPatternsMatchLikeFnmatch(string pattern, string name, bool matches)
    {
        Assert.Equal(matches, AliasTable.Glob(pattern, name));
    }

    [Fact]
    public void DashesAndUnderscoresAreAlikeOutsideBrackets()
    {
        Assert.Equal("crypto_crc32c_[a-z]", AliasTable.NormalizeAlias("crypto-crc32c-[a-z]"));
        var t = new AliasTable();
        t.Add("crypto-crc32c", "crc32c-generic");
        Assert.Equal(["crc32c_generic"], t.Match("crypto_crc32c"));
    }
}

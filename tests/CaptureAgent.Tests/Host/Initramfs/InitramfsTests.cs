using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Host.Initramfs;

public class InitramfsTests
{
    [Fact]
    public void CpioIsReadBackByTheRealCpioTool()
    {
        using var dir = new TempDir();
        using (var f = File.Create(dir.File("a.cpio")))
        using (var w = new CpioNewcWriter(f))
        {
            w.WriteDirectory("etc");
            w.WriteFile("etc/hello.txt", 0x180, "hello\n"u8);
            w.WriteFile("init", 0x1ed, new MemoryStream(new byte[70_001]));
            w.WriteSymlink("sbin", "bin");
            w.WriteCharDevice("dev/console", 0x180, 5, 1);
        }
        var list = Fixtures.Sh($"cpio -t -v --quiet < {dir.File("a.cpio")}");
        Assert.Matches(@"-rw------- .* 6 .* etc/hello.txt", list);
        Assert.Matches(@"-rwxr-xr-x .* 70001 .* init", list);
        Assert.Matches(@"crw------- .* 5, +1 .* dev/console", list);
        Assert.Matches(@"lrwxrwxrwx .* sbin -> bin", list);
        Directory.CreateDirectory(dir.File("x"));
        Fixtures.Sh($"cd {dir.File("x")} && cpio -i -d --quiet --no-absolute-filenames < {dir.File("a.cpio")} 2>/dev/null || true");
        Assert.Equal("hello\n", File.ReadAllText(Path.Combine(dir.File("x"), "etc", "hello.txt")));
        Assert.Equal(70_001, new FileInfo(Path.Combine(dir.File("x"), "init")).Length);
        Assert.Equal(0, new FileInfo(dir.File("a.cpio")).Length % 512);
    }

    [Fact]
    [Trait("Category", "Fixture")]
    public void ModinfoAndModulesDepGiveTheSameLoadOrder()
    {
        string release = ModuleTrees.Debian61;
        using var dir = new TempDir();
        // A copy of just the virtio and block drivers, without modules.dep.
        string src = Path.Combine(ModuleTrees.Root(release), "lib", "modules", release), dst = Path.Combine(dir.Path, "lib", "modules", release);
        foreach (var sub in new[] { "kernel/drivers/virtio", "kernel/drivers/block" })
            Fixtures.Sh($"mkdir -p {dst}/{sub} && cp -r {src}/{sub}/. {dst}/{sub}/");
        File.Copy(Path.Combine(src, "modules.builtin"), Path.Combine(dst, "modules.builtin"));
        var notes = new List<string>();
        var fromModinfo = new KernelModules(dir.Path, release).Resolve(["virtio_pci", "virtio-blk"], [], notes);
        Fixtures.Sh($"/usr/sbin/depmod -b {dir.Path} {release}");
        var tree = new KernelModules(dir.Path, release);
        Assert.True(tree.HasModulesDep);
        var fromDep = tree.Resolve(["virtio_pci", "virtio-blk"], [], notes);
        // Both are valid load orders (the two sources list dependencies in different orders).
        Assert.Equal(fromDep.Select(m => m.Name).Order(), fromModinfo.Select(m => m.Name).Order());
        foreach (var names in new[] { fromDep.Select(m => m.Name).ToList(), fromModinfo.Select(m => m.Name).ToList() })
        {
            Assert.Equal(6, names.Count);
            Assert.Equal("virtio_blk", names[^1]);
            Assert.True(names.IndexOf("virtio_ring") < names.IndexOf("virtio"));
            foreach (var dep in new[] { "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev" })
                Assert.True(names.IndexOf(dep) < names.IndexOf("virtio_pci"), $"{dep} after virtio_pci in {string.Join(' ', names)}");
        }

        var blacklisted = new KernelModules(dir.Path, release).Resolve(["virtio_blk"], ["virtio"], notes);
        Assert.DoesNotContain(blacklisted, m => m.Name is "virtio" or "virtio_blk");
        Assert.Contains(notes, n => n.Contains("virtio is blacklisted") && n.Contains("virtio_blk"));
        Assert.Throws<IOException>(() => new KernelModules(dir.Path, release).Resolve(["no_such_module"], [], notes));
    }

    [Fact]
    [Trait("Category", "Fixture")]
    public void ImageForA612TargetKeepsXzModulesInDependencyOrderAndHasAConsole()
    {
        string release = ModuleTrees.Debian612;
        using var dir = new TempDir();
        // depmod runs on a copy: the cached tree stays as dpkg -x left it, as on a fresh machine.
        string root = ModuleTrees.CopyWithoutDepmod(release, dir.File("root"));
        ModuleTrees.Depmod(root, release);
        // The package's /boot/config tells the builder whether the kernel decompresses modules itself.
        Directory.CreateDirectory(Path.Combine(root, "boot"));
        File.Copy(Path.Combine(ModuleTrees.Root(release), "boot", $"config-{release}"), Path.Combine(root, "boot", $"config-{release}"));
        File.WriteAllText(dir.File("agent"), "#!/bin/sh\n");
        File.WriteAllText(dir.File("conf"), "target = LABEL=dumps\n");
        InitramfsReport report;
        using (var f = File.Create(dir.File("img")))
            report = InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = dir.File("agent"), ConfigPath = dir.File("conf"), ModulesRoot = root, KernelRelease = release,
                Modules = ["virtio_pci", "virtio_blk", "xfs"],
            }, f);
        Assert.Contains(report.Notes, n => n == "virtio_pci is built into the kernel");
        Assert.Equal(["virtio_blk", "libcrc32c", "xfs"], report.Modules.Select(m => m.Name));
        Assert.All(report.Modules, m => Assert.True(m.Compressed));
        Assert.Equal(new FileInfo(dir.File("img")).Length, report.CompressedBytes);
        var list = Fixtures.Sh($"zstd -dc {dir.File("img")} | cpio -t -v --quiet");
        Assert.Matches(@"crw------- .* 5, +1 .* dev/console", list);
        Assert.Matches(@"-rwxr-xr-x .* init", list);
        Assert.Contains("etc/capture-agent.conf", list);
        Assert.Contains($"lib/modules/{release}/kernel/fs/xfs/xfs.ko.xz", list);
        var order = Fixtures.Sh($"zstd -dc {dir.File("img")} | (cd {dir.Path} && cpio -i -d --quiet lib/modules/{release}/capture-agent.modules) && cat {dir.Path}/lib/modules/{release}/capture-agent.modules");
        // The release's /boot/config says CONFIG_MODULE_DECOMPRESS with xz: the kernel takes the files as they are.
        Assert.Equal("# kernel decompresses: xz\nkernel/drivers/block/virtio_blk.ko.xz\nkernel/lib/libcrc32c.ko.xz\nkernel/fs/xfs/xfs.ko.xz\n", order);
    }
}

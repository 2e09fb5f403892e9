using CaptureAgent.Cli;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>Whole capture images for the real Debian 6.12 tree, unpacked again by the zstd/gzip CLIs and GNU cpio.</summary>
[Trait("Category", "Fixture")]
public class InitramfsImageTests
{
    private static string Release => ModuleTrees.Debian612;

    /// <summary>A 6.12 tree copy with depmod's modules.dep (so the build does not depend on the cache's state).</summary>
    private static string TreeWithDepmod(TempDir dir)
    {
        string root = ModuleTrees.CopyWithoutDepmod(Release, dir.File("root"));
        ModuleTrees.Depmod(root, Release);
        return root;
    }

    private static string Decompressor(ImageCompression c) => c switch
    {
        ImageCompression.Zstd => "zstd -dc",
        ImageCompression.Gzip => "gzip -dc",
        _ => "cat",
    };

    [Theory]
    [InlineData(ImageCompression.Zstd)]
    [InlineData(ImageCompression.Gzip)]
    [InlineData(ImageCompression.None)]
    public void ImageWithVirtioBlkAndXfsUnpacksWithTheRealTools(ImageCompression compression)
    {
        using var dir = new TempDir();
        string root = TreeWithDepmod(dir);
        string moduleDir = ModuleTrees.ModuleDir(root, Release);
        var agent = new byte[1_234_567];
        new Random(2).NextBytes(agent);
        File.WriteAllBytes(dir.File("agent"), agent);
        File.WriteAllText(dir.File("conf"), "target = LABEL=dumps\n");
        InitramfsReport report;
        using (var f = File.Create(dir.File("img")))
            report = InitramfsBuilder.Build(new InitramfsSpec
            {
                AgentPath = dir.File("agent"), ConfigPath = dir.File("conf"), ModulesRoot = root, KernelRelease = Release,
                Modules = ["virtio_pci", "virtio-blk", "xfs"], Compression = compression,
            }, f);

        Assert.Equal(new FileInfo(dir.File("img")).Length, report.CompressedBytes);
        Assert.Contains(report.Notes, n => n.Contains("virtio_pci") && n.Contains("built into the kernel"));
        Assert.Equal(["virtio_blk", "libcrc32c", "xfs"], report.Modules.Select(m => m.Name));
        Assert.All(report.Modules, m => Assert.True(m.Compressed && m.RelativePath.EndsWith(".ko.xz", StringComparison.Ordinal)));

        string unpack = $"{Decompressor(compression)} {dir.File("img")}";
        var list = Fixtures.Sh($"{unpack} | cpio -t -v --quiet --numeric-uid-gid");
        Assert.Matches(@"(?m)^crw------- +1 0 +0 +5, +1 .* dev/console$", list);
        Assert.Matches(@"(?m)^-rwxr-xr-x +1 0 +0 +1234567 .* init$", list);
        Assert.Matches(@"(?m)^-rw------- .* etc/capture-agent\.conf$", list);
        foreach (var d in new[] { "proc", "sys", "dev", "mnt", "tmp", "run" })
            Assert.Matches($@"(?m)^drwxr-xr-x .* {d}$", list);
        foreach (var m in report.Modules)
            Assert.Contains($"lib/modules/{Release}/{m.RelativePath}", list);

        // Unpack (not the device node) and compare: the agent, the config, each module kept as it was.
        string x = dir.File("x");
        Directory.CreateDirectory(x);
        Fixtures.Sh($"cd {x} && {unpack} | cpio -i -d --quiet -f 'dev/*'");
        Assert.Equal(agent, File.ReadAllBytes(Path.Combine(x, "init")));
        Assert.Equal("target = LABEL=dumps\n", File.ReadAllText(Path.Combine(x, "etc", "capture-agent.conf")));
        foreach (var m in report.Modules)
            Assert.Equal(File.ReadAllBytes(Path.Combine(moduleDir, m.RelativePath)), File.ReadAllBytes(Path.Combine(x, "lib", "modules", Release, m.RelativePath)));

        // The load list: one path per line, and every dependency depmod knows comes before its user.
        var order = File.ReadAllLines(Path.Combine(x, "lib", "modules", Release, InitramfsBuilder.ModuleListName));
        Assert.Equal(report.Modules.Select(m => m.RelativePath), order);
        var dep = File.ReadLines(Path.Combine(moduleDir, "modules.dep")).Select(l => l.Split(':')).ToDictionary(p => p[0], p => p[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        for (int i = 0; i < order.Length; i++)
            foreach (var needed in dep[order[i]])
                Assert.True(Array.IndexOf(order, needed) is >= 0 and var at && at < i, $"{needed} must be loaded before {order[i]}");
    }

    [Fact]
    public void ZstdImageIsOneFrameWhoseWindowTheKernelAccepts()
    {
        using var dir = new TempDir();
        var agent = new byte[20 << 20];   // more than any window, so the frame states one
        new Random(3).NextBytes(agent.AsSpan(0, 1 << 20));
        File.WriteAllBytes(dir.File("agent"), agent);
        using (var f = File.Create(dir.File("img")))
            InitramfsBuilder.Build(new InitramfsSpec { AgentPath = dir.File("agent"), KernelRelease = Release }, f);
        var img = File.ReadAllBytes(dir.File("img"));
        Assert.Equal([0x28, 0xB5, 0x2F, 0xFD], img[..4]);
        byte descriptor = img[4];
        bool singleSegment = (descriptor & 0x20) != 0;
        Assert.False(singleSegment, "a streamed frame carries a window descriptor");
        int windowByte = img[5];
        long window = (1L << (10 + (windowByte >> 3))) * (8 + (windowByte & 7)) / 8;
        // lib/decompress_unzstd.c allocates the frame's window; 2^27 is the most we allow ourselves.
        Assert.InRange(window, 1 << 10, 1 << 27);
        Fixtures.Sh($"zstd -t -q {dir.File("img")}");
        Assert.Contains("Frames", Fixtures.Sh($"zstd -lv {dir.File("img")} 2>&1 || true"));
    }

    [Fact]
    public void CommandWritesA0600ImageThroughATemporaryFileAndRefusesBadArguments()
    {
        using var dir = new TempDir();
        string root = TreeWithDepmod(dir);
        File.WriteAllBytes(dir.File("agent"), new byte[4096]);
        string output = dir.File("capture.img");
        File.WriteAllText(output, "an older image");
        int rc = InitramfsCommand.Run(["build", "-o", output, "--kernel-version", Release, "--modules-root", root,
            "--agent", dir.File("agent"), "--module", "virtio_blk", "--blacklist", "libcrc32c", "--module", "xfs", "--compress", "gzip"]);
        Assert.Equal(ExitCodes.Ok, rc);
        Assert.False(File.Exists(output + ".tmp"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output));
        var list = Fixtures.Sh($"gzip -dc {output} | cpio -t --quiet");
        Assert.Contains($"lib/modules/{Release}/kernel/drivers/block/virtio_blk.ko.xz", list);
        Assert.DoesNotContain("xfs.ko", list);   // its dependency is blacklisted, so xfs is left out too
        Assert.DoesNotContain("libcrc32c", list);

        Assert.Equal(ExitCodes.Usage, InitramfsCommand.Run([]));
        Assert.Equal(ExitCodes.Usage, InitramfsCommand.Run(["build", "-o", output, "--kernel-version", Release, "--compress", "lzma"]));
        Assert.Equal(ExitCodes.Usage, InitramfsCommand.Run(["build", "-o", output, "--kernel-version", Release, "--frobnicate"]));
        Assert.Equal(ExitCodes.Usage, InitramfsCommand.Run(["build", "--kernel-version", Release]));
        Assert.Equal(ExitCodes.Failed, InitramfsCommand.Run(["build", "-o", output, "--kernel-version", Release, "--modules-root", root,
            "--agent", dir.File("agent"), "--module", "no_such_module"]));
    }
}

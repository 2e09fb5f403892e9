using System.IO.Compression;
using CaptureAgent.Initramfs;
using CaptureAgent.Sizing;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Sizing;

/// <summary>Reading an initramfs the way the kernel unpacks it: sizes, modules, config, compression.</summary>
public class InitramfsScanTests
{
    private static byte[] Random(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Files of known sizes, a zstd module whose ELF size is known, and the agent config.</summary>
    private static (byte[] Module, byte[] Init) WriteTree(Stream output)
    {
        var init = Random(100_001, 1);
        var module = Random(50_000, 2);
        using var w = new CpioNewcWriter(output, leaveOpen: true);
        w.WriteDirectory("etc");
        w.WriteDirectory("lib/modules/6.1.0-x/kernel", 0x1ed);
        w.WriteCharDevice("dev/console", 0x180, 5, 1);
        w.WriteFile("init", 0x1ed, init);
        w.WriteFile("etc/capture-agent.conf", 0x180, "target = LABEL=crashdump\npath = /var/crash\n"u8);
        var zst = new MemoryStream();
        using (var z = new ZstdSharp.CompressionStream(zst, 3, leaveOpen: true)) z.Write(module);
        w.WriteFile("lib/modules/6.1.0-x/kernel/virtio_blk.ko.zst", 0x1a4, zst.ToArray());
        w.WriteFile("lib/modules/6.1.0-x/kernel/plain.ko", 0x1a4, Random(4097, 3));
        w.Finish();
        return (module, init);
    }

    [Fact]
    public void ZstdImageSizesModulesAndConfig()
    {
        using var dir = new TempDir();
        string image = dir.File("img");
        var cpio = new MemoryStream();
        var (module, init) = WriteTree(cpio);
        using (var f = File.Create(image))
        using (var z = new ZstdSharp.CompressionStream(f, 19))
        {
            z.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_windowLog, 23);
            z.Write(cpio.ToArray());
        }
        var facts = InitramfsScan.Scan(image);
        Assert.Equal("zstd", facts.Compression);
        Assert.Equal(new FileInfo(image).Length, facts.CompressedBytes);
        Assert.Equal(init.Length, facts.InitBytes);
        Assert.Equal(7, facts.Entries);   // etc, lib/modules/..., dev/console, init, conf, two modules
        Assert.Equal(2, facts.Modules.Count);
        var zst = facts.Modules.Single(m => m.Path.EndsWith(".ko.zst"));
        Assert.True(module.Length == zst.ElfBytes, string.Join("; ", facts.Notes));
        Assert.True(zst.StoredBytes > module.Length);   // random data does not compress
        Assert.Equal(4097, facts.Modules.Single(m => m.Path.EndsWith("plain.ko")).ElfBytes);
        Assert.Contains("LABEL=crashdump", facts.AgentConfig);
        // Page-rounded data of the 5 regular files + 1 KiB per entry.
        long data = SizeText.RoundUp(init.Length, 4096) + 4096 + SizeText.RoundUp(zst.StoredBytes, 4096) + 8192;
        Assert.Equal(data + 7 * 1024, facts.UnpackedBytes);
        // The window the frame header asks for, plus the decoder's slack.
        Assert.InRange(facts.DecompressorBytes, 128 << 10, (8 << 20) + (256 << 10));
    }

    [Fact]
    public void EarlyUncompressedArchiveFollowedByGzip()
    {
        using var dir = new TempDir();
        string image = dir.File("img");
        using (var f = File.Create(image))
        {
            // The early microcode archive comes first, uncompressed, as initramfs-tools writes it.
            using (var early = new CpioNewcWriter(f, leaveOpen: true))
            {
                early.WriteDirectory("kernel/x86/microcode");
                early.WriteFile("kernel/x86/microcode/GenuineIntel.bin", 0x1a4, Random(10_000, 4));
                early.Finish();
            }
            var cpio = new MemoryStream();
            WriteTree(cpio);
            using var gz = new GZipStream(f, CompressionLevel.Fastest, leaveOpen: true);
            gz.Write(cpio.ToArray());
        }
        var facts = InitramfsScan.Scan(image);
        Assert.Equal("gzip", facts.Compression);
        Assert.Equal(9, facts.Entries);
        Assert.Equal(2, facts.Modules.Count);
        Assert.Equal(64 << 10, facts.DecompressorBytes);
    }

    [Fact]
    public void UncompressedImageHasNoDecompressor()
    {
        using var dir = new TempDir();
        string image = dir.File("img");
        using (var f = File.Create(image)) WriteTree(f);
        var facts = InitramfsScan.Scan(image);
        Assert.Equal("none", facts.Compression);
        Assert.Equal(0, facts.DecompressorBytes);
        Assert.Equal(7, facts.Entries);
    }

    [Fact]
    public void BuilderImageAgreesWithItsOwnReport()
    {
        // The project's own builder reports the archive size; the scan must see the same entries.
        using var dir = new TempDir();
        string agent = dir.File("agent");
        File.WriteAllBytes(agent, Random(300_000, 5));
        string conf = dir.File("conf");
        File.WriteAllText(conf, "target = UUID=0b7c4f3e-8d2a-4c55-9f1e-2a6b7c8d9e0f\n");
        string image = dir.File("img");
        InitramfsReport report;
        using (var f = File.Create(image)) report = InitramfsBuilder.Build(new InitramfsSpec { AgentPath = agent, ConfigPath = conf, KernelRelease = "6.1.0-x" }, f);
        var facts = InitramfsScan.Scan(image);
        Assert.Equal(report.CompressedBytes, facts.CompressedBytes);
        Assert.Equal(300_000, facts.InitBytes);
        Assert.Contains("UUID=0b7c4f3e", facts.AgentConfig);
        // The builder pins a 1 MiB zstd window: that is what the kernel must allocate.
        Assert.Equal((1L << 20) + (256 << 10), facts.DecompressorBytes);
    }

    [Theory]
    [InlineData(new byte[] { 0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x68 }, 8L << 20)]        // windowLog 23, mantissa 0
    [InlineData(new byte[] { 0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x6c }, (8L << 20) + (4L << 20))]   // mantissa 4: +4/8
    [InlineData(new byte[] { 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x7f }, 0x7fL)]          // single segment, 1-byte content size
    public void ZstdWindowFromTheFrameHeader(byte[] head, long window) =>
        Assert.Equal(window, InitramfsScan.ZstdWindow(head));

    [Fact]
    public void DamagedArchiveFailsWithAClearError()
    {
        using var dir = new TempDir();
        string image = dir.File("img");
        File.WriteAllBytes(image, "070701zzzzzzzz"u8.ToArray().Concat(new byte[200]).ToArray());
        var e = Assert.ThrowsAny<Exception>(() => InitramfsScan.Scan(image));
        Assert.True(e is InvalidDataException or EndOfStreamException, e.GetType().Name);
    }
}

using System.Buffers.Binary;
using CaptureAgent.Initramfs;
using CaptureAgent.Sizing;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Sizing;

/// <summary>The estimate's terms come from the inputs; the reservation is read from /sys and /proc/iomem.</summary>
public class CrashkernelEstimateTests
{
    /// <summary>A file with a bzImage setup header (boot protocol 2.15) claiming the given init_size.</summary>
    public static string FakeBzImage(TempDir dir, uint initSize)
    {
        var h = new byte[0x400];
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(0x202), 0x53726448);   // "HdrS"
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(0x206), 0x020f);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(0x260), initSize);
        string path = dir.File("vmlinuz");
        File.WriteAllBytes(path, h);
        return path;
    }

    private static string Image(TempDir dir, int agentBytes)
    {
        string agent = dir.File("agent");
        File.WriteAllBytes(agent, new byte[agentBytes]);
        string image = dir.File("capture.img");
        using var f = File.Create(image);
        InitramfsBuilder.Build(new InitramfsSpec { AgentPath = agent, KernelRelease = "6.1.0-x" }, f);
        return image;
    }

    [Fact]
    public void TheLargerPhasePlusMemmapRoundsToFourMiB()
    {
        using var dir = new TempDir();
        string kernel = FakeBzImage(dir, 53_968_896);   // Debian 6.1 cloud's init_size
        string image = Image(dir, 8 << 20);
        var est = CrashkernelEstimate.Compute(kernel, image, 4L << 30, ramRanges: 3);
        long Term(string name) => est.Terms.Single(t => t.Name == name).Bytes;
        Assert.Equal(53_968_896, Term("kernel image"));
        Assert.Equal(new FileInfo(image).Length, Term("initramfs image"));
        Assert.True(Term("initramfs unpacked") >= 8 << 20);
        // The agent's binary is part of its RSS and already counted in rootfs: its size (8 MiB here),
        // half the peak at most, is taken off.
        Assert.Equal(CrashkernelEstimate.AgentPeakBytes - Math.Min(8L << 20, CrashkernelEstimate.AgentPeakBytes / 2), Term("capture agent"));
        // 4 GiB = 32 sections of 8 B, plus 3 ranges of ELF program headers twice.
        Assert.Equal(32 * 8 + 2 * 3 * 56, Term("crashed RAM"));
        // Boot: what is held while unpacking; capture: what is held while saving. The compressed
        // image and the decompressor are gone by the capture, the agent is not there at boot.
        Assert.Equal(Term("kernel image") + Term("initramfs image") + Term("initramfs unpacked") + Term("initramfs decompressor") + Term("boot runtime"),
                     est.BootBytes);
        Assert.Equal(Term("kernel image") + Term("initramfs unpacked") + Term("kernel modules") + Term("capture agent") + Term("kernel runtime")
                     + Term("write-back") + Term("crashed RAM"), est.CaptureBytes);
        long peak = Math.Max(est.BootBytes, est.CaptureBytes);
        long memmap = Term("memmap");
        Assert.InRange(memmap, peak / 64, peak / 63 + 1);
        Assert.Equal(peak + memmap, est.SumBytes);
        Assert.Equal(0, est.RecommendedBytes % (4 << 20));
        Assert.InRange(est.RecommendedBytes - est.SumBytes, 0, (4 << 20) - 1);
        Assert.Equal(est.RecommendedBytes - est.SumBytes, est.MarginBytes);
        Assert.Equal($"{est.RecommendedBytes >> 20}M", est.Recommended);
        // What to reserve keeps the measured recommendation's margin over the floor.
        Assert.Equal(CrashkernelEstimate.WithMargin(est.RecommendedBytes), est.ReserveBytes);
        Assert.Equal(96L << 20, CrashkernelEstimate.WithMargin(80L << 20));
        Assert.Equal(128L << 20, CrashkernelEstimate.WithMargin(96L << 20));   // 96 + 19.2, in 16 MiB steps
        // An 8 MiB window (the old pinned one) would cost 7 MiB more at boot than the builder's 1 MiB.
        Assert.Equal((1 << 20) + (256 << 10), Term("initramfs decompressor"));
    }

    [Fact]
    public void MoreRamOnlyGrowsTheRamTerm()
    {
        using var dir = new TempDir();
        string kernel = FakeBzImage(dir, 40 << 20);
        var small = CrashkernelEstimate.Compute(kernel, null, 1L << 30);
        var huge = CrashkernelEstimate.Compute(kernel, null, 64L << 40);
        long ram(CrashkernelEstimateResult r) => r.Terms.Single(t => t.Name == "crashed RAM").Bytes;
        Assert.Equal(8L * 524288 + 2 * 8 * 56, ram(huge));   // 64 TiB / 128 MiB sections
        Assert.Equal(ram(huge) - ram(small), huge.CaptureBytes - small.CaptureBytes);
        Assert.Equal(small.BootBytes, huge.BootBytes);
        Assert.True(huge.SumBytes - small.SumBytes < (5 << 20));
        Assert.Contains(small.Notes, n => n.Contains("no capture initramfs"));
    }

    [Fact]
    public void KernelWithoutSetupHeaderIsGuessedAndSaidSo()
    {
        using var dir = new TempDir();
        string kernel = dir.File("vmlinux");
        File.WriteAllBytes(kernel, new byte[1 << 20]);
        var est = CrashkernelEstimate.Compute(kernel, null, 1L << 30);
        Assert.Equal(4L << 20, est.Terms.Single(t => t.Name == "kernel image").Bytes);
        Assert.Contains(est.Notes, n => n.Contains("guess"));
    }

    [Fact]
    public void ReservationFromSysfsAndIomem()
    {
        using var dir = new TempDir();
        string sys = dir.File("sys"), proc = dir.File("proc");
        Directory.CreateDirectory(Path.Combine(sys, "kernel"));
        Directory.CreateDirectory(proc);
        File.WriteAllText(Path.Combine(sys, "kernel/kexec_crash_size"), "268435456\n");
        File.WriteAllText(Path.Combine(proc, "iomem"), """
            00000000-00000fff : Reserved
            00001000-0009fbff : System RAM
            00100000-3ffdbfff : System RAM
              02000000-02e01fff : Kernel code
              2f000000-3effffff : Crash kernel
            3ffdc000-3fffffff : Reserved
            100000000-13fffffff : System RAM
            """);
        var r = CrashkernelEstimate.ReadReservation(sys, proc);
        Assert.Equal(256L << 20, r.Bytes);
        Assert.Equal(256L << 20, r.IomemBytes);
        Assert.Single(r.IomemRanges);
        var (ram, ranges) = CrashkernelEstimate.SystemRam(proc);
        Assert.Equal(3, ranges);
        Assert.Equal(0x9fbffL - 0x1000 + 1 + 0x3ffdbfffL - 0x100000 + 1 + (1L << 30), ram);
        Assert.Contains("enough", CaptureAgent.Cli.EstimateCommand.ReservationLine(r, 112L << 20));
        Assert.Contains("NOT enough, 16.0 MiB short", CaptureAgent.Cli.EstimateCommand.ReservationLine(r, 272L << 20));
    }

    [Fact]
    public void NonRootSeesZeroedIomemAndFallsBackToMeminfo()
    {
        using var dir = new TempDir();
        string proc = dir.File("proc");
        Directory.CreateDirectory(proc);
        File.WriteAllText(Path.Combine(proc, "iomem"), "00000000-00000000 : System RAM\n  00000000-00000000 : Crash kernel\n");
        File.WriteAllText(Path.Combine(proc, "meminfo"), "MemTotal:        2012345 kB\nMemFree:  1 kB\n");
        Assert.Equal(2012345L * 1024, CrashkernelEstimate.SystemRam(proc).Bytes);
        var r = CrashkernelEstimate.ReadReservation(dir.File("nosys"), proc);
        Assert.Equal(0, r.Bytes);
        Assert.Contains("hidden", CaptureAgent.Cli.EstimateCommand.ReservationLine(r, 112L << 20));
    }

    [Theory]
    [InlineData("256M", 256L << 20)]
    [InlineData("1G", 1L << 30)]
    [InlineData("64k", 64L << 10)]
    [InlineData("1048576", 1048576L)]
    [InlineData("12X", null)]
    [InlineData("M", null)]
    [InlineData("-5M", null)]
    public void SizesParseLikeMemparse(string text, long? bytes) => Assert.Equal(bytes, SizeText.Parse(text));

    [Fact]
    public void SizesFormatToTheLargestExactUnit()
    {
        Assert.Equal("112M", SizeText.Format(112L << 20));
        Assert.Equal("2G", SizeText.Format(2L << 30));
        Assert.Equal("1536M", SizeText.Format(1536L << 20));
        Assert.Equal("4K", SizeText.Format(4096));
        Assert.Equal("1000", SizeText.Format(1000));
    }
}

using CaptureAgent.Cli;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Engine.Dump;

/// <summary>Damaged input gets a one-line reason and a defined fallback, never a crash or silent garbage.</summary>
[Collection("console")]
public class BadInputTests
{
    [Fact]
    public void TruncatedVmcoreIsDumpedUpToWhereItEndsAndReported()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        long full = new FileInfo(dir.File("vmcore")).Length;
        using (var f = File.OpenWrite(dir.File("vmcore"))) f.SetLength(full - 100 * 4096 - 123);

        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.Contains(r.Problems, p => p.Contains("truncated") && p.Contains("101 pages"));
        using var dump = new KdumpFile(dir.File("dump"));
        var page = new byte[4096];
        Assert.False(dump.IsPresent(k.Pfns - 1));                 // lost at the end: absent, not zero
        Assert.True(dump.TryReadPage(6450, page));
        Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan(6450 * 4096, 4096)));

        Assert.Equal(ExitCodes.Degraded, Program.Main(["dump", "-q", dir.File("vmcore"), dir.File("dump2")]));
    }

    [Fact]
    public void MissingVmcoreInfoKeepsAllButZeroPages()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"), withInfo: false);
        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.Contains(r.Problems, p => p.Contains("no VMCOREINFO"));
        Assert.Equal(3UL, r.ZeroPages);
        Assert.Equal(k.ExpectedDumpable(0).Count, (int)r.DumpablePages);
    }

    [Fact]
    public void CorruptPageTablesFallBackToKeepingPages()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        // init_top_pgt pointing at a page of random content: nothing translates.
        k.WriteElf(dir.File("vmcore"), line => line.StartsWith("SYMBOL(init_top_pgt)") ? $"SYMBOL(init_top_pgt)={SyntheticKernel.StartKernelMap + 0x300000:x}" : line);
        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.Contains(r.Problems, p => p.Contains("kernel memory layout unusable"));
        Assert.Equal(k.ExpectedDumpable(0).Count, (int)r.DumpablePages);
    }

    [Fact]
    public void ImplausibleVmcoreInfoValuesAreRejectedWithTheirName()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"), line => line.StartsWith("SIZE(page)") ? "SIZE(page)=100000" : line);
        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.Contains(r.Problems, p => p.Contains("SIZE(page)=100000"));
    }

    [Fact]
    public void GarbageStructPagesNeverExcludeBeyondTheirBlockAndUnreadableOnesAreKept()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        // Point the mem_map at a vmemmap range that is not mapped: every struct page read fails.
        k.WriteElf(dir.File("vmcore"));
        // Overwrite the section's mem_map with an address in an unmapped region.
        var bytes = File.ReadAllBytes(dir.File("vmcore"));
        var needle = BitConverter.GetBytes(SyntheticKernel.Vmemmap | 0x3);
        int at = bytes.AsSpan().IndexOf(needle);
        Assert.True(at > 0);
        BitConverter.GetBytes(0xffffeb0000000000UL | 0x3).CopyTo(bytes, at);
        File.WriteAllBytes(dir.File("vmcore"), bytes);
        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.Contains(r.Problems, p => p.Contains("struct page of") && p.Contains("were kept"));
        Assert.Equal(k.ExpectedDumpable(0).Count, (int)r.DumpablePages);
    }

    [Fact]
    public void NotAVmcoreFailsWithAOneLineReason()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("junk"), string.Concat(Enumerable.Repeat("this is not an ELF file at all ", 10)));
        var e = Assert.Throws<VmcoreException>(() => new DumpSource(dir.File("junk")));
        Assert.Contains("not an ELF file", e.Message);
        Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-q", dir.File("junk"), dir.File("out")]));
        Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-q", dir.File("missing"), dir.File("out")]));
        Assert.Equal(ExitCodes.Usage, Program.Main(["dump", "-d", "99", dir.File("junk"), dir.File("out")]));
    }

    [Fact]
    public void MakedumpfileStyleCallsWork()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        Assert.Equal(ExitCodes.Ok, Program.Main(["-d", "31", "-c", "--message-level", "1", dir.File("vmcore"), dir.File("out")]));
        using (var kd = new KdumpFile(dir.File("out"))) Assert.Equal((uint)PageCodec.Zlib, kd.Header.Status);
        Assert.Equal(ExitCodes.Ok, Program.Main(["-l", "-q", "-d", "1", dir.File("vmcore"), dir.File("lzo")]));
        using (var kd = new KdumpFile(dir.File("lzo"))) Assert.Equal((uint)PageCodec.Lzo, kd.Header.Status);
        Assert.Equal(ExitCodes.Ok, Program.Main(["-p", "-q", "-d", "1", dir.File("vmcore"), dir.File("snappy")]));
        using (var kd = new KdumpFile(dir.File("snappy"))) Assert.Equal((uint)PageCodec.Snappy, kd.Header.Status);
        Assert.Equal(ExitCodes.Usage, Program.Main(["-E", "-c", dir.File("vmcore"), dir.File("x")]));
        Assert.Equal(ExitCodes.Usage, Program.Main(["frobnicate"]));
    }

    [Fact]
    public void OutputRefusesToFollowAPlantedSymlinkAndIsPrivate()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        File.WriteAllText(dir.File("victim"), "keep me");
        File.CreateSymbolicLink(dir.File("dump"), dir.File("victim"));
        Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-q", dir.File("vmcore"), dir.File("dump")]));
        Assert.Equal("keep me", File.ReadAllText(dir.File("victim")));

        Assert.Equal(ExitCodes.Ok, Program.Main(["dump", "-q", dir.File("vmcore"), dir.File("real")]));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.File("real")));
    }

    [Fact]
    public void CorruptPageDataInAKdumpFileIsReportedNotReturned()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = DumpLevel.Zero, Codec = PageCodec.Zstd });
        var bytes = File.ReadAllBytes(dir.File("dump"));
        // Flip bytes in the middle of the page data area.
        for (int i = bytes.Length - 200_000; i < bytes.Length - 100_000; i += 7) bytes[i] ^= 0x5a;
        File.WriteAllBytes(dir.File("dump"), bytes);
        using var dump = new KdumpFile(dir.File("dump"));
        var page = new byte[4096];
        int bad = 0;
        for (ulong pfn = 0; pfn < k.Pfns; pfn++)
        {
            if (!dump.IsDumpable(pfn)) continue;
            if (!dump.TryReadPage(pfn, page)) { bad++; continue; }
            Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((int)(pfn * 4096), 4096)), $"pfn {pfn} returned wrong bytes");
        }
        Assert.True(bad > 0);
    }
}

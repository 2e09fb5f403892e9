using System.Buffers.Binary;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Engine.Dump;

/// <summary>The whole engine on a synthetic kernel image whose right answers are known by construction.</summary>
public class SyntheticDumpTests
{
    public static TheoryData<KernelStyle, bool> Kernels => new()
    {
        { KernelStyle.Linux61, false },
        { KernelStyle.Linux612, false },
        { KernelStyle.Linux61, true },
        { KernelStyle.Linux612, true },
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void TranslatesThroughAllLeafSizes(KernelStyle style, bool fiveLevel)
    {
        var k = new SyntheticKernel(style, fiveLevel);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        using var src = new DumpSource(dir.File("vmcore"));
        Assert.Empty(src.Warnings);
        var t = src.Kernel!.Tables;
        Assert.Equal(fiveLevel, t.FiveLevel);
        // 1 GiB leaf (direct map), 2 MiB leaf (kernel text), 4 KiB leaf (vmemmap)
        Assert.True(t.TryTranslate(k.DirectVa(0x345678), out var pa, out _));
        Assert.Equal(0x345678UL, pa);
        Assert.True(t.TryTranslate(SyntheticKernel.StartKernelMap + 0x234567, out pa, out var mapped));
        Assert.Equal(SyntheticKernel.PhysBase + 0x234567, pa);
        Assert.Equal((2UL << 20) - 0x34567, mapped);
        Assert.True(t.TryTranslate(k.StructPageVa(0) + 8, out pa, out mapped));
        Assert.Equal((k.Pfns - 1) * 4096 + 8, pa);
        Assert.Equal(4096UL - 8, mapped);
        Assert.False(t.TryTranslate(0xffffc90000000000, out _, out _));   // unmapped vmalloc address
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void FilterSelectsExactlyTheExpectedPagesAtEveryLevel(KernelStyle style, bool fiveLevel)
    {
        var k = new SyntheticKernel(style, fiveLevel);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        using var src = new DumpSource(dir.File("vmcore"));
        for (int level = 0; level <= 31; level++)
        {
            var filter = src.CreateFilter((DumpLevel)level);
            var bm = new PfnBitmap(src.MaxMapnr + 64);
            filter.BeginPass();
            bm.Reset(0, src.MaxMapnr);
            filter.FillDumpable(bm);
            var expected = k.ExpectedDumpable(level);
            var actual = new HashSet<ulong>();
            for (ulong p = 0; p < src.MaxMapnr; p++) if (bm.Get(p)) actual.Add(p);
            Assert.True(expected.SetEquals(actual),
                $"level {level}: missing {string.Join(",", expected.Except(actual).Take(10))} extra {string.Join(",", actual.Except(expected).Take(10))}");
        }
    }

    [Theory]
    [InlineData(PageCodec.Zstd)]
    [InlineData(PageCodec.Zlib)]
    [InlineData(PageCodec.None)]
    public void KdumpRoundTripKeepsEveryPageExactly(PageCodec codec)
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var result = Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = (DumpLevel)31, Codec = codec });
        Assert.Empty(result.Problems);
        Assert.Equal(3UL - 0, result.ZeroPages);   // pfns 700, 701 and 6500

        using var dump = new KdumpFile(dir.File("dump"));
        Assert.Equal("Linux", dump.Header.Field(0));
        Assert.Equal(SyntheticKernel.UtsRelease, dump.Header.Field(2));
        Assert.Equal(2, dump.Header.NrCpus);
        Assert.Equal(SyntheticKernel.PhysBase, dump.Header.PhysBase);
        Assert.Equal(31, dump.Header.DumpLevel);
        Assert.Equal(1795404914, dump.Header.CrashTime);
        Assert.Equal((uint)codec, dump.Header.Status);
        Assert.Equal(SyntheticKernel.UtsRelease, dump.Info!.OsRelease);

        var expected = k.ExpectedDumpable(31);
        var page = new byte[4096];
        for (ulong pfn = 0; pfn < k.Pfns; pfn++)
        {
            bool present = k.Ranges.Any(r => pfn >= r.Start && pfn < r.End);
            Assert.Equal(present, dump.IsPresent(pfn));
            Assert.Equal(expected.Contains(pfn), dump.IsDumpable(pfn));
            if (!expected.Contains(pfn)) continue;
            Assert.True(dump.TryReadPage(pfn, page), $"pfn {pfn}");
            Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((int)(pfn * 4096), 4096)), $"pfn {pfn} content");
        }
        Assert.Equal((ulong)expected.Count, dump.DumpablePages);
    }

    [Fact]
    public void SmallWindowsGiveTheSameFileAsOneWindow()
    {
        // 40,000 pfns span two 32,768-pfn windows: the buddy block carried across must not matter.
        var k = new SyntheticKernel(KernelStyle.Linux612, pfns: 40960);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        Dump(dir.File("vmcore"), dir.File("one"), new DumpOptions { Level = (DumpLevel)31 });
        Dump(dir.File("vmcore"), dir.File("many"), new DumpOptions { Level = (DumpLevel)31, WindowPfns = 32768 });
        Assert.True(File.ReadAllBytes(dir.File("one")).AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("many"))));
    }

    [Fact]
    public void ParallelAndSingleThreadedCompressionWriteIdenticalFiles()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        Dump(dir.File("vmcore"), dir.File("t1"), new DumpOptions { Level = DumpLevel.Zero, Threads = 1 });
        Dump(dir.File("vmcore"), dir.File("t4"), new DumpOptions { Level = DumpLevel.Zero, Threads = 4 });
        Assert.True(File.ReadAllBytes(dir.File("t1")).AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("t4"))));
    }

    [Fact]
    public void FlattenedStreamRearrangesToTheSameFile()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        Dump(dir.File("vmcore"), dir.File("plain"), new DumpOptions());
        using (var src = new DumpSource(dir.File("vmcore")))
        using (var fs = File.Create(dir.File("flat")))
        using (var sink = new FlattenedSink(fs))
            new KdumpCompressedWriter(src, sink, new DumpOptions()).Write();
        using (var input = File.OpenRead(dir.File("flat")))
        using (var outSink = FileSink.Create(dir.File("rearranged")))
            FlattenedSink.Rearrange(input, outSink);
        var plain = File.ReadAllBytes(dir.File("plain"));
        var re = File.ReadAllBytes(dir.File("rearranged"));
        Assert.True(plain.AsSpan().SequenceEqual(re));
        var flat = File.ReadAllBytes(dir.File("flat"));
        Assert.Equal("makedumpfile", System.Text.Encoding.ASCII.GetString(flat, 0, 12));
        Assert.Equal(-1L, BinaryPrimitives.ReadInt64BigEndian(flat.AsSpan(flat.Length - 16)));
    }

    [Fact]
    public void ElfOutputHoldsTheSelectedPagesWithoutZeroPages()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var r = Dump(dir.File("vmcore"), dir.File("elf"), new DumpOptions { Level = (DumpLevel)31, Format = DumpFormat.Elf, Codec = PageCodec.None });
        Assert.Equal(3UL, r.ZeroPages);
        using var elf = new ElfVmcore(dir.File("elf"));
        Assert.Equal(SyntheticKernel.UtsRelease, elf.Info!.OsRelease);
        Assert.Equal(2, elf.CpuCount);
        var expected = k.ExpectedDumpable(31);
        var page = new byte[4096];
        foreach (ulong pfn in expected)
        {
            if (k.Zero.Contains(pfn)) continue;
            Assert.True(elf.TryRead(pfn * 4096, page), $"pfn {pfn} missing from the ELF dump");
            Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((int)(pfn * 4096), 4096)), $"pfn {pfn} content");
        }
        // A run of 256+ excluded pages (the hugetlb page) is not in the file: it reads as zeros.
        Assert.True(elf.TryRead(1600UL * 4096, page));
        Assert.True(page.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(3, elf.Segments.Count);   // split once at the THP+hugetlb gap, plus the second RAM range
        // Short excluded runs stay inside a load with their real content, as makedumpfile does.
        Assert.True(elf.TryRead(512UL * 4096, page));
        Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan(512 * 4096, 4096)));
    }

    internal static DumpResult Dump(string vmcore, string output, DumpOptions options)
    {
        using var src = new DumpSource(vmcore);
        using var sink = FileSink.Create(output);
        return options.Format == DumpFormat.Elf
            ? new ElfDumpWriter(src, sink, options).Write()
            : new KdumpCompressedWriter(src, sink, options).Write();
    }
}

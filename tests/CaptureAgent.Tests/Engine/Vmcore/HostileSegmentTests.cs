using CaptureAgent.Tests.Engine.Dump;
using System.Buffers.Binary;
using CaptureAgent.Cli;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.Engine.Vmcore;

/// <summary>
/// Program headers that put memory where no kernel has it, or claim more than the file holds, do
/// not size the dump: the fuzz case FUZZ_SEED=1205 vmcore-synthetic-5level 223 (a PT_LOAD moved to
/// 0x6000000000000 in a 150 KB vmcore) made `dump` preallocate and write 62 GB of bitmaps.
/// </summary>
[Collection("console")]
public class HostileSegmentTests
{
    private const int PAddr = 24, FileSz = 32, MemSz = 40;

    /// <summary>Sets a field of PT_LOAD number <paramref name="load"/> (0-based) of a SyntheticKernel ELF.</summary>
    private static void PatchLoad(string path, int load, int field, ulong value)
    {
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(64 + 56 * (1 + load) + field), value);
        File.WriteAllBytes(path, bytes);
    }

    private static ulong ReadLoad(string path, int load, int field) =>
        BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path).AsSpan(64 + 56 * (1 + load) + field));

    /// <summary>Blocks the file really occupies (du), against its apparent length.</summary>
    private static long AllocatedBytes(string path)
    {
        var r = Fixtures.Exec("du", ["-B1", path]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return long.Parse(r.Stdout.Split('\t')[0]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AFarSegmentDoesNotMakeTheBitmapsLargerThanTheVmcore(bool withInfo)
    {
        var k = new SyntheticKernel(KernelStyle.Linux612, fiveLevel: true);
        using var dir = new TempDir();
        string vmcore = dir.File("vmcore");
        k.WriteElf(vmcore, withInfo: withInfo);
        PatchLoad(vmcore, 1, PAddr, 0x6000000000000);

        using (var src = new DumpSource(vmcore))
        {
            Assert.Contains(src.Warnings, w => w.Contains("damaged program headers") && w.Contains("pfn 0x10000000 on are left out"));
            Assert.InRange(src.MaxMapnr, 1UL, (ulong)DumpSource.MinBitmapBudget * 4);
        }
        Assert.Equal(ExitCodes.Degraded, Program.Main(["dump", "-q", "-d", "31", vmcore, dir.File("dump")]));
        Assert.InRange(new FileInfo(dir.File("dump")).Length, 1, 4L << 20);
        using var dump = new KdumpFile(dir.File("dump"));
        // The first range's end (no mem_map: the file's data), or the mem_map's last section.
        Assert.Equal(withInfo ? 32768UL : 6144UL, dump.MaxPfn);
    }

    [Fact]
    public void AWideButPlausibleRangeKeepsItsBitmapsSparse()
    {
        // Without VMCOREINFO nothing bounds the range but the file: memory at 256 GiB stays in,
        // and its 8 MiB bitmaps cost only the windows that hold pages.
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        string vmcore = dir.File("vmcore");
        k.WriteElf(vmcore, withInfo: false);
        const ulong far = 0x40_0000_0000;
        PatchLoad(vmcore, 1, PAddr, far);

        var r = SyntheticDumpTests.Dump(vmcore, dir.File("dump"), new DumpOptions { Level = (DumpLevel)31 });
        Assert.DoesNotContain(r.Problems, p => p.Contains("damaged program headers"));
        string dump = dir.File("dump");
        long length = new FileInfo(dump).Length, allocated = AllocatedBytes(dump);
        Assert.True(length > 16L << 20, $"{length} bytes");
        // Two 8 MiB bitmaps of which two 512 KiB windows each hold pages: the rest are holes.
        Assert.True(length - allocated > 12L << 20, $"{allocated} bytes allocated of {length}");
        using var kd = new KdumpFile(dump);
        var page = new byte[4096];
        Assert.True(kd.TryReadPage(far / 4096 + 5, page));
        Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((6400 + 5) * 4096, 4096)));
        Assert.Equal(0, Program.Main(["verify", dump]));
    }

    [Fact]
    public void PagesBeyondFileSizeExistButAreNotDumped()
    {
        // makedumpfile's exclude_nodata_pages: p_memsz past p_filesz is memory the file has no data for.
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        string vmcore = dir.File("vmcore");
        k.WriteElf(vmcore);
        ulong memsz = ReadLoad(vmcore, 1, MemSz);
        PatchLoad(vmcore, 1, MemSz, memsz + 16 * 4096);

        var r = SyntheticDumpTests.Dump(vmcore, dir.File("dump"), new DumpOptions { Level = 0 });
        Assert.Equal((ulong)k.ExpectedDumpable(0).Count, r.DumpablePages);
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.True(kd.IsPresent(k.Pfns + 3));
        Assert.False(kd.IsDumpable(k.Pfns + 3));
        Assert.True(kd.IsDumpable(k.Pfns - 1));
        Assert.Equal(k.Pfns + 16, kd.MaxPfn);
    }

    [Fact]
    public void OnlyTheDescriptorTableIsPreallocated()
    {
        var k = new SyntheticKernel();
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"), withInfo: false);
        PatchLoad(dir.File("vmcore"), 1, PAddr, 0x40_0000_0000);
        var sink = new RecordingSink();
        using (var src = new DumpSource(dir.File("vmcore")))
            new KdumpCompressedWriter(src, sink, new DumpOptions { Level = (DumpLevel)31 }).Write();
        var (offset, length) = Assert.Single(sink.Reserved);
        // The table starts after both bitmaps and holds a descriptor per page plus the shared zero page.
        Assert.True(offset > 16L << 20, $"reserved from {offset}");
        Assert.InRange(length, 24L * 8000, 24L * 8192 + 4096);
    }

    private sealed class RecordingSink : IDumpSink
    {
        public List<(long Offset, long Length)> Reserved { get; } = new();
        public void Write(long offset, ReadOnlySpan<byte> data) { }
        public void Complete() { }
        public void Reserve(long offset, long length) => Reserved.Add((offset, length));
        public void Dispose() { }
    }
}

using CaptureAgent.Cli;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.Synthetic;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Formats;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Engine.Dump;

/// <summary>
/// Dumps of a synthetic kernel with every codec, dumps made from dumps (re-filtering), the
/// automatic codec choice against a fast and a slow target, and the threaded pipeline. Not run
/// beside other tests: the automatic choice times the codecs and the target.
/// </summary>
[Collection(TimingCollection.Name)]
public class CodecDumpTests
{
    [Theory]
    [InlineData(PageCodec.Zstd)]
    [InlineData(PageCodec.Lzo)]
    [InlineData(PageCodec.Snappy)]
    [InlineData(PageCodec.Zlib)]
    [InlineData(PageCodec.None)]
    public void EveryCodecStoresEveryPageExactly(PageCodec codec)
    {
        var k = new SyntheticKernel(compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var r = SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("dump"), new DumpOptions { Level = DumpLevel.Zero, Codec = codec });
        Assert.Empty(r.Problems);
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.Equal((uint)codec, kd.Header.Status);
        AssertPagesEqual(k, kd);
        var scan = kd.Scan();
        Assert.Equal((kd.DumpablePages, 0UL, 0UL), (scan.Ok, scan.Missing, scan.Corrupt));
        if (codec != PageCodec.None) Assert.True(new FileInfo(dir.File("dump")).Length < k.Mem.Length / 2, "text-like pages shrink");
    }

    [Fact]
    public void ThreadsChangeNothingInTheFile()
    {
        var k = new SyntheticKernel(compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        foreach (var codec in new[] { PageCodec.Zstd, PageCodec.Lzo })
        {
            SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("one"), new DumpOptions { Codec = codec, Threads = 1 });
            SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("three"), new DumpOptions { Codec = codec, Threads = 3 });
            Assert.True(File.ReadAllBytes(dir.File("one")).AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("three"))), $"{codec}: 1 and 3 threads differ");
        }
    }

    /// <summary>
    /// makedumpfile's re-filtering: a dump of a dump at a higher level selects what a dump of the
    /// vmcore at that level selects, in any codec, and keeps the first dump's level as its minimum.
    /// </summary>
    [Theory]
    [InlineData(KernelStyle.Linux61)]
    [InlineData(KernelStyle.Linux612)]
    public void ADumpFilteredAgainEqualsTheDirectDump(KernelStyle style)
    {
        var k = new SyntheticKernel(style, compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("d1"), new DumpOptions { Level = DumpLevel.Zero, Codec = PageCodec.Zstd });
        foreach (var (level, codec) in new[] { (DumpLevel.All, PageCodec.Lzo), (DumpLevel.User, PageCodec.Snappy), (DumpLevel.Free | DumpLevel.CacheWithPrivate, PageCodec.Zlib) })
        {
            SyntheticDumpTests.Dump(dir.File("vmcore"), dir.File("direct"), new DumpOptions { Level = level | DumpLevel.Zero, Codec = PageCodec.Zstd });
            var r = SyntheticDumpTests.Dump(dir.File("d1"), dir.File("again"), new DumpOptions { Level = level, Codec = codec });
            Assert.Empty(r.Problems);
            var direct = KdumpFileFacts.Read(dir.File("direct"));
            var again = KdumpFileFacts.Read(dir.File("again"));
            Assert.Equal(direct.Bitmap1, again.Bitmap1);
            Assert.Equal(0, KdumpFileFacts.CountDifferentBits(direct.Bitmap2, again.Bitmap2));
            Assert.Equal((direct.MaxMapnr, direct.SizeNote, direct.OffsetVmcoreinfo, direct.PhysBase), (again.MaxMapnr, again.SizeNote, again.OffsetVmcoreinfo, again.PhysBase));
            Assert.Equal(direct.Utsname, again.Utsname);
            using var kd = new KdumpFile(dir.File("again"));
            Assert.Equal((int)(level | DumpLevel.Zero), kd.Header.DumpLevel);   // the first dump's -d 1 is kept
            Assert.Equal((uint)codec, kd.Header.Status);
            AssertPagesEqual(k, kd);
        }
    }

    [Fact]
    public void TheCommandLineFiltersADumpAgainAndSaysWhatItCannotDo()
    {
        var k = new SyntheticKernel(compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        Assert.Equal(ExitCodes.Ok, Program.Main(["dump", "-q", "-d", "1", "-c", dir.File("vmcore"), dir.File("zlib")]));
        Assert.Equal(ExitCodes.Ok, Program.Main(["dump", "-q", "-d", "31", "-p", dir.File("zlib"), dir.File("snappy")]));
        using (var kd = new KdumpFile(dir.File("snappy")))
        {
            Assert.Equal((uint)PageCodec.Snappy, kd.Header.Status);
            AssertPagesEqual(k, kd);
        }
        // -E from a kdump-compressed dump: refused before any file is made (makedumpfile refuses it too).
        Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-q", "-E", dir.File("zlib"), dir.File("elf")]));
        Assert.False(File.Exists(dir.File("elf")));
        // A flattened stream cannot be read out of order: refused, naming the way out.
        using (var flat = File.Create(dir.File("flat")))
        using (var src = new DumpSource(dir.File("vmcore")))
        using (var sink = new FlattenedSink(flat, leaveOpen: true))
            new KdumpCompressedWriter(src, sink, new DumpOptions()).Write();
        var e = Assert.Throws<VmcoreException>(() => new DumpSource(dir.File("flat")));
        Assert.Contains("rearrange", e.Message);
        Assert.Equal(ExitCodes.Failed, Program.Main(["dump", "-q", dir.File("flat"), dir.File("out")]));
    }

    /// <summary>
    /// compression = auto against a target that takes bytes at memory speed and one that sleeps
    /// for every MiB (a slow NFS export or ssh link): the cheap codec for the first, zstd's small
    /// pages for the second. Both files read back page for page, the probe's pages (in the cheapest codec) included.
    /// </summary>
    [Fact]
    public void AutoPicksACheapCodecForAFastTargetAndZstdForASlowOne()
    {
        var k = new SyntheticKernel(pfns: 8192, compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var options = new DumpOptions { Level = DumpLevel.Zero, AutoCodec = true, Threads = 1, ProbeBytes = 512 << 10 };
        DumpTo(dir.File("vmcore"), dir.File("warm-up"), options, msPerMiB: 0);   // the test host compiles the code paths first

        // The target's speed is wall time: on a loaded host one preemption during the few
        // milliseconds a memory target takes can make it look slow, so it gets three tries.
        var reasons = new List<string>();
        DumpResult fast = null!;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            fast = DumpTo(dir.File("vmcore"), dir.File("fast"), options, msPerMiB: 0);
            reasons.Add(fast.CodecChoice ?? "no choice made");
            if (fast.Codec is PageCodec.Lzo or PageCodec.Snappy) break;
        }
        Assert.True(fast.Codec is PageCodec.Lzo or PageCodec.Snappy, string.Join("\n", reasons));
        Assert.Contains("compression auto chose", fast.CodecChoice);

        var slow = DumpTo(dir.File("vmcore"), dir.File("slow"), options, msPerMiB: 400);   // 2.5 MiB/s
        Assert.Equal(PageCodec.Zstd, slow.Codec);
        Assert.Contains("compression auto chose zstd", slow.CodecChoice);

        foreach (var f in new[] { "fast", "slow" })
        {
            using var kd = new KdumpFile(dir.File(f));
            AssertPagesEqual(k, kd);
        }
        using (var kd = new KdumpFile(dir.File("fast"))) Assert.Equal((uint)fast.Codec, kd.Header.Status);
    }

    /// <summary>
    /// A file target, whose fsync may run beside the copy: the probe's fsync does, pages go on
    /// meanwhile (the copy does not stall on a slow device), and its time judges the target: a
    /// device that takes 200 ms a MiB gets zstd, one that takes none a cheap codec.
    /// </summary>
    [Fact]
    public void AutoTimesTheTargetByAnFsyncBesideTheCopy()
    {
        // Pages enough that the copy outlasts the probe's slow fsync (its first batch, ~1 MiB of pages, is probed).
        var k = new SyntheticKernel(pfns: 24576, compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        long pagesDone = 0;
        var options = new DumpOptions
        {
            Level = DumpLevel.Zero, AutoCodec = true, Threads = 1, ProbeBytes = 32 << 10,
            Progress = (done, _) => Interlocked.Exchange(ref pagesDone, (long)done),
        };
        DumpResult Run(string name, int msPerMiB, out SlowFsyncSink sink)
        {
            using var src = new DumpSource(dir.File("vmcore"));
            sink = new SlowFsyncSink(msPerMiB, () => Interlocked.Read(ref pagesDone));
            var r = new KdumpCompressedWriter(src, sink, options).Write();
            File.WriteAllBytes(dir.File(name), sink.Bytes.ToArray());
            return r;
        }
        Run("warm-up", 0, out _);

        var slow = Run("slow", 200, out var slowSink);   // 5 MiB/s
        Assert.Equal(PageCodec.Zstd, slow.Codec);
        Assert.True(slow.CodecChoice?.Contains("compression auto chose zstd") == true, $"{slow.CodecChoice}; first slow fsync {slowSink.FirstSlowFlush}, {slowSink.FlushMs} ms");
        var (before, after) = slowSink.FirstSlowFlush;
        Assert.True(after > before, $"no page was copied during the probe's fsync ({before} pages before it, {after} after)");

        var reasons = new List<string>();
        DumpResult fast = null!;
        for (int attempt = 0; attempt < 3; attempt++)   // wall time: a preemption can make memory look slow
        {
            fast = Run("fast", 0, out _);
            reasons.Add(fast.CodecChoice ?? "no choice made");
            if (fast.Codec is PageCodec.Lzo or PageCodec.Snappy) break;
        }
        Assert.True(fast.Codec is PageCodec.Lzo or PageCodec.Snappy, string.Join("\n", reasons));
        foreach (var f in new[] { "fast", "slow" })
        {
            using var kd = new KdumpFile(dir.File(f));
            AssertPagesEqual(k, kd);
        }
    }

    /// <summary>
    /// A dump that ends before the target is timed made no choice and says so, naming the codec
    /// its pages were written in; the header names that codec too, not one no page used.
    /// </summary>
    [Fact]
    public void AutoThatEndsBeforeTheProbeSaysWhichCodecItWrote()
    {
        var k = new SyntheticKernel(pfns: 8192, compressible: true);
        using var dir = new TempDir();
        k.WriteElf(dir.File("vmcore"));
        var options = new DumpOptions { Level = DumpLevel.Zero, AutoCodec = true, Threads = 1, ProbeBytes = 1L << 30 };
        var r = DumpTo(dir.File("vmcore"), dir.File("small"), options, msPerMiB: 0);
        Assert.Contains("compression auto made no choice", r.CodecChoice);
        Assert.EndsWith($"in {PageCompressors.Name(r.Codec)}", r.CodecChoice);
        using var kd = new KdumpFile(dir.File("small"));
        Assert.Equal((uint)r.Codec, kd.Header.Status);
        AssertPagesEqual(k, kd);
    }

    [Fact]
    public void AutoRanksCodecsByMeasuredCostAndTargetSpeed()
    {
        using var choice = new CodecChoice(4096, ZstdPageCompressor.DefaultLevel);
        var k = new SyntheticKernel(compressible: true);
        for (int p = 0; p < 512; p++) choice.Measure(k.Mem.AsSpan(p * 4096, 4096));
        var zstd = choice.PerPage(0);
        var lzo = choice.PerPage(1);
        Assert.True(zstd.Bytes < lzo.Bytes, $"zstd {zstd.Bytes} bytes a page, lzo {lzo.Bytes}");
        // The probe's first pages go out in the cheapest codec, the pages during its fsync in the smallest.
        Assert.Equal(PageCodec.Zstd, choice.Smallest);
        Assert.NotEqual(PageCodec.Zstd, choice.Cheapest);
        using (var unsampled = new CodecChoice(4096, ZstdPageCompressor.DefaultLevel))
            Assert.Equal(PageCodec.Zstd, unsampled.Cheapest);   // nothing sampled: zstd
        Assert.Equal(PageCodec.Zstd, choice.Choose(1_000_000, 1 << 20, 1, null).Codec);              // 1 MiB/s
        Assert.NotEqual(PageCodec.Zstd, choice.Choose(1_000_000, 20.0 * (1 << 30), 1, null).Codec);  // 20 GiB/s
        // Only zstd's pages fit the room left: zstd, however fast the target.
        long room = (long)(1_000_000 * (zstd.Bytes + 1));
        Assert.Equal(PageCodec.Zstd, choice.Choose(1_000_000, 20.0 * (1 << 30), 1, room).Codec);
    }

    [Fact]
    public void AutosSizeSampleReadsTheChoicesOwnCompressionOfThePage()
    {
        using var choice = new CodecChoice(4096, ZstdPageCompressor.DefaultLevel);
        Assert.Null(choice.LastSize(PageCodec.Zstd));   // nothing measured yet
        var k = new SyntheticKernel(compressible: true);
        using var zstd = PageCompressors.Create(PageCodec.Zstd, 4096, ZstdPageCompressor.DefaultLevel)!;
        var output = new byte[PageCompressors.MaxCompressedLength(PageCodec.Zstd, 4096)];
        for (int p = 0; p < 8; p++)
        {
            var page = k.Mem.AsSpan(p * 4096, 4096);
            choice.Measure(page);
            int n = zstd.Compress(page, output);
            Assert.Equal(n > 0 ? n : 4096, choice.LastSize(PageCodec.Zstd));
        }
        Assert.Null(choice.LastSize(PageCodec.Zlib));   // no candidate: the sample compresses it itself
    }

    private static DumpResult DumpTo(string vmcore, string path, DumpOptions options, int msPerMiB)
    {
        using var src = new DumpSource(vmcore);
        var sink = new ThrottledSink(msPerMiB);
        var r = new KdumpCompressedWriter(src, sink, options).Write();
        File.WriteAllBytes(path, sink.Bytes.ToArray());
        return r;
    }

    /// <summary>A target in memory that takes each MiB in a given time (0: at memory speed).</summary>
    private sealed class ThrottledSink(int msPerMiB) : IDumpSink
    {
        private double _owedMs;
        public MemoryStream Bytes { get; } = new(64 << 20);

        public void Write(long offset, ReadOnlySpan<byte> data)
        {
            Bytes.Position = offset;
            Bytes.Write(data);
            _owedMs += data.Length * (double)msPerMiB / (1 << 20);
            if (_owedMs < 1) return;
            Thread.Sleep((int)_owedMs);
            _owedMs -= (int)_owedMs;
        }

        public void Complete() { }
        public void Dispose() { }
    }

    /// <summary>
    /// A target in memory whose writes take no time and whose first fsync with data takes a given
    /// time per MiB written (a file on a slow device; later ones are instant, to keep the test
    /// short). That fsync may run beside writes, and on a loaded host it also lasts until the
    /// writer has copied a page more, or 5 s: a copy that stalls during it shows as no progress.
    /// </summary>
    private sealed class SlowFsyncSink(int msPerMiB, Func<long> pagesDone) : IDumpSink
    {
        private readonly object _lock = new();
        private long _unflushed;
        public MemoryStream Bytes { get; } = new(64 << 20);
        /// <summary>Pages the writer had done when the first fsync that slept began, and when it ended.</summary>
        public (long Before, long After) FirstSlowFlush { get; private set; } = (-1, -1);
        public int FlushMs { get; private set; }

        public void Write(long offset, ReadOnlySpan<byte> data)
        {
            lock (_lock)
            {
                Bytes.Position = offset;
                Bytes.Write(data);
                _unflushed += data.Length;
            }
        }

        public void Flush()
        {
            long bytes;
            lock (_lock) (bytes, _unflushed) = (_unflushed, 0);
            int ms = (int)(bytes * (double)msPerMiB / (1 << 20));
            if (ms == 0 || FlushMs > 0) return;
            FlushMs = ms;
            long before = pagesDone();
            Thread.Sleep(ms);
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (pagesDone() == before && waited.ElapsedMilliseconds < 5000) Thread.Sleep(1);
            FirstSlowFlush = (before, pagesDone());
        }

        public bool FlushesConcurrently => true;
        public void Complete() { }
        public void Dispose() { }
    }

    internal static void AssertPagesEqual(SyntheticKernel k, KdumpFile kd)
    {
        var page = new byte[4096];
        ulong seen = 0;
        for (ulong pfn = 0; pfn < kd.MaxPfn; pfn++)
        {
            if (!kd.IsDumpable(pfn)) continue;
            Assert.True(kd.TryReadPage(pfn, page), $"pfn {pfn} unreadable");
            Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((int)(pfn * 4096), 4096)), $"pfn {pfn} differs");
            seen++;
        }
        Assert.Equal(kd.DumpablePages, seen);
        Assert.True(seen > 100);
    }
}

/// <summary>Tests that time things, run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "timing";
}

using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Formats;
using CaptureAgent.Output;
using CaptureAgent.Tests.Engine.Dump;
using CaptureAgent.Tests.Synthetic;
using Xunit;

namespace CaptureAgent.Tests.Engine.Output;

/// <summary>
/// The periodic fsync runs beside the copy (a file's fsync may) and is collected at the next
/// checkpoint: a dump of ~96 MiB of uncompressed pages passes two periodic checkpoints (every
/// 32 MiB) and the final one. A flush that fails is seen one checkpoint late and ends the dump as
/// a synchronous failure did: incomplete, every page up to the last good flush readable, the
/// descriptors after it zero.
/// </summary>
public class BackgroundFlushTests
{
    private const ulong Pfns = 24576;   // 96 MiB

    [Fact]
    public void PeriodicFlushesRunOnAnotherThreadAndTheDumpIsWhole()
    {
        var k = new SyntheticKernel(pfns: Pfns);
        using var dir = new TempDir();
        var (r, sink) = Dump(k, dir, failFlush: 0);

        Assert.False(r.Incomplete, r.IncompleteReason);
        Assert.True(sink.Flushes >= 3, $"{sink.Flushes} flushes");
        Assert.True(sink.FlushesOnOtherThreads >= 2, $"{sink.FlushesOnOtherThreads} of {sink.Flushes} flushes ran beside the copy");
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.False(kd.Incomplete);
        CodecDumpTests.AssertPagesEqual(k, kd);
    }

    [Fact]
    public void AFailedFlushBesideTheCopyLeavesAnIncompleteDumpReadableUpToTheLastGoodFlush()
    {
        var k = new SyntheticKernel(pfns: Pfns);
        using var dir = new TempDir();
        var (r, _) = Dump(k, dir, failFlush: 2);   // the 2nd periodic one (at 64 MiB)

        Assert.True(r.Incomplete);
        Assert.Contains("the target failed to write", r.IncompleteReason);
        using var kd = new KdumpFile(dir.File("dump"));
        Assert.True(kd.Incomplete);
        var page = new byte[4096];
        ulong readable = 0, missing = 0;
        bool gap = false;
        for (ulong pfn = 0; pfn < kd.MaxPfn; pfn++)
        {
            if (!kd.IsDumpable(pfn)) continue;
            if (kd.TryReadPage(pfn, page))
            {
                Assert.False(gap, $"pfn {pfn} readable after a missing one: the rollback left a descriptor past the last good flush");
                Assert.True(page.AsSpan().SequenceEqual(k.Mem.AsSpan((int)(pfn * 4096), 4096)), $"pfn {pfn} differs");
                readable++;
            }
            else { gap = true; missing++; }
        }
        // The first flush (at 32 MiB) made ~8,000 pages durable; the failed one's and all after are zero.
        Assert.InRange(readable, 7000UL, 12000UL);
        Assert.True(missing > 10000, $"{missing} missing pages");
    }

    /// <summary>The kernel's vmcore dumped uncompressed at level 0 into dir/dump through a sink failing its n-th flush (0: none).</summary>
    private static (DumpResult, FlakyFileSink) Dump(SyntheticKernel k, TempDir dir, int failFlush)
    {
        k.WriteElf(dir.File("vmcore"));
        var options = new DumpOptions { Level = DumpLevel.None, Codec = PageCodec.None, Threads = 1 };
        using var src = new DumpSource(dir.File("vmcore"));
        using var sink = new FlakyFileSink(dir.File("dump"), failFlush);
        return (new KdumpCompressedWriter(src, sink, options).Write(), sink);
    }

    /// <summary>A file that counts its flushes, notes the threads they ran on and fails the n-th with EIO.</summary>
    private sealed class FlakyFileSink(string path, int failFlush) : IDumpSink
    {
        private readonly FileSink _file = FileSink.Create(path);
        private readonly int _testThread = Environment.CurrentManagedThreadId;
        private int _flushes, _other;

        public int Flushes => Volatile.Read(ref _flushes);
        public int FlushesOnOtherThreads => Volatile.Read(ref _other);

        public void Write(long offset, ReadOnlySpan<byte> data) => _file.Write(offset, data);
        public void Complete() => _file.Complete();
        public void Reserve(long offset, long length) => _file.Reserve(offset, length);
        public long Length => _file.Length;
        public bool FlushesConcurrently => true;

        public void Flush()
        {
            int n = Interlocked.Increment(ref _flushes);
            if (Environment.CurrentManagedThreadId != _testThread) Interlocked.Increment(ref _other);
            if (n == failFlush) throw new IOException("Input/output error", CaptureAgent.Native.Libc.EIO);
            _file.Flush();
        }

        public void Dispose() => _file.Dispose();
    }
}

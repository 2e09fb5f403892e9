using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Formats;

namespace CaptureAgent.Output;

/// <summary>
/// How large a kdump-compressed dump will be, and what to leave out when the target is short of
/// room. Pass 1 counts the dumpable pages window by window and compresses a sample of them: the
/// estimate retention and the free-space check plan with. Before the data, an estimate larger
/// than the room switches to the fallback level at once; during the data, every checkpoint asks
/// whether the rest still fits and, if not, switches for the pages still to come. The fallback
/// is taken once.
/// </summary>
public sealed class KdumpSizePolicy
{
    private const int SamplePagesPerWindow = 64;

    private readonly DumpSource _src;
    private readonly DumpOptions _opt;
    private readonly int _ps;
    private DumpLevel? _fallback;

    /// <summary>Pfns filtered at a time (a multiple of 32768, so every window's bitmap is whole bytes of whole pages).</summary>
    public ulong Window { get; }

    /// <summary>The window bitmap pass 1 fills; with a single window, pass 2 writes from it as pass 1 left it.</summary>
    public PfnBitmap Bitmap { get; }

    /// <summary>The whole pfn range fits in one window: it is filtered once.</summary>
    public bool SingleWindow => Window >= _src.MaxMapnr;

    public KdumpSizePolicy(DumpSource source, DumpOptions options)
    {
        _src = source;
        _opt = options;
        _ps = source.PageSize;
        _fallback = options.FallbackLevel;
        Window = Math.Max(32768, (options.WindowPfns + 32767) / 32768 * 32768);
        Bitmap = new PfnBitmap(Math.Min(Window, (source.MaxMapnr + 63) / 64 * 64));
    }

    /// <summary>The level to switch to when short of room, while it is still to be taken.</summary>
    public DumpLevel? Fallback => _fallback;

    /// <summary>What pass 1 found: the filter to write with, its page count, the expected file size.</summary>
    public readonly record struct Plan(PageFilter Filter, ulong Dumpable, long EstimatedBytes);

    /// <summary>The file this dump would make at <paramref name="filter"/>'s level: pages and bytes.</summary>
    public Plan Measure(PageFilter filter, KdumpHeader header, CodecChoice? choice = null)
    {
        using var sample = new SizeSample(_opt.Codec, _ps, _opt.ZstdLevel, choice);
        ulong pages = CountDumpable(filter, sample);
        return new(filter, pages, Estimate(header, pages, sample.BytesPerPage));
    }

    /// <summary>
    /// Pass 1, and if its estimate exceeds the room the target has now, pass 1 again at the
    /// fallback level (said in the result): excluding more from the start beats running out halfway.
    /// </summary>
    public Plan Choose(PageFilter filter, KdumpHeader header, DumpResult result, CodecChoice? choice)
    {
        var plan = Measure(filter, header, choice);
        long? free = _opt.FreeSpace?.Invoke();
        if (free is not long room || plan.EstimatedBytes <= room || !Raises(filter.Level)) return plan;
        var level = _fallback!.Value;
        var raised = Measure(_src.BeginDump(level).Filter, header);
        result.Problems.Add($"the dump at level {(int)filter.Level} would take about {plan.EstimatedBytes >> 20} MiB but the target has {room >> 20} MiB: " +
                            $"dump level {(int)level} used instead (about {raised.EstimatedBytes >> 20} MiB)");
        result.LevelRaisedTo = level;
        _fallback = null;
        return raised;
    }

    /// <summary>
    /// At a checkpoint: when the pages still to come, at the size the stored ones took, no longer
    /// fit the room, the fallback filter for the rest, its level and why (for the result); else null.
    /// </summary>
    public (PageFilter Filter, DumpLevel Level, string Why)? RaiseForRoom(ulong done, ulong dumpable, ulong stored, long storedBytes, ulong pfn)
    {
        if (_fallback is not DumpLevel level || _opt.FreeSpace is null) return null;
        long room = _opt.FreeSpace();
        double perPage = stored > 0 ? (double)storedBytes / stored : _ps;
        long need = (long)(perPage * (dumpable - Math.Min(done, dumpable)));
        if (need <= room) return null;
        _fallback = null;
        return (_src.BeginDump(level).Filter, level,
            $"the target was running out of room (about {need >> 20} MiB still to write, {Math.Max(room, 0) >> 20} MiB free): " +
            $"dump level {(int)level} used from pfn 0x{pfn:x} on");
    }

    private bool Raises(DumpLevel level) => _fallback is { } f && (f & ~level) != 0;

    /// <summary>Pass 1: the dumpable pages of every window, with a few of them compressed as a size sample.</summary>
    private ulong CountDumpable(PageFilter filter, SizeSample sample)
    {
        filter.BeginPass();
        ulong dumpable = 0, maxMapnr = _src.MaxMapnr;
        for (ulong start = 0; start < maxMapnr; start += Window)
        {
            Bitmap.Reset(start, Math.Min(Window, maxMapnr - start));
            filter.FillDumpable(Bitmap);
            ulong n = Bitmap.PopCount();
            dumpable += n;
            _opt.Heartbeat?.Invoke();
            sample.Take(_src, Bitmap, n, (filter.Level & DumpLevel.Zero) != 0);
        }
        return dumpable;
    }

    /// <summary>Headers, bitmaps and descriptors exactly; the shared zero page; the pages at the sample's average size.</summary>
    private long Estimate(KdumpHeader header, ulong dumpable, double bytesPerPage) =>
        header.DescriptorsOffset + (long)dumpable * KdumpCompressedWriter.DescriptorSize + _ps + (long)(bytesPerPage * dumpable);

    /// <summary>
    /// Compressed sizes of a few dumpable pages per window, spread over it: enough to foresee the
    /// file size within some percent, for a few hundred page reads.
    /// </summary>
    private sealed class SizeSample(PageCodec codec, int pageSize, int zstdLevel, CodecChoice? choice = null) : IDisposable
    {
        private readonly byte[] _page = new byte[pageSize];
        // With auto the choice's own compressors give the size: no second context of the same codec.
        private readonly IPageCompressor? _compressor = choice is not null && CodecChoice.IsCandidate(codec)
            ? null : PageCompressors.Create(codec, pageSize, zstdLevel);
        private byte[]? _out;
        private long _bytes;
        private long _pages;

        public double BytesPerPage => _pages == 0 ? pageSize : (double)_bytes / _pages;

        public void Take(DumpSource src, PfnBitmap bitmap, ulong setBits, bool zeroExcluded)
        {
            if (setBits == 0) return;
            // compression = auto samples no more pages than a fixed codec: each costs every candidate's
            // compression, and 256 a window (tried first) were 3-4% of a fast 1 GiB capture's time.
            ulong stride = Math.Max(1, setBits / SamplePagesPerWindow), index = 0;
            for (ulong pfn = bitmap.NextSet(bitmap.Start); pfn < bitmap.End; pfn = bitmap.NextSet(pfn + 1), index++)
            {
                if (index % stride != 0) continue;
                _pages++;
                if (!src.Vmcore.TryRead(pfn * (ulong)pageSize, _page)) continue;   // unreadable: a zero descriptor
                if (zeroExcluded && _page.AsSpan().IndexOfAnyExcept((byte)0) < 0) continue;
                _bytes += SizeOfPage();
            }
        }

        /// <summary>The sampled page's size in the dump's codec; with auto, timed in every candidate on the way.</summary>
        private int SizeOfPage()
        {
            choice?.Measure(_page);
            if (choice?.LastSize(codec) is int measured) return measured;
            if (_compressor is null) return pageSize;   // none: pages are stored raw
            _out ??= new byte[PageCompressors.MaxCompressedLength(codec, pageSize)];
            int n = _compressor.Compress(_page, _out);
            return n > 0 ? n : pageSize;
        }

        public void Dispose() => _compressor?.Dispose();
    }
}

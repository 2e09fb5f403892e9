using System.Buffers.Binary;
using System.Diagnostics;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Native;
using CaptureAgent.Vmcore;
using CaptureAgent.Formats;

namespace CaptureAgent.Output;

/// <summary>
/// Writes a kdump-compressed dump (what crash, drgn, libkdumpfile and makedumpfile read) from a
/// vmcore in bounded memory: the pfn range is filtered in windows, first to count the dumpable
/// pages (the descriptor table is sized by them), then again to write bitmaps, descriptors and
/// page data. Descriptors reach the sink only after the data they point to, so a dump cut short
/// leaves descriptors that are either valid or zero (which readers report as incomplete).
/// </summary>
public sealed class KdumpCompressedWriter : IDumpWriter
{
    internal const int DescriptorSize = 24;
    private const int DescriptorBatch = 2730;         // 64 KiB of descriptors
    private const int DataBufferBytes = 1 << 20;
    private const int BatchPages = 256;             // 1 MiB of input per batch

    private readonly DumpSource _src;
    private readonly DumpOptions _opt;
    private readonly IDumpSink _sink;
    /// <summary>compression = auto: the sink's speed is measured through this wrapper.</summary>
    private readonly TimedSink? _timed;
    private readonly CodecChoice? _choice;
    private readonly KdumpSizePolicy _space;
    private readonly int _ps;

    private readonly byte[] _desc = new byte[DescriptorBatch * DescriptorSize];
    private int _descCount;
    private long _descFileOffset;
    private readonly byte[] _data = new byte[DataBufferBytes];
    private int _dataLen;
    private long _dataFileOffset;
    private long _nextSpaceCheck;
    /// <summary>Where the descriptors stood at the last successful fsync: all before it is on the target.</summary>
    private long _durableDescOffset;
    /// <summary>The periodic fsync beside the copy (sinks that allow it), and where the descriptors stood when it began.</summary>
    private BackgroundFlush? _flush;
    private long _flushingDescOffset;
    /// <summary>compression = auto: the probe's fsync is the one running beside the copy; how long it took, once collected.</summary>
    private bool _probeFlushRunning;
    private double? _probeFlushSeconds;
    private const long SpaceCheckBytes = 32L << 20;

    /// <summary>The target filled up: nothing more is written, the file ends as it is.</summary>
    private sealed class TargetFullException(string message) : Exception(message);

    public KdumpCompressedWriter(DumpSource source, IDumpSink sink, DumpOptions options)
    {
        _src = source;
        _opt = options;
        _ps = source.PageSize;
        if (options.AutoCodec)
        {
            _sink = _timed = new TimedSink(sink);
            _choice = new CodecChoice(_ps, options.ZstdLevel);
        }
        else _sink = sink;
        _space = new KdumpSizePolicy(source, options);
    }

    public DumpResult Write()
    {
        var (filter, result) = _src.BeginDump(_opt.Level);
        result.Codec = _opt.Codec;
        var header = BuildHeader(_src.MaxMapnr);

        // Pass 1: count what goes in, so the descriptor table can be placed; exclude more from the start if it will not fit.
        var clock = Stopwatch.StartNew();
        var plan = _space.Choose(filter, header, result, _choice);
        result.EstimatedBytes = plan.EstimatedBytes;
        // A dump without a page is none: readers have nothing to read and verify rejects it. Said
        // before anything is written (a damaged kdump input whose bitmaps select nothing).
        if (plan.Dumpable == 0)
            throw new VmcoreException($"{_src.Vmcore.Path}: no page of its {_src.MaxMapnr} pfns is left to dump at level {(int)plan.Filter.Level}: nothing written");
        result.DumpablePages = plan.Dumpable;
        result.FilterSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        WriteHeaders(header, plan);
        WritePresentBitmap(plan.Filter, header);
        bool zeroShared = (plan.Filter.Level & DumpLevel.Zero) != 0;
        long dataStart = StartData(header, plan.Dumpable, zeroShared);
        var pass = new CopyPass(this, plan.Filter, header, zeroShared, dataStart, result) { Dumpable = plan.Dumpable };
        CopyPages(pass, header, result);
        result.CopySeconds = clock.Elapsed.TotalSeconds;
        Summarize(pass, result);
        WriteFinalHeader(header, result);
        return result;
    }

    /// <summary>
    /// Main header, sub header and notes, with the descriptor table's storage reserved first. The
    /// header says "incomplete" until the very end: a dump cut by a crash, a kill or a full disk
    /// tells its readers so (makedumpfile's DUMP_DH_COMPRESSED_INCOMPLETE).
    /// </summary>
    private void WriteHeaders(KdumpHeader header, KdumpSizePolicy.Plan plan)
    {
        header.DumpLevel = (int)plan.Filter.Level;
        header.Status = (uint)_opt.Codec | KdumpHeader.StatusIncomplete;
        _sink.Reserve(header.DescriptorsOffset, (long)plan.Dumpable * DescriptorSize + _ps);
        _sink.Write(0, header.BuildMainHeader());
        _sink.Write(header.BlockSize, header.BuildSubHeader());
        if (header.Notes.Length > 0) _sink.Write(header.BlockSize + KdumpHeader.SubHeaderSize, header.Notes);
    }

    /// <summary>The 1st bitmap (pages that exist), in a bitmap of its own: a single filtered window stays reusable.</summary>
    private void WritePresentBitmap(PageFilter filter, KdumpHeader header)
    {
        ulong maxMapnr = _src.MaxMapnr, window = _space.Window;
        var present = new PfnBitmap(Math.Min(window, (maxMapnr + 63) / 64 * 64));
        for (ulong start = 0; start < maxMapnr; start += window)
        {
            present.Reset(start, Math.Min(window, maxMapnr - start));
            filter.FillPresent(present);
            _opt.Heartbeat?.Invoke();
            WriteBitmap(header.Bitmap1Offset + (long)(start / 8), present.Bytes.AsSpan(0, present.ByteLength));
        }
    }

    /// <summary>Where descriptors and data begin; the one zero page every zero descriptor points to goes first. Returns the data's start.</summary>
    private long StartData(KdumpHeader header, ulong dumpable, bool zeroShared)
    {
        _descFileOffset = _durableDescOffset = header.DescriptorsOffset;
        long dataStart = header.DescriptorsOffset + (long)dumpable * DescriptorSize;
        _dataFileOffset = dataStart;
        if (zeroShared)
        {
            _sink.Write(dataStart, new byte[_ps]);
            _dataFileOffset += _ps;
        }
        _nextSpaceCheck = _dataFileOffset + SpaceCheckBytes;
        _opt.Progress?.Invoke(0, dumpable);
        return dataStart;
    }

    /// <summary>Pass 2 to its end or to a full target, which leaves an incomplete dump that says how far it got.</summary>
    private void CopyPages(CopyPass pass, KdumpHeader header, DumpResult result)
    {
        try
        {
            pass.Run();
            pass.EndProbe();
            Checkpoint();
        }
        catch (TargetFullException e)
        {
            result.Incomplete = true;
            result.IncompleteReason = e.Message;
            long saved = (_descFileOffset - header.DescriptorsOffset) / DescriptorSize;
            result.Problems.Add($"the dump is incomplete: {e.Message}; it holds {saved} of {pass.Dumpable} pages, up to where it stopped");
        }
        finally
        {
            pass.Dispose();
            _flush?.Dispose();
            _flush = null;
        }
    }

    /// <summary>The result's counts and problems once the pages are written.</summary>
    private void Summarize(CopyPass pass, DumpResult result)
    {
        var filter = pass.Filter;
        ulong dumpable = pass.Dumpable;
        // A raised level changed the count of pass 1: what the bitmap now selects is what was written.
        if (!result.Incomplete) result.DumpablePages = pass.Done;
        _choice?.Dispose();
        _opt.Progress?.Invoke(dumpable, dumpable);
        result.Filter = filter.Stats;
        result.Filter.Zero = result.ZeroPages;
        result.BytesWritten = _dataFileOffset;
        if (result.UnreadablePages > 0)
            result.Problems.Add($"{result.UnreadablePages} pages could not be read from the vmcore; they are marked missing in the dump");
        if (filter.Stats.UnreadableStructPages > 0)
            result.Problems.Add($"struct page of {filter.Stats.UnreadableStructPages} pages could not be read; those pages were kept");
    }

    /// <summary>
    /// Everything the header vouches for is on disk (the last checkpoint) before it stops saying
    /// "incomplete". An incomplete dump gets its header rewritten too, for the level it used.
    /// </summary>
    private void WriteFinalHeader(KdumpHeader header, DumpResult result)
    {
        header.Status = (uint)result.Codec | (result.Incomplete ? KdumpHeader.StatusIncomplete : 0);
        try
        {
            _sink.Write(0, header.BuildMainHeader());
            _sink.Complete();
        }
        catch (IOException e) when (Libc.IsTargetFailure(e))
        {
            if (!result.Incomplete)
            {
                result.Incomplete = true;
                result.IncompleteReason = $"the final header could not be written ({e.Message})";
            }
            result.Problems.Add($"the dump's header could not be rewritten at the end: {e.Message}");
        }
    }

    /// <summary>
    /// A window of a bitmap as it is first written. An empty one is not written: every sink ends in a
    /// new file (a hole reads as zeros), and a sparse address space (memory at the top of a wide
    /// physical address range) then costs neither the time nor the disk of gigabytes of zeros.
    /// </summary>
    private void WriteBitmap(long offset, ReadOnlySpan<byte> window)
    {
        if (window.IndexOfAnyExcept((byte)0) >= 0) _sink.Write(offset, window);
    }

    /// <summary>
    /// The file this dump would make, before writing anything: one filtering pass and a compressed
    /// sample of its pages (what retention and the free-space check plan with).
    /// </summary>
    public static (ulong Pages, long Bytes) Estimate(DumpSource source, DumpOptions options)
    {
        var w = new KdumpCompressedWriter(source, NoSink.Instance, options);
        w._choice?.Dispose();
        var plan = w._space.Measure(source.CreateFilter(options.Level), w.BuildHeader(source.MaxMapnr));
        return (plan.Dumpable, plan.EstimatedBytes);
    }

    private sealed class NoSink : IDumpSink
    {
        public static readonly NoSink Instance = new();
        public void Write(long offset, ReadOnlySpan<byte> data) => throw new InvalidOperationException("estimating writes nothing");
        public void Complete() { }
        public void Dispose() { }
    }

    /// <summary>
    /// From <paramref name="from"/> on, keeps only what <paramref name="raised"/> keeps too, in the
    /// window being written, and rewrites that window's 2nd bitmap. Pages already written are left
    /// as they are; the descriptor table keeps its size (unused entries at its end stay zero).
    /// Returns how many pages were dropped.
    /// </summary>
    private ulong Raise(PageFilter raised, PfnBitmap bitmap, ulong from, KdumpHeader header)
    {
        var narrower = new PfnBitmap(bitmap.Count);
        narrower.Reset(bitmap.Start, bitmap.Count);
        raised.BeginPass();
        raised.FillDumpable(narrower);
        ulong cleared = 0;
        for (ulong pfn = bitmap.NextSet(from); pfn < bitmap.End; pfn = bitmap.NextSet(pfn + 1))
            if (!narrower.Get(pfn) && bitmap.Clear(pfn)) cleared++;
        _sink.Write(header.Bitmap2Offset + (long)(bitmap.Start / 8), bitmap.Bytes.AsSpan(0, bitmap.ByteLength));
        header.DumpLevel = (int)raised.Level;
        return cleared;
    }

    /// <summary>
    /// Pass 2: the 2nd bitmap and the pages, window by window, a batch of pages at a time. Two
    /// batches take turns: while the helper threads compress one, this thread reads the next and
    /// then writes the one before, so reading, compressing and writing overlap.
    /// </summary>
    private sealed class CopyPass : IDisposable
    {
        private const long ProbeSeconds = 2;
        /// <summary>How long the probe's fsync may run beside the copy before its speed is judged from the wait.</summary>
        private const double ProbeWaitSeconds = 1;
        private readonly KdumpCompressedWriter _w;
        private readonly PfnBitmap _bitmap;
        private readonly ulong _window, _maxMapnr;
        private readonly KdumpHeader _header;
        private readonly bool _singleWindow, _zeroShared;
        private readonly long _dataStart;
        private readonly DumpResult _result;
        private readonly PageBatch[] _batches;
        private BatchCompressor _compressor;
        private PageCodec? _switchTo;
        private readonly List<PageCodec> _codecsUsed = new(4);
        private bool _windowOpen, _decided;
        private ulong _pfn, _done, _stored;
        private long _storedBytes;
        private readonly long _probeStart = Stopwatch.GetTimestamp();
        /// <summary>When the probe's fsync began beside the copy (0: not yet), and what it covered.</summary>
        private long _probeFlushStart, _probeBytes;
        private double _probeWriteSeconds;

        public PageFilter Filter;
        public ulong Dumpable;
        /// <summary>Pages written so far (descriptors added, whatever their kind).</summary>
        public ulong Done => _done;

        public CopyPass(KdumpCompressedWriter writer, PageFilter filter, KdumpHeader header, bool zeroShared, long dataStart, DumpResult result)
        {
            var space = writer._space;
            (_w, Filter, _bitmap, _window, _maxMapnr, _header) = (writer, filter, space.Bitmap, space.Window, writer._src.MaxMapnr, header);
            (_singleWindow, _zeroShared, _dataStart, _result) = (space.SingleWindow, zeroShared, dataStart, result);
            var opt = writer._opt;
            int slot = opt.AutoCodec
                ? CodecChoice.Candidates.Max(c => BatchCompressor.SlotSize(c, writer._ps))
                : BatchCompressor.SlotSize(opt.Codec, writer._ps);
            // compression = auto begins with the cheapest codec: the probe's pages cost a fast target nothing.
            var first = writer._choice?.Cheapest ?? opt.Codec;
            _compressor = new BatchCompressor(first, writer._ps, opt.Threads, opt.ZstdLevel);
            result.Codec = first;
            // A second batch only pays when helper threads compress one while the next is read; with
            // one thread (the capture kernel runs with nr_cpus=1) it would be 2 MiB of reservation for nothing.
            _batches = _compressor.Threads > 1
                ? [new PageBatch(BatchPages, writer._ps, slot), new PageBatch(BatchPages, writer._ps, slot)]
                : [new PageBatch(BatchPages, writer._ps, slot)];
            _decided = !opt.AutoCodec;
            if (!_singleWindow) Filter.BeginPass();
        }

        public void Run()
        {
            if (_batches.Length == 1)
            {
                RunInSeries(_batches[0]);
                return;
            }
            var current = _batches[0];
            if (!Fill(current)) return;
            _compressor.Start(current);
            for (int which = 0; ; which ^= 1)
            {
                var next = _batches[which ^ 1];
                bool more = Fill(next);
                _compressor.Finish();
                JudgeProbeBeforeCompressing();
                if (more && _switchTo is PageCodec codec) SwitchCodec(codec);
                if (more) _compressor.Start(next);
                Emit(current);
                AfterBatch();
                if (!more) return;
                current = next;
            }
        }

        /// <summary>One batch at a time: read, compress, write.</summary>
        private void RunInSeries(PageBatch batch)
        {
            while (Fill(batch))
            {
                JudgeProbeBeforeCompressing();
                if (_switchTo is PageCodec codec) SwitchCodec(codec);
                _compressor.Compress(batch);
                Emit(batch);
                AfterBatch();
            }
        }

        /// <summary>Reads the next selected pages into the batch (one pread per run of consecutive pages); false when none are left.</summary>
        private bool Fill(PageBatch b)
        {
            b.Clear();
            var vm = _w._src.Vmcore;
            int ps = _w._ps;
            while (b.Count < b.Capacity)
            {
                if (!_windowOpen || _pfn >= _bitmap.End)
                {
                    if (!NextWindow()) break;
                    continue;
                }
                ulong runEnd = Math.Min(_bitmap.NextClear(_pfn), _pfn + (ulong)(b.Capacity - b.Count));
                int n = (int)(runEnd - _pfn);
                var chunk = b.Pages.AsSpan(b.Count * ps, n * ps);
                bool chunkOk = vm.TryRead(_pfn * (ulong)ps, chunk);
                for (int i = 0; i < n; i++)
                {
                    int slot = b.Count + i;
                    var page = b.Page(slot);
                    if (!chunkOk && !vm.TryRead((_pfn + (ulong)i) * (ulong)ps, page)) b.Kinds[slot] = PageKind.Unreadable;
                    else if (_zeroShared && page.IndexOfAnyExcept((byte)0) < 0) b.Kinds[slot] = PageKind.Zero;
                    else { b.Kinds[slot] = PageKind.Data; b.ToCompress[b.CompressCount++] = slot; }
                }
                b.Count += n;
                _pfn = _bitmap.NextSet(runEnd);
            }
            return b.Count > 0;
        }

        /// <summary>Filters the next window (unless the single one is still there from pass 1) and writes its 2nd bitmap.</summary>
        private bool NextWindow()
        {
            ulong start = _windowOpen ? _bitmap.Start + _window : 0;
            if (start >= _maxMapnr) return false;
            if (!_singleWindow)
            {
                _bitmap.Reset(start, Math.Min(_window, _maxMapnr - start));
                Filter.FillDumpable(_bitmap);
            }
            _w.WriteBitmap(_header.Bitmap2Offset + (long)(start / 8), _bitmap.Bytes.AsSpan(0, _bitmap.ByteLength));
            _windowOpen = true;
            _pfn = _bitmap.NextSet(_bitmap.Start);
            return true;
        }

        /// <summary>Descriptors and data of a compressed batch, in pfn order.</summary>
        private void Emit(PageBatch b)
        {
            long before = _w._dataFileOffset + _w._dataLen;
            for (int slot = 0; slot < b.Count; slot++)
            {
                switch (b.Kinds[slot])
                {
                    case PageKind.Unreadable:
                        // A zero descriptor: readers report the page as missing rather than wrong.
                        _result.UnreadablePages++;
                        _w.AddDescriptor(0, 0, 0);
                        break;
                    case PageKind.Zero:
                        _result.ZeroPages++;
                        _w.AddDescriptor(_dataStart, (uint)_w._ps, 0);
                        break;
                    default:
                        if (b.Sizes[slot] > 0) _w.AddPage(b.Compressed(slot), (uint)b.Codec);
                        else _w.AddPage(b.Page(slot), 0);
                        _result.StoredPages++;
                        break;
                }
            }
            if (b.CompressCount > 0) NoteCodec(b.Codec);
            _done += (ulong)b.Count;
            _stored += (ulong)b.Count;
            _storedBytes += _w._dataFileOffset + _w._dataLen - before;
            _w._opt.Progress?.Invoke(_done, Dumpable);
            _w._opt.Heartbeat?.Invoke();
        }

        /// <summary>The header names the codec of the last pages written; auto's messages name every one used, in order.</summary>
        private void NoteCodec(PageCodec codec)
        {
            if (_codecsUsed.Count > 0 && _codecsUsed[^1] == codec) return;
            _codecsUsed.Add(codec);
            _result.Codec = codec;
        }

        private void AfterBatch()
        {
            if (!_decided) Probe();
            if (_w._dataFileOffset + _w._dataLen < _w._nextSpaceCheck) return;
            // Every 32 MiB: make what is written durable (an NFS server reports a full
            // export at the commit, not at the write), then see whether the rest fits.
            _w.CheckpointBesideTheCopy();
            _w._nextSpaceCheck = _w._dataFileOffset + SpaceCheckBytes;
            // Running out of room: exclude more for the pages still to come, and go on.
            if (_w._space.RaiseForRoom(_done, Dumpable, _stored, _storedBytes, _pfn) is not ({ } raised, var level, { } why)) return;
            ulong cleared = _w.Raise(raised, _bitmap, _pfn, _header);
            _result.Problems.Add(why);
            _result.LevelRaisedTo = level;
            Filter = raised;
            Dumpable -= Math.Min(cleared, Dumpable - _done);
            _pfn = _bitmap.NextSet(_pfn);
        }

        /// <summary>
        /// compression = auto: the first megabyte of pages, in the cheapest codec, is written and
        /// fsynced so the device's own time counts, and that time judges the target's speed. The
        /// fsync runs beside the copy when the sink allows, with the smallest codec meanwhile (on a
        /// slow target the right one; on a fast one the fsync is over in milliseconds): judged when
        /// it ends, or after <see cref="ProbeWaitSeconds"/> from a bound, the target being slower than that.
        /// </summary>
        private void Probe()
        {
            var timed = _w._timed!;
            if (_probeFlushStart == 0)
            {
                if (!ProbeHasEnough() || _done >= Dumpable) return;   // a dump that ends first: EndProbe says so
                if (!_w.StartProbeFlush())
                {
                    Decide(timed.Bytes, timed.Seconds);   // flushed before returning: writes and flush timed together
                    return;
                }
                (_probeFlushStart, _probeBytes, _probeWriteSeconds) = (Stopwatch.GetTimestamp(), timed.Bytes, timed.WriteSeconds);
                // While the fsync runs the smallest pages cost least: a slow target is still taking the probe's.
                var smallest = _w._choice!.Smallest;
                if (smallest != _compressor.Codec) _switchTo = smallest;
                return;
            }
            // Collected as soon as it ends (no wait): a failed fsync ends the dump here, at the
            // last durable point, not 32 MiB of pages later, and is not taken for a fast target.
            if (_w.FlushEnded) _w.CollectFlush();
            double waited = Stopwatch.GetElapsedTime(_probeFlushStart).TotalSeconds;
            if (_w._probeFlushSeconds is double flushed) Decide(_probeBytes, _probeWriteSeconds + flushed);
            else if (waited >= ProbeWaitSeconds) Decide(_probeBytes, _probeWriteSeconds + waited);
        }

        /// <summary>
        /// The probe's fsync often ends while a batch is read: judged then, the batch goes out in the
        /// codec chosen rather than in the smallest (on a fast target, 256 pages of zstd for nothing).
        /// </summary>
        private void JudgeProbeBeforeCompressing()
        {
            if (!_decided && _probeFlushStart != 0) Probe();
        }

        /// <summary>A dump that ended before the target was timed made no choice: said so, with the codecs its pages are in.</summary>
        public void EndProbe()
        {
            if (_decided) return;
            _decided = true;
            string codecs = _codecsUsed.Count == 0 ? "none (no page needed compressing)" : string.Join(", then ", _codecsUsed.Select(PageCompressors.Name));
            _result.CodecChoice = $"compression auto made no choice: all {_done} pages were written before the target's speed was known, in {codecs}";
        }

        private bool ProbeHasEnough() =>
            _w._dataFileOffset + _w._dataLen - _dataStart >= _w._opt.ProbeBytes
            || Stopwatch.GetElapsedTime(_probeStart).TotalSeconds >= ProbeSeconds;

        /// <summary>The codec for the pages left, from the target's speed: <paramref name="bytes"/> took it <paramref name="seconds"/>.</summary>
        private void Decide(long bytes, double seconds)
        {
            _decided = true;
            ulong left = Dumpable - Math.Min(_done, Dumpable);
            if (left == 0 || bytes == 0) return;
            double bytesPerSecond = bytes / Math.Max(seconds, 1e-6);
            long? room = _w._opt.FreeSpace?.Invoke();
            var (codec, reason) = _w._choice!.Choose(left, bytesPerSecond, _compressor.Threads, room);
            _result.CodecChoice = $"compression auto chose {PageCompressors.Name(codec)} after {_done} pages: {reason}";
            _switchTo = codec != _compressor.Codec ? codec : null;
        }

        private void SwitchCodec(PageCodec codec)
        {
            var opt = _w._opt;
            _compressor.Dispose();
            _compressor = new BatchCompressor(codec, _w._ps, opt.Threads, opt.ZstdLevel);
            _switchTo = null;
        }

        public void Dispose() => _compressor.Dispose();
    }

    private KdumpHeader BuildHeader(ulong maxMapnr)
    {
        var vm = _src.Vmcore;
        var h = new KdumpHeader
        {
            BlockSize = _ps,
            MaxMapnr = maxMapnr,
            NrCpus = vm.CpuCount,
            Status = (uint)_opt.Codec,
            DumpLevel = (int)_opt.Level,
            Notes = vm.NoteBlob,
            VmcoreInfoOffsetInNotes = vm.VmcoreInfoOffset,
            VmcoreInfoSize = vm.VmcoreInfoSize,
            CrashTime = _src.Info?.CrashTime ?? 0,
            PhysBase = _src.Kernel?.Tables.PhysBase ?? 0,
            Utsname = ReadUtsname(),
        };
        return h;
    }

    /// <summary>init_uts_ns.name of the crashed kernel; rebuilt from VMCOREINFO if unreadable.</summary>
    private byte[] ReadUtsname()
    {
        var info = _src.Info;
        if (_src.Kernel is { } k && info?.Symbol("init_uts_ns") is ulong uts)
        {
            ulong off = (ulong)(info.Offset("uts_namespace.name") ?? 4);
            var buf = new byte[KdumpHeader.UtsnameSize];
            if (k.TryRead(uts + off, buf) && buf.AsSpan(0, 6).SequenceEqual("Linux\0"u8)) return buf;
        }
        return KdumpHeader.MakeUtsname("Linux", "", info?.OsRelease ?? "", "", "x86_64", "");
    }

    private void AddPage(ReadOnlySpan<byte> bytes, uint flags)
    {
        if (_dataLen + bytes.Length > _data.Length) FlushCaches();
        long offset = _dataFileOffset + _dataLen;
        bytes.CopyTo(_data.AsSpan(_dataLen));
        _dataLen += bytes.Length;
        AddDescriptor(offset, (uint)bytes.Length, flags);
    }

    private void AddDescriptor(long offset, uint size, uint flags)
    {
        if (_descCount == DescriptorBatch) FlushCaches();
        var d = _desc.AsSpan(_descCount * DescriptorSize, DescriptorSize);
        BinaryPrimitives.WriteInt64LittleEndian(d, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], size);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(d[16..], 0);
        _descCount++;
    }

    /// <summary>
    /// Data first, then the descriptors that point into it. When the data does not fit, only the
    /// descriptors of pages whose data reached the file are written: the file then ends with
    /// valid descriptors followed by zero ones, which readers take as "not saved".
    /// </summary>
    private void FlushCaches()
    {
        try
        {
            if (_dataLen > 0)
            {
                try
                {
                    _sink.Write(_dataFileOffset, _data.AsSpan(0, _dataLen));
                }
                catch (IOException e) when (Libc.IsTargetFailure(e))
                {
                    KeepDescriptorsOfLandedData();
                    throw;
                }
                _dataFileOffset += _dataLen;
                _dataLen = 0;
            }
            if (_descCount > 0)
            {
                _sink.Write(_descFileOffset, _desc.AsSpan(0, _descCount * DescriptorSize));
                _descFileOffset += _descCount * DescriptorSize;
                _descCount = 0;
            }
        }
        catch (IOException e) when (Libc.IsTargetFailure(e))
        {
            _dataLen = 0;
            _descCount = 0;
            throw new TargetFullException(Reason(e));
        }
    }

    private static string Reason(IOException e) =>
        Libc.IsOutOfSpace(e) ? $"the target is full ({e.Message})" : $"the target failed to write ({e.Message})";

    /// <summary>
    /// A data write failed part way (a full disk takes what fits): the pending descriptors whose
    /// pages lie wholly in the part that landed are written, in order, up to the first that does not.
    /// </summary>
    private void KeepDescriptorsOfLandedData()
    {
        long landedEnd = _sink.Length;
        if (landedEnd < 0) return;
        int keep = 0;
        for (; keep < _descCount; keep++)
        {
            var d = _desc.AsSpan(keep * DescriptorSize, DescriptorSize);
            long offset = BinaryPrimitives.ReadInt64LittleEndian(d);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
            if (offset >= _dataFileOffset && offset + size > landedEnd) break;   // zero and earlier pages always qualify
        }
        if (keep == 0) return;
        try
        {
            _sink.Write(_descFileOffset, _desc.AsSpan(0, keep * DescriptorSize));
            _descFileOffset += keep * DescriptorSize;
        }
        catch (IOException e) when (Libc.IsTargetFailure(e)) { }   // the table was not preallocated: they stay zero
    }

    /// <summary>
    /// Writes what is buffered and fsyncs it, waiting for the fsync. If the target then reports a
    /// failure, the descriptors written since the last good fsync are zeroed: their data may not be there.
    /// </summary>
    private void Checkpoint()
    {
        CollectFlush();
        FlushCaches();
        try
        {
            _sink.Flush();
            _durableDescOffset = _descFileOffset;
        }
        catch (IOException e) when (Libc.IsTargetFailure(e))
        {
            RollBackToDurable(e);
        }
    }

    /// <summary>
    /// The periodic checkpoint: the fsync begun at the last one is collected (what it covered is
    /// now durable, or its failure rolls back as <see cref="Checkpoint"/> does) and a new one begins
    /// beside the copy. A failure is thus seen one checkpoint late, with the same outcome.
    /// </summary>
    private void CheckpointBesideTheCopy()
    {
        if (!_sink.FlushesConcurrently)
        {
            Checkpoint();
            return;
        }
        CollectFlush();
        FlushCaches();
        _flush ??= new BackgroundFlush(_sink);
        _flushingDescOffset = _descFileOffset;
        _flush.Start();
    }

    /// <summary>
    /// compression = auto's probe: what is buffered is written and fsynced, beside the copy when the
    /// sink allows (true: <see cref="FlushEnded"/> tells when), otherwise before returning (false).
    /// </summary>
    private bool StartProbeFlush()
    {
        if (!_sink.FlushesConcurrently)
        {
            Checkpoint();
            return false;
        }
        CheckpointBesideTheCopy();
        _probeFlushRunning = true;
        return true;
    }

    private bool FlushEnded => _flush is null || _flush.Finished;

    private void CollectFlush()
    {
        if (_flush is null) return;
        try
        {
            if (!_flush.Collect()) return;
            _durableDescOffset = _flushingDescOffset;
            if (_probeFlushRunning) (_probeFlushSeconds, _probeFlushRunning) = (_timed!.LastFlushSeconds, false);
        }
        catch (IOException e) when (Libc.IsTargetFailure(e))
        {
            RollBackToDurable(e);
        }
    }

    private void RollBackToDurable(IOException e)
    {
        try
        {
            Array.Clear(_desc);
            for (long at = _durableDescOffset; at < _descFileOffset; at += _desc.Length)
                _sink.Write(at, _desc.AsSpan(0, (int)Math.Min(_desc.Length, _descFileOffset - at)));
            _sink.Flush();
        }
        catch (IOException) { }   // best effort: the target is failing
        _descFileOffset = _durableDescOffset;
        _descCount = _dataLen = 0;   // what was buffered is dropped with the rest
        throw new TargetFullException(Reason(e));
    }
}

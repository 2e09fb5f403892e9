using System.Buffers.Binary;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;

namespace CaptureAgent.Output;

/// <summary>
/// Writes a kdump-compressed dump (what crash, drgn, libkdumpfile and makedumpfile read) from a
/// vmcore in bounded memory: the pfn range is filtered in windows, first to count the dumpable
/// pages (the descriptor table is sized by them), then again to write bitmaps, descriptors and
/// page data. Descriptors reach the sink only after the data they point to, so a dump cut short
/// leaves descriptors that are either valid or zero (which readers report as incomplete).
/// </summary>
public sealed class KdumpCompressedWriter
{
    private const int DescriptorSize = 24;
    private const int DescriptorBatch = 2730;         // 64 KiB of descriptors
    private const int DataBufferBytes = 1 << 20;
    private const int BatchPages = 256;             // 1 MiB of input per batch

    private enum PageKind : byte { Data, Zero, Unreadable }

    private readonly DumpSource _src;
    private readonly DumpOptions _opt;
    private readonly IDumpSink _sink;
    private readonly int _ps;

    private readonly byte[] _desc = new byte[DescriptorBatch * DescriptorSize];
    private int _descCount;
    private long _descFileOffset;
    private readonly byte[] _data = new byte[DataBufferBytes];
    private int _dataLen;
    private long _dataFileOffset;

    public KdumpCompressedWriter(DumpSource source, IDumpSink sink, DumpOptions options)
    {
        _src = source;
        _sink = sink;
        _opt = options;
        _ps = source.PageSize;
    }

    public DumpResult Write()
    {
        var (filter, result) = _src.BeginDump(_opt.Level);
        ulong maxMapnr = _src.MaxMapnr;
        ulong window = Math.Max(32768, (_opt.WindowPfns + 32767) / 32768 * 32768);
        var bitmap = new PfnBitmap(Math.Min(window, (maxMapnr + 63) / 64 * 64));
        bool singleWindow = window >= maxMapnr;

        // Pass 1: count what goes in, so the descriptor table can be placed.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        filter.BeginPass();
        ulong dumpable = 0;
        for (ulong start = 0; start < maxMapnr; start += window)
        {
            bitmap.Reset(start, Math.Min(window, maxMapnr - start));
            filter.FillDumpable(bitmap);
            dumpable += bitmap.PopCount();
        }
        result.DumpablePages = dumpable;
        result.FilterSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        var header = BuildHeader(maxMapnr);
        _sink.Write(0, header.BuildMainHeader());
        _sink.Write(header.BlockSize, header.BuildSubHeader());
        if (header.Notes.Length > 0) _sink.Write(header.BlockSize + KdumpHeader.SubHeaderSize, header.Notes);

        // 1st bitmap: pages that exist. Its own window keeps a single filtered window reusable.
        var present = new PfnBitmap(Math.Min(window, (maxMapnr + 63) / 64 * 64));
        for (ulong start = 0; start < maxMapnr; start += window)
        {
            present.Reset(start, Math.Min(window, maxMapnr - start));
            filter.FillPresent(present);
            _sink.Write(header.Bitmap1Offset + (long)(start / 8), present.Bytes.AsSpan(0, present.ByteLength));
        }

        _descFileOffset = header.DescriptorsOffset;
        long dataStart = header.DescriptorsOffset + (long)dumpable * DescriptorSize;
        _dataFileOffset = dataStart;
        bool zeroShared = (_opt.Level & DumpLevel.Zero) != 0;
        if (zeroShared)
        {
            _sink.Write(dataStart, new byte[_ps]);
            _dataFileOffset += _ps;
        }

        using var batch = new BatchCompressor(_opt.Codec, _ps, BatchPages, _opt.Threads, _opt.ZstdLevel);
        var pages = new byte[BatchPages * _ps];
        var kinds = new PageKind[BatchPages];
        var toCompress = new int[BatchPages];
        ulong done = 0;
        _opt.Progress?.Invoke(0, dumpable);

        // Pass 2: the 2nd bitmap and the pages, window by window, a batch of pages at a time.
        if (!singleWindow) filter.BeginPass();
        for (ulong start = 0; start < maxMapnr; start += window)
        {
            if (!singleWindow)
            {
                bitmap.Reset(start, Math.Min(window, maxMapnr - start));
                filter.FillDumpable(bitmap);
            }
            _sink.Write(header.Bitmap2Offset + (long)(start / 8), bitmap.Bytes.AsSpan(0, bitmap.ByteLength));

            ulong pfn = bitmap.NextSet(bitmap.Start);
            while (pfn < bitmap.End)
            {
                // Fill a batch from runs of consecutive selected pages, one pread per run piece.
                int count = 0, compressCount = 0;
                while (count < BatchPages && pfn < bitmap.End)
                {
                    ulong runEnd = Math.Min(bitmap.NextClear(pfn), pfn + (ulong)(BatchPages - count));
                    int n = (int)(runEnd - pfn);
                    var chunk = pages.AsSpan(count * _ps, n * _ps);
                    bool chunkOk = _src.Vmcore.TryRead(pfn * (ulong)_ps, chunk);
                    for (int i = 0; i < n; i++)
                    {
                        var page = chunk.Slice(i * _ps, _ps);
                        int slot = count + i;
                        if (!chunkOk && !_src.Vmcore.TryRead((pfn + (ulong)i) * (ulong)_ps, page)) kinds[slot] = PageKind.Unreadable;
                        else if (zeroShared && page.IndexOfAnyExcept((byte)0) < 0) kinds[slot] = PageKind.Zero;
                        else { kinds[slot] = PageKind.Data; toCompress[compressCount++] = slot; }
                    }
                    count += n;
                    pfn = bitmap.NextSet(runEnd);
                }

                batch.Compress(pages, toCompress, compressCount);
                for (int slot = 0; slot < count; slot++)
                {
                    switch (kinds[slot])
                    {
                        case PageKind.Unreadable:
                            // A zero descriptor: readers report the page as missing rather than wrong.
                            result.UnreadablePages++;
                            AddDescriptor(0, 0, 0);
                            break;
                        case PageKind.Zero:
                            result.ZeroPages++;
                            AddDescriptor(dataStart, (uint)_ps, 0);
                            break;
                        default:
                            int csize = batch.Sizes[slot];
                            if (csize > 0) AddPage(batch.Output(slot), (uint)batch.Codec);
                            else AddPage(pages.AsSpan(slot * _ps, _ps), 0);
                            result.StoredPages++;
                            break;
                    }
                }
                done += (ulong)count;
                _opt.Progress?.Invoke(done, dumpable);
            }
        }
        FlushCaches();
        result.CopySeconds = clock.Elapsed.TotalSeconds;
        _opt.Progress?.Invoke(dumpable, dumpable);
        result.Filter = filter.Stats;
        result.Filter.Zero = result.ZeroPages;
        result.BytesWritten = _dataFileOffset;
        if (result.UnreadablePages > 0)
            result.Problems.Add($"{result.UnreadablePages} pages could not be read from the vmcore; they are marked missing in the dump");
        if (filter.Stats.UnreadableStructPages > 0)
            result.Problems.Add($"struct page of {filter.Stats.UnreadableStructPages} pages could not be read; those pages were kept");
        _sink.Complete();
        return result;
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

    /// <summary>Data first, then the descriptors that point into it.</summary>
    private void FlushCaches()
    {
        if (_dataLen > 0)
        {
            _sink.Write(_dataFileOffset, _data.AsSpan(0, _dataLen));
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
}

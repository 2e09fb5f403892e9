using System.Buffers.Binary;
using System.Numerics;
using CaptureAgent.Compression;
using CaptureAgent.Output;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Vmcore;

/// <summary>
/// Reads a kdump-compressed file (ours or makedumpfile's) as physical memory, page by page,
/// without loading its bitmaps: a prefix count per 4096-pfn block finds a page's descriptor.
/// </summary>
public sealed class KdumpFile : IPhysicalMemory, IDisposable
{
    private const int BlockPfns = 4096;            // bitmap bytes per block: 512
    private readonly SafeFileHandle _file;
    private readonly long _bitmap1, _bitmap2, _descriptors;
    private readonly ulong[] _prefix;              // set bits of the 2nd bitmap before each block
    private readonly byte[] _bm1Block = new byte[BlockPfns / 8], _bm2Block = new byte[BlockPfns / 8];
    private long _cachedBlock = -1;
    private readonly byte[] _page, _raw;
    private ulong _cachedPfn = ulong.MaxValue;

    public KdumpHeader Header { get; }
    public int PageSize { get; }
    public ulong MaxPfn { get; }
    public byte[] NoteBlob { get; }
    public VmcoreInfo? Info { get; }
    public bool Incomplete => (Header.Status & KdumpHeader.StatusIncomplete) != 0;

    public KdumpFile(string path)
    {
        try
        {
            _file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException($"cannot open {path}: {e.Message}");
        }
        try
        {
            var main = new byte[KdumpHeader.HeaderSize];
            ReadExact(main, 0, "header");
            int blockSize = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(428));
            if (blockSize is < 4096 or > 262144) throw new VmcoreException($"{path}: bad kdump block_size {blockSize}");
            var sub = new byte[KdumpHeader.SubHeaderSize];
            ReadExact(sub, blockSize, "sub header");
            try
            {
                Header = KdumpHeader.Parse(main, sub, out int subBlocks, out uint bitmapBlocks, out long notesOffset, out long notesSize);
                PageSize = Header.BlockSize;
                MaxPfn = Header.MaxMapnr;
                if (subBlocks is < 1 or > 1 << 16) throw new VmcoreException($"{path}: implausible sub header size of {subBlocks} blocks");
                long bitmapBytes = (long)bitmapBlocks * PageSize / 2;
                if ((ulong)bitmapBytes * 8 < MaxPfn) throw new VmcoreException($"{path}: bitmaps too small for max_mapnr {MaxPfn}");
                _bitmap1 = (1L + subBlocks) * PageSize;
                _bitmap2 = _bitmap1 + bitmapBytes;
                _descriptors = (1L + subBlocks + bitmapBlocks) * PageSize;
                // Before sizing anything by max_mapnr: a damaged header must not cost gigabytes.
                long length = RandomAccess.GetLength(_file);
                if (_descriptors > length) throw new VmcoreException($"{path}: the bitmaps end at {_descriptors}, past the end of the file ({length} bytes)");
                if (notesOffset < 0) throw new VmcoreException($"{path}: negative note offset {notesOffset}");
                if (notesSize is < 0 or > 64 << 20) throw new VmcoreException($"{path}: implausible note size {notesSize}");
                NoteBlob = new byte[notesSize];
                if (notesSize > 0) ReadExact(NoteBlob, notesOffset, "notes");
            }
            catch (InvalidDataException e)
            {
                throw new VmcoreException($"{path}: {e.Message}");
            }
            foreach (var n in ElfNotes.Parse(NoteBlob))
                if (n.Name == "VMCOREINFO") { Info = VmcoreInfo.Parse(NoteBlob.AsSpan(n.DescOffset, n.DescSize)); break; }
            _prefix = BuildPrefix();
            _page = new byte[PageSize];
            _raw = new byte[PageSize];
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    private void ReadExact(Span<byte> dst, long offset, string what)
    {
        if (RandomAccess.Read(_file, dst, offset) != dst.Length) throw new VmcoreException($"kdump file truncated in its {what}");
    }

    private ulong[] BuildPrefix()
    {
        ulong blocks = (MaxPfn + BlockPfns - 1) / BlockPfns;
        var prefix = new ulong[blocks + 1];
        var buf = new byte[1 << 20];
        ulong bytesTotal = (MaxPfn + 7) / 8;
        ulong count = 0, pos = 0;
        while (pos < bytesTotal)
        {
            int n = (int)Math.Min((ulong)buf.Length, bytesTotal - pos);
            ReadExact(buf.AsSpan(0, n), _bitmap2 + (long)pos, "2nd bitmap");
            for (int i = 0; i < n; i++)
            {
                ulong byteIndex = pos + (ulong)i;
                if (byteIndex % (BlockPfns / 8) == 0) prefix[byteIndex / (BlockPfns / 8)] = count;
                count += (ulong)BitOperations.PopCount(buf[i]);
            }
            pos += (ulong)n;
        }
        prefix[blocks] = count;
        return prefix;
    }

    public ulong DumpablePages => _prefix[^1];

    /// <summary>File offsets of the 1st and 2nd bitmaps (for reading them in bulk).</summary>
    public long Bitmap1Offset => _bitmap1;
    public long Bitmap2Offset => _bitmap2;

    private void LoadBlock(long block)
    {
        if (block == _cachedBlock) return;
        Array.Clear(_bm1Block);
        Array.Clear(_bm2Block);
        RandomAccess.Read(_file, _bm1Block, _bitmap1 + block * (BlockPfns / 8));
        RandomAccess.Read(_file, _bm2Block, _bitmap2 + block * (BlockPfns / 8));
        _cachedBlock = block;
    }

    public bool IsPresent(ulong pfn)
    {
        if (pfn >= MaxPfn) return false;
        LoadBlock((long)(pfn / BlockPfns));
        int i = (int)(pfn % BlockPfns);
        return (_bm1Block[i >> 3] & (1 << (i & 7))) != 0;
    }

    /// <summary>Whether the page is stored in the file (2nd bitmap).</summary>
    public bool IsDumpable(ulong pfn)
    {
        if (pfn >= MaxPfn) return false;
        LoadBlock((long)(pfn / BlockPfns));
        int i = (int)(pfn % BlockPfns);
        return (_bm2Block[i >> 3] & (1 << (i & 7))) != 0;
    }

    /// <summary>Reads one stored page; false if excluded, missing (incomplete dump) or corrupt.</summary>
    public bool TryReadPage(ulong pfn, Span<byte> page)
    {
        if (pfn == _cachedPfn) { _page.CopyTo(page); return true; }
        if (!IsDumpable(pfn)) return false;
        ulong block = pfn / BlockPfns;
        int inBlock = (int)(pfn % BlockPfns);
        ulong index = _prefix[block];
        for (int i = 0; i < inBlock; i++)
            if ((_bm2Block[i >> 3] & (1 << (i & 7))) != 0) index++;
        Span<byte> d = stackalloc byte[24];
        if (RandomAccess.Read(_file, d, _descriptors + (long)index * 24) != 24) return false;
        long offset = BinaryPrimitives.ReadInt64LittleEndian(d);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
        if (offset <= 0 || size == 0 || size > PageSize) return false;
        var raw = _raw.AsSpan(0, (int)size);
        if (RandomAccess.Read(_file, raw, offset) != size) return false;
        var codec = flags == 0 ? PageCodec.None : (PageCodec)flags;
        if (!PageCompressors.TryDecompress(codec, raw, _page)) return false;
        _cachedPfn = pfn;
        _page.CopyTo(page);
        return true;
    }

    public bool TryRead(ulong paddr, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            ulong pfn = paddr / (ulong)PageSize;
            int off = (int)(paddr % (ulong)PageSize);
            int n = Math.Min(buffer.Length, PageSize - off);
            if (pfn != _cachedPfn && !TryReadPage(pfn, _page)) return false;
            _page.AsSpan(off, n).CopyTo(buffer);
            buffer = buffer[n..];
            paddr += (ulong)n;
        }
        return true;
    }

    /// <summary>What a full check of the stored pages found.</summary>
    public sealed class PageScan
    {
        public ulong Ok, Missing, Corrupt;
        /// <summary>The last pfn whose page was read back whole (0 if none).</summary>
        public ulong LastGoodPfn;
        /// <summary>The first missing pfn after which nothing is stored: where a cut dump stopped.</summary>
        public ulong? StoppedAt;
        public List<string> Problems { get; } = new();
    }

    /// <summary>
    /// Reads every stored page in pfn order with its descriptor and decompresses it (zstd frames
    /// carry a checksum), in bounded memory. A zero descriptor is a page that was not saved.
    /// </summary>
    public PageScan Scan(Action<ulong, ulong>? progress = null)
    {
        var scan = new PageScan();
        long fileLength = RandomAccess.GetLength(_file);
        const int Batch = 2730;
        var descs = new byte[Batch * 24];
        ulong batchStart = 0;
        int batchCount = 0;
        ulong index = 0, total = DumpablePages;
        bool trailingMissing = false;
        for (ulong pfn = 0; pfn < MaxPfn; pfn++)
        {
            if (pfn % BlockPfns == 0 && _prefix[pfn / BlockPfns + 1] == _prefix[pfn / BlockPfns]) { pfn += BlockPfns - 1; continue; }
            if (!IsDumpable(pfn)) continue;
            if (index >= batchStart + (ulong)batchCount)
            {
                batchStart = index;
                int want = (int)Math.Min((ulong)Batch, total - index);
                int got = RandomAccess.Read(_file, descs.AsSpan(0, want * 24), _descriptors + (long)index * 24);
                batchCount = got / 24;
                if (batchCount < want) Array.Clear(descs, batchCount * 24, (want - batchCount) * 24);
                batchCount = want;
            }
            var d = descs.AsSpan((int)(index - batchStart) * 24, 24);
            index++;
            long offset = BinaryPrimitives.ReadInt64LittleEndian(d);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
            if (offset == 0 && size == 0)
            {
                scan.Missing++;
                if (!trailingMissing) { trailingMissing = true; scan.StoppedAt = pfn; }
                continue;
            }
            trailingMissing = false;
            scan.StoppedAt = null;
            string? problem = null;
            if (offset < _descriptors || size == 0 || size > PageSize || offset + size > fileLength)
                problem = $"pfn 0x{pfn:x}: descriptor points outside the file (offset {offset}, size {size})";
            else
            {
                var raw = _raw.AsSpan(0, (int)size);
                var codec = flags == 0 ? PageCodec.None : (PageCodec)flags;
                if (RandomAccess.Read(_file, raw, offset) != size) problem = $"pfn 0x{pfn:x}: short read at {offset}";
                else if (codec == PageCodec.None ? size != PageSize : !PageCompressors.TryDecompress(codec, raw, _page))
                    problem = $"pfn 0x{pfn:x}: page data at {offset} does not decompress ({codec})";
            }
            if (problem is null) { scan.Ok++; scan.LastGoodPfn = pfn; }
            else
            {
                scan.Corrupt++;
                if (scan.Problems.Count < 10) scan.Problems.Add(problem);
            }
            if ((index & 0xffff) == 0) progress?.Invoke(index, total);
        }
        _cachedPfn = ulong.MaxValue;
        return scan;
    }

    public void Dispose() => _file.Dispose();
}

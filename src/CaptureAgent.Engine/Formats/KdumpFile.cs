using System.Buffers.Binary;
using System.Numerics;
using CaptureAgent.Compression;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Formats;

/// <summary>
/// Reads a kdump-compressed file (ours or makedumpfile's) as physical memory, page by page,
/// without loading its bitmaps: a count of dumpable pages before each block of 2^18 pfns (one
/// 64-bit number per 32 KiB of bitmap) and, for the block in use, one per 64 pfns find a page's
/// descriptor. Every size and offset of the header is checked against the file before use.
/// </summary>
public sealed class KdumpFile : IPhysicalMemory, IDisposable
{
    private const int BlockShift = 18;
    private const int BlockPfns = 1 << BlockShift;          // 32 KiB of each bitmap
    private const int DescriptorSize = 24;
    /// <summary>Block counts kept at most (8 MiB): 2^38 pfns, a PiB of memory.</summary>
    private const ulong MaxBlocks = 1 << 20;

    private readonly SafeFileHandle _file;
    private readonly long _bitmap1, _bitmap2, _descriptors, _fileLength;
    private readonly int _subHeaderBlocks;
    private readonly uint _bitmapBlocks;
    private readonly ulong[] _prefix;              // set bits of the 2nd bitmap before each block
    private readonly byte[] _bm1Block = new byte[BlockPfns / 8], _bm2Block = new byte[BlockPfns / 8];
    private readonly int[] _wordPrefix = new int[BlockPfns / 64];   // set bits of the cached block before each word
    private long _cachedBlock = -1;
    private readonly byte[] _page, _raw;
    private ulong _cachedPfn = ulong.MaxValue;

    public KdumpHeader Header { get; }
    public int PageSize { get; }
    public ulong MaxPfn { get; }
    public byte[] NoteBlob { get; }
    public VmcoreInfo? Info { get; }
    public bool Incomplete => (Header.Status & KdumpHeader.StatusIncomplete) != 0;
    /// <summary>The 32-bit max_mapnr of the main header (the sub header's 64-bit one is <see cref="MaxPfn"/> from version 6).</summary>
    public uint MainHeaderMaxMapnr { get; }
    public int HeaderVersion { get; }
    /// <summary>Where the page data starts: after the descriptor table of <see cref="DumpablePages"/> entries.</summary>
    public long DataOffset => _descriptors + (long)DumpablePages * DescriptorSize;

    public KdumpFile(string path)
    {
        try
        {
            _file = InputFile.OpenRegular(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException(ErrorText.Of(e));
        }
        try
        {
            _fileLength = RandomAccess.GetLength(_file);
            var main = new byte[KdumpHeader.HeaderSize];
            ReadExact(main, 0, "header");
            int blockSize = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(428));
            if (blockSize is < 4096 or > 262144 || (blockSize & (blockSize - 1)) != 0) throw new VmcoreException($"{path}: bad kdump block_size {blockSize}");
            var sub = new byte[KdumpHeader.SubHeaderSize];
            ReadExact(sub, blockSize, "sub header");
            long notesOffset, notesSize;
            try
            {
                Header = KdumpHeader.Parse(main, sub, out _subHeaderBlocks, out _bitmapBlocks, out notesOffset, out notesSize);
            }
            catch (InvalidDataException e)
            {
                throw new VmcoreException($"{path}: {e.Message}");
            }
            HeaderVersion = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(8));
            MainHeaderMaxMapnr = BinaryPrimitives.ReadUInt32LittleEndian(main.AsSpan(440));
            PageSize = Header.BlockSize;
            MaxPfn = Header.MaxMapnr;
            if (_subHeaderBlocks is < 1 or > 1 << 16) throw new VmcoreException($"{path}: implausible sub header size of {_subHeaderBlocks} blocks");
            long bitmapBytes = (long)_bitmapBlocks * PageSize / 2;
            if ((ulong)bitmapBytes * 8 < MaxPfn) throw new VmcoreException($"{path}: bitmaps too small for max_mapnr {MaxPfn}");
            if (MaxPfn >> BlockShift >= MaxBlocks) throw new VmcoreException($"{path}: max_mapnr {MaxPfn} describes more than a PiB of memory: not supported");
            _bitmap1 = (1L + _subHeaderBlocks) * PageSize;
            _bitmap2 = _bitmap1 + bitmapBytes;
            _descriptors = (1L + _subHeaderBlocks + _bitmapBlocks) * PageSize;
            // Before sizing anything by max_mapnr: a damaged header must not cost gigabytes.
            if (_descriptors > _fileLength) throw new VmcoreException($"{path}: the bitmaps end at {_descriptors}, past the end of the file ({_fileLength} bytes)");
            if (notesOffset < 0 || notesSize is < 0 or > ElfVmcore.MaxNoteBytes || notesOffset > _fileLength - notesSize)
                throw new VmcoreException($"{path}: its notes ({notesSize} bytes at {notesOffset}) are implausible or lie past the end of the file");
            NoteBlob = new byte[notesSize];
            if (notesSize > 0) ReadExact(NoteBlob, notesOffset, "notes");
            foreach (var n in ElfNotes.Parse(NoteBlob))
                if (n.Name == "VMCOREINFO" && n.DescSize <= ElfVmcore.MaxVmcoreInfoBytes) { Info = VmcoreInfo.Parse(NoteBlob.AsSpan(n.DescOffset, n.DescSize)); break; }
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
        var buf = new byte[BlockPfns / 8];
        ulong count = 0;
        for (ulong block = 0; block < blocks; block++)
        {
            prefix[block] = count;
            int n = BlockBytes(block);
            ReadExact(buf.AsSpan(0, n), _bitmap2 + (long)block * buf.Length, "2nd bitmap");
            count += PopCount(buf.AsSpan(0, n));
        }
        prefix[blocks] = count;
        return prefix;
    }

    /// <summary>Bitmap bytes of a block that lie below max_mapnr (the last block is shorter).</summary>
    private int BlockBytes(ulong block) => (int)Math.Min(BlockPfns / 8, (MaxPfn + 7) / 8 - block * (BlockPfns / 8));

    private static ulong PopCount(ReadOnlySpan<byte> bytes)
    {
        ulong n = 0;
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes);
        foreach (var w in words) n += (ulong)BitOperations.PopCount(w);
        for (int i = words.Length * 8; i < bytes.Length; i++) n += (ulong)BitOperations.PopCount(bytes[i]);
        return n;
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
        int n = BlockBytes((ulong)block);
        RandomAccess.Read(_file, _bm1Block.AsSpan(0, n), _bitmap1 + block * (BlockPfns / 8));
        RandomAccess.Read(_file, _bm2Block.AsSpan(0, n), _bitmap2 + block * (BlockPfns / 8));
        int running = 0;
        for (int w = 0; w < _wordPrefix.Length; w++)
        {
            _wordPrefix[w] = running;
            running += BitOperations.PopCount(BinaryPrimitives.ReadUInt64LittleEndian(_bm2Block.AsSpan(w * 8)));
        }
        _cachedBlock = block;
    }

    public bool IsPresent(ulong pfn)
    {
        if (pfn >= MaxPfn) return false;
        LoadBlock((long)(pfn >> BlockShift));
        int i = (int)(pfn & (BlockPfns - 1));
        return (_bm1Block[i >> 3] & (1 << (i & 7))) != 0;
    }

    /// <summary>Whether the page is stored in the file (2nd bitmap).</summary>
    public bool IsDumpable(ulong pfn)
    {
        if (pfn >= MaxPfn) return false;
        LoadBlock((long)(pfn >> BlockShift));
        int i = (int)(pfn & (BlockPfns - 1));
        return (_bm2Block[i >> 3] & (1 << (i & 7))) != 0;
    }

    /// <summary>The index of a dumpable pfn's descriptor: the set bits of the 2nd bitmap before it.</summary>
    private ulong DescriptorIndex(ulong pfn)
    {
        int i = (int)(pfn & (BlockPfns - 1));
        ulong word = BinaryPrimitives.ReadUInt64LittleEndian(_bm2Block.AsSpan((i >> 6) * 8));
        ulong below = word & ((1UL << (i & 63)) - 1);
        return _prefix[pfn >> BlockShift] + (ulong)_wordPrefix[i >> 6] + (ulong)BitOperations.PopCount(below);
    }

    /// <summary>Reads one stored page; false if excluded, missing (incomplete dump) or corrupt.</summary>
    public bool TryReadPage(ulong pfn, Span<byte> page)
    {
        if (pfn == _cachedPfn) { _page.CopyTo(page); return true; }
        if (!IsDumpable(pfn)) return false;
        ulong index = DescriptorIndex(pfn);
        Span<byte> d = stackalloc byte[DescriptorSize];
        if (RandomAccess.Read(_file, d, _descriptors + (long)index * DescriptorSize) != DescriptorSize) return false;
        long offset = BinaryPrimitives.ReadInt64LittleEndian(d);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
        if (offset <= 0 || size == 0 || size > PageSize || offset > _fileLength - size) return false;
        var codec = flags == 0 ? PageCodec.None : (PageCodec)flags;
        var raw = _raw.AsSpan(0, (int)size);
        if (RandomAccess.Read(_file, raw, offset) != size) return false;
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

    /// <summary>
    /// The header's own numbers checked against each other and against the file, the way the
    /// writers (ours, makedumpfile) lay it out. Empty when consistent.
    /// </summary>
    public List<string> CheckStructure()
    {
        var problems = new List<string>();
        if (HeaderVersion >= 6 && MainHeaderMaxMapnr != (uint)Math.Min(MaxPfn, uint.MaxValue))
            problems.Add($"the header's max_mapnr {MainHeaderMaxMapnr} disagrees with the sub header's {MaxPfn}");
        long oneBitmap = ((long)((MaxPfn + 7) / 8) + PageSize - 1) / PageSize * PageSize;
        if ((long)_bitmapBlocks * PageSize != 2 * oneBitmap)
            problems.Add($"bitmap_blocks {_bitmapBlocks} does not fit max_mapnr {MaxPfn} (two bitmaps of {oneBitmap / PageSize} blocks expected)");
        if (Info?.String("PAGESIZE") is { } ps && VmcoreInfo.ParseNumber(ps) != PageSize)
            problems.Add($"block_size {PageSize} disagrees with the VMCOREINFO page size {ps.Trim()}");
        if (DumpablePages == 0) problems.Add("the 2nd bitmap selects no page: nothing is stored");
        if (DataOffset > _fileLength && !Incomplete)
            problems.Add($"the descriptor table of {DumpablePages} pages ends at {DataOffset}, past the end of the file ({_fileLength} bytes)");
        return problems;
    }

    /// <summary>What a full check of the stored pages found.</summary>
    public sealed class PageScan
    {
        public ulong Ok, Missing, Corrupt;
        /// <summary>The last pfn whose page was read back whole (0 if none).</summary>
        public ulong LastGoodPfn;
        /// <summary>The first missing pfn after which nothing is stored: where a cut dump stopped.</summary>
        public ulong? StoppedAt;
        /// <summary>Pages stored although the 1st bitmap says they do not exist.</summary>
        public ulong NotPresent;
        public List<string> Problems { get; } = new();
    }

    /// <summary>
    /// Reads every stored page in pfn order with its descriptor and decompresses it (zstd frames
    /// carry a checksum), in bounded memory. A zero descriptor is a page that was not saved;
    /// descriptors the file does not hold (a table cut short) count as not saved without being
    /// visited one by one. A data block shared by consecutive descriptors (the zero page) is
    /// checked once.
    /// </summary>
    public PageScan Scan(Action<ulong, ulong>? progress = null)
    {
        var scan = new PageScan();
        const int Batch = 2730;
        var descs = new byte[Batch * DescriptorSize];
        ulong total = DumpablePages;
        // Descriptors present in the file; the rest of the table is missing as a whole.
        ulong inFile = _fileLength > _descriptors ? (ulong)(_fileLength - _descriptors) / DescriptorSize : 0;
        ulong visit = Math.Min(total, inFile);
        ulong batchStart = 0, index = 0;
        int batchCount = 0;
        bool trailingMissing = false;
        (long Offset, uint Size, uint Flags) lastChecked = (-1, 0, 0);
        long dataStart = DataOffset;
        for (ulong block = 0; block < (ulong)_prefix.Length - 1 && index < visit; block++)
        {
            if (_prefix[block + 1] == _prefix[block]) continue;
            LoadBlock((long)block);
            ulong first = block << BlockShift, last = Math.Min(first + BlockPfns, MaxPfn);
            for (ulong pfn = first; pfn < last && index < visit; pfn++)
            {
                int bit = (int)(pfn - first);
                if ((_bm2Block[bit >> 3] & (1 << (bit & 7))) == 0) continue;
                if ((_bm1Block[bit >> 3] & (1 << (bit & 7))) == 0) scan.NotPresent++;
                if (index >= batchStart + (ulong)batchCount)
                {
                    batchStart = index;
                    batchCount = (int)Math.Min((ulong)Batch, visit - index);
                    var span = descs.AsSpan(0, batchCount * DescriptorSize);
                    int got = RandomAccess.Read(_file, span, _descriptors + (long)index * DescriptorSize);
                    span[Math.Max(got, 0)..].Clear();
                }
                var d = descs.AsSpan((int)(index - batchStart) * DescriptorSize, DescriptorSize);
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
                string? problem = (offset, size, flags) == lastChecked ? null : CheckPage(pfn, offset, size, flags, dataStart, scan);
                if (problem is null) { scan.Ok++; scan.LastGoodPfn = pfn; lastChecked = (offset, size, flags); }
                else
                {
                    scan.Corrupt++;
                    if (scan.Problems.Count < 10) scan.Problems.Add(problem);
                }
                if ((index & 0xffff) == 0) progress?.Invoke(index, total);
            }
        }
        if (total > visit)
        {
            // The table is cut short: the pages from the first unvisited descriptor on are not saved.
            scan.Missing += total - visit;
            if (!trailingMissing) scan.StoppedAt = PfnOfDescriptor(visit);
        }
        _cachedPfn = ulong.MaxValue;
        return scan;
    }

    /// <summary>
    /// One stored page checked: inside the data area, of a known codec, decompressing to a page.
    /// Null when good; otherwise what is wrong.
    /// </summary>
    private string? CheckPage(ulong pfn, long offset, uint size, uint flags, long dataStart, PageScan scan)
    {
        if (offset < dataStart || size == 0 || size > PageSize || offset > _fileLength - size)
            return $"pfn 0x{pfn:x}: descriptor points outside the page data (offset {offset}, size {size})";
        var codec = flags == 0 ? PageCodec.None : (PageCodec)flags;
        if (codec is not (PageCodec.None or PageCodec.Zlib or PageCodec.Lzo or PageCodec.Snappy or PageCodec.Zstd))
            return $"pfn 0x{pfn:x}: unknown compression flags 0x{flags:x}";
        var raw = _raw.AsSpan(0, (int)size);
        if (RandomAccess.Read(_file, raw, offset) != size) return $"pfn 0x{pfn:x}: short read at {offset}";
        if (codec == PageCodec.None ? size != PageSize : !PageCompressors.TryDecompress(codec, raw, _page))
            return $"pfn 0x{pfn:x}: page data at {offset} does not decompress ({codec.ToString().ToLowerInvariant()})";
        return null;
    }

    /// <summary>The pfn whose descriptor is number <paramref name="index"/> (the index-th set bit of the 2nd bitmap).</summary>
    private ulong PfnOfDescriptor(ulong index)
    {
        int lo = 0, hi = _prefix.Length - 2;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >>> 1;
            if (_prefix[mid] <= index) lo = mid; else hi = mid - 1;
        }
        LoadBlock(lo);
        ulong seen = _prefix[lo], first = (ulong)lo << BlockShift;
        for (ulong pfn = first; pfn < Math.Min(first + BlockPfns, MaxPfn); pfn++)
        {
            int bit = (int)(pfn - first);
            if ((_bm2Block[bit >> 3] & (1 << (bit & 7))) == 0) continue;
            if (seen++ == index) return pfn;
        }
        return MaxPfn;
    }

    public void Dispose() => _file.Dispose();
}

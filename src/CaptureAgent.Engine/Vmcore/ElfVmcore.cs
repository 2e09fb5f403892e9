using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;

namespace CaptureAgent.Vmcore;

/// <summary>A PT_LOAD of the vmcore: physical range [PhysStart, PhysStart+MemSize), file bytes for the first FileSize.</summary>
public readonly record struct LoadSegment(ulong PhysStart, ulong VirtStart, ulong FileOffset, ulong FileSize, ulong MemSize)
{
    public ulong PhysEnd => PhysStart + MemSize;
}

/// <summary>
/// An ELF64 core file as the kdump kernel exposes it in /proc/vmcore (or a copy of it, or QEMU's
/// dump-guest-memory). Reads with pread at the byte ranges asked for; holds no page data itself.
/// </summary>
public sealed class ElfVmcore : IVmcoreImage
{
    /// <summary>x86_64's architectural limit (MAXPHYADDR); no kernel has memory above it.</summary>
    public const int PhysicalAddressBits = 52;
    /// <summary>
    /// PT_LOADs kept (40 bytes each, twice): /proc/vmcore has one per memory range, QEMU's paging
    /// dump a few thousand. More is damage, and would not fit the agent's heap.
    /// </summary>
    public const int MaxLoadSegments = 65536;
    /// <summary>Notes held in memory and copied into the dump: CPU registers and VMCOREINFO are a few KiB a CPU.</summary>
    public const int MaxNoteBytes = 4 << 20;
    /// <summary>One note larger than this (a device dump, NT_VMCOREDD) is left out when the notes do not fit.</summary>
    private const int MaxKeptNoteBytes = 64 << 10;
    /// <summary>A kernel writes VMCOREINFO into one page (VMCOREINFO_BYTES); a larger one is not a kernel's.</summary>
    public const int MaxVmcoreInfoBytes = 64 << 10;
    private const int PhdrChunk = 1024;

    private readonly SafeFileHandle _file;
    private readonly LoadSegment[] _byPhys;   // sorted by PhysStart, for lookups
    private int _lastHit;

    public string Path { get; }
    public IReadOnlyList<LoadSegment> Segments { get; }
    public byte[] NoteBlob { get; }
    public IReadOnlyList<ElfNote> Notes { get; }
    public VmcoreInfo? Info { get; }
    /// <summary>Offset of the VMCOREINFO descriptor inside <see cref="NoteBlob"/>, or -1.</summary>
    public int VmcoreInfoOffset { get; } = -1;
    public int VmcoreInfoSize { get; }
    public int CpuCount { get; }
    public int PageSize { get; }
    public ulong MaxPfn { get; }
    /// <summary>One past the highest pfn whose bytes are in the file (zero-filled p_memsz tails left out).</summary>
    public ulong FileBackedMaxPfn { get; }
    /// <summary>What of the file was left out or could not be used, one line each (the dump is then degraded).</summary>
    public List<string> Problems { get; } = new();
    /// <summary>Set when the file is shorter than its program headers say; names what is missing.</summary>
    public string? TruncationWarning { get; }
    public ushort Machine { get; }
    /// <summary>The file's length in bytes (/proc/vmcore has one too), or -1 when it cannot be told.</summary>
    public long FileLength { get; }

    public ElfVmcore(string path, int pageSize = 4096)
    {
        Path = path;
        PageSize = pageSize;
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
            long fileLength = FileLength = SafeLength(_file);
            Span<byte> eh = stackalloc byte[64];
            if (RandomAccess.Read(_file, eh, 0) < 64) throw new VmcoreException($"{path}: too short for an ELF header");
            if (eh[0] != 0x7f || eh[1] != (byte)'E' || eh[2] != (byte)'L' || eh[3] != (byte)'F')
                throw new VmcoreException($"{path}: not an ELF file");
            if (eh[4] != 2 || eh[5] != 1) throw new VmcoreException($"{path}: only little-endian ELF64 vmcores are supported");
            if (BinaryPrimitives.ReadUInt16LittleEndian(eh[16..]) != 4) throw new VmcoreException($"{path}: not an ELF core file (e_type != ET_CORE)");
            Machine = BinaryPrimitives.ReadUInt16LittleEndian(eh[18..]);
            var (phoff, phentsize, phnum) = ProgramHeaderTable(eh, fileLength);

            var loads = new List<LoadSegment>();
            var notes = new List<(ulong off, ulong size)>();
            var truncatedPages = 0UL;
            int beyondAddressSpace = 0;
            var ph = new byte[PhdrChunk * phentsize];
            for (uint first = 0; first < phnum; first += PhdrChunk)
            {
                int count = (int)Math.Min(PhdrChunk, phnum - first);
                var chunk = ph.AsSpan(0, count * phentsize);
                if (RandomAccess.Read(_file, chunk, (long)(phoff + (ulong)first * (ulong)phentsize)) != chunk.Length)
                    throw new VmcoreException($"{path}: truncated program headers");
                for (int i = 0; i < count; i++)
                {
                    var p = chunk.Slice(i * phentsize, 56);
                    uint type = BinaryPrimitives.ReadUInt32LittleEndian(p);
                    ulong off = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                    ulong vaddr = BinaryPrimitives.ReadUInt64LittleEndian(p[16..]);
                    ulong paddr = BinaryPrimitives.ReadUInt64LittleEndian(p[24..]);
                    ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(p[32..]);
                    ulong memsz = BinaryPrimitives.ReadUInt64LittleEndian(p[40..]);
                    if (type == 4 && filesz > 0) notes.Add((off, filesz));
                    if (type != 1 || memsz == 0) continue;
                    // Nothing of a machine lies above its physical address width: such a segment is damage.
                    if (paddr >= 1UL << PhysicalAddressBits || memsz > (1UL << PhysicalAddressBits) - paddr) { beyondAddressSpace++; continue; }
                    if (filesz > memsz) filesz = memsz;
                    if (fileLength >= 0 && (off > (ulong)fileLength || filesz > (ulong)fileLength - off))
                    {
                        // Keep what the file really holds; the rest of the segment is absent, not zero.
                        ulong have = (ulong)fileLength > off ? (ulong)fileLength - off : 0;
                        have -= have % (ulong)pageSize;
                        truncatedPages += (filesz - have) / (ulong)pageSize;
                        filesz = have;
                        memsz = have;
                        if (memsz == 0) continue;
                    }
                    if (loads.Count == MaxLoadSegments)
                        throw new VmcoreException($"{path}: more than {MaxLoadSegments} PT_LOAD segments; a vmcore has one per memory range");
                    loads.Add(new LoadSegment(paddr, vaddr, off, filesz, memsz));
                }
            }
            if (beyondAddressSpace > 0)
                Problems.Add($"{path}: {beyondAddressSpace} PT_LOAD segment(s) lie beyond the {PhysicalAddressBits}-bit physical address space: left out");
            if (loads.Count == 0) throw new VmcoreException($"{path}: no PT_LOAD segments with data");
            if (truncatedPages > 0)
            {
                TruncationWarning = $"{path} is truncated ({fileLength} bytes): {truncatedPages} pages at its end are missing and left out";
                Problems.Add(TruncationWarning);
            }
            Segments = loads;
            _byPhys = loads.OrderBy(s => s.PhysStart).ToArray();
            ulong maxEnd = 0, fileEnd = 0;
            foreach (var s in loads)
            {
                maxEnd = Math.Max(maxEnd, s.PhysEnd);
                fileEnd = Math.Max(fileEnd, s.PhysStart + s.FileSize);
            }
            MaxPfn = (maxEnd + (ulong)pageSize - 1) / (ulong)pageSize;
            FileBackedMaxPfn = (fileEnd + (ulong)pageSize - 1) / (ulong)pageSize;

            var blob = ReadNotes(notes, fileLength);
            // A VMCOREINFO note larger than a kernel writes is not read, nor copied into dumps.
            foreach (var n in ElfNotes.Parse(blob))
                if (n.Name == "VMCOREINFO" && n.DescSize > MaxVmcoreInfoBytes)
                {
                    Problems.Add($"{path}: its VMCOREINFO note is {n.DescSize} bytes, not a kernel's (at most a page): left out");
                    blob = ElfNotes.Without(blob, n);
                    break;
                }
            NoteBlob = blob;
            Notes = ElfNotes.Parse(NoteBlob);
            foreach (var n in Notes)
            {
                if (n.Name == "CORE" && n.Type == ElfNotes.NT_PRSTATUS) CpuCount++;
                if (n.Name == "VMCOREINFO" && Info is null && n.DescSize <= MaxVmcoreInfoBytes)
                {
                    VmcoreInfoOffset = n.DescOffset;
                    VmcoreInfoSize = n.DescSize;
                    Info = VmcoreInfo.Parse(NoteBlob.AsSpan(n.DescOffset, n.DescSize));
                }
            }
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>Where the program headers are and how many, each checked against the file.</summary>
    private (ulong Offset, int EntrySize, uint Count) ProgramHeaderTable(ReadOnlySpan<byte> eh, long fileLength)
    {
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(eh[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[54..]);
        uint phnum = BinaryPrimitives.ReadUInt16LittleEndian(eh[56..]);
        if (phentsize is < 56 or > 4096) throw new VmcoreException($"{Path}: bad e_phentsize {phentsize}");
        if (phnum == 0xffff)
        {
            // PN_XNUM: the real count lives in section header 0's sh_info (QEMU uses this for many loads).
            ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(eh[40..]);
            Span<byte> sh = stackalloc byte[64];
            if (shoff > long.MaxValue || RandomAccess.Read(_file, sh, (long)shoff) < 64) throw new VmcoreException($"{Path}: truncated section header");
            phnum = BinaryPrimitives.ReadUInt32LittleEndian(sh[44..]);
        }
        // Besides PT_LOADs: a PT_NOTE per CPU at most (older kernels), a few others.
        if (phnum == 0 || phnum > MaxLoadSegments + 16384) throw new VmcoreException($"{Path}: implausible program header count {phnum}");
        ulong tableBytes = (ulong)phnum * (ulong)phentsize;
        if (phoff > long.MaxValue || (fileLength >= 0 && (phoff > (ulong)fileLength || tableBytes > (ulong)fileLength - phoff)))
            throw new VmcoreException($"{Path}: its {phnum} program headers at offset {phoff} lie past the end of the file");
        return (phoff, phentsize, phnum);
    }

    /// <summary>
    /// The PT_NOTE segments, concatenated. When they are larger than <see cref="MaxNoteBytes"/>
    /// (device dumps), only the notes of at most 64 KiB each are kept (registers, VMCOREINFO), and
    /// what was left out is reported.
    /// </summary>
    private byte[] ReadNotes(List<(ulong Off, ulong Size)> segments, long fileLength)
    {
        ulong total = 0;
        foreach (var (off, size) in segments)
        {
            if (fileLength >= 0 && (off > (ulong)fileLength || size > (ulong)fileLength - off))
                throw new VmcoreException($"{Path}: a PT_NOTE segment lies past the end of the file (truncated)");
            total += size;
        }
        if (total <= MaxNoteBytes)
        {
            var blob = new byte[total];
            int at = 0;
            foreach (var (off, size) in segments)
            {
                int got = RandomAccess.Read(_file, blob.AsSpan(at, (int)size), (long)off);
                if (got != (int)size) throw new VmcoreException($"{Path}: truncated PT_NOTE");
                at += got;
            }
            return blob;
        }
        var kept = new MemoryStream();
        ulong dropped = 0;
        var droppedNames = new SortedSet<string>(StringComparer.Ordinal);
        Span<byte> header = stackalloc byte[12];
        Span<byte> name = stackalloc byte[32];
        foreach (var (off, size) in segments)
        {
            for (ulong pos = 0; pos + 12 <= size;)
            {
                if (RandomAccess.Read(_file, header, (long)(off + pos)) != 12) break;
                ulong namesz = BinaryPrimitives.ReadUInt32LittleEndian(header), descsz = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
                if (namesz == 0 && descsz == 0) break;
                ulong noteBytes = 12 + ((namesz + 3) & ~3UL) + ((descsz + 3) & ~3UL);
                if (noteBytes > size - pos) break;
                if (noteBytes <= MaxKeptNoteBytes && kept.Length + (long)noteBytes <= MaxNoteBytes)
                {
                    var note = new byte[noteBytes];
                    if (RandomAccess.Read(_file, note, (long)(off + pos)) != note.Length) break;
                    kept.Write(note);
                }
                else
                {
                    dropped += noteBytes;
                    var n = name[..(int)Math.Min(namesz, (ulong)name.Length)];
                    if (RandomAccess.Read(_file, n, (long)(off + pos + 12)) == n.Length && droppedNames.Count < 8)
                        droppedNames.Add(System.Text.Encoding.ASCII.GetString(n[..(n.IndexOf((byte)0) is int z and >= 0 ? z : n.Length)]));
                }
                pos += noteBytes;
            }
        }
        Problems.Add($"{Path}: its notes take {total} bytes; {dropped} bytes of large notes ({string.Join(", ", droppedNames)}) are left out of the dump");
        return kept.ToArray();
    }

    private static long SafeLength(SafeFileHandle h)
    {
        try
        {
            long len = RandomAccess.GetLength(h);
            // /proc/vmcore reports its true size; a character device or pipe reports 0.
            return len > 0 ? len : -1;
        }
        catch (IOException)
        {
            return -1;
        }
    }

    public bool IsPresent(ulong pfn) => FindSegment(pfn * (ulong)PageSize) >= 0;

    /// <summary>Index into the physical-sorted segment array of the segment holding paddr, or -1.</summary>
    private int FindSegment(ulong paddr)
    {
        var segs = _byPhys;
        int hint = _lastHit;
        if ((uint)hint < (uint)segs.Length && paddr >= segs[hint].PhysStart && paddr < segs[hint].PhysEnd) return hint;
        int lo = 0, hi = segs.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (segs[mid].PhysStart <= paddr) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        // Segments may overlap (kernel text is also in the direct map): scan back for one that covers paddr.
        for (int i = found; i >= 0; i--)
        {
            if (paddr < segs[i].PhysEnd) { _lastHit = i; return i; }
            if (found - i > 4) break;
        }
        return -1;
    }

    /// <summary>How many bytes starting at paddr lie in one segment (0 if paddr is in a hole).</summary>
    public ulong ContiguousBytes(ulong paddr)
    {
        int i = FindSegment(paddr);
        return i < 0 ? 0 : _byPhys[i].PhysEnd - paddr;
    }

    public bool TryRead(ulong paddr, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int i = FindSegment(paddr);
            if (i < 0) return false;
            var s = _byPhys[i];
            ulong inSeg = paddr - s.PhysStart;
            int n = (int)Math.Min((ulong)buffer.Length, s.PhysEnd - paddr);
            var chunk = buffer[..n];
            int fromFile = inSeg >= s.FileSize ? 0 : (int)Math.Min((ulong)n, s.FileSize - inSeg);
            if (fromFile > 0)
            {
                int got = ReadFully(chunk[..fromFile], (long)(s.FileOffset + inSeg));
                if (got != fromFile) return false;
            }
            // Bytes past p_filesz inside p_memsz read as zero, as makedumpfile does.
            chunk[fromFile..].Clear();
            buffer = buffer[n..];
            paddr += (ulong)n;
        }
        return true;
    }

    private int ReadFully(Span<byte> dst, long offset)
    {
        int total = 0;
        while (total < dst.Length)
        {
            int got;
            try
            {
                got = RandomAccess.Read(_file, dst[total..], offset + total);
            }
            catch (IOException)
            {
                return total;
            }
            if (got <= 0) break;
            total += got;
        }
        return total;
    }

    public void Dispose() => _file.Dispose();
}

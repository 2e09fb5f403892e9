using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

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
    private const int MaxNoteBytes = 64 << 20;
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
    /// <summary>Set when the file is shorter than its program headers say; names what is missing.</summary>
    public string? TruncationWarning { get; }
    public ushort Machine { get; }

    public ElfVmcore(string path, int pageSize = 4096)
    {
        Path = path;
        PageSize = pageSize;
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
            long fileLength = SafeLength(_file);
            Span<byte> eh = stackalloc byte[64];
            if (RandomAccess.Read(_file, eh, 0) < 64) throw new VmcoreException($"{path}: too short for an ELF header");
            if (eh[0] != 0x7f || eh[1] != (byte)'E' || eh[2] != (byte)'L' || eh[3] != (byte)'F')
                throw new VmcoreException($"{path}: not an ELF file");
            if (eh[4] != 2 || eh[5] != 1) throw new VmcoreException($"{path}: only little-endian ELF64 vmcores are supported");
            if (BinaryPrimitives.ReadUInt16LittleEndian(eh[16..]) != 4) throw new VmcoreException($"{path}: not an ELF core file (e_type != ET_CORE)");
            Machine = BinaryPrimitives.ReadUInt16LittleEndian(eh[18..]);
            ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(eh[32..]);
            ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[54..]);
            uint phnum = BinaryPrimitives.ReadUInt16LittleEndian(eh[56..]);
            if (phentsize < 56) throw new VmcoreException($"{path}: bad e_phentsize {phentsize}");
            if (phnum == 0xffff)
            {
                // PN_XNUM: the real count lives in section header 0's sh_info (QEMU uses this for many loads).
                ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(eh[40..]);
                Span<byte> sh = stackalloc byte[64];
                if (RandomAccess.Read(_file, sh, (long)shoff) < 64) throw new VmcoreException($"{path}: truncated section header");
                phnum = BinaryPrimitives.ReadUInt32LittleEndian(sh[44..]);
            }
            if (phnum == 0 || phnum > 1_000_000) throw new VmcoreException($"{path}: implausible program header count {phnum}");

            var ph = new byte[checked((int)(phnum * phentsize))];
            if (RandomAccess.Read(_file, ph, (long)phoff) != ph.Length) throw new VmcoreException($"{path}: truncated program headers");

            var loads = new List<LoadSegment>();
            var notes = new List<(ulong off, ulong size)>();
            ulong maxEnd = 0;
            var truncatedPages = 0UL;
            for (int i = 0; i < phnum; i++)
            {
                var p = ph.AsSpan(i * phentsize, 56);
                uint type = BinaryPrimitives.ReadUInt32LittleEndian(p);
                ulong off = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                ulong vaddr = BinaryPrimitives.ReadUInt64LittleEndian(p[16..]);
                ulong paddr = BinaryPrimitives.ReadUInt64LittleEndian(p[24..]);
                ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(p[32..]);
                ulong memsz = BinaryPrimitives.ReadUInt64LittleEndian(p[40..]);
                if (type == 4 && filesz > 0) notes.Add((off, filesz));
                if (type != 1 || memsz == 0) continue;
                if (filesz > memsz) filesz = memsz;
                if (fileLength >= 0 && off + filesz > (ulong)fileLength)
                {
                    // Keep what the file really holds; the rest of the segment is absent, not zero.
                    ulong have = (ulong)fileLength > off ? (ulong)fileLength - off : 0;
                    have -= have % (ulong)pageSize;
                    truncatedPages += (filesz - have) / (ulong)pageSize;
                    filesz = have;
                    memsz = have;
                    if (memsz == 0) continue;
                }
                loads.Add(new LoadSegment(paddr, vaddr, off, filesz, memsz));
                maxEnd = Math.Max(maxEnd, paddr + memsz);
            }
            if (loads.Count == 0) throw new VmcoreException($"{path}: no PT_LOAD segments with data");
            if (truncatedPages > 0)
                TruncationWarning = $"{path} is truncated ({fileLength} bytes): {truncatedPages} pages at its end are missing and left out";
            Segments = loads;
            _byPhys = loads.OrderBy(s => s.PhysStart).ToArray();
            MaxPfn = (maxEnd + (ulong)pageSize - 1) / (ulong)pageSize;

            ulong totalNotes = 0;
            foreach (var n in notes) totalNotes += n.size;
            if (totalNotes > MaxNoteBytes) throw new VmcoreException($"{path}: PT_NOTE of {totalNotes} bytes is implausible");
            NoteBlob = new byte[totalNotes];
            int at = 0;
            foreach (var (off, size) in notes)
            {
                int got = RandomAccess.Read(_file, NoteBlob.AsSpan(at, (int)size), (long)off);
                if (got != (int)size) throw new VmcoreException($"{path}: truncated PT_NOTE");
                at += got;
            }
            Notes = ElfNotes.Parse(NoteBlob);
            foreach (var n in Notes)
            {
                if (n.Name == "CORE" && n.Type == ElfNotes.NT_PRSTATUS) CpuCount++;
                if (n.Name == "VMCOREINFO" && Info is null)
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

using System.Buffers.Binary;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Output;

/// <summary>
/// Writes a filtered ELF core (-E). Program headers come first, so the loads are planned in one
/// pass and written in a second, both streaming over the filter windows; zero pages are decided
/// in the first pass by reading them (as makedumpfile does for ELF).
/// </summary>
public sealed class ElfDumpWriter : IDumpWriter
{
    private const int MinGapPages = 256;
    private const int EhdrSize = 64, PhdrSize = 56, ShdrSize = 64;

    private readonly DumpSource _src;
    private readonly ElfVmcore _elf;
    private readonly IDumpSink _sink;
    private readonly DumpOptions _opt;
    private readonly int _ps;

    private readonly record struct Load(ulong Paddr, ulong Vaddr, ulong MemSize, ulong FileSize);

    public ElfDumpWriter(DumpSource source, IDumpSink sink, DumpOptions options)
    {
        _src = source;
        _elf = source.Vmcore as ElfVmcore
            ?? throw new VmcoreException($"{source.Vmcore.Path} is a kdump-compressed dump: -E needs an ELF vmcore as input (as with makedumpfile)");
        _sink = sink;
        _opt = options;
        _ps = source.PageSize;
    }

    public DumpResult Write()
    {
        var (filter, result) = _src.BeginDump(_opt.Level);

        ulong loads = 0, pages = 0;
        WalkLoads(filter, result, (_, l) => { loads++; pages += l.FileSize / (ulong)_ps; });
        result.DumpablePages = pages;

        var notes = _src.Vmcore.NoteBlob;
        ulong phnum = loads + 1;
        bool extended = phnum >= 0xffff;
        long phOffset = EhdrSize;
        long shOffset = phOffset + (long)phnum * PhdrSize;
        long notesOffset = shOffset + (extended ? ShdrSize : 0);
        long dataOffset = (notesOffset + notes.Length + _ps - 1) / _ps * _ps;

        _sink.Write(0, BuildEhdr(phnum, extended ? shOffset : 0));
        if (extended) _sink.Write(shOffset, BuildXnumShdr(phnum));
        _sink.Write(phOffset, BuildPhdr(4, (ulong)notesOffset, 0, 0, (ulong)notes.Length, (ulong)notes.Length, 0));
        _sink.Write(notesOffset, notes);

        var buf = new byte[1 << 20];
        long at = dataOffset;
        ulong done = 0;
        WalkLoads(filter, result, (index, l) =>
        {
            _sink.Write(phOffset + (long)(index + 1) * PhdrSize,
                BuildPhdr(1, l.FileSize > 0 ? (ulong)at : 0, l.Vaddr, l.Paddr, l.FileSize, l.MemSize, 7));
            for (ulong copied = 0; copied < l.FileSize;)
            {
                int n = (int)Math.Min((ulong)buf.Length, l.FileSize - copied);
                var chunk = buf.AsSpan(0, n);
                if (!_src.Vmcore.TryRead(l.Paddr + copied, chunk)) CopyPageByPage(l.Paddr + copied, chunk, result);
                _sink.Write(at, chunk);
                at += n;
                copied += (ulong)n;
                done += (ulong)n / (ulong)_ps;
                _opt.Progress?.Invoke(done, pages);
            }
        });
        result.StoredPages = pages;
        result.Filter = filter.Stats;
        result.BytesWritten = at;
        if (result.UnreadablePages > 0)
            result.Problems.Add($"{result.UnreadablePages} pages could not be read from the vmcore; they are zero-filled in the ELF dump");
        _sink.Complete();
        return result;
    }

    private void CopyPageByPage(ulong paddr, Span<byte> chunk, DumpResult result)
    {
        for (int off = 0; off < chunk.Length; off += _ps)
        {
            var page = chunk.Slice(off, Math.Min(_ps, chunk.Length - off));
            if (!_src.Vmcore.TryRead(paddr + (ulong)off, page))
            {
                page.Clear();
                result.UnreadablePages++;
            }
        }
    }

    /// <summary>
    /// Plans the loads of every vmcore segment in file order, calling back once per load. Like
    /// makedumpfile, every page of a segment stays inside some load's p_memsz, so an excluded page
    /// reads as zeros rather than missing; file data stops at the last kept page of a load, and a
    /// gap of fewer than 256 excluded pages is written with its real content instead of splitting.
    /// </summary>
    private void WalkLoads(PageFilter filter, DumpResult result, Action<ulong, Load> emit)
    {
        ulong window = Math.Max(32768, (_opt.WindowPfns + 32767) / 32768 * 32768);
        ulong maxMapnr = _src.MaxMapnr;
        ulong ps = (ulong)_ps;
        var bitmap = new PfnBitmap(Math.Min(window, (maxMapnr + 63) / 64 * 64));
        var page = new byte[_ps];
        bool dropZero = (_opt.Level & DumpLevel.Zero) != 0;
        ulong index = 0, zero = 0;
        foreach (var seg in _elf.Segments)
        {
            ulong s0 = seg.PhysStart / ps;
            ulong s1 = Math.Min(seg.PhysEnd / ps, maxMapnr);
            if (s1 <= s0) continue;
            filter.BeginPass();
            ulong loadStart = s0 * ps, memsz = 0, filesz = 0, excluded = 0;
            for (ulong w = s0 - s0 % window; w < s1; w += window)
            {
                bitmap.Reset(w, Math.Min(window, maxMapnr - w));
                filter.FillDumpable(bitmap);
                for (ulong pfn = Math.Max(s0, w); pfn < Math.Min(s1, bitmap.End); pfn++)
                {
                    bool keep = bitmap.Get(pfn);
                    if (keep && dropZero && _src.Vmcore.TryRead(pfn * ps, page) && page.AsSpan().IndexOfAnyExcept((byte)0) < 0)
                    {
                        zero++;
                        keep = false;
                    }
                    if (!keep)
                    {
                        excluded++;
                        memsz += ps;
                        continue;
                    }
                    if (excluded >= MinGapPages)
                    {
                        // Close the load: its memsz runs over the gap, its data stopped before it.
                        emit(index++, MakeLoad(seg, loadStart, memsz, filesz));
                        loadStart += memsz;
                        memsz = filesz = 0;
                    }
                    else filesz = memsz;   // a short gap is kept as data
                    memsz += ps;
                    filesz += ps;
                    excluded = 0;
                }
            }
            emit(index++, MakeLoad(seg, loadStart, memsz, filesz));
        }
        result.ZeroPages = zero;
        filter.Stats.Zero = zero;
    }

    private static Load MakeLoad(LoadSegment seg, ulong paddr, ulong memsz, ulong filesz) =>
        new(paddr, seg.VirtStart + (paddr - seg.PhysStart), memsz, filesz);

    private static byte[] BuildEhdr(ulong phnum, long shoff)
    {
        var e = new byte[EhdrSize];
        var s = e.AsSpan();
        s[0] = 0x7f; s[1] = (byte)'E'; s[2] = (byte)'L'; s[3] = (byte)'F';
        s[4] = 2; s[5] = 1; s[6] = 1;                   // ELFCLASS64, little-endian, EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], 4);    // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], 62);   // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], EhdrSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], (ulong)shoff);
        BinaryPrimitives.WriteUInt16LittleEndian(s[52..], EhdrSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[54..], PhdrSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[56..], (ushort)(phnum >= 0xffff ? 0xffff : phnum));
        BinaryPrimitives.WriteUInt16LittleEndian(s[58..], shoff != 0 ? (ushort)ShdrSize : (ushort)0);
        BinaryPrimitives.WriteUInt16LittleEndian(s[60..], shoff != 0 ? (ushort)1 : (ushort)0);
        return e;
    }

    /// <summary>PN_XNUM: section header 0 carries the real program header count in sh_info.</summary>
    private static byte[] BuildXnumShdr(ulong phnum)
    {
        var sh = new byte[ShdrSize];
        BinaryPrimitives.WriteUInt32LittleEndian(sh.AsSpan(44), (uint)phnum);
        return sh;
    }

    private static byte[] BuildPhdr(uint type, ulong offset, ulong vaddr, ulong paddr, ulong filesz, ulong memsz, uint flags)
    {
        var p = new byte[PhdrSize];
        var s = p.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, type);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], filesz);
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], memsz);
        // p_align stays 0: crash tells a kdump ELF from a netdump one by it (page-aligned data plus a
        // non-zero p_align reads as netdump, and KASLR is then not applied).
        return p;
    }
}

using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Dmesg;
using CaptureAgent.Filtering;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// A small vmcore made from a real one: its ELF header, notes and VMCOREINFO, and only the pages the
/// agent reads to understand the kernel (page tables, the mem_section table, the struct pages of the
/// pages kept, init_uts_ns, the printk ring), at their real physical addresses. Dumping it exercises
/// every parser on real kernel data in milliseconds, so it can be mutated thousands of times. Each
/// page is labelled with the structure it was read for, so mutations can aim at one structure.
/// </summary>
public sealed class MetadataVmcore
{
    public const int PageSize = 4096;
    private readonly ushort _machine;
    private readonly byte[] _notes;
    private readonly SortedDictionary<ulong, byte[]> _pages = new();
    private readonly List<LoadSegment> _original;

    /// <summary>What each page was read for: pagetables, mem_section, mem_map, printk, uts.</summary>
    public Dictionary<ulong, string> Labels { get; } = new();
    public string VmcoreInfo { get; }
    public int PageCount => _pages.Count;

    private MetadataVmcore(ushort machine, byte[] notes, string vmcoreInfo, List<LoadSegment> original)
    {
        _machine = machine;
        _notes = notes;
        VmcoreInfo = vmcoreInfo;
        _original = original;
    }

    /// <summary>Reads the metadata of a real vmcore, following the agent's own readers (recorded page by page).</summary>
    public static MetadataVmcore From(string vmcorePath)
    {
        using var elf = new ElfVmcore(vmcorePath);
        var info = elf.Info ?? throw new InvalidOperationException($"{vmcorePath} has no VMCOREINFO");
        var meta = new MetadataVmcore(elf.Machine, elf.NoteBlob, info.Text, elf.Segments.ToList());
        var tables = X86_64PageTables.FromVmcoreInfo(new Recorder(elf, meta, () => "pagetables"), info, elf.Segments);
        string phase = "mem_section";
        var kmem = new KernelMemory(new Recorder(elf, meta, () => phase), tables);
        var layout = new StructPageLayout(info);
        var memMap = MemMap.Build(kmem, info, elf.MaxPfn, PageSize, layout.PageStructSize);
        phase = "printk";
        new PrintkLog(kmem, info).WriteTo(Stream.Null);
        phase = "uts";
        if (info.Symbol("init_uts_ns") is ulong uts) kmem.TryRead(uts, new byte[512]);
        // The struct pages of every kept page, which are pages to keep too: until nothing is added.
        phase = "mem_map";
        for (int round = 0, before = -1; round < 8 && meta._pages.Count != before; round++)
        {
            before = meta._pages.Count;
            var filter = new PageFilter(meta.Segments(), PageSize, elf.MaxPfn, kmem, layout, memMap, DumpLevel.All);
            var bitmap = new PfnBitmap(DumpOptionsWindow);
            filter.BeginPass();
            for (ulong start = 0; start < elf.MaxPfn; start += DumpOptionsWindow)
            {
                bitmap.Reset(start, Math.Min(DumpOptionsWindow, elf.MaxPfn - start));
                filter.FillDumpable(bitmap);
            }
        }
        return meta;
    }

    private const ulong DumpOptionsWindow = 1UL << 22;

    private void Keep(ElfVmcore elf, ulong pfn, string label)
    {
        if (_pages.ContainsKey(pfn)) return;
        var page = new byte[PageSize];
        if (!elf.TryRead(pfn * PageSize, page)) return;
        _pages[pfn] = page;
        Labels[pfn] = label;
    }

    /// <summary>The kept pages as PT_LOADs: one per run of consecutive pfns, with the original virtual addresses.</summary>
    private List<LoadSegment> Segments()
    {
        var segments = new List<LoadSegment>();
        ulong? runStart = null, prev = 0;
        foreach (var pfn in _pages.Keys.Append(ulong.MaxValue))
        {
            if (runStart is ulong s && pfn != prev + 1)
            {
                ulong pa = s * PageSize, size = (prev!.Value + 1 - s) * PageSize;
                segments.Add(new LoadSegment(pa, VirtualAddress(pa), 0, size, size));
                runStart = null;
            }
            if (pfn == ulong.MaxValue) break;
            runStart ??= pfn;
            prev = pfn;
        }
        return segments;
    }

    /// <summary>The direct-map address of pa when an original segment holds it there, else the first one's.</summary>
    private ulong VirtualAddress(ulong pa)
    {
        var holders = _original.Where(s => pa >= s.PhysStart && pa < s.PhysEnd).ToList();
        var seg = holders.FirstOrDefault(s => s.VirtStart < 0xffffffff80000000) is { MemSize: > 0 } direct ? direct : holders.FirstOrDefault();
        return seg.MemSize > 0 ? seg.VirtStart + (pa - seg.PhysStart) : 0;
    }

    /// <summary>Where a serialized image keeps what: file ranges by structure.</summary>
    public sealed class Layout
    {
        public List<(string What, long Offset, long Length)> Regions { get; } = new();
        public IEnumerable<(string What, long Offset, long Length)> Of(string what) => Regions.Where(r => r.What == what);
    }

    /// <summary>The ELF file: header, PT_NOTE, a PT_LOAD per run of pages, the notes (with <paramref name="vmcoreInfo"/>), the pages.</summary>
    public byte[] Serialize(out Layout layout, string? vmcoreInfo = null)
    {
        layout = new Layout();
        var notes = RebuildNotes(vmcoreInfo ?? VmcoreInfo, out long infoOffset, out long infoLength);
        var segments = Segments();
        int phnum = 1 + segments.Count;
        long notesOffset = 64 + 56L * phnum;
        long dataOffset = (notesOffset + notes.Length + PageSize - 1) / PageSize * PageSize;
        var image = new byte[dataOffset + (long)_pages.Count * PageSize];
        var s = image.AsSpan();
        s[0] = 0x7f; s[1] = (byte)'E'; s[2] = (byte)'L'; s[3] = (byte)'F'; s[4] = 2; s[5] = 1; s[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], 4);
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], _machine);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(s[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(s[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(s[56..], (ushort)phnum);
        Phdr(s[64..], 4, (ulong)notesOffset, 0, 0, (ulong)notes.Length);
        notes.CopyTo(s[(int)notesOffset..]);
        layout.Regions.Add(("elf-header", 0, 64));
        layout.Regions.Add(("phdrs", 64, 56L * phnum));
        layout.Regions.Add(("notes", notesOffset, notes.Length));
        layout.Regions.Add(("vmcoreinfo", notesOffset + infoOffset, infoLength));
        long at = dataOffset;
        var pfns = _pages.Keys.ToList();
        int next = 0;
        for (int i = 0; i < segments.Count; i++)
        {
            var seg = segments[i];
            Phdr(s[(int)(64 + 56L * (i + 1))..], 1, (ulong)at, seg.VirtStart, seg.PhysStart, seg.FileSize);
            for (ulong off = 0; off < seg.FileSize; off += PageSize)
            {
                ulong pfn = pfns[next++];
                _pages[pfn].CopyTo(s[(int)at..]);
                layout.Regions.Add((Labels[pfn], at, PageSize));
                at += PageSize;
            }
        }
        return image;
    }

    private static void Phdr(Span<byte> p, uint type, ulong offset, ulong vaddr, ulong paddr, ulong size)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], 7);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], size);
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], size);
    }

    /// <summary>The original notes in their order, the VMCOREINFO one carrying <paramref name="info"/>.</summary>
    private byte[] RebuildNotes(string info, out long infoOffset, out long infoLength)
    {
        var output = new MemoryStream();
        infoOffset = infoLength = 0;
        foreach (var n in ElfNotes.Parse(_notes))
        {
            var desc = n.Name == "VMCOREINFO" ? Encoding.ASCII.GetBytes(info) : _notes.AsSpan(n.DescOffset, n.DescSize).ToArray();
            var name = Encoding.ASCII.GetBytes(n.Name + "\0");
            var h = new byte[12];
            BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)name.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), (uint)desc.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), n.Type);
            output.Write(h);
            output.Write(name);
            output.Write(new byte[(4 - name.Length % 4) % 4]);
            if (n.Name == "VMCOREINFO") (infoOffset, infoLength) = (output.Position, desc.Length);
            output.Write(desc);
            output.Write(new byte[(4 - desc.Length % 4) % 4]);
        }
        return output.ToArray();
    }

    /// <summary>Reads through to the vmcore and keeps every page read, labelled by what was being read.</summary>
    private sealed class Recorder(ElfVmcore elf, MetadataVmcore meta, Func<string> label) : IPhysicalMemory
    {
        public int PageSize => elf.PageSize;
        public ulong MaxPfn => elf.MaxPfn;
        public bool IsPresent(ulong pfn) => elf.IsPresent(pfn);

        public bool TryRead(ulong paddr, Span<byte> buffer)
        {
            if (!elf.TryRead(paddr, buffer)) return false;
            for (ulong pfn = paddr / (ulong)PageSize; pfn <= (paddr + (ulong)buffer.Length - 1) / (ulong)PageSize; pfn++)
                meta.Keep(elf, pfn, label());
            return true;
        }
    }
}

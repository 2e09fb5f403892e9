using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Tests.Synthetic;

/// <summary>Which kernel generation's page-type encoding the synthetic memory imitates.</summary>
public enum KernelStyle { Linux61, Linux612 }

/// <summary>
/// Builds a small but real-shaped x86_64 crash image: page tables (4- or 5-level, with 1 GiB,
/// 2 MiB and 4 KiB leaves), a vmemmap of struct pages at scattered physical pages, a
/// SPARSEMEM_EXTREME mem_section table, init_uts_ns, a VMCOREINFO note, and pages of every
/// class the filter knows. Written as an ELF core with a hole, like /proc/vmcore.
/// </summary>
public sealed class SyntheticKernel
{
    public const int PageSize = 4096;
    public const int StructPage = 64;
    public const ulong PhysBase = 0x1000000;       // kernel loaded 16 MiB up
    public const ulong StartKernelMap = 0xffffffff80000000;
    public const ulong Vmemmap = 0xffffea0000000000;
    public readonly ulong PageOffset;
    public readonly ulong Pfns;
    public readonly (ulong Start, ulong End)[] Ranges;   // present pfn ranges
    public readonly byte[] Mem;
    public readonly KernelStyle Style;
    public readonly bool FiveLevel;
    private ulong _nextFree = 1;
    private readonly ulong _pgd;
    private readonly Dictionary<string, string> _info = new();
    private readonly List<string> _infoOrder = new();

    // Expected classification of each special pfn, filled while building.
    public readonly HashSet<ulong> Free = new(), Cache = new(), CachePrivate = new(), User = new(), Always = new(), Zero = new();

    public ulong TextPfn0 => PhysBase / PageSize;

    public SyntheticKernel(KernelStyle style = KernelStyle.Linux61, bool fiveLevel = false, ulong pfns = 8192, bool compressible = false)
    {
        Style = style;
        FiveLevel = fiveLevel;
        Pfns = pfns;
        PageOffset = fiveLevel ? 0xff11000000000000 : 0xffff888000000000;
        Ranges = [(0, 6144), (6400, pfns)];   // a 1 MiB hole like a PCI window
        Mem = new byte[pfns * PageSize];
        // Recognisable non-zero content everywhere; zero pages are made explicitly.
        // compressible: text-like pages that shrink 3-6x, as real memory does (codec comparisons need that).
        for (ulong p = 0; p < pfns; p++)
        {
            if (compressible)
            {
                var page = Mem.AsSpan((int)(p * PageSize), PageSize);
                for (int at = 0, line = 0; at < PageSize; line++)
                {
                    var text = Encoding.ASCII.GetBytes($"pfn {p:x} line {line}: {(p * 2654435761UL + (ulong)line) % 100003} the quick brown fox\n");
                    int n = Math.Min(text.Length, PageSize - at);
                    text.AsSpan(0, n).CopyTo(page[at..]);
                    at += n;
                }
                continue;
            }
            for (int i = 0; i < PageSize; i += 8)
                BinaryPrimitives.WriteUInt64LittleEndian(Mem.AsSpan((int)(p * PageSize) + i), p * 0x9E3779B97F4A7C15UL + (ulong)i);
        }
        _nextFree = 64;   // low pages: bump allocator for tables and metadata
        _pgd = AllocTable();
        MapDirect();
        MapKernelText();
        BuildStructPages();
        BuildUts();
        BuildInfo();
    }

    private ulong AllocTable()
    {
        ulong pfn = _nextFree++;
        Mem.AsSpan((int)(pfn * PageSize), PageSize).Clear();
        return pfn * PageSize;
    }

    private ulong Entry(ulong table, int index) => BinaryPrimitives.ReadUInt64LittleEndian(Mem.AsSpan((int)table + index * 8));
    private void SetEntry(ulong table, int index, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Mem.AsSpan((int)table + index * 8), value);

    /// <summary>Walks to the table of the given level (4 = PUD's parent ... ) creating tables on the way.</summary>
    private ulong TableFor(ulong va, int stopLevel)
    {
        ulong table = _pgd;
        int top = FiveLevel ? 5 : 4;
        for (int level = top; level > stopLevel; level--)
        {
            int shift = 12 + 9 * (level - 1);
            int idx = (int)((va >> shift) & 511);
            ulong e = Entry(table, idx);
            if ((e & 1) == 0)
            {
                ulong t = AllocTable();
                SetEntry(table, idx, t | 0x63);
                e = t | 0x63;
            }
            table = e & 0x000ffffffffff000;
        }
        return table;
    }

    private void Map1G(ulong va, ulong pa) => SetEntry(TableFor(va, 3), (int)((va >> 30) & 511), pa | 0xe3);
    private void Map2M(ulong va, ulong pa) => SetEntry(TableFor(va, 2), (int)((va >> 21) & 511), pa | 0xe3);
    private void Map4K(ulong va, ulong pa) => SetEntry(TableFor(va, 1), (int)((va >> 12) & 511), pa | 0x63);

    private void MapDirect() => Map1G(PageOffset, 0);

    private void MapKernelText()
    {
        for (ulong off = 0; off < 8UL << 20; off += 2UL << 20) Map2M(StartKernelMap + off, PhysBase + off);
    }

    public ulong DirectVa(ulong pa) => PageOffset + pa;
    public ulong StructPageVa(ulong pfn) => Vmemmap + pfn * StructPage;
    private Span<byte> StructPageBytes(ulong pfn) => Mem.AsSpan((int)_structPagePhys(pfn), StructPage);
    private readonly Dictionary<ulong, ulong> _vmemmapPhys = new();
    private ulong _structPagePhys(ulong pfn)
    {
        ulong va = StructPageVa(pfn);
        ulong page = va & ~0xfffUL;
        return _vmemmapPhys[page] + (va & 0xfff);
    }

    private void BuildStructPages()
    {
        // vmemmap backed by 4 KiB pages taken from the top of memory in reverse order, so a
        // reader that assumes contiguity gets the wrong bytes.
        ulong pagesNeeded = Pfns * StructPage / PageSize;
        for (ulong i = 0; i < pagesNeeded; i++)
        {
            ulong phys = (Pfns - 1 - i) * PageSize;
            Mem.AsSpan((int)phys, PageSize).Clear();
            ulong va = Vmemmap + i * PageSize;
            _vmemmapPhys[va] = phys;
            Map4K(va, phys);
        }
        // Every struct page starts as an ordinary kernel page: _mapcount = -1.
        for (ulong pfn = 0; pfn < Pfns; pfn++) BinaryPrimitives.WriteInt32LittleEndian(StructPageBytes(pfn)[48..], -1);

        // SPARSEMEM_EXTREME: root array -> one mem_section array; the map is stored minus the section's first pfn (0).
        ulong rootPhys = AllocTable(), sectionsPhys = AllocTable();
        BinaryPrimitives.WriteUInt64LittleEndian(Mem.AsSpan((int)rootPhys), DirectVa(sectionsPhys));
        BinaryPrimitives.WriteUInt64LittleEndian(Mem.AsSpan((int)sectionsPhys), Vmemmap | 0x3);   // PRESENT | HAS_MEM_MAP
        _info["SYMBOL(mem_section)"] = DirectVa(rootPhys).ToString("x");

        int lru = Style == KernelStyle.Linux61 ? 4 : 5, priv = Style == KernelStyle.Linux61 ? 13 : 14;
        ulong head = Style == KernelStyle.Linux61 ? 1UL << 16 : 1UL << 6;
        const int Order = 9;

        // buddy blocks of order 3 and 0
        MarkBuddy(512, 3);
        MarkBuddy(530, 0);
        // page cache, private page cache, anonymous, slab-with-odd-mapping
        SetFlags(600, 1UL << lru, 0xffff888012345000);
        Cache.Add(600);
        SetFlags(601, (1UL << lru) | (1UL << priv), 0xffff888012345000);
        CachePrivate.Add(601);
        SetFlags(602, 1UL << lru, 0xffff888012345001);
        User.Add(602);
        if (Style == KernelStyle.Linux61) SetFlags(603, 1UL << 9, 0xffff888012345001);   // PG_slab
        else { SetFlags(603, 0, 0xffff888012345001); SetMapcount(603, unchecked((int)0xf5000000)); }
        // hwpoison (6.12 style only: the 6.1 cloud config has none) and offline pages go at every level
        if (Style == KernelStyle.Linux612) { SetFlags(604, 1UL << 20, 0); Always.Add(604); }
        SetMapcount(605, Style == KernelStyle.Linux61 ? -257 : unchecked((int)0xf1000000));
        Always.Add(605);
        // a buddy page with a garbage order is kept
        SetMapcount(800, Style == KernelStyle.Linux61 ? -129 : unchecked((int)0xf0000000));
        BinaryPrimitives.WriteUInt64LittleEndian(StructPageBytes(800)[40..], 40);
        // an anonymous THP and a hugetlb page, both order 9
        MakeCompound(1024, Order, head, 1UL << lru, 0xffff888012340001, hugetlb: false);
        for (ulong p = 1024; p < 1024 + (1UL << Order); p++) User.Add(p);
        MakeCompound(1536, Order, head, 0, 0, hugetlb: true);
        for (ulong p = 1536; p < 1536 + (1UL << Order); p++) User.Add(p);
        // zero pages: one among kept pages, one inside a buddy block (excluded as free first)
        foreach (ulong z in new ulong[] { 700, 701, 6500 })
        {
            Mem.AsSpan((int)(z * PageSize), PageSize).Clear();
            Zero.Add(z);
        }
        // a free block just past the hole
        MarkBuddy(6400, 4);
    }

    private void SetFlags(ulong pfn, ulong flags, ulong mapping)
    {
        var p = StructPageBytes(pfn);
        BinaryPrimitives.WriteUInt64LittleEndian(p, flags);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], mapping);
    }

    private void SetMapcount(ulong pfn, int value) => BinaryPrimitives.WriteInt32LittleEndian(StructPageBytes(pfn)[48..], value);

    private void MarkBuddy(ulong pfn, int order)
    {
        SetMapcount(pfn, Style == KernelStyle.Linux61 ? -129 : unchecked((int)0xf0000000));
        BinaryPrimitives.WriteUInt64LittleEndian(StructPageBytes(pfn)[40..], (ulong)order);
        for (ulong p = pfn; p < pfn + (1UL << order); p++) Free.Add(p);
    }

    private void MakeCompound(ulong pfn, int order, ulong headMask, ulong flags, ulong mapping, bool hugetlb)
    {
        SetFlags(pfn, headMask | flags, mapping);
        var tail1 = StructPageBytes(pfn + 1);
        if (Style == KernelStyle.Linux61)
        {
            tail1[17] = (byte)order;                  // OFFSET(page.compound_order)
            tail1[16] = (byte)(hugetlb ? 2 : 1);      // OFFSET(page.compound_dtor); HUGETLB_PAGE_DTOR = 2
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(tail1, (ulong)order);   // folio order in _flags_1
            if (hugetlb) SetMapcount(pfn, unchecked((int)0xf4000000));
        }
        for (ulong p = pfn + 1; p < pfn + (1UL << order); p++)
            BinaryPrimitives.WriteUInt64LittleEndian(StructPageBytes(p)[8..], StructPageVa(pfn) | 1);   // compound_head
    }

    public const string UtsRelease = "6.1.0-synthetic";

    private void BuildUts()
    {
        // init_uts_ns inside the kernel image, reached through the 2 MiB text mapping.
        ulong off = 0x123000;
        ulong pa = PhysBase + off;
        var u = Mem.AsSpan((int)pa, 390);
        u.Clear();
        string[] f = ["Linux", "synthhost", UtsRelease, "#1 SMP", "x86_64", "(none)"];
        for (int i = 0; i < 6; i++) Encoding.ASCII.GetBytes(f[i]).CopyTo(u[(i * 65)..]);
        _info["SYMBOL(init_uts_ns)"] = (StartKernelMap + off).ToString("x");
    }

    private void BuildInfo()
    {
        var v = new List<string>
        {
            $"OSRELEASE={UtsRelease}",
            "PAGESIZE=4096",
            $"SYMBOL(init_uts_ns)={_info["SYMBOL(init_uts_ns)"]}",
            "OFFSET(uts_namespace.name)=0",
            $"SYMBOL(mem_section)={_info["SYMBOL(mem_section)"]}",
            $"LENGTH(mem_section)={(FiveLevel ? 131072 : 2048)}",
            "SIZE(mem_section)=16",
            "OFFSET(mem_section.section_mem_map)=0",
            "NUMBER(SECTION_SIZE_BITS)=27",
            $"NUMBER(MAX_PHYSMEM_BITS)={(FiveLevel ? 52 : 46)}",
            "SIZE(page)=64",
            "OFFSET(page.flags)=0",
            "OFFSET(page._refcount)=52",
            "OFFSET(page.mapping)=24",
            "OFFSET(page.lru)=8",
            "OFFSET(page._mapcount)=48",
            "OFFSET(page.private)=40",
            "OFFSET(page.compound_head)=8",
            "LENGTH(zone.free_area)=11",
        };
        if (Style == KernelStyle.Linux61)
            v.AddRange(["OFFSET(page.compound_dtor)=16", "OFFSET(page.compound_order)=17", "NUMBER(PG_lru)=4", "NUMBER(PG_private)=13",
                "NUMBER(PG_swapcache)=10", "NUMBER(PG_swapbacked)=19", "NUMBER(PG_slab)=9", "NUMBER(PG_head_mask)=65536",
                "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129", "NUMBER(HUGETLB_PAGE_DTOR)=2", "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257"]);
        else
            v.AddRange(["NUMBER(PG_lru)=5", "NUMBER(PG_private)=14", "NUMBER(PG_swapcache)=10", "NUMBER(PG_swapbacked)=17",
                "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-184549376", "NUMBER(PG_hwpoison)=20", "NUMBER(PG_head_mask)=64",
                "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456", "NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-201326592",
                "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-251658240"]);
        v.Add($"NUMBER(phys_base)={(long)PhysBase}");
        v.Add($"SYMBOL(init_top_pgt)={(StartKernelMap + _pgd - PhysBase):x}");
        v.Add($"NUMBER(pgtable_l5_enabled)={(FiveLevel ? 1 : 0)}");
        v.Add("CRASHTIME=1795404914");
        _infoOrder.AddRange(v);
    }

    /// <summary>The page tables live below PhysBase, so init_top_pgt's text address wraps below the map start: fine for the walker.</summary>
    public string VmcoreInfoText(Func<string, string?>? edit = null)
    {
        var sb = new StringBuilder();
        foreach (var line in _infoOrder)
        {
            var l = edit is null ? line : edit(line);
            if (l is not null) sb.Append(l).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>Pages a correct filter keeps at the given level (zero pages included: kdump keeps them as descriptors).</summary>
    public HashSet<ulong> ExpectedDumpable(int level)
    {
        var set = new HashSet<ulong>();
        foreach (var (s, e) in Ranges)
            for (ulong p = s; p < e; p++) set.Add(p);
        void Drop(IEnumerable<ulong> pfns) { foreach (var p in pfns) set.Remove(p); }
        if ((level & 16) != 0) Drop(Free);
        if ((level & 2) != 0) Drop(Cache);
        if ((level & 4) != 0) { Drop(Cache); Drop(CachePrivate); }
        if ((level & 8) != 0) Drop(User);
        // Offline and hwpoison pages go whenever the struct page scan runs, as in makedumpfile.
        if ((level & 30) != 0 || Style == KernelStyle.Linux612) Drop(Always);
        return set;
    }

    /// <summary>Writes an ELF64 core: PT_NOTE (two CPUs' PRSTATUS + VMCOREINFO) and one PT_LOAD per range.</summary>
    public void WriteElf(string path, Func<string, string?>? editInfo = null, bool withInfo = true)
    {
        var notes = new MemoryStream();
        for (int cpu = 0; cpu < 2; cpu++) WriteNote(notes, "CORE", 1, new byte[336]);
        if (withInfo) WriteNote(notes, "VMCOREINFO", 0, Encoding.ASCII.GetBytes(VmcoreInfoText(editInfo)));
        var noteBytes = notes.ToArray();
        int phnum = 1 + Ranges.Length;
        long dataOff = 4096 * 2 + ((noteBytes.Length + 4095) / 4096) * 4096;
        using var f = File.Create(path);
        var eh = new byte[64];
        eh[0] = 0x7f; eh[1] = (byte)'E'; eh[2] = (byte)'L'; eh[3] = (byte)'F'; eh[4] = 2; eh[5] = 1; eh[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(16), 4);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(18), 62);
        BinaryPrimitives.WriteUInt32LittleEndian(eh.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(eh.AsSpan(32), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(52), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(56), (ushort)phnum);
        f.Write(eh);
        long noteOff = 4096;
        f.Write(Phdr(4, (ulong)noteOff, 0, 0, (ulong)noteBytes.Length));
        long at = dataOff;
        foreach (var (s, e) in Ranges)
        {
            ulong bytes = (e - s) * PageSize;
            f.Write(Phdr(1, (ulong)at, DirectVa(s * PageSize), s * PageSize, bytes));
            at += (long)bytes;
        }
        f.Position = noteOff;
        f.Write(noteBytes);
        f.Position = dataOff;
        foreach (var (s, e) in Ranges) f.Write(Mem, (int)(s * PageSize), (int)((e - s) * PageSize));
    }

    private static byte[] Phdr(uint type, ulong off, ulong va, ulong pa, ulong size)
    {
        var p = new byte[56];
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), 7);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(8), off);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(16), va);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(24), pa);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(32), size);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(40), size);
        return p;
    }

    private static void WriteNote(Stream s, string name, uint type, byte[] desc)
    {
        var nameBytes = Encoding.ASCII.GetBytes(name + "\0");
        var h = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)nameBytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), type);
        s.Write(h);
        s.Write(nameBytes);
        s.Write(new byte[(4 - nameBytes.Length % 4) % 4]);
        s.Write(desc);
        s.Write(new byte[(4 - desc.Length % 4) % 4]);
    }
}

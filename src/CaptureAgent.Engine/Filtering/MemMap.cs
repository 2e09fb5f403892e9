using System.Buffers.Binary;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Filtering;

/// <summary>
/// Finds the struct page of every pfn through the kernel's mem_section table (SPARSEMEM,
/// SPARSEMEM_EXTREME; VMEMMAP works the same way since the table holds the vmemmap address).
/// Keeps one 8-byte mem_map address per section, in groups of 256 sections allocated only where
/// the kernel has memory: the table can describe a 52-bit address space, the heap cannot.
/// </summary>
public sealed class MemMap
{
    private const ulong SectionMarkedPresent = 1;
    private const ulong SectionMapMask = ~0x1fUL;   // SECTION_MAP_LAST_BIT = 1<<5 since 5.12
    private const ulong KernelSpaceStart = 0xff00000000000000;
    private const int GroupShift = 8;
    private const int GroupSize = 1 << GroupShift;
    /// <summary>Sections with a mem_map kept at most: 128 TiB of memory in 128 MiB sections, 8 MiB of addresses.</summary>
    public const int MaxMappedSections = 1 << 20;

    private readonly ulong[]?[] _groups;   // 0 = no mem_map for this section

    public int SectionShift { get; }          // log2(pages per section)
    public ulong PagesPerSection => 1UL << SectionShift;
    public ulong SectionCount { get; }
    /// <summary>One past the last pfn that has a mem_map; makedumpfile lowers max_mapnr to it (mem= kernels).</summary>
    public ulong LastMappedPfn { get; }

    private MemMap(ulong[]?[] groups, ulong sections, int sectionShift, ulong lastMapped)
    {
        _groups = groups;
        SectionCount = sections;
        SectionShift = sectionShift;
        LastMappedPfn = lastMapped;
    }

    /// <summary>Address of the struct page of pfn, or 0 if its section has no mem_map.</summary>
    public ulong StructPageAddress(ulong pfn, int pageStructSize)
    {
        ulong section = pfn >> SectionShift;
        if (section >= SectionCount) return 0;
        var group = _groups[section >> GroupShift];
        ulong map = group is null ? 0 : group[section & (GroupSize - 1)];
        return map == 0 ? 0 : map + (pfn & (PagesPerSection - 1)) * (ulong)pageStructSize;
    }

    /// <summary>The table's geometry, from VMCOREINFO and checked against what x86_64 allows.</summary>
    private sealed record Geometry(ulong Root, bool Extreme, ulong PerRoot, ulong Roots, ulong EntrySize, ulong MapOffset, int SectionShift, ulong Sections);

    public static MemMap Build(KernelMemory kmem, VmcoreInfo info, ulong maxPfn, int pageSize, int pageStructSize)
    {
        var g = ReadGeometry(info, maxPfn, pageSize);
        if (!TryDecode(kmem, g, pageStructSize, out var map))
        {
            // SYMBOL(mem_section) may be the address of the pointer rather than its value (older kernels, vmlinux input).
            if (!g.Extreme || !kmem.TryReadU64(g.Root, out var deref) || !TryDecode(kmem, g with { Root = deref }, pageStructSize, out map))
                throw new VmcoreException("cannot validate the kernel's mem_section table (corrupt page tables or VMCOREINFO?)");
        }
        return map!;
    }

    private static Geometry ReadGeometry(VmcoreInfo info, ulong maxPfn, int pageSize)
    {
        ulong memSection = info.Symbol("mem_section")
            ?? throw new VmcoreException("VMCOREINFO has no SYMBOL(mem_section): only SPARSEMEM kernels are supported");
        long sectionBits = info.Num("SECTION_SIZE_BITS") ?? 27;
        long physBits = info.Num("MAX_PHYSMEM_BITS") ?? ((info.Num("pgtable_l5_enabled") ?? 0) != 0 ? 52 : 46);
        long msSize = info.Size("mem_section") ?? 16;
        long mapOffset = info.Offset("mem_section.section_mem_map") ?? 0;
        int pageShift = System.Numerics.BitOperations.Log2((uint)pageSize);
        if (sectionBits <= pageShift || sectionBits > 40 || physBits <= sectionBits || physBits > ElfVmcore.PhysicalAddressBits
            || msSize is < 8 or > 4096 || mapOffset < 0 || mapOffset > msSize - 8)
            throw new VmcoreException($"VMCOREINFO memory model values are implausible (SECTION_SIZE_BITS={sectionBits}, MAX_PHYSMEM_BITS={physBits}, SIZE(mem_section)={msSize}, OFFSET(mem_section.section_mem_map)={mapOffset})");
        int sectionShift = (int)sectionBits - pageShift;

        // NR_MEM_SECTIONS bounds the table whatever the PT_LOADs say.
        ulong nrMemSections = 1UL << (int)(physBits - sectionBits);
        ulong sections = Math.Min(nrMemSections, (maxPfn + (1UL << sectionShift) - 1) >> sectionShift);
        ulong perRoot = (ulong)(pageSize / msSize);
        ulong rootsTotal = (nrMemSections + perRoot - 1) / perRoot;
        long? lengthRoots = info.Length("mem_section");
        bool extreme = lengthRoots is null || (ulong)lengthRoots.Value == rootsTotal;
        if (!extreme) perRoot = 1;
        ulong roots = (sections + perRoot - 1) / perRoot;
        return new Geometry(memSection, extreme, perRoot, roots, (ulong)msSize, (ulong)mapOffset, sectionShift, sections);
    }

    private static bool TryDecode(KernelMemory kmem, Geometry g, int pageStructSize, out MemMap? result)
    {
        result = null;
        var groups = new ulong[]?[(g.Sections + GroupSize - 1) >> GroupShift];
        ulong lastMapped = 0, mapped = 0;
        bool any = false;
        var rootBuf = new byte[8];
        // One read per run of entries (a root's page in the EXTREME layout, up to 4 KiB otherwise).
        var entries = new byte[4096];
        ulong perRead = g.Extreme ? g.PerRoot : Math.Max(1, 4096 / g.EntrySize);
        for (ulong first = 0; first < g.Sections; first += perRead)
        {
            ulong baseAddr;
            if (g.Extreme)
            {
                if (!kmem.TryRead(g.Root + first / g.PerRoot * 8, rootBuf)) return false;
                baseAddr = BinaryPrimitives.ReadUInt64LittleEndian(rootBuf);
                if (baseAddr < KernelSpaceStart) continue;   // no sections under this root
            }
            else baseAddr = g.Root + first * g.EntrySize;
            ulong count = Math.Min(perRead, g.Sections - first);
            var span = entries.AsSpan(0, (int)(count * g.EntrySize));
            if (!kmem.TryRead(baseAddr, span)) continue;
            for (ulong i = 0; i < count; i++)
            {
                ulong nr = first + i;
                ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(span[(int)(i * g.EntrySize + g.MapOffset)..]);
                if ((raw & SectionMarkedPresent) == 0) continue;
                // The kernel stores mem_map minus the section's first pfn, so pfn indexes it directly.
                ulong map = (raw & SectionMapMask) + (nr << g.SectionShift) * (ulong)pageStructSize;
                if (map < KernelSpaceStart) return false;
                if (++mapped > MaxMappedSections)
                    throw new VmcoreException($"the mem_section table maps more than {MaxMappedSections} sections: implausible");
                (groups[nr >> GroupShift] ??= new ulong[GroupSize])[nr & (GroupSize - 1)] = map;
                any = true;
                lastMapped = (nr + 1) << g.SectionShift;
            }
        }
        if (any) result = new MemMap(groups, g.Sections, g.SectionShift, lastMapped);
        return any;
    }
}

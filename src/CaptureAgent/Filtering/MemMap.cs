using System.Buffers.Binary;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Filtering;

/// <summary>
/// Finds the struct page of every pfn through the kernel's mem_section table (SPARSEMEM,
/// SPARSEMEM_EXTREME; VMEMMAP works the same way since the table holds the vmemmap address).
/// Keeps one 8-byte mem_map address per section: 64 KiB per TiB of address space.
/// </summary>
public sealed class MemMap
{
    private const ulong SectionMarkedPresent = 1;
    private const ulong SectionMapMask = ~0x1fUL;   // SECTION_MAP_LAST_BIT = 1<<5 since 5.12
    private const ulong KernelSpaceStart = 0xff00000000000000;

    private readonly ulong[] _sectionMemMap;   // 0 = no mem_map for this section

    public int SectionShift { get; }          // log2(pages per section)
    public ulong PagesPerSection => 1UL << SectionShift;
    public int SectionCount => _sectionMemMap.Length;
    /// <summary>One past the last pfn that has a mem_map; makedumpfile lowers max_mapnr to it (mem= kernels).</summary>
    public ulong LastMappedPfn { get; }

    private MemMap(ulong[] maps, int sectionShift, ulong lastMapped)
    {
        _sectionMemMap = maps;
        SectionShift = sectionShift;
        LastMappedPfn = lastMapped;
    }

    /// <summary>Address of the struct page of pfn, or 0 if its section has no mem_map.</summary>
    public ulong StructPageAddress(ulong pfn, int pageStructSize)
    {
        ulong section = pfn >> SectionShift;
        if (section >= (ulong)_sectionMemMap.Length) return 0;
        ulong map = _sectionMemMap[section];
        return map == 0 ? 0 : map + (pfn & (PagesPerSection - 1)) * (ulong)pageStructSize;
    }

    public static MemMap Build(KernelMemory kmem, VmcoreInfo info, ulong maxPfn, int pageSize, int pageStructSize)
    {
        ulong memSection = info.Symbol("mem_section")
            ?? throw new VmcoreException("VMCOREINFO has no SYMBOL(mem_section): only SPARSEMEM kernels are supported");
        long sectionBits = info.Num("SECTION_SIZE_BITS") ?? 27;
        long physBits = info.Num("MAX_PHYSMEM_BITS") ?? ((info.Num("pgtable_l5_enabled") ?? 0) != 0 ? 52 : 46);
        long msSize = info.Size("mem_section") ?? 16;
        long mapOffset = info.Offset("mem_section.section_mem_map") ?? 0;
        int pageShift = System.Numerics.BitOperations.Log2((uint)pageSize);
        if (sectionBits <= pageShift || sectionBits > 40 || physBits <= sectionBits || physBits > 57 || msSize is <= 0 or > 4096)
            throw new VmcoreException($"VMCOREINFO memory model values are implausible (SECTION_SIZE_BITS={sectionBits}, MAX_PHYSMEM_BITS={physBits}, SIZE(mem_section)={msSize})");
        int sectionShift = (int)sectionBits - pageShift;

        ulong nrMemSections = 1UL << (int)(physBits - sectionBits);
        ulong perRoot = (ulong)(pageSize / msSize);
        ulong rootsTotal = (nrMemSections + perRoot - 1) / perRoot;
        long? lengthRoots = info.Length("mem_section");
        bool extreme = lengthRoots is null || (ulong)lengthRoots.Value == rootsTotal;
        if (!extreme) perRoot = 1;

        ulong sections = (maxPfn + (1UL << sectionShift) - 1) >> sectionShift;
        var maps = new ulong[sections];
        ulong lastMapped = 0;

        if (!TryDecode(kmem, memSection, extreme, perRoot, (ulong)msSize, (ulong)mapOffset, sectionShift, pageStructSize, maps, ref lastMapped))
        {
            // SYMBOL(mem_section) may be the address of the pointer rather than its value (older kernels, vmlinux input).
            if (!extreme || !kmem.TryReadU64(memSection, out var deref) ||
                !TryDecode(kmem, deref, extreme, perRoot, (ulong)msSize, (ulong)mapOffset, sectionShift, pageStructSize, maps, ref lastMapped))
                throw new VmcoreException("cannot validate the kernel's mem_section table (corrupt page tables or VMCOREINFO?)");
        }
        return new MemMap(maps, sectionShift, Math.Min(lastMapped, maxPfn));
    }

    private static bool TryDecode(KernelMemory kmem, ulong root, bool extreme, ulong perRoot, ulong msSize, ulong mapOffset,
        int sectionShift, int pageStructSize, ulong[] maps, ref ulong lastMapped)
    {
        Array.Clear(maps);
        lastMapped = 0;
        bool any = false;
        ulong sections = (ulong)maps.Length;
        ulong rootsNeeded = (sections + perRoot - 1) / perRoot;
        var rootBuf = new byte[8];
        var msBuf = new byte[8];
        for (ulong r = 0; r < rootsNeeded; r++)
        {
            ulong rootAddr;
            if (extreme)
            {
                if (!kmem.TryRead(root + r * 8, rootBuf)) return false;
                rootAddr = BinaryPrimitives.ReadUInt64LittleEndian(rootBuf);
                if (rootAddr < KernelSpaceStart) continue;   // no sections under this root
            }
            else rootAddr = root + r * msSize;

            for (ulong i = 0; i < perRoot; i++)
            {
                ulong nr = r * perRoot + i;
                if (nr >= sections) break;
                ulong ms = extreme ? rootAddr + i * msSize : rootAddr;
                if (!kmem.TryRead(ms + mapOffset, msBuf)) continue;
                ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(msBuf);
                if ((raw & SectionMarkedPresent) == 0) continue;
                // The kernel stores mem_map minus the section's first pfn, so pfn indexes it directly.
                ulong map = (raw & SectionMapMask) + (nr << sectionShift) * (ulong)pageStructSize;
                if (map < KernelSpaceStart) return false;
                maps[nr] = map;
                any = true;
                lastMapped = (nr + 1) << sectionShift;
            }
        }
        return any;
    }
}

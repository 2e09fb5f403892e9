using System.Buffers.Binary;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Translation;

/// <summary>
/// x86_64 kernel virtual-to-physical translation by walking the crashed kernel's own page tables
/// from init_top_pgt (4- or 5-level), with the SME encryption bit stripped. Page-table pages are
/// kept in a small cache: struct-page and printk reads hit the same few tables over and over.
/// </summary>
public sealed class X86_64PageTables
{
    private const ulong StartKernelMap = 0xffffffff80000000;
    private const ulong PresentBit = 1;
    private const ulong LargePageBit = 0x80;
    private const int CacheSlots = 16;

    private readonly IPhysicalMemory _mem;
    private readonly ulong _pgdPhys;
    private readonly bool _fiveLevel;
    private readonly ulong _entryMask;
    private readonly ulong[] _cacheKey = new ulong[CacheSlots];
    private readonly byte[][] _cacheData = new byte[CacheSlots][];
    private int _cacheNext;

    public ulong PhysBase { get; }
    public bool FiveLevel => _fiveLevel;

    public X86_64PageTables(IPhysicalMemory mem, ulong topTablePhys, bool fiveLevel, ulong smeMask, ulong physBase)
    {
        _mem = mem;
        _pgdPhys = topTablePhys;
        _fiveLevel = fiveLevel;
        _entryMask = 0x000ffffffffff000UL & ~smeMask;
        PhysBase = physBase;
        for (int i = 0; i < CacheSlots; i++) { _cacheKey[i] = ulong.MaxValue; _cacheData[i] = new byte[4096]; }
    }

    /// <summary>Builds the walker from VMCOREINFO, finding phys_base in it or in the kernel-text PT_LOAD.</summary>
    public static X86_64PageTables FromVmcoreInfo(IPhysicalMemory mem, VmcoreInfo info, IReadOnlyList<LoadSegment>? segments, ulong? headerPhysBase = null)
    {
        ulong physBase;
        if (info.Num("phys_base") is long pb) physBase = unchecked((ulong)pb);
        else if (headerPhysBase is ulong hpb) physBase = hpb;   // a kdump-compressed input's sub header
        else if (segments?.FirstOrDefault(s => s.VirtStart >= StartKernelMap) is { MemSize: > 0 } text)
            physBase = text.PhysStart - (text.VirtStart - StartKernelMap);
        else throw new VmcoreException("VMCOREINFO has no NUMBER(phys_base) and no kernel-text segment to derive it from");

        ulong top = info.Symbol("init_top_pgt") ?? info.Symbol("init_level4_pgt")
            ?? throw new VmcoreException("VMCOREINFO has no SYMBOL(init_top_pgt)");
        bool l5 = (info.Num("pgtable_l5_enabled") ?? 0) != 0;
        ulong sme = unchecked((ulong)(info.Num("sme_mask") ?? 0));
        return new X86_64PageTables(mem, top - StartKernelMap + physBase, l5, sme, physBase);
    }

    /// <summary>Translates va; <paramref name="mappedBytes"/> is how far the same mapping continues.</summary>
    public bool TryTranslate(ulong va, out ulong pa, out ulong mappedBytes)
    {
        pa = 0; mappedBytes = 0;
        ulong table = _pgdPhys;
        ulong entry;
        if (_fiveLevel)
        {
            if (!TryEntry(table, (va >> 48) & 511, out entry)) return false;
            table = entry & _entryMask;
        }
        if (!TryEntry(table, (va >> 39) & 511, out entry)) return false;
        if (!TryEntry(entry & _entryMask, (va >> 30) & 511, out entry)) return false;
        if ((entry & LargePageBit) != 0) return Leaf(entry, va, 1UL << 30, out pa, out mappedBytes);
        if (!TryEntry(entry & _entryMask, (va >> 21) & 511, out entry)) return false;
        if ((entry & LargePageBit) != 0) return Leaf(entry, va, 1UL << 21, out pa, out mappedBytes);
        if (!TryEntry(entry & _entryMask, (va >> 12) & 511, out entry)) return false;
        return Leaf(entry, va, 1UL << 12, out pa, out mappedBytes);
    }

    private bool Leaf(ulong entry, ulong va, ulong size, out ulong pa, out ulong mappedBytes)
    {
        ulong offset = va & (size - 1);
        pa = (entry & _entryMask & ~(size - 1)) + offset;
        mappedBytes = size - offset;
        return true;
    }

    private bool TryEntry(ulong tablePhys, ulong index, out ulong entry)
    {
        entry = 0;
        var page = TablePage(tablePhys);
        if (page is null) return false;
        entry = BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan((int)index * 8));
        return (entry & PresentBit) != 0;
    }

    private byte[]? TablePage(ulong phys)
    {
        for (int i = 0; i < CacheSlots; i++)
            if (_cacheKey[i] == phys) return _cacheData[i];
        int slot = _cacheNext;
        _cacheNext = (slot + 1) % CacheSlots;
        if (!_mem.TryRead(phys, _cacheData[slot])) { _cacheKey[slot] = ulong.MaxValue; return null; }
        _cacheKey[slot] = phys;
        return _cacheData[slot];
    }
}

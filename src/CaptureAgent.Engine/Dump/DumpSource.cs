using CaptureAgent.Filtering;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Dump;

/// <summary>
/// A vmcore opened for dumping: the memory image (an ELF vmcore, or a kdump-compressed dump to
/// filter again) plus, when VMCOREINFO allows, the kernel's page tables, mem_map and struct page
/// layout. Problems that only cost filtering become warnings (pages are then kept); problems
/// that make the input unusable throw.
/// </summary>
public sealed class DumpSource : IDisposable
{
    public IVmcoreImage Vmcore { get; }
    public VmcoreInfo? Info => Vmcore.Info;
    public KernelMemory? Kernel { get; }
    public StructPageLayout? Layout { get; }
    public MemMap? MemMap { get; }
    public List<string> Warnings { get; } = new();
    public int PageSize => Vmcore.PageSize;
    private readonly IPageMap _pages;

    /// <summary>Pages the dump describes (makedumpfile's max_mapnr).</summary>
    public ulong MaxMapnr { get; private set; }

    /// <summary>What the input already left out (a kdump-compressed input's level); every dump made from it leaves that out too.</summary>
    public DumpLevel InputLevel { get; }

    public DumpSource(string path)
    {
        Vmcore = DumpOpener.Open(path);
        try
        {
            MaxMapnr = Vmcore.MaxPfn;
            ulong? headerPhysBase = null;
            if (Vmcore is ElfVmcore elf)
            {
                if (elf.Machine != 62) throw new VmcoreException($"{path}: only x86_64 vmcores are supported (e_machine {elf.Machine})");
                Warnings.AddRange(elf.Problems);
                LimitToFileSize(elf);
                _pages = new SegmentPageMap(elf.Segments, (ulong)PageSize, MaxMapnr);
            }
            else
            {
                var kd = (KdumpImage)Vmcore;
                string machine = kd.Dump.Header.Field(4);
                if (machine != "x86_64") throw new VmcoreException($"{path}: only x86_64 dumps are supported (machine {machine})");
                if (kd.Dump.Incomplete) Warnings.Add($"{path} is an incomplete dump: the pages it lacks are marked missing in the new one");
                _pages = kd;
                InputLevel = kd.Level;
                headerPhysBase = kd.Dump.Header.PhysBase;
            }
            if (Info is null)
            {
                Warnings.Add("the vmcore has no VMCOREINFO note: only zero pages can be excluded");
                LimitToFileData();
                return;
            }
            CheckPageSize(Info);
            LimitToAddressWidth(Info);
            try
            {
                var tables = X86_64PageTables.FromVmcoreInfo(Vmcore, Info, (Vmcore as ElfVmcore)?.Segments, headerPhysBase);
                Kernel = new KernelMemory(Vmcore, tables);
                Layout = new StructPageLayout(Info);
                MemMap = MemMap.Build(Kernel, Info, MaxMapnr, PageSize, Layout.PageStructSize);
                // A dump being filtered again keeps its max_mapnr: its bitmaps are sized by it.
                if (Vmcore is ElfVmcore && MemMap.LastMappedPfn > 0 && MemMap.LastMappedPfn < MaxMapnr) MaxMapnr = MemMap.LastMappedPfn;
            }
            catch (VmcoreException e)
            {
                Warnings.Add($"kernel memory layout unusable ({e.Message}): only zero pages can be excluded");
                Layout = null;
                MemMap = null;
            }
            if (MemMap is null) LimitToFileData();
        }
        catch
        {
            Vmcore.Dispose();
            throw;
        }
    }

    /// <summary>The kernel writes PAGESIZE=4096 (older makedumpfile inputs: NUMBER(PAGESIZE)); x86_64 has no other.</summary>
    private void CheckPageSize(VmcoreInfo info)
    {
        foreach (var key in new[] { "PAGESIZE", "NUMBER(PAGESIZE)" })
        {
            if (info.String(key) is not { } text) continue;
            if (VmcoreInfo.ParseNumber(text) != PageSize)
                throw new VmcoreException($"VMCOREINFO {key}={text.Trim()} is not supported (x86_64 pages are {PageSize} bytes)");
        }
    }

    /// <summary>
    /// The two bitmaps take a bit per pfn each, whatever the holes: a PT_LOAD that a damaged header
    /// puts far above the rest must not make them larger than the vmcore they describe (a 150 KB
    /// file once asked for 96 GB of bitmaps). A machine would need fewer than one page of memory in
    /// 16384 pfns to come near this; the floor leaves small copies of a wide address space alone.
    /// </summary>
    private void LimitToFileSize(ElfVmcore elf)
    {
        if (elf.FileLength < 0) return;
        ulong budget = (ulong)Math.Max(elf.FileLength, MinBitmapBudget);
        ulong limit = budget * 4;   // 2 bitmaps x 1 bit per pfn = a quarter byte a pfn
        if (MaxMapnr <= limit) return;
        Warnings.Add($"PT_LOAD segments reach pfn 0x{MaxMapnr:x}: the dump's bitmaps would take {MaxMapnr / 4 >> 20} MiB for a vmcore of " +
                     $"{elf.FileLength >> 10} KiB (damaged program headers); pages from pfn 0x{limit:x} on are left out");
        MaxMapnr = limit;
    }

    /// <summary>Bitmaps of this size are allowed whatever the input's size: 1 TiB of physical address space.</summary>
    public const long MinBitmapBudget = 64L << 20;

    /// <summary>
    /// No pfn lies above the kernel's physical address width (MAX_PHYSMEM_BITS: 46 with 4-level
    /// paging, 52 with 5-level): a PT_LOAD reaching past it is damaged, and the pfn range, which
    /// sizes the bitmaps and every pass over them, must not follow it.
    /// </summary>
    private void LimitToAddressWidth(VmcoreInfo info)
    {
        long bits = info.Num("MAX_PHYSMEM_BITS") ?? ((info.Num("pgtable_l5_enabled") ?? 0) != 0 ? 52 : 46);
        bits = Math.Clamp(bits, 32, ElfVmcore.PhysicalAddressBits);
        ulong limit = 1UL << (int)(bits - System.Numerics.BitOperations.Log2((uint)PageSize));
        if (MaxMapnr <= limit) return;
        Warnings.Add($"PT_LOAD segments reach beyond the kernel's {bits}-bit physical address space: pages from pfn 0x{limit:x} on are left out");
        MaxMapnr = limit;
    }

    /// <summary>
    /// Without the kernel's mem_map nothing says which zero-filled p_memsz tails are memory: the
    /// pfn range is what the file holds data for.
    /// </summary>
    private void LimitToFileData()
    {
        // The highest pfn with file data below the range kept so far (a segment past it is already out).
        if (Vmcore is not ElfVmcore elf) return;   // a kdump input's bitmaps say what it holds
        ulong fileBacked = 0, ps = (ulong)PageSize;
        foreach (var s in elf.Segments)
            if (s.PhysStart / ps < MaxMapnr && s.FileSize > 0)
                fileBacked = Math.Max(fileBacked, Math.Min((s.PhysStart + s.FileSize + ps - 1) / ps, MaxMapnr));
        if (MaxMapnr <= fileBacked) return;
        Warnings.Add($"PT_LOAD segments describe memory up to pfn 0x{MaxMapnr:x} without data for it in the file; the dump ends at pfn 0x{fileBacked:x}");
        MaxMapnr = fileBacked;
    }

    /// <summary>A filter for the level (plus what the input already left out).</summary>
    public PageFilter CreateFilter(DumpLevel level) =>
        new(_pages, MaxMapnr, Kernel, Layout, MemMap, level | InputLevel);

    /// <summary>A filter for the level and a result that already lists what this source cannot do.</summary>
    public (PageFilter Filter, DumpResult Result) BeginDump(DumpLevel level)
    {
        var filter = CreateFilter(level);
        var result = new DumpResult { MaxMapnr = MaxMapnr };
        result.Problems.AddRange(Warnings);
        if (filter.Limitation is { } limitation) result.Problems.Add(limitation);
        return (filter, result);
    }

    public void Dispose() => Vmcore.Dispose();
}

using CaptureAgent.Filtering;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Dump;

/// <summary>
/// A vmcore opened for dumping: the ELF image plus, when VMCOREINFO allows, the kernel's
/// page tables, mem_map and struct page layout. Problems that only cost filtering become
/// warnings (pages are then kept); problems that make the input unusable throw.
/// </summary>
public sealed class DumpSource : IDisposable
{
    public ElfVmcore Vmcore { get; }
    public VmcoreInfo? Info => Vmcore.Info;
    public KernelMemory? Kernel { get; }
    public StructPageLayout? Layout { get; }
    public MemMap? MemMap { get; }
    public List<string> Warnings { get; } = new();
    public int PageSize => Vmcore.PageSize;

    /// <summary>Pages the dump describes (makedumpfile's max_mapnr).</summary>
    public ulong MaxMapnr { get; }

    public DumpSource(string path)
    {
        Vmcore = new ElfVmcore(path);
        try
        {
            if (Vmcore.Machine != 62) throw new VmcoreException($"{path}: only x86_64 vmcores are supported (e_machine {Vmcore.Machine})");
            if (Vmcore.TruncationWarning is { } t) Warnings.Add(t);
            MaxMapnr = Vmcore.MaxPfn;
            if (Info is null)
            {
                Warnings.Add("the vmcore has no VMCOREINFO note: only zero pages can be excluded");
                return;
            }
            if (Info.Num("PAGESIZE") is long ps && ps != PageSize)
                throw new VmcoreException($"VMCOREINFO PAGESIZE={ps} is not supported (only 4096)");
            try
            {
                var tables = X86_64PageTables.FromVmcoreInfo(Vmcore, Info, Vmcore.Segments);
                Kernel = new KernelMemory(Vmcore, tables);
                Layout = new StructPageLayout(Info);
                MemMap = MemMap.Build(Kernel, Info, MaxMapnr, PageSize, Layout.PageStructSize);
                if (MemMap.LastMappedPfn > 0 && MemMap.LastMappedPfn < MaxMapnr) MaxMapnr = MemMap.LastMappedPfn;
            }
            catch (VmcoreException e)
            {
                Warnings.Add($"kernel memory layout unusable ({e.Message}): only zero pages can be excluded");
                Layout = null;
                MemMap = null;
            }
        }
        catch
        {
            Vmcore.Dispose();
            throw;
        }
    }

    public PageFilter CreateFilter(DumpLevel level) =>
        new(Vmcore.Segments, PageSize, MaxMapnr, Kernel, Layout, MemMap, level);

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

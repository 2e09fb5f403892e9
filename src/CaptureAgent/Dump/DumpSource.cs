using CaptureAgent.Filtering;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

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
    public ulong MaxMapnr { get; }

    /// <summary>What the input already left out (a kdump-compressed input's level); every dump made from it leaves that out too.</summary>
    public DumpLevel InputLevel { get; }

    public DumpSource(string path)
    {
        Vmcore = Open(path);
        try
        {
            MaxMapnr = Vmcore.MaxPfn;
            ulong? headerPhysBase = null;
            if (Vmcore is ElfVmcore elf)
            {
                if (elf.Machine != 62) throw new VmcoreException($"{path}: only x86_64 vmcores are supported (e_machine {elf.Machine})");
                if (elf.TruncationWarning is { } t) Warnings.Add(t);
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
                return;
            }
            if (Info.Num("PAGESIZE") is long ps && ps != PageSize)
                throw new VmcoreException($"VMCOREINFO PAGESIZE={ps} is not supported (only 4096)");
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
        }
        catch
        {
            Vmcore.Dispose();
            throw;
        }
    }

    /// <summary>
    /// An ELF vmcore or a kdump-compressed dump, told apart by their first bytes. A flattened
    /// stream (makedumpfile -F) is refused: filtering reads the kernel's page tables and mem_map
    /// wherever they are, which a stream read front to back cannot give.
    /// </summary>
    private static IVmcoreImage Open(string path)
    {
        Span<byte> magic = stackalloc byte[16];
        int got;
        try
        {
            using var f = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            got = RandomAccess.Read(f, magic, 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException($"cannot open {path}: {e.Message}");
        }
        if (got >= 8 && magic[..8].SequenceEqual("KDUMP   "u8)) return new KdumpImage(path);
        if (got >= 13 && magic[..13].SequenceEqual("makedumpfile\0"u8))
            throw new VmcoreException($"{path} is a flattened dump (makedumpfile -F), which cannot be read out of order: " +
                                      $"rearrange it first with `capture-agent rearrange DUMPFILE < {path}`, then dump that");
        return new ElfVmcore(path);
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

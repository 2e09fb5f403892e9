using System.Buffers.Binary;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Filtering;

/// <summary>
/// Decides, window by window, which pages go into the dump: the 2nd bitmap of the kdump format.
/// Starts from the pages present in the vmcore and clears those the dump level excludes by
/// reading struct page, with makedumpfile's classification so both tools select the same pages.
/// A struct page that cannot be read keeps its pages (the safe choice) and is counted.
/// </summary>
public sealed class PageFilter
{
    private const int Batch = 512;   // struct pages per read, aligned like makedumpfile's PGMM_CACHED

    private readonly KernelMemory? _kmem;
    private readonly StructPageLayout? _layout;
    private readonly MemMap? _memMap;
    private readonly DumpLevel _level;
    private readonly IPageMap _pages;
    private readonly byte[] _batch;
    private readonly bool _scan;
    // A multi-page exclusion that ran past the end of the previous window.
    private ulong _pendingStart, _pendingEnd;
    private Action<FilterStats, ulong>? _pendingCounter;

    public FilterStats Stats { get; } = new();
    public DumpLevel Level => _level;
    public ulong MaxPfn { get; }
    /// <summary>Why free pages could not be detected although asked for, or null.</summary>
    public string? Limitation { get; }

    public PageFilter(IReadOnlyList<LoadSegment> segments, int pageSize, ulong maxPfn,
        KernelMemory? kmem, StructPageLayout? layout, MemMap? memMap, DumpLevel level)
        : this(new SegmentPageMap(segments, (ulong)pageSize, maxPfn), maxPfn, kmem, layout, memMap, level) { }

    /// <summary>Filters what <paramref name="pages"/> holds: a vmcore's segments, or an existing dump's bitmaps.</summary>
    public PageFilter(IPageMap pages, ulong maxPfn, KernelMemory? kmem, StructPageLayout? layout, MemMap? memMap, DumpLevel level)
    {
        _kmem = kmem;
        _layout = layout;
        _memMap = memMap;
        _level = level;
        MaxPfn = maxPfn;
        _pages = pages;
        bool haveKernel = kmem is not null && layout is not null && memMap is not null;
        _scan = haveKernel && (
            (level & (DumpLevel.CacheWithoutPrivate | DumpLevel.CacheWithPrivate | DumpLevel.User)) != 0 ||
            layout!.PgHwPoison.HasValue ||
            ((level & DumpLevel.Free) != 0 && layout.CanDetectBuddy));
        // Without kernel information at all, the source has already said only zero pages can go.
        if ((level & DumpLevel.Free) != 0 && haveKernel && !layout!.CanDetectBuddy)
            Limitation = "free pages cannot be identified in this vmcore (no PAGE_BUDDY_MAPCOUNT_VALUE); they are kept";
        _batch = new byte[(layout?.PageStructSize ?? 64) * Batch];
    }

    /// <summary>Call before each pass over the windows, which must then come in ascending order.</summary>
    public void BeginPass()
    {
        _pendingStart = _pendingEnd = 0;
        _pendingCounter = null;
        Stats.Reset();
    }

    /// <summary>The 1st bitmap for the window: pages that exist in the vmcore.</summary>
    public void FillPresent(PfnBitmap bitmap) => _pages.FillPresent(bitmap);

    /// <summary>Fills the 2nd bitmap of the window (zero pages are decided later, while copying).</summary>
    public void FillDumpable(PfnBitmap bitmap)
    {
        _pages.FillStored(bitmap);
        Stats.Present += bitmap.PopCount();
        if (!_scan) return;

        if (_pendingEnd > bitmap.Start && _pendingCounter is not null)
            ExcludeRange(bitmap, Math.Max(_pendingStart, bitmap.Start), _pendingEnd, _pendingCounter);

        var memMap = _memMap!;
        ulong pps = memMap.PagesPerSection;
        ulong last = Math.Min(bitmap.End, MaxPfn);
        for (ulong sectionStart = bitmap.Start - bitmap.Start % pps; sectionStart < last; sectionStart += pps)
        {
            if (memMap.StructPageAddress(sectionStart, _layout!.PageStructSize) == 0) continue;
            ScanRange(bitmap, Math.Max(sectionStart, bitmap.Start), Math.Min(sectionStart + pps, last));
        }
    }

    private static readonly Action<FilterStats, ulong> CountFree = (s, n) => s.Free += n;
    private static readonly Action<FilterStats, ulong> CountCache = (s, n) => s.Cache += n;
    private static readonly Action<FilterStats, ulong> CountCachePrivate = (s, n) => s.CachePrivate += n;
    private static readonly Action<FilterStats, ulong> CountUser = (s, n) => s.User += n;
    private static readonly Action<FilterStats, ulong> CountHwPoison = (s, n) => s.HwPoison += n;
    private static readonly Action<FilterStats, ulong> CountOffline = (s, n) => s.Offline += n;

    /// <summary>Classifies the struct pages of [from, to), which lie in one section.</summary>
    private void ScanRange(PfnBitmap bitmap, ulong from, ulong to)
    {
        var L = _layout!;
        int ps = L.PageStructSize;
        ulong readStart = ulong.MaxValue, readEnd = 0;   // batch covers [readStart, readEnd]
        bool batchOk = false;
        var level = _level;

        for (ulong pfn = from; pfn < to; pfn++)
        {
            if (!_pages.IsPresent(pfn)) continue;
            ulong indexInBatch = pfn % Batch;
            if (pfn < readStart || readEnd < pfn)
            {
                ulong count = RoundUp(pfn + 1, Batch) < to ? Batch - indexInBatch : to - pfn;
                ulong addr = _memMap!.StructPageAddress(pfn, ps);
                var dst = _batch.AsSpan((int)indexInBatch * ps, (int)count * ps);
                batchOk = addr != 0 && _kmem!.TryRead(addr, dst);
                readStart = pfn;
                readEnd = pfn + count - 1;
                if (!batchOk) Stats.UnreadableStructPages += count;
            }
            if (!batchOk) continue;   // keep pages whose struct page is unreadable

            var p = _batch.AsSpan((int)indexInBatch * ps, ps);
            ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(p[L.FlagsOffset..]);
            ulong mapping = BinaryPrimitives.ReadUInt64LittleEndian(p[L.MappingOffset..]);
            uint mapcount = L.MapcountOffset is int mo ? BinaryPrimitives.ReadUInt32LittleEndian(p[mo..]) : 0;
            ulong chead = L.CompoundHeadOffset is int co ? BinaryPrimitives.ReadUInt64LittleEndian(p[co..]) : 0;
            ulong priv = L.PrivateOffset is int po ? BinaryPrimitives.ReadUInt64LittleEndian(p[po..]) : 0;

            int order = 0;
            bool hugetlb = false;
            // A head in the batch's last slot cannot be a real compound head (they are aligned to their order).
            if (indexInBatch < Batch - 1 && (flags & L.HeadMask) != 0 && pfn + 1 <= readEnd)
            {
                var p1 = _batch.AsSpan((int)(indexInBatch + 1) * ps, ps);
                if (L.HugetlbValue is uint hv)
                {
                    order = (int)(BinaryPrimitives.ReadUInt64LittleEndian(p1[L.FlagsOffset..]) & 0xff);
                    hugetlb = mapcount == hv;
                }
                else if (L.PgHugetlb is int hb)
                {
                    ulong flags1 = BinaryPrimitives.ReadUInt64LittleEndian(p1[L.FlagsOffset..]);
                    order = (int)(flags1 & 0xff);
                    hugetlb = (flags1 & (1UL << hb)) != 0;
                }
                else
                {
                    if (L.CompoundOrderOffset is int oo && oo >= 0 && oo < ps) order = p1[oo];
                    if (L.CompoundDtorOffset is int dd && dd >= 0 && dd < ps && L.HugetlbDtor is long hd) hugetlb = p1[dd] == hd;
                }
                if (order >= 64 || (pfn & ((1UL << order) - 1)) != 0) order = 0;
            }

            if ((chead & 1) != 0) continue;   // tail page: decided together with its head

            bool slab = (L.SlabValue is uint sv && mapcount == sv) || (L.PgSlab is int sb && TestBit(sb, flags));
            bool anon = (mapping & 1) != 0 && !slab;
            bool cache = (L.PgLru is int lru && TestBit(lru, flags)) ||
                         ((L.PgSwapBacked is not int sbk || TestBit(sbk, flags)) && L.PgSwapCache is int sc && TestBit(sc, flags));
            bool isPrivate = L.PgPrivate is int pr && TestBit(pr, flags);

            ulong nrPages = 1UL << order;
            Action<FilterStats, ulong> counter;
            if ((level & DumpLevel.Free) != 0 && L.CanDetectBuddy && !slab && mapcount == L.BuddyValue)
            {
                if (L.FreeAreaOrders is long orders && priv >= (ulong)orders) { Stats.BadFreeOrders++; continue; }
                if (priv >= 64) { Stats.BadFreeOrders++; continue; }
                nrPages = 1UL << (int)priv;
                counter = CountFree;
            }
            else if ((level & DumpLevel.Free) != 0 && L.UnacceptedValue is uint uv && mapcount == uv && L.FreeAreaOrders is long fo && fo is > 0 and < 64)
            {
                nrPages = 1UL << (int)(fo - 1);
                counter = CountFree;
            }
            else if ((level & DumpLevel.CacheWithoutPrivate) != 0 && cache && !isPrivate && !anon) counter = CountCache;
            else if ((level & DumpLevel.CacheWithPrivate) != 0 && cache && !anon) counter = isPrivate ? CountCachePrivate : CountCache;
            else if ((level & DumpLevel.User) != 0 && (anon || hugetlb)) counter = CountUser;
            else if (L.PgHwPoison is int hw && TestBit(hw, flags)) counter = CountHwPoison;
            else if (L.OfflineValue is uint ov && !slab && mapcount == ov) counter = CountOffline;
            else continue;

            if (nrPages == 1)
            {
                if (bitmap.Clear(pfn)) counter(Stats, 1);
            }
            else
            {
                ExcludeRange(bitmap, pfn, pfn + nrPages, counter);
                pfn += nrPages - 1;   // the rest of the block is not examined, as in makedumpfile
            }
        }
    }

    /// <summary>Clears [from, to); what lies past the window is remembered for the next one.</summary>
    private void ExcludeRange(PfnBitmap bitmap, ulong from, ulong to, Action<FilterStats, ulong> counter)
    {
        ulong n = bitmap.ClearRange(from, Math.Min(to, bitmap.End));
        if (n > 0) counter(Stats, n);
        if (to > bitmap.End) { _pendingStart = bitmap.End; _pendingEnd = to; _pendingCounter = counter; }
        else if (_pendingEnd <= bitmap.End) { _pendingStart = _pendingEnd = 0; _pendingCounter = null; }
    }

    /// <summary>makedumpfile's test_bit: an int mask, so only the low 5 bits of the bit number count.</summary>
    private static bool TestBit(int nr, ulong flags) => ((long)(1 << (nr & 0x1f)) & (long)flags) != 0;

    private static ulong RoundUp(ulong v, ulong m) => (v + m - 1) / m * m;
}

/// <summary>
/// The pages of a vmcore's PT_LOAD segments, as makedumpfile sees them: [floor(start), floor(end))
/// of p_memsz exist (the 1st bitmap), but only the pages p_filesz covers have content to dump
/// (exclude_nodata_pages: the rest of p_memsz is not in the file, and is not written).
/// </summary>
public sealed class SegmentPageMap : IPageMap
{
    private readonly (ulong Start, ulong End)[] _present, _stored;

    public SegmentPageMap(IReadOnlyList<LoadSegment> segments, ulong pageSize, ulong maxPfn)
    {
        _present = Merge(segments.Select(s => (s.PhysStart / pageSize, Math.Min(s.PhysEnd / pageSize, maxPfn))));
        // makedumpfile rounds the file data's end up: a last partial page is dumped, its tail zero.
        _stored = Merge(segments.Select(s => (s.PhysStart / pageSize,
            Math.Min(Math.Min((s.PhysStart + s.FileSize + pageSize - 1) / pageSize, s.PhysEnd / pageSize), maxPfn))));
    }

    /// <summary>The ranges sorted, empty ones dropped, overlapping or touching ones joined.</summary>
    private static (ulong, ulong)[] Merge(IEnumerable<(ulong Start, ulong End)> ranges)
    {
        var merged = new List<(ulong Start, ulong End)>();
        foreach (var r in ranges.Where(r => r.End > r.Start).OrderBy(r => r.Start))
        {
            if (merged.Count > 0 && r.Start <= merged[^1].End)
                merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, r.End));
            else merged.Add(r);
        }
        return merged.ToArray();
    }

    public void FillPresent(PfnBitmap bitmap) => Fill(_present, bitmap);

    public void FillStored(PfnBitmap bitmap) => Fill(_stored, bitmap);

    private static void Fill((ulong Start, ulong End)[] ranges, PfnBitmap bitmap)
    {
        foreach (var (s, e) in ranges)
        {
            if (e <= bitmap.Start) continue;
            if (s >= bitmap.End) break;
            bitmap.SetRange(s, e);
        }
    }

    public bool IsPresent(ulong pfn)
    {
        int lo = 0, hi = _present.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (pfn < _present[mid].Start) hi = mid - 1;
            else if (pfn >= _present[mid].End) lo = mid + 1;
            else return true;
        }
        return false;
    }
}

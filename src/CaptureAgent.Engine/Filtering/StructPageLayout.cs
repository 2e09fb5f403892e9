using CaptureAgent.Vmcore;

namespace CaptureAgent.Filtering;

/// <summary>
/// Where the fields of struct page are and what the page-flag and page-type constants are,
/// all read from VMCOREINFO, never hard-coded per kernel version (they move between releases).
/// A missing entry is null and disables the predicate that needs it, as in makedumpfile.
/// </summary>
public sealed class StructPageLayout
{
    public int PageStructSize { get; }
    public int FlagsOffset { get; }
    public int MappingOffset { get; }
    public int? MapcountOffset { get; }
    public int? PrivateOffset { get; }
    public int? CompoundHeadOffset { get; }

    /// <summary>Offset of the compound order/destructor bytes inside the FIRST TAIL page (kernels before 6.6).</summary>
    public int? CompoundOrderOffset { get; }
    public int? CompoundDtorOffset { get; }

    public int? PgLru { get; }
    public int? PgPrivate { get; }
    public int? PgSwapCache { get; }
    public int? PgSwapBacked { get; }
    public int? PgSlab { get; }
    public int? PgHwPoison { get; }
    public int? PgHugetlb { get; }
    public ulong HeadMask { get; }
    public long? HugetlbDtor { get; }

    /// <summary>Exact 32-bit values of _mapcount/page_type that mark a page type.</summary>
    public uint? BuddyValue { get; }
    public uint? OfflineValue { get; }
    public uint? HugetlbValue { get; }
    public uint? SlabValue { get; }
    public uint? UnacceptedValue { get; }

    /// <summary>Number of buddy orders (LENGTH(zone.free_area)); larger orders are garbage.</summary>
    public long? FreeAreaOrders { get; }

    public bool CanDetectBuddy => BuddyValue.HasValue && MapcountOffset.HasValue && PrivateOffset.HasValue;

    public StructPageLayout(VmcoreInfo info)
    {
        PageStructSize = (int)(info.Size("page") ?? throw new VmcoreException("VMCOREINFO has no SIZE(page)"));
        if (PageStructSize is < 32 or > 512) throw new VmcoreException($"VMCOREINFO SIZE(page)={PageStructSize} is implausible");
        FlagsOffset = Field(info, "page.flags") ?? throw new VmcoreException("VMCOREINFO has no OFFSET(page.flags)");
        MappingOffset = Field(info, "page.mapping") ?? throw new VmcoreException("VMCOREINFO has no OFFSET(page.mapping)");
        MapcountOffset = Field(info, "page._mapcount");
        PrivateOffset = Field(info, "page.private");
        // Linux 7.1 renamed compound_head to compound_info; same meaning for bit 0.
        CompoundHeadOffset = Field(info, "page.compound_head") ?? Field(info, "page.compound_info");

        if (Field(info, "folio._folio_order") is int fo) CompoundOrderOffset = fo - PageStructSize;
        else CompoundOrderOffset = Field(info, "page.compound_order");
        if (Field(info, "folio._folio_dtor") is int fd) CompoundDtorOffset = fd - PageStructSize;
        else CompoundDtorOffset = Field(info, "page.compound_dtor");

        PgLru = Bit(info, "PG_lru");
        PgPrivate = Bit(info, "PG_private");
        PgSwapCache = Bit(info, "PG_swapcache");
        PgSwapBacked = Bit(info, "PG_swapbacked");
        PgSlab = Bit(info, "PG_slab");
        PgHwPoison = Bit(info, "PG_hwpoison");
        PgHugetlb = Bit(info, "PG_hugetlb");
        HeadMask = unchecked((ulong)(info.Num("PG_head_mask") ?? 0));
        HugetlbDtor = info.Num("HUGETLB_PAGE_DTOR");

        BuddyValue = Word(info, "PAGE_BUDDY_MAPCOUNT_VALUE");
        OfflineValue = Word(info, "PAGE_OFFLINE_MAPCOUNT_VALUE");
        HugetlbValue = Word(info, "PAGE_HUGETLB_MAPCOUNT_VALUE");
        SlabValue = Word(info, "PAGE_SLAB_MAPCOUNT_VALUE");
        UnacceptedValue = Word(info, "PAGE_UNACCEPTED_MAPCOUNT_VALUE");
        FreeAreaOrders = info.Length("zone.free_area");

        foreach (var o in new[] { FlagsOffset, MappingOffset, MapcountOffset ?? 0, PrivateOffset ?? 0, CompoundHeadOffset ?? 0 })
            if (o < 0 || o + 8 > PageStructSize) throw new VmcoreException($"VMCOREINFO struct page offset {o} lies outside SIZE(page)={PageStructSize}");
    }

    private static int? Field(VmcoreInfo info, string name) => info.Offset(name) is long v && v >= 0 && v < 4096 ? (int)v : null;
    private static int? Bit(VmcoreInfo info, string name) => info.Num(name) is long v && v >= 0 && v < 64 ? (int)v : null;
    private static uint? Word(VmcoreInfo info, string name) => info.Num(name) is long v ? unchecked((uint)v) : null;
}

namespace CaptureAgent.Filtering;

/// <summary>Page counts by reason of exclusion, as makedumpfile's --message-level report gives them.</summary>
public sealed class FilterStats
{
    public ulong Present;
    public ulong Cache;
    public ulong CachePrivate;
    public ulong User;
    public ulong Free;
    public ulong HwPoison;
    public ulong Offline;
    public ulong Zero;
    public ulong UnreadableStructPages;
    public ulong BadFreeOrders;

    public void Reset()
    {
        Present = Cache = CachePrivate = User = Free = HwPoison = Offline = Zero = UnreadableStructPages = BadFreeOrders = 0;
    }

    public ulong Excluded => Cache + CachePrivate + User + Free + HwPoison + Offline + Zero;
}

namespace CaptureAgent.Filtering;

/// <summary>makedumpfile's -d bits.</summary>
[Flags]
public enum DumpLevel
{
    None = 0,
    Zero = 1,
    CacheWithoutPrivate = 2,
    CacheWithPrivate = 4,
    User = 8,
    Free = 16,
    All = 31,
}

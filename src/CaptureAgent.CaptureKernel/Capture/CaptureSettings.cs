using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Formats;

namespace CaptureAgent.Capture;

/// <summary>How one crash is saved into a directory target (a local filesystem or an NFS mount).</summary>
public sealed class CaptureSettings
{
    /// <summary>The dump directory below the target's root (see <see cref="Formats.PathTemplate"/>).</summary>
    public string PathTemplate { get; init; } = "/var/crash/" + Formats.PathTemplate.DefaultLeaf;
    public DumpOptions Dump { get; init; } = new();
    /// <summary>The level used when the dump would not fit (makedumpfile's `-d 1,31` retry, done in one pass).</summary>
    public DumpLevel FallbackLevel { get; init; } = DumpLevel.All;
    /// <summary>At most this many dumps are kept, counting the new one; 0 keeps all.</summary>
    public int KeepDumps { get; init; }
    /// <summary>Old dumps are removed, oldest first, until they and the new one fit in this; 0: no limit.</summary>
    public long KeepBytes { get; init; }
    /// <summary>Space left free on the target whatever happens (other users of the filesystem).</summary>
    public long MinFreeBytes { get; init; } = 64L << 20;
    public bool SaveRawCopy { get; init; }
    /// <summary>Told where the dump directory is as soon as it exists (the capture kernel's PID 1 keeps it, should the writer die).</summary>
    public Action<string>? DirectoryCreated { get; init; }
    public string? BootId { get; init; }
}

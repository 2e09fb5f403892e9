namespace CaptureAgent.Report;

public enum DumpStatus { Complete, Incomplete, NoVmcore, Unverified }

/// <summary>One saved dump directory and what could be learnt about its crash.</summary>
public sealed class DumpEntry
{
    public required string Directory { get; init; }
    /// <summary>"capture-agent" (manifest.json or dmesg.txt), "rhel" (vmcore-dmesg.txt), "debian" (dump.STAMP, dmesg.STAMP), "kdump" (a bare host-date/vmcore either could have left) or "unknown".</summary>
    public required string Layout { get; init; }
    public string? Host { get; set; }
    public string? KernelRelease { get; set; }
    public DateTimeOffset? CrashTime { get; set; }
    /// <summary>Where the crash time came from: manifest, vmcoreinfo, kdump-header, directory-name, mtime.</summary>
    public string? CrashTimeSource { get; set; }
    public DumpStatus Status { get; set; }
    public string StatusDetail { get; set; } = "";
    /// <summary>The dump file's name inside <see cref="Directory"/>, and its format (kdump-compressed, flattened, elf).</summary>
    public string? DumpFile { get; set; }
    public string? DumpFormat { get; set; }
    public long? DumpBytes { get; set; }
    public string? DmesgFile { get; set; }
    public long? DmesgBytes { get; set; }
    public long TotalBytes { get; set; }
    /// <summary>Where the kernel log read came from: the dmesg file's name, or "vmcore".</summary>
    public string? LogSource { get; set; }
    public PanicReport? Panic { get; set; }
    public CrashSignature? Signature { get; set; }
    public List<string> Problems { get; } = new();

    public static string StatusName(DumpStatus s) => s switch
    {
        DumpStatus.Complete => "complete",
        DumpStatus.Incomplete => "incomplete",
        DumpStatus.NoVmcore => "no vmcore",
        _ => "unverified",
    };
}

namespace CaptureAgent.Vmcore;

/// <summary>
/// A crashed kernel's memory image that can be dumped: its physical memory plus the notes that
/// go into a dump's header. An ELF vmcore (/proc/vmcore) or an existing kdump-compressed dump.
/// </summary>
public interface IVmcoreImage : IPhysicalMemory, IDisposable
{
    string Path { get; }
    byte[] NoteBlob { get; }
    /// <summary>Offset of the VMCOREINFO descriptor inside <see cref="NoteBlob"/>, or -1.</summary>
    int VmcoreInfoOffset { get; }
    int VmcoreInfoSize { get; }
    int CpuCount { get; }
    VmcoreInfo? Info { get; }
}

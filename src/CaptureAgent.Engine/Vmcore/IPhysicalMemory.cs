namespace CaptureAgent.Vmcore;

/// <summary>
/// The crashed kernel's physical memory, wherever the bytes come from (an ELF vmcore,
/// a kdump-compressed file). Everything above this layer speaks physical addresses only.
/// </summary>
public interface IPhysicalMemory
{
    int PageSize { get; }

    /// <summary>One past the highest page frame number the image describes.</summary>
    ulong MaxPfn { get; }

    /// <summary>Whether the page exists in the memory image (not a hole).</summary>
    bool IsPresent(ulong pfn);

    /// <summary>
    /// Reads <paramref name="buffer"/>.Length bytes at <paramref name="paddr"/>.
    /// Returns false when any of them is not in the image; the buffer is then undefined.
    /// </summary>
    bool TryRead(ulong paddr, Span<byte> buffer);
}

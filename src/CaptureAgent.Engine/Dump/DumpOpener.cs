using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Dump;

/// <summary>
/// The one way a dump file is opened for its memory, by `dump`, `dmesg`, `report` and the
/// capture: the probe table (<see cref="DumpProbe"/>) names the format, this picks its reader.
/// An ELF vmcore (/proc/vmcore, a copy of it, QEMU's dump-guest-memory, makedumpfile -E) is read
/// by <see cref="ElfVmcore"/>, a kdump-compressed dump (ours, makedumpfile's) by
/// <see cref="KdumpImage"/>. A flattened stream (makedumpfile -F) is refused with the way out:
/// reading memory means following page tables wherever they lead, and a flattened file can only
/// be read front to back unless an index as large as its record count is built.
/// </summary>
public static class DumpOpener
{
    /// <summary>The format the file's first bytes say it is (<see cref="DumpKind.Unknown"/> for an empty or foreign file).</summary>
    /// <exception cref="VmcoreException">The file cannot be opened (or is not a regular file).</exception>
    public static DumpKind Probe(string path)
    {
        Span<byte> head = stackalloc byte[DumpProbe.HeadLength];
        try
        {
            using var f = InputFile.OpenRegular(path);
            return DumpProbe.Kind(head[..RandomAccess.Read(f, head, 0)]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException(ErrorText.Of(e));
        }
    }

    /// <summary>Opens the dump at <paramref name="path"/> as a memory image, whichever format it is in.</summary>
    /// <exception cref="VmcoreException">Unreadable, a flattened stream, or not a dump (the ELF reader says what is wrong).</exception>
    public static IVmcoreImage Open(string path) => Probe(path) switch
    {
        DumpKind.KdumpCompressed => new KdumpImage(path),
        DumpKind.Flattened => throw new VmcoreException(
            $"{path} is a flattened dump (makedumpfile -F), which cannot be read out of order: " +
            $"rearrange it first with `capture-agent rearrange DUMPFILE < {path}`, then use DUMPFILE"),
        _ => new ElfVmcore(path),
    };

    /// <summary>
    /// <see cref="Open"/> for readers of kernel data (dmesg, report): the image, its VMCOREINFO and,
    /// for an ELF vmcore, the segments the page table walk needs to find the kernel.
    /// </summary>
    public static IVmcoreImage OpenMemory(string path, out VmcoreInfo? info, out IReadOnlyList<LoadSegment>? segments)
    {
        var image = Open(path);
        info = image.Info;
        segments = (image as ElfVmcore)?.Segments;
        return image;
    }
}

using CaptureAgent.Native;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;

namespace CaptureAgent.Targets.Raw;

/// <summary>A raw device could not be used; the message is the one line to print.</summary>
public sealed class RawDeviceException(string message) : IOException(message);

/// <summary>What a raw device holds.</summary>
public enum RawContent
{
    /// <summary>Nothing we or a probe recognise: free for a dump, nothing to extract.</summary>
    Empty,
    /// <summary>A dump (complete, incomplete or interrupted) not yet extracted.</summary>
    Dump,
    /// <summary>A dump savecore has already extracted.</summary>
    Extracted,
    /// <summary>Our magic with a header that fails its CRC or makes no sense.</summary>
    DamagedHeader,
    /// <summary>A filesystem, swap, RAID/LVM/LUKS member or partition table: not ours to touch.</summary>
    Foreign,
}

public sealed record RawInspection(RawContent Content, RawDumpHeader? Header, string Description);

/// <summary>Opening and recognising raw dump devices, shared by the capture and savecore.</summary>
public static class RawDevice
{
    /// <summary>
    /// Opens the device read-write (or read-only). A block device is opened O_EXCL: the kernel
    /// then refuses it (EBUSY) while it is mounted, used as swap or held by md/dm/LVM, which is
    /// exactly when writing to it would destroy something. Regular files only when
    /// <paramref name="allowRegularFile"/> (tests, images); symbolic links (/dev/disk/by-*) are followed.
    /// </summary>
    public static SafeFileHandle Open(string path, bool writable, bool allowRegularFile)
    {
        bool block = Libc.IsBlockDevice(path);
        if (!block)
        {
            if (!File.Exists(path)) throw new RawDeviceException($"{path} does not exist");
            if (!allowRegularFile) throw new RawDeviceException($"{path} is not a block device");
        }
        // O_NONBLOCK: a FIFO put where an image was expected must not hang the open or the reads.
        int flags = (writable ? Libc.O_RDWR : Libc.O_RDONLY) | (block ? Libc.O_EXCL : 0) | Libc.O_NONBLOCK;
        try
        {
            var handle = Libc.OpenFile(path, flags, 0);
            var (type, _) = Libc.Fstat(handle);
            if (type == Libc.S_IFBLK || (allowRegularFile && type == Libc.S_IFREG)) return handle;
            handle.Dispose();
            throw new RawDeviceException($"{path} is {Libc.FileTypeName(type)}, not a block device");
        }
        catch (IOException e) when (e.HResult == Libc.EBUSY)
        {
            throw new RawDeviceException($"{path} is in use (mounted, active swap, or part of a RAID/LVM/device-mapper device): not touched");
        }
        catch (IOException e)
        {
            throw new RawDeviceException(ErrorText.Of(e));
        }
    }

    /// <summary>Bytes in the device (lseek to its end: stat says 0 for block devices).</summary>
    public static long Size(SafeFileHandle handle) => Libc.DeviceSize(handle);

    /// <summary>Reads block 0, and probes for other signatures when it is not ours.</summary>
    public static RawInspection Inspect(SafeFileHandle handle, long size)
    {
        var block = new byte[RawDumpHeader.Size];
        int n = size >= block.Length ? RandomAccess.Read(handle, block, 0) : 0;
        if (n == block.Length && RawDumpHeader.HasMagic(block))
        {
            var header = RawDumpHeader.Parse(block, out string? problem);
            if (header is null) return new RawInspection(RawContent.DamagedHeader, null, problem!);
            return header.State == RawDumpState.Extracted
                ? new RawInspection(RawContent.Extracted, header, $"a dump already extracted ({header.Describe()}{(header.ExtractedTo is { } to ? ", to " + to : "")})")
                : new RawInspection(RawContent.Dump, header, $"a dump ({header.Describe()})");
        }
        var source = BlockSource.FromHandle(handle, size);
        var volume = SuperblockProbe.Probe(source);
        if (volume.IsKnown) return new RawInspection(RawContent.Foreign, null, volume.Describe());
        // A whole disk named by mistake instead of its partition: its table must survive.
        if (PartitionTable.Read(source) is { } table)
            return new RawInspection(RawContent.Foreign, null, $"a {table.Type} partition table with {table.Partitions.Count} partition(s)");
        return new RawInspection(RawContent.Empty, null, "no dump");
    }
}

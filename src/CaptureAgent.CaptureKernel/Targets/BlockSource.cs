using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Targets;

/// <summary>
/// Bounded reads from the start of a device or image. Every probe asks for a few exact byte
/// ranges; a range the source cannot supply in full (a truncated image, a short device) comes back
/// as null, so a probe never sees half a superblock.
/// </summary>
internal abstract class BlockSource
{
    /// <summary>Larger single reads are refused: probing never needs more than a block or two.</summary>
    public const int MaxRead = 64 * 1024;

    /// <summary>Bytes in the source, or -1 when not known (a block device's length is not in stat).</summary>
    public abstract long Length { get; }

    protected abstract int ReadAt(long offset, Span<byte> destination);

    public byte[]? Read(long offset, int count)
    {
        if (offset < 0 || count <= 0 || count > MaxRead) return null;
        if (Length >= 0 && offset + count > Length) return null;
        var buffer = new byte[count];
        int done = 0;
        while (done < count)
        {
            int got = ReadAt(offset + done, buffer.AsSpan(done));
            if (got <= 0) return null;
            done += got;
        }
        return buffer;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> from <paramref name="offset"/>, whatever its size (the
    /// caller bounds it: LVM metadata is read whole); false when the source cannot supply it all.
    /// </summary>
    public bool ReadExact(long offset, Span<byte> destination)
    {
        if (offset < 0 || Length >= 0 && (offset > Length || destination.Length > Length - offset)) return false;
        int done = 0;
        while (done < destination.Length)
        {
            int got = ReadAt(offset + done, destination[done..]);
            if (got <= 0) return false;
            done += got;
        }
        return true;
    }

    public static BlockSource FromBytes(ReadOnlyMemory<byte> image) => new MemorySource(image);

    public static BlockSource FromHandle(SafeFileHandle handle, long length) => new HandleSource(handle, length);

    private sealed class MemorySource(ReadOnlyMemory<byte> image) : BlockSource
    {
        public override long Length => image.Length;

        protected override int ReadAt(long offset, Span<byte> destination)
        {
            if (offset >= image.Length) return 0;
            var available = image.Span[(int)offset..];
            int n = Math.Min(available.Length, destination.Length);
            available[..n].CopyTo(destination);
            return n;
        }
    }

    private sealed class HandleSource(SafeFileHandle handle, long length) : BlockSource
    {
        public override long Length => length;

        protected override int ReadAt(long offset, Span<byte> destination) => RandomAccess.Read(handle, destination, offset);
    }
}

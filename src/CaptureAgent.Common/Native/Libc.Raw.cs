using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LseekRaw(int fd, long offset, int whence);

    /// <summary>The size of an open file or block device (stat says 0 for devices; lseek to the end does not).</summary>
    public static long DeviceSize(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            long size = LseekRaw((int)handle.DangerousGetHandle(), 0, 2 /* SEEK_END */);
            if (size < 0) throw new IOException($"cannot find the size of the device: {LastError().Message}");
            return size;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    // struct stat on x86_64: st_mode is the u32 at offset 24 of 144 bytes.
    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatRaw(string path, ref byte buf);

    public static bool IsBlockDevice(string path)
    {
        var buf = new byte[256];
        if (StatRaw(path, ref buf[0]) != 0) return false;
        uint mode = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(24));
        return (mode & 0xF000) == 0x6000;   // S_IFBLK
    }
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    public const int O_NONBLOCK = 0x800;
    public const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFBLK = 0x6000, S_IFCHR = 0x2000,
        S_IFIFO = 0x1000, S_IFSOCK = 0xC000, S_IFDIR = 0x4000, S_IFLNK = 0xA000;

    // struct stat on x86_64 is 144 bytes: st_mode is the u32 at 24, st_size the i64 at 48.
    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FstatRaw(int fd, ref byte buf);

    /// <summary>The file type bits (S_IFMT) and size of an open file.</summary>
    public static (uint Type, long Size) Fstat(SafeFileHandle handle)
    {
        var buf = new byte[256];
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            if (FstatRaw((int)handle.DangerousGetHandle(), ref buf[0]) != 0)
                throw new IOException($"fstat: {LastError().Message}", LastError().Errno);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
        return (BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(24)) & S_IFMT, BinaryPrimitives.ReadInt64LittleEndian(buf.AsSpan(48)));
    }

    /// <summary>"a named pipe (FIFO)", "a directory"...: what a file type is, for messages.</summary>
    public static string FileTypeName(uint type) => type switch
    {
        S_IFREG => "a regular file",
        S_IFBLK => "a block device",
        S_IFCHR => "a character device",
        S_IFIFO => "a named pipe (FIFO)",
        S_IFSOCK => "a socket",
        S_IFDIR => "a directory",
        S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    };
}

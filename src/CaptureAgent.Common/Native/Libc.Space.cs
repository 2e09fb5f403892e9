using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    public const int EDQUOT = 122, EIO = 5, EFBIG = 27;

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateRaw(int fd, int mode, long offset, long length);

    /// <summary>Allocates disk blocks for a range so later writes into it cannot hit ENOSPC. Returns errno or 0.</summary>
    public static int Fallocate(SafeFileHandle file, long offset, long length)
    {
        bool added = false;
        file.DangerousAddRef(ref added);
        try
        {
            return FallocateRaw((int)file.DangerousGetHandle(), 0, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (added) file.DangerousRelease();
        }
    }

    private const int RLIMIT_FSIZE = 1;

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRlimitRaw(int resource, out RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current, Maximum;
    }

    /// <summary>The largest file this process may write (RLIMIT_FSIZE, `ulimit -f`), or long.MaxValue when unlimited.</summary>
    public static long FileSizeLimit() =>
        GetRlimitRaw(RLIMIT_FSIZE, out var l) == 0 && l.Current < long.MaxValue ? (long)l.Current : long.MaxValue;

    // struct statvfs on x86_64 glibc: 11 unsigned longs then int-sized fields; 112 bytes in all.
    [StructLayout(LayoutKind.Sequential)]
    private struct StatVfs
    {
        public ulong f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_fsid, f_flag, f_namemax;
        public int spare0, spare1, spare2, spare3, spare4, spare5;
    }

    [LibraryImport("libc", EntryPoint = "statvfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatVfsRaw(string path, out StatVfs buf);

    /// <summary>Bytes an unprivileged writer could still put on the filesystem of path (f_bavail × f_frsize).</summary>
    public static long AvailableBytes(string path)
    {
        if (StatVfsRaw(path, out var s) != 0) throw new IOException($"statvfs {path}: {LastError().Message}");
        return (long)Math.Min(s.f_bavail * s.f_frsize, long.MaxValue);
    }

    /// <summary>
    /// A write error after which the dump stops but what is already on the target stays useful:
    /// out of space, or an I/O error (a failing disk, an NFS soft mount timing out).
    /// </summary>
    public static bool IsTargetFailure(IOException e) => IsOutOfSpace(e) || e.HResult == EIO;

    /// <summary>Is this exception a "the target is full" (ENOSPC, EDQUOT, EFBIG)?</summary>
    public static bool IsOutOfSpace(IOException e) => e.HResult is ENOSPC or EDQUOT or EFBIG
        || e.Message.Contains("No space left on device", StringComparison.Ordinal) || e.Message.Contains("Disk quota exceeded", StringComparison.Ordinal);
}

using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

/// <summary>Every libc call of the program, in one place. DirectPInvoke binds them at link time.</summary>
internal static partial class Libc
{
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;

    public const int ELOOP = 40;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "isatty")]
    public static partial int IsATty(int fd);

    /// <summary>open(2) returning a handle, or throwing IOException with the errno text.</summary>
    public static SafeFileHandle OpenFile(string path, int flags, uint mode)
    {
        int fd = Open(path, flags | O_CLOEXEC, mode);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string why = errno == ELOOP ? "it is a symbolic link (refusing to follow it)" : Marshal.GetPInvokeErrorMessage(errno);
            throw new IOException($"cannot create {path}: {why}", errno);
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }
}

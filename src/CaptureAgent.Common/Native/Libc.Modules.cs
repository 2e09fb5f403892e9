using System.Runtime.InteropServices;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    public const int EOPNOTSUPP = 95;

    private const long SYS_init_module = 175;
    private const int PROT_READ = 1, PROT_WRITE = 2;
    private const int MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
    private static readonly nint MapFailed = -1;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallPointers3(long number, nint a1, nint a2, nint a3);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint MmapRaw(nint address, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int MunmapRaw(nint address, nuint length);

    /// <summary>init_module(2) of a module image in memory, with empty parameters; returns 0 or the errno.</summary>
    public static unsafe int InitModule(byte* image, long length)
    {
        byte empty = 0;
        long r = SyscallPointers3(SYS_init_module, (nint)image, (nint)length, (nint)(&empty));
        return r == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// Anonymous private memory of <paramref name="length"/> bytes, outside the GC heap. Pages
    /// cost memory only once written (MAP_NORESERVE: no commit charge for the rest), so a buffer
    /// sized for the largest case costs what is used. Null when the kernel refuses.
    /// </summary>
    public static nint MapAnonymous(long length)
    {
        nint p = MmapRaw(0, (nuint)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        return p == MapFailed ? 0 : p;
    }

    public static void Unmap(nint address, long length)
    {
        if (address != 0) MunmapRaw(address, (nuint)length);
    }
}

using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Native;

/// <summary>Every libc call of the program, in one place. DirectPInvoke binds them at link time.</summary>
internal static partial class Libc
{
    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NOCTTY = 0x100;
    public const int O_TRUNC = 0x200;
    public const int O_DIRECTORY = 0x10000;
    public const int O_NOFOLLOW = 0x20000;
    public const int O_CLOEXEC = 0x80000;

    public const int EPERM = 1, ENOENT = 2, ENOEXEC = 8, EBADF = 9, ENOMEM = 12, EBUSY = 16, EEXIST = 17,
        EINVAL = 22, ENOSPC = 28, ENOSYS = 38, ELOOP = 40, EKEYREJECTED = 129;

    // x86_64 system call numbers without a glibc wrapper in Debian 12's glibc 2.36.
    private const long SYS_finit_module = 313;
    private const long SYS_kexec_file_load = 320;

    public const uint KEXEC_FILE_UNLOAD = 1, KEXEC_FILE_ON_CRASH = 2, KEXEC_FILE_NO_INITRAMFS = 4;
    public const int MODULE_INIT_COMPRESSED_FILE = 4;

    public const int RB_AUTOBOOT = 0x01234567, RB_HALT_SYSTEM = unchecked((int)0xcdef0123), RB_POWER_OFF = 0x4321fedc;
    public const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8;
    public const int MNT_DETACH = 2;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "close")]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    public static partial int Dup2(int oldFd, int newFd);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int cmd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncFd(int fd);

    [LibraryImport("libc", EntryPoint = "isatty")]
    public static partial int IsATty(int fd);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall5(long number, long a1, long a2, long a3, nint a4, long a5);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall3(long number, long a1, nint a2, long a3);

    [LibraryImport("libc", EntryPoint = "mount", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MountRaw(string source, string target, string fsType, ulong flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Umount2(string target, int flags);

    [LibraryImport("libc", EntryPoint = "reboot", SetLastError = true)]
    private static partial int RebootRaw(int command);

    [LibraryImport("libc", EntryPoint = "sync")]
    public static partial void Sync();

    /// <summary>Waits until a terminal has sent what was written to it (fails harmlessly on a non-tty).</summary>
    [LibraryImport("libc", EntryPoint = "tcdrain")]
    public static partial int TcDrain(int fd);

    /// <summary>The errno of the last failed call, as a number and a message.</summary>
    public static (int Errno, string Message) LastError()
    {
        int e = Marshal.GetLastPInvokeError();
        return (e, Marshal.GetPInvokeErrorMessage(e));
    }

    /// <summary>open(2) returning a handle, or throwing IOException with the errno text.</summary>
    public static SafeFileHandle OpenFile(string path, int flags, uint mode)
    {
        int fd = Open(path, flags | O_CLOEXEC, mode);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string why = errno == ELOOP ? "it is a symbolic link (refusing to follow it)" : Marshal.GetPInvokeErrorMessage(errno);
            throw new IOException($"cannot open {path}: {why}", errno);
        }
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>A raw descriptor (no CLOEXEC): for the console that becomes fds 0-2.</summary>
    public static int OpenRaw(string path, int flags) => Open(path, flags, 0);

    public static bool IsOpen(int fd) => Fcntl(fd, 1 /* F_GETFD */) >= 0;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl3(int fd, int cmd, int arg);

    /// <summary>A close-on-exec duplicate of fd (F_DUPFD_CLOEXEC), or -1.</summary>
    public static int DupCloexec(int fd) => Fcntl3(fd, 1030 /* F_DUPFD_CLOEXEC */, 3);

    /// <summary>fsync of a directory, so a rename inside it survives power loss.</summary>
    public static void FsyncDirectory(string path)
    {
        using var h = OpenFile(path, O_RDONLY | O_DIRECTORY, 0);
        if (FsyncFd((int)h.DangerousGetHandle()) != 0)
            throw new IOException($"fsync {path}: {LastError().Message}");
    }

    /// <summary>kexec_file_load(2); returns 0 or the errno.</summary>
    public static int KexecFileLoad(int kernelFd, int initrdFd, string? cmdline, uint flags)
    {
        // The kernel wants the length including the terminating NUL.
        var bytes = System.Text.Encoding.UTF8.GetBytes((cmdline ?? "") + "\0");
        unsafe
        {
            fixed (byte* p = bytes)
            {
                long r = Syscall5(SYS_kexec_file_load, kernelFd, initrdFd, cmdline is null ? 0 : bytes.Length, cmdline is null ? 0 : (nint)p, flags);
                return r == 0 ? 0 : Marshal.GetLastPInvokeError();
            }
        }
    }

    /// <summary>finit_module(2) with empty parameters; returns 0 or the errno.</summary>
    public static int FinitModule(SafeFileHandle module, int flags)
    {
        unsafe
        {
            byte empty = 0;
            long r = Syscall3(SYS_finit_module, (long)module.DangerousGetHandle(), (nint)(&empty), flags);
            return r == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>mount(2); returns 0 or the errno.</summary>
    public static int Mount(string source, string target, string fsType, ulong flags = 0, string? data = null) =>
        MountRaw(source, target, fsType, flags, data) == 0 ? 0 : Marshal.GetLastPInvokeError();

    public static int Unmount(string target, int flags = 0) =>
        Umount2(target, flags) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>reboot(2): only returns if the kernel refused.</summary>
    public static int Reboot(int command) => RebootRaw(command) == 0 ? 0 : Marshal.GetLastPInvokeError();
}

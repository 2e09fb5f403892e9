using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    public const int SIGKILL = 9, SIGSEGV = 11, SIGXFSZ = 25;
    private const int P_ALL = 0, WEXITED = 4, WNOHANG = 1, WNOWAIT = 0x01000000;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "getpid")]
    public static partial int GetPid();

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint SignalRaw(int signal, nint handler);

    /// <summary>Gives a signal back its default action (SIG_DFL): the runtime's own handler no longer sees it.</summary>
    public static void DefaultSignalAction(int signal) => SignalRaw(signal, 0);

    /// <summary>Ignores a signal (SIG_IGN); the system call that raised it fails with its errno instead.</summary>
    public static void IgnoreSignal(int signal) => SignalRaw(signal, 1);

    [LibraryImport("libc", EntryPoint = "waitid", SetLastError = true)]
    private static partial int WaitIdRaw(int idType, int id, ref byte info, int options);

    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int WaitPidRaw(int pid, nint status, int options);

    /// <summary>
    /// The pid of a child that has ended, without reaping it (waitid WNOWAIT), or 0: lets PID 1 reap
    /// orphans while the runtime still owns the status of the children it started itself.
    /// </summary>
    public static int PeekEndedChild()
    {
        Span<byte> info = stackalloc byte[128];   // siginfo_t; si_pid at 16 on x86_64
        info.Clear();
        if (WaitIdRaw(P_ALL, 0, ref info[0], WEXITED | WNOHANG | WNOWAIT) != 0) return 0;
        return BinaryPrimitives.ReadInt32LittleEndian(info[16..]);
    }

    /// <summary>Reaps one ended child whose status nobody wants (an orphan handed to PID 1).</summary>
    public static void Reap(int pid) => WaitPidRaw(pid, 0, WNOHANG);
}

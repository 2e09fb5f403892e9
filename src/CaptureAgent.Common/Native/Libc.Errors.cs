using System.Runtime.InteropServices;

namespace CaptureAgent.Native;

internal static partial class Libc
{
    public const int EACCES = 13, ENODEV = 19, EPROTONOSUPPORT = 93, ETIMEDOUT = 110, ECONNREFUSED = 111, EHOSTUNREACH = 113;

    /// <summary>"No such device (errno 19)": the text users search for, and the number.</summary>
    public static string ErrnoName(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}

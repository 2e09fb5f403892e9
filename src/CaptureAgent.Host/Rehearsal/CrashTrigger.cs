using CaptureAgent.Native;

namespace CaptureAgent.Rehearsal;

/// <summary>
/// The crash itself, for `test --crash` and the rehearsal guest: sync, then sysrq 'c' through
/// /proc/sysrq-trigger (which works whatever kernel.sysrq allows from the keyboard).
/// </summary>
public static class CrashTrigger
{
    public static void Trigger(string procRoot = "/proc")
    {
        // What was just said on a serial console or an ssh session may still sit in the tty's
        // buffer: the kernel stops transmitting it the moment it panics.
        Console.Out.Flush();
        Console.Error.Flush();
        Libc.TcDrain(1);
        Libc.TcDrain(2);
        Libc.Sync();
        File.WriteAllText(Path.Combine(procRoot, "sysrq-trigger"), "c");
    }
}

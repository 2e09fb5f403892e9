using CaptureAgent.Config;

namespace CaptureAgent.Kexec;

/// <summary>What the running kernel says about crash capture, read from /sys and /proc.</summary>
public sealed record CrashKernelState(bool Loaded, long ReservedBytes, string? CrashKernelParameter, string CommandLine, bool KexecDisabled, string? Lockdown)
{
    public static CrashKernelState Read(string root = "/")
    {
        string P(string rel) => Path.Combine(root, rel);
        string cmdline = ReadText(P("proc/cmdline")) ?? "";
        string? param = CaptureCommandLine.Tokenize(cmdline).FirstOrDefault(t => t.StartsWith("crashkernel=", StringComparison.Ordinal));
        var lockdown = ReadText(P("sys/kernel/security/lockdown"));
        string? active = lockdown is null ? null : System.Text.RegularExpressions.Regex.Match(lockdown, @"\[(\w+)\]").Groups[1].Value;
        return new CrashKernelState(
            ReadText(P("sys/kernel/kexec_crash_loaded"))?.Trim() == "1",
            long.TryParse(ReadText(P("sys/kernel/kexec_crash_size"))?.Trim(), out var size) ? size : 0,
            param,
            cmdline.Trim(),
            ReadText(P("proc/sys/kernel/kexec_load_disabled"))?.Trim() == "1",
            active is { Length: > 0 } and not "none" ? active : null);
    }

    /// <summary>One line saying whether a crash would be captured, and if not, why.</summary>
    /// <param name="wouldNotSave">Why the armed capture kernel could not save the dump anywhere (no target reachable), or null.</param>
    public string Explain(string? wouldNotSave = null)
    {
        if (Loaded && wouldNotSave is not null) return $"armed, but the dump would not be saved: {wouldNotSave}";
        if (Loaded) return $"armed: a capture kernel is loaded in a {ReservedBytes >> 20} MiB reservation";
        if (ReservedBytes == 0)
            return CrashKernelParameter is null
                ? "not armed: no memory is reserved (add crashkernel=256M to the kernel command line and reboot)"
                : $"not armed: {CrashKernelParameter} is on the command line but the kernel reserved nothing (too little RAM for that size, or it did not fit)";
        if (KexecDisabled) return "not armed: kexec is disabled (kernel.kexec_load_disabled=1); it stays disabled until reboot";
        return $"not armed: {ReservedBytes >> 20} MiB are reserved but no capture kernel is loaded (run capture-agent load)";
    }

    private static string? ReadText(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}

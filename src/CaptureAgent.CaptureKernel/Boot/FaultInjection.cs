using CaptureAgent.Native;
using CaptureAgent.Common;
using CaptureAgent.Config;

namespace CaptureAgent.Boot;

/// <summary>
/// A test switch: <c>capture_agent.fault=T:KIND[,T:KIND...]</c> on the capture kernel's command line
/// makes the capture process fail on purpose once a tenth of target T's pages (1 = the first
/// target) are written: <c>segv</c> (dies by SIGSEGV), <c>kill</c> (SIGKILL, as the OOM killer
/// does) or <c>hang</c> (stops making progress). It proves what PID 1 does then, in a real capture
/// kernel. Without the parameter, or with one it cannot read, it does nothing.
/// </summary>
public sealed class FaultInjection
{
    public const string Parameter = "capture_agent.fault";
    private readonly Dictionary<int, string> _faults;

    private FaultInjection(Dictionary<int, string> faults) => _faults = faults;

    public static FaultInjection? FromCommandLine(string cmdline)
    {
        if (Config.CaptureCommandLine.Value(cmdline, Parameter) is not { Length: > 0 } spec) return null;
        var faults = new Dictionary<int, string>();
        foreach (var item in spec.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = item.Split(':');
            if (parts.Length == 2 && int.TryParse(parts[0], out int target) && target >= 1 && parts[1] is "segv" or "kill" or "hang")
                faults[target - 1] = parts[1];
        }
        return faults.Count > 0 ? new FaultInjection(faults) : null;
    }

    /// <summary>Called with the progress of the target being written; fires its fault at 10%.</summary>
    public void OnProgress(int target, ulong done, ulong total)
    {
        if (total == 0 || done * 10 < total || !_faults.Remove(target, out var kind)) return;
        Log.Info($"capture-agent: {Parameter}: injecting '{kind}' into the capture of target {target + 1} now");
        switch (kind)
        {
            case "segv":
                // The runtime's own handler would look at it: the default action is a real SIGSEGV death.
                Libc.DefaultSignalAction(Libc.SIGSEGV);
                Libc.Kill(Libc.GetPid(), Libc.SIGSEGV);
                break;
            case "kill":
                Libc.Kill(Libc.GetPid(), Libc.SIGKILL);
                break;
        }
        Thread.Sleep(Timeout.Infinite);   // hang; the signals above do not return either
    }
}

using CaptureAgent.Capture;
using CaptureAgent.Cli;
using CaptureAgent.Config;
using CaptureAgent.Kexec;
using CaptureAgent.Native;

namespace CaptureAgent.Boot;

/// <summary>
/// The agent as /init of the capture kernel: set up, run the target chain (find, mount or reach
/// each target in turn, save the log and the dump), then reboot (or the configured action). PID 1
/// must never die: every failure is caught, reported on one line, followed by sync and the
/// failure action.
/// </summary>
public static class CaptureInit
{
    private const string Vmcore = "/proc/vmcore";
    private const string MountBase = "/mnt";

    public static int Run()
    {
        var action = FinalAction.Reboot;
        try
        {
            BootEnvironment.EnsureConsole();
            Log.Level = 2;
            Log.Info("capture-agent: capture kernel started");
            BootEnvironment.MountPseudoFilesystems();
            Log.Info($"capture-agent: {BootEnvironment.MemorySummary()}");
            var config = AgentConfig.Load(AgentConfig.DefaultPath);
            foreach (var e in config.Errors) Log.Warn(e);
            action = config.FailureAction;
            if (!File.Exists(Vmcore))
                throw new IOException($"{Vmcore} does not exist: this is not a kdump capture kernel");

            int loaded = BootEnvironment.LoadModules();
            Log.Info($"capture-agent: {loaded} modules loaded");
            string cmdline = File.Exists("/proc/cmdline") ? File.ReadAllText("/proc/cmdline") : "";
            var chain = new CaptureChain(config, Vmcore, Log.Info, MountBase, CaptureCommandLine.Value(cmdline, CaptureCommandLine.BootIdParameter))
            {
                ProgressFactory = () => Log.Progress("capture-agent: saving vmcore"),
            };
            var outcomes = chain.Run();
            Log.Info($"capture-agent: peak memory {BootEnvironment.PeakRssKiB()} KiB (at the end: {BootEnvironment.MemoryNow()})");
            if (outcomes[^1].Complete) action = config.FinalAction;
            else Log.Error(outcomes.Any(o => o.Saved) ? "capture incomplete: no target holds a complete dump" : "capture failed: no target could save the dump");
        }
        catch (Exception e)
        {
            Log.Error($"capture failed: {e.Message}");
        }
        BootEnvironment.Finish(action);
        return ExitCodes.Failed;   // only if reboot(2) itself failed
    }
}

using CaptureAgent.Config;
using CaptureAgent.Common;
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

    public static int Run()
    {
        var action = FinalAction.Reboot;
        try
        {
            BootEnvironment.EnsureConsole();
            Log.Level = 2;
            Log.Info("capture-agent: capture kernel started");
            BootEnvironment.MountPseudoFilesystems();
            BootEnvironment.DisableWatermarkBoost();
            Log.Info($"capture-agent: {ProcessMemory.MemorySummary()}");
            var config = AgentConfig.Load(AgentConfig.DefaultPath);
            foreach (var e in config.Errors) Log.Warn(e);
            action = config.FailureAction;
            if (!File.Exists(Vmcore))
                throw new IOException($"{Vmcore} does not exist: this is not a kdump capture kernel");

            int loaded = BootEnvironment.LoadModules();
            Log.Info($"capture-agent: {loaded} modules loaded");
            // The capture runs in a child process: whatever kills or hangs it, PID 1 goes on.
            var supervisor = new CaptureSupervisor(config, Log.Info);
            var (complete, saved) = supervisor.Run();
            // What the reservation had to hold: this process and the capture process beside it.
            long own = ProcessMemory.PeakRssKiB();
            if (supervisor.WorkerPeakKiB > 0 && own > 0)
                Log.Info($"capture-agent: peak memory {own + supervisor.WorkerPeakKiB} KiB (capture {supervisor.WorkerPeakKiB} KiB, PID 1 {own} KiB)");
            if (complete) action = config.FinalAction;
            else Log.Error(saved ? "capture incomplete: no target holds a complete dump" : "capture failed: no target could save the dump");
        }
        catch (Exception e)
        {
            Log.Error($"capture failed: {ErrorText.Of(e)}");
        }
        BootEnvironment.Finish(action);
        return ExitCodes.Failed;   // only if reboot(2) itself failed
    }
}

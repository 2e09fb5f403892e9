using CaptureAgent.Capture;
using CaptureAgent.Cli;
using CaptureAgent.Config;
using CaptureAgent.Dump;
using CaptureAgent.Native;
using CaptureAgent.Targets;

namespace CaptureAgent.Boot;

/// <summary>
/// The agent as /init of the capture kernel: set up, find and mount the dump target, save the log
/// and the dump, then reboot (or the configured action). PID 1 must never die: every failure is
/// caught, reported on one line, followed by sync and the failure action.
/// </summary>
public static class CaptureInit
{
    private const string Vmcore = "/proc/vmcore";
    private const string MountPoint = "/mnt/target";

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
            if (config.Target is null)
                throw new IOException($"no dump target configured (target = ... in {AgentConfig.DefaultPath})");

            int loaded = BootEnvironment.LoadModules();
            Log.Info($"capture-agent: {loaded} modules loaded");
            var match = new DeviceSpec(config.Target).WaitFor(config.DeviceTimeout);
            string fsType = config.FilesystemType ?? match.Filesystem?.Type
                ?? throw new IOException($"{match.Node}: unknown filesystem (set fstype = ...)");
            Directory.CreateDirectory(MountPoint);
            int errno = Libc.Mount(match.Node, MountPoint, fsType, Libc.MS_NOSUID | Libc.MS_NODEV);
            if (errno != 0) throw new IOException($"mounting {match.Node} ({fsType}) on {MountPoint} failed: errno {errno}");
            Log.Info($"capture-agent: {match.Node} ({fsType}) mounted");

            var result = CaptureJob.Run(Vmcore, MountPoint, config.Path, new DumpOptions
            {
                Level = config.DumpLevel,
                Codec = config.Compression,
                Progress = Log.Progress("capture-agent: saving vmcore"),
            }, config.SaveRawCopy);
            foreach (var p in result.Problems) Log.Warn(p);
            Log.Info($"capture-agent: done in {result.Elapsed.TotalSeconds:0.0} s, peak memory {BootEnvironment.PeakRssKiB()} KiB");
            Libc.Sync();
            Libc.Unmount(MountPoint);
            action = config.FinalAction;
        }
        catch (Exception e)
        {
            Log.Error($"capture failed: {e.Message}");
        }
        BootEnvironment.Finish(action);
        return ExitCodes.Failed;   // only if reboot(2) itself failed
    }
}

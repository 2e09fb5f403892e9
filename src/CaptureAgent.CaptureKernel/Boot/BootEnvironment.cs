using CaptureAgent.Config;
using CaptureAgent.Native;
using CaptureAgent.Common;

namespace CaptureAgent.Boot;

/// <summary>What PID 1 of the capture kernel has to set up itself: console, pseudo filesystems, modules; and how it ends.</summary>
public static class BootEnvironment
{
    /// <summary>
    /// Makes fds 0-2 the console. The kernel opens /dev/console for init only if the initramfs has
    /// it; without it, writing to a closed stdout would throw.
    /// </summary>
    public static void EnsureConsole()
    {
        if (Libc.IsOpen(1) && Libc.IsOpen(2)) return;
        Directory.CreateDirectory("/dev");
        Libc.Mount("devtmpfs", "/dev", "devtmpfs", Libc.MS_NOSUID);
        int fd = Libc.OpenRaw("/dev/console", Libc.O_RDWR | Libc.O_NOCTTY);
        if (fd < 0) return;   // nowhere to print; Log swallows write errors
        for (int i = 0; i < 3; i++) Libc.Dup2(fd, i);
        if (fd > 2) Libc.Close(fd);
    }

    public static void MountPseudoFilesystems()
    {
        foreach (var (type, target, flags) in new[]
        {
            ("proc", "/proc", Libc.MS_NOSUID | Libc.MS_NODEV | Libc.MS_NOEXEC),
            ("sysfs", "/sys", Libc.MS_NOSUID | Libc.MS_NODEV | Libc.MS_NOEXEC),
            ("devtmpfs", "/dev", Libc.MS_NOSUID),
        })
        {
            Directory.CreateDirectory(target);
            int errno = Libc.Mount(type, target, type, flags);
            if (errno != 0 && errno != Libc.EBUSY) Log.Warn($"mounting {type} on {target} failed: errno {errno}");
        }
    }

    /// <summary>
    /// Turns off the page allocator's watermark boost (vm.watermark_boost_factor, 5.0+). When an
    /// allocation steals a 2 MiB pageblock of another migrate type the kernel raises every watermark
    /// by a pageblock until kswapd has reclaimed it back; with the ~30 MiB a capture kernel manages
    /// that is most of what is free. Two out-of-memory panics in 6.1 capture kernels (80M, 76M) both
    /// showed it: "free:1864kB boost:2048kB min:2772kB" — above the 724 KiB min without the boost.
    /// Compaction for fragmentation is worth nothing here; a capture that fits is.
    /// </summary>
    public static void DisableWatermarkBoost(string procRoot = "/proc")
    {
        string path = Path.Combine(procRoot, "sys/vm/watermark_boost_factor");
        if (!File.Exists(path)) return;   // before 5.0: no boosting to turn off
        try { File.WriteAllText(path, "0\n"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Log.Warn($"cannot turn off the watermark boost ({path}): {e.Message}"); }
    }

    /// <summary>
    /// Loads the modules listed (dependencies first) in lib/modules/RELEASE/capture-agent.modules,
    /// written by the initramfs builder, with <see cref="ModuleLoader"/>: compressed ones go to the
    /// kernel as they are where it can decompress them, and are decompressed here otherwise.
    /// </summary>
    public static int LoadModules(string root = "/")
    {
        string release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        string dir = Path.Combine(root, "lib/modules", release);
        string path = Path.Combine(dir, ModuleList.FileName);
        if (!File.Exists(path)) return 0;
        var list = ModuleList.Parse(File.ReadAllText(path));
        using var loader = new ModuleLoader(new KernelModuleCalls(), release, Log.Warn, Log.Info);
        return loader.LoadAll(dir, list);
    }

    /// <summary>Syncs and ends the capture kernel the configured way. Never returns unless the kernel refuses.</summary>
    public static void Finish(FinalAction action)
    {
        Libc.Sync();
        if (action == FinalAction.Shell && File.Exists("/bin/sh"))
        {
            Log.Info("capture-agent: starting /bin/sh; exit it to reboot");
            try
            {
                using var sh = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh") { UseShellExecute = false });
                sh?.WaitForExit();
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
            {
                Log.Warn($"cannot start /bin/sh: {e.Message}");
            }
            Libc.Sync();
            action = FinalAction.Reboot;
        }
        else if (action == FinalAction.Shell)
        {
            Log.Warn("no /bin/sh in this initramfs: rebooting instead");
            action = FinalAction.Reboot;
        }
        int command = action switch
        {
            FinalAction.Halt => Libc.RB_HALT_SYSTEM,
            FinalAction.Poweroff => Libc.RB_POWER_OFF,
            _ => Libc.RB_AUTOBOOT,
        };
        Log.Info($"capture-agent: {action.ToString().ToLowerInvariant()}");
        int errno = Libc.Reboot(command);
        Log.Error($"reboot({action}) failed: errno {errno}");
    }
}

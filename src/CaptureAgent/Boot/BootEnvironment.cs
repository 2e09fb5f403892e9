using CaptureAgent.Cli;
using CaptureAgent.Config;
using CaptureAgent.Initramfs;
using CaptureAgent.Native;

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

    /// <summary>MemTotal and MemAvailable of the capture kernel: what the reservation left for us.</summary>
    public static string MemorySummary()
    {
        try
        {
            var lines = File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("MemTotal:") || l.StartsWith("MemAvailable:"));
            return string.Join(", ", lines.Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\s+", " ")));
        }
        catch (IOException)
        {
            return "meminfo unavailable";
        }
    }

    /// <summary>Peak resident memory of this process so far, in KiB (VmHWM).</summary>
    public static long PeakRssKiB() => StatusKiB("VmHWM:");

    /// <summary>
    /// "R KiB resident (anon A, file F, shmem S)": in the capture kernel the binary's own pages are
    /// shmem (the initramfs lives in the page cache whether they are mapped or not); the anonymous
    /// part is what the agent takes from the reservation on top of that.
    /// </summary>
    public static string MemoryNow() =>
        $"{StatusKiB("VmRSS:")} KiB resident (anon {StatusKiB("RssAnon:")}, file {StatusKiB("RssFile:")}, shmem {StatusKiB("RssShmem:")})";

    /// <summary>A "Key:   N kB" line of /proc/self/status, or -1.</summary>
    private static long StatusKiB(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.TryParse(line[key.Length..].Trim().Split(' ')[0], out long kib) ? kib : -1;
        }
        catch (IOException) { }
        return -1;
    }
}

using CaptureAgent.Host;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent install | uninstall`: the agent as a system service with kernel package hooks.</summary>
public static class InstallCommand
{
    public const string Usage = """
        usage: capture-agent install [--root DIR] [--dry-run] [--no-enable] [--binary PATH]
               capture-agent uninstall [--root DIR] [--dry-run] [--purge]
          install writes /usr/sbin/capture-agent (this binary), /etc/capture-agent.conf if missing
          (target: the root filesystem from /etc/fstab, path /var/crash), capture-agent.service and
          capture-agent-savecore.service (enabled unless --no-enable), and the kernel hooks
          /etc/kernel/postinst.d/capture-agent, /etc/kernel/postrm.d/capture-agent and
          /usr/lib/kernel/install.d/45-capture-agent.install, which keep a capture initramfs per
          installed kernel in /var/lib/capture-agent.
          uninstall removes them and the stored images; the config stays unless --purge.
          --root     work below DIR instead of / (default: $CAPTURE_AGENT_ROOT, else /)
          --dry-run  list what would be written or removed, change nothing
        """;

    public static int Install(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        string? binary = Environment.ProcessPath;
        bool dryRun = false, enable = true;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--root" when i + 1 < args.Length: root = args[++i]; break;
                case "--binary" when i + 1 < args.Length: binary = args[++i]; break;
                case "--dry-run": dryRun = true; break;
                case "--no-enable": enable = false; break;
                case "-h" or "--help": Console.Out.WriteLine(Usage); return ExitCodes.Ok;
                default: return Bad($"install: unknown argument {args[i]}");
            }
        }
        if (binary is null || !File.Exists(binary)) return Bad($"install: the binary to install ({binary ?? "unknown"}) does not exist; give --binary PATH");
        if (root != "/" && !Directory.Exists(root)) return Bad($"install: --root {root} is not a directory");
        var host = new HostLayout(root);
        try
        {
            var items = Installer.Plan(host, binary, enable);
            Installer.DefaultConfig(host, out var notes);
            if (!File.Exists(host.ConfigPath))
                foreach (var n in notes) Log.Warn(n);
            Installer.Apply(host, items, dryRun, line => Console.Out.WriteLine(line));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"install: {e.Message}");
            return ExitCodes.Failed;
        }
        if (!dryRun && host.IsLiveRoot)
        {
            Systemctl("daemon-reload");
            Log.Info("next: check /etc/capture-agent.conf (capture-agent config check), then systemctl start capture-agent");
        }
        return ExitCodes.Ok;
    }

    public static int Uninstall(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        bool dryRun = false, purge = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--root" when i + 1 < args.Length: root = args[++i]; break;
                case "--dry-run": dryRun = true; break;
                case "--purge": purge = true; break;
                case "-h" or "--help": Console.Out.WriteLine(Usage); return ExitCodes.Ok;
                default: return Bad($"uninstall: unknown argument {args[i]}");
            }
        }
        var host = new HostLayout(root);
        try
        {
            Installer.Uninstall(host, purge, dryRun, line => Console.Out.WriteLine(line));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"uninstall: {e.Message}");
            return ExitCodes.Failed;
        }
        if (!dryRun && host.IsLiveRoot)
        {
            Systemctl("daemon-reload");
            Log.Info("a capture kernel already loaded stays armed until reboot (or: capture-agent unload, before uninstalling)");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Tells a running systemd about the changed units; without one (a chroot, a container) there is nothing to tell.</summary>
    private static void Systemctl(string verb)
    {
        if (!Directory.Exists("/run/systemd/system")) return;
        string exe = File.Exists("/usr/bin/systemctl") ? "/usr/bin/systemctl" : "/bin/systemctl";
        if (!File.Exists(exe)) return;
        try
        {
            using var p = System.Diagnostics.Process.Start(exe, verb);
            if (!p.WaitForExit(60_000)) Log.Warn($"systemctl {verb} did not finish in 60 s");
            else if (p.ExitCode != 0) Log.Warn($"systemctl {verb} exited with {p.ExitCode}");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Log.Warn($"systemctl {verb}: {e.Message}");
        }
    }

    private static int Bad(string message)
    {
        Log.Error(message);
        Console.Error.WriteLine(Usage);
        return ExitCodes.Usage;
    }
}

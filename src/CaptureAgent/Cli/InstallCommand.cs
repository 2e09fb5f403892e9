using CaptureAgent.Host;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent install | uninstall`: the agent as a system service with kernel package hooks, without a package.</summary>
public static class InstallCommand
{
    public const string Usage = """
        usage: capture-agent install [--root DIR] [--dry-run] [--no-enable] [--no-start] [--binary PATH] [--stage]
               capture-agent uninstall [--root DIR] [--dry-run] [--purge]
          install writes what the Debian package holds: /usr/sbin/capture-agent (this binary), the
          units capture-agent.service and capture-agent-savecore.service in /usr/lib/systemd/system
          with their preset (enabled unless --no-enable), the kernel hooks /etc/kernel/postinst.d/capture-agent,
          /etc/kernel/postrm.d/capture-agent and /usr/lib/kernel/install.d/45-capture-agent.install,
          the man pages and the bash completion; /etc/capture-agent.conf when missing (target: the
          root filesystem from /etc/fstab, path /var/crash); with early_load = yes in it, the early
          hook of the host's initramfs generator (initramfs-tools, dracut or mkinitcpio).
          On the running system (no --root) it then builds the capture initramfs of every installed
          kernel and starts capture-agent.service, which arms the capture kernel (unless --no-start).
          uninstall stops and disables the service, removes those files and the stored images; the
          config stays unless --purge.
          --root     work below DIR instead of / (default: $CAPTURE_AGENT_ROOT, else /)
          --dry-run  list what would be written or removed, change nothing
          --stage    lay out the package's files below --root (scripts/build-deb): no config, nothing
                     enabled, the hooks of both initramfs-tools and dracut
        """;

    public static int Install(string[] args) => CommandLine.Run(Usage, args, InstallHere);

    private static int InstallHere(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        string? binary = Environment.ProcessPath;
        bool dryRun = false, enable = true, start = true, stage = false;
        var cli = new ArgReader("install", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--root": root = cli.Value(); break;
                case "--binary": binary = cli.Value(); break;
                case "--dry-run": dryRun = true; break;
                case "--no-enable": enable = false; break;
                case "--no-start": start = false; break;
                case "--stage": stage = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (binary is null || !File.Exists(binary)) throw cli.Error($"the binary to install ({binary ?? "unknown"}) does not exist; give --binary PATH");
        if (root != "/" && !Directory.Exists(root)) throw cli.Error($"--root {root} is not a directory");
        if (stage && root == "/") throw cli.Error("--stage lays out a package below --root DIR, never on /");
        var host = new HostLayout(root);
        if (!stage && Installer.PackageOwned(host) is { } owned)
        {
            Log.Error($"install: {owned}");
            return ExitCodes.Failed;
        }
        var options = new InstallOptions(Enable: enable && !stage, Stage: stage);
        void Say(string line) => Console.Out.WriteLine(line);
        try
        {
            if (!stage && !File.Exists(host.ConfigPath))
            {
                Installer.DefaultConfig(host, out var notes);
                foreach (var n in notes) Log.Warn(n);
            }
            var date = ManPages.DateFromEnvironment();
            var docs = new InstallDocs(ManPages.Command(date), ManPages.Config(date), BashCompletion.Script());
            Installer.Apply(host, Installer.Plan(host, binary, options, docs), dryRun, Say);
            if (options.Enable) Installer.Enable(host, dryRun, Say);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"install: {e.Message}");
            return ExitCodes.Failed;
        }
        if (stage || dryRun) return ExitCodes.Ok;
        NoteEarlyHooks(host);
        if (!host.IsLiveRoot) return ExitCodes.Ok;
        Systemctl("daemon-reload");
        BuildInstalledKernels(host);
        if (start && enable) Systemctl("restart", "capture-agent.service");
        Log.Info("check /etc/capture-agent.conf (capture-agent config check); `capture-agent status` says whether a crash would be captured");
        return ExitCodes.Ok;
    }

    /// <summary>With early_load = yes: which hook went in, and the command that puts it into the host initramfs.</summary>
    private static void NoteEarlyHooks(HostLayout host)
    {
        if (!Config.AgentConfig.Load(host.ConfigPath).EarlyLoad) return;
        var generators = EarlyHooks.Installed(host);
        if (generators.Count == 0)
            Log.Warn("early_load = yes, but none of initramfs-tools, dracut or mkinitcpio is installed: nothing arms the capture kernel before the root filesystem is mounted");
        foreach (var g in generators)
            Log.Info($"early arming: the {g.Name} hook is installed; rebuild the host initramfs to include it: {g.Rebuild}");
    }

    /// <summary>The capture initramfs of every installed kernel, as the kernel hooks would have built them.</summary>
    private static void BuildInstalledKernels(HostLayout host)
    {
        foreach (var release in CaptureStore.InstalledReleases(host))
        {
            var r = CaptureStore.EnsureCurrent(host, release, Log.Info);
            if (r.Error is not null) Log.Warn($"no capture initramfs for {release} yet (capture-agent kernel-hook add {release}): {r.Error}");
        }
    }

    public static int Uninstall(string[] args) => CommandLine.Run(Usage, args, UninstallHere);

    private static int UninstallHere(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        bool dryRun = false, purge = false;
        var cli = new ArgReader("uninstall", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--root": root = cli.Value(); break;
                case "--dry-run": dryRun = true; break;
                case "--purge": purge = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        var host = new HostLayout(root);
        if (Installer.PackageOwned(host) is { } owned)
        {
            Log.Error($"uninstall: {owned}");
            return ExitCodes.Failed;
        }
        try
        {
            // Stopping the service runs its ExecStop (unload): nothing stays armed by a removed agent.
            if (!dryRun && host.IsLiveRoot) Systemctl("stop", "capture-agent.service");
            Installer.Disable(host, dryRun, line => Console.Out.WriteLine(line));
            Installer.Uninstall(host, purge, dryRun, line => Console.Out.WriteLine(line));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"uninstall: {e.Message}");
            return ExitCodes.Failed;
        }
        if (!dryRun && host.IsLiveRoot) Systemctl("daemon-reload");
        return ExitCodes.Ok;
    }

    /// <summary>Tells a running systemd; without one (a chroot, a container) there is nothing to tell.</summary>
    private static void Systemctl(params string[] args)
    {
        if (!Directory.Exists("/run/systemd/system")) return;
        string exe = File.Exists("/usr/bin/systemctl") ? "/usr/bin/systemctl" : "/bin/systemctl";
        if (!File.Exists(exe)) return;
        try
        {
            using var p = System.Diagnostics.Process.Start(exe, args);
            if (!p.WaitForExit(600_000)) Log.Warn($"systemctl {string.Join(' ', args)} did not finish in 600 s");
            else if (p.ExitCode != 0) Log.Warn($"systemctl {string.Join(' ', args)} exited with {p.ExitCode} (journalctl -u capture-agent says why)");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Log.Warn($"systemctl {string.Join(' ', args)}: {e.Message}");
        }
    }
}

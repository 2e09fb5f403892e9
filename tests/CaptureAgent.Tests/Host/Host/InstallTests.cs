using CaptureAgent.Cli;
using CaptureAgent.Config;
using CaptureAgent.Host;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Host;

/// <summary>install / uninstall on a fake root, the scripts against shellcheck, the units against systemd-analyze.</summary>
[Collection("console")]   // swaps Console.Out, like BootloaderConfigTests
public class InstallTests
{
    private static readonly Dictionary<string, string> Expected = new()
    {
        ["/usr/sbin/capture-agent"] = "755",
        ["/etc/capture-agent.conf"] = "600",
        ["/usr/lib/systemd/system/capture-agent.service"] = "644",
        ["/usr/lib/systemd/system/capture-agent-savecore.service"] = "644",
        ["/usr/lib/systemd/system-preset/80-capture-agent.preset"] = "644",
        ["/etc/kernel/postinst.d/capture-agent"] = "755",
        ["/etc/kernel/postrm.d/capture-agent"] = "755",
        ["/usr/lib/kernel/install.d/45-capture-agent.install"] = "755",
        ["/usr/share/man/man8/capture-agent.8.gz"] = "644",
        ["/usr/share/man/man5/capture-agent.conf.5.gz"] = "644",
        ["/usr/share/bash-completion/completions/capture-agent"] = "644",
    };

    // What `systemctl enable` makes (install runs it with --root, or makes the same links without it).
    private static readonly Dictionary<string, string> Links = new()
    {
        ["/etc/systemd/system/multi-user.target.wants/capture-agent.service"] = "/usr/lib/systemd/system/capture-agent.service",
        ["/etc/systemd/system/multi-user.target.wants/capture-agent-savecore.service"] = "/usr/lib/systemd/system/capture-agent-savecore.service",
    };

    private static (FakeHost Host, string Binary) Fresh()
    {
        var h = new FakeHost();
        string binary = h.Machine.Scratch("agent-build");
        File.WriteAllText(binary, "#!/bin/sh\necho agent\n");
        return (h, binary);
    }

    private static string Mode(string path) => Convert.ToString((int)File.GetUnixFileMode(path), 8);

    [Fact]
    public void InstallWritesExactlyTheseFilesWithTheirModes()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        var before = h.Tree();
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        var added = h.Tree().Except(before).ToHashSet();
        Assert.Equal(Expected.Keys.Concat(Links.Keys).Order(StringComparer.Ordinal), added.Order(StringComparer.Ordinal));
        foreach (var (path, mode) in Expected) Assert.True(mode == Mode(h.Root + path), $"{path}: {Mode(h.Root + path)}, expected {mode}");
        foreach (var (link, target) in Links) Assert.Equal(target, new FileInfo(h.Root + link).LinkTarget);
        Assert.Equal(File.ReadAllBytes(binary), File.ReadAllBytes(h.Agent));
        Assert.Equal(KernelHooks.ServiceUnit, File.ReadAllText(h.Root + KernelHooks.Service));

        // The default config: the root filesystem of fstab, /var/crash, and nothing the parser rejects.
        string conf = File.ReadAllText(h.Root + "/etc/capture-agent.conf");
        var cfg = AgentConfig.Parse(conf);
        Assert.Empty(cfg.Errors);
        Assert.Equal($"UUID={FakeHost.Uuid}", Assert.Single(cfg.Targets).Text);
        Assert.Equal("ext4", cfg.FilesystemType);
        Assert.StartsWith("/var/crash/", cfg.Path);

        // Again: the binary and the config are left as they are, an edited config is never overwritten.
        File.AppendAllText(h.Root + "/etc/capture-agent.conf", "keep_dumps = 1\n");
        var output = CaptureOutput(() => InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.Contains("kept /etc/capture-agent.conf (exists)", output);
        Assert.Contains("kept /usr/sbin/capture-agent (already this binary)", output);
        Assert.EndsWith("keep_dumps = 1\n", File.ReadAllText(h.Root + "/etc/capture-agent.conf"));
    }

    [Fact]
    public void DryRunListsEverythingAndWritesNothing()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        var before = h.Tree();
        string output = CaptureOutput(() => InstallCommand.Install(["--root", h.Root, "--binary", binary, "--dry-run"]));
        Assert.Equal(before, h.Tree());
        Assert.False(Directory.Exists(h.Root + "/etc/systemd"));
        foreach (var (path, mode) in Expected) Assert.Contains($"would write {path} (0{mode})", output);
        foreach (var (link, _) in Links) Assert.Contains($"would enable {Path.GetFileName(link)} ({link})", output);
    }

    [Fact]
    public void UninstallRemovesThemAndKeepsTheConfigUnlessPurged()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        var before = h.Tree();
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        h.Write("var/lib/capture-agent/6.1.0-1-amd64/initramfs.img", "image");
        string dry = CaptureOutput(() => InstallCommand.Uninstall(["--root", h.Root, "--dry-run"]));
        Assert.Contains("would remove /etc/kernel/postinst.d/capture-agent", dry);
        Assert.Contains("would remove /var/lib/capture-agent", dry);
        Assert.True(File.Exists(h.Root + KernelHooks.DebianPostinst));

        Assert.Equal(ExitCodes.Ok, InstallCommand.Uninstall(["--root", h.Root]));
        Assert.Equal(before.Append("/etc/capture-agent.conf").Order(StringComparer.Ordinal), h.Tree().Order(StringComparer.Ordinal));
        Assert.Equal(ExitCodes.Ok, InstallCommand.Uninstall(["--root", h.Root, "--purge"]));
        Assert.Equal(before, h.Tree());
    }

    [Fact]
    public void NoUsableRootInFstabLeavesTheTargetCommentedOut()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        h.Write("etc/fstab", "proc /proc proc defaults 0 0\n");
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        var cfg = AgentConfig.Parse(File.ReadAllText(h.Root + "/etc/capture-agent.conf"));
        Assert.Empty(cfg.Errors);
        Assert.Empty(cfg.Targets);
        // A /dev/NAME root is turned into UUID= read from the device itself.
        File.Delete(h.Root + "/etc/capture-agent.conf");
        h.Write("etc/fstab", "/dev/vda1 / ext4 defaults 0 1\n");
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.Equal($"UUID={FakeHost.Uuid}", AgentConfig.Load(h.Root + "/etc/capture-agent.conf").Target);
    }

    [Fact]
    public void ScriptsPassShellcheckAndUnitsPassSystemdAnalyze()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary, "--no-enable"]));
        foreach (var script in new[] { KernelHooks.DebianPostinst, KernelHooks.DebianPostrm, KernelHooks.KernelInstallPlugin })
        {
            var r = Fixtures.Exec("/usr/bin/shellcheck", ["--shell=sh", "--severity=style", h.Root + script]);
            Assert.True(r.ExitCode == 0, $"shellcheck {script}:\n{r.Stdout}{r.Stderr}");
            Assert.StartsWith("#!/bin/sh\n", File.ReadAllText(h.Root + script));
        }
        // The early hooks of every generator (sh, bash or busybox ash as each generator runs them), and the completion.
        foreach (var g in EarlyHooks.Generators)
            foreach (var (path, text) in g.Files)
            {
                string copy = h.Machine.Scratch(Path.GetFileName(path) + "-" + g.Name);
                File.WriteAllText(copy, text);
                string shell = text.StartsWith("#!/bin/bash", StringComparison.Ordinal) ? "bash" : text.StartsWith("#!/usr/bin/ash", StringComparison.Ordinal) ? "dash" : "sh";
                var r = Fixtures.Exec("/usr/bin/shellcheck", [$"--shell={shell}", "--severity=style", copy]);
                Assert.True(r.ExitCode == 0, $"shellcheck {g.Name} {path}:\n{r.Stdout}{r.Stderr}");
            }
        var completion = Fixtures.Exec("/usr/bin/shellcheck", ["--shell=bash", "--severity=style", h.Root + Installer.BashCompletionFile]);
        Assert.True(completion.ExitCode == 0, $"shellcheck of the bash completion:\n{completion.Stdout}{completion.Stderr}");
        // systemd-analyze checks the binary exists on this machine: point the copies at the fake root's.
        foreach (var unit in new[] { KernelHooks.Service, KernelHooks.SavecoreService })
        {
            string copy = h.Machine.Scratch(Path.GetFileName(unit));
            File.WriteAllText(copy, File.ReadAllText(h.Root + unit).Replace("/usr/sbin/capture-agent", h.Agent));
            // --man=no: the units name the man pages, which are installed in the fake root, not here.
            var r = Fixtures.Exec("/usr/bin/systemd-analyze", ["verify", "--man=no", copy]);
            Assert.True(r.ExitCode == 0 && r.Stderr.Length == 0 && r.Stdout.Length == 0, $"systemd-analyze verify {unit}:\n{r.Stdout}{r.Stderr}");
        }
        string service = File.ReadAllText(h.Root + KernelHooks.Service);
        foreach (var line in new[] { "Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/sbin/capture-agent load --auto",
                                     "ExecStop=/usr/sbin/capture-agent unload", "After=local-fs.target", "WantedBy=multi-user.target" })
            Assert.Contains(line + "\n", service);
        string savecore = File.ReadAllText(h.Root + KernelHooks.SavecoreService);
        Assert.Contains("ExecStart=/usr/sbin/capture-agent savecore\n", savecore);
        Assert.Contains("Before=capture-agent.service\n", savecore);
    }

    [Fact]
    public void DistFilesAreWhatInstallWrites()
    {
        string repo = Fixtures.RepoRoot;
        var pairs = new (string Dist, string Text, string Mode)[]
        {
            ("dist/systemd/capture-agent.service", KernelHooks.ServiceUnit, "644"),
            ("dist/systemd/capture-agent-savecore.service", KernelHooks.SavecoreUnit, "644"),
            ("dist/kernel/postinst.d/capture-agent", KernelHooks.DebianPostinstScript, "755"),
            ("dist/kernel/postrm.d/capture-agent", KernelHooks.DebianPostrmScript, "755"),
            ("dist/kernel/install.d/45-capture-agent.install", KernelHooks.KernelInstallScript, "755"),
            ("dist/systemd/80-capture-agent.preset", Installer.PresetText, "644"),
            ("initramfs/initramfs-tools/hooks/capture-agent", EarlyHooks.InitramfsToolsHookScript, "755"),
            ("initramfs/initramfs-tools/scripts/init-premount/capture-agent", EarlyHooks.InitramfsToolsPremountScript, "755"),
            ("initramfs/dracut/90capture-agent/module-setup.sh", EarlyHooks.DracutModuleSetupScript, "755"),
            ("initramfs/dracut/90capture-agent/capture-agent-load.sh", EarlyHooks.DracutLoadHookScript, "755"),
            ("initramfs/mkinitcpio/install/capture-agent", EarlyHooks.MkinitcpioInstallScript, "644"),
            ("initramfs/mkinitcpio/hooks/capture-agent", EarlyHooks.MkinitcpioHookScript, "644"),
        };
        foreach (var (dist, text, mode) in pairs)
        {
            Assert.Equal(text, File.ReadAllText(Path.Combine(repo, dist)));
            Assert.Equal(mode, Mode(Path.Combine(repo, dist)));
        }
    }

    [Fact]
    public void EarlyHookOfTheHostsGeneratorOnlyWhenTheConfigAsks()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        h.Write("usr/sbin/mkinitramfs", "#!/bin/sh\n", 0x1ed);   // initramfs-tools is installed
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.False(File.Exists(h.Root + EarlyHooks.InitramfsToolsHook));
        Assert.Contains("early_load = no", File.ReadAllText(h.Root + "/etc/capture-agent.conf"));

        File.AppendAllText(h.Root + "/etc/capture-agent.conf", "early_load = yes\n");
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.Equal(EarlyHooks.InitramfsToolsHookScript, File.ReadAllText(h.Root + EarlyHooks.InitramfsToolsHook));
        Assert.Equal("755", Mode(h.Root + EarlyHooks.InitramfsToolsPremount));
        // Only the generator this host has: no dracut module, no mkinitcpio hook.
        Assert.False(Directory.Exists(h.Root + EarlyHooks.DracutModuleDirectory));
        Assert.False(File.Exists(h.Root + EarlyHooks.MkinitcpioInstall));

        Assert.Equal(ExitCodes.Ok, InstallCommand.Uninstall(["--root", h.Root]));
        Assert.False(File.Exists(h.Root + EarlyHooks.InitramfsToolsHook));
    }

    [Fact]
    public void StageLaysOutThePackageWithoutConfigOrLinksAndWithBothDebianGenerators()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        using var stage = new TempDir();
        Assert.Equal(ExitCodes.Ok, InstallCommand.Install(["--stage", "--root", stage.Path, "--binary", binary]));
        var files = Directory.EnumerateFiles(stage.Path, "*", SearchOption.AllDirectories).Select(f => "/" + Path.GetRelativePath(stage.Path, f)).ToHashSet();
        var expected = Expected.Keys.Where(k => k != "/etc/capture-agent.conf")
            .Concat([EarlyHooks.InitramfsToolsHook, EarlyHooks.InitramfsToolsPremount, EarlyHooks.DracutModuleSetup, EarlyHooks.DracutLoadHook]);
        Assert.Equal(expected.Order(StringComparer.Ordinal), files.Order(StringComparer.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(stage.Path, "etc/systemd")));
        Assert.Equal(ExitCodes.Usage, InstallCommand.Install(["--stage", "--binary", binary]));   // never on /
    }

    [Fact]
    public void InstallRefusesWhenThePackageOwnsTheFilesAndRemovesAnOlderInstallsUnits()
    {
        var (h, binary) = Fresh();
        using var _ = h;
        h.Write("etc/systemd/system/capture-agent.service", "[Unit]\n");
        Directory.CreateDirectory(h.Root + "/etc/systemd/system/multi-user.target.wants");
        File.CreateSymbolicLink(h.Root + "/etc/systemd/system/multi-user.target.wants/capture-agent.service", "/etc/systemd/system/capture-agent.service");
        string output = CaptureOutput(() => InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.Contains("removed /etc/systemd/system/capture-agent.service (an older install's", output);
        Assert.False(File.Exists(h.Root + "/etc/systemd/system/capture-agent.service"));
        Assert.Equal("/usr/lib/systemd/system/capture-agent.service",
            new FileInfo(h.Root + "/etc/systemd/system/multi-user.target.wants/capture-agent.service").LinkTarget);

        h.Write("var/lib/dpkg/info/capture-agent.list", "/usr/sbin/capture-agent\n");
        var before = h.Tree();
        Assert.Equal(ExitCodes.Failed, InstallCommand.Install(["--root", h.Root, "--binary", binary]));
        Assert.Equal(ExitCodes.Failed, InstallCommand.Uninstall(["--root", h.Root]));
        Assert.Equal(before, h.Tree());
    }


    private static readonly object ConsoleLock = new();

    private static string CaptureOutput(Func<int> run)
    {
        lock (ConsoleLock)
        {
            var old = Console.Out;
            var w = new StringWriter();
            Console.SetOut(w);
            try { Assert.Equal(ExitCodes.Ok, run()); }
            finally { Console.SetOut(old); }
            return w.ToString();
        }
    }
}

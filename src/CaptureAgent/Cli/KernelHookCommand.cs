using CaptureAgent.Host;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent kernel-hook add|remove KVER [IMAGE]`: what the kernel package hooks call, and
/// `capture-agent pin KVER | --unpin`: which kernel `load --auto` arms.
/// </summary>
public static class KernelHookCommand
{
    public const string Usage = """
        usage: capture-agent kernel-hook add KVER [IMAGE] [--root DIR] [--force]
               capture-agent kernel-hook add --all [--root DIR] [--force]
               capture-agent kernel-hook remove KVER [--root DIR]
               capture-agent kernel-hook early KVER [--root DIR]
          add     builds /var/lib/capture-agent/KVER/initramfs.img (modules of /lib/modules/KVER, the
                  config, the target's driver chain) unless the stored one is current; --force rebuilds
                  (--all: every installed kernel, /lib/modules/KVER with its image)
          remove  deletes that kernel's entry (and its pin)
          early   what the initramfs-tools, dracut and mkinitcpio hooks pack into the host initramfs
                  of KVER, one "DESTINATION SOURCE" line each: the agent, the capture kernel and
                  initramfs load --auto would arm (rebuilt first if stale), /etc/capture-agent.conf;
                  nothing unless the config says early_load = yes
          --root  work below DIR instead of / (default: $CAPTURE_AGENT_ROOT, else /)
        """;

    public const string PinUsage = """
        usage: capture-agent pin [KVER | --unpin] [--root DIR] [--no-build]
          KVER      arm this kernel (its image and capture initramfs must exist) instead of the running one;
                    its capture initramfs is built now unless --no-build
          --unpin   back to the running kernel
          (no arguments: show the pin and the kernel `load --auto` would choose)
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Hook);

    private static int Hook(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        bool force = false, all = false;
        var cli = new ArgReader("kernel-hook", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--root": root = cli.Value(); break;
                case "--force": force = true; break;
                case "--all": all = true; break;
                default: throw cli.Unknown();
            }
        }
        // The subcommand and its words, wherever the options stood (the hooks put --root last).
        var words = cli.Operands(0, 3, "add KVER [IMAGE], remove KVER or early KVER");
        if (all) return words is ["add"] ? AddAll(new HostLayout(root), force) : throw cli.Error("--all goes with add only");
        if (words.Count < 2 || words[0] is not ("add" or "remove" or "early") || words.Count > (words[0] == "add" ? 3 : 2))
            throw cli.Error("expected add KVER [IMAGE], remove KVER or early KVER");
        string release = words[1];
        if (!HostLayout.IsValidRelease(release)) throw cli.Error($"'{release}' is not a kernel release");
        var host = new HostLayout(root);
        try
        {
            if (words[0] == "remove")
            {
                CaptureStore.Remove(host, release, Log.Info);
                return ExitCodes.Ok;
            }
            if (words[0] == "early") return Early(host, release);
            if (words.Count == 3 && !File.Exists(words[2])) Log.Warn($"kernel image {words[2]} does not exist (yet?)");
            var r = CaptureStore.EnsureCurrent(host, release, Log.Info, force);
            return r.Error is null ? ExitCodes.Ok : ExitCodes.Failed;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"kernel-hook {words[0]} {release}: {e.Message}");
            return ExitCodes.Failed;
        }
    }

    /// <summary>Every installed kernel's capture initramfs; exit 1 when one could not be built (the others still are).</summary>
    private static int AddAll(HostLayout host, bool force)
    {
        var releases = CaptureStore.InstalledReleases(host);
        if (releases.Count == 0) Log.Warn($"no installed kernel below {host.Root} (a module tree with its kernel image)");
        int failed = 0;
        foreach (var release in releases)
        {
            try
            {
                if (CaptureStore.EnsureCurrent(host, release, Log.Info, force).Error is not null) failed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.Error($"kernel-hook add {release}: {e.Message}");
                failed++;
            }
        }
        return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    /// <summary>The early hooks' list of files on stdout; the reason on stderr when there is none (quietly when early_load is off).</summary>
    private static int Early(HostLayout host, string release)
    {
        var files = EarlyHooks.Files(host, release, Log.Info, out string? reason);
        if (files.Count == 0)
        {
            bool off = !Config.AgentConfig.Load(host.ConfigPath).EarlyLoad;
            if (off) Log.Detail($"early arming: {reason}");
            else Log.Warn($"early arming of {release}: {reason}");
            return off ? ExitCodes.Ok : ExitCodes.Failed;
        }
        foreach (var f in files)
        {
            if (f.Source.Contains('\n') || f.Destination.Any(char.IsWhiteSpace))
                throw new IOException($"early arming: '{f.Source}' cannot be handed to a shell hook");
            Console.Out.WriteLine($"{f.Destination} {f.Source}");
        }
        return ExitCodes.Ok;
    }

    public static int Pin(string[] args) => CommandLine.Run(PinUsage, args, PinRelease);

    private static int PinRelease(string[] args)
    {
        string root = HostLayout.DefaultRoot();
        bool unpin = false, build = true;
        var cli = new ArgReader("pin", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--root": root = cli.Value(); break;
                case "--unpin": unpin = true; break;
                case "--no-build": build = false; break;
                default: throw cli.Unknown();
            }
        }
        string? release = cli.Operands(0, 1, "at most one KVER") is [var kver] ? kver : null;
        if (unpin && release is not null) throw cli.Error("give KVER or --unpin, not both");
        var host = new HostLayout(root);
        try
        {
            if (unpin)
            {
                Console.Out.WriteLine(CaptureStore.Unpin(host) ? "unpinned: the running kernel is armed from now on" : "nothing was pinned");
                return ExitCodes.Ok;
            }
            if (release is null)
            {
                string? pinned = CaptureStore.ReadPin(host, out string? problem);
                if (problem is not null) Log.Warn(problem);
                Console.Out.WriteLine(pinned is null ? "nothing pinned" : $"pinned: {pinned}");
                string running = HostLayout.RunningRelease();
                if (HostLayout.IsValidRelease(running))
                {
                    var c = CaptureStore.Choose(host, running);
                    Console.Out.WriteLine($"load --auto arms {c.Release} ({c.Reason}): {c.KernelPath}, {c.InitramfsPath}");
                }
                return ExitCodes.Ok;
            }
            if (!HostLayout.IsValidRelease(release)) throw cli.Error($"'{release}' is not a kernel release");
            if (host.KernelImage(release) is null)
            {
                Log.Error($"pin: no kernel image for {release} ({string.Join(", ", host.KernelImageCandidates(release))}): nothing pinned");
                return ExitCodes.Failed;
            }
            CaptureStore.Pin(host, release);
            Console.Out.WriteLine($"pinned {release}");
            if (build)
            {
                var r = CaptureStore.EnsureCurrent(host, release, Log.Info);
                if (!r.Usable)
                {
                    Log.Warn($"{release} has no capture initramfs: load --auto arms the running kernel until it is built");
                    return ExitCodes.Failed;
                }
            }
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error($"pin: {e.Message}");
            return ExitCodes.Failed;
        }
    }
}

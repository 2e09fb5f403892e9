using CaptureAgent.Config;
using CaptureAgent.Targets.Ssh;
using CaptureAgent.Common;
using CaptureAgent.Host;
using CaptureAgent.Targets;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent propagate`: an ssh: target made ready (key, host key, authorized_keys, writable directory).</summary>
public static class PropagateCommand
{
    public const string Usage = """
        usage: capture-agent propagate [--config FILE] [--target ssh:USER@HOST[:PORT]] [--yes] [-o SSH_OPTION]...
          for each ssh: target of the config (or only --target), like kdumpctl propagate:
          1. makes the key pair ssh_key (ssh-keygen -t ed25519, no passphrase) when it is missing
          2. reads the collector's host keys (ssh-keyscan), shows their fingerprints and adds them to
             ssh_known_hosts after you answer yes (--yes: without asking); a key different from
             the one already there is refused
          3. appends ssh_key.pub to the collector's ~/.ssh/authorized_keys over ssh, unless the key
             already logs in (you log in once: password, agent or -o IdentityFile=...)
          4. checks, with the key alone, that the dump directory (path up to its first {placeholder})
             can be created and written on the collector
          -o OPTION  an ssh option for the login of step 3 (repeatable)
        The capture initramfs carries the key and known_hosts: restart capture-agent.service afterwards.
        exit status: 0 every target ready, 1 a target failed, 2 usage
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, PrepareTargets);

    private static int PrepareTargets(string[] args)
    {
        string configPath = AgentConfig.DefaultPath;
        string? only = null;
        bool yes = false;
        var loginOptions = new List<string>();
        var cli = new ArgReader("propagate", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--config": configPath = cli.Value(); break;
                case "--target": only = cli.Value(); break;
                case "-o": loginOptions.Add(cli.Value()); break;
                case "--yes" or "-y": yes = true; break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!File.Exists(configPath)) { Log.Error($"propagate: {configPath} does not exist"); return ExitCodes.Failed; }
        var config = AgentConfig.Load(configPath);
        foreach (var e in config.Errors) Log.Warn(e);
        var targets = config.Targets.Where(t => t.Type == TargetType.Ssh).ToList();
        if (only is not null)
        {
            string wanted = only.StartsWith("ssh:", StringComparison.Ordinal) ? only : "ssh:" + only;
            targets = targets.Where(t => t.Text == wanted).ToList();
            if (targets.Count == 0) { Log.Error($"propagate: {configPath} has no target = {wanted}"); return ExitCodes.Failed; }
        }
        if (targets.Count == 0) { Log.Error($"propagate: {configPath} has no ssh: target"); return ExitCodes.Failed; }

        bool interactive = Native.Libc.IsATty(0) == 1;
        Func<string, bool>? confirm = yes ? null : interactive ? Ask : _ => false;
        if (!yes && !interactive)
            Log.Info("standard input is not a terminal: a host key not yet in known_hosts is refused unless --yes is given");
        var options = new PropagateOptions(config.SshKey, config.SshKnownHosts, Propagate.StaticPrefix(config.Path), confirm, loginOptions, interactive);
        int failed = 0;
        foreach (var t in targets)
        {
            try
            {
                var dest = SshDestination.Parse(t.SshDestination!, config.SshKey, config.SshKnownHosts);
                Propagate.Run(dest, options, Log.Info);
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
                Log.Error($"propagate {t.Text}: {e.Message}");
                failed++;
            }
        }
        if (failed == 0) Log.Info("ready: `systemctl restart capture-agent` puts the key and known_hosts into the capture initramfs");
        return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private static bool Ask(string question)
    {
        Console.Error.Write($"{question} [yes/no] ");
        string? answer = Console.In.ReadLine();
        return answer?.Trim().ToLowerInvariant() is "yes" or "y";
    }
}

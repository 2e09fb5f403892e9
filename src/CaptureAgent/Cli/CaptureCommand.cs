using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent capture`: the capture kernel's whole target chain, run by hand (an emergency
/// shell in a capture kernel, or a rescue system with a saved vmcore). Unlike PID 1 it sets up no
/// network unless asked and never reboots.
/// </summary>
public static class CaptureCommand
{
    public const string Usage = """
        usage: capture-agent capture [--config FILE] [--vmcore FILE] [--mount-base DIR] [--configure-network] [--boot-id ID]
          saves the dump to the config's targets in order, as the capture kernel would
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Capture);

    private static int Capture(string[] args)
    {
        string config = AgentConfig.DefaultPath, vmcore = "/proc/vmcore", mountBase = "/run/capture-agent";
        string? bootId = null;
        bool network = false;
        var cli = new ArgReader("capture", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--config": config = cli.Value(); break;
                case "--vmcore": vmcore = cli.Value(); break;
                case "--mount-base": mountBase = cli.Value(); break;
                case "--configure-network": network = true; break;
                case "--boot-id": bootId = cli.Value(); break;
                default: if (!CommandLine.MessageOption(cli, option)) throw cli.Unknown(); break;
            }
        }
        cli.NoOperands();
        if (!File.Exists(config))
        {
            Log.Error($"{config} does not exist");
            return ExitCodes.Failed;
        }
        var cfg = AgentConfig.Load(config);
        foreach (var e in cfg.Errors) Log.Warn(e);
        if (!File.Exists(vmcore))
        {
            Log.Error($"{vmcore} does not exist");
            return ExitCodes.Failed;
        }
        var chain = new CaptureChain(cfg, vmcore, Log.Info, mountBase, bootId)
        {
            ConfigureNetwork = network,
            ProgressFactory = () => Log.Progress("saving vmcore"),
        };
        var outcomes = chain.Run();
        var last = outcomes[^1];
        return last.Complete ? ExitCodes.Ok : last.Saved ? ExitCodes.Degraded : ExitCodes.Failed;
    }
}

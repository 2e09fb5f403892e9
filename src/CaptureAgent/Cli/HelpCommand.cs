namespace CaptureAgent.Cli;

/// <summary>`capture-agent version` and `capture-agent help COMMAND | --man SECTION | --bash-completion`.</summary>
public static class HelpCommand
{
    public const string VersionUsage = """
        usage: capture-agent version [--json]
               capture-agent --version
          the release of this binary (Directory.Build.props <Version>, the one place it is set)
        """;

    public static int Version(string[] args)
    {
        if (args is ["--json"])
        {
            Console.Out.WriteLine($"{{\"capture_agent_version\": {LoadCommand.Json(BuildInfo.Version)}}}");
            return ExitCodes.Ok;
        }
        if (args is ["-h" or "--help"]) { Console.Out.WriteLine(VersionUsage); return ExitCodes.Ok; }
        if (args.Length > 0)
        {
            Log.Error($"version: unexpected argument {args[0]}");
            Console.Error.WriteLine(VersionUsage);
            return ExitCodes.Usage;
        }
        Console.Out.WriteLine($"capture-agent {BuildInfo.Version}");
        return ExitCodes.Ok;
    }

    public static int Run(string[] args)
    {
        Log.Error($"help: unknown topic {args[0]}");
        return ExitCodes.Usage;
    }
}

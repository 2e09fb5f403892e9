namespace CaptureAgent.Cli;

/// <summary>`capture-agent version` and `capture-agent help COMMAND | --man 8|5 | --bash-completion`.</summary>
public static class HelpCommand
{
    public const string VersionUsage = """
        usage: capture-agent version [--json]
               capture-agent --version
          the release of this binary (set in one place: Directory.Build.props)
        """;

    public const string Usage = """
        usage: capture-agent help [COMMAND]
               capture-agent help --man 8|5
               capture-agent help --bash-completion
          COMMAND            what `capture-agent COMMAND --help` prints
          --man 8            the manual page capture-agent(8), in roff, from the same texts
          --man 5            capture-agent.conf(5), from the table of configuration keys
          --bash-completion  the bash completion script, from the same texts
        """;

    public static int Version(string[] args)
    {
        if (args is ["--json"])
        {
            Console.Out.WriteLine($"{{\"capture_agent_version\": {LoadCommand.Json(BuildInfo.Version)}}}");
            return ExitCodes.Ok;
        }
        if (args is ["-h" or "--help"]) { Console.Out.WriteLine(VersionUsage); return ExitCodes.Ok; }
        if (args.Length > 0) return Bad($"version: unexpected argument {args[0]}", VersionUsage);
        Console.Out.WriteLine($"capture-agent {BuildInfo.Version}");
        return ExitCodes.Ok;
    }

    public static int Run(string[] args)
    {
        switch (args)
        {
            case ["--man", "8"]:
                Console.Out.Write(ManPages.Command(ManPages.DateFromEnvironment()));
                return ExitCodes.Ok;
            case ["--man", "5"]:
                Console.Out.Write(ManPages.Config(ManPages.DateFromEnvironment()));
                return ExitCodes.Ok;
            case ["--bash-completion"]:
                Console.Out.Write(BashCompletion.Script());
                return ExitCodes.Ok;
            case ["-h" or "--help"]:
                Console.Out.WriteLine(Usage);
                return ExitCodes.Ok;
            case [var name] when CommandHelp.Find(name) is { } doc:
                Console.Out.WriteLine(doc.Usage);
                return ExitCodes.Ok;
            case [var name] when !name.StartsWith('-'):
                return Bad($"help: no command '{name}' (capture-agent --help lists them)", Usage);
            default:
                return Bad($"help: unexpected arguments {string.Join(' ', args)}", Usage);
        }
    }

    private static int Bad(string message, string usage)
    {
        Log.Error(message);
        Console.Error.WriteLine(usage);
        return ExitCodes.Usage;
    }
}

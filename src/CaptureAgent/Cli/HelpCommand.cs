using CaptureAgent.Common;

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

    public static int Version(string[] args) => CommandLine.Run(VersionUsage, args, ShowVersion);

    private static int ShowVersion(string[] args)
    {
        bool json = false;
        var cli = new ArgReader("version", args);
        while (cli.Next() is { } option)
        {
            if (option == "--json") json = true;
            else throw cli.Unknown();
        }
        cli.NoOperands();
        if (json) JsonOutput.WriteObject(_ => { });
        else Console.Out.WriteLine($"capture-agent {BuildInfo.Version}");
        return ExitCodes.Ok;
    }

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Show);

    private static int Show(string[] args)
    {
        string? man = null;
        bool completion = false;
        var cli = new ArgReader("help", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--man": man = cli.Value(); break;
                case "--bash-completion": completion = true; break;
                default: throw cli.Unknown();
            }
        }
        var names = cli.Operands(0, 1, "at most one COMMAND");
        if (man is not null || completion)
        {
            if (names.Count > 0 || (man is not null && completion)) throw cli.Error("--man and --bash-completion go alone");
            Console.Out.Write(completion ? BashCompletion.Script() : Manual(cli, man!));
            return ExitCodes.Ok;
        }
        if (names.Count == 0) Console.Out.WriteLine(CommandHelp.Overview);
        else Console.Out.WriteLine(CommandHelp.Find(names[0])?.Usage ?? throw cli.Error($"no command '{names[0]}' (capture-agent --help lists them)"));
        return ExitCodes.Ok;
    }

    private static string Manual(ArgReader cli, string section) => section switch
    {
        "8" => ManPages.Command(ManPages.DateFromEnvironment()),
        "5" => ManPages.Config(ManPages.DateFromEnvironment()),
        _ => throw cli.Error($"--man takes 8 (the commands) or 5 (the configuration file), not '{section}'"),
    };
}

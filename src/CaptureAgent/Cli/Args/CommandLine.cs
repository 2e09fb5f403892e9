using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// What every command does with its command line before and after its own reading of it: help
/// when asked (on stdout, exit 0, before anything is read or done) and a usage error in one line
/// on stderr (exit 2).
/// </summary>
public static class CommandLine
{
    /// <param name="usage">The command's help text (the one of <see cref="CommandHelp"/>).</param>
    /// <param name="command">Reads the arguments with an <see cref="ArgReader"/> and runs the command.</param>
    public static int Run(string usage, string[] args, Func<string[], int> command, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        if (ArgReader.AsksForHelp(args))
        {
            (stdout ?? Console.Out).WriteLine(usage);
            return ExitCodes.Ok;
        }
        // A run in-process (the tests, the commands guest of a rehearsal) starts from the default
        // messages, whatever -q or --message-level an earlier run set.
        Log.Reset();
        try
        {
            return command(args);
        }
        catch (UsageException e)
        {
            UsageError(e.Message, stderr);
            return ExitCodes.Usage;
        }
    }

    /// <summary>Said whatever the message level: a command that did not run must say why.</summary>
    public static void UsageError(string message, TextWriter? stderr = null)
    {
        try { (stderr ?? Console.Error).WriteLine($"capture-agent: error: {message}"); }
        catch (IOException) { }
    }

    /// <summary>
    /// -q (errors and warnings only), -v (everything) and makedumpfile's --message-level N; true
    /// when <paramref name="option"/> was one of them.
    /// </summary>
    public static bool MessageOption(ArgReader cli, string option)
    {
        switch (option)
        {
            case "-q": Log.Shown = LogKinds.Errors; return true;
            case "-v": Log.Shown = LogKinds.All; return true;
            case "--message-level": Log.Shown = (LogKinds)cli.Int(0, (int)LogKinds.All, "a message level"); return true;
            default: return false;
        }
    }
}

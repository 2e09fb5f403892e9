using CaptureAgent.Dump;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent verify DIR|DUMPFILE`: is a saved dump whole? <see cref="DumpVerifier"/> judges;
/// this prints its findings, as text or JSON. Exit 0 complete, 3 incomplete, 1 corrupt or unreadable.
/// </summary>
public static class VerifyCommand
{
    public const string Usage = "usage: capture-agent verify DIR|DUMPFILE [--json]";

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Judge);

    private static int Judge(string[] args)
    {
        bool json = false;
        var cli = new ArgReader("verify", args);
        while (cli.Next() is { } option)
        {
            if (option == "--json") json = true;
            else throw cli.Unknown();
        }
        var paths = cli.Operands(1, 1, "DIR or DUMPFILE");
        var lines = new List<string>();
        var (verdict, summary) = DumpVerifier.CheckReadable(paths[0], lines);
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteJson(stdout, paths[0], verdict.ToString().ToLowerInvariant(), summary, lines));
        }
        else
        {
            foreach (var l in lines) Console.Out.WriteLine("  " + l);
            Console.Out.WriteLine($"{paths[0]}: {summary}");
        }
        return DumpVerifier.ExitCode(verdict);
    }

    /// <summary>verify --json (docs/json-output.md).</summary>
    internal static void WriteJson(Stream output, string path, string verdict, string summary, IReadOnlyList<string> details) =>
        JsonOutput.WriteObject(output, w =>
        {
            w.WriteString("path", path);
            w.WriteString("verdict", verdict);
            w.WriteString("summary", summary);
            w.StringArray("details", details);
        });
}

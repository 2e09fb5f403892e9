using CaptureAgent.Cli;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Cli;

/// <summary>What every command gets from <see cref="CommandLine.Run"/>: help before anything runs, usage errors in one line.</summary>
public class CommandLineTests
{
    private static (int Code, string Out, string Err, bool Ran) Run(string[] args, Func<string[], int> command)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        bool ran = false;
        int code = CommandLine.Run("usage: capture-agent thing [--x]", args, a => { ran = true; return command(a); }, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString(), ran);
    }

    [Fact]
    public void HelpIsPrintedAndTheCommandNeverRuns()
    {
        foreach (var args in new[] { new[] { "--help" }, ["sub", "-h"], ["--bogus", "file", "--help"] })
        {
            var r = Run(args, _ => throw new InvalidOperationException("the command ran"));
            Assert.Equal((ExitCodes.Ok, "usage: capture-agent thing [--x]\n", "", false), (r.Code, r.Out.Replace("\r\n", "\n"), r.Err, r.Ran));
        }
    }

    [Fact]
    public void AUsageErrorIsOneLineAndExitTwo()
    {
        var r = Run(["--bogus"], a =>
        {
            var cli = new ArgReader("thing", a);
            while (cli.Next() is not null) throw cli.Unknown();
            return ExitCodes.Ok;
        });
        Assert.Equal((ExitCodes.Usage, "", "capture-agent: error: thing: unknown option --bogus\n", true), (r.Code, r.Out, r.Err.Replace("\r\n", "\n"), r.Ran));
    }

    [Fact]
    public void TheCommandsOwnExitStatusComesBack()
    {
        Assert.Equal(ExitCodes.Degraded, Run(["file"], _ => ExitCodes.Degraded).Code);
        // After "--", --help is a file name, not a request for help.
        var r = Run(["--", "--help"], a => new ArgReader("thing", a) is var cli && cli.Next() is null && cli.Operands(1, 1, "FILE")[0] == "--help" ? 7 : 0);
        Assert.Equal((7, true), (r.Code, r.Ran));
    }
}

using CaptureAgent.Output;
using CaptureAgent.Common;
using CaptureAgent.Dump;
using CaptureAgent.Formats;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent rearrange OUTFILE &lt; FLATTENED`: makedumpfile -R. Each record is checked
/// before it is applied, and the result is verified as `verify` would: exit 0 only for a file
/// `verify` calls complete, 3 for one cut short (what arrived is kept), 1 for a damaged stream.
/// </summary>
public static class RearrangeCommand
{
    public const string Usage = """
        usage: capture-agent rearrange [-f] OUTFILE < FLATTENED
               capture-agent -R [-f] OUTFILE < FLATTENED
          turns makedumpfile's flattened stream (dump -F, an ssh target's vmcore.flat) into a dump file
          -f  overwrite OUTFILE if it exists (without -f an existing file is refused, as by makedumpfile -R)
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Rearrange);

    private static int Rearrange(string[] args)
    {
        var cli = new ArgReader("rearrange", args);
        bool force = false;
        while (cli.Next() is { } option)
        {
            if (option == "-f") force = true;
            else throw cli.Unknown();
        }
        string output = cli.Operands(1, 1, "OUTFILE")[0];
        if (ExistingOutput.Refused(output, force)) return ExitCodes.Failed;
        FlattenedOutcome stopped;
        try
        {
            using var input = new BufferedStream(Console.OpenStandardInput(), 1 << 20);
            using var sink = FileSink.Create(output, overwrite: force);
            stopped = FlattenedSink.Rearrange(input, sink);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Log.Error($"rearranging into {output} failed: {ErrorText.Of(e)}");
            return ExitCodes.Failed;
        }
        var lines = new List<string>();
        var (code, summary) = DumpVerifier.Verify(output, lines);
        foreach (var l in lines) Log.Detail(l);
        if (!stopped.Ended)
        {
            bool cut = stopped.Cut;
            Log.Warn($"the flattened stream {(cut ? "is incomplete" : "is damaged")}: {stopped.Describe()}; {output} holds what came before");
            // Cut short: at best incomplete. Damaged: the file cannot be trusted, whatever it holds.
            code = !cut ? ExitCodes.Failed : code == ExitCodes.Ok ? ExitCodes.Degraded : code;
        }
        if (code == ExitCodes.Ok) Log.Info($"{output}: {summary}");
        else if (code == ExitCodes.Degraded) Log.Warn($"{output}: {summary}");
        else Log.Error($"{output}: {summary}");
        return code;
    }
}

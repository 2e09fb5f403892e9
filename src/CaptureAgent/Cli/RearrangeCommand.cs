using CaptureAgent.Output;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent rearrange OUTFILE &lt; FLATTENED`: makedumpfile -R.</summary>
public static class RearrangeCommand
{
    public const string Usage = """
        usage: capture-agent rearrange OUTFILE < FLATTENED
               capture-agent -R OUTFILE < FLATTENED
          turns makedumpfile's flattened stream (dump -F, an ssh target's vmcore.flat) into a dump file
        """;

    public static int Run(string[] args)
    {
        if (args.Length != 1)
        {
            Log.Error("rearrange: expected OUTFILE");
            Console.Error.WriteLine(Usage);
            return ExitCodes.Usage;
        }
        try
        {
            using var input = new BufferedStream(Console.OpenStandardInput(), 1 << 20);
            using var sink = FileSink.Create(args[0]);
            FlattenedSink.Rearrange(input, sink);
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or EndOfStreamException)
        {
            Log.Error($"rearranging into {args[0]} failed: {e.Message}");
            return ExitCodes.Failed;
        }
    }
}

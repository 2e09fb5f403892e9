using CaptureAgent.Dmesg;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;
using CaptureAgent.Dump;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent dmesg VMCORE|DUMP [OUTFILE]`: the crashed kernel's log.</summary>
public static class DmesgCommand
{
    public const string Usage = """
        usage: capture-agent dmesg [-f] [-q | -v | --message-level N] VMCORE|DUMP [OUTFILE]
               capture-agent --dump-dmesg VMCORE|DUMP [OUTFILE]
          the crashed kernel's log from /proc/vmcore, an ELF vmcore or a kdump-compressed dump,
          as makedumpfile --dump-dmesg writes it; to standard output without OUTFILE (or with -)
          -f  overwrite OUTFILE if it exists (without -f an existing file is refused, as by makedumpfile)
          --message-level N  as for dump (makedumpfile's bits, default 7)
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Dmesg);

    private static int Dmesg(string[] args)
    {
        var cli = new ArgReader("dmesg", args);
        bool force = false;
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "-f": force = true; break;
                default: if (!CommandLine.MessageOption(cli, option)) throw cli.Unknown(); break;
            }
        }
        var files = cli.Operands(1, 2, "VMCORE|DUMP [OUTFILE]");
        string? output = files.Count == 2 && files[1] != "-" ? files[1] : null;
        if (output is not null && ExistingOutput.Refused(output, force)) return ExitCodes.Failed;
        return Write(files[0], output, force);
    }

    private static int Write(string input, string? outputPath, bool force)
    {
        try
        {
            using var mem = DumpOpener.OpenMemory(input, out var info, out var segments);
            if (info is null) throw new VmcoreException($"{input} has no VMCOREINFO: cannot find the kernel log");
            var tables = X86_64PageTables.FromVmcoreInfo(mem, info, segments);
            var log = new PrintkLog(new KernelMemory(mem, tables), info);
            using var output = outputPath is not null
                ? (Stream)Output.FileSink.OpenStream(outputPath, overwrite: force)
                : Console.OpenStandardOutput();
            using var buffered = new BufferedStream(output, 64 * 1024);
            int n = log.WriteTo(buffered);
            buffered.Flush();
            Log.Detail($"{n} log records");
            if (log.Problem is null) return ExitCodes.Ok;
            Log.Warn($"{log.Problem} ({n} records written)");
            return ExitCodes.Degraded;
        }
        catch (Exception e) when (e is VmcoreException or IOException or UnauthorizedAccessException)
        {
            Log.Error(ErrorText.Of(e));
            return ExitCodes.Failed;
        }
    }
}

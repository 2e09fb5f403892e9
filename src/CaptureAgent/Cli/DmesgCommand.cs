using CaptureAgent.Dmesg;
using CaptureAgent.Translation;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent dmesg VMCORE|DUMP [OUTFILE]`: the crashed kernel's log.</summary>
public static class DmesgCommand
{
    public const string Usage = """
        usage: capture-agent dmesg VMCORE|DUMP [OUTFILE]
               capture-agent --dump-dmesg VMCORE|DUMP [OUTFILE]
          the crashed kernel's log from /proc/vmcore, an ELF vmcore or a kdump-compressed dump,
          as makedumpfile --dump-dmesg writes it; to standard output without OUTFILE (or with -)
        """;

    public static int Run(string[] args)
    {
        var positional = args.Where(a => !a.StartsWith('-') || a == "-").ToList();
        if (positional.Count is < 1 or > 2)
        {
            Log.Error("dmesg: expected VMCORE|DUMP [OUTFILE]");
            Console.Error.WriteLine(Usage);
            return ExitCodes.Usage;
        }
        try
        {
            using var mem = OpenMemory(positional[0], out var info, out var segments);
            if (info is null) throw new VmcoreException($"{positional[0]} has no VMCOREINFO: cannot find the kernel log");
            var tables = X86_64PageTables.FromVmcoreInfo((IPhysicalMemory)mem, info, segments);
            var log = new PrintkLog(new KernelMemory((IPhysicalMemory)mem, tables), info);
            using var output = positional.Count == 2 && positional[1] != "-"
                ? (Stream)Output.FileSink.OpenStream(positional[1])
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

    /// <summary>Opens an ELF vmcore or a kdump-compressed file, whichever the bytes say it is.</summary>
    public static IDisposable OpenMemory(string path, out VmcoreInfo? info, out IReadOnlyList<LoadSegment>? segments)
    {
        Span<byte> magic = stackalloc byte[8];
        try
        {
            using var f = InputFile.OpenRegular(path);
            RandomAccess.Read(f, magic, 0);
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException(ErrorText.Of(x));
        }
        if (magic.SequenceEqual("KDUMP   "u8))
        {
            var k = new KdumpFile(path);
            info = k.Info;
            segments = null;
            return k;
        }
        var e = new ElfVmcore(path);
        info = e.Info;
        segments = e.Segments;
        return e;
    }
}

using System.Diagnostics;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent dump`: makedumpfile-style filtering and compression of a vmcore.</summary>
public static class DumpCommand
{
    public const string Usage = """
        usage: capture-agent dump [-d LEVEL] [-z | -l | -p | -c | --no-compress | --compression auto] [-E] [-F] [-f] [--message-level N] VMCORE|DUMP [DUMPFILE]
          -d LEVEL        pages to leave out, makedumpfile's bits: 1 zero, 2 cache, 4 cache+private,
                          8 user data, 16 free (default 31)
          -z              zstd per page (default; --zstd-level N, default 1, negative = faster)
          -l, -p, -c      lzo, snappy, zlib per page (as makedumpfile);  --no-compress  raw pages
          --compression auto  the codec that finishes first: the target's speed and each codec's, measured
          -E              ELF output instead of kdump-compressed (no compression)
          -F              makedumpfile's flattened stream to standard output (DUMPFILE omitted)
                          the input may be a kdump-compressed dump: it is filtered again (its dump level
                          is kept as a minimum) and rewritten with the codec asked for
          -f              overwrite DUMPFILE if it exists (without -f an existing file is refused, as by makedumpfile)
          --num-threads N  compression threads (default: the CPUs available, at most 8; also --threads)
          --message-level N  makedumpfile's bits: 1 progress, 2 common messages, 4 errors and warnings,
                          8 debug details, 16 report (pages excluded, times); default 7;  -q = 4, -v = 31
        exit status: 0 done, 1 failed (an existing DUMPFILE without -f, too), 2 usage,
          3 written but the input was damaged or filtering degraded
        """;

    /// <summary>The command line read: what to write, from where, how.</summary>
    private sealed class Request
    {
        public DumpLevel Level = DumpLevel.All;
        public PageCodec Codec = PageCodec.Zstd;
        public bool CodecGiven, AutoCodec, Flattened, Force;
        public DumpFormat Format = DumpFormat.KdumpCompressed;
        public ulong WindowPfns = DumpOptions.DefaultWindowPfns;
        public int Threads = BatchCompressor.DefaultThreads;
        public int ZstdLevel = ZstdPageCompressor.DefaultLevel;
    }

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Dump);

    private static int Dump(string[] args)
    {
        var cli = new ArgReader("dump", args);
        var q = new Request();
        while (cli.Next() is { } option) ReadOption(cli, option, q);
        if (q.Format == DumpFormat.Elf && q.CodecGiven && q.Codec != PageCodec.None)
            throw cli.Error("-E writes ELF, which has no per-page compression; drop -c/-z/-l/-p");
        if (q.Format == DumpFormat.Elf) q.Codec = PageCodec.None;
        var files = q.Flattened ? cli.Operands(1, 1, "VMCORE only with -F (the stream goes to stdout)") : cli.Operands(2, 2, "VMCORE and DUMPFILE");
        string? outPath = q.Flattened ? null : files[1];
        if (outPath is not null && ExistingOutput.Refused(outPath, q.Force)) return ExitCodes.Failed;

        var options = new DumpOptions
        {
            Level = q.Level,
            Codec = q.Codec,
            AutoCodec = q.AutoCodec && q.Format == DumpFormat.KdumpCompressed,
            Format = q.Format,
            WindowPfns = q.WindowPfns,
            Threads = q.Threads,
            ZstdLevel = q.ZstdLevel,
            Progress = q.Flattened ? null : Log.Progress("Copying pages"),
        };
        return Execute(files[0], outPath, options, q.Force);
    }

    private static void ReadOption(ArgReader cli, string option, Request q)
    {
        switch (option)
        {
            case "-d": q.Level = (DumpLevel)cli.Int(0, 31, "a dump level"); break;
            case "-z": SetCodec(q, PageCodec.Zstd); break;
            case "-c": SetCodec(q, PageCodec.Zlib); break;
            case "-l": SetCodec(q, PageCodec.Lzo); break;
            case "-p": SetCodec(q, PageCodec.Snappy); break;
            case "--compression": ReadCompression(cli, q); break;
            case "--no-compress": q.Codec = PageCodec.None; break;
            case "-E": q.Format = DumpFormat.Elf; break;
            case "-F": q.Flattened = true; break;
            case "-f": q.Force = true; break;
            case "--num-threads" or "--threads": q.Threads = cli.Int(1, 64); break;
            case "--zstd-level": q.ZstdLevel = cli.Int(-7, 19, "a level"); break;
            case "--window-pfns": q.WindowPfns = (ulong)cli.Int(1, int.MaxValue); break;   // testing aid: force small filtering windows
            default: if (!CommandLine.MessageOption(cli, option)) throw cli.Unknown(); break;
        }
    }

    private static void SetCodec(Request q, PageCodec codec)
    {
        q.Codec = codec;
        q.CodecGiven = true;
    }

    private static void ReadCompression(ArgReader cli, Request q)
    {
        string name = cli.Value();
        q.CodecGiven = true;
        q.AutoCodec = name == "auto";
        if (q.AutoCodec) q.Codec = PageCodec.Zstd;
        else q.Codec = PageCompressors.Parse(name) ?? throw cli.Error("--compression takes zstd, lzo, snappy, zlib, none or auto");
    }

    private static int Execute(string vmcorePath, string? outPath, DumpOptions options, bool force)
    {
        var clock = Stopwatch.StartNew();
        DumpSource source;
        try
        {
            source = new DumpSource(vmcorePath);
        }
        catch (VmcoreException e)
        {
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
        using (source)
        {
            if (options.Format == DumpFormat.Elf && source.Vmcore is not ElfVmcore)
            {
                Log.Error($"{vmcorePath} is a kdump-compressed dump: -E needs an ELF vmcore as input (as with makedumpfile)");
                return ExitCodes.Failed;
            }
            if ((source.InputLevel & ~options.Level) != 0)
                Log.Info($"dump level {(int)(options.Level | source.InputLevel)} used: {vmcorePath} was made at dump level {(int)source.InputLevel}, whose pages are not in it");
            IDumpSink sink;
            try
            {
                sink = outPath is null ? DumpWriters.Flattened(Console.OpenStandardOutput()) : FileSink.Create(outPath, overwrite: force);
            }
            catch (IOException e)
            {
                Log.Error(e.Message);
                return ExitCodes.Failed;
            }
            DumpResult result;
            using (sink)
            {
                try
                {
                    result = DumpWriters.Create(source, sink, options).Write();
                }
                catch (Exception e) when (e is IOException or VmcoreException or UnauthorizedAccessException)
                {
                    Log.Error($"writing {outPath ?? "stdout"} failed: {e.Message}");
                    return ExitCodes.Failed;
                }
            }
            foreach (var p in result.Problems) Log.Warn(p);
            if (result.CodecChoice is { } why) Log.Info(why);
            Report(source, result, options, clock.Elapsed);
            return result.Problems.Count > 0 ? ExitCodes.Degraded : ExitCodes.Ok;
        }
    }

    private static void Report(DumpSource source, DumpResult r, DumpOptions o, TimeSpan elapsed)
    {
        var f = r.Filter;
        if (f is not null)
        {
            Log.Report($"Excluded pages: zero {f.Zero}, cache {f.Cache}, cache private {f.CachePrivate}, user {f.User}, free {f.Free}, hwpoison {f.HwPoison}, offline {f.Offline}");
            Log.Report($"Present pages: {f.Present} of max_mapnr {r.MaxMapnr}");
            Log.Report($"Excluding pages: {r.FilterSeconds:0.000} s; copying pages: {r.CopySeconds:0.000} s");
        }
        Log.Info($"The dumpfile is {(r.Incomplete ? "INCOMPLETE" : "saved")}: {r.DumpablePages} pages selected ({r.StoredPages} stored, {r.ZeroPages} zero) " +
                 $"at dump level {(int)(r.LevelRaisedTo ?? o.Level)}, {r.BytesWritten} bytes, {PageCompressors.Name(o.Format == DumpFormat.Elf ? PageCodec.None : r.Codec)}, in {elapsed.TotalSeconds:0.00} s " +
                 $"[{source.Info?.OsRelease ?? "unknown kernel"}]");
    }
}

using System.Diagnostics;
using CaptureAgent.Compression;
using CaptureAgent.Dump;
using CaptureAgent.Filtering;
using CaptureAgent.Output;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent dump`: makedumpfile-style filtering and compression of a vmcore.</summary>
public static class DumpCommand
{
    public const string Usage = """
        usage: capture-agent dump [-d LEVEL] [-z | -l | -p | -c | --no-compress | --compression auto] [-E] [-F] [--message-level N] VMCORE|DUMP [DUMPFILE]
          -d LEVEL        pages to leave out, makedumpfile's bits: 1 zero, 2 cache, 4 cache+private,
                          8 user data, 16 free (default 31)
          -z              zstd per page (default; --zstd-level N, default 1, negative = faster)
          -l, -p, -c      lzo, snappy, zlib per page (as makedumpfile);  --no-compress  raw pages
          --compression auto  the codec that finishes first: the target's speed and each codec's, measured
          -E              ELF output instead of kdump-compressed (no compression)
          -F              makedumpfile's flattened stream to standard output (DUMPFILE omitted)
                          the input may be a kdump-compressed dump: it is filtered again (its dump level
                          is kept as a minimum) and rewritten with the codec asked for
          --threads N     compression threads (default: the CPUs available, at most 8)
          --message-level N  0 errors, 1 +warnings, 2 +summary (default), 3 +details;  -q = 0, -v = 3
        exit status: 0 done, 1 failed, 2 usage, 3 written but the input was damaged or filtering degraded
        """;

    public static int Run(string[] args)
    {
        var level = DumpLevel.All;
        var codec = PageCodec.Zstd;
        bool autoCodec = false;
        var format = DumpFormat.KdumpCompressed;
        bool flattened = false;
        ulong window = DumpOptions.DefaultWindowPfns;
        int threads = Compression.BatchCompressor.DefaultThreads;
        int zstdLevel = Compression.ZstdPageCompressor.DefaultLevel;
        var positional = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            switch (a)
            {
                case "-d":
                    if (++i >= args.Length || !int.TryParse(args[i], out int d) || d is < 0 or > 31)
                        return UsageError("-d takes a dump level from 0 to 31");
                    level = (DumpLevel)d;
                    break;
                case "-z": codec = PageCodec.Zstd; break;
                case "-c": codec = PageCodec.Zlib; break;
                case "-l": codec = PageCodec.Lzo; break;
                case "-p": codec = PageCodec.Snappy; break;
                case "--compression":
                    if (++i >= args.Length) return UsageError("--compression takes zstd, lzo, snappy, zlib, none or auto");
                    if (args[i] == "auto") { autoCodec = true; codec = PageCodec.Zstd; break; }
                    if (PageCompressors.Parse(args[i]) is not PageCodec named) return UsageError("--compression takes zstd, lzo, snappy, zlib, none or auto");
                    codec = named;
                    break;
                case "--no-compress": codec = PageCodec.None; break;
                case "-E": format = DumpFormat.Elf; break;
                case "-F": flattened = true; break;
                case "-q": Log.Level = 0; break;
                case "-v": Log.Level = 3; break;
                case "--message-level":
                    if (++i >= args.Length || !int.TryParse(args[i], out int ml) || ml < 0) return UsageError("--message-level takes a number");
                    Log.Level = ml > 7 ? 3 : ml;   // makedumpfile's 0..31 mask folds onto our four levels
                    break;
                case "--threads":
                    if (++i >= args.Length || !int.TryParse(args[i], out threads) || threads is < 1 or > 64) return UsageError("--threads takes a number from 1 to 64");
                    break;
                case "--zstd-level":
                    if (++i >= args.Length || !int.TryParse(args[i], out zstdLevel) || zstdLevel is < -7 or > 19) return UsageError("--zstd-level takes a level from -7 to 19");
                    break;
                case "--window-pfns":   // testing aid: force small filtering windows
                    if (++i >= args.Length || !ulong.TryParse(args[i], out window) || window == 0) return UsageError("--window-pfns takes a number");
                    break;
                case "-h":
                case "--help":
                    Console.Out.WriteLine(Usage);
                    return ExitCodes.Ok;
                default:
                    if (a.StartsWith('-') && a.Length > 1) return UsageError($"unknown option {a}");
                    positional.Add(a);
                    break;
            }
        }
        if (format == DumpFormat.Elf && codec != PageCodec.None && args.Any(x => x is "-c" or "-z" or "-l" or "-p" or "--compression"))
            return UsageError("-E writes ELF, which has no per-page compression; drop -c/-z/-l/-p");
        if (format == DumpFormat.Elf) codec = PageCodec.None;
        if (flattened ? positional.Count != 1 : positional.Count != 2)
            return UsageError(flattened ? "-F needs VMCORE only (the stream goes to stdout)" : "need VMCORE and DUMPFILE");

        var options = new DumpOptions
        {
            Level = level,
            Codec = codec,
            AutoCodec = autoCodec && format == DumpFormat.KdumpCompressed,
            Format = format,
            WindowPfns = window,
            Threads = threads,
            ZstdLevel = zstdLevel,
            Progress = flattened ? null : Log.Progress("Copying pages"),
        };
        return Execute(positional[0], flattened ? null : positional[1], options);
    }

    private static int Execute(string vmcorePath, string? outPath, DumpOptions options)
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
                sink = outPath is null ? new FlattenedSink(Console.OpenStandardOutput()) : FileSink.Create(outPath);
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
                    result = options.Format == DumpFormat.Elf
                        ? new ElfDumpWriter(source, sink, options).Write()
                        : new KdumpCompressedWriter(source, sink, options).Write();
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
            Log.Detail($"Excluded pages: zero {f.Zero}, cache {f.Cache}, cache private {f.CachePrivate}, user {f.User}, free {f.Free}, hwpoison {f.HwPoison}, offline {f.Offline}");
            Log.Detail($"Present pages: {f.Present} of max_mapnr {r.MaxMapnr}");
            Log.Detail($"Excluding pages: {r.FilterSeconds:0.000} s; copying pages: {r.CopySeconds:0.000} s");
        }
        Log.Info($"The dumpfile is {(r.Incomplete ? "INCOMPLETE" : "saved")}: {r.DumpablePages} pages selected ({r.StoredPages} stored, {r.ZeroPages} zero) " +
                 $"at dump level {(int)(r.LevelRaisedTo ?? o.Level)}, {r.BytesWritten} bytes, {PageCompressors.Name(o.Format == DumpFormat.Elf ? PageCodec.None : r.Codec)}, in {elapsed.TotalSeconds:0.00} s " +
                 $"[{source.Info?.OsRelease ?? "unknown kernel"}]");
    }

    private static int UsageError(string message)
    {
        Log.Error(message);
        Console.Error.WriteLine(Usage);
        return ExitCodes.Usage;
    }
}

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
        usage: capture-agent dump [-d LEVEL] [-z | -c | --no-compress] [-E] [-F] [--message-level N] VMCORE [DUMPFILE]
          -d LEVEL        pages to leave out, makedumpfile's bits: 1 zero, 2 cache, 4 cache+private,
                          8 user data, 16 free (default 31)
          -z              zstd per page (default; --zstd-level N, default 1, negative = faster);  -c  zlib per page;  --no-compress  raw pages
          -l, -p          lzo/snappy are not built in: zstd is used instead (with a warning)
          -E              ELF output instead of kdump-compressed (no compression)
          -F              makedumpfile's flattened stream to standard output (DUMPFILE omitted)
          --threads N     compression threads (default: the CPUs available, at most 8)
          --message-level N  0 errors, 1 +warnings, 2 +summary (default), 3 +details;  -q = 0, -v = 3
        exit status: 0 done, 1 failed, 2 usage, 3 written but the input was damaged or filtering degraded
        """;

    public static int Run(string[] args)
    {
        var level = DumpLevel.All;
        var codec = PageCodec.Zstd;
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
                case "-l":
                case "-p":
                    Log.Warn($"{a} ({(a == "-l" ? "lzo" : "snappy")}) is not built in; writing zstd pages instead");
                    codec = PageCodec.Zstd;
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
        if (format == DumpFormat.Elf && codec != PageCodec.None && args.Any(x => x is "-c" or "-z"))
            return UsageError("-E writes ELF, which has no per-page compression; drop -c/-z");
        if (format == DumpFormat.Elf) codec = PageCodec.None;
        if (flattened ? positional.Count != 1 : positional.Count != 2)
            return UsageError(flattened ? "-F needs VMCORE only (the stream goes to stdout)" : "need VMCORE and DUMPFILE");

        var options = new DumpOptions
        {
            Level = level,
            Codec = codec,
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
                 $"at dump level {(int)(r.LevelRaisedTo ?? o.Level)}, {r.BytesWritten} bytes, {o.Codec.ToString().ToLowerInvariant()}, in {elapsed.TotalSeconds:0.00} s " +
                 $"[{source.Info?.OsRelease ?? "unknown kernel"}]");
    }

    private static int UsageError(string message)
    {
        Log.Error(message);
        Console.Error.WriteLine(Usage);
        return ExitCodes.Usage;
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using CaptureAgent.Config;
using CaptureAgent.Report;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>
/// `capture-agent report [DIR] [--json] [--limit N] [--config FILE]`: the saved dumps, newest
/// first, with what crashed (panic line, RIP, call trace, taint, hardware) and a signature that
/// groups the same bug across machines.
/// </summary>
public static class ReportCommand
{
    public const string Usage = "usage: capture-agent report [DIR] [--json] [--limit N] [--config FILE]";

    public static int Run(string[] args) => CommandLine.Run(Usage, args, ListDumps);

    private static int ListDumps(string[] args)
    {
        bool json = false;
        int limit = 0;
        string? config = null;
        var cli = new ArgReader("report", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--json": json = true; break;
                case "--limit" or "-n": limit = cli.Int(1, int.MaxValue, "a number of dumps"); break;
                case "--config": config = cli.Value(); break;
                default: throw cli.Unknown();
            }
        }
        string? dir = cli.Operands(0, 1, "at most one DIR") is [var d] ? d : null;
        bool named = dir is not null;
        dir ??= DumpFinder.DefaultDirectory(config ?? AgentConfig.DefaultPath);
        if (!Directory.Exists(dir) && named)
        {
            Log.Error($"{dir}: no such directory");
            return ExitCodes.Failed;
        }
        List<DumpEntry> entries;
        try
        {
            // The default directory not existing yet just means nothing was ever saved there.
            entries = Directory.Exists(dir) ? DumpCatalog.Scan(dir, limit) : new();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
        using var stdout = Console.OpenStandardOutput();
        if (json) WriteJson(stdout, entries);
        else
        {
            var text = entries.Count == 0 ? $"no dumps under {dir}\n" : FormatText(entries);
            stdout.Write(Encoding.UTF8.GetBytes(text));
        }
        return ExitCodes.Ok;
    }

    public static string Time(DateTimeOffset? t) =>
        t is { } v ? v.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture) : "-";

    /// <summary>A table, one row per dump, then each dump's details.</summary>
    public static string FormatText(IReadOnlyList<DumpEntry> entries)
    {
        var rows = new List<string[]> { new[] { "CRASH TIME (UTC)", "HOST", "KERNEL", "STATUS", "SIZE", "SIGNATURE", "CRASH" } };
        foreach (var e in entries)
            rows.Add([Time(e.CrashTime), e.Host ?? "-", e.KernelRelease ?? "-", DumpEntry.StatusName(e.Status), Size(e.TotalBytes),
                e.Signature?.Id ?? "-", Short(e.Panic)]);
        var widths = Enumerable.Range(0, rows[0].Length - 1).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var r in rows)
        {
            for (int c = 0; c < widths.Length; c++) sb.Append(r[c].PadRight(widths[c] + 2));
            sb.Append(r[^1]).Append('\n');
        }
        foreach (var e in entries)
        {
            sb.Append('\n').Append(e.Directory).Append('\n');
            Line(sb, "host", e.Host);
            Line(sb, "kernel", e.KernelRelease);
            Line(sb, "crash time", $"{Time(e.CrashTime)} (from {e.CrashTimeSource})");
            Line(sb, "status", $"{DumpEntry.StatusName(e.Status)}: {e.StatusDetail}");
            var files = new List<string>();
            if (e.DumpFile is not null) files.Add($"{e.DumpFile} {Size(e.DumpBytes ?? 0)}" + (e.DumpFormat is null ? "" : $" ({e.DumpFormat})"));
            if (e.DmesgFile is not null) files.Add($"{e.DmesgFile} {Size(e.DmesgBytes ?? 0)}");
            files.Add($"total {Size(e.TotalBytes)}");
            Line(sb, "files", string.Join(", ", files));
            if (e.Panic is { } p)
            {
                Line(sb, "panic", p.PanicLine ?? "(no panic line: the kernel kexec'ed from the oops)");
                if (p.Kind != CrashKind.Panic) Line(sb, CrashSignature.KindName(p.Kind), p.Headline);
                Line(sb, "rip", p.Rip);
                if (p.Comm is not null) Line(sb, "task", $"{p.Comm} pid {p.Pid}" + (p.Cpu is int cpu ? $" on CPU {cpu}" : ""));
                Line(sb, "tainted", p.Tainted is null ? null : p.Tainted.Length == 0 ? "not tainted" : p.Tainted);
                Line(sb, "hardware", p.Hardware);
                Line(sb, "log", e.LogSource);
                if (p.CallTrace.Count > 0)
                {
                    sb.Append("  call trace:\n");
                    foreach (var f in p.CallTrace.Take(PanicAnalysis.MaxFrames)) sb.Append("    ").Append(f).Append('\n');
                }
            }
            if (e.Signature is { } s) Line(sb, "signature", $"{s.Id} = {s.Describe()}");
            foreach (var problem in e.Problems) Line(sb, "note", problem);
        }
        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string name, string? value) =>
        sb.Append("  ").Append((name + ":").PadRight(12)).Append(value ?? "-").Append('\n');

    private static string Short(PanicReport? p)
    {
        if (p is null) return "-";
        string s = p.Kind == CrashKind.Panic && p.PanicMessage is not null ? p.PanicMessage : p.Headline;
        if (p.RipFunction is not null && !s.Contains(p.RipFunction, StringComparison.Ordinal)) s += $" at {p.RipFunction}";
        return s.Length > 100 ? s[..97] + "..." : s;
    }

    public static string Size(long bytes) => bytes switch
    {
        < 10_240 => $"{bytes} B",
        < 10L << 20 => $"{bytes >> 10} KiB",
        < 10L << 30 => $"{bytes >> 20} MiB",
        _ => $"{bytes >> 30} GiB",
    };

    /// <summary>report --json: the entries as an array (docs/json-output.md).</summary>
    public static void WriteJson(Stream output, IReadOnlyList<DumpEntry> entries) => JsonOutput.WriteArray(output, entries, WriteFields);

    /// <summary>One entry as an object of its own (inside status --json's last_dumps).</summary>
    public static void WriteEntry(Utf8JsonWriter w, DumpEntry e)
    {
        w.WriteStartObject();
        JsonOutput.WriteHeader(w);
        WriteFields(w, e);
        w.WriteEndObject();
    }

    private static void WriteFields(Utf8JsonWriter w, DumpEntry e)
    {
        w.WriteString("directory", e.Directory);
        w.WriteString("layout", e.Layout);
        w.StringOrNull("host", e.Host);
        w.StringOrNull("kernel_release", e.KernelRelease);
        w.StringOrNull("crash_time", e.CrashTime is { } t ? JsonOutput.Time(t) : null);
        w.StringOrNull("crash_time_source", e.CrashTimeSource);
        w.WriteString("status", DumpEntry.StatusName(e.Status));
        w.WriteString("status_detail", e.StatusDetail);
        w.StringOrNull("dump_file", e.DumpFile);
        w.StringOrNull("dump_format", e.DumpFormat);
        w.StringOrNull("dmesg_file", e.DmesgFile);
        w.WriteStartObject("sizes");
        w.NumberOrNull("dump", e.DumpBytes);
        w.NumberOrNull("dmesg", e.DmesgBytes);
        w.WriteNumber("total", e.TotalBytes);
        w.WriteEndObject();
        w.StringOrNull("log_source", e.LogSource);
        WriteCrash(w, e.Panic);
        WriteSignature(w, e.Signature);
        w.StringArray("problems", e.Problems);
    }

    private static void WriteCrash(Utf8JsonWriter w, PanicReport? p)
    {
        if (p is null) { w.WriteNull("crash"); return; }
        w.WriteStartObject("crash");
        w.WriteString("kind", CrashSignature.KindName(p.Kind));
        w.StringOrNull("panic", p.PanicLine);
        w.WriteString("headline", p.Headline);
        w.StringOrNull("rip", p.Rip);
        w.StringOrNull("rip_function", p.RipFunction);
        w.StringArray("call_trace", p.CallTrace.Take(PanicAnalysis.MaxFrames).Select(f => f.ToString()));
        w.StringOrNull("tainted", p.Tainted);
        w.StringOrNull("hardware", p.Hardware);
        w.NumberOrNull("cpu", p.Cpu);
        w.NumberOrNull("pid", p.Pid);
        w.StringOrNull("comm", p.Comm);
        if (p.Uptime is double up) w.WriteNumber("uptime_seconds", up); else w.WriteNull("uptime_seconds");
        w.WriteEndObject();
    }

    private static void WriteSignature(Utf8JsonWriter w, CrashSignature? s)
    {
        if (s is null) { w.WriteNull("signature"); return; }
        w.WriteStartObject("signature");
        w.WriteString("id", s.Id);
        w.WriteString("kind", CrashSignature.KindName(s.Kind));
        w.WriteString("reason", s.Reason);
        w.StringOrNull("rip_function", s.RipFunction);
        w.StringArray("frames", s.Frames);
        w.WriteString("text", s.Describe());
        w.WriteEndObject();
    }
}

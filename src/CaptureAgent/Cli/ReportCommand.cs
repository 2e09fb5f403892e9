using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
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
        dir ??= DumpCatalog.DefaultDirectory(config ?? AgentConfig.DefaultPath);
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

    /// <summary>The entries as a JSON array (snake_case, like manifest.json).</summary>
    public static void WriteJson(Stream output, IReadOnlyList<DumpEntry> entries)
    {
        using (var w = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartArray();
            foreach (var e in entries) WriteEntry(w, e);
            w.WriteEndArray();
        }
        output.Write("\n"u8);
    }

    public static void WriteEntry(Utf8JsonWriter w, DumpEntry e)
    {
        w.WriteStartObject();
        w.WriteString("capture_agent_version", BuildInfo.Version);
        w.WriteString("directory", e.Directory);
        w.WriteString("layout", e.Layout);
        Str(w, "host", e.Host);
        Str(w, "kernel_release", e.KernelRelease);
        Str(w, "crash_time", e.CrashTime is null ? null : Time(e.CrashTime));
        Str(w, "crash_time_source", e.CrashTimeSource);
        w.WriteString("status", DumpEntry.StatusName(e.Status));
        w.WriteString("status_detail", e.StatusDetail);
        Str(w, "dump_file", e.DumpFile);
        Str(w, "dump_format", e.DumpFormat);
        Str(w, "dmesg_file", e.DmesgFile);
        w.WriteStartObject("sizes");
        if (e.DumpBytes is long d) w.WriteNumber("dump", d); else w.WriteNull("dump");
        if (e.DmesgBytes is long m) w.WriteNumber("dmesg", m); else w.WriteNull("dmesg");
        w.WriteNumber("total", e.TotalBytes);
        w.WriteEndObject();
        Str(w, "log_source", e.LogSource);
        if (e.Panic is { } p)
        {
            w.WriteStartObject("crash");
            w.WriteString("kind", CrashSignature.KindName(p.Kind));
            Str(w, "panic", p.PanicLine);
            w.WriteString("headline", p.Headline);
            Str(w, "rip", p.Rip);
            Str(w, "rip_function", p.RipFunction);
            w.WriteStartArray("call_trace");
            foreach (var f in p.CallTrace.Take(PanicAnalysis.MaxFrames)) w.WriteStringValue(f.ToString());
            w.WriteEndArray();
            Str(w, "tainted", p.Tainted);
            Str(w, "hardware", p.Hardware);
            if (p.Cpu is int cpu) w.WriteNumber("cpu", cpu); else w.WriteNull("cpu");
            if (p.Pid is int pid) w.WriteNumber("pid", pid); else w.WriteNull("pid");
            Str(w, "comm", p.Comm);
            if (p.Uptime is double up) w.WriteNumber("uptime_seconds", up); else w.WriteNull("uptime_seconds");
            w.WriteEndObject();
        }
        else w.WriteNull("crash");
        if (e.Signature is { } s)
        {
            w.WriteStartObject("signature");
            w.WriteString("id", s.Id);
            w.WriteString("kind", CrashSignature.KindName(s.Kind));
            w.WriteString("reason", s.Reason);
            Str(w, "rip_function", s.RipFunction);
            w.WriteStartArray("frames");
            foreach (var f in s.Frames) w.WriteStringValue(f);
            w.WriteEndArray();
            w.WriteString("text", s.Describe());
            w.WriteEndObject();
        }
        else w.WriteNull("signature");
        w.WriteStartArray("problems");
        foreach (var x in e.Problems) w.WriteStringValue(x);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Str(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name); else w.WriteString(name, value);
    }
}

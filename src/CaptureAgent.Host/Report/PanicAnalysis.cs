using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Common;

namespace CaptureAgent.Report;

/// <summary>What kind of report brought the kernel down.</summary>
public enum CrashKind { Panic, Oops, Bug, Warning, SoftLockup, HardLockup, RcuStall, HungTask, OutOfMemory }

/// <summary>One call-trace line: "func+0x16/0x20 [module]".</summary>
public sealed record TraceFrame(string Function, string Offset, string? Module)
{
    public override string ToString() => Module is null ? $"{Function}{Offset}" : $"{Function}{Offset} [{Module}]";
}

/// <summary>The crash as the kernel log tells it.</summary>
public sealed class PanicReport
{
    /// <summary>The whole "Kernel panic - not syncing: ..." line, or null when the log has none (an oops that kexec'ed directly).</summary>
    public string? PanicLine { get; init; }
    /// <summary>What panic() was given: "sysrq triggered crash", "Fatal exception", ...</summary>
    public string? PanicMessage { get; init; }
    public CrashKind Kind { get; init; }
    /// <summary>The line that reported the problem ("BUG: kernel NULL pointer dereference, ...", "watchdog: BUG: soft lockup ..."); the panic line for a plain panic.</summary>
    public required string Headline { get; init; }
    /// <summary>The first kernel-mode "RIP:" of the report: "func+0x2a/0x130 [mod]".</summary>
    public string? Rip { get; init; }
    public string? RipFunction { get; init; }
    /// <summary>The reliable frames of the report's call trace, in the order printed (innermost first).</summary>
    public List<TraceFrame> CallTrace { get; init; } = new();
    /// <summary>Taint letters ("GOE"), "" when "Not tainted", null when no CPU: line was found.</summary>
    public string? Tainted { get; init; }
    public string? Hardware { get; init; }
    public string? KernelRelease { get; init; }
    public int? Cpu { get; init; }
    public int? Pid { get; init; }
    public string? Comm { get; init; }
    /// <summary>Seconds since boot of the headline, when the log has timestamps.</summary>
    public double? Uptime { get; init; }
}

/// <summary>
/// Finds the crash in a kernel log (dmesg.txt, vmcore-dmesg.txt, makedumpfile --dump-dmesg): the
/// panic line, the report that led to it (oops, BUG, WARN with panic_on_warn, lockup, RCU stall,
/// hung task, OOM), its first kernel RIP and the reliable frames of its call trace. Understands
/// the printk prefixes "[ 12.345678] " and "[ T123] "/"[ C1] " and lines from several CPUs interleaved.
/// </summary>
public static partial class PanicAnalysis
{
    public const int MaxFrames = 16;
    /// <summary>The crash is at the end of the log: this much of its tail is enough and bounds memory.</summary>
    public const int TailBytes = 2 << 20;

    /// <summary>One log line without its prefixes.</summary>
    internal readonly record struct LogLine(string Text, double? Time, string? Caller);

    [GeneratedRegex(@"^(?:<\d+>)?\[\s*(\d+)\.(\d+)\]\s?(?:\[\s*([TC]\d+)\]\s?)?")]
    private static partial Regex Prefix();
    [GeneratedRegex(@"^(?:\[<[0-9a-f]+>\]\s+)?(\?\s+)?(?:\[<[0-9a-f]+>\]\s+)?([A-Za-z_.$][\w.$]*)(\+0x[0-9a-f]+/0x[0-9a-f]+)(?:\s+\[([\w-]+)(?:\s+[0-9a-f]+)?\])?\s*$")]
    private static partial Regex Frame();
    [GeneratedRegex(@"^(?:RIP:\s*(?:[0-9a-f]{4}:)?|pc\s*:\s*)(?:\[<[0-9a-f]+>\]\s*)*([A-Za-z_.$][\w.$]*)(\+0x[0-9a-f]+/0x[0-9a-f]+)(?:\s+\[([\w-]+)(?:\s+[0-9a-f]+)?\])?")]
    private static partial Regex RipLine();
    [GeneratedRegex(@"^CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)(.*)$")]
    private static partial Regex CpuLine();
    [GeneratedRegex(@"Tainted: ([A-Z ]*?)\s+(\d\S*)")]
    private static partial Regex TaintedField();
    [GeneratedRegex(@"Not tainted\s+(\d\S*)")]
    private static partial Regex NotTainted();
    [GeneratedRegex(@"^(?:RIP|Code|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d+|FS|GS|CS|DS|ES|CR\d|DR\d|PKRU|ORIG_RAX|EFLAGS)\b")]
    private static partial Regex RegisterLine();
    [GeneratedRegex(@"^INFO: task (.+):(\d+) blocked for more than")]
    private static partial Regex HungTaskLine();
    [GeneratedRegex(@"^Linux version (\S+)")]
    private static partial Regex LinuxVersion();
    [GeneratedRegex(@"^(?:Oops: )*(?:Oops: [0-9a-f]{4}|general protection fault|invalid opcode|stack segment|double fault|divide error|int3|kernel stack overflow|stack guard page was hit|alignment check|bounds|coprocessor segment overrun|invalid TSS|segment not present|Internal error: )")]
    private static partial Regex DieLine();

    /// <summary>Reads the tail of a log file (the crash is at its end) and its first line's release.</summary>
    public static PanicReport? AnalyzeFile(string path)
    {
        using var f = new FileStream(InputFile.OpenRegular(path), FileAccess.Read, 1);
        long length = f.Length;
        var head = new byte[(int)Math.Min(length, 4096)];
        f.ReadExactly(head);
        byte[] tail;
        if (length <= TailBytes) { f.Position = 0; tail = new byte[length]; f.ReadExactly(tail); }
        else { f.Position = length - TailBytes; tail = new byte[TailBytes]; f.ReadExactly(tail); }
        string? release = FindRelease(Encoding.Latin1.GetString(head));
        return Analyze(Encoding.Latin1.GetString(tail), release);
    }

    /// <summary>The release in the log's "Linux version X ..." line, if the text has it.</summary>
    public static string? FindRelease(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            var m = LinuxVersion().Match(Strip(raw).Text.Trim());
            if (m.Success) return m.Groups[1].Value;
        }
        return null;
    }

    /// <summary>The crash in a kernel log's text; null when the log shows none.</summary>
    public static PanicReport? Analyze(string text, string? releaseHint = null)
    {
        var lines = new List<LogLine>();
        LogLine last = default;
        foreach (var raw in text.Split('\n'))
        {
            if (raw.Length == 0) continue;
            var l = Strip(raw.TrimEnd('\r'));
            // A continuation line of a multi-line record has no prefix: it inherits its record's.
            if (l.Time is null && l.Caller is null && last.Text is not null) l = l with { Time = last.Time, Caller = last.Caller };
            lines.Add(l);
            last = l;
        }
        releaseHint ??= lines.Select(l => LinuxVersion().Match(l.Text.Trim())).FirstOrDefault(m => m.Success)?.Groups[1].Value;
        return Analyze(lines, releaseHint);
    }

    internal static LogLine Strip(string raw)
    {
        var m = Prefix().Match(raw);
        if (!m.Success) return new LogLine(raw, null, null);
        double time = double.Parse(m.Groups[1].Value + "." + m.Groups[2].Value, CultureInfo.InvariantCulture);
        return new LogLine(raw[m.Length..], time, m.Groups[3].Success ? m.Groups[3].Value : null);
    }

    private static PanicReport? Analyze(List<LogLine> lines, string? releaseHint)
    {
        int panicAt = LastPanicLine(lines);
        string? panicLine = panicAt >= 0 ? lines[panicAt].Text.Trim() : null;
        string? panicMessage = panicLine?["Kernel panic - not syncing: ".Length..].Trim();
        if (FindEvent(lines, panicAt, panicMessage) is not var (eventAt, kind)) return null;
        (eventAt, kind) = FirstLineOfReport(lines, eventAt, kind);

        var ev = lines[eventAt];
        string headline = ev.Text.Trim();
        // Lines of the report come from the reporting context; an RCU stall also prints the
        // stalled CPUs' NMI backtraces, so it takes lines from any context.
        string? caller = kind == CrashKind.RcuStall ? null : ev.Caller;
        var (rip, ripFunction) = FindRip(lines, eventAt, caller);
        var frames = ReadCallTrace(lines, eventAt, caller);
        int eventCpuAt = FindCpuLine(lines, eventAt, caller);
        // The panicking CPU's own line has the final taint flags; else the report's.
        int cpuAt = PanickingCpuLine(lines, panicAt);
        if (cpuAt < 0) cpuAt = eventCpuAt;
        var (tainted, release, hardware) = ReadTaintAndHardware(lines, cpuAt);
        var (cpu, pid, comm) = ReadTask(lines, eventCpuAt, kind, headline);

        return new PanicReport
        {
            PanicLine = panicLine,
            PanicMessage = panicMessage,
            Kind = kind,
            Headline = headline,
            Rip = rip,
            RipFunction = ripFunction,
            CallTrace = frames,
            Tainted = tainted,
            Hardware = hardware,
            KernelRelease = release ?? releaseHint,
            Cpu = cpu,
            Pid = pid,
            Comm = comm,
            Uptime = ev.Time,
        };
    }

    /// <summary>A line from the report's context: any line when the context is unknown on either side.</summary>
    private static bool FromCaller(LogLine l, string? caller) => caller is null || l.Caller is null || l.Caller == caller;

    private static int LastPanicLine(List<LogLine> lines)
    {
        for (int i = lines.Count - 1; i >= 0; i--)
            if (lines[i].Text.TrimStart().StartsWith("Kernel panic - not syncing: ", StringComparison.Ordinal)) return i;
        return -1;
    }

    /// <summary>
    /// The report that led to the crash: before a panic line, the last report of a kind its message
    /// follows from (else the panic itself); without one, the last report, a warning only if nothing else.
    /// </summary>
    private static (int At, CrashKind Kind)? FindEvent(List<LogLine> lines, int panicAt, string? panicMessage)
    {
        if (panicMessage is not null)
        {
            var wanted = ConsequenceOf(panicMessage);
            if (wanted.Length > 0)
                for (int i = panicAt - 1; i >= 0; i--)
                    if (Classify(lines[i].Text) is CrashKind k && wanted.Contains(k)) return (i, k);
            return (panicAt, CrashKind.Panic);
        }
        // No panic line: an oops in interrupt context or with panic_on_oops kexecs from oops_end,
        // before panic() prints anything. The last report is the crash; a warning only if nothing else.
        for (int i = lines.Count - 1; i >= 0; i--)
            if (Classify(lines[i].Text) is CrashKind k && k != CrashKind.Warning) return (i, k);
        for (int i = lines.Count - 1; i >= 0; i--)
            if (Classify(lines[i].Text) is CrashKind.Warning) return (i, CrashKind.Warning);
        return null;
    }

    /// <summary>Where the report starts, when the line found is not its first.</summary>
    private static (int At, CrashKind Kind) FirstLineOfReport(List<LogLine> lines, int eventAt, CrashKind kind)
    {
        if (kind is CrashKind.Oops or CrashKind.Bug && DieLine().IsMatch(lines[eventAt].Text.Trim()))
        {
            // "Oops: 0000 [#1]" / "invalid opcode: 0000 [#1]" follow the line that says what happened.
            for (int i = eventAt - 1; i >= Math.Max(0, eventAt - 12); i--)
            {
                if (lines[i].Caller != lines[eventAt].Caller) continue;
                string t = lines[i].Text.Trim();
                if (t.StartsWith("BUG: ", StringComparison.Ordinal) || t.StartsWith("kernel BUG at ", StringComparison.Ordinal)
                    || t.StartsWith("Unable to handle kernel ", StringComparison.Ordinal))
                    return (i, Classify(t) ?? kind);
            }
        }
        else if (kind == CrashKind.HungTask)
        {
            // One khungtaskd scan reports every blocked task: the first one reported is the crash.
            double? t0 = lines[eventAt].Time;
            int first = eventAt;
            for (int i = eventAt - 1; i >= 0; i--)
            {
                var k = Classify(lines[i].Text);
                if (k is not null && k != CrashKind.HungTask) break;
                if (t0 is double a && lines[i].Time is double b && a - b > 2) break;
                if (k == CrashKind.HungTask) first = i;
            }
            return (first, kind);
        }
        return (eventAt, kind);
    }

    /// <summary>The first RIP/PC line of the report: the address as printed, and its function.</summary>
    private static (string? Rip, string? Function) FindRip(List<LogLine> lines, int eventAt, string? caller)
    {
        for (int i = eventAt; i < lines.Count; i++)
        {
            if (!FromCaller(lines[i], caller)) continue;
            var m = RipLine().Match(lines[i].Text.Trim());
            if (m.Success)
                return (m.Groups[3].Success ? $"{m.Groups[1].Value}{m.Groups[2].Value} [{m.Groups[3].Value}]" : m.Groups[1].Value + m.Groups[2].Value,
                        m.Groups[1].Value);
        }
        return (null, null);
    }

    /// <summary>The frames of the report's first call trace, without stale "? func" addresses.</summary>
    private static List<TraceFrame> ReadCallTrace(List<LogLine> lines, int eventAt, string? caller)
    {
        var frames = new List<TraceFrame>();
        for (int i = eventAt; i < lines.Count; i++)
        {
            if (!FromCaller(lines[i], caller)) continue;
            string t = lines[i].Text.Trim();
            if (!t.StartsWith("Call Trace:", StringComparison.OrdinalIgnoreCase)) continue;   // arm64 prints "Call trace:"
            string? traceCaller = lines[i].Caller;
            for (int j = i + 1; j < lines.Count; j++)
            {
                var l = lines[j];
                if (traceCaller is not null && l.Caller is not null && l.Caller != traceCaller) continue;   // another CPU's line
                string s = l.Text.Trim();
                if (s.Length == 0) continue;
                if (s[0] == '<' && s[^1] == '>' && s.Length < 16) continue;   // <TASK>, </IRQ>, <NMI>, <#DF>
                var fm = Frame().Match(s);
                if (fm.Success)
                {
                    if (fm.Groups[1].Success) continue;   // "? func": a stale return address, not a frame
                    frames.Add(new TraceFrame(fm.Groups[2].Value, fm.Groups[3].Value, fm.Groups[4].Success ? fm.Groups[4].Value : null));
                    continue;
                }
                if (s.StartsWith("? ", StringComparison.Ordinal) || RegisterLine().IsMatch(s)) continue;   // "? 0xffffffffc0..", exception registers
                break;
            }
            break;
        }
        return frames;
    }

    /// <summary>The "CPU: N PID: N Comm: ..." line within three lines after the panic line, or -1.</summary>
    private static int PanickingCpuLine(List<LogLine> lines, int panicAt)
    {
        if (panicAt < 0) return -1;
        for (int i = panicAt + 1; i < Math.Min(lines.Count, panicAt + 4); i++)
            if (CpuLine().IsMatch(lines[i].Text.Trim())) return i;
        return -1;
    }

    /// <summary>The report's first "CPU: N PID: N Comm: ..." line, or -1.</summary>
    private static int FindCpuLine(List<LogLine> lines, int eventAt, string? caller)
    {
        for (int i = eventAt; i < lines.Count; i++)
            if (FromCaller(lines[i], caller) && CpuLine().IsMatch(lines[i].Text.Trim())) return i;
        return -1;
    }

    /// <summary>Taint flags and release from a CPU line, and the "Hardware name:" line just after it.</summary>
    private static (string? Tainted, string? Release, string? Hardware) ReadTaintAndHardware(List<LogLine> lines, int cpuAt)
    {
        string? tainted = null, release = null, hardware = null;
        if (cpuAt < 0) return (tainted, release, hardware);
        string cpuText = lines[cpuAt].Text.Trim();
        if (TaintedField().Match(cpuText) is { Success: true } tm)
        {
            tainted = new string(tm.Groups[1].Value.Where(char.IsAsciiLetterUpper).ToArray());
            release = tm.Groups[2].Value;
        }
        else if (NotTainted().Match(cpuText) is { Success: true } nm)
        {
            tainted = "";
            release = nm.Groups[1].Value;
        }
        for (int i = cpuAt + 1; i < Math.Min(lines.Count, cpuAt + 4) && hardware is null; i++)
        {
            string t = lines[i].Text.Trim();
            if (t.StartsWith("Hardware name: ", StringComparison.Ordinal)) hardware = t["Hardware name: ".Length..];
        }
        return (tainted, release, hardware);
    }

    /// <summary>The crashing task: from the report's CPU line, or for a hung task from its headline.</summary>
    private static (int? Cpu, int? Pid, string? Comm) ReadTask(List<LogLine> lines, int eventCpuAt, CrashKind kind, string headline)
    {
        int? cpu = null, pid = null;
        string? comm = null;
        if (eventCpuAt >= 0)
        {
            var cm = CpuLine().Match(lines[eventCpuAt].Text.Trim());
            cpu = int.Parse(cm.Groups[1].Value, CultureInfo.InvariantCulture);
            pid = int.Parse(cm.Groups[2].Value, CultureInfo.InvariantCulture);
            comm = cm.Groups[3].Value;
        }
        if (kind == CrashKind.HungTask && HungTaskLine().Match(headline) is { Success: true } hm)
        {
            // The CPU: line is khungtaskd's; the task that hung is named in the headline.
            comm = hm.Groups[1].Value;
            pid = int.Parse(hm.Groups[2].Value, CultureInfo.InvariantCulture);
            cpu = null;
        }
        return (cpu, pid, comm);
    }

    /// <summary>The kind of report a line starts, or null.</summary>
    internal static CrashKind? Classify(string text)
    {
        string t = text.Trim();
        if (t.Length < 6) return null;
        if (t.Contains("BUG: soft lockup", StringComparison.Ordinal)) return CrashKind.SoftLockup;
        if (t.Contains("detected hard LOCKUP", StringComparison.Ordinal)) return CrashKind.HardLockup;
        if (t.StartsWith("kernel BUG at ", StringComparison.Ordinal)) return CrashKind.Bug;
        if (t.StartsWith("BUG: kernel NULL pointer dereference", StringComparison.Ordinal)
            || t.StartsWith("BUG: unable to handle ", StringComparison.Ordinal)
            || t.StartsWith("Unable to handle kernel ", StringComparison.Ordinal)) return CrashKind.Oops;
        if (t.StartsWith("BUG: ", StringComparison.Ordinal)) return CrashKind.Bug;
        if (DieLine().IsMatch(t)) return CrashKind.Oops;
        if (t.StartsWith("WARNING: ", StringComparison.Ordinal)) return CrashKind.Warning;
        if ((t.StartsWith("rcu: INFO: ", StringComparison.Ordinal) || t.StartsWith("INFO: rcu", StringComparison.Ordinal))
            && t.Contains("detected stall", StringComparison.Ordinal)) return CrashKind.RcuStall;
        if (HungTaskLine().IsMatch(t)) return CrashKind.HungTask;
        if (t.Contains(" invoked oom-killer: ", StringComparison.Ordinal)) return CrashKind.OutOfMemory;
        return null;
    }

    /// <summary>The reports a panic message is the consequence of; empty when the panic is the crash itself.</summary>
    private static CrashKind[] ConsequenceOf(string message)
    {
        if (message.StartsWith("Fatal exception", StringComparison.Ordinal) || message.StartsWith("Attempted to kill", StringComparison.Ordinal)
            || message.StartsWith("Aiee, killing interrupt handler", StringComparison.Ordinal) || message == "Oops")
            return [CrashKind.Oops, CrashKind.Bug];
        if (message.StartsWith("softlockup", StringComparison.Ordinal)) return [CrashKind.SoftLockup];
        if (message.StartsWith("Hard LOCKUP", StringComparison.Ordinal) || message.StartsWith("Watchdog detected hard LOCKUP", StringComparison.Ordinal)) return [CrashKind.HardLockup];
        if (message.StartsWith("RCU Stall", StringComparison.Ordinal)) return [CrashKind.RcuStall];
        if (message.StartsWith("hung_task", StringComparison.Ordinal)) return [CrashKind.HungTask];
        if (message.StartsWith("Out of memory", StringComparison.Ordinal) || message.StartsWith("System is deadlocked on memory", StringComparison.Ordinal))
            return [CrashKind.OutOfMemory];
        if (message.Contains("panic_on_warn set", StringComparison.Ordinal) || message.Contains("panic_on_taint set", StringComparison.Ordinal))
            return [CrashKind.Warning];
        return [];
    }
}

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CaptureAgent.Common;
namespace CaptureAgent.Report;

/// <summary>
/// A crash's identity across machines, boots and builds: CRC-64 of the kind of report, its
/// headline with everything that varies per occurrence taken out (addresses, numbers, pids, CPU
/// numbers, task names), the RIP function, and the top reliable call-trace functions without
/// offsets, compiler suffixes (.cold, .isra.0) or generic entries (panic, dump_stack, exception
/// and syscall entry code). "sig:" and 16 hex digits; the components say what it stands for.
/// </summary>
public sealed partial class CrashSignature
{
    public const int TopFrames = 5;

    public string Id { get; }
    public CrashKind Kind { get; }
    public string Reason { get; }
    public string? RipFunction { get; }
    public IReadOnlyList<string> Frames { get; }

    private CrashSignature(CrashKind kind, string reason, string? rip, List<string> frames)
    {
        Kind = kind;
        Reason = reason;
        RipFunction = rip;
        Frames = frames;
        var text = new StringBuilder("v1\n").Append(KindName(kind)).Append('\n').Append(reason).Append('\n').Append(rip ?? "").Append('\n');
        foreach (var f in frames) text.Append(f).Append('\n');
        ulong crc = Crc64.Update(0, Encoding.UTF8.GetBytes(text.ToString()));
        Id = "sig:" + crc.ToString("x16", CultureInfo.InvariantCulture);
    }

    /// <summary>"kind | reason | rip | f1 &lt; f2 &lt; ...": the hashed components, for people.</summary>
    public string Describe() =>
        $"{KindName(Kind)} | {Reason} | {RipFunction ?? "-"} | {(Frames.Count == 0 ? "-" : string.Join(" < ", Frames))}";

    public override string ToString() => Id;

    public static string KindName(CrashKind kind) => kind switch
    {
        CrashKind.Panic => "panic",
        CrashKind.Oops => "oops",
        CrashKind.Bug => "bug",
        CrashKind.Warning => "warning",
        CrashKind.SoftLockup => "soft-lockup",
        CrashKind.HardLockup => "hard-lockup",
        CrashKind.RcuStall => "rcu-stall",
        CrashKind.HungTask => "hung-task",
        CrashKind.OutOfMemory => "out-of-memory",
        _ => "unknown",
    };

    public static CrashSignature From(PanicReport report)
    {
        // Running out of memory is a state of the machine, not a code path: whoever happened to
        // allocate last would split one problem into many signatures.
        if (report.Kind == CrashKind.OutOfMemory)
            return new CrashSignature(report.Kind, NormalizeReason(report.PanicMessage ?? "invoked oom-killer", report.Kind), null, new());
        var frames = new List<string>();
        foreach (var f in report.CallTrace)
        {
            string name = BaseName(f.Function);
            if (IsGeneric(name)) continue;
            frames.Add(name);
            if (frames.Count == TopFrames) break;
        }
        string? rip = report.RipFunction is null ? null : BaseName(report.RipFunction);
        return new CrashSignature(report.Kind, NormalizeReason(report.Headline, report.Kind), rip, frames);
    }

    /// <summary>A function name without its compiler-made suffix: __handle_sysrq.cold → __handle_sysrq.</summary>
    public static string BaseName(string function)
    {
        int dot = function.IndexOf('.');
        return dot > 0 ? function[..dot] : function;
    }

    private static readonly HashSet<string> Generic = new(StringComparer.Ordinal)
    {
        "dump_stack", "dump_stack_lvl", "show_stack", "show_regs", "show_trace_log_lvl", "dump_backtrace",
        "panic", "vpanic", "nmi_panic", "__warn", "warn_slowpath_fmt", "warn_slowpath_null", "report_bug", "handle_bug",
        "check_panic_on_warn", "die", "__die", "__die_body", "die_addr", "oops_end", "do_trap", "do_error_trap",
        "page_fault_oops", "no_context", "__bad_area_nosemaphore", "bad_area_nosemaphore", "bad_area",
        "kernelmode_fixup_or_oops", "do_user_addr_fault", "handle_page_fault", "do_page_fault", "do_kern_addr_fault",
        "do_syscall_64", "do_syscall_x64", "syscall_exit_to_user_mode", "ret_from_fork", "ret_from_fork_asm", "kthread",
        "__schedule", "schedule", "schedule_timeout", "schedule_preempt_disabled", "io_schedule", "io_schedule_timeout",
        "preempt_schedule_common", "dump_header", "out_of_memory", "watchdog_timer_fn", "__hrtimer_run_queues",
        "hrtimer_interrupt", "irq_exit_rcu", "__irq_exit_rcu", "handle_softirqs", "__do_softirq", "do_softirq",
        "nmi_cpu_backtrace", "nmi_trigger_cpumask_backtrace", "rcu_dump_cpu_stacks", "print_cpu_stall", "check_cpu_stall",
        "rcu_pending", "rcu_sched_clock_irq", "update_process_times", "tick_sched_handle", "tick_sched_timer",
        "tick_nohz_handler", "watchdog_overflow_callback", "watchdog_hardlockup_check", "__perf_event_overflow",
        "perf_event_overflow", "handle_pmi_common", "intel_pmu_handle_irq", "perf_event_nmi_handler", "nmi_handle",
        "default_do_nmi", "end_repeat_nmi", "repeat_nmi", "sched_show_task", "show_state_filter",
    };

    private static readonly string[] GenericPrefixes =
        ["entry_SYSCALL", "entry_INT80", "asm_", "exc_", "__sysvec_", "sysvec_", "__pfx_", "__x64_sys_", "__ia32_sys_", "__se_sys_"];

    /// <summary>Frames every crash of its kind shares (reporting, exception and syscall entry code).</summary>
    public static bool IsGeneric(string name) =>
        Generic.Contains(name) || GenericPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));

    [GeneratedRegex(@"^INFO: task .+:\d+ blocked")]
    private static partial Regex HungTask();
    [GeneratedRegex(@"\s*\[[^\]]*:\d+\]\s*$")]
    private static partial Regex CommPidSuffix();
    [GeneratedRegex(@"^\S+ invoked oom-killer:")]
    private static partial Regex OomInvoker();
    [GeneratedRegex(@"\bCPU: \d+ (?:UID: \d+ )?PID: \d+ ")]
    private static partial Regex CpuPid();
    [GeneratedRegex(@"\bComm: \S+")]
    private static partial Regex Comm();
    [GeneratedRegex(@"\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+")]
    private static partial Regex FunctionOffset();
    [GeneratedRegex(@"\[([\w-]+) [0-9a-f]{16,}\]")]
    private static partial Regex ModuleBuildId();
    [GeneratedRegex(@"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b")]
    private static partial Regex Hex();
    [GeneratedRegex(@"(?<![A-Za-z_0-9])\d+")]
    private static partial Regex Number();
    [GeneratedRegex(@"\s*\[#\d+\].*$")]
    private static partial Regex DieTail();
    [GeneratedRegex(@"^(?:Oops: ){2,}")]
    private static partial Regex RepeatedOops();
    [GeneratedRegex(@"^(?:Oops: )*(?=general protection fault|invalid opcode|stack segment|double fault|divide error|int3|kernel stack overflow)")]
    private static partial Regex DieStart();
    [GeneratedRegex(@"(?<=scheduling while atomic): .*$")]
    private static partial Regex AtomicComm();
    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    /// <summary>The headline with what differs between occurrences of the same bug taken out.</summary>
    public static string NormalizeReason(string headline, CrashKind kind)
    {
        string s = headline.Trim();
        if (s.StartsWith("Kernel panic - not syncing: ", StringComparison.Ordinal)) s = s["Kernel panic - not syncing: ".Length..];
        s = kind switch
        {
            CrashKind.HungTask => HungTask().Replace(s, "INFO: task blocked"),
            CrashKind.SoftLockup => CommPidSuffix().Replace(s, ""),
            CrashKind.OutOfMemory => OomInvoker().Replace(s, "invoked oom-killer:"),
            _ => s,
        };
        s = DieTail().Replace(s, "");
        s = RepeatedOops().Replace(s, "Oops: ");
        if (DieStart().IsMatch(s)) s = "Oops: " + DieStart().Replace(s, "");
        s = AtomicComm().Replace(s, "");
        s = CpuPid().Replace(s, "");
        s = Comm().Replace(s, "");
        s = FunctionOffset().Replace(s, "");
        s = ModuleBuildId().Replace(s, "[$1]");
        s = Hex().Replace(s, "X");
        s = Number().Replace(s, "N");
        return Spaces().Replace(s, " ").Trim();
    }
}

using System.Diagnostics;
using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Native;

namespace CaptureAgent.Boot;

/// <summary>
/// PID 1 of the capture kernel does not capture itself: it starts the capture as a child process
/// (<see cref="CaptureWorker"/>, the same binary) and watches it. When the child dies by a signal,
/// is killed by the out-of-memory killer, or makes no progress for the config's stall_timeout, PID 1
/// writes one line, syncs, and starts a new child at the next target; what the dead one wrote stays
/// (a dump it did not finish keeps the name vmcore-incomplete). PID 1 also reaps every orphan the
/// kernel hands it. It never dies with its child: that would panic the capture kernel.
/// </summary>
public sealed class CaptureSupervisor
{
    private readonly AgentConfig _config;
    private readonly Action<string> _report;

    /// <summary>The largest peak resident memory a capture process reported (KiB), or -1.</summary>
    public long WorkerPeakKiB { get; private set; } = -1;

    /// <summary>The program to start as the capture process: this binary.</summary>
    public string WorkerPath { get; init; } = Environment.ProcessPath is { } p && File.Exists(p) ? p : "/proc/self/exe";

    public CaptureSupervisor(AgentConfig config, Action<string> report)
    {
        _config = config;
        _report = report;
    }

    /// <summary>What one capture process did before it ended.</summary>
    private sealed class WorkerRun
    {
        public int Current = -1;                 // target in progress, -1 between targets
        public int LastFinished = -1;
        public readonly Dictionary<int, string> Results = new();
        public readonly Dictionary<int, string> Where = new();
        public bool Done;
        public bool Stalled;
        public int ExitCode;
    }

    /// <summary>Runs the chain to its end: whether a target holds a complete dump, and whether any holds something.</summary>
    public (bool Complete, bool Saved) Run()
    {
        int count = _config.Targets.Count;
        if (count == 0) throw new IOException("no dump target configured (target = ... in the config)");
        var states = new string?[count];
        var where = new string?[count];
        int next = 0;
        bool ended = false;
        while (next < count && !ended)
        {
            long oomBefore = OomKills();
            var run = Watch(["--first", next.ToString(System.Globalization.CultureInfo.InvariantCulture)], next);
            foreach (var (i, s) in run.Results) states[i] = s;
            foreach (var (i, w) in run.Where) where[i] = w;
            int lastResult = run.LastFinished;
            if (run.Done || (lastResult >= 0 && states[lastResult] == "complete")) { ended = run.Done; break; }
            string why = Why(run, oomBefore);
            Libc.Sync();
            if (run.Current < 0 && lastResult >= 0)
            {
                // It died between targets: nothing was lost, the next one starts afresh.
                _report($"capture-agent: error: the capture process {why} after target {lastResult + 1}");
                next = lastResult + 1;
                continue;
            }
            // The target it was on (or was about to start) counts as failed; the chain goes on.
            int lost = run.Current >= 0 ? run.Current : next;
            states[lost] = where[lost] is null ? "failed" : "incomplete";
            _report($"capture-agent: error: target {lost + 1}/{count} ({_config.Targets[lost]}): the capture process {why}" +
                    (where[lost] is { } kept ? $"; what it wrote stays in {kept}" : ""));
            next = lost + 1;
            if (next < count) _report("capture-agent: trying the next target");
        }
        int last = Array.FindLastIndex(states, s => s is not null);
        bool complete = last >= 0 && states[last] == "complete";
        if (!ended && _config.PostHooks.Count > 0)
            RunPostHooks(last >= 0 ? states[last]! : "failed", last >= 0 ? where[last] : null);
        return (complete, states.Any(st => st is "complete" or "incomplete"));
    }

    private void RunPostHooks(string status, string? where)
    {
        var env = new Dictionary<string, string>();
        if (where is not null) env["CAPTURE_AGENT_DUMP"] = where;
        Watch(["--post-hooks", status], -1, env);
    }

    /// <summary>Starts one capture process and follows it to its end, killing it when it falls silent.</summary>
    private WorkerRun Watch(string[] args, int first, Dictionary<string, string>? env = null)
    {
        var run = new WorkerRun();
        var psi = new ProcessStartInfo(WorkerPath) { UseShellExecute = false, RedirectStandardOutput = true };
        psi.ArgumentList.Add(CaptureWorker.Command);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var worker = Process.Start(psi) ?? throw new IOException($"cannot start {WorkerPath}");
        // The capture, not PID 1, is what the out-of-memory killer should pick.
        TryWrite($"/proc/{worker.Id}/oom_score_adj", "1000");
        var silence = Stopwatch.StartNew();
        var allowance = Allowance(first >= 0 ? "start" : "hooks");
        var line = worker.StandardOutput.ReadLineAsync();
        while (true)
        {
            ReapOrphans(worker.Id);
            if (line.Wait(500))
            {
                if (line.Result is null) break;   // the process closed its end: it is ending
                allowance = Follow(run, line.Result);
                silence.Restart();
                line = worker.StandardOutput.ReadLineAsync();
                continue;
            }
            if (worker.HasExited) break;
            if (silence.Elapsed > allowance)
            {
                run.Stalled = true;
                _report($"capture-agent: the capture process made no progress for {(int)allowance.TotalSeconds} s: killing it");
                worker.Kill();
                break;
            }
        }
        // A process stuck in the kernel (I/O to a dead NFS server) dies only when the I/O returns:
        // PID 1 does not wait for that forever.
        if (worker.WaitForExit(TimeSpan.FromSeconds(60))) run.ExitCode = worker.ExitCode;
        else
        {
            run.ExitCode = 128 + Libc.SIGKILL;
            _report("capture-agent: the capture process does not end (stuck in the kernel): going on without it");
        }
        ReapOrphans(worker.HasExited ? -1 : worker.Id);
        return run;
    }

    /// <summary>Takes in one line of the capture process; returns how long it may now stay silent.</summary>
    private TimeSpan Follow(WorkerRun run, string line)
    {
        var parts = line.Split(' ', 3);
        int index = parts.Length > 1 && int.TryParse(parts[1], out int i) && i >= 0 && i < _config.Targets.Count ? i : -1;
        switch (parts[0])
        {
            case "target" when index >= 0:
                run.Current = index;
                return Allowance("target");
            case "where" when index >= 0 && parts.Length == 3:
                run.Where[index] = parts[2];
                break;
            case "result" when index >= 0 && parts.Length == 3:
                run.Results[index] = parts[2];
                run.LastFinished = index;
                run.Current = -1;
                return Allowance("hooks");
            case "peak" when parts.Length == 2 && long.TryParse(parts[1], out long kib):
                WorkerPeakKiB = Math.Max(WorkerPeakKiB, kib);
                break;
            case "done":
                run.Done = true;
                break;
        }
        return Allowance("work");
    }

    /// <summary>
    /// How long each phase may go without a line: finding a device and bringing up the network
    /// have their own timeouts, hooks theirs; dump work reports at least once a second.
    /// </summary>
    private TimeSpan Allowance(string phase)
    {
        var stall = _config.StallTimeout;
        var hooks = Hooks.Timeout * (_config.PreHooks.Count + _config.PostHooks.Count);
        return phase switch
        {
            "start" => stall + hooks,
            "target" => stall + _config.DeviceTimeout + 2 * _config.NetworkTimeout,
            "hooks" => stall + hooks,
            _ => stall,
        };
    }

    private static string Why(WorkerRun run, long oomBefore)
    {
        if (run.Stalled) return "made no progress and was killed";
        if (run.ExitCode > 128)
        {
            int signal = run.ExitCode - 128;
            if (signal == Libc.SIGKILL && OomKills() > oomBefore) return "was killed by the kernel's out-of-memory killer";
            return $"was killed by signal {signal} ({SignalName(signal)})";
        }
        return $"ended unexpectedly (exit status {run.ExitCode})";
    }

    private static string SignalName(int signal) => signal switch
    {
        4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE", 9 => "SIGKILL", 11 => "SIGSEGV",
        13 => "SIGPIPE", 15 => "SIGTERM", 31 => "SIGSYS",
        _ => "signal " + signal,
    };

    /// <summary>The kernel's count of out-of-memory kills (/proc/vmstat oom_kill), or -1.</summary>
    private static long OomKills()
    {
        try
        {
            foreach (var l in File.ReadLines("/proc/vmstat"))
                if (l.StartsWith("oom_kill ", StringComparison.Ordinal) && long.TryParse(l[9..], out long n)) return n;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return -1;
    }

    /// <summary>
    /// Reaps every ended child except the capture process (whose status the runtime collects):
    /// processes orphaned by a dead capture (ssh, hooks) are PID 1's to reap.
    /// </summary>
    private static void ReapOrphans(int keep)
    {
        for (int n = 0; n < 64; n++)
        {
            int pid = Libc.PeekEndedChild();
            if (pid <= 0 || pid == keep) return;
            Libc.Reap(pid);
        }
    }

    private static void TryWrite(string path, string text)
    {
        try { File.WriteAllText(path, text); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}

using System.Text;
using CaptureAgent.Config;
using CaptureAgent.Rehearsal;
using CaptureAgent.Common;
using CaptureAgent.Targets;
using CaptureAgent.Sizing;

namespace CaptureAgent.Rehearsal;

public sealed record MeasureOptions
{
    public required string Kernel { get; init; }
    public required string Initrd { get; init; }
    /// <summary>The capture-agent for the first kernel's /init (default: this binary; a dynamic one brings its loader and libraries).</summary>
    public string? Agent { get; init; }
    public long From { get; init; } = 256 * SizeText.MiB;
    public long DownTo { get; init; } = 64 * SizeText.MiB;
    public long Step { get; init; } = 16 * SizeText.MiB;
    /// <summary>After the first failure, the gap to the last working size is halved down to this.</summary>
    public long Resolution { get; init; } = 4 * SizeText.MiB;
    public long GuestMemory { get; init; } = 1L << 30;
    public int TimeoutSeconds { get; init; } = 900;
    public string? WorkDir { get; init; }
    public string Qemu { get; init; } = "qemu-system-x86_64";
}

/// <summary>One boot at one reservation size.</summary>
public sealed record MeasureAttempt(long Crashkernel, bool Works, string Outcome, double Seconds, string? MemoryAtInit, long? AgentPeakKiB, string ConsoleLog);

public sealed record MeasureResult(IReadOnlyList<MeasureAttempt> Attempts, long? SmallestWorking, long? Recommended, bool DiskTarget, IReadOnlyList<string> Notes);

/// <summary>
/// Finds the smallest crashkernel= that still captures, by doing it: QEMU (TCG) boots the capture
/// kernel as a first kernel with crashkernel=SIZE and a tiny initramfs whose /init is the agent in
/// the "measure-guest" role (arm the capture kernel + capture initramfs with kexec_file_load, then
/// crash through sysrq); the capture kernel then runs the real capture initramfs. A size works when
/// the agent reports a complete dump on the console. Sizes go down by a step until one fails, then
/// the gap to the last working size is halved down to the resolution (4 MiB).
/// The dump target is emulated as a virtio disk with the configured LABEL=/UUID=, so the capture
/// initramfs must contain virtio_pci and virtio_blk; without a LABEL/UUID target (or mkfs.ext4) the
/// run only shows whether the capture kernel gets the agent started.
/// </summary>
public static class CrashkernelMeasure
{
    private const string CompleteMarker = "complete dump saved";

    public static MeasureResult Run(MeasureOptions o, Action<string> log)
    {
        var notes = new List<string>();
        foreach (var (what, path) in new[] { ("capture kernel", o.Kernel), ("capture initramfs", o.Initrd) })
            if (!File.Exists(path)) throw new IOException($"{what} {path} does not exist");
        if (CrashVm.FindOnPath(o.Qemu) is null) throw new IOException($"{o.Qemu} not found: install qemu-system-x86 to measure");
        if (o.Step <= 0 || o.DownTo <= 0 || o.From < o.DownTo) throw new ArgumentException("need --from >= --down-to > 0 and --step > 0");
        string agent = o.Agent ?? Environment.ProcessPath ?? throw new IOException("cannot tell where this binary is; pass --agent");

        string work = o.WorkDir ?? Directory.CreateTempSubdirectory("capture-agent-measure-").FullName;
        Directory.CreateDirectory(work);
        var facts = InitramfsScan.Scan(o.Initrd);
        // The dump target as the self-test emulates it: its filesystem and identity on a scratch disk.
        var config = facts.AgentConfig is null ? null : AgentConfig.Parse(facts.AgentConfig, "capture initramfs config");
        var target = config?.Targets.FirstOrDefault(t => t.Type == TargetType.Local);
        string? disk = null;
        ScratchDiskPlan? plan = null;
        if (target is not null)
        {
            try { plan = ScratchDisk.Plan(target, config!.FilesystemType, null, ScratchDisk.ImageModules(facts), null, notes); }
            catch (ArgumentException e) { notes.Add(e.Message); }
        }
        if (plan is not null && CrashVm.FindOnPath(ScratchDisk.MkfsCommand(plan, "").Tool) is not null)
        {
            disk = Path.Combine(work, "target.img");
            ScratchDisk.Create(plan, disk, o.GuestMemory + 512 * SizeText.MiB, _ => { });
            notes.Add($"dump target {target!.Text} emulated as a {SizeText.Mib(o.GuestMemory + 512 * SizeText.MiB)} {plan.Controller} disk ({plan.FilesystemType})");
        }
        else
            notes.Add("no local target the VM can reproduce in the initramfs config (or no mkfs for it): a size counts as working when the agent starts and ends without running out of memory");

        IReadOnlyList<string> diskArguments = disk is null ? [] : ScratchDisk.QemuArguments(plan!, disk);
        string first = Path.Combine(work, "first.cpio");
        CrashVm.WriteFirstInitramfs(first, agent, o.Kernel, o.Initrd);
        var attempts = new List<MeasureAttempt>();
        MeasureAttempt Try(long size)
        {
            log($"measure: booting with crashkernel={SizeText.Format(size)} (-m {o.GuestMemory >> 20}, TCG)...");
            var a = Boot(o, first, diskArguments, size, work);
            if (!a.Works && FirstKernelFailed(a.Outcome))
            {
                // The VM's first kernel fell over before arming (TCG hiccups happen): that says nothing about the size.
                log($"measure: crashkernel={SizeText.Format(size)}: {a.Outcome}; booting once more");
                a = Boot(o, first, diskArguments, size, work);
            }
            attempts.Add(a);
            log($"measure: crashkernel={SizeText.Format(size)}: {(a.Works ? "works" : "fails")}: {a.Outcome} ({a.Seconds:0} s)");
            return a;
        }
        long? failed = null;
        for (long size = o.From; size >= o.DownTo; size -= o.Step)
            if (!Try(size).Works) { failed = size; break; }
        // Between the last size that worked and the first that failed, halve the gap down to the resolution.
        long? smallest = attempts.Where(a => a.Works).Select(a => (long?)a.Crashkernel).Min();
        while (failed is long f && smallest is long w && w - f > o.Resolution)
        {
            long mid = SizeText.RoundUp(f + (w - f) / 2, o.Resolution);
            if (mid >= w) mid = w - o.Resolution;
            if (Try(mid).Works) smallest = mid;
            else failed = mid;
        }
        // The floor holds for this RAM size and this TCG guest; a margin covers real devices and more RAM.
        long? recommended = smallest is long s ? CrashkernelEstimate.WithMargin(s) : null;
        return new MeasureResult(attempts, smallest, recommended, disk is not null, notes);
    }

    private static MeasureAttempt Boot(MeasureOptions o, string first, IReadOnlyList<string> diskArguments, long size, string work)
    {
        var r = CrashVm.Boot(new VmBootOptions
        {
            Kernel = o.Kernel, FirstInitramfs = first, Crashkernel = size, GuestMemory = o.GuestMemory,
            DiskArguments = diskArguments,
            TimeoutSeconds = o.TimeoutSeconds, Qemu = o.Qemu,
            ConsoleLog = Path.Combine(work, $"console-{SizeText.Format(size)}.log"),
        });
        var (works, outcome) = Classify(r.Console, diskArguments.Count > 0, r.TimedOut, r.SilentSeconds);
        return new MeasureAttempt(size, works, outcome, r.Seconds, Find(r.Console, "capture-agent: MemTotal"), PeakKiB(r.Console), r.ConsoleLog);
    }

    /// <summary>Outcomes in which the VM's first kernel never got to the crash: no verdict on the reservation size.</summary>
    private static bool FirstKernelFailed(string outcome) =>
        outcome.StartsWith("the first kernel", StringComparison.Ordinal) || outcome.StartsWith("timed out before the first kernel", StringComparison.Ordinal);

    /// <summary>
    /// Reads a console log: did the capture kernel get a complete dump saved, and if not, where did
    /// it stop? <paramref name="silentSeconds"/> is non-zero when the boot was stopped as hung.
    /// </summary>
    public static (bool Works, string Outcome) Classify(string console, bool diskTarget, bool timedOut, int silentSeconds = 0)
    {
        // Our own line can be garbled on a busy serial console (kernel messages interleave with it);
        // the kernel's panic line is written whole, so it counts as the crash too.
        int crash = console.IndexOf("measure-guest: crashing", StringComparison.Ordinal);
        if (crash < 0) crash = console.IndexOf(RehearsalPanic, StringComparison.Ordinal);
        string hung = $"hung (no console output for {silentSeconds} s)";
        if (console.Contains("measure-guest: load refused", StringComparison.Ordinal))
            return (false, "kexec_file_load refused the capture kernel: " + (Find(console, "measure-guest: load refused") ?? ""));
        if (crash < 0)
            return (false, silentSeconds > 0 ? $"the first kernel {hung} before it armed the capture kernel"
                : timedOut ? "timed out before the first kernel armed the capture kernel" : "the first kernel never armed the capture kernel");
        string after = console[crash..];
        bool agentStarted = after.Contains(CrashVm.AgentStartedMarker, StringComparison.Ordinal);
        if (after.Contains(CompleteMarker, StringComparison.Ordinal)) return (true, "complete dump saved");
        if (after.Contains("Out of memory", StringComparison.Ordinal) || after.Contains("deadlocked on memory", StringComparison.Ordinal)
            || after.Contains("oom-kill", StringComparison.Ordinal) || after.Contains("Initramfs unpacking failed", StringComparison.Ordinal))
            return (false, agentStarted ? "out of memory while the agent ran" : "out of memory before /init (capture kernel boot)");
        if (CapturePanic(after) is string panic) return (false, "capture kernel panic: " + panic);
        if (!agentStarted)
            return (false, silentSeconds > 0 ? $"the capture kernel {hung} before the agent started"
                : timedOut ? "timed out before the agent started in the capture kernel" : "the capture kernel never started the agent");
        if (!diskTarget && CrashVm.Ended(after)) return (true, "agent ran to its end (no emulated target: boot-level evidence only)");
        if (timedOut) return (false, "timed out while the agent ran");
        return (false, Find(after, "capture failed") ?? Find(after, "capture incomplete") ?? "no complete dump");
    }

    /// <summary>What the first kernel's panic says: the rehearsal's own crash, not a failure.</summary>
    private const string RehearsalPanic = "sysrq triggered crash";

    /// <summary>The first panic line after the crash that is not the rehearsal's own (the first kernel panics too, by design).</summary>
    private static string? CapturePanic(string after)
    {
        for (int i = after.IndexOf("Kernel panic", StringComparison.Ordinal); i >= 0; i = after.IndexOf("Kernel panic", i + 1, StringComparison.Ordinal))
        {
            string line = LineFrom(after, i);
            if (!line.Contains(RehearsalPanic, StringComparison.Ordinal)) return line;
        }
        return null;
    }

    private static string? Find(string text, string marker)
    {
        int i = text.IndexOf(marker, StringComparison.Ordinal);
        return i < 0 ? null : LineFrom(text, i);
    }

    /// <summary>The text from <paramref name="start"/> to the end of its line.</summary>
    private static string LineFrom(string text, int start)
    {
        int end = text.IndexOf('\n', start);
        return (end < 0 ? text[start..] : text[start..end]).Trim();
    }

    public static long? PeakKiB(string console)
    {
        var line = Find(console, "capture-agent: peak memory ");
        if (line is null) return null;
        var parts = line.Split(' ');
        return parts.Length >= 4 && long.TryParse(parts[3], out long kib) ? kib : null;
    }
}

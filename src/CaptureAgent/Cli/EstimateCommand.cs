using System.Globalization;
using System.Text;
using CaptureAgent.Sizing;
using CaptureAgent.Common;
using CaptureAgent.Rehearsal;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent estimate`: how much crashkernel= this capture kernel and initramfs need, computed or measured.</summary>
public static class EstimateCommand
{
    public const string Usage = """
        usage: capture-agent estimate [--kernel VMLINUZ] [--initrd IMAGE] [--memory-size BYTES] [--json]
               capture-agent estimate --measure [--kernel K] [--initrd I] [--agent BINARY]
                                      [--from 256M] [--down-to 64M] [--step 16M] [--guest-memory 1G] [--timeout SECONDS] [--work DIR]
          --kernel        capture kernel (default /boot/vmlinuz-RUNNING_RELEASE)
          --initrd        capture initramfs (default /var/lib/capture-agent/initramfs-RUNNING_RELEASE.img)
          --memory-size   RAM of the machine whose crash is captured (default: this machine's System RAM)
          --measure       boot the pair in QEMU (TCG) at decreasing crashkernel= sizes until a capture fails
          --agent         the VM first kernel's /init (default: this binary; a dynamic one brings its libraries)
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Estimate);

    private static int Estimate(string[] args)
    {
        string release = "unknown";
        try { release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim(); } catch (IOException) { }
        string kernel = $"/boot/vmlinuz-{release}";
        string? initrd = $"/var/lib/capture-agent/initramfs-{release}.img";
        bool initrdGiven = false, json = false, measure = false;
        long? memory = null;
        string? agent = null, work = null;
        long from = 256 * SizeText.MiB, downTo = 64 * SizeText.MiB, step = 16 * SizeText.MiB, guest = 1L << 30;
        int timeout = 900;
        var cli = new ArgReader("estimate", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--kernel": kernel = cli.Value(); break;
                case "--initrd": initrd = cli.Value(); initrdGiven = true; break;
                case "--json": json = true; break;
                case "--measure": measure = true; break;
                case "--agent": agent = cli.Value(); break;
                case "--work": work = cli.Value(); break;
                case "--memory-size": memory = Size(cli); break;
                case "--from": from = Size(cli); break;
                case "--down-to": downTo = Size(cli); break;
                case "--step": step = Size(cli); break;
                case "--guest-memory": guest = Size(cli); break;
                case "--timeout": timeout = cli.Int(1, int.MaxValue, "seconds"); break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        if (!File.Exists(kernel))
        {
            Log.Error($"estimate: capture kernel {kernel} does not exist (--kernel)");
            return ExitCodes.Failed;
        }
        if (initrd is not null && !File.Exists(initrd))
        {
            if (initrdGiven || measure)
            {
                Log.Error($"estimate: capture initramfs {initrd} does not exist (build it with `capture-agent initramfs build`)");
                return ExitCodes.Failed;
            }
            Log.Warn($"{initrd} does not exist yet: estimating without the capture initramfs (build it with `capture-agent initramfs build`)");
            initrd = null;
        }
        try
        {
            return measure
                ? Measure(new MeasureOptions { Kernel = kernel, Initrd = initrd!, Agent = agent, From = from, DownTo = downTo, Step = step, GuestMemory = guest, TimeoutSeconds = timeout, WorkDir = work }, json)
                : Compute(kernel, initrd, memory, json);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            Log.Error($"estimate: {e.Message}");
            return ExitCodes.Failed;
        }
    }

    /// <summary>The option's value as a size: 256M, 1G or a byte count.</summary>
    private static long Size(ArgReader cli) =>
        SizeText.Parse(cli.Value()) is long v and > 0 ? v : throw cli.Error($"{cli.Option} needs a size like 256M, 1G or a byte count");

    private static int Compute(string kernel, string? initrd, long? memory, bool json)
    {
        var (ram, ranges) = CrashkernelEstimate.SystemRam();
        long mem = memory ?? ram;
        var est = CrashkernelEstimate.Compute(kernel, initrd, mem, ranges);
        var reservation = CrashkernelEstimate.ReadReservation();
        bool enough = reservation.Bytes >= est.ReserveBytes;
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteComputed(stdout, est, reservation.Bytes, enough));
        }
        else
        {
            Console.Out.WriteLine($"crashkernel estimate for {kernel}{(initrd is null ? "" : " + " + initrd)} (crashed machine RAM {SizeText.Mib(mem)})");
            foreach (var t in est.Terms) Console.Out.WriteLine($"  {t.Name,-24} {SizeText.Mib(t.Bytes),12}  {PhaseName(t.Phase),-7}  {t.Why}");
            Console.Out.WriteLine($"  {"boot phase",-24} {SizeText.Mib(est.BootBytes),12}  while the initramfs unpacks");
            Console.Out.WriteLine($"  {"capture phase",-24} {SizeText.Mib(est.CaptureBytes),12}  while the agent saves the dump");
            Console.Out.WriteLine($"  {"larger + memmap",-24} {SizeText.Mib(est.SumBytes),12}");
            Console.Out.WriteLine($"estimated floor: crashkernel={est.Recommended} (rounded up to {CrashkernelEstimate.Step >> 20} MiB; `estimate --measure` finds the real floor)");
            Console.Out.WriteLine($"to reserve: crashkernel={est.Reserve} (the floor + max(16 MiB, 20%) for real hardware and kernel updates, in 16 MiB steps)");
            foreach (var n in est.Notes) Console.Out.WriteLine($"note: {n}");
            Console.Out.WriteLine(ReservationLine(reservation, est.ReserveBytes));
        }
        return ExitCodes.Ok;
    }

    private static string PhaseName(EstimatePhase p) => p switch
    {
        EstimatePhase.Boot => "boot",
        EstimatePhase.Capture => "capture",
        _ => "both",
    };

    /// <summary>One line on the reservation in place now and whether it covers the recommendation.</summary>
    public static string ReservationLine(CrashReservation r, long recommended)
    {
        string ranges = r.IomemRanges.Count == 0 ? "no \"Crash kernel\" in /proc/iomem"
            : string.Join(", ", r.IomemRanges.Select(x => x.End > x.Start ? $"{x.Start:x}-{x.End:x}" : "(hidden: not root)"));
        if (r.Bytes == 0) return $"reserved now: nothing ({ranges}); add crashkernel={SizeText.Format(recommended)} with `capture-agent crashkernel --size auto --apply` and reboot";
        return r.Bytes >= recommended
            ? $"reserved now: {SizeText.Mib(r.Bytes)} ({ranges}): enough"
            : $"reserved now: {SizeText.Mib(r.Bytes)} ({ranges}): NOT enough, {SizeText.Mib(recommended - r.Bytes)} short; raise crashkernel= to {SizeText.Format(recommended)}";
    }

    private static int Measure(MeasureOptions o, bool json)
    {
        var result = CrashkernelMeasure.Run(o, m => Log.Info(m));
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteMeasured(stdout, result));
        }
        else
        {
            foreach (var n in result.Notes) Console.Out.WriteLine($"note: {n}");
            foreach (var a in result.Attempts)
                Console.Out.WriteLine($"  crashkernel={SizeText.Format(a.Crashkernel),-6} {(a.Works ? "works" : "FAILS"),-6} {a.Outcome}" +
                                      (a.AgentPeakKiB is long k ? $"; agent peak {k} KiB" : "") + (a.MemoryAtInit is { } m ? $"; {m}" : "") + (a.Works ? "" : $"; console: {a.ConsoleLog}"));
            Console.Out.WriteLine(result.SmallestWorking is long s
                ? $"smallest that worked: crashkernel={SizeText.Format(s)}; recommended with margin: crashkernel={SizeText.Format(result.Recommended!.Value)}"
                : "no size worked: see the console logs named above");
        }
        return result.SmallestWorking is null ? ExitCodes.Failed : ExitCodes.Ok;
    }

    /// <summary>estimate --json (docs/json-output.md).</summary>
    internal static void WriteComputed(Stream output, CrashkernelEstimateResult est, long reservedBytes, bool enough) => JsonOutput.WriteObject(output, w =>
    {
        w.WriteStartArray("terms");
        foreach (var t in est.Terms)
        {
            w.WriteStartObject();
            w.WriteString("name", t.Name);
            w.WriteNumber("bytes", t.Bytes);
            w.WriteString("phase", PhaseName(t.Phase));
            w.WriteString("why", t.Why);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNumber("boot_bytes", est.BootBytes);
        w.WriteNumber("capture_bytes", est.CaptureBytes);
        w.WriteNumber("sum_bytes", est.SumBytes);
        w.WriteNumber("margin_bytes", est.MarginBytes);
        w.WriteNumber("recommended_bytes", est.RecommendedBytes);
        w.WriteString("crashkernel", est.Recommended);
        w.WriteNumber("reserve_bytes", est.ReserveBytes);
        w.WriteString("reserve", est.Reserve);
        w.WriteNumber("memory_bytes", est.MemoryBytes);
        w.WriteNumber("reserved_bytes", reservedBytes);
        w.WriteBoolean("enough", enough);
        w.StringArray("notes", est.Notes);
    });

    /// <summary>estimate --measure --json (docs/json-output.md).</summary>
    internal static void WriteMeasured(Stream output, MeasureResult result) => JsonOutput.WriteObject(output, w =>
    {
        w.WriteStartArray("attempts");
        foreach (var a in result.Attempts)
        {
            w.WriteStartObject();
            w.WriteNumber("crashkernel_bytes", a.Crashkernel);
            w.WriteBoolean("works", a.Works);
            w.WriteString("outcome", a.Outcome);
            w.WriteNumber("seconds", Math.Round(a.Seconds, 1));
            w.StringOrNull("memory_at_init", a.MemoryAtInit);
            w.NumberOrNull("agent_peak_kib", a.AgentPeakKiB);
            w.StringOrNull("console", a.ConsoleLog);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.NumberOrNull("smallest_working_bytes", result.SmallestWorking);
        w.StringOrNull("recommended", result.Recommended is long r ? SizeText.Format(r) : null);
        w.WriteBoolean("disk_target", result.DiskTarget);
        w.StringArray("notes", result.Notes);
    });
}

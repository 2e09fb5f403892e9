using System.Globalization;
using CaptureAgent.Kexec;
using CaptureAgent.Common;

namespace CaptureAgent.Sizing;

/// <summary>When an addend of the estimate is held: while the initramfs unpacks, while the agent captures, or all along.</summary>
public enum EstimatePhase { Both, Boot, Capture }

/// <summary>One addend of the estimate, with where the number comes from.</summary>
public sealed record EstimateTerm(string Name, long Bytes, string Why, EstimatePhase Phase = EstimatePhase.Both);

public sealed record CrashkernelEstimateResult(
    IReadOnlyList<EstimateTerm> Terms,
    long SumBytes,
    long MarginBytes,
    long RecommendedBytes,
    long MemoryBytes,
    IReadOnlyList<string> Notes)
{
    /// <summary>The estimated floor as a crashkernel= size, e.g. "84M".</summary>
    public string Recommended => SizeText.Format(RecommendedBytes);

    /// <summary>What to reserve: the floor with the margin real machines need (<see cref="CrashkernelEstimate.WithMargin"/>).</summary>
    public long ReserveBytes => CrashkernelEstimate.WithMargin(RecommendedBytes);
    public string Reserve => SizeText.Format(ReserveBytes);

    /// <summary>What the boot phase (the initramfs unpacking) holds at its peak, memmap aside.</summary>
    public long BootBytes => Terms.Where(t => t.Phase is EstimatePhase.Both or EstimatePhase.Boot && t.Name != MemmapTerm).Sum(t => t.Bytes);

    /// <summary>What the capture phase (the agent saving the dump) holds at its peak, memmap aside.</summary>
    public long CaptureBytes => Terms.Where(t => t.Phase is EstimatePhase.Both or EstimatePhase.Capture && t.Name != MemmapTerm).Sum(t => t.Bytes);

    internal const string MemmapTerm = "memmap";
}

/// <summary>The current reservation: /sys/kernel/kexec_crash_size and the "Crash kernel" ranges of /proc/iomem.</summary>
public sealed record CrashReservation(long SysfsBytes, IReadOnlyList<(ulong Start, ulong End)> IomemRanges)
{
    /// <summary>Without root /proc/iomem shows zeros; sysfs is then the only figure.</summary>
    public long IomemBytes => IomemRanges.Where(r => r.End > r.Start).Sum(r => (long)(r.End - r.Start + 1));
    public long Bytes => SysfsBytes > 0 ? SysfsBytes : IomemBytes;
}

/// <summary>
/// crashkernel= from the real inputs: the capture kernel's bzImage, the capture initramfs (read
/// entry by entry), the agent's measured peak and the kernel's own overhead, in two phases whose
/// larger one decides: the boot, while the kernel unpacks the initramfs (the compressed image, the
/// decompressor's workspace and the growing rootfs are all held at once), and the capture, after
/// the kernel freed its init sections and the compressed image (rootfs, modules, the agent,
/// write-back). The two runtime allowances are fitted to floors measured with `estimate --measure`
/// (Debian 6.1 and 6.12 cloud kernels, 1 and 4 GiB guests, static agent, ext4 target): the
/// estimate lands on the floor to 8 MiB above it there. Other kernels allocate differently at
/// boot (6.1 held twice the slab of 6.12 while unpacking), so `estimate --measure` remains the
/// word on a new kernel.
/// </summary>
public static class CrashkernelEstimate
{
    /// <summary>
    /// The agent's memory in the capture kernel: CaptureInit logs "capture-agent: peak memory N KiB"
    /// after every capture, and `estimate --measure` reports it per boot. Measured with the Debian 6.1
    /// and 6.12 capture kernels under QEMU at dump level 31, zstd, when the agent was one process:
    /// 14,792-14,844 KiB for a 1 GiB guest and 15,056-15,192 KiB for 4 GiB (issue 11); the engine's
    /// buffers are fixed (README "Memory is bounded"), so it hardly grows with RAM. Since PID 1
    /// supervises the capture as a child (issue 12) its own memory comes on top: the out-of-memory
    /// report of a 6.1 capture at 80M shows 10.6 MB of anonymous memory (the anon LRU less shmem),
    /// 8.4 MB of it the worker's, so about 2 MiB for PID 1 (the logged peak, 21.2 MiB, counts the
    /// shared binary twice). Without that 2 MiB the estimate sat on the 6.1 floor (80M), where a
    /// capture failed now and then. RSS includes the pages of the agent's own binary that it touched.
    /// </summary>
    public const long AgentPeakBytes = 17 * SizeText.MiB;

    /// <summary>
    /// What the capture kernel allocates while it boots and unpacks the initramfs, besides its image
    /// and the initramfs itself: slab (sysfs, the device model, dentries), kernel stacks, per-CPU
    /// areas (nr_cpus=1), page tables, early reservations. Fitted: Debian 6.1 cloud unpacking a
    /// 2.7 MB image into 6.9 MiB failed at 76M and worked at 80M, Debian 6.12 cloud failed at 72M and
    /// worked at 76M (issue 11); 14.5 MiB puts both estimates within 8 MiB above those floors.
    /// The 6.1 kernel's out-of-memory report at 76M shows 12.9 MB of slab, the 6.12 one at 72M 6.5 MB.
    /// </summary>
    public const long BootRuntimeBytes = 29 * SizeText.MiB / 2;

    /// <summary>
    /// What the capture kernel itself allocates once booted: slab, stacks, page tables, per-CPU.
    /// From the lab's Debian 6.1 probes (shared/reference/lab-notes.md §3): crashkernel=72M left
    /// 9.4 MiB free at /init with a 51.5 MiB init_size and a 1.1 MB initramfs (about 3 MiB
    /// unpacked): 72 − 9.4 − 51.5 − 1.1 − 3 ≈ 7 MiB.
    /// </summary>
    public const long KernelRuntimeBytes = 7 * SizeText.MiB;

    /// <summary>
    /// Dirty page cache and in-flight I/O while the dump is written. The agent fsyncs as it goes and
    /// dirty_ratio throttles writers relative to a small MemAvailable, so this stays small.
    /// </summary>
    public const long WritebackBytes = 4 * SizeText.MiB;

    /// <summary>
    /// What grows with the crashed machine's RAM. RHEL's `kdumpctl estimate` (kdump-utils
    /// kdumpctl:do_estimate) has no RAM term at all: kernel image + loaded module sizes +
    /// 3 × initramfs + a flat 16M "runtime reservation" (+ LUKS Argon2 memory), floored at the
    /// default table "2G-64G:256M,64G-:512M" (kdump-lib.sh:kdump_get_arch_recommend_crashkernel),
    /// whose step at 64G is where RAM enters. SUSE's `kdumptool calibrate` (calibrate.cc:runtimeSize)
    /// scales with RAM through makedumpfile: a bitmap of 1 bit per page (capped at 32 MiB) and 96 B
    /// per 128 MiB. The agent filters in fixed windows (README), so neither applies here. What does
    /// scale: the agent's table of mem_section maps (8 B per 128 MiB section, Filtering/MemMap.cs),
    /// and the ELF core header (one 56-byte program header per RAM range, held in the reservation and
    /// copied by the capture kernel's /proc/vmcore). The capture kernel maps old memory page by page
    /// (copy_oldmem_page), and its struct pages cover only the reservation: that is the memmap term.
    /// Measured: 1 and 4 GiB guests have the same floor (80M on Debian 6.1).
    /// </summary>
    public const long SectionBytes = 128 * SizeText.MiB;

    /// <summary>struct page per 4 KiB page of the capture kernel's own memory (64 B on x86_64).</summary>
    private const int StructPageBytes = 64;

    /// <summary>The recommendation is rounded up to this: the fitted phases are the margin, the step only makes a tidy size.</summary>
    public const long Step = 4 * SizeText.MiB;

    /// <summary>
    /// A floor (estimated or measured under QEMU) plus room for what the measurement does not have:
    /// real hardware's drivers and their slab, more CPUs' worth of per-CPU data before nr_cpus=1
    /// takes effect, a kernel update. max(16 MiB, 20%), in 16 MiB steps.
    /// </summary>
    public static long WithMargin(long floor) => SizeText.RoundUp(floor + Math.Max(16 * SizeText.MiB, floor / 5), 16 * SizeText.MiB);

    public static CrashkernelEstimateResult Compute(string kernel, string? initrd, long memoryBytes, int ramRanges = 8)
    {
        var terms = new List<EstimateTerm>();
        var notes = new List<string>();
        long initBytes = 0;
        long? initSize = KexecLoader.BzImageInitSize(kernel);
        if (initSize is long size)
            terms.Add(new("kernel image", size, $"bzImage setup header init_size of {kernel}: the kernel decompressed, with bss and its decompression room"));
        else
        {
            long guess = new FileInfo(kernel).Length * 4;
            terms.Add(new("kernel image", guess, $"{kernel} has no boot protocol 2.10 header: 4 x its file size"));
            notes.Add($"{kernel}: no init_size in the setup header; the kernel term is a guess");
        }

        if (initrd is not null)
        {
            var facts = InitramfsScan.Scan(initrd);
            notes.AddRange(facts.Notes);
            initBytes = facts.InitBytes;
            terms.Add(new("initramfs image", facts.CompressedBytes, $"{initrd} as loaded into the reservation ({facts.Compression}); freed after unpacking", EstimatePhase.Boot));
            terms.Add(new("initramfs unpacked", facts.UnpackedBytes, $"{facts.Entries} entries in rootfs: file data in whole pages + ~1 KiB inode/dentry each (the agent /init is {SizeText.Mib(facts.InitBytes)})"));
            if (facts.DecompressorBytes > 0)
                terms.Add(new("initramfs decompressor", facts.DecompressorBytes, $"{facts.Compression} window the kernel allocates while unpacking", EstimatePhase.Boot));
            long modules = facts.Modules.Sum(m => m.ElfBytes);
            var largest = facts.Modules.OrderByDescending(m => m.ElfBytes).Take(3).Select(m => $"{Path.GetFileName(m.Path)} {SizeText.Mib(m.ElfBytes)}");
            terms.Add(new("kernel modules", modules, facts.Modules.Count == 0
                ? "no modules in the initramfs"
                : $"{facts.Modules.Count} modules, decompressed ELF (the kernel reads each whole to load it); largest: {string.Join(", ", largest)}", EstimatePhase.Capture));
        }
        else notes.Add("no capture initramfs given: its image, unpacked files and modules are not counted");

        terms.Add(new("boot runtime", BootRuntimeBytes, "slab, stacks, per-CPU, page tables, early reservations while the initramfs unpacks: fitted to Debian 6.1 and 6.12 floors", EstimatePhase.Boot));
        // RSS counts the agent's mapped binary, whose pages already sit in rootfs (counted above).
        long overlap = Math.Min(initBytes, AgentPeakBytes / 2);
        terms.Add(new("capture agent", AgentPeakBytes - overlap, "measured peak RSS (VmHWM) of the capture worker in the capture kernel, 14.4 MiB (1 GiB guest) to 14.8 MiB (4 GiB) at -d 31, and about 2 MiB of PID 1 supervising it" +
            (overlap > 0 ? $", less {SizeText.Mib(overlap)} of its own binary already counted in rootfs" : ""), EstimatePhase.Capture));
        terms.Add(new("kernel runtime", KernelRuntimeBytes, "slab, stacks, page tables, per-CPU (nr_cpus=1) once booted: lab probes of Debian 6.1 at 72M", EstimatePhase.Capture));
        terms.Add(new("write-back", WritebackBytes, "dirty page cache and in-flight I/O while writing the dump", EstimatePhase.Capture));
        long sections = (memoryBytes + SectionBytes - 1) / SectionBytes;
        long ramTerm = sections * 8 + 2L * ramRanges * 56;
        terms.Add(new("crashed RAM", ramTerm, $"{SizeText.Mib(memoryBytes)} of RAM: 8 B per 128 MiB section (agent) + ELF headers for {ramRanges} ranges (x2: reservation and /proc/vmcore)", EstimatePhase.Capture));

        var partial = new CrashkernelEstimateResult(terms, 0, 0, 0, memoryBytes, notes);
        long peak = Math.Max(partial.BootBytes, partial.CaptureBytes);
        // The capture kernel's own struct pages cover the whole reservation: solve total = peak + total/64.
        long memmap = (long)Math.Ceiling(peak / (1.0 - StructPageBytes / 4096.0)) - peak;
        terms.Add(new(CrashkernelEstimateResult.MemmapTerm, memmap, "struct page (64 B) for every 4 KiB of the reservation itself"));
        long sum = peak + memmap;
        long recommended = SizeText.RoundUp(sum, Step);
        return new CrashkernelEstimateResult(terms, sum, recommended - sum, recommended, memoryBytes, notes);
    }

    /// <summary>Total System RAM: the sum of /proc/iomem "System RAM" ranges (as kdump-utils does), else MemTotal.</summary>
    public static (long Bytes, int Ranges) SystemRam(string procRoot = "/proc")
    {
        long total = 0;
        int ranges = 0;
        foreach (var (start, end, name, depth) in Iomem(procRoot))
        {
            if (depth != 0 || name != "System RAM" || end <= start) continue;
            total += (long)(end - start + 1);
            ranges++;
        }
        if (total > 0) return (total, ranges);
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(procRoot, "meminfo")))
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)
                    && long.TryParse(line[9..].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kib))
                    return (kib * 1024, Math.Max(ranges, 8));
        }
        catch (IOException) { }
        return (0, 8);
    }

    public static CrashReservation ReadReservation(string sysRoot = "/sys", string procRoot = "/proc")
    {
        long sysfs = 0;
        try { long.TryParse(File.ReadAllText(Path.Combine(sysRoot, "kernel/kexec_crash_size")).Trim(), out sysfs); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        var ranges = Iomem(procRoot).Where(r => r.Name == "Crash kernel").Select(r => (r.Start, r.End)).ToList();
        return new CrashReservation(sysfs, ranges);
    }

    /// <summary>/proc/iomem lines: "  start-end : name", depth = leading spaces / 2.</summary>
    public static IEnumerable<(ulong Start, ulong End, string Name, int Depth)> Iomem(string procRoot = "/proc")
    {
        string[] lines;
        try { lines = File.ReadAllLines(Path.Combine(procRoot, "iomem")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { yield break; }
        foreach (var line in lines)
        {
            int colon = line.IndexOf(" : ", StringComparison.Ordinal);
            if (colon < 0) continue;
            int indent = line.Length - line.TrimStart().Length;
            var range = line[..colon].Trim().Split('-');
            if (range.Length != 2
                || !ulong.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
                || !ulong.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong end)) continue;
            yield return (start, end, line[(colon + 3)..].Trim(), indent / 2);
        }
    }
}

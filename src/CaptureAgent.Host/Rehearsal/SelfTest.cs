using CaptureAgent.Config;
using CaptureAgent.Host;
using CaptureAgent.Report;
using CaptureAgent.Sizing;
using CaptureAgent.Targets;
using CaptureAgent.Common;
using CaptureAgent.Dump;

namespace CaptureAgent.Rehearsal;

public sealed record SelfTestOptions
{
    /// <summary>The installed system to test (a scratch root in tests).</summary>
    public string Root { get; init; } = "/";
    /// <summary>The kernel release to test; null: the one `load --auto` arms (pinned or running).</summary>
    public string? Release { get; init; }
    /// <summary>crashkernel= of the VM; null: this host's reservation, else its crashkernel= size, else 256M.</summary>
    public long? Crashkernel { get; init; }
    /// <summary>VM memory; null: 1 GiB, or four times the reservation when that is more.</summary>
    public long? GuestMemory { get; init; }
    public string? WorkDir { get; init; }
    public bool Keep { get; init; }
    public int TimeoutSeconds { get; init; } = 900;
    public string Qemu { get; init; } = "qemu-system-x86_64";
}

public sealed record SelfTestResult
{
    public bool Passed { get; init; }
    public required string Summary { get; init; }
    public required string Release { get; init; }
    public required string Kernel { get; init; }
    public required string Initramfs { get; init; }
    public long Crashkernel { get; init; }
    public long GuestMemory { get; init; }
    public string? Target { get; init; }
    public string? ScratchFilesystem { get; init; }
    public string? Outcome { get; init; }
    public double Seconds { get; init; }
    public long? AgentPeakKiB { get; init; }
    /// <summary>The dump directory as found on the scratch disk (path inside its filesystem).</summary>
    public string? DumpDirectory { get; init; }
    public string? Verify { get; init; }
    /// <summary>How the dump was taken off the scratch disk: "debugfs", "loop mount", or null (the capture kernel's word only).</summary>
    public string? ReadBack { get; init; }
    public string? PanicMessage { get; init; }
    public string? ConsoleLog { get; init; }
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// `capture-agent selftest`: the host's real capture setup, rehearsed without crashing the host.
/// The kernel and capture initramfs `load --auto` would arm (rebuilt first when stale, as the
/// service does) boot in QEMU with this host's reservation size; the first kernel arms them and
/// crashes; the capture initramfs, with the config it carries, saves to a scratch disk made with
/// the first local target's filesystem type and identity. Then the dump is taken off the scratch
/// disk and checked the way `verify` does, and its log must hold the rehearsal's panic.
/// </summary>
public static class SelfTest
{
    private const string ExpectedPanic = "sysrq triggered crash";

    public static SelfTestResult Run(SelfTestOptions o, Action<string> log)
    {
        var host = new HostLayout(o.Root);
        var notes = new List<string>();
        string release = o.Release ?? CaptureStore.Choose(host, RunningReleaseOrThrow()).Release;
        if (o.Release is null) log($"selftest: testing {release}, the kernel load --auto arms");
        string kernel = host.KernelImage(release) ?? throw new IOException($"no kernel image for {release} ({string.Join(", ", host.KernelImageCandidates(release))})");

        // What the service would arm: the stored image, rebuilt first if its inputs changed.
        var store = CaptureStore.EnsureCurrent(host, release, m => log("selftest: " + m));
        if (!store.Usable) throw new IOException($"no capture initramfs for {release}: {store.Error}");
        if (store.Error is not null) notes.Add($"the rebuild failed ({store.Error}): the previous image is tested, and is what load --auto would arm");
        string initramfs = store.ImagePath;
        if (CrashVm.FindOnPath(o.Qemu) is null) throw new IOException($"{o.Qemu} not found: install qemu-system-x86 to run the self-test");

        var facts = InitramfsScan.Scan(initramfs);
        if (facts.AgentConfig is null) throw new IOException($"{initramfs} carries no config: the capture kernel would not know where to save (capture-agent install writes one)");
        var config = AgentConfig.Parse(facts.AgentConfig, "the capture initramfs config");
        notes.AddRange(config.Errors.Select(e => "config: " + e));
        var target = config.Targets.FirstOrDefault(t => t.Type == TargetType.Local)
            ?? throw new IOException("the config has no local filesystem target: selftest rehearses local targets only (" +
                                     string.Join(", ", config.Targets.Select(t => t.Text)) + "); try `capture-agent capture` from a rescue system for network and raw targets");
        var before = config.Targets.TakeWhile(t => t != target).ToList();
        if (before.Count > 0)
            notes.Add($"the targets before {target.Text} ({string.Join(", ", before.Select(t => t.Text))}) are tried first and fail in the VM (no network, no such device); that costs their timeouts");

        string builtinList = Path.Combine(host.ModuleDirectory(release), "modules.builtin");
        var builtIn = File.Exists(builtinList) ? BlockDeviceModules.ReadModulesBuiltin(builtinList) : null;
        var (real, device) = RealVolume(host, target, notes);
        var controller = device is null ? null : HostController(host, device, builtIn, notes);
        var disk = ScratchDisk.Plan(target, config.FilesystemType, real, ScratchDisk.ImageModules(facts), builtIn, notes, controller);

        long crashkernel = o.Crashkernel ?? Reservation(host, notes);
        long memory = o.GuestMemory ?? Math.Max(1L << 30, SizeText.RoundUp(4 * crashkernel, 256 * SizeText.MiB));
        string work = o.WorkDir ?? Directory.CreateTempSubdirectory("capture-agent-selftest-").FullName;
        Directory.CreateDirectory(work);
        string image = Path.Combine(work, "scratch.img");
        try
        {
            // Room for an unfiltered dump of the VM: the config's dump level decides what is written.
            ScratchDisk.Create(disk, image, memory + 512 * SizeText.MiB, log);
            string first = Path.Combine(work, "first.cpio");
            // load applies the config's capture command line and blacklist; platform quirks belong to this host, not the VM.
            CrashVm.WriteFirstInitramfs(first, host.AgentPath, kernel, initramfs, config.KernelCommandLineAppend, config.Blacklist);
            log($"selftest: booting {release} with crashkernel={SizeText.Format(crashkernel)} in a {memory >> 20} MiB VM (TCG), scratch disk on {disk.Controller}...");
            var boot = CrashVm.Boot(new VmBootOptions
            {
                Kernel = kernel, FirstInitramfs = first, Crashkernel = crashkernel, GuestMemory = memory,
                DiskArguments = ScratchDisk.QemuArguments(disk, image), TimeoutSeconds = o.TimeoutSeconds, Qemu = o.Qemu,
                ConsoleLog = Path.Combine(work, "console.log"),
            });
            var (works, outcome) = CrashkernelMeasure.Classify(boot.Console, diskTarget: true, boot.TimedOut, boot.SilentSeconds);
            log($"selftest: {outcome} ({boot.Seconds:0} s)");
            var result = new SelfTestResult
            {
                Summary = "", Release = release, Kernel = kernel, Initramfs = initramfs, Crashkernel = crashkernel, GuestMemory = memory,
                Target = target.Text, ScratchFilesystem = Describe(disk), Outcome = outcome, Seconds = boot.Seconds,
                AgentPeakKiB = CrashkernelMeasure.PeakKiB(boot.Console), ConsoleLog = boot.ConsoleLog, Notes = notes,
            };
            if (!works)
                return result with { Summary = $"FAILED: {outcome} (console: {boot.ConsoleLog})" };
            return CheckDump(result, disk, image, work, IdentityInUse(host, disk, real), log);
        }
        finally
        {
            if (!o.Keep)
            {
                File.Delete(image);
                File.Delete(Path.Combine(work, "first.cpio"));
            }
        }
    }

    /// <summary>Takes the dump off the scratch disk and verifies it; the panic in its log must be ours.</summary>
    private static SelfTestResult CheckDump(SelfTestResult r, ScratchDiskPlan disk, string image, string work, bool identityInUse, Action<string> log)
    {
        string root, method;
        Action cleanup;
        if (disk.FilesystemType is "ext2" or "ext3" or "ext4")
        {
            // debugfs reads the image file itself: no loop device, no mount, no root needed, and no
            // second device with the host's own UUID/LABEL for udev or the kernel to see.
            (root, method) = (Path.Combine(work, "readback"), "debugfs");
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
            Directory.CreateDirectory(root);
            string fsImage = image;
            if (disk.FilesystemOffset > 0)
            {
                fsImage = Path.Combine(work, "filesystem.img");
                ScratchDisk.Extract(image, disk.FilesystemOffset, fsImage);
            }
            string debugfs = CrashVm.FindOnPath("debugfs") ?? throw new IOException("debugfs (e2fsprogs) is not installed: it reads the dump back");
            var (rc, output) = CrashVm.RunTool(debugfs, ["-R", $"rdump / {root}", fsImage], 600);
            if (fsImage != image) File.Delete(fsImage);
            if (rc != 0) return r with { Summary = $"FAILED: the scratch disk cannot be read back: {output.Trim()}" };
            string copy = root;
            cleanup = () => Directory.Delete(copy, recursive: true);
        }
        else if (identityInUse)
            return r with
            {
                Passed = true,
                Summary = $"passed on the capture kernel's word only: the agent reported a complete dump; reading a {disk.FilesystemType} back would mean a loop device with the identity of this host's own filesystem",
            };
        else if (!Environment.IsPrivilegedProcess)
            return r with
            {
                Passed = true,
                Summary = $"passed on the capture kernel's word only: the agent reported a complete dump; reading a {disk.FilesystemType} back needs root (a loop mount)",
            };
        else
        {
            (root, method) = (Path.Combine(work, "mnt"), "loop mount");
            Directory.CreateDirectory(root);
            string options = "loop,nosuid,nodev,noexec" + (disk.FilesystemOffset > 0 ? $",offset={disk.FilesystemOffset}" : "") + (disk.FilesystemType == "xfs" ? ",nouuid" : "");
            var (rc, output) = CrashVm.RunTool(CrashVm.FindOnPath("mount") ?? "/bin/mount", ["-t", disk.FilesystemType, "-o", options, image, root], 120);
            if (rc != 0) return r with { Summary = $"FAILED: the scratch disk cannot be mounted to read the dump back: {output.Trim()}" };
            string mnt = root;
            cleanup = () => CrashVm.RunTool(CrashVm.FindOnPath("umount") ?? "/bin/umount", [mnt], 120);
        }
        try
        {
            return CheckDumpIn(r with { ReadBack = method }, root, disk, log);
        }
        finally
        {
            cleanup();
        }
    }

    private static SelfTestResult CheckDumpIn(SelfTestResult r, string root, ScratchDiskPlan disk, Action<string> log)
    {
        var dumps = Directory.EnumerateDirectories(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint })
            .Where(DumpFinder.IsDumpDirectory).ToList();
        if (dumps.Count == 0)
            return r with { Summary = "FAILED: the agent reported a dump but the scratch disk holds none" };
        string dir = dumps[0];
        string inside = "/" + Path.GetRelativePath(root, dir);
        var details = new List<string>();
        var (exit, summary) = DumpVerifier.Verify(dir, details);
        foreach (var d in details) log("selftest:   " + d);
        log($"selftest: {inside}: {summary}");
        var entry = DumpEntryReader.Read(dir);
        DumpAnalyzer.Analyze(entry);
        string? panic = entry.Panic?.PanicMessage ?? entry.Panic?.Headline;
        r = r with { DumpDirectory = inside, Verify = summary, PanicMessage = panic };
        if (exit != ExitCodes.Ok) return r with { Summary = $"FAILED: the dump on the scratch disk is not complete: {summary}" };
        if (panic is null || !panic.Contains(ExpectedPanic, StringComparison.Ordinal))
            return r with { Summary = $"FAILED: the saved log does not hold the rehearsal's panic ('{ExpectedPanic}'); it says: {panic ?? "no panic message"}" };
        return r with { Passed = true, Summary = $"passed: complete dump in {inside} on a scratch {disk.FilesystemType} disk ({summary}), panic: {panic}" };
    }

    /// <summary>Whether a block device of this host already goes by the scratch disk's UUID, LABEL, PARTUUID or PARTLABEL.</summary>
    private static bool IdentityInUse(HostLayout host, ScratchDiskPlan d, VolumeIdentity? real)
    {
        if (real is not null) return true;
        foreach (var (dir, value) in new[] { ("by-uuid", d.Uuid), ("by-label", d.Label), ("by-partuuid", d.PartUuid), ("by-partlabel", d.PartLabel) })
            if (value is not null && new FileInfo(Path.Combine(host.DevRoot, "disk", dir, value)).LinkTarget is not null) return true;
        return false;
    }

    private static string Describe(ScratchDiskPlan d) =>
        d.FilesystemType + (d.Label is null ? "" : " LABEL=" + d.Label) + (d.Uuid is null ? "" : " UUID=" + d.Uuid)
        + (d.PartUuid is null ? "" : " PARTUUID=" + d.PartUuid) + (d.PartLabel is null ? "" : " PARTLABEL=" + d.PartLabel)
        + $" on {d.Controller}";

    private static string RunningReleaseOrThrow()
    {
        string r = HostLayout.RunningRelease();
        return HostLayout.IsValidRelease(r) ? r : throw new IOException("cannot read the running kernel's release: give --kernel-version");
    }

    /// <summary>What the target device holds now on a live host (its filesystem type and identity) and its kernel name; nulls elsewhere.</summary>
    private static (VolumeIdentity? Volume, string? Device) RealVolume(HostLayout host, TargetEntry target, List<string> notes)
    {
        if (!host.IsLiveRoot || target.Device is null) return (null, null);
        try
        {
            var match = new TargetLocator(host.SysRoot, host.DevRoot) { ProbeTimeout = TimeSpan.FromSeconds(10) }.Find(target.Device, out _);
            if (match is null) notes.Add($"{target.Text} is not on this machine now: the scratch disk follows the config alone");
            return (match?.Volume, match?.Device?.Name);
        }
        catch (IOException e)
        {
            notes.Add($"{target.Text}: {e.Message}");
            return (null, null);
        }
    }

    /// <summary>
    /// The controller the real target hangs off (its sysfs driver chain), so the rehearsal runs
    /// on the driver a real crash needs rather than on whatever disk driver the image happens to
    /// carry. Null, with a note, when QEMU has no such controller.
    /// </summary>
    internal static DiskController? HostController(HostLayout host, string device, IReadOnlySet<string>? builtIn, List<string> notes)
    {
        try
        {
            var chain = BlockDeviceModules.Resolve(device, null, builtIn, host.SysRoot, host.DevRoot, host.ProcRoot);
            var controller = ScratchDisk.HostController(chain.Levels, out string? unmatched);
            if (controller is null)
                notes.Add($"the target's disk {device} is on {unmatched ?? "a controller without a driver in sysfs"}, which the VM cannot emulate: " +
                          "the scratch disk goes on a controller the image has a driver for, so the target's own driver is not rehearsed");
            else
                notes.Add($"the target's disk {device} is on {controller} ({string.Join(" <- ", chain.Levels.Select(l => l.Driver))}): the scratch disk goes there too");
            return controller;
        }
        catch (IOException e)
        {
            notes.Add($"the driver chain of {device} cannot be read ({e.Message}): the scratch disk goes on a controller the image has a driver for");
            return null;
        }
    }

    /// <summary>This host's reservation (what a real crash gets), else its crashkernel= size, else 256M.</summary>
    private static long Reservation(HostLayout host, List<string> notes)
    {
        if (host.IsLiveRoot)
        {
            var state = Kexec.CrashKernelState.Read();
            if (state.ReservedBytes > 0) return state.ReservedBytes;
            if (state.CrashKernelParameter is { } p && SizeText.Parse(p["crashkernel=".Length..].Split(',')[0]) is long s and > 0) return s;
        }
        notes.Add("no reservation on this host to copy: crashkernel=256M (give --crashkernel)");
        return 256 * SizeText.MiB;
    }
}

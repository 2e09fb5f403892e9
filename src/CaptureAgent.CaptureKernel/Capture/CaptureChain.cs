using CaptureAgent.Config;
using CaptureAgent.Dump;
using CaptureAgent.Native;
using CaptureAgent.Net;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Nfs;
using CaptureAgent.Targets.Raw;
using CaptureAgent.Targets.Ssh;
using CaptureAgent.Common;
using CaptureAgent.Formats;

namespace CaptureAgent.Capture;

/// <summary>What one target of the chain did.</summary>
public sealed record TargetOutcome(TargetEntry Target, bool Saved, bool Complete, string? Where, string Message);

/// <summary>
/// Tries the configured targets in order until one holds a complete dump: a target that cannot be
/// reached, mounted or written, or that ends with an incomplete dump, passes the turn to the next.
/// What a failed target did save stays where it is.
/// </summary>
public sealed class CaptureChain
{
    private readonly AgentConfig _config;
    private readonly string _vmcore;
    private readonly Action<string> _report;
    private readonly string _mountBase;
    private readonly string? _bootId;
    private StorageStacks? _stacks;
    private NetworkLease? _lease;
    private string? _networkError;

    /// <summary>Called with (pages done, pages to do) while a dump is written.</summary>
    public Func<Action<ulong, ulong>?>? ProgressFactory { get; init; }

    /// <summary>Called after each unit of dump work (see <see cref="DumpOptions.Heartbeat"/>).</summary>
    public Action? Heartbeat { get; init; }

    /// <summary>Told the index of each target as it is tried, the place it writes to as soon as that exists, and its outcome.</summary>
    public Action<int>? TargetStarting { get; init; }
    public Action<int, string>? TargetWhere { get; init; }
    public Action<int, TargetOutcome>? TargetFinished { get; init; }

    private int _current;

    /// <summary>Where the capture kernel's device nodes and sysfs are (tests and manual runs may differ).</summary>
    public string SysRoot { get; init; } = "/sys";
    public string DevRoot { get; init; } = "/dev";
    public string ProcRoot { get; init; } = "/proc";

    /// <summary>Assemble md arrays and activate LVM volumes that could hold a local or raw target (off: only what exists is used).</summary>
    public bool ActivateStorage { get; init; } = true;

    /// <summary>False when the system's network is already up (a manual run): the agent leaves it alone.</summary>
    public bool ConfigureNetwork { get; init; } = true;

    public CaptureChain(AgentConfig config, string vmcore, Action<string> report, string mountBase, string? bootId)
    {
        _config = config;
        _vmcore = vmcore;
        _report = report;
        _mountBase = mountBase;
        _bootId = bootId;
    }

    /// <summary>
    /// Tries the targets from <paramref name="firstTarget"/> on (a capture resumed after the one
    /// before it died starts past it; only a chain from the first target runs the pre hooks).
    /// </summary>
    public List<TargetOutcome> Run(int firstTarget = 0)
    {
        var outcomes = new List<TargetOutcome>();
        if (_config.Targets.Count == 0)
            throw new IOException("no dump target configured (target = ... in the config)");
        if (firstTarget is < 0 || firstTarget >= _config.Targets.Count) throw new ArgumentOutOfRangeException(nameof(firstTarget));
        if (firstTarget == 0) Hooks.Run("pre", _config.PreHooks, HookEnvironment(), _report);
        for (int i = firstTarget; i < _config.Targets.Count; i++)
        {
            var target = _config.Targets[i];
            _current = i;
            TargetStarting?.Invoke(i);
            _report($"capture-agent: target {i + 1}/{_config.Targets.Count}: {target}");
            TargetOutcome outcome;
            try
            {
                outcome = target.Type switch
                {
                    TargetType.Local => SaveLocal(target, i),
                    TargetType.Nfs => SaveNfs(target, i),
                    TargetType.Ssh => SaveSsh(target),
                    TargetType.Raw => SaveRaw(target),
                    _ => throw new IOException($"target type {target.Type} is not supported"),
                };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or FormatException
                                          or Vmcore.VmcoreException or TimeoutException)
            {
                outcome = new TargetOutcome(target, false, false, null, e.Message);
            }
            outcomes.Add(outcome);
            TargetFinished?.Invoke(i, outcome);
            _report(outcome.Complete ? $"capture-agent: {target}: complete dump saved in {outcome.Where}"
                : outcome.Saved ? $"capture-agent: {target}: incomplete dump in {outcome.Where}: {outcome.Message}"
                : $"capture-agent: {target} failed: {outcome.Message}");
            if (outcome.Complete) break;
            if (i + 1 < _config.Targets.Count) _report($"capture-agent: trying the next target");
        }
        var last = outcomes[^1];
        RunPostHooks(last.Complete ? "complete" : last.Saved ? "incomplete" : "failed", last.Where);
        return outcomes;
    }

    /// <summary>The post hooks, told how the chain ended (also run by PID 1 when the last writer died).</summary>
    public void RunPostHooks(string status, string? where)
    {
        var env = HookEnvironment();
        env["CAPTURE_AGENT_STATUS"] = status;
        if (where is not null) env["CAPTURE_AGENT_DUMP"] = where;
        Hooks.Run("post", _config.PostHooks, env, _report);
    }

    private Dictionary<string, string> HookEnvironment() => new() { ["CAPTURE_AGENT_VMCORE"] = _vmcore };

    private CaptureSettings Settings() => new()
    {
        PathTemplate = _config.Path,
        Dump = new DumpOptions
        {
            Level = _config.DumpLevel,
            Codec = _config.Compression,
            AutoCodec = _config.AutoCompression,
            Progress = ProgressFactory?.Invoke(),
            Heartbeat = Heartbeat,
        },
        DirectoryCreated = dir => TargetWhere?.Invoke(_current, dir),
        FallbackLevel = _config.FallbackDumpLevel,
        KeepDumps = _config.KeepDumps,
        KeepBytes = _config.KeepBytes,
        MinFreeBytes = _config.MinFreeBytes,
        SaveRawCopy = _config.SaveRawCopy,
        BootId = _bootId,
    };

    /// <summary>Finds a local or raw target's device, bringing up md arrays and LVM volumes it may sit on while waiting.</summary>
    private TargetMatch WaitForDevice(TargetEntry target)
    {
        var locator = new TargetLocator(SysRoot, DevRoot) { Report = _report, Stacks = Stacks() };
        return locator.WaitFor(target.Device!, _config.DeviceTimeout, TimeSpan.FromMilliseconds(250));
    }

    private TargetOutcome SaveLocal(TargetEntry target, int index)
    {
        var match = WaitForDevice(target);
        // Named by its own UUID or node, the container itself: what is inside cannot be reached here.
        if (match.Volume.Usage == VolumeUsage.Crypto)
            throw new IOException($"{match.Node} is an encrypted volume (LUKS{match.Volume.Version}): {StackReach.EncryptedAdvice}");
        string? fsType = _config.FilesystemType ?? (match.Volume.IsFilesystem ? match.Volume.Type : null);
        if (fsType is null)
            throw new IOException($"{match.Node} holds {match.Volume.Describe()}, not a filesystem to write a dump into (set fstype = ... if it is one)");
        string mountPoint = MountPoint(index);
        int errno = Libc.Mount(match.Node, mountPoint, fsType, Libc.MS_NOSUID | Libc.MS_NODEV | Libc.MS_NOEXEC);
        if (errno != 0) throw new IOException($"mounting {match.Node} ({fsType}) failed: {Libc.ErrnoName(errno)}");
        _report($"capture-agent: {match.Node} ({fsType}) mounted");
        return SaveToDirectory(target, mountPoint);
    }

    private TargetOutcome SaveNfs(TargetEntry target, int index)
    {
        EnsureNetwork();
        string mountPoint = MountPoint(index);
        NfsMount.Mount(target.Server!, target.Export!, mountPoint, _config.NfsOptions, _report);
        return SaveToDirectory(target, mountPoint);
    }

    private TargetOutcome SaveToDirectory(TargetEntry target, string mountPoint)
    {
        // Where the agent's memory stands once the target is found (md, LVM, probes done): the peak
        // comes during the dump, and this says how much of it finding the target left.
        _report($"capture-agent: memory before the dump: peak {ProcessMemory.PeakRssKiB()} KiB, {ProcessMemory.MemoryNow()}");
        try
        {
            var result = CaptureJob.Run(_vmcore, mountPoint, Settings(), _report);
            foreach (var p in result.Problems) _report("capture-agent: " + p);
            return new TargetOutcome(target, true, result.Complete, result.Directory,
                result.Complete ? "saved" : result.Problems.LastOrDefault() ?? "incomplete");
        }
        finally
        {
            Libc.Sync();
            int errno = Libc.Unmount(mountPoint);
            if (errno != 0) _report($"capture-agent: unmounting {mountPoint} failed: {Libc.ErrnoName(errno)}");
        }
    }

    private TargetOutcome SaveSsh(TargetEntry target)
    {
        EnsureNetwork();
        var dest = SshDestination.Parse(target.SshDestination!, _config.SshKey, _config.SshKnownHosts, _config.NetworkTimeout);
        using var source = new DumpSource(_vmcore);
        var facts = CaptureJob.Facts(source, _bootId);
        string remote = PathTemplate.Expand(_config.Path, facts);
        TargetWhere?.Invoke(_current, $"{target.SshDestination}:{remote}");
        var result = SshTarget.Save(dest, source, Settings().Dump, facts, remote, _report);
        foreach (var p in result.Problems) _report("capture-agent: " + p);
        return new TargetOutcome(target, true, result.Complete, result.Where, result.Reason ?? "saved");
    }

    private TargetOutcome SaveRaw(TargetEntry target)
    {
        var match = WaitForDevice(target);
        using var source = new DumpSource(_vmcore);
        var facts = CaptureJob.Facts(source, _bootId);
        TargetWhere?.Invoke(_current, match.Node);
        var result = RawDeviceWriter.Save(match.Node, source, Settings().Dump, facts, _report);
        foreach (var p in result.Problems) _report("capture-agent: " + p);
        return new TargetOutcome(target, result.BytesWritten > 0, result.Complete, match.Node, result.Message);
    }

    /// <summary>md and LVM brought up while waiting for a local or raw target's device; one set for the whole chain.</summary>
    /// <summary>One orchestrator for the whole capture: md remembers what it started and refused across targets.</summary>
    private StorageStacks? Stacks() => !ActivateStorage ? null : _stacks ??=
        new StorageStacks(SysRoot, DevRoot, StorageStacks.Standard(SysRoot, DevRoot, ProcRoot, _config.DeviceTimeout, _report)) { Report = _report };

    private void EnsureNetwork()
    {
        if (_lease is not null) return;
        if (_networkError is not null) throw new IOException(_networkError);
        if (_config.Network == "none" || !ConfigureNetwork) return;   // configured outside the agent
        try
        {
            _lease = NetworkSetup.Configure(new NetworkSettings(_config.NetworkInterface, _config.Network ?? "dhcp", _config.Dns, _config.NetworkTimeout), _report);
            _report($"capture-agent: network: {_lease.Interface} {_lease.Address}/{_lease.PrefixLength} via {_lease.Gateway ?? "-"} ({_lease.Source})");
        }
        catch (IOException e)
        {
            _networkError = $"network: {e.Message}";
            throw new IOException(_networkError);
        }
    }

    private string MountPoint(int index)
    {
        string mp = Path.Combine(_mountBase, $"target{index}");
        Directory.CreateDirectory(mp);
        return mp;
    }
}

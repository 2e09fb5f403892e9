using System.Globalization;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>A block device as one look at the system saw it.</summary>
/// <param name="PartUuid">The partition's PARTUUID, when the look needed it (PARTUUID= targets).</param>
public sealed record SeenDevice(SysfsBlockDevice Device, VolumeIdentity? Volume, string? PartUuid = null)
{
    /// <summary>"vda1 (ext4 LABEL=dump)": what an error message says about it.</summary>
    public string Describe(TargetSpec spec, bool hasPartitions)
    {
        var what = new List<string>();
        if (Device.Sectors == 0) what.Add("empty");
        else if (Volume is { } v && (v.IsKnown || v.Problem is not null)) what.Add(v.Describe(withUuid: spec.Kind == TargetKind.Uuid));
        else if (hasPartitions) what.Add("partitioned");
        else if (Volume is not null) what.Add(VolumeIdentity.UnknownType);
        if (spec.Kind == TargetKind.PartUuid && PartUuid is not null) what.Add("PARTUUID=" + PartUuid);
        if (spec.Kind == TargetKind.PartLabel && Device.PartitionName is not null) what.Add("PARTLABEL=" + Device.PartitionName);
        if (Device.Holders.Count > 0) what.Add("in " + string.Join('+', Device.Holders));
        return what.Count == 0 ? Device.Name : $"{Device.Name} ({string.Join(", ", what)})";
    }
}

/// <summary>The dump target, found: the node to mount and what its superblock says.</summary>
/// <param name="Device">The sysfs device, or null when a /dev path named an image file sysfs does not list.</param>
public sealed record TargetMatch(string Node, VolumeIdentity Volume, SysfsBlockDevice? Device)
{
    /// <summary>Things worth a log line: other devices that matched too, a second signature on the volume.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>The target did not appear in time; the message names what was looked for and what was there.</summary>
public sealed class TargetNotFoundException(string message) : IOException(message);

/// <summary>
/// Finds the dump target among the block devices sysfs lists, reading superblocks and partition
/// tables itself (there is no udev in the capture kernel), and waits for it to appear while drivers
/// probe. Every read of a device runs under a time limit: a disk that stops answering is reported
/// as not responding instead of hanging the capture.
/// </summary>
public sealed class TargetLocator
{
    private const int GuardStackBytes = 256 * 1024;   // a probe needs little stack; the capture kernel has little memory
    private readonly string _sysRoot, _devRoot;
    private readonly Dictionary<string, Task> _unanswered = new(StringComparer.Ordinal);
    private string? _lastReport;

    public TargetLocator(string sysRoot = "/sys", string devRoot = "/dev")
    {
        _sysRoot = sysRoot;
        _devRoot = devRoot;
        // Nodes are opened only where devtmpfs puts them: a link out of the /dev root is refused.
        Probe = (node, length) => SuperblockProbe.ProbePath(node, confineTo: devRoot, knownLength: length);
    }

    /// <summary>How long one device may take to answer a probe (real time). Infinite: no guard thread.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Reads what a node holds: (node, size in bytes or -1). Replaceable for tests.</summary>
    public Func<string, long, VolumeIdentity> Probe { get; init; }

    /// <summary>Reads a whole disk's partition table: (node, size in bytes or -1). Replaceable for tests.</summary>
    public Func<string, long, PartitionTable?> ReadPartitionTable { get; init; } = (node, length) => PartitionTable.ReadPath(node, length);

    /// <summary>Told what the devices look like each time that changes while waiting (for the console).</summary>
    public Action<string>? Report { get; init; }

    /// <summary>
    /// Brings up md arrays and LVM volumes that could hold the target while <see cref="WaitFor"/>
    /// waits (the capture kernel), called when a look did not find it; null on a running system,
    /// where only what exists is looked at.
    /// </summary>
    public StorageStacks? Stacks { get; init; }

    /// <summary>One look: the device matching <paramref name="spec"/>, or null; <paramref name="seen"/> is everything looked at.</summary>
    public TargetMatch? Find(TargetSpec spec, out IReadOnlyList<SeenDevice> seen)
    {
        var devices = SysfsBlockDevices.List(_sysRoot, _devRoot);
        var looked = new List<SeenDevice>(devices.Count);
        seen = looked;
        var matches = new List<SeenDevice>();
        var tables = new Dictionary<string, PartitionTable?>(StringComparer.Ordinal);
        string? wantedNode = spec.DevRelativeName is { } rel ? Path.Combine(_devRoot, rel) : null;
        // /dev/md/NAME and the like are links to the kernel-named node: followed, but only within /dev.
        string? wantedReal = wantedNode is null ? null : LinkSafePath.Resolve(wantedNode, out _);
        if (wantedReal is not null && (LinkSafePath.Resolve(_devRoot, out _) is not { } devReal || !LinkSafePath.IsInside(wantedReal, devReal))) wantedReal = null;

        foreach (var d in devices)
        {
            SeenDevice entry;
            bool hit;
            switch (spec.Kind)
            {
                case TargetKind.Path:
                    entry = new SeenDevice(d, null);
                    hit = d.Node == wantedNode || wantedReal is not null && LinkSafePath.Resolve(d.Node, out _) == wantedReal
                        || d.DmName is not null && d.DmName == Lvm.LvmNames.DmNameOfPath(spec.DevRelativeName!);
                    break;
                case TargetKind.Uuid:
                case TargetKind.Label:
                    entry = new SeenDevice(d, d.Sectors == 0 ? null : ProbeGuarded(d));
                    hit = entry.Volume is { } v && spec.ValueMatches(spec.Kind == TargetKind.Uuid ? v.Uuid : v.Label);
                    break;
                case TargetKind.PartUuid:
                    string? partUuid = PartUuidOf(d, devices, tables);
                    entry = new SeenDevice(d, null, partUuid);
                    hit = spec.ValueMatches(partUuid);
                    break;
                default:
                    entry = new SeenDevice(d, null);
                    hit = spec.ValueMatches(d.PartitionName ?? PartLabelOf(d, devices, tables));
                    break;
            }
            looked.Add(entry);
            if (hit && File.Exists(d.Node)) matches.Add(entry);   // sysfs shows a device a moment before devtmpfs has its node
        }

        if (matches.Count == 0)
        {
            // A /dev path sysfs does not list may still be an image file (tests, odd setups); never a character device.
            if (wantedNode is not null && File.Exists(wantedNode) && new FileInfo(wantedNode).Length > 0)
                return new TargetMatch(wantedNode, Probe(wantedNode, -1), null);
            return null;
        }
        // A member of md/dm carries the same filesystem UUID as the assembled device: take the top one.
        var best = matches.FirstOrDefault(m => m.Device.Holders.Count == 0) ?? matches[0];
        var volume = best.Volume ?? ProbeGuarded(best.Device);
        var notes = new List<string>();
        foreach (var other in matches)
            if (!ReferenceEquals(other, best)) notes.Add($"{other.Device.Name} matches {spec} too; using {best.Device.Name}");
        if (volume.AlsoFound.Count > 0)
            notes.Add($"{best.Device.Name} also carries {string.Join(", ", volume.AlsoFound)} signatures (blkid would call it ambivalent)");
        return new TargetMatch(best.Device.Node, volume, best.Device) { Notes = notes };
    }

    /// <summary>
    /// Looks every <paramref name="pollInterval"/> until the target appears, or throws
    /// <see cref="TargetNotFoundException"/> once <paramref name="timeout"/> has passed, naming what
    /// was looked for and every device seen on the last look.
    /// </summary>
    public TargetMatch WaitFor(TargetSpec spec, TimeSpan timeout, TimeSpan pollInterval, IWaitClock? clock = null)
    {
        clock ??= new SystemWaitClock();
        if (pollInterval < TimeSpan.FromMilliseconds(10)) pollInterval = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            var match = Find(spec, out var seen);
            if (match is not null) return match;
            if (Stacks is not null && Stacks.Activate(spec) && (match = Find(spec, out seen)) is not null) return match;
            if (Stacks?.Refusal is { } refusal) throw new TargetNotFoundException($"{spec}: {refusal}");
            string described = DescribeSeen(seen, spec) + StackProblems();
            if (Report is not null && described != _lastReport) Report($"waiting for {spec}; seen: {described}");
            _lastReport = described;
            var elapsed = clock.Elapsed;
            if (elapsed >= timeout)
                throw new TargetNotFoundException($"no block device {(spec.Kind == TargetKind.Path ? "" : "with ")}{spec} after {Seconds(timeout)} s; seen: {described}{UdevHint(spec)}{EncryptedHint(Probed(seen))}");
            var left = timeout - elapsed;
            clock.Sleep(left < pollInterval ? left : pollInterval);
        }
    }

    /// <summary>Every device seen, in one line ("vda (partitioned), vda1 (ext4 LABEL=root)"), with a hint when there are none.</summary>
    public string DescribeSeen(IReadOnlyList<SeenDevice> seen, TargetSpec spec)
    {
        if (seen.Count == 0)
            return SysfsBlockDevices.SysfsPresent(_sysRoot)
                ? "no block devices (is the disk's driver in the initramfs?)"
                : $"no block devices ({Path.Combine(_sysRoot, "class", "block")} missing: is sysfs mounted?)";
        var parents = seen.Where(s => s.Device.Parent is not null).Select(s => s.Device.Parent!).ToHashSet(StringComparer.Ordinal);
        var text = new StringBuilder();
        // Devices with nothing in them (unused loop and zram devices, an empty CD drive) go last, by name only.
        foreach (var s in seen.Where(s => s.Device.Sectors != 0))
        {
            if (text.Length > 0) text.Append(", ");
            text.Append(s.Describe(spec, parents.Contains(s.Device.Name)));
        }
        var empty = seen.Where(s => s.Device.Sectors == 0).Select(s => s.Device.Name).ToList();
        if (empty.Count > 0) text.Append(text.Length > 0 ? "; " : "").Append("empty: ").Append(string.Join(' ', empty));
        return text.ToString();
    }

    /// <summary>"; lvm: ..." for each reason the storage stacks gave for not bringing something up.</summary>
    private string StackProblems() =>
        Stacks is null || Stacks.Problems.Count == 0 ? "" : "; " + string.Join("; ", Stacks.Problems);

    /// <summary>/dev/disk/by-id/... and the like are udev's links; nothing makes them in the capture kernel.</summary>
    private string UdevHint(TargetSpec spec) =>
        spec.DevRelativeName is { } rel && rel.StartsWith("disk/", StringComparison.Ordinal)
            || Stacks is null && spec.DevRelativeName is { } r && r.Contains('/') && !r.StartsWith("mapper/", StringComparison.Ordinal)
            ? $" (no udev here to make /dev/{spec.DevRelativeName![..spec.DevRelativeName.IndexOf('/')]}/ links: name the target by UUID= or LABEL=)"
            : "";

    /// <summary>
    /// The devices with what they hold: a look for a path or PARTUUID= target reads no superblock,
    /// but a LUKS container among them (a /dev/mapper/luks-... target) is what the message must name.
    /// </summary>
    private List<SeenDevice> Probed(IReadOnlyList<SeenDevice> seen) =>
        seen.Select(s => s.Volume is null && s.Device.Sectors != 0 ? s with { Volume = ProbeGuarded(s.Device) } : s).ToList();

    /// <summary>An encrypted volume seen while the target was not: the likeliest reason, said with what to do.</summary>
    private static string EncryptedHint(IReadOnlyList<SeenDevice> seen)
    {
        var luks = seen.Where(s => s.Volume?.Type == "crypto_LUKS").Select(s => s.Device.Name).ToList();
        return luks.Count == 0 ? ""
            : $"; {string.Join(", ", luks)} {(luks.Count == 1 ? "is an encrypted volume" : "are encrypted volumes")} (LUKS): if the target is inside, {StackReach.EncryptedAdvice}";
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    private VolumeIdentity ProbeGuarded(SysfsBlockDevice d) =>
        Guarded("probe:" + d.Name, () => Probe(d.Node, d.SizeBytes), problem => VolumeIdentity.Unreadable(problem));

    private PartitionTable? TableOf(string disk, List<SysfsBlockDevice> devices, Dictionary<string, PartitionTable?> tables)
    {
        if (tables.TryGetValue(disk, out var known)) return known;
        var parent = devices.FirstOrDefault(x => x.Name == disk);
        var table = parent is null ? null : Guarded("table:" + disk, () => ReadPartitionTable(parent.Node, parent.SizeBytes), _ => null);
        tables[disk] = table;
        return table;
    }

    private string? PartUuidOf(SysfsBlockDevice d, List<SysfsBlockDevice> devices, Dictionary<string, PartitionTable?> tables)
    {
        if (!d.IsPartition || d.Parent is null) return null;
        var table = TableOf(d.Parent, devices, tables);
        if (table is null) return null;
        // MBR: disk signature and partition number, logical partitions included.
        return table.Type == "dos" && table.DiskId is { } id
            ? PartitionTable.MbrPartUuid(uint.Parse(id, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture), d.PartitionNumber)
            : table.Partition(d.PartitionNumber)?.PartUuid;
    }

    private string? PartLabelOf(SysfsBlockDevice d, List<SysfsBlockDevice> devices, Dictionary<string, PartitionTable?> tables) =>
        d.IsPartition && d.Parent is not null ? TableOf(d.Parent, devices, tables)?.Partition(d.PartitionNumber)?.Name : null;

    /// <summary>
    /// Runs one device read under <see cref="ProbeTimeout"/>. A read that does not return leaves its
    /// thread blocked in the kernel; the device is then reported as not responding, without a new
    /// read, until that one finishes.
    /// </summary>
    private T Guarded<T>(string key, Func<T> read, Func<string, T> onProblem)
    {
        string notResponding = $"not responding (a read has taken over {Seconds(ProbeTimeout)} s)";
        if (_unanswered.TryGetValue(key, out var pending))
        {
            if (!pending.IsCompleted) return onProblem(notResponding);
            _unanswered.Remove(key);
        }
        if (ProbeTimeout == Timeout.InfiniteTimeSpan) return Run(read, onProblem);
        // A thread of its own, not the pool: with nr_cpus=1 the pool has one thread, and a read stuck
        // on it would starve every later probe.
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            new Thread(() => done.SetResult(Run(read, onProblem)), GuardStackBytes) { IsBackground = true, Name = "probe" }.Start();
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException)
        {
            return Run(read, onProblem);   // no thread to spare: read unguarded rather than not at all
        }
        if (done.Task.Wait(ProbeTimeout)) return done.Task.Result;
        _unanswered[key] = done.Task;
        return onProblem(notResponding);
    }

    private static T Run<T>(Func<T> read, Func<string, T> onProblem)
    {
        try { return read(); }
        catch (Exception e) when (e is not OutOfMemoryException) { return onProblem(e.Message); }
    }
}

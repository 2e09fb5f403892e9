namespace CaptureAgent.Targets.Lvm;

/// <summary>An LV not active on the running system: its name, the devices of its PVs, its filesystem, or why the capture kernel would refuse it.</summary>
public sealed record InactiveLv(string Name, IReadOnlyList<SysfsBlockDevice> PvDevices, VolumeIdentity Volume, string? Refusal);

/// <summary>
/// At image build time, on the running system: would the capture kernel activate the LVM
/// volumes a target sits on? Finds the LVM dm devices in the target's stack (the device itself,
/// or below dm-crypt and the like), reads their VG's metadata from the PVs as the capture kernel
/// will, and gives the capture kernel's refusal (a thin, raid, cache... volume) in advance.
/// </summary>
public static class LvmTargetCheck
{
    private const int MaxDepth = 8;

    /// <summary>One line per LVM volume under <paramref name="deviceName"/> that the capture kernel would refuse; empty when none.</summary>
    public static List<string> Problems(string deviceName, string sysRoot = "/sys", string devRoot = "/dev")
    {
        var volumes = new List<SysfsBlockDevice>();
        FindLvmDevices(deviceName, 0, volumes, new HashSet<string>(StringComparer.Ordinal), sysRoot, devRoot);
        if (volumes.Count == 0) return [];
        using var readers = new DeviceReaders();
        var scan = LvmScan.Run(SysfsBlockDevices.List(sysRoot, devRoot), readers.Open);
        var problems = new List<string>();
        foreach (var d in volumes)
            if (Check(d, scan) is { } problem) problems.Add(problem);
        return problems;
    }

    /// <summary>
    /// A target that is no device here now but an LV that is not active (a dump LV the running
    /// system leaves alone): found the way the capture kernel will find it, through the PVs' metadata
    /// and the LV's map. Null when no LV is, or could be, the target.
    /// </summary>
    public static InactiveLv? Locate(TargetSpec target, string sysRoot = "/sys", string devRoot = "/dev")
    {
        var named = target.Kind == TargetKind.Path ? LvmNames.VolumeOfPath(target.DevRelativeName!) : null;
        if (named is null && target.Kind is not (TargetKind.Uuid or TargetKind.Label)) return null;
        var devices = SysfsBlockDevices.List(sysRoot, devRoot);
        using var readers = new DeviceReaders();
        var scan = LvmScan.Run(devices, readers.Open);
        if (named is { } n)
        {
            var vgs = scan.Vgs.Where(v => v.Metadata.Name == n.Vg).ToList();
            var lv = vgs.Count == 1 ? vgs[0].Metadata.Lv(n.Lv) : null;
            if (lv is null) return null;
            string? refusal = LvmActivator.Unusable(vgs[0].Metadata, lv) ?? LvmActivator.MissingPvs(vgs[0], lv);
            if (refusal is not null) return new InactiveLv($"{n.Vg}/{n.Lv}", [], VolumeIdentity.Unknown, refusal);
            try
            {
                var layout = LogicalVolumeLayout.Map(vgs[0].Metadata, lv, vgs[0].Devices);
                return Inactive(layout, SuperblockProbe.Probe(new LogicalVolumeSource(layout, readers.Open)));
            }
            catch (InvalidDataException e) { return new InactiveLv($"{n.Vg}/{n.Lv}", [], VolumeIdentity.Unknown, e.Message); }
        }
        var matches = LvmActivator.LvsHolding(scan, target, devices, readers.Open, []);
        return matches.Count == 0 ? null : Inactive(matches[0].Layout, matches[0].Volume);
    }

    private static InactiveLv Inactive(LogicalVolumeLayout layout, VolumeIdentity volume) =>
        new(layout.DisplayName, layout.Segments.SelectMany(s => s.Stripes).Select(s => s.Pv.Device).DistinctBy(d => d.Name).ToList(), volume, null);

    /// <summary>The topmost LVM devices of the stack: an LV's own layers (thin pool, raid images) are its business.</summary>
    private static void FindLvmDevices(string name, int depth, List<SysfsBlockDevice> found, HashSet<string> seen, string sysRoot, string devRoot)
    {
        if (depth > MaxDepth || !seen.Add(name)) return;
        var d = SysfsBlockDevices.Get(name, sysRoot, devRoot);
        if (d is null) return;
        if (d.IsPartition && d.Parent is not null) { FindLvmDevices(d.Parent, depth + 1, found, seen, sysRoot, devRoot); return; }
        if (d.DmUuid?.StartsWith("LVM-", StringComparison.Ordinal) == true) { found.Add(d); return; }
        foreach (var slave in d.Slaves) FindLvmDevices(slave, depth + 1, found, seen, sysRoot, devRoot);
    }

    private static string? Check(SysfsBlockDevice d, LvmScan scan)
    {
        string ids = d.DmUuid!["LVM-".Length..];
        string name = d.DmName ?? d.Name;
        if (ids.Length != 64)
            return $"{name} is an internal layer ({ids[Math.Min(64, ids.Length)..].TrimStart('-')}) of an LVM volume";
        var found = scan.Vgs.FirstOrDefault(v => v.Metadata.Id == ids[..32]);
        var lv = found?.Metadata.Lvs.FirstOrDefault(l => l.Id == ids[32..]);
        if (found is null || lv is null)
            return $"{name}: the metadata of its volume group could not be read to check it{(scan.Problems.Count > 0 ? " (" + string.Join("; ", scan.Problems) + ")" : "")}";
        if (LvmActivator.Unusable(found.Metadata, lv) is { } why) return why;
        var missing = lv.Segments.SelectMany(s => s.Areas).Select(a => a.Pv).Distinct().Where(pv => !found.Devices.ContainsKey(pv)).ToList();
        return missing.Count > 0 ? $"{found.Metadata.Name}/{lv.Name} has PVs that are not here now: {string.Join("; ", found.Absent)}" : null;
    }
}

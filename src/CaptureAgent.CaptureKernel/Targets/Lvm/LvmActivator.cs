namespace CaptureAgent.Targets.Lvm;

/// <summary>
/// LVM activation in the capture kernel, without lvm2: scans the block devices for PVs, reads the
/// newest VG metadata, and creates in device-mapper only the LV the dump target needs — the one
/// a /dev/mapper/VG-LV or /dev/VG/LV path names, or the one whose filesystem has the target's
/// UUID= or LABEL= (found by reading its superblock through the segment map, before anything is
/// created). Linear and striped LVs only; anything that needs another dm target (thin, cache,
/// raid, snapshot, mirror, vdo, integrity...) is refused with its type named. Nothing already in
/// device-mapper is changed.
/// </summary>
public sealed class LvmActivator : IStorageStackActivator
{
    private readonly string _devRoot;
    private readonly Func<IDeviceMapper> _openDeviceMapper;

    /// <param name="deviceMapper">Opens device-mapper when something is to be activated (tests pass a fake).</param>
    public LvmActivator(string sysRoot, string devRoot, Func<IDeviceMapper>? deviceMapper = null)
    {
        _devRoot = devRoot;
        _openDeviceMapper = deviceMapper ?? (() => DeviceMapper.Open(devRoot, sysRoot));
    }

    public string Name => "lvm";

    public StackStep Activate(TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices)
    {
        var named = target.Kind == TargetKind.Path ? LvmNames.VolumeOfPath(target.DevRelativeName!) : null;
        if (named is null && target.Kind is not (TargetKind.Uuid or TargetKind.Label)) return StackStep.Nothing;
        using var readers = new DeviceReaders();
        var scan = LvmScan.Run(devices, readers.Open);
        if (scan.Labelled.Count == 0) return new StackStep { Problems = scan.Problems };
        var step = named is { } n ? ActivateNamed(scan, n.Vg, n.Lv) : ActivateHolding(scan, target, devices, readers);
        return step with { Problems = [.. scan.Problems, .. step.Problems] };
    }

    /// <summary>/dev/mapper/VG-LV or /dev/VG/LV: that LV of the one VG with that name.</summary>
    private StackStep ActivateNamed(LvmScan scan, string vgName, string lvName)
    {
        var vgs = scan.Vgs.Where(v => v.Metadata.Name == vgName).ToList();
        if (vgs.Count == 0)
            return Problem($"no volume group {vgName} on the PVs here ({DescribePvs(scan)})");
        if (vgs.Count > 1)
            return new StackStep { Refusal = $"{vgs.Count} volume groups are named {vgName} (ids {string.Join(", ", vgs.Select(v => PhysicalVolumeLabel.FormatId(v.Metadata.Id)))}): name the target by the UUID= of its filesystem" };
        var found = vgs[0];
        var lv = found.Metadata.Lv(lvName);
        if (lv is null)
            return found.Complete
                ? new StackStep { Refusal = $"volume group {vgName} has no LV {lvName} (it has {string.Join(", ", found.Metadata.Lvs.Where(l => l.Visible).Select(l => l.Name).DefaultIfEmpty("none"))})" }
                : Problem($"volume group {vgName} has no LV {lvName} in the metadata read, and is incomplete: {string.Join("; ", found.Absent)}");
        if (Unusable(found.Metadata, lv) is { } why) return new StackStep { Refusal = why };
        if (MissingPvs(found, lv) is { } missing) return Problem(missing);
        try { return Create(found, LogicalVolumeLayout.Map(found.Metadata, lv, found.Devices)); }
        catch (InvalidDataException e) { return new StackStep { Refusal = e.Message }; }
        catch (IOException e) { return Problem(e.Message); }
    }

    /// <summary>UUID= or LABEL=: the LV whose filesystem carries it, read through each usable LV's map.</summary>
    private StackStep ActivateHolding(LvmScan scan, TargetSpec target, IReadOnlyList<SysfsBlockDevice> devices, DeviceReaders readers)
    {
        var notLooked = new List<string>();
        var matches = LvsHolding(scan, target, devices, readers.Open, notLooked);
        var incomplete = scan.Vgs.Where(v => !v.Complete).Select(v => $"volume group {v.Metadata.Name} is incomplete: {string.Join("; ", v.Absent)}");
        if (matches.Count == 0)
        {
            var problems = incomplete.ToList();
            if (notLooked.Count > 0) problems.Add($"LVs not looked into: {string.Join(", ", notLooked)}");
            return new StackStep { Problems = problems };
        }
        try
        {
            var step = Create(matches[0].Vg, matches[0].Layout);
            if (matches.Count == 1) return step;
            string others = string.Join(", ", matches.Skip(1).Select(m => m.Layout.DisplayName));
            return step with { Activated = [$"{step.Activated[0]}; {others} carries {target} too and is left inactive"] };
        }
        catch (IOException e) { return Problem(e.Message); }
    }

    /// <summary>
    /// The inactive, usable LVs whose filesystem carries the UUID= or LABEL= of <paramref name="target"/>,
    /// read through their maps; <paramref name="notLooked"/> gets the visible LVs that could not be read, and why.
    /// </summary>
    internal static List<(FoundVg Vg, LogicalVolumeLayout Layout, VolumeIdentity Volume)> LvsHolding(LvmScan scan, TargetSpec target,
        IReadOnlyList<SysfsBlockDevice> devices, Func<SysfsBlockDevice, BlockSource> open, List<string> notLooked)
    {
        var matches = new List<(FoundVg, LogicalVolumeLayout, VolumeIdentity)>();
        foreach (var found in scan.Vgs)
            foreach (var lv in found.Metadata.Lvs.Where(l => l.Visible || l.Damage is not null))
            {
                string name = $"{found.Metadata.Name}/{lv.Name}";
                if (IsActive(found.Metadata, lv, devices)) continue;   // the locator has probed it as a device already
                if (Unusable(found.Metadata, lv) is not null) { notLooked.Add($"{name} ({Kind(lv)})"); continue; }
                if (MissingPvs(found, lv) is not null) { notLooked.Add($"{name} (PV missing)"); continue; }
                LogicalVolumeLayout layout;
                try { layout = LogicalVolumeLayout.Map(found.Metadata, lv, found.Devices); }
                catch (InvalidDataException e) { notLooked.Add($"{name} ({e.Message})"); continue; }
                var volume = SuperblockProbe.Probe(new LogicalVolumeSource(layout, open));
                if (target.ValueMatches(target.Kind == TargetKind.Uuid ? volume.Uuid : volume.Label)) matches.Add((found, layout, volume));
            }
        return matches;
    }

    /// <summary>Why this LV cannot be activated here whatever devices appear, or null.</summary>
    internal static string? Unusable(VolumeGroupMetadata vg, LvRecord lv)
    {
        string name = $"{vg.Name}/{lv.Name}";
        if (lv.Damage is not null) return $"{name}: {lv.Damage}";
        if (vg.LockType is { } lockType && lockType != "none")
            return $"volume group {vg.Name} is shared through lvmlockd ({lockType}): not activated without its lock manager";
        if (vg.Status.Contains("CLUSTERED")) return $"volume group {vg.Name} is clustered (clvmd): not activated without its lock manager";
        if (vg.Status.Contains("EXPORTED")) return $"volume group {vg.Name} is exported (vgexport)";
        if (!vg.Status.Contains("WRITE")) return $"volume group {vg.Name} is read-only";
        if (lv.UnsupportedTypes.FirstOrDefault() is { } type)
            return $"{name} is a {type} volume: the capture kernel activates only linear and striped LVs";
        if (!lv.Visible) return $"{name} is a hidden part of another LV";
        if (!lv.Writable) return $"{name} is read-only";
        var snapshots = vg.SnapshotsOf(lv).ToList();
        if (snapshots.Count > 0)
            return $"{name} is the origin of snapshot {string.Join(", ", snapshots)}: writing to it without dm-snapshot would corrupt the snapshot";
        return null;
    }

    private static string Kind(LvRecord lv) =>
        lv.Damage is not null ? "damaged metadata" : lv.UnsupportedTypes.FirstOrDefault() ?? (lv.Writable ? "not usable" : "read-only");

    internal static string? MissingPvs(FoundVg found, LvRecord lv)
    {
        var needed = lv.Segments.SelectMany(s => s.Areas).Select(a => a.Pv).Distinct().Where(pv => !found.Devices.ContainsKey(pv)).ToList();
        if (needed.Count == 0) return null;
        var pvs = found.Metadata.Pvs;
        return $"{found.Metadata.Name}/{lv.Name} needs " + string.Join(", ", needed.Select(k =>
            $"PV {PhysicalVolumeLabel.FormatId(pvs[k].Id)}{(pvs[k].DeviceHint is { } hint ? $" (was {hint})" : "")}")) + ", not here";
    }

    private static bool IsActive(VolumeGroupMetadata vg, LvRecord lv, IReadOnlyList<SysfsBlockDevice> devices)
    {
        string uuid = LvmNames.DmUuid(vg.Id, lv.Id);
        return devices.Any(d => d.DmUuid == uuid);
    }

    /// <summary>Creates the dm device (or takes the one there if its table is ours) and the /dev/VG/LV link.</summary>
    private StackStep Create(FoundVg found, LogicalVolumeLayout layout)
    {
        var vg = found.Metadata;
        string name = LvmNames.DmName(vg.Name, layout.Lv.Name), uuid = LvmNames.DmUuid(vg.Id, layout.Lv.Id);
        var table = layout.Segments.Select(s => new DmTarget(s.Start, s.Length, s.TargetType, s.Parameters)).ToList();
        var dm = _openDeviceMapper();
        try
        {
            var existing = dm.Find(name) ?? dm.FindByUuid(uuid);
            if (existing is not null)
            {
                if (existing.Name != name || existing.Uuid != uuid || !existing.HasLiveTable || existing.Suspended || !SameTable(dm.Table(name), table))
                    return new StackStep { Refusal = $"device-mapper already has {existing.Name} (uuid {existing.Uuid}) with another table than {layout.DisplayName} needs; it is left as it is" };
                LinkVolume(vg.Name, layout.Lv.Name, name);
                return StackStep.Nothing;
            }
            var info = dm.Create(name, uuid, table);
            LinkVolume(vg.Name, layout.Lv.Name, name);
            string types = string.Join('+', table.Select(t => t.Type).Distinct());
            return new StackStep { Activated = [$"{layout.DisplayName} activated as /dev/mapper/{name} (dm-{info.Minor}, {table.Count} {types} segment{(table.Count == 1 ? "" : "s")})"] };
        }
        finally
        {
            (dm as IDisposable)?.Dispose();
        }
    }

    private static bool SameTable(IReadOnlyList<DmTarget> live, List<DmTarget> wanted) =>
        live.Count == wanted.Count && live.Zip(wanted).All(p => p.First.SameAs(p.Second));

    /// <summary>/dev/VG/LV → ../mapper/VG-LV, as lvm's udev rules make it; anything already there is left alone.</summary>
    private void LinkVolume(string vg, string lv, string dmName)
    {
        try
        {
            string dir = Path.Combine(_devRoot, vg), link = Path.Combine(dir, lv);
            if (File.Exists(dir) || new FileInfo(dir).LinkTarget is not null) return;
            Directory.CreateDirectory(dir);
            if (File.Exists(link) || Directory.Exists(link) || new FileInfo(link).LinkTarget is not null) return;
            File.CreateSymbolicLink(link, Path.Combine("..", "mapper", dmName));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The link is a convenience; the device is found by its dm name without it.
        }
    }

    private static string DescribePvs(LvmScan scan) =>
        string.Join(", ", scan.Labelled.Select(l =>
        {
            var vg = scan.Vgs.FirstOrDefault(v => v.Devices.Values.Any(d => d.Device.Name == l.Device.Name));
            return $"{l.Device.Name}: {(vg is null ? "no VG read" : "VG " + vg.Metadata.Name)}";
        }));

    private static StackStep Problem(string text) => new() { Problems = [text] };
}

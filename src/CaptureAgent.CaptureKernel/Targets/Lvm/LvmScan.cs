namespace CaptureAgent.Targets.Lvm;

/// <summary>A block device with an LVM2 label.</summary>
public sealed record LabelledDevice(SysfsBlockDevice Device, PhysicalVolumeLabel Label);

/// <summary>A volume group found on the devices: its newest metadata and the devices of its PVs that are here.</summary>
/// <param name="Devices">PV key ("pv0") → the device carrying it; PVs not here are absent.</param>
/// <param name="Absent">One line per PV that is listed but not here (or not told apart from a duplicate).</param>
public sealed record FoundVg(VolumeGroupMetadata Metadata, IReadOnlyDictionary<string, PvDevice> Devices, IReadOnlyList<string> Absent)
{
    public bool Complete => Absent.Count == 0;
}

/// <summary>
/// What LVM finds on a set of block devices (lvm's label scan, in process): every device's LVM2
/// label, the metadata in each PV's metadata areas, per volume group the newest copy by seqno
/// (two different texts with the same seqno make the VG unusable: lvm would call it
/// inconsistent), and which device carries each of its PVs.
/// </summary>
internal sealed class LvmScan
{
    private const int MaxDevices = 4096;
    private readonly List<string> _problems = [];

    public IReadOnlyList<LabelledDevice> Labelled { get; private init; } = [];
    public IReadOnlyList<FoundVg> Vgs { get; private set; } = [];
    /// <summary>Labels, metadata areas or VGs that could not be used, one line each.</summary>
    public IReadOnlyList<string> Problems => _problems;

    /// <param name="open">The device's contents, or null when it cannot be opened (the scan then notes why).</param>
    public static LvmScan Run(IReadOnlyList<SysfsBlockDevice> devices, Func<SysfsBlockDevice, BlockSource> open)
    {
        var labelled = new List<LabelledDevice>();
        var problems = new List<string>();
        var multipath = devices.Where(d => d.DmUuid?.StartsWith("mpath-", StringComparison.Ordinal) == true).Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var d in devices.Take(MaxDevices))
        {
            if (d.Sectors == 0 || IsMdMember(d) || d.Holders.Any(multipath.Contains)) continue;
            try
            {
                var head = open(d).Read(0, PhysicalVolumeLabel.ScanSectors * PhysicalVolumeLabel.SectorSize);
                if (head is null) continue;
                var label = PhysicalVolumeLabel.Parse(head, out string? problem);
                if (label is not null) labelled.Add(new LabelledDevice(d, label));
                else if (problem is not null) problems.Add($"{d.Name}: {problem}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A device that cannot be read is not an error of LVM's; the locator lists it as unreadable.
            }
        }
        var scan = new LvmScan { Labelled = labelled };
        scan._problems.AddRange(problems);
        scan.Vgs = scan.ReadVgs(open);
        return scan;
    }

    /// <summary>
    /// A member of an md array shows the array's PV label too (metadata 1.0 and 0.90 sit at the end):
    /// the array is the PV. Likewise each path of a multipath device: the multipath device is.
    /// </summary>
    private static bool IsMdMember(SysfsBlockDevice d) => d.Holders.Any(h => h.StartsWith("md", StringComparison.Ordinal));

    private List<FoundVg> ReadVgs(Func<SysfsBlockDevice, BlockSource> open)
    {
        // Copies with the same checksum and size hold the same text: parse each text once.
        var parsed = new Dictionary<(uint, int), VolumeGroupMetadata?>();
        var newest = new Dictionary<string, (VolumeGroupMetadata Vg, uint Checksum, string From)>(StringComparer.Ordinal);
        var conflicts = new Dictionary<string, long>(StringComparer.Ordinal);   // VG id → a seqno two texts claim
        foreach (var (device, label) in Labelled)
            foreach (var area in label.MetadataAreas)
            {
                MetadataCopy? copy;
                string? problem;
                try { copy = MetadataArea.Read(open(device), area, out problem); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { copy = null; problem = e.Message; }
                if (problem is not null) _problems.Add($"{device.Name}: {problem}");
                if (copy is null) continue;
                var key = (copy.Checksum, copy.Text.Length);
                if (!parsed.TryGetValue(key, out var vg)) parsed[key] = vg = ParseCopy(copy, device);
                if (vg is null) continue;
                if (!newest.TryGetValue(vg.Id, out var have) || vg.Seqno > have.Vg.Seqno) newest[vg.Id] = (vg, copy.Checksum, device.Name);
                else if (vg.Seqno == have.Vg.Seqno && copy.Checksum != have.Checksum) conflicts[vg.Id] = vg.Seqno;
            }
        var found = new List<FoundVg>();
        foreach (var (id, n) in newest)
        {
            // A conflict at an older seqno does not matter once a newer copy exists.
            if (conflicts.TryGetValue(id, out long seqno) && seqno == n.Vg.Seqno)
                _problems.Add($"VG {n.Vg.Name}: its PVs hold different metadata with the same seqno {seqno} (lvm would call it inconsistent)");
            else found.Add(Place(n.Vg));
        }
        return found;
    }

    private VolumeGroupMetadata? ParseCopy(MetadataCopy copy, SysfsBlockDevice device)
    {
        try { return VolumeGroupMetadata.Parse(copy.Text); }
        catch (InvalidDataException e)
        {
            _problems.Add($"{device.Name}: metadata at byte {copy.Area.Offset}: {e.Message}");
            return null;
        }
    }

    /// <summary>Which device carries each PV of <paramref name="vg"/>: the one whose label has the PV's uuid.</summary>
    private FoundVg Place(VolumeGroupMetadata vg)
    {
        var devices = new Dictionary<string, PvDevice>(StringComparer.Ordinal);
        var absent = new List<string>();
        foreach (var pv in vg.Pvs.Values)
        {
            var carriers = Labelled.Where(l => l.Label.PvUuid == pv.Id).ToList();
            string id = PhysicalVolumeLabel.FormatId(pv.Id);
            if (carriers.Count == 1) devices[pv.Key] = new PvDevice(pv.Id, carriers[0].Device);
            else if (carriers.Count == 0) absent.Add($"PV {id}{(pv.DeviceHint is null ? "" : $" (was {pv.DeviceHint})")} is not here");
            else absent.Add($"PV {id} is on {string.Join(" and ", carriers.Select(c => c.Device.Name))}: a copy or a multipath device, which is the PV cannot be told");
        }
        return new FoundVg(vg, devices, absent);
    }
}

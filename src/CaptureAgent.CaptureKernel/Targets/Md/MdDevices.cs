namespace CaptureAgent.Targets.Md;

/// <summary>
/// Finds md members among the block devices sysfs lists: each device's possible superblock places
/// (<see cref="MdSuperblock.ReadAll"/>: three 4 KiB reads) are read in a thread of its own under
/// <see cref="ReadTimeout"/>; a device that does not answer is passed over, without a second read
/// piling up behind the first. What a device holds is read once per device number and size: the
/// wait loop scans every quarter second.
/// </summary>
public sealed class MdDevices(string sysRoot = "/sys", string devRoot = "/dev")
{
    /// <summary>Devices looked at in one scan; a capture kernel with more is not what this was made for.</summary>
    public const int MaxDevices = 4096;
    private readonly Dictionary<string, Task<IReadOnlyList<MdSuperblock>>> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<MdSuperblock>> _known = new(StringComparer.Ordinal);

    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public IReadOnlyList<MdCandidate> Scan()
    {
        var found = new List<MdCandidate>();
        var parents = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var d in SysfsBlockDevices.List(sysRoot, devRoot).Take(MaxDevices))
        {
            // Smaller than 64 KiB holds no array worth a dump; an unreadable size cannot locate 1.0 or 0.90.
            if (d.Sectors < 128 || d.ReadOnly) continue;
            var superblocks = ReadBounded(d);
            if (superblocks.Count == 0) continue;
            found.Add(new MdCandidate(d.Name, d.Major, d.Minor, superblocks, d.Holders.Count > 0));
            if (d.IsPartition && d.Parent is not null) parents[d.Name] = d.Parent;
        }
        return WithoutShadows(found, parents);
    }

    /// <summary>
    /// A superblock at the end of the last partition (0.90, 1.0) is also at the end of its disk: the
    /// disk then shows the partition's superblock, but its data starts elsewhere. Such a disk is
    /// left out whenever one of its partitions carries the same member.
    /// </summary>
    internal static List<MdCandidate> WithoutShadows(List<MdCandidate> found, IReadOnlyDictionary<string, string> parents)
    {
        var shadowed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in found)
        {
            if (!parents.TryGetValue(part.Device, out var disk)) continue;
            var whole = found.FirstOrDefault(c => c.Device == disk);
            if (whole is not null && whole.Superblocks.Any(w => part.Superblocks.Any(p =>
                    p.ArrayUuid == w.ArrayUuid && p.DeviceNumber == w.DeviceNumber && p.Events == w.Events)))
                shadowed.Add(disk);
        }
        return shadowed.Count == 0 ? found : found.Where(c => !shadowed.Contains(c.Device)).ToList();
    }

    private IReadOnlyList<MdSuperblock> ReadBounded(SysfsBlockDevice d)
    {
        string key = $"{d.Name} {d.DeviceNumber} {d.Sectors}";
        if (_known.TryGetValue(key, out var known)) return known;
        if (_pending.TryGetValue(key, out var earlier))
        {
            if (!earlier.IsCompleted) return [];
            _pending.Remove(key);
            return _known[key] = earlier.Result;
        }
        var read = Task.Factory.StartNew(() => Read(d), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!read.Wait(ReadTimeout))
        {
            _pending[key] = read;
            return [];
        }
        if (_known.Count >= MaxDevices) _known.Clear();
        return _known[key] = read.Result;
    }

    private IReadOnlyList<MdSuperblock> Read(SysfsBlockDevice d)
    {
        try
        {
            string? real = LinkSafePath.Resolve(d.Node, out _);
            string? root = LinkSafePath.Resolve(devRoot, out _);
            if (real is null || root is null || !LinkSafePath.IsInside(real, root)) return [];
            using var handle = File.OpenHandle(real, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return MdSuperblock.ReadAll(BlockSource.FromHandle(handle, d.SizeBytes), d.SizeBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];   // a device that cannot be read is no member we could add either
        }
    }
}

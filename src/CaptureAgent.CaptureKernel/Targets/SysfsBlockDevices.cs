namespace CaptureAgent.Targets;

/// <summary>A block device as sysfs describes it, with the node devtmpfs gives it under the /dev root.</summary>
public sealed record SysfsBlockDevice
{
    /// <summary>The kernel name: vda, vda1, nvme0n1p2, dm-0.</summary>
    public required string Name { get; init; }
    /// <summary>The device node: the /dev root joined with the uevent DEVNAME (normally the kernel name).</summary>
    public required string Node { get; init; }
    public required int Major { get; init; }
    public required int Minor { get; init; }
    public bool IsPartition { get; init; }
    /// <summary>The kernel's partition number (sysfs <c>partition</c>), 0 for a whole disk.</summary>
    public int PartitionNumber { get; init; }
    /// <summary>The whole disk a partition belongs to (vda for vda1); null for a disk.</summary>
    public string? Parent { get; init; }
    /// <summary>Size in 512-byte sectors whatever the device's block size (sysfs <c>size</c>); -1 if unreadable.</summary>
    public long Sectors { get; init; } = -1;
    public bool Removable { get; init; }
    public bool ReadOnly { get; init; }
    /// <summary>The GPT partition name the kernel read (uevent PARTNAME), if any.</summary>
    public string? PartitionName { get; init; }
    /// <summary>A device-mapper device's name (dm/name): what /dev/mapper/NAME would be.</summary>
    public string? DmName { get; init; }
    /// <summary>A device-mapper target's uuid (dm/uuid): its prefix says what kind (CRYPT-, LVM-, mpath-).</summary>
    public string? DmUuid { get; init; }
    /// <summary>Devices this one is built on (a dm or md device's members).</summary>
    public IReadOnlyList<string> Slaves { get; init; } = [];
    /// <summary>Devices built on this one: a member of md/dm is not the volume itself.</summary>
    public IReadOnlyList<string> Holders { get; init; } = [];
    /// <summary>The device's directory under /sys/devices, links resolved.</summary>
    public required string SysfsPath { get; init; }

    public string DeviceNumber => $"{Major}:{Minor}";
    public long SizeBytes => Sectors < 0 ? -1 : Sectors * 512;
}

/// <summary>
/// Block devices from sysfs (<c>class/block</c>), the only inventory a capture kernel without udev
/// has. Both roots are parameters so tests can hand in a fake tree.
/// </summary>
public static class SysfsBlockDevices
{
    /// <summary>Every block device, disks each followed by their partitions in partition order.</summary>
    public static List<SysfsBlockDevice> List(string sysRoot = "/sys", string devRoot = "/dev")
    {
        var result = new List<SysfsBlockDevice>();
        string classDir = Path.Combine(sysRoot, "class", "block");
        IEnumerable<string> entries;
        try { entries = Directory.EnumerateFileSystemEntries(classDir).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return result; }
        string? sysReal = LinkSafePath.Resolve(sysRoot, out _);
        foreach (var entry in entries)
            if (Read(entry, sysReal, devRoot) is { } device) result.Add(device);
        result.Sort((a, b) =>
        {
            int byDisk = string.CompareOrdinal(a.Parent ?? a.Name, b.Parent ?? b.Name);
            return byDisk != 0 ? byDisk : a.PartitionNumber.CompareTo(b.PartitionNumber);
        });
        return result;
    }

    /// <summary>One device by kernel name, or null if sysfs does not list it.</summary>
    public static SysfsBlockDevice? Get(string name, string sysRoot = "/sys", string devRoot = "/dev")
    {
        if (name.Length == 0 || name.Contains('/') || name is "." or "..") return null;
        return Read(Path.Combine(sysRoot, "class", "block", name), LinkSafePath.Resolve(sysRoot, out _), devRoot);
    }

    /// <summary>True when sysfs is there to ask at all (a capture kernel that forgot to mount it has none).</summary>
    public static bool SysfsPresent(string sysRoot = "/sys") => Directory.Exists(Path.Combine(sysRoot, "class", "block"));

    private static SysfsBlockDevice? Read(string entry, string? sysReal, string devRoot)
    {
        // Devices come and go while we look; one that vanished mid-read is simply not listed.
        try
        {
            string name = Path.GetFileName(entry);
            string? real = LinkSafePath.Resolve(entry, out _);
            if (real is null || sysReal is null || !LinkSafePath.IsInside(real, sysReal)) return null;
            if (!TryParseDeviceNumber(SysfsAttribute.Read(real, "dev"), out int major, out int minor)) return null;

            var uevent = SysfsAttribute.ReadUevent(real);
            string devName = uevent.GetValueOrDefault("DEVNAME") ?? name.Replace('!', '/');
            bool isPartition = SysfsAttribute.Exists(real, "partition");
            int number = isPartition && int.TryParse(SysfsAttribute.Read(real, "partition"), out int n) ? n : 0;
            string? parent = null, removableFrom = real;
            if (isPartition)
            {
                string parentDir = Path.GetDirectoryName(real)!;
                parent = SysfsAttribute.Exists(parentDir, "dev") ? Path.GetFileName(parentDir) : DiskNameOf(name);
                removableFrom = SysfsAttribute.Exists(parentDir, "dev") ? parentDir : real;
            }
            return new SysfsBlockDevice
            {
                Name = name,
                Node = Path.Combine(devRoot, devName),
                Major = major,
                Minor = minor,
                IsPartition = isPartition,
                PartitionNumber = number,
                Parent = parent,
                Sectors = long.TryParse(SysfsAttribute.Read(real, "size"), out long sectors) ? sectors : -1,
                Removable = SysfsAttribute.Read(removableFrom, "removable") == "1",
                ReadOnly = SysfsAttribute.Read(real, "ro") == "1",
                PartitionName = uevent.GetValueOrDefault("PARTNAME"),
                DmName = SysfsAttribute.Read(real, "dm/name"),
                DmUuid = SysfsAttribute.Read(real, "dm/uuid") is { Length: > 0 } u ? u : null,
                Slaves = SysfsAttribute.List(real, "slaves"),
                Holders = SysfsAttribute.List(real, "holders"),
                SysfsPath = real,
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool TryParseDeviceNumber(string? text, out int major, out int minor)
    {
        major = minor = 0;
        int colon = text?.IndexOf(':') ?? -1;
        return colon > 0 && int.TryParse(text.AsSpan(0, colon), out major) && int.TryParse(text.AsSpan(colon + 1), out minor);
    }

    /// <summary>The disk a partition name belongs to when sysfs nesting cannot say: sda1 → sda, nvme0n1p2 → nvme0n1.</summary>
    internal static string DiskNameOf(string partition)
    {
        int end = partition.Length;
        while (end > 0 && char.IsAsciiDigit(partition[end - 1])) end--;
        if (end == partition.Length || end == 0) return partition;
        // Disks whose names end in a digit separate the partition number with 'p' (nvme0n1p2, mmcblk0p1, loop0p1).
        if (partition[end - 1] == 'p' && end >= 2 && char.IsAsciiDigit(partition[end - 2])) end--;
        return partition[..end];
    }
}

/// <summary>Reading sysfs attributes: small text files, absent ones are null rather than errors.</summary>
internal static class SysfsAttribute
{
    public static string? Read(string directory, string attribute)
    {
        try { return File.ReadAllText(Path.Combine(directory, attribute)).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    public static bool Exists(string directory, string attribute) => File.Exists(Path.Combine(directory, attribute));

    public static Dictionary<string, string> ReadUevent(string directory)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (Read(directory, "uevent") ?? "").Split('\n'))
        {
            int eq = line.IndexOf('=');
            if (eq > 0) values[line[..eq]] = line[(eq + 1)..];
        }
        return values;
    }

    public static IReadOnlyList<string> List(string directory, string subdirectory)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries(Path.Combine(directory, subdirectory))
                .Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }

    /// <summary>The last component of a symbolic link's target (a driver link names its driver, a module link its module).</summary>
    public static string? LinkName(string path)
    {
        try { return new FileInfo(path).LinkTarget is { } target ? Path.GetFileName(target.TrimEnd('/')) : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}

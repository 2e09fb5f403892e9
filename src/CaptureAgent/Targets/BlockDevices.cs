namespace CaptureAgent.Targets;

/// <summary>A block device as sysfs lists it, with its device node under the /dev root.</summary>
public sealed record BlockDevice(string Name, string Node, string MajorMinor, bool IsPartition, long Sectors);

/// <summary>Enumerates block devices from sysfs; devtmpfs names the nodes after the kernel names.</summary>
public static class BlockDevices
{
    public static List<BlockDevice> List(string sysRoot = "/sys", string devRoot = "/dev")
    {
        var result = new List<BlockDevice>();
        string cls = Path.Combine(sysRoot, "class", "block");
        if (!Directory.Exists(cls)) return result;
        foreach (var entry in Directory.GetFileSystemEntries(cls).OrderBy(e => e, StringComparer.Ordinal))
        {
            string name = Path.GetFileName(entry);
            if (name.StartsWith("loop", StringComparison.Ordinal) || name.StartsWith("ram", StringComparison.Ordinal)) continue;
            string dev = Read(Path.Combine(entry, "dev")) ?? "";
            long.TryParse(Read(Path.Combine(entry, "size")), out long sectors);
            result.Add(new BlockDevice(name, Path.Combine(devRoot, name), dev, File.Exists(Path.Combine(entry, "partition")), sectors));
        }
        return result;
    }

    private static string? Read(string path)
    {
        try { return File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}

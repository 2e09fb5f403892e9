namespace CaptureAgent.Targets;

/// <summary>
/// The kernel modules a block device depends on, read from sysfs in the first kernel: each level
/// from the disk up its device tree names its driver's module (vda: virtio_blk, then virtio_pci),
/// plus the filesystem's module. What the capture initramfs must carry to reach the dump target.
/// </summary>
public static class DriverChain
{
    public static List<string> ModulesFor(string deviceName, string? filesystemType, string sysRoot = "/sys")
    {
        var modules = new List<string>();
        string block = Path.Combine(sysRoot, "class", "block", deviceName);
        if (!Directory.Exists(block)) throw new IOException($"no block device {deviceName} in {sysRoot}/class/block");
        // A partition's device link lives on its disk.
        string real = new DirectoryInfo(block).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? block;
        if (File.Exists(Path.Combine(real, "partition"))) real = Path.GetDirectoryName(real)!;
        string? dev = Path.Combine(real, "device");
        dev = Directory.Exists(dev) ? new DirectoryInfo(dev).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? dev : null;
        string devicesRoot = Path.GetFullPath(Path.Combine(sysRoot, "devices"));
        for (var d = dev; d is not null && d.StartsWith(devicesRoot, StringComparison.Ordinal) && d.Length > devicesRoot.Length; d = Path.GetDirectoryName(d))
        {
            string module = Path.Combine(d, "driver", "module");
            if (Directory.Exists(module))
            {
                string? name = new DirectoryInfo(module).ResolveLinkTarget(returnFinalTarget: true)?.Name;
                if (name is not null && !modules.Contains(name)) modules.Add(name);
            }
        }
        if (filesystemType is { Length: > 0 } fs && !modules.Contains(fs)) modules.Add(fs);
        return modules;
    }
}

namespace CaptureAgent.Targets;

/// <summary>
/// Whether the capture kernel can bring up the storage stack a device of this machine sits on, read
/// from sysfs on the first kernel: dm-crypt/LUKS cannot be unlocked there (no key, no one to type
/// it), md arrays only with native metadata and a level the kernel still has. LVM segment types
/// are judged by the LVM activation code.
/// </summary>
public static class StackReach
{
    private const int MaxDepth = 8;

    /// <summary>What to do instead of a target the capture kernel cannot unlock.</summary>
    public const string EncryptedAdvice = "the capture kernel cannot unlock it; put the dump target outside the encrypted volume, or use a network target (nfs:, ssh:)";

    /// <summary>Why the capture kernel cannot reach <paramref name="device"/> (a kernel name), or null when it can.</summary>
    /// <param name="probe">Reads what a node holds (tests replace it); by default the superblock probe.</param>
    public static string? Obstacle(string device, string sysRoot = "/sys", string devRoot = "/dev", Func<string, long, VolumeIdentity>? probe = null)
    {
        probe ??= (node, length) => SuperblockProbe.ProbePath(node, confineTo: devRoot, knownLength: length);
        return Walk(device, 0, new HashSet<string>(StringComparer.Ordinal));

        string? Walk(string name, int depth, HashSet<string> visited)
        {
            if (depth > MaxDepth) return $"{device} sits on a stack more than {MaxDepth} levels deep";
            if (!visited.Add(name)) return null;
            var d = SysfsBlockDevices.Get(name, sysRoot, devRoot);
            if (d is null) return null;
            var disk = d.IsPartition && d.Parent is not null ? SysfsBlockDevices.Get(d.Parent, sysRoot, devRoot) ?? d : d;
            if (Layer(disk) is { } layer) return layer;
            foreach (var slave in disk.Slaves)
                if (Walk(slave, depth + 1, visited) is { } below) return below;
            // A bottom device that is itself a LUKS container: the volume named is the container.
            if (disk.Slaves.Count == 0 && d.Sectors > 0 && probe(d.Node, d.SizeBytes) is { Type: "crypto_LUKS" } luks)
                return $"{device} is on {d.Name}, an encrypted volume (LUKS{luks.Version}): {EncryptedAdvice}";
            return null;
        }

        string? Layer(SysfsBlockDevice d)
        {
            if (d.DmUuid is { } uuid && uuid.StartsWith("CRYPT-", StringComparison.Ordinal))
                return $"{device} is inside the encrypted volume {d.DmName ?? d.Name} (dm-crypt {uuid.Split('-')[1]}): {EncryptedAdvice}";
            if (d.Name.StartsWith("md", StringComparison.Ordinal) && Directory.Exists(Path.Combine(d.SysfsPath, "md")))
                return MdObstacle(d);
            return null;
        }

        string? MdObstacle(SysfsBlockDevice d)
        {
            string metadata = SysfsAttribute.Read(d.SysfsPath, "md/metadata_version") ?? "";
            if (metadata.StartsWith("external:", StringComparison.Ordinal))
                return $"{device} is on {d.Name}, an md array with external metadata ({metadata[9..]}: Intel IMSM or DDF firmware RAID), which the capture kernel does not assemble";
            string level = SysfsAttribute.Read(d.SysfsPath, "md/level") ?? "";
            return level is "raid0" or "raid1" or "raid4" or "raid5" or "raid6" or "raid10" or "linear" or ""
                ? null
                : $"{device} is on {d.Name}, an md array of level {level}, which the capture kernel does not assemble";
        }
    }
}

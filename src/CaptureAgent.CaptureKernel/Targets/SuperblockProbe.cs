namespace CaptureAgent.Targets;

/// <summary>
/// Says what a block device or image holds by reading its superblocks, as blkid -p does: ext2/3/4,
/// xfs, btrfs, vfat, swap, and (by name only) LUKS, md and LVM containers. The capture kernel has no
/// udev and no blkid, so this is how UUID= and LABEL= find the dump target.
/// Reads are a handful of fixed ranges (at most a few tens of KiB); anything that does not parse is
/// <see cref="VolumeIdentity.Unknown"/>, and nothing throws.
/// </summary>
public static class SuperblockProbe
{
    // Containers first: a stale filesystem signature inside one must not be taken for the volume.
    private static readonly Func<BlockSource, VolumeIdentity?>[] Probers =
    [
        ContainerSignatures.Luks,
        ContainerSignatures.MdRaid,
        ContainerSignatures.Lvm2,
        ExtSuperblock.Probe,
        XfsSuperblock.Probe,
        BtrfsSuperblock.Probe,
        FatBootSector.Probe,
        SwapHeader.Probe,
    ];

    /// <summary>
    /// Probes the device node or image file at <paramref name="path"/>. Symbolic links are followed
    /// only step by step and, when <paramref name="confineTo"/> is given, only if they end inside it
    /// (a /dev/disk/by-* link must lead to a node in /dev). <paramref name="knownLength"/> is the
    /// device size in bytes when known (sysfs), since stat does not give it for block devices.
    /// </summary>
    public static VolumeIdentity ProbePath(string path, string? confineTo = null, long knownLength = -1)
    {
        try
        {
            string? real = LinkSafePath.Resolve(path, out string? problem);
            if (real is null) return VolumeIdentity.Unreadable(problem ?? path);
            if (confineTo is not null)
            {
                string? root = LinkSafePath.Resolve(confineTo, out _);
                if (root is null || !LinkSafePath.IsInside(real, root))
                    return VolumeIdentity.Unreadable($"{path} leads to {real}, outside {confineTo}");
            }
            if (Directory.Exists(real)) return VolumeIdentity.Unreadable($"{path} is a directory");
            if (!File.Exists(real)) return VolumeIdentity.Unreadable($"{path} does not exist");
            using var handle = File.OpenHandle(real, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long length = knownLength >= 0 ? knownLength : RandomAccess.GetLength(handle);
            // stat gives a block device no size; its end (md 1.0 and 0.90 superblocks) needs one.
            if (length <= 0 && Native.Libc.IsBlockDevice(real))
                try { length = Native.Libc.DeviceSize(handle); } catch (IOException) { length = -1; }
            // A block device reports length 0 to stat: treat that as unknown and let short reads decide.
            return Probe(BlockSource.FromHandle(handle, length > 0 ? length : -1));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return VolumeIdentity.Unreadable(e.Message);   // .NET's messages name the path
        }
    }

    /// <summary>Probes an in-memory image of a device's first bytes (at least 68 KiB to see btrfs).</summary>
    public static VolumeIdentity Probe(ReadOnlyMemory<byte> image) => Probe(BlockSource.FromBytes(image));

    internal static VolumeIdentity Probe(BlockSource source)
    {
        VolumeIdentity? first = null, rejected = null;
        List<string>? others = null;
        string? error = null;
        foreach (var prober in Probers)
        {
            VolumeIdentity? found;
            try { found = prober(source); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                error ??= e.Message;   // an I/O error on one range; the others may still read
                continue;
            }
            if (found is null) continue;
            if (!found.IsKnown)
            {
                rejected ??= found;   // a checksum failure: reported only if nothing sound is there
                continue;
            }
            if (first is null) first = found;
            else (others ??= []).Add(found.Type);
        }
        if (first is null) return error is not null ? VolumeIdentity.Unreadable(error) : rejected ?? VolumeIdentity.Unknown;
        return others is null ? first : first with { AlsoFound = others };
    }
}

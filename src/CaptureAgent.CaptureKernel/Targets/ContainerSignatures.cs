using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>
/// Volumes that hold other volumes: LUKS, md RAID (superblocks 0.90 and 1.x) and LVM physical
/// volumes. Named so a "seen" list explains why a filesystem label is not visible there; nothing
/// inside them is read.
/// </summary>
internal static class ContainerSignatures
{
    private static ReadOnlySpan<byte> LuksMagic => [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE];

    public static VolumeIdentity? Luks(BlockSource source)
    {
        var h = source.Read(0, 512);
        if (h is null || !h.AsSpan(0, 6).SequenceEqual(LuksMagic)) return null;
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(6));
        if (version is not (1 or 2)) return null;
        string? uuid = SuperblockText.Label(h.AsSpan(168, 40), Encoding.ASCII);
        string? label = version == 2 ? SuperblockText.Label(h.AsSpan(24, 48)) : null;
        return new VolumeIdentity("crypto_LUKS", uuid, label) { Usage = VolumeUsage.Crypto, Version = version.ToString() };
    }

    /// <summary>
    /// An md member: superblock 1.1 and 1.2 at the start, 1.0 and 0.90 at the end (read only when
    /// the device's length is known). UUID and LABEL as blkid gives them: the array's.
    /// </summary>
    public static VolumeIdentity? MdRaid(BlockSource source)
    {
        var found = Md.MdSuperblock.ReadAll(source, source.Length);
        if (found.Count == 0) return null;
        var sb = found.OrderByDescending(s => s.MajorVersion).First();
        // mdadm's 8:8:8:8 digits regrouped as blkid prints them (0.90's four words in value order too).
        string hex = sb.ArrayUuid.Replace(":", "");
        string uuid = $"{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..]}";
        return new VolumeIdentity("linux_raid_member", uuid, sb.Name) { Usage = VolumeUsage.Raid, Version = sb.MajorVersion == 0 ? "0.90.0" : sb.Version };
    }

    public static VolumeIdentity? Lvm2(BlockSource source)
    {
        // The label may sit in any of the first four sectors.
        var head = source.Read(0, 4 * 512);
        if (head is null) return null;
        for (int sector = 0; sector < 4; sector++)
        {
            var s = head.AsSpan(sector * 512, 512);
            if (s[..8].SequenceEqual("LABELONE"u8) && s.Slice(24, 8).SequenceEqual("LVM2 001"u8))
                return new VolumeIdentity("LVM2_member") { Usage = VolumeUsage.Raid };
        }
        return null;
    }
}

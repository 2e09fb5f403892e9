using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>
/// Volumes that hold other volumes: LUKS, md RAID (superblock 1.1 and 1.2) and LVM physical
/// volumes. Named so a "seen" list explains why a filesystem label is not visible there; nothing
/// inside them is read.
/// </summary>
internal static class ContainerSignatures
{
    private const uint MdMagic = 0xA92B4EFC;
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

    public static VolumeIdentity? MdRaid(BlockSource source)
    {
        foreach (long at in (long[])[0, 4096])
        {
            var sb = source.Read(at, 8);
            if (sb is not null && BinaryPrimitives.ReadUInt32LittleEndian(sb) == MdMagic && BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(4)) == 1)
                return new VolumeIdentity("linux_raid_member") { Usage = VolumeUsage.Raid };
        }
        return null;
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

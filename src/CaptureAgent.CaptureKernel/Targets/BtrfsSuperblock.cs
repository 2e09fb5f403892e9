using System.Buffers.Binary;

namespace CaptureAgent.Targets;

/// <summary>
/// btrfs: the primary superblock, 4 KiB at 64 KiB, magic "_BHRfS_M" at 0x40, fsid at 0x20, the
/// device's own uuid in the embedded dev_item, label at 0x12B (256 bytes). Superblocks carry a
/// checksum of everything after the checksum field; crc32c (the default) is verified.
/// </summary>
internal static class BtrfsSuperblock
{
    private const int Offset = 64 * 1024, Size = 4096;
    private const ushort ChecksumCrc32C = 0;

    public static VolumeIdentity? Probe(BlockSource source)
    {
        var sb = source.Read(Offset, Size);
        if (sb is null || !sb.AsSpan(0x40, 8).SequenceEqual("_BHRfS_M"u8)) return null;
        if (BinaryPrimitives.ReadUInt64LittleEndian(sb.AsSpan(0x30)) != Offset) return null;   // bytenr: where this copy belongs
        ushort checksumType = BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(0xC4));
        // xxhash64, sha256 and blake2b superblocks are taken on the magic and bytenr alone.
        if (checksumType == ChecksumCrc32C
            && Checksums.Crc32C(sb.AsSpan(0x20)) != BinaryPrimitives.ReadUInt32LittleEndian(sb))
            return VolumeIdentity.Rejected("btrfs superblock checksum mismatch");
        const int DevItem = 0xC9, DevItemUuid = DevItem + 66;
        return new VolumeIdentity("btrfs", SuperblockText.Uuid(sb.AsSpan(0x20, 16)), SuperblockText.Label(sb.AsSpan(0x12B, 256)))
        {
            Usage = VolumeUsage.Filesystem,
            SubUuid = SuperblockText.Uuid(sb.AsSpan(DevItemUuid, 16)),
        };
    }
}

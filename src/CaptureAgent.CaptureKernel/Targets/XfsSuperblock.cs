using System.Buffers.Binary;

namespace CaptureAgent.Targets;

/// <summary>
/// xfs: a big-endian superblock in sector 0 ("XFSB"), uuid at 32, 12-byte name at 108. The magic is
/// four common letters, so the geometry must also make sense before the device is called xfs; a
/// version 5 superblock also has to pass its crc32c.
/// </summary>
internal static class XfsSuperblock
{
    private const int Size = 512;

    public static VolumeIdentity? Probe(BlockSource source)
    {
        var sb = source.Read(0, Size);
        if (sb is null || !sb.AsSpan(0, 4).SequenceEqual("XFSB"u8)) return null;
        var s = sb.AsSpan();
        uint blockSize = BinaryPrimitives.ReadUInt32BigEndian(s[4..]);
        ulong dataBlocks = BinaryPrimitives.ReadUInt64BigEndian(s[8..]);
        uint agBlocks = BinaryPrimitives.ReadUInt32BigEndian(s[84..]);
        uint agCount = BinaryPrimitives.ReadUInt32BigEndian(s[88..]);
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(s[100..]);
        ushort sectorSize = BinaryPrimitives.ReadUInt16BigEndian(s[102..]);
        ushort inodeSize = BinaryPrimitives.ReadUInt16BigEndian(s[104..]);
        ushort inodesPerBlock = BinaryPrimitives.ReadUInt16BigEndian(s[106..]);
        byte blockLog = s[120], sectorLog = s[121], inodeLog = s[122], inProgress = s[126];

        int versionNumber = version & 0x000F;
        if (versionNumber is < 1 or > 5) return null;
        if (sectorSize is < 512 or > 32768 || sectorLog > 15 || sectorSize != 1 << sectorLog) return null;
        if (blockSize is < 512 or > 65536 || blockLog > 16 || blockSize != 1u << blockLog || blockSize < sectorSize) return null;
        if (inodeSize is < 256 or > 2048 || inodeLog > 11 || inodeSize != 1 << inodeLog || inodesPerBlock != blockSize / inodeSize) return null;
        if (agCount == 0 || agBlocks == 0 || dataBlocks == 0) return null;
        if (inProgress != 0) return null;   // mkfs.xfs never finished

        if (versionNumber == 5)
        {
            // The v5 crc covers the whole sector with the crc field (little-endian, at 224) taken as zero.
            var sector = sectorSize <= Size ? sb : source.Read(0, sectorSize);
            if (sector is null) return null;
            uint stored = BinaryPrimitives.ReadUInt32LittleEndian(sector.AsSpan(224));
            uint crc = Checksums.Crc32CUpdate(~0u, sector.AsSpan(0, 224));
            crc = Checksums.Crc32CUpdate(crc, [0, 0, 0, 0]);
            crc = ~Checksums.Crc32CUpdate(crc, sector.AsSpan(228, sectorSize - 228));
            if (crc != stored) return VolumeIdentity.Rejected("xfs superblock checksum mismatch");
        }

        return new VolumeIdentity("xfs", SuperblockText.Uuid(s.Slice(32, 16)), SuperblockText.Label(s.Slice(108, 12)))
        {
            Usage = VolumeUsage.Filesystem,
        };
    }
}

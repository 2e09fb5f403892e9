using System.Buffers.Binary;

namespace CaptureAgent.Targets;

/// <summary>
/// ext2/ext3/ext4 (and an external ext journal, jbd): a 1024-byte little-endian superblock at byte
/// 1024. The name follows blkid's rule: the features present decide which of the three drivers
/// could mount it, not what mkfs was called as.
/// </summary>
internal static class ExtSuperblock
{
    private const int Offset = 1024, Size = 1024;
    private const ushort Magic = 0xEF53;

    private const uint CompatHasJournal = 0x0004;
    private const uint IncompatFiletype = 0x0002, IncompatRecover = 0x0004, IncompatJournalDev = 0x0008, IncompatMetaBg = 0x0010;
    private const uint RoCompatSparseSuper = 0x0001, RoCompatLargeFile = 0x0002, RoCompatBtreeDir = 0x0004, RoCompatMetadataCsum = 0x0400;
    private const uint FlagsTestFilesystem = 0x0004;

    // What the ext2 and ext3 drivers understood; anything beyond makes it ext4.
    private const uint Ext2Incompat = IncompatFiletype | IncompatMetaBg;
    private const uint Ext3Incompat = IncompatFiletype | IncompatRecover | IncompatMetaBg;
    private const uint Ext23RoCompat = RoCompatSparseSuper | RoCompatLargeFile | RoCompatBtreeDir;

    public static VolumeIdentity? Probe(BlockSource source)
    {
        var sb = source.Read(Offset, Size);
        if (sb is null || BinaryPrimitives.ReadUInt16LittleEndian(sb.AsSpan(0x38)) != Magic) return null;
        if (BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x18)) > 6) return null;   // blocks above 64 KiB: not ext
        uint compat = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x5C));
        uint incompat = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x60));
        uint roCompat = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x64));
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x160));

        // With metadata_csum the superblock carries crc32c(~0, first 1020 bytes), uninverted, at 0x3FC.
        // A mismatch means a torn or stale superblock: blkid ignores it, so do we.
        if ((roCompat & RoCompatMetadataCsum) != 0)
        {
            if (sb[0x175] != 1) return VolumeIdentity.Rejected("ext superblock with an unknown checksum type");
            uint stored = BinaryPrimitives.ReadUInt32LittleEndian(sb.AsSpan(0x3FC));
            if (Checksums.Crc32CUpdate(~0u, sb.AsSpan(0, 0x3FC)) != stored) return VolumeIdentity.Rejected("ext superblock checksum mismatch");
        }

        bool journal = (compat & CompatHasJournal) != 0;
        bool beyondExt3 = (incompat & ~Ext3Incompat) != 0 || (roCompat & ~Ext23RoCompat) != 0;
        string type;
        var usage = VolumeUsage.Filesystem;
        if ((incompat & IncompatJournalDev) != 0) { type = "jbd"; usage = VolumeUsage.Other; }
        else if (!journal && (incompat & ~Ext2Incompat) == 0 && (roCompat & ~Ext23RoCompat) == 0) type = "ext2";
        else if (journal && !beyondExt3) type = "ext3";
        else if (beyondExt3) type = (flags & FlagsTestFilesystem) != 0 ? "ext4dev" : "ext4";
        else return null;   // e.g. needs_recovery without a journal: no driver would take it, blkid names nothing

        return new VolumeIdentity(type, SuperblockText.Uuid(sb.AsSpan(0x68, 16)), SuperblockText.Label(sb.AsSpan(0x78, 16)))
        {
            Usage = usage,
        };
    }
}

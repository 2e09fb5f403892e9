using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>
/// vfat (FAT12/16/32), after Microsoft's FAT specification: the BIOS parameter block in sector 0
/// must be self-consistent and name itself FAT. The UUID is the volume serial number, printed as
/// blkid does (XXXX-XXXX, uppercase); the label is the volume-label entry of the root directory,
/// else the boot sector's copy, "NO NAME" meaning none.
/// </summary>
internal static class FatBootSector
{
    private const int RootDirectoryReadLimit = 32 * 1024;
    private const byte AttributeVolumeId = 0x08, AttributeDirectory = 0x10, AttributeLongName = 0x0F;

    public static VolumeIdentity? Probe(BlockSource source)
    {
        var b = source.Read(0, 512);
        if (b is null) return null;
        var s = b.AsSpan();
        if (!(s[0] == 0xEB && s[2] == 0x90) && s[0] != 0xE9) return null;   // x86 jump over the BPB
        bool fat32Name = s.Slice(0x52, 5).SequenceEqual("FAT32"u8);
        if (!fat32Name && !s.Slice(0x36, 3).SequenceEqual("FAT"u8)) return null;

        int bytesPerSector = BinaryPrimitives.ReadUInt16LittleEndian(s[11..]);
        int sectorsPerCluster = s[13];
        int reserved = BinaryPrimitives.ReadUInt16LittleEndian(s[14..]);
        int fats = s[16];
        int rootEntries = BinaryPrimitives.ReadUInt16LittleEndian(s[17..]);
        long totalSectors = BinaryPrimitives.ReadUInt16LittleEndian(s[19..]);
        byte media = s[21];
        long fatSize = BinaryPrimitives.ReadUInt16LittleEndian(s[22..]);
        if (totalSectors == 0) totalSectors = BinaryPrimitives.ReadUInt32LittleEndian(s[32..]);
        bool fat32Layout = fatSize == 0;
        if (fat32Layout) fatSize = BinaryPrimitives.ReadUInt32LittleEndian(s[36..]);

        if (bytesPerSector is not (512 or 1024 or 2048 or 4096)) return null;
        if (sectorsPerCluster == 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) != 0) return null;
        if (reserved == 0 || fats == 0 || fatSize == 0 || totalSectors == 0) return null;
        if (media != 0xF0 && media < 0xF8) return null;
        if (fat32Layout && rootEntries != 0) return null;

        long rootDirSectors = ((long)rootEntries * 32 + bytesPerSector - 1) / bytesPerSector;
        long dataStart = reserved + fats * fatSize + rootDirSectors;
        if (dataStart >= totalSectors) return null;
        long clusters = (totalSectors - dataStart) / sectorsPerCluster;
        string version = clusters < 4085 ? "FAT12" : clusters < 65525 ? "FAT16" : "FAT32";

        // The extended boot record (signature 0x29) sits after the FAT32-only fields on FAT32.
        int ebr = fat32Layout ? 0x40 : 0x24;
        string? uuid = null, bootLabel = null;
        if (s[ebr + 2] == 0x29)
        {
            uint serial = BinaryPrimitives.ReadUInt32LittleEndian(s[(ebr + 3)..]);
            uuid = $"{serial >> 16:X4}-{serial & 0xFFFF:X4}";
            bootLabel = LabelText(s.Slice(ebr + 7, 11));
        }

        long rootOffset, rootBytes;
        if (fat32Layout)
        {
            uint rootCluster = BinaryPrimitives.ReadUInt32LittleEndian(s[44..]);
            rootOffset = rootCluster < 2 ? -1 : (dataStart + (rootCluster - 2) * (long)sectorsPerCluster) * bytesPerSector;
            rootBytes = (long)sectorsPerCluster * bytesPerSector;   // the first cluster: where mkfs puts the label
        }
        else
        {
            rootOffset = (reserved + fats * fatSize) * bytesPerSector;
            rootBytes = rootEntries * 32L;
        }
        string? rootLabel = rootOffset < 0 ? null : RootDirectoryLabel(source, rootOffset, (int)Math.Min(rootBytes, RootDirectoryReadLimit));

        return new VolumeIdentity("vfat", uuid, rootLabel ?? bootLabel)
        {
            Usage = VolumeUsage.Filesystem,
            Version = version,
        };
    }

    private static string? RootDirectoryLabel(BlockSource source, long offset, int bytes)
    {
        bytes -= bytes % 32;
        var dir = bytes <= 0 ? null : source.Read(offset, bytes);
        if (dir is null) return null;
        for (int e = 0; e + 32 <= dir.Length; e += 32)
        {
            byte first = dir[e], attributes = dir[e + 11];
            if (first == 0x00) break;          // end of directory
            if (first == 0xE5) continue;       // deleted entry
            if (attributes == AttributeLongName) continue;
            if ((attributes & (AttributeVolumeId | AttributeDirectory)) == AttributeVolumeId)
                return LabelText(dir.AsSpan(e, 11));
        }
        return null;
    }

    private static string? LabelText(ReadOnlySpan<byte> raw)
    {
        Span<byte> name = stackalloc byte[11];
        raw.CopyTo(name);
        if (name[0] == 0x05) name[0] = 0xE5;   // 0xE5 as a first byte is stored as 0x05
        string? label = SuperblockText.Label(name, Encoding.Latin1);
        return label is null or "NO NAME" ? null : label;
    }
}

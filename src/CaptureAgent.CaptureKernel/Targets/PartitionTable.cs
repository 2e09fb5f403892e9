using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>One partition as its table describes it.</summary>
/// <param name="Number">The kernel's partition number (vda3 is 3): GPT entry index + 1, or the MBR slot.</param>
/// <param name="PartUuid">PARTUUID as blkid and root=PARTUUID= spell it: the GPT entry's unique GUID, or
/// the MBR disk signature and partition number ("1234abcd-03").</param>
/// <param name="Name">The GPT partition name (PARTLABEL); MBR has none.</param>
public sealed record PartitionEntry(int Number, string PartUuid, string? Name, string? TypeGuid, long FirstSector, long LastSector);

/// <summary>
/// The partition table of a whole disk: GPT (UEFI specification, chapter 5) or MBR. Read to answer
/// PARTUUID= and PARTLABEL=, which the kernel does not export in sysfs. The kernel has already
/// decided which devices are partitions; this only names them.
/// </summary>
public sealed class PartitionTable
{
    private const int MaxEntryArrayBytes = BlockSource.MaxRead;

    /// <summary>"gpt" or "dos", blkid's PTTYPE.</summary>
    public string Type { get; }

    /// <summary>blkid's PTUUID: the GPT disk GUID, or the MBR disk signature as 8 hex digits.</summary>
    public string? DiskId { get; }

    public IReadOnlyList<PartitionEntry> Partitions { get; }

    private PartitionTable(string type, string? diskId, IReadOnlyList<PartitionEntry> partitions)
    {
        Type = type;
        DiskId = diskId;
        Partitions = partitions;
    }

    public PartitionEntry? Partition(int number) => Partitions.FirstOrDefault(p => p.Number == number);

    /// <summary>The table of the disk at <paramref name="path"/>, or null if it has none that parses (or cannot be read).</summary>
    public static PartitionTable? ReadPath(string path, long knownLength = -1)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long length = knownLength >= 0 ? knownLength : RandomAccess.GetLength(handle);
            return Read(BlockSource.FromHandle(handle, length > 0 ? length : -1));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }

    public static PartitionTable? Read(ReadOnlyMemory<byte> image) => Read(BlockSource.FromBytes(image));

    internal static PartitionTable? Read(BlockSource source)
    {
        try
        {
            var mbr = source.Read(0, 512);
            if (mbr is null || mbr[510] != 0x55 || mbr[511] != 0xAA) return null;
            bool protective = false;
            for (int i = 0; i < 4; i++)
                if (mbr[446 + i * 16 + 4] == 0xEE) protective = true;
            if (protective)
                return ReadGpt(source, 512) ?? ReadGpt(source, 4096);
            // A FAT boot sector ends in 55 AA as well: a whole-disk ("superfloppy") vfat has no table.
            return FatBootSector.Probe(source) is null ? ReadMbr(mbr) : null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }

    private static PartitionTable? ReadMbr(byte[] mbr)
    {
        var partitions = new List<PartitionEntry>();
        uint signature = BinaryPrimitives.ReadUInt32LittleEndian(mbr.AsSpan(440));
        for (int i = 0; i < 4; i++)
        {
            var e = mbr.AsSpan(446 + i * 16, 16);
            if (e[0] is not (0x00 or 0x80)) return null;   // a boot flag that is neither: not a partition table
            byte type = e[4];
            uint start = BinaryPrimitives.ReadUInt32LittleEndian(e[8..]);
            uint sectors = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
            if (type == 0 || sectors == 0) continue;
            partitions.Add(new PartitionEntry(i + 1, MbrPartUuid(signature, i + 1), null, type.ToString("x2"), start, start + (long)sectors - 1));
        }
        return new PartitionTable("dos", signature.ToString("x8"), partitions);
    }

    /// <summary>The PARTUUID of partition <paramref name="number"/> on an MBR disk (logical ones too: 5, 6...).</summary>
    public static string MbrPartUuid(uint signature, int number) => $"{signature:x8}-{number:x2}";

    private static PartitionTable? ReadGpt(BlockSource source, int sectorSize)
    {
        var table = ReadGptAt(source, sectorSize, 1);
        if (table is not null) return table;
        // A damaged primary header: the backup sits in the last sector.
        if (source.Length > 0) return ReadGptAt(source, sectorSize, source.Length / sectorSize - 1);
        return null;
    }

    private static PartitionTable? ReadGptAt(BlockSource source, int sectorSize, long lba)
    {
        var header = source.Read(lba * sectorSize, sectorSize);
        if (header is null || !header.AsSpan(0, 8).SequenceEqual("EFI PART"u8)) return null;
        var h = header.AsSpan();
        uint headerSize = BinaryPrimitives.ReadUInt32LittleEndian(h[12..]);
        if (headerSize < 92 || headerSize > sectorSize) return null;
        uint headerCrc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
        var check = header.AsSpan(0, (int)headerSize).ToArray();
        check.AsSpan(16, 4).Clear();
        if (Checksums.Crc32(check) != headerCrc) return null;
        if (BinaryPrimitives.ReadUInt64LittleEndian(h[24..]) != (ulong)lba) return null;   // MyLBA

        var diskGuid = new Guid(h.Slice(56, 16));
        long entriesLba = (long)BinaryPrimitives.ReadUInt64LittleEndian(h[72..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(h[80..]);
        uint entrySize = BinaryPrimitives.ReadUInt32LittleEndian(h[84..]);
        uint entriesCrc = BinaryPrimitives.ReadUInt32LittleEndian(h[88..]);
        if (entrySize < 128 || entrySize % 8 != 0 || count == 0 || (long)count * entrySize > MaxEntryArrayBytes) return null;
        var entries = source.Read(entriesLba * sectorSize, (int)(count * entrySize));
        if (entries is null || Checksums.Crc32(entries) != entriesCrc) return null;

        var partitions = new List<PartitionEntry>();
        for (int i = 0; i < count; i++)
        {
            var e = entries.AsSpan(i * (int)entrySize, (int)entrySize);
            if (e[..16].IndexOfAnyExcept((byte)0) < 0) continue;   // unused entry
            var type = new Guid(e[..16]);
            var unique = new Guid(e.Slice(16, 16));
            long first = (long)BinaryPrimitives.ReadUInt64LittleEndian(e[32..]);
            long last = (long)BinaryPrimitives.ReadUInt64LittleEndian(e[40..]);
            string name = Encoding.Unicode.GetString(e.Slice(56, 72));
            int nul = name.IndexOf('\0');
            if (nul >= 0) name = name[..nul];
            partitions.Add(new PartitionEntry(i + 1, unique.ToString("D"), name.Length == 0 ? null : name, type.ToString("D"), first, last));
        }
        return new PartitionTable("gpt", diskGuid.ToString("D"), partitions);
    }
}

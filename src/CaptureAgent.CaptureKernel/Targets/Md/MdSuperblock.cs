using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets.Md;

/// <summary>
/// One md RAID member's superblock, as the kernel's super_90_load and super_1_load read it
/// (layouts in include/uapi/linux/raid/md_p.h): native metadata 0.90 (at the end of the device,
/// aligned to 64 KiB) and 1.x (1.0 at the end minus 8 KiB, 1.1 at 0, 1.2 at 4 KiB).
/// </summary>
public sealed record MdSuperblock
{
    public const uint Magic = 0xA92B4EFC;
    public const int RoleSpare = 0xffff, RoleFaulty = 0xfffe, RoleJournal = 0xfffd, RoleMax = 0xff00;
    /// <summary>The kernel refuses more roles than fit in one 4 KiB superblock after its 256-byte head.</summary>
    public const int MaxRoles = (4096 - 256) / 2;
    /// <summary>More raid_disks than this is not a real array (mdadm's own limit for 1.x is lower in practice).</summary>
    public const int MaxRaidDisks = 256;

    /// <summary>0 (metadata 0.90) or 1.</summary>
    public required int MajorVersion { get; init; }
    /// <summary>90 for 0.90; 0, 1 or 2 for 1.x: where the superblock sits, which SET_ARRAY_INFO must name.</summary>
    public required int MinorVersion { get; init; }
    /// <summary>The array's UUID as mdadm prints it (8:8:8:8 hex digits).</summary>
    public required string ArrayUuid { get; init; }
    /// <summary>1.x: the array name ("host:name" or "name"); 0.90 has none.</summary>
    public string? Name { get; init; }
    /// <summary>-1 linear, 0, 1, 4, 5, 6, 10; -4 multipath, -5 faulty.</summary>
    public required int Level { get; init; }
    public required int RaidDisks { get; init; }
    /// <summary>raid5/6 parity layout, raid10 copies (near in bits 0-7, far in 8-15).</summary>
    public int Layout { get; init; }
    public required ulong Events { get; init; }
    /// <summary>1.x dev_number, 0.90 this_disk.number: the member's permanent slot in the role table.</summary>
    public required int DeviceNumber { get; init; }
    /// <summary>The role in the array (0..raid_disks-1), or <see cref="RoleSpare"/>, <see cref="RoleFaulty"/>, <see cref="RoleJournal"/>.</summary>
    public required int Role { get; init; }
    /// <summary>Byte offset of the superblock on the device.</summary>
    public required long Offset { get; init; }
    /// <summary>Where the array's data starts on the member, and how much of it is used (512-byte sectors).</summary>
    public ulong DataOffsetSectors { get; init; }
    public ulong DataSizeSectors { get; init; }
    /// <summary>Feature bits (1.x) or state bits (0.90: bit 0 = clean).</summary>
    public uint Features { get; init; }
    /// <summary>False when the array was not shut down cleanly (a degraded raid4/5/6 then needs forcing).</summary>
    public bool Clean { get; init; }
    /// <summary>0.90 only: the md minor the array was made as (md_minor).</summary>
    public int? PreferredMinor { get; init; }
    /// <summary>0.90 only: the major:minor of each member as last recorded, for a member listing its own array.</summary>
    public IReadOnlyList<(int Major, int Minor)> RecordedDevices { get; init; } = [];

    public string Version => MajorVersion == 0 ? "0.90" : $"1.{MinorVersion}";

    public bool IsActiveMember => Role < RoleMax && Role < RaidDisks;

    /// <summary>"raid1", "raid10", "linear"...: the name /sys/block/mdX/md/level uses.</summary>
    public string LevelName => LevelText(Level);

    public static string LevelText(int level) => level switch
    {
        -1 => "linear",
        -4 => "multipath",
        -5 => "faulty",
        >= 0 and <= 10 => $"raid{level}",
        _ => $"level {level}",
    };

    /// <summary>The personality module the kernel needs to run this level, or null when none exists any more.</summary>
    public static string? PersonalityModule(int level) => level switch
    {
        0 => "raid0",
        1 => "raid1",
        10 => "raid10",
        4 or 5 or 6 => "raid456",
        -1 => "linear",
        _ => null,
    };

    /// <summary>Why this array cannot be run by the capture kernel, or null when it can.</summary>
    public string? UnsupportedReason() => Level switch
    {
        0 or 1 or 4 or 5 or 6 or 10 or -1 => null,
        -4 => "md multipath was removed from the kernel (use dm-multipath)",
        -5 => "the md 'faulty' test personality is not a place for a dump",
        _ => $"md level {Level} is unknown",
    };

    /// <summary>
    /// Every native md superblock on a device of <paramref name="sizeBytes"/> (a 1.x and a 0.90 one
    /// may both be present: the caller decides). Checksums are verified; wrong ones are left out.
    /// </summary>
    internal static List<MdSuperblock> ReadAll(BlockSource source, long sizeBytes, List<string>? rejected = null)
    {
        var found = new List<MdSuperblock>();
        foreach (var (offset, minor) in Version1Offsets(sizeBytes))
        {
            var block = source.Read(offset, 4096);
            if (block is null) continue;
            var sb = ParseVersion1(block, offset, minor, out string? why);
            if (sb is not null) found.Add(sb);
            else if (why is not null) rejected?.Add($"1.{minor} superblock at {offset}: {why}");
        }
        if (sizeBytes >= 128 * 512)
        {
            long at = Version090Offset(sizeBytes);
            var block = source.Read(at, 4096);
            if (block is not null)
            {
                var sb = ParseVersion090(block, at, out string? why);
                if (sb is not null) found.Add(sb);
                else if (why is not null) rejected?.Add($"0.90 superblock at {at}: {why}");
            }
        }
        return found;
    }

    /// <summary>1.1 at 0, 1.2 at 4 KiB, 1.0 at (sectors - 16) rounded down to 4 KiB (super_1_load).</summary>
    public static IEnumerable<(long Offset, int Minor)> Version1Offsets(long sizeBytes)
    {
        yield return (0, 1);
        yield return (4096, 2);
        if (sizeBytes > 0)
        {
            long sectors = sizeBytes / 512;
            long start = (sectors - 16) & ~7L;
            if (start > 8) yield return (start * 512, 0);
        }
    }

    /// <summary>0.90: the last 64 KiB-aligned 64 KiB of the device (MD_NEW_SIZE_SECTORS).</summary>
    public static long Version090Offset(long sizeBytes) => ((sizeBytes / 512 & ~127L) - 128) * 512;

    /// <summary>A 1.x superblock from its 4 KiB block, or null with the reason (null reason: no magic at all).</summary>
    public static MdSuperblock? ParseVersion1(ReadOnlySpan<byte> b, long offset, int minor, out string? why)
    {
        why = null;
        if (b.Length < 4096 || BinaryPrimitives.ReadUInt32LittleEndian(b) != Magic) return null;
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[4..]) != 1) { why = "major version is not 1"; return null; }
        uint maxDev = BinaryPrimitives.ReadUInt32LittleEndian(b[220..]);
        if (maxDev > MaxRoles) { why = $"max_dev {maxDev} is over {MaxRoles}"; return null; }
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[216..]) != Checksum1(b, (int)maxDev)) { why = "checksum mismatch"; return null; }
        ulong superOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[144..]);
        if (superOffset * 512 != (ulong)offset) { why = $"it says it sits at sector {superOffset}, not {offset / 512}"; return null; }
        int level = BinaryPrimitives.ReadInt32LittleEndian(b[72..]);
        uint raidDisks = BinaryPrimitives.ReadUInt32LittleEndian(b[92..]);
        if (raidDisks is 0 or > MaxRaidDisks) { why = $"raid_disks {raidDisks} is out of range"; return null; }
        uint devNumber = BinaryPrimitives.ReadUInt32LittleEndian(b[160..]);
        int role = devNumber < maxDev ? BinaryPrimitives.ReadUInt16LittleEndian(b[(256 + 2 * (int)devNumber)..]) : RoleSpare;
        ulong resync = BinaryPrimitives.ReadUInt64LittleEndian(b[208..]);
        return new MdSuperblock
        {
            MajorVersion = 1,
            MinorVersion = minor,
            ArrayUuid = UuidText(b.Slice(16, 16)),
            Name = SuperblockText.Label(b.Slice(32, 32), Encoding.UTF8),
            Level = level,
            RaidDisks = (int)raidDisks,
            Layout = BinaryPrimitives.ReadInt32LittleEndian(b[76..]),
            Events = BinaryPrimitives.ReadUInt64LittleEndian(b[200..]),
            DeviceNumber = (int)Math.Min(devNumber, int.MaxValue),
            Role = role,
            Offset = offset,
            DataOffsetSectors = BinaryPrimitives.ReadUInt64LittleEndian(b[128..]),
            DataSizeSectors = BinaryPrimitives.ReadUInt64LittleEndian(b[136..]),
            Features = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
            Clean = resync == ulong.MaxValue,   // MaxSector: nothing left to resync
        };
    }

    /// <summary>A 0.90 superblock (host byte order: little endian on x86) from its 4 KiB block.</summary>
    public static MdSuperblock? ParseVersion090(ReadOnlySpan<byte> b, long offset, out string? why)
    {
        why = null;
        if (b.Length < 4096 || BinaryPrimitives.ReadUInt32LittleEndian(b) != Magic) return null;
        uint major = U32(b, 1), minor = U32(b, 2);
        if (major != 0 || minor != 90) { why = $"version {major}.{minor} is not 0.90"; return null; }
        if (U32(b, 38) != Checksum090(b)) { why = "checksum mismatch"; return null; }
        int level = (int)U32(b, 7);
        uint raidDisks = U32(b, 10);
        if (raidDisks is 0 or > 27) { why = $"raid_disks {raidDisks} is out of range for 0.90 (at most 27)"; return null; }
        // this_disk at word 992: number, major, minor, raid_disk, state.
        uint number = U32(b, 992), raidDisk = U32(b, 995), state = U32(b, 996);
        int role = (state & 1) != 0 ? RoleFaulty                                         // MD_DISK_FAULTY
                 : (state & 6) == 6 && raidDisk < raidDisks ? (int)raidDisk : RoleSpare;    // ACTIVE and SYNC
        if (number >= 27) { why = $"this disk's number {number} is out of range"; return null; }
        var recorded = new List<(int, int)>();
        for (int i = 0; i < 27; i++)
        {
            int w = 128 + 32 * i;
            uint dmajor = U32(b, w + 1), dminor = U32(b, w + 2);
            if (dmajor != 0 || dminor != 0) recorded.Add(((int)dmajor, (int)dminor));
        }
        uint uuid0 = U32(b, 5), uuid1 = U32(b, 13), uuid2 = U32(b, 14), uuid3 = U32(b, 15);
        return new MdSuperblock
        {
            MajorVersion = 0,
            MinorVersion = 90,
            ArrayUuid = $"{uuid0:x8}:{uuid1:x8}:{uuid2:x8}:{uuid3:x8}",
            Level = level,
            RaidDisks = (int)raidDisks,
            Layout = (int)U32(b, 64),
            Events = (ulong)U32(b, 40) << 32 | U32(b, 39),
            DeviceNumber = (int)number,
            Role = role,
            Offset = offset,
            DataOffsetSectors = 0,
            DataSizeSectors = (ulong)U32(b, 8) * 2,   // size is in KiB
            Features = U32(b, 33),
            Clean = (U32(b, 33) & 1) != 0,            // MD_SB_CLEAN
            RecordedDevices = recorded,
            PreferredMinor = U32(b, 11) <= 255 ? (int)U32(b, 11) : null,
        };
    }

    /// <summary>calc_sb_1_csum: 32-bit words summed over the 256-byte head and max_dev roles, sb_csum as zero, folded.</summary>
    public static uint Checksum1(ReadOnlySpan<byte> b, int maxDev)
    {
        int size = 256 + 2 * maxDev;
        ulong sum = 0;
        int i = 0;
        for (; i + 4 <= size; i += 4)
            if (i != 216) sum += BinaryPrimitives.ReadUInt32LittleEndian(b[i..]);
        if (size - i == 2) sum += BinaryPrimitives.ReadUInt16LittleEndian(b[i..]);
        return (uint)((sum & 0xffffffff) + (sum >> 32));
    }

    /// <summary>calc_sb_csum of 0.90: the 1024 words of the superblock, sb_csum (word 38) as zero, folded.</summary>
    public static uint Checksum090(ReadOnlySpan<byte> b)
    {
        ulong sum = 0;
        for (int w = 0; w < 1024; w++)
            if (w != 38) sum += U32(b, w);
        return (uint)((sum & 0xffffffff) + (sum >> 32));
    }

    /// <summary>mdadm's spelling: four groups of 8 hex digits.</summary>
    public static string UuidText(ReadOnlySpan<byte> uuid)
    {
        string hex = Convert.ToHexStringLower(uuid);
        return $"{hex[..8]}:{hex[8..16]}:{hex[16..24]}:{hex[24..32]}";
    }

    private static uint U32(ReadOnlySpan<byte> b, int word) => BinaryPrimitives.ReadUInt32LittleEndian(b[(word * 4)..]);
}

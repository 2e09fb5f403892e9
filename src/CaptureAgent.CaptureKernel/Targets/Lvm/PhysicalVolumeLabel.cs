using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets.Lvm;

/// <summary>A byte range of a physical volume (LVM's disk_locn): a data area or a metadata area.</summary>
public readonly record struct DiskArea(ulong Offset, ulong Size);

/// <summary>
/// The LVM2 label of a physical volume (lib/label/label.h, lib/format_text/layout.h): a 512-byte
/// sector among the first four holding "LABELONE", its own sector number, a CRC of the rest of
/// the sector and "LVM2 001"; it points at the PV header: the PV's uuid (32 characters), its
/// size, then two zero-terminated lists of areas, data areas first, then metadata areas.
/// </summary>
public sealed record PhysicalVolumeLabel(string PvUuid, ulong DeviceSize, IReadOnlyList<DiskArea> DataAreas, IReadOnlyList<DiskArea> MetadataAreas)
{
    public const int SectorSize = 512;
    public const int ScanSectors = 4;
    private const int LabelHeaderSize = 32;
    private const int UuidLength = 32;
    private const int AreaSize = 16;
    private const int MaxAreas = 8;   // lvm writes one data area and at most two metadata areas

    /// <summary>The sector the label was found in (pvcreate writes sector 1).</summary>
    public int Sector { get; init; }

    /// <summary>
    /// Reads the label from a device's first 2 KiB. Null when there is no LVM2 label at all;
    /// <paramref name="problem"/> says why a label that is there was not taken (bad CRC, bad layout).
    /// </summary>
    public static PhysicalVolumeLabel? Parse(ReadOnlySpan<byte> head, out string? problem)
    {
        problem = null;
        for (int sector = 0; sector < ScanSectors && (sector + 1) * SectorSize <= head.Length; sector++)
        {
            var s = head.Slice(sector * SectorSize, SectorSize);
            if (!s[..8].SequenceEqual("LABELONE"u8)) continue;
            if (!s.Slice(24, 8).SequenceEqual("LVM2 001"u8)) continue;   // another labeller's label
            if (BinaryPrimitives.ReadUInt64LittleEndian(s[8..]) != (ulong)sector) { problem = $"LVM2 label in sector {sector} names another sector"; continue; }
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(s[16..]);
            if (LvmChecksum.Compute(s[20..]) != crc) { problem = $"LVM2 label in sector {sector} fails its checksum"; continue; }
            var label = ParseHeader(s, out problem);
            if (label is not null) return label with { Sector = sector };
        }
        return null;
    }

    private static PhysicalVolumeLabel? ParseHeader(ReadOnlySpan<byte> s, out string? problem)
    {
        problem = null;
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(s[20..]);
        if (offset < LabelHeaderSize || offset + UuidLength + 8 + 2 * AreaSize > SectorSize)
        {
            problem = $"LVM2 label points its PV header at byte {offset}, outside the label sector";
            return null;
        }
        var uuidBytes = s.Slice((int)offset, UuidLength);
        foreach (byte b in uuidBytes)
            if (!(char.IsAsciiLetterOrDigit((char)b) || b is (byte)'!' or (byte)'#')) { problem = "LVM2 PV header has a malformed PV uuid"; return null; }
        string uuid = Encoding.ASCII.GetString(uuidBytes);
        ulong deviceSize = BinaryPrimitives.ReadUInt64LittleEndian(s[((int)offset + UuidLength)..]);
        int at = (int)offset + UuidLength + 8;
        var data = ReadAreas(s, ref at);
        var metadata = data is null ? null : ReadAreas(s, ref at);
        if (data is null || metadata is null)
        {
            problem = "LVM2 PV header's area lists run past the label sector";
            return null;
        }
        return new PhysicalVolumeLabel(uuid, deviceSize, data, metadata);
    }

    /// <summary>One zero-terminated disk_locn list; null when it does not end inside the sector.</summary>
    private static List<DiskArea>? ReadAreas(ReadOnlySpan<byte> s, ref int at)
    {
        var areas = new List<DiskArea>();
        while (at + AreaSize <= s.Length)
        {
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(s[at..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(s[(at + 8)..]);
            at += AreaSize;
            if (off == 0) return areas;
            if (areas.Count == MaxAreas) return null;
            areas.Add(new DiskArea(off, size));
        }
        return null;
    }

    /// <summary>"aBcD12-..." as lvm prints a 32-character id: groups of 6-4-4-4-4-4-6.</summary>
    public static string FormatId(string id32)
    {
        if (id32.Length != UuidLength) return id32;
        return string.Join('-', id32[..6], id32[6..10], id32[10..14], id32[14..18], id32[18..22], id32[22..26], id32[26..]);
    }
}

/// <summary>LVM's CRC-32 (lib/misc/crc.c): the reflected 0xEDB88320 polynomial, register started at 0xf597a6cf, no final inversion.</summary>
public static class LvmChecksum
{
    public const uint Initial = 0xf597a6cf;

    public static uint Compute(ReadOnlySpan<byte> data, uint register = Initial) =>
        // Checksums.Crc32 inverts the register on the way in and out; undo both.
        ~Checksums.Crc32(data, ~register);
}

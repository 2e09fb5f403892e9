using System.Numerics;

namespace CaptureAgent.Targets;

/// <summary>
/// The two CRC-32s that superblocks and partition tables carry: Castagnoli (ext4, xfs, btrfs
/// metadata checksums) and IEEE 802.3 (GPT headers and entry arrays).
/// </summary>
internal static class Checksums
{
    /// <summary>The raw CRC-32C register update, no pre- or post-inversion (the kernel's crc32c()).</summary>
    public static uint Crc32CUpdate(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    /// <summary>The standard CRC-32C: seeded with all ones and inverted at the end.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data) => ~Crc32CUpdate(~0u, data);

    private static readonly uint[] IeeeTable = BuildIeeeTable();

    private static uint[] BuildIeeeTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>The standard (zlib, UEFI) CRC-32, continuing from <paramref name="crc"/> (0 to start).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data, uint crc = 0)
    {
        crc = ~crc;
        foreach (byte b in data) crc = IeeeTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
}

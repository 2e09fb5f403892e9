using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Md;

/// <summary>
/// md member images written byte by byte from the layouts in include/uapi/linux/raid/md_p.h, with
/// this file's own checksum code (so a parser bug is not mirrored here): superblock 1.x at the
/// place its minor version names, and 0.90 at the end, aligned to 64 KiB.
/// </summary>
public static class MdImages
{
    public const uint Magic = 0xA92B4EFC;

    public sealed record Member
    {
        public byte[] Uuid { get; init; } = Convert.FromHexString("0123456789abcdeffedcba9876543210");
        public string Name { get; init; } = "host:dump";
        public int Level { get; init; } = 1;
        public int Layout { get; init; }
        public int RaidDisks { get; init; } = 2;
        public ulong Events { get; init; } = 20;
        public int DevNumber { get; init; }
        /// <summary>dev_roles[] (1.x) in dev_number order; 0xffff spare, 0xfffe faulty.</summary>
        public ushort[] Roles { get; init; } = [0, 1];
        public ulong DataOffset { get; init; } = 2048;
        public bool Clean { get; init; } = true;
    }

    /// <summary>A device image of <paramref name="bytes"/> with a 1.<paramref name="minor"/> superblock.</summary>
    public static byte[] Version1(Member m, int minor, long bytes)
    {
        var image = new byte[bytes];
        long at = minor switch { 1 => 0, 2 => 4096, _ => ((bytes / 512 - 16) & ~7L) * 512 };
        WriteVersion1(image.AsSpan((int)at, 4096), m, at / 512, bytes / 512);
        return image;
    }

    public static void WriteVersion1(Span<byte> sb, Member m, long superSector, long deviceSectors)
    {
        sb.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sb, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(sb[4..], 1);
        m.Uuid.CopyTo(sb[16..]);
        Encoding.ASCII.GetBytes(m.Name).CopyTo(sb[32..]);
        BinaryPrimitives.WriteInt32LittleEndian(sb[72..], m.Level);
        BinaryPrimitives.WriteInt32LittleEndian(sb[76..], m.Layout);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[80..], (ulong)deviceSectors / 2);
        BinaryPrimitives.WriteUInt32LittleEndian(sb[88..], 128);
        BinaryPrimitives.WriteInt32LittleEndian(sb[92..], m.RaidDisks);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[128..], m.DataOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[136..], (ulong)deviceSectors - m.DataOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[144..], (ulong)superSector);
        BinaryPrimitives.WriteInt32LittleEndian(sb[160..], m.DevNumber);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[200..], m.Events);
        BinaryPrimitives.WriteUInt64LittleEndian(sb[208..], m.Clean ? ulong.MaxValue : 0);
        BinaryPrimitives.WriteInt32LittleEndian(sb[220..], m.Roles.Length);
        for (int i = 0; i < m.Roles.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(sb[(256 + 2 * i)..], m.Roles[i]);
        BinaryPrimitives.WriteUInt32LittleEndian(sb[216..], Sum(sb[..(256 + 2 * m.Roles.Length)], skip: 216));
    }

    /// <summary>A device image with a 0.90 superblock at its end; this disk is <paramref name="number"/> in role <paramref name="role"/>.</summary>
    public static byte[] Version090(Member m, long bytes, int number, int role, (int Major, int Minor)[]? table = null)
    {
        var image = new byte[bytes];
        long at = ((bytes / 512 & ~127L) - 128) * 512;
        int start = (int)at;
        void W(int word, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(start + word * 4), value);
        W(0, Magic); W(1, 0); W(2, 90); W(3, 0);
        W(5, BinaryPrimitives.ReadUInt32BigEndian(m.Uuid));
        W(13, BinaryPrimitives.ReadUInt32BigEndian(m.Uuid.AsSpan(4)));
        W(14, BinaryPrimitives.ReadUInt32BigEndian(m.Uuid.AsSpan(8)));
        W(15, BinaryPrimitives.ReadUInt32BigEndian(m.Uuid.AsSpan(12)));
        W(7, (uint)m.Level); W(8, (uint)(at / 1024)); W(9, (uint)m.RaidDisks); W(10, (uint)m.RaidDisks);
        W(33, m.Clean ? 1u : 0u); W(34, (uint)m.RaidDisks); W(35, (uint)m.RaidDisks);
        W(39, (uint)m.Events); W(40, (uint)(m.Events >> 32));
        W(64, (uint)m.Layout); W(65, 64 * 1024);
        table ??= Enumerable.Range(0, m.RaidDisks).Select(i => (7, i)).ToArray();
        for (int i = 0; i < table.Length; i++)
        {
            W(128 + 32 * i, (uint)i); W(129 + 32 * i, (uint)table[i].Major); W(130 + 32 * i, (uint)table[i].Minor);
            W(131 + 32 * i, (uint)i); W(132 + 32 * i, 6);   // ACTIVE | SYNC
        }
        W(992, (uint)number); W(993, (uint)table[Math.Min(number, table.Length - 1)].Major); W(994, (uint)table[Math.Min(number, table.Length - 1)].Minor);
        W(995, (uint)role); W(996, 6);
        W(38, Sum(image.AsSpan(start, 4096), skip: 38 * 4));
        return image;
    }

    /// <summary>Little-endian 32-bit words added up (the word at <paramref name="skip"/> left out), carries folded once.</summary>
    private static uint Sum(ReadOnlySpan<byte> bytes, int skip)
    {
        ulong total = 0;
        int i = 0;
        for (; i + 4 <= bytes.Length; i += 4)
            if (i != skip) total += BinaryPrimitives.ReadUInt32LittleEndian(bytes[i..]);
        if (bytes.Length - i == 2) total += BinaryPrimitives.ReadUInt16LittleEndian(bytes[i..]);
        return (uint)(total + (total >> 32));
    }
}

using System.Buffers.Binary;

namespace CaptureAgent.Tests.Integration;

/// <summary>The header fields and bitmaps of a kdump-compressed file, read independently of the product's reader.</summary>
public sealed record KdumpFileFacts(int BlockSize, int SubHeaderBlocks, uint BitmapBlocks, ulong MaxMapnr, int NrCpus,
    ulong PhysBase, byte[] Utsname, byte[] Bitmap1, byte[] Bitmap2, long OffsetNote, long SizeNote, long OffsetVmcoreinfo, long SizeVmcoreinfo)
{
    public static KdumpFileFacts Read(string path)
    {
        using var f = File.OpenRead(path);
        var h = new byte[464];
        f.ReadExactly(h);
        int bs = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(428));
        int s = BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(432));
        uint m = BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(436));
        var sub = new byte[104];
        f.Position = bs;
        f.ReadExactly(sub);
        var bm = new byte[m * (long)bs];
        f.Position = (1L + s) * bs;
        f.ReadExactly(bm);
        int half = bm.Length / 2;
        return new KdumpFileFacts(bs, s, m, BinaryPrimitives.ReadUInt64LittleEndian(sub.AsSpan(96)),
            BinaryPrimitives.ReadInt32LittleEndian(h.AsSpan(460)), BinaryPrimitives.ReadUInt64LittleEndian(sub),
            h.AsSpan(12, 390).ToArray(), bm[..half], bm[half..],
            BinaryPrimitives.ReadInt64LittleEndian(sub.AsSpan(48)), BinaryPrimitives.ReadInt64LittleEndian(sub.AsSpan(56)),
            BinaryPrimitives.ReadInt64LittleEndian(sub.AsSpan(32)), BinaryPrimitives.ReadInt64LittleEndian(sub.AsSpan(40)));
    }

    public static bool Bit(byte[] bitmap, ulong pfn) => (bitmap[pfn / 8] & (1 << (int)(pfn % 8))) != 0;

    public ulong Dumpable => (ulong)Bitmap2.Sum(b => System.Numerics.BitOperations.PopCount(b));

    public static int CountDifferentBits(byte[] a, byte[] b)
    {
        int n = 0;
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++) n += System.Numerics.BitOperations.PopCount((uint)(a[i] ^ b[i]));
        return n + 8 * Math.Abs(a.Length - b.Length);
    }
}

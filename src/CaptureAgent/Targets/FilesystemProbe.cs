using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>What a superblock says about a block device.</summary>
public sealed record FilesystemInfo(string Type, string? Uuid, string? Label);

/// <summary>
/// Identifies ext2/3/4, xfs and btrfs from their superblocks, as blkid does, since there is no udev
/// or blkid in the capture kernel. Reads a few blocks; garbage gives null, never an exception.
/// </summary>
public static class FilesystemProbe
{
    public static FilesystemInfo? Probe(string device)
    {
        try
        {
            using var h = File.OpenHandle(device, FileMode.Open, FileAccess.Read);
            var buf = new byte[128 * 1024];   // btrfs' superblock sits at 64 KiB
            int n = 0;
            while (n < buf.Length)
            {
                int got = RandomAccess.Read(h, buf.AsSpan(n), n);
                if (got <= 0) break;
                n += got;
            }
            return Probe(buf.AsSpan(0, n));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static FilesystemInfo? Probe(ReadOnlySpan<byte> start) => Ext(start) ?? Xfs(start) ?? Btrfs(start);

    private static FilesystemInfo? Ext(ReadOnlySpan<byte> b)
    {
        if (b.Length < 2048) return null;
        var sb = b.Slice(1024, 1024);
        if (BinaryPrimitives.ReadUInt16LittleEndian(sb[0x38..]) != 0xEF53) return null;
        uint compat = BinaryPrimitives.ReadUInt32LittleEndian(sb[0x5c..]);
        uint incompat = BinaryPrimitives.ReadUInt32LittleEndian(sb[0x60..]);
        uint roCompat = BinaryPrimitives.ReadUInt32LittleEndian(sb[0x64..]);
        // blkid: a journal makes ext3; features ext3 does not know make ext4.
        const uint IncompatExt3 = 0x0002 | 0x0004 | 0x0008;          // filetype, recover, journal dev
        const uint RoCompatExt3 = 0x0001 | 0x0002 | 0x0004;          // sparse super, large file, btree dir
        string type = (incompat & ~IncompatExt3) != 0 || (roCompat & ~RoCompatExt3) != 0 ? "ext4"
            : (compat & 0x0004) != 0 ? "ext3" : "ext2";
        return new FilesystemInfo(type, Uuid(sb.Slice(0x68, 16)), Text(sb.Slice(0x78, 16)));
    }

    private static FilesystemInfo? Xfs(ReadOnlySpan<byte> b)
    {
        if (b.Length < 512 || !b[..4].SequenceEqual("XFSB"u8)) return null;
        return new FilesystemInfo("xfs", Uuid(b.Slice(32, 16)), Text(b.Slice(108, 12)));
    }

    private static FilesystemInfo? Btrfs(ReadOnlySpan<byte> b)
    {
        const int At = 64 * 1024;
        if (b.Length < At + 0x12b + 256 || !b.Slice(At + 0x40, 8).SequenceEqual("_BHRfS_M"u8)) return null;
        return new FilesystemInfo("btrfs", Uuid(b.Slice(At + 0x20, 16)), Text(b.Slice(At + 0x12b, 256)));
    }

    private static string? Uuid(ReadOnlySpan<byte> u)
    {
        if (u.IndexOfAnyExcept((byte)0) < 0) return null;
        string h = Convert.ToHexStringLower(u);
        return $"{h[..8]}-{h[8..12]}-{h[12..16]}-{h[16..20]}-{h[20..]}";
    }

    private static string? Text(ReadOnlySpan<byte> t)
    {
        int nul = t.IndexOf((byte)0);
        if (nul >= 0) t = t[..nul];
        return t.IsEmpty ? null : Encoding.UTF8.GetString(t);
    }
}

using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Formats;

/// <summary>
/// The fixed parts of a kdump-compressed file (header_version 6, x86_64 layout): the 464-byte
/// disk_dump_header at 0 and the 104-byte kdump_sub_header at block_size, then the note blob.
/// </summary>
public sealed class KdumpHeader
{
    public const int HeaderVersion = 6;
    public const int HeaderSize = 464;
    public const int SubHeaderSize = 104;
    public const int UtsnameSize = 390;
    public const uint StatusIncomplete = 0x8;
    public static ReadOnlySpan<byte> Signature => "KDUMP   "u8;

    public int BlockSize = 4096;
    public byte[] Utsname = new byte[UtsnameSize];
    public long CrashTime;
    public uint Status;
    public ulong MaxMapnr;
    public int NrCpus;
    public ulong PhysBase;
    public int DumpLevel;
    public byte[] Notes = [];
    public long VmcoreInfoOffsetInNotes = -1;
    public long VmcoreInfoSize;

    /// <summary>Blocks taken by the sub header and notes.</summary>
    public int SubHeaderBlocks => (int)((SubHeaderSize + Notes.LongLength + BlockSize - 1) / BlockSize);
    /// <summary>Bytes of ONE bitmap: ceil(max_mapnr/8) rounded up to a block.</summary>
    public long BitmapBytes => ((long)((MaxMapnr + 7) / 8) + BlockSize - 1) / BlockSize * BlockSize;
    public long Bitmap1Offset => (1L + SubHeaderBlocks) * BlockSize;
    public long Bitmap2Offset => Bitmap1Offset + BitmapBytes;
    public uint BitmapBlocks => (uint)(2 * BitmapBytes / BlockSize);
    public long DescriptorsOffset => Bitmap2Offset + BitmapBytes;

    public static byte[] MakeUtsname(string sysname, string nodename, string release, string version, string machine, string domain)
    {
        var u = new byte[UtsnameSize];
        string[] fields = [sysname, nodename, release, version, machine, domain];
        for (int i = 0; i < 6; i++)
        {
            var b = Encoding.ASCII.GetBytes(fields[i]);
            b.AsSpan(0, Math.Min(b.Length, 64)).CopyTo(u.AsSpan(i * 65));
        }
        return u;
    }

    public string Field(int index)
    {
        var f = Utsname.AsSpan(index * 65, 65);
        int nul = f.IndexOf((byte)0);
        return Encoding.ASCII.GetString(nul >= 0 ? f[..nul] : f);
    }

    public byte[] BuildMainHeader()
    {
        var h = new byte[HeaderSize];
        var s = h.AsSpan();
        Signature.CopyTo(s);
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], HeaderVersion);
        Utsname.CopyTo(s[12..]);
        BinaryPrimitives.WriteInt64LittleEndian(s[408..], CrashTime);
        // tv_usec stays 0: libkdumpfile probes a 32-bit layout whose block_size sits there.
        BinaryPrimitives.WriteUInt32LittleEndian(s[424..], Status);
        BinaryPrimitives.WriteInt32LittleEndian(s[428..], BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(s[432..], SubHeaderBlocks);
        BinaryPrimitives.WriteUInt32LittleEndian(s[436..], BitmapBlocks);
        BinaryPrimitives.WriteUInt32LittleEndian(s[440..], (uint)Math.Min(MaxMapnr, uint.MaxValue));
        BinaryPrimitives.WriteInt32LittleEndian(s[460..], NrCpus);
        return h;
    }

    public byte[] BuildSubHeader()
    {
        var h = new byte[SubHeaderSize];
        var s = h.AsSpan();
        long notesAt = BlockSize + SubHeaderSize;
        BinaryPrimitives.WriteUInt64LittleEndian(s, PhysBase);
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], DumpLevel);
        if (VmcoreInfoOffsetInNotes >= 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[32..], notesAt + VmcoreInfoOffsetInNotes);
            BinaryPrimitives.WriteInt64LittleEndian(s[40..], VmcoreInfoSize);
        }
        if (Notes.Length > 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[48..], notesAt);
            BinaryPrimitives.WriteInt64LittleEndian(s[56..], Notes.Length);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(s[96..], MaxMapnr);
        return h;
    }

    /// <summary>Parses the two headers of an existing file (for readers and verification).</summary>
    public static KdumpHeader Parse(ReadOnlySpan<byte> main, ReadOnlySpan<byte> sub, out int subHeaderBlocks, out uint bitmapBlocks, out long notesOffset, out long notesSize)
    {
        if (main.Length < HeaderSize || !main[..8].SequenceEqual(Signature))
            throw new InvalidDataException("not a kdump-compressed file (no \"KDUMP   \" signature)");
        var h = new KdumpHeader
        {
            BlockSize = BinaryPrimitives.ReadInt32LittleEndian(main[428..]),
            Utsname = main.Slice(12, UtsnameSize).ToArray(),
            CrashTime = BinaryPrimitives.ReadInt64LittleEndian(main[408..]),
            Status = BinaryPrimitives.ReadUInt32LittleEndian(main[424..]),
            NrCpus = BinaryPrimitives.ReadInt32LittleEndian(main[460..]),
        };
        int version = BinaryPrimitives.ReadInt32LittleEndian(main[8..]);
        subHeaderBlocks = BinaryPrimitives.ReadInt32LittleEndian(main[432..]);
        bitmapBlocks = BinaryPrimitives.ReadUInt32LittleEndian(main[436..]);
        h.MaxMapnr = BinaryPrimitives.ReadUInt32LittleEndian(main[440..]);
        h.PhysBase = BinaryPrimitives.ReadUInt64LittleEndian(sub);
        h.DumpLevel = BinaryPrimitives.ReadInt32LittleEndian(sub[8..]);
        notesOffset = version >= 4 ? BinaryPrimitives.ReadInt64LittleEndian(sub[48..]) : 0;
        notesSize = version >= 4 ? BinaryPrimitives.ReadInt64LittleEndian(sub[56..]) : 0;
        if (version >= 6) h.MaxMapnr = BinaryPrimitives.ReadUInt64LittleEndian(sub[96..]);
        if (h.BlockSize is < 4096 or > 262144 || (h.BlockSize & (h.BlockSize - 1)) != 0)
            throw new InvalidDataException($"kdump header has a bad block_size {h.BlockSize}");
        return h;
    }
}

using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Capture;
using CaptureAgent.Compression.Xz;

namespace CaptureAgent.Targets.Raw;

public enum RawDumpState : uint { Writing = 1, Complete = 2 }

/// <summary>
/// The first 4 KiB of a raw dump device: what is on it and where. The kernel log follows at 4 KiB,
/// the dump (makedumpfile's flattened stream) at the next MiB. Written with state Writing before
/// anything else and rewritten with the lengths and CRC-64s at the end, so a device read after a
/// cut capture says how far it got. Little-endian; the last 8 bytes are a CRC-64 of the rest.
/// </summary>
public sealed class RawDumpHeader
{
    public const int Size = 4096;
    public const int DmesgOffset = Size;
    private static ReadOnlySpan<byte> Magic => "CAPTURE-AGENT-RAW-DUMP\0\0"u8;   // 24 bytes
    private const uint Version = 1;

    public RawDumpState State { get; set; } = RawDumpState.Writing;
    public CrashFacts Facts { get; set; } = new("unknown-host", DateTimeOffset.UnixEpoch, "unknown", null);
    public long DmesgLength { get; set; }
    public ulong DmesgCrc64 { get; set; }
    public long DumpOffset { get; set; }
    public long DumpLength { get; set; }
    public ulong DumpCrc64 { get; set; }
    public long DeviceSize { get; set; }

    public byte[] ToBytes()
    {
        var b = new byte[Size];
        var s = b.AsSpan();
        Magic.CopyTo(s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], (uint)State);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], Facts.CrashTime.ToUnixTimeSeconds());
        Text(s.Slice(40, 64), Facts.Host);
        Text(s.Slice(104, 80), Facts.KernelRelease);
        Text(s.Slice(184, 48), Facts.BootId ?? "");
        BinaryPrimitives.WriteInt64LittleEndian(s[232..], DmesgOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[240..], DmesgLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[248..], DmesgCrc64);
        BinaryPrimitives.WriteInt64LittleEndian(s[256..], DumpOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[264..], DumpLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[272..], DumpCrc64);
        BinaryPrimitives.WriteInt64LittleEndian(s[280..], DeviceSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[(Size - 8)..], Crc64.Update(0, s[..(Size - 8)]));
        return b;
    }

    /// <summary>Null when the block holds no header of ours (never written, or cleared after savecore).</summary>
    public static RawDumpHeader? TryParse(ReadOnlySpan<byte> b)
    {
        if (b.Length < Size || !b[..Magic.Length].SequenceEqual(Magic)) return null;
        if (BinaryPrimitives.ReadUInt64LittleEndian(b[(Size - 8)..]) != Crc64.Update(0, b[..(Size - 8)]))
            throw new InvalidDataException("the raw dump header is damaged (CRC mismatch)");
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[24..]) != Version)
            throw new InvalidDataException($"raw dump header version {BinaryPrimitives.ReadUInt32LittleEndian(b[24..])} is not supported");
        var h = new RawDumpHeader
        {
            State = (RawDumpState)BinaryPrimitives.ReadUInt32LittleEndian(b[28..]),
            Facts = new CrashFacts(Text(b.Slice(40, 64)), DateTimeOffset.FromUnixTimeSeconds(BinaryPrimitives.ReadInt64LittleEndian(b[32..])),
                                   Text(b.Slice(104, 80)), Text(b.Slice(184, 48)) is { Length: > 0 } id ? id : null),
            DmesgLength = BinaryPrimitives.ReadInt64LittleEndian(b[240..]),
            DmesgCrc64 = BinaryPrimitives.ReadUInt64LittleEndian(b[248..]),
            DumpOffset = BinaryPrimitives.ReadInt64LittleEndian(b[256..]),
            DumpLength = BinaryPrimitives.ReadInt64LittleEndian(b[264..]),
            DumpCrc64 = BinaryPrimitives.ReadUInt64LittleEndian(b[272..]),
            DeviceSize = BinaryPrimitives.ReadInt64LittleEndian(b[280..]),
        };
        if (h.DmesgLength < 0 || h.DumpLength < 0 || h.DumpOffset < DmesgOffset + h.DmesgLength && h.DumpLength > 0)
            throw new InvalidDataException("the raw dump header's lengths are inconsistent");
        return h;
    }

    private static void Text(Span<byte> field, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        bytes.AsSpan(0, Math.Min(bytes.Length, field.Length - 1)).CopyTo(field);
    }

    private static string Text(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? field : field[..nul]);
    }
}

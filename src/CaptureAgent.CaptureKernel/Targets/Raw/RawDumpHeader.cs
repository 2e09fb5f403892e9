using System.Buffers.Binary;
using System.Text;
using CaptureAgent.Common;
using CaptureAgent.Formats;
namespace CaptureAgent.Targets.Raw;

/// <summary>Where a raw dump area stands.</summary>
public enum RawDumpState : uint
{
    /// <summary>The capture is (or was, when it stopped) writing; the lengths are those of its last checkpoint.</summary>
    Writing = 1,
    /// <summary>Everything the capture set out to save is on the device.</summary>
    Complete = 2,
    /// <summary>The capture finished but the dump is cut short (device full, a write error) or missing.</summary>
    Incomplete = 3,
    /// <summary>`capture-agent savecore` extracted it; the facts stay so it can say where the dump went.</summary>
    Extracted = 4,
}

/// <summary>
/// Block 0 of a raw dump device (4096 bytes, little-endian). The kernel log follows at 4096, the
/// dump (makedumpfile's flattened stream) at the next 1 MiB boundary after the log:
/// <code>
///    0  magic "CAPTURE-AGENT-RAW" (24, NUL padded)   24 u32 version   28 u32 state
///   32  u64 device size when written
///   40  u64 log offset     48 u64 log length     56 u64 log CRC-64
///   64  u64 stream offset  72 u64 stream length  80 u64 stream CRC-64
///   88  i64 crash time     96 i64 written at    104 i64 extracted at   (unix seconds, 0 = none)
///  112  u32 flags (1 log complete, 2 stream ended by its end marker)   116 i32 dump level asked for
///  128  host[128]  256 kernel release[128]  384 boot id[64]  512 reason[1024]  1536 extracted to[1024]
/// 4088  u64 CRC-64/XZ of bytes 0..4087
/// </code>
/// Each CRC-64 covers exactly its region's recorded length.
/// </summary>
public sealed class RawDumpHeader
{
    public const int Size = 4096;
    public const int Version = 1;
    public const uint FlagDmesgComplete = 1, FlagStreamEnded = 2;
    private const int CrcOffset = Size - 8;
    private static ReadOnlySpan<byte> Magic => "CAPTURE-AGENT-RAW"u8;

    public RawDumpState State = RawDumpState.Writing;
    public long DeviceSize;
    public long DmesgOffset = Size, DmesgLength;
    public ulong DmesgCrc;
    public long StreamOffset, StreamLength;
    public ulong StreamCrc;
    public DateTimeOffset CrashTime = DateTimeOffset.UnixEpoch, WrittenAt = DateTimeOffset.UnixEpoch;
    public DateTimeOffset? ExtractedAt;
    public uint Flags;
    public int DumpLevel;
    public string Host = "", KernelRelease = "";
    public string? BootId, Reason, ExtractedTo;

    public bool DmesgComplete => (Flags & FlagDmesgComplete) != 0;
    public bool StreamEnded => (Flags & FlagStreamEnded) != 0;

    /// <summary>What path templates name about the crash.</summary>
    public CrashFacts Facts => new(Host.Length > 0 ? Host : "unknown-host", CrashTime, KernelRelease.Length > 0 ? KernelRelease : "unknown-kernel", BootId);

    public byte[] Build()
    {
        var b = new byte[Size];
        var s = b.AsSpan();
        Magic.CopyTo(s);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], (uint)State);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], DeviceSize);
        BinaryPrimitives.WriteInt64LittleEndian(s[40..], DmesgOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[48..], DmesgLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[56..], DmesgCrc);
        BinaryPrimitives.WriteInt64LittleEndian(s[64..], StreamOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[72..], StreamLength);
        BinaryPrimitives.WriteUInt64LittleEndian(s[80..], StreamCrc);
        BinaryPrimitives.WriteInt64LittleEndian(s[88..], CrashTime.ToUnixTimeSeconds());
        BinaryPrimitives.WriteInt64LittleEndian(s[96..], WrittenAt.ToUnixTimeSeconds());
        BinaryPrimitives.WriteInt64LittleEndian(s[104..], ExtractedAt?.ToUnixTimeSeconds() ?? 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[112..], Flags);
        BinaryPrimitives.WriteInt32LittleEndian(s[116..], DumpLevel);
        PutText(s.Slice(128, 128), Host);
        PutText(s.Slice(256, 128), KernelRelease);
        PutText(s.Slice(384, 64), BootId);
        PutText(s.Slice(512, 1024), Reason);
        PutText(s.Slice(1536, 1024), ExtractedTo);
        BinaryPrimitives.WriteUInt64LittleEndian(s[CrcOffset..], Crc64.Update(0, s[..CrcOffset]));
        return b;
    }

    /// <summary>Does the block start with our magic (whatever else it holds)?</summary>
    public static bool HasMagic(ReadOnlySpan<byte> block) => block.Length >= Magic.Length && block[..Magic.Length].SequenceEqual(Magic);

    /// <summary>
    /// The header in <paramref name="block"/>; null with <paramref name="problem"/> null when the
    /// block is not ours, null with a problem when it is ours but damaged or of another version.
    /// </summary>
    public static RawDumpHeader? Parse(ReadOnlySpan<byte> block, out string? problem)
    {
        problem = null;
        if (block.Length < Size || !HasMagic(block)) return null;
        if (Crc64.Update(0, block[..CrcOffset]) != BinaryPrimitives.ReadUInt64LittleEndian(block[CrcOffset..]))
        {
            problem = "its capture-agent raw header is damaged (CRC-64 mismatch)";
            return null;
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(block[24..]);
        if (version != Version)
        {
            problem = $"its capture-agent raw header has version {version}; this capture-agent reads version {Version}";
            return null;
        }
        uint state = BinaryPrimitives.ReadUInt32LittleEndian(block[28..]);
        if (state is < 1 or > 4)
        {
            problem = $"its capture-agent raw header has an unknown state {state}";
            return null;
        }
        long extracted = BinaryPrimitives.ReadInt64LittleEndian(block[104..]);
        var h = new RawDumpHeader
        {
            State = (RawDumpState)state,
            DeviceSize = BinaryPrimitives.ReadInt64LittleEndian(block[32..]),
            DmesgOffset = BinaryPrimitives.ReadInt64LittleEndian(block[40..]),
            DmesgLength = BinaryPrimitives.ReadInt64LittleEndian(block[48..]),
            DmesgCrc = BinaryPrimitives.ReadUInt64LittleEndian(block[56..]),
            StreamOffset = BinaryPrimitives.ReadInt64LittleEndian(block[64..]),
            StreamLength = BinaryPrimitives.ReadInt64LittleEndian(block[72..]),
            StreamCrc = BinaryPrimitives.ReadUInt64LittleEndian(block[80..]),
            CrashTime = FromUnix(BinaryPrimitives.ReadInt64LittleEndian(block[88..])),
            WrittenAt = FromUnix(BinaryPrimitives.ReadInt64LittleEndian(block[96..])),
            ExtractedAt = extracted == 0 ? null : FromUnix(extracted),
            Flags = BinaryPrimitives.ReadUInt32LittleEndian(block[112..]),
            DumpLevel = BinaryPrimitives.ReadInt32LittleEndian(block[116..]),
            Host = GetText(block.Slice(128, 128)) ?? "",
            KernelRelease = GetText(block.Slice(256, 128)) ?? "",
            BootId = GetText(block.Slice(384, 64)),
            Reason = GetText(block.Slice(512, 1024)),
            ExtractedTo = GetText(block.Slice(1536, 1024)),
        };
        // CRC-correct means ours, but these numbers decide where we read: keep them sane.
        if (h.DmesgOffset < Size || h.DmesgLength < 0 || h.StreamLength < 0 || h.StreamOffset < 0
            || (h.StreamLength > 0 && h.StreamOffset < h.DmesgOffset + h.DmesgLength))
        {
            problem = $"its capture-agent raw header has an impossible layout (log {h.DmesgOffset}+{h.DmesgLength}, dump {h.StreamOffset}+{h.StreamLength})";
            return null;
        }
        return h;
    }

    /// <summary>"web1, crashed 2026-11-23 08:00:00 UTC, kernel 6.1.0-56-cloud-amd64": for messages.</summary>
    public string Describe() =>
        $"{(Host.Length > 0 ? Host : "unknown host")}, crashed {CrashTime.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, kernel {(KernelRelease.Length > 0 ? KernelRelease : "unknown")}";

    private static DateTimeOffset FromUnix(long seconds) =>
        seconds is > 0 and < 253402300799 ? DateTimeOffset.FromUnixTimeSeconds(seconds) : DateTimeOffset.UnixEpoch;

    private static void PutText(Span<byte> field, string? text)
    {
        if (string.IsNullOrEmpty(text)) return;
        // Cut on a character boundary, leaving the last byte NUL.
        var bytes = Encoding.UTF8.GetBytes(text);
        int n = Math.Min(bytes.Length, field.Length - 1);
        while (n > 0 && n < bytes.Length && (bytes[n] & 0xC0) == 0x80) n--;
        bytes.AsSpan(0, n).CopyTo(field);
    }

    private static string? GetText(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        var t = nul >= 0 ? field[..nul] : field;
        return t.IsEmpty ? null : Encoding.UTF8.GetString(t);
    }
}

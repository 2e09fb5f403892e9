using System.Buffers.Binary;

namespace CaptureAgent.Targets.Lvm;

/// <summary>One copy of a VG's text metadata, as one metadata area of one PV holds it.</summary>
/// <param name="Text">The metadata text, checksum verified, trailing NULs removed.</param>
/// <param name="Checksum">The CRC the area's header gives for it: two copies with equal CRCs hold the same text.</param>
public sealed record MetadataCopy(byte[] Text, uint Checksum, DiskArea Area, bool Wrapped);

/// <summary>
/// A metadata area (lib/format_text/layout.h, format-text.c): a 512-byte header (CRC of the rest
/// of the sector, magic " LVM2 x[5A%r0N*>", version 1, its own start and the area's size, then
/// raw locations) and a circular buffer of text behind it. Raw location 0 is the committed
/// metadata: offset and size within the area, the CRC of the text. Text that runs past the end of
/// the area continues right after the header.
/// </summary>
internal static class MetadataArea
{
    public const int HeaderSize = 512;
    /// <summary>The largest metadata text read (lvm's default area is 1 MiB: a VG with thousands of LVs).</summary>
    public const int MaxTextSize = 1 << 20;
    private const uint RawLocnIgnored = 1;
    private static ReadOnlySpan<byte> Magic => " LVM2 x[5A%r0N*>"u8;

    /// <summary>
    /// The committed metadata in <paramref name="area"/>, or null with <paramref name="problem"/>
    /// saying why (null problem and null result: the area holds no metadata, an orphan PV, or the
    /// area is marked ignored).
    /// </summary>
    public static MetadataCopy? Read(BlockSource source, DiskArea area, out string? problem)
    {
        problem = null;
        var header = new byte[HeaderSize];
        if (area.Offset < HeaderSize || area.Size < 2 * HeaderSize || area.Offset > long.MaxValue / 2 || area.Size > long.MaxValue / 2)
        {
            problem = $"metadata area at byte {area.Offset} of {area.Size} bytes is impossible";
            return null;
        }
        if (!source.ReadExact((long)area.Offset, header))
        {
            problem = $"metadata area header at byte {area.Offset} cannot be read";
            return null;
        }
        if (CheckHeader(header, area) is { } bad)
        {
            problem = $"metadata area header at byte {area.Offset}: {bad}";
            return null;
        }
        ulong mdaSize = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        var locn = header.AsSpan(40);
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(locn);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(locn[8..]);
        uint checksum = BinaryPrimitives.ReadUInt32LittleEndian(locn[16..]);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(locn[20..]);
        if (offset == 0 && size == 0) return null;            // a PV in no VG yet
        if ((flags & RawLocnIgnored) != 0) return null;       // lvm keeps no copy here (pvchange --metadataignore)
        if (offset < HeaderSize || offset >= mdaSize || size == 0 || size > mdaSize - HeaderSize)
        {
            problem = $"metadata area at byte {area.Offset} places its text at {offset} ({size} bytes), outside the area";
            return null;
        }
        if (size > MaxTextSize)
        {
            problem = $"metadata text of {size} bytes at byte {area.Offset} is more than the {MaxTextSize >> 20} MiB read here";
            return null;
        }
        return ReadText(source, area, mdaSize, offset, (int)size, checksum, out problem);
    }

    private static string? CheckHeader(byte[] header, DiskArea area)
    {
        if (!header.AsSpan(4, 16).SequenceEqual(Magic)) return "no LVM2 metadata magic";
        if (LvmChecksum.Compute(header.AsSpan(4)) != BinaryPrimitives.ReadUInt32LittleEndian(header)) return "checksum mismatch";
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(20));
        if (version != 1) return $"format version {version}, not 1";
        if (BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(24)) != area.Offset) return "it names another start";
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(32));
        if (size < 2 * HeaderSize || size > area.Size) return $"area size {size} does not fit the PV header's {area.Size}";
        return null;
    }

    private static MetadataCopy? ReadText(BlockSource source, DiskArea area, ulong mdaSize, ulong offset, int size, uint checksum, out string? problem)
    {
        problem = null;
        var text = new byte[size];
        // The buffer is circular: what does not fit before the area's end continues after its header.
        int first = (int)Math.Min((ulong)size, mdaSize - offset);
        bool ok = source.ReadExact((long)(area.Offset + offset), text.AsSpan(0, first))
                  && (first == size || source.ReadExact((long)area.Offset + HeaderSize, text.AsSpan(first)));
        if (!ok)
        {
            problem = $"metadata text at byte {area.Offset + offset} cannot be read";
            return null;
        }
        if (LvmChecksum.Compute(text) != checksum)
        {
            problem = $"metadata text at byte {area.Offset + offset} fails its checksum";
            return null;
        }
        int end = text.Length;
        while (end > 0 && text[end - 1] == 0) end--;
        return new MetadataCopy(end == text.Length ? text : text[..end], checksum, area, first != size);
    }
}

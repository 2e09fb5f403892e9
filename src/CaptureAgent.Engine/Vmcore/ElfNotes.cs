using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Vmcore;

/// <summary>One ELF note inside a PT_NOTE blob; offsets are relative to the blob (the note's header at <paramref name="Offset"/>).</summary>
public readonly record struct ElfNote(string Name, uint Type, int DescOffset, int DescSize, int Offset = 0)
{
    /// <summary>One past the note's padded descriptor: where the next note starts.</summary>
    public int End => DescOffset + (int)((DescSize + 3L) & ~3L);
}

public static class ElfNotes
{
    public const uint NT_PRSTATUS = 1;

    /// <summary>
    /// Walks Elf64_Nhdr records (12-byte header, name and desc padded to 4 bytes).
    /// Stops quietly at the first malformed header: /proc/vmcore pads its note segment with zeros.
    /// </summary>
    public static List<ElfNote> Parse(ReadOnlySpan<byte> blob)
    {
        var notes = new List<ElfNote>();
        int pos = 0;
        while (pos + 12 <= blob.Length)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(blob[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(blob[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(blob[(pos + 8)..]);
            if (namesz == 0 && descsz == 0) break;
            long nameEnd = pos + 12L + Align4(namesz);
            long descEnd = nameEnd + Align4(descsz);
            if (namesz > 4096 || descEnd > blob.Length) break;
            var nameBytes = blob.Slice(pos + 12, (int)namesz);
            int nul = nameBytes.IndexOf((byte)0);
            if (nul >= 0) nameBytes = nameBytes[..nul];
            notes.Add(new ElfNote(Encoding.ASCII.GetString(nameBytes), type, (int)nameEnd, (int)descsz, pos));
            pos = (int)descEnd;
        }
        return notes;
    }

    private static long Align4(uint v) => (v + 3L) & ~3L;

    /// <summary>The blob without one of its notes.</summary>
    public static byte[] Without(ReadOnlySpan<byte> blob, ElfNote note) => [.. blob[..note.Offset], .. blob[Math.Min(note.End, blob.Length)..]];
}

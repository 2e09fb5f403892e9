using System.Buffers.Binary;
using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Report;

/// <summary>What a dump file's headers say.</summary>
internal sealed record HeaderFacts(string Format, string? Host, string? Release, DateTimeOffset? VmcoreInfoTime, DateTimeOffset? HeaderTime, bool Incomplete, string? IncompleteWhy);

/// <summary>
/// Reads only the headers (and notes) of a kdump-compressed, flattened or ELF dump: its format,
/// host, kernel release, crash time and whether the capture finished. Never the pages.
/// </summary>
internal static class DumpHeaderProbe
{
    /// <summary>Reads only the headers (and notes) of a kdump-compressed, flattened or ELF dump.</summary>
    public static HeaderFacts Read(string path)
    {
        using var f = InputFile.OpenRegular(path);
        long length = RandomAccess.GetLength(f);
        var magic = new byte[DumpProbe.HeadLength];
        int got = RandomAccess.Read(f, magic, 0);
        var kind = DumpProbe.Kind(magic.AsSpan(0, got));
        if (kind == DumpKind.KdumpCompressed)
            return FromKdump("kdump-compressed", (buf, off) => RandomAccess.Read(f, buf, off), length);
        if (kind == DumpKind.Flattened)
        {
            var front = FlattenedFront(f, length);
            var h = FromKdump("flattened", (buf, off) =>
            {
                if (off >= front.Length) return 0;
                int n = (int)Math.Min(buf.Length, front.Length - off);
                front.AsSpan((int)off, n).CopyTo(buf);
                return n;
            }, front.Length);
            return h;
        }
        if (kind == DumpKind.Elf)
        {
            f.Dispose();
            using var elf = new ElfVmcore(path);
            var vi = elf.Info;
            return new HeaderFacts("elf", null, vi?.OsRelease, UnixTime(vi?.CrashTime), null,
                elf.TruncationWarning is not null, elf.TruncationWarning);
        }
        throw new InvalidDataException(got == 0 ? "empty file" : "neither a kdump-compressed, flattened nor ELF dump");
    }

    private delegate int ReadAt(Span<byte> buffer, long offset);

    private static HeaderFacts FromKdump(string format, ReadAt read, long length)
    {
        var main = new byte[KdumpHeader.HeaderSize];
        if (read(main, 0) != main.Length) throw new InvalidDataException("kdump header truncated");
        int blockSize = BinaryPrimitives.ReadInt32LittleEndian(main.AsSpan(428));
        if (blockSize is < 4096 or > 262144) throw new InvalidDataException($"bad kdump block_size {blockSize}");
        var sub = new byte[KdumpHeader.SubHeaderSize];
        if (read(sub, blockSize) != sub.Length) throw new InvalidDataException("kdump sub header truncated");
        var h = KdumpHeader.Parse(main, sub, out _, out _, out long notesOffset, out long notesSize);
        VmcoreInfo? vi = null;
        if (notesSize is > 0 and <= 1 << 20 && notesOffset > 0 && notesOffset + notesSize <= length)
        {
            var notes = new byte[notesSize];
            if (read(notes, notesOffset) == notes.Length)
                foreach (var n in ElfNotes.Parse(notes))
                    if (n.Name == "VMCOREINFO") { vi = VmcoreInfo.Parse(notes.AsSpan(n.DescOffset, n.DescSize)); break; }
        }
        bool incomplete = (h.Status & KdumpHeader.StatusIncomplete) != 0;
        string node = h.Field(1);
        return new HeaderFacts(format, node is "" or "(none)" ? null : node, DumpFacts.NonEmpty(h.Field(2)) ?? vi?.OsRelease,
            UnixTime(vi?.CrashTime), UnixTime(h.CrashTime), incomplete,
            incomplete ? "the dump's header says the capture did not finish (DUMP_DH_COMPRESSED_INCOMPLETE)" : null);
    }

    /// <summary>
    /// The first 64 KiB of the file a flattened stream describes, from its leading records (at most
    /// 256): enough for the headers and notes, which every writer emits first.
    /// </summary>
    private static byte[] FlattenedFront(Microsoft.Win32.SafeHandles.SafeFileHandle f, long length)
    {
        using var stream = new FileStream(f, FileAccess.Read, bufferSize: 0);
        return new FlattenedReader(stream, length).ReadFront(64 << 10, 256);
    }

    private static DateTimeOffset? UnixTime(long? seconds) =>
        seconds is long s && s > 0 && s < 253402300799 ? DateTimeOffset.FromUnixTimeSeconds(s) : null;
}

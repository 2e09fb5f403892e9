namespace CaptureAgent.Formats;

/// <summary>What the first bytes of a dump file say it is.</summary>
public enum DumpKind { Unknown, KdumpCompressed, Flattened, Elf }

/// <summary>
/// The one table of dump file signatures, for every command that opens a dump (dump, dmesg,
/// verify, report). It only names the format: what each command does with a format it cannot
/// read (refuse a flattened stream, try ELF, call the file corrupt) stays with the command.
/// </summary>
public static class DumpProbe
{
    /// <summary>Bytes to read from the start of a file for <see cref="Kind"/>: the longest signature fits.</summary>
    public const int HeadLength = 16;

    private static readonly (byte[] Signature, DumpKind Kind)[] Signatures =
    [
        (KdumpHeader.Signature.ToArray(), DumpKind.KdumpCompressed), // disk_dump_header.signature: ours and makedumpfile's
        (FlattenedReader.Signature.ToArray(), DumpKind.Flattened),            // makedumpfile_header.signature of a -F stream
        ("\u007fELF"u8.ToArray(), DumpKind.Elf),                     // /proc/vmcore, its copies, QEMU dump-guest-memory, -E
    ];

    /// <summary>The format whose signature <paramref name="head"/> (the file's first bytes, as many as it has) starts with.</summary>
    public static DumpKind Kind(ReadOnlySpan<byte> head)
    {
        foreach (var (signature, kind) in Signatures)
            if (head.StartsWith(signature)) return kind;
        return DumpKind.Unknown;
    }
}

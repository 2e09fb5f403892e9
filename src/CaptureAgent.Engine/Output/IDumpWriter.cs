using CaptureAgent.Dump;

namespace CaptureAgent.Output;

/// <summary>
/// Writes one dump of a source into a sink, and only that (as System.Formats.Tar's TarWriter
/// writes entries): the sink decides where the bytes go (a file, a raw device region, a
/// flattened stream into a pipe), the writer what they are.
/// </summary>
public interface IDumpWriter
{
    /// <summary>Writes the whole dump and completes the sink; what was degraded is in the result's problems.</summary>
    DumpResult Write();
}

/// <summary>The one place that picks the writer for a dump format.</summary>
public static class DumpWriters
{
    /// <summary>
    /// The writer of <see cref="DumpOptions.Format"/>: kdump-compressed (what crash, drgn and
    /// makedumpfile read), or ELF (-E, from an ELF input only). Into a <see cref="FlattenedSink"/>
    /// either becomes makedumpfile's flattened stream (-F).
    /// </summary>
    /// <exception cref="Vmcore.VmcoreException">ELF asked for from an input that is not ELF.</exception>
    public static IDumpWriter Create(DumpSource source, IDumpSink sink, DumpOptions options) => options.Format switch
    {
        DumpFormat.Elf => new ElfDumpWriter(source, sink, options),
        _ => new KdumpCompressedWriter(source, sink, options),
    };

    /// <summary>A sink that turns a seeking writer's output into a flattened stream on <paramref name="output"/> (a pipe, a socket).</summary>
    public static IDumpSink Flattened(Stream output, bool leaveOpen = false) => new FlattenedSink(output, leaveOpen);
}

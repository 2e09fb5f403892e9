using CaptureAgent.Common;
using CaptureAgent.Formats;
using CaptureAgent.Vmcore;

namespace CaptureAgent.Dump;

/// <summary>Opens a dump for reading its memory: what `dmesg` and the report read through.</summary>
public static class DumpOpener
{
    /// <summary>Opens an ELF vmcore or a kdump-compressed file, whichever the bytes say it is.</summary>
    public static IDisposable OpenMemory(string path, out VmcoreInfo? info, out IReadOnlyList<LoadSegment>? segments)
    {
        Span<byte> magic = stackalloc byte[DumpProbe.HeadLength];
        int got;
        try
        {
            using var f = InputFile.OpenRegular(path);
            got = RandomAccess.Read(f, magic, 0);
        }
        catch (Exception x) when (x is IOException or UnauthorizedAccessException)
        {
            throw new VmcoreException(ErrorText.Of(x));
        }
        if (DumpProbe.Kind(magic[..got]) == DumpKind.KdumpCompressed)
        {
            var k = new KdumpFile(path);
            info = k.Info;
            segments = null;
            return k;
        }
        var e = new ElfVmcore(path);
        info = e.Info;
        segments = e.Segments;
        return e;
    }
}

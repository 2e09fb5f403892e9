using System.IO.Compression;
using CaptureAgent.Compression.Xz;

namespace CaptureAgent.Compression;

/// <summary>How a module file is compressed, by its name (what kmod and the kernel build go by).</summary>
public enum ModuleCodec { None, Gzip, Xz, Zstd }

/// <summary>
/// Opening and decompressing kernel modules (.ko, .ko.gz, .ko.xz, .ko.zst): for reading .modinfo
/// on the host, and for the capture kernel when its kernel cannot decompress a module itself.
/// </summary>
public static class ModuleCompression
{
    /// <summary>
    /// Largest decompressed module loaded from memory. The biggest storage and filesystem modules
    /// of distribution kernels are a few MiB (btrfs, xfs: 2-4 MiB); GPU drivers, which a capture
    /// kernel never needs, reach 30 MiB and more.
    /// </summary>
    public const int MaxModuleBytes = 32 << 20;

    /// <summary>The dictionary a module's xz stream may ask for: Kbuild uses 1 MiB, and modules are smaller than the cap anyway.</summary>
    private const long MaxXzDictionary = 8L << 20;

    public static ModuleCodec CodecOf(string path) =>
        path.EndsWith(".xz", StringComparison.Ordinal) ? ModuleCodec.Xz
        : path.EndsWith(".zst", StringComparison.Ordinal) ? ModuleCodec.Zstd
        : path.EndsWith(".gz", StringComparison.Ordinal) ? ModuleCodec.Gzip
        : ModuleCodec.None;

    public static bool IsModuleFile(string path) =>
        path.EndsWith(".ko", StringComparison.Ordinal) || path.EndsWith(".ko.xz", StringComparison.Ordinal) ||
        path.EndsWith(".ko.gz", StringComparison.Ordinal) || path.EndsWith(".ko.zst", StringComparison.Ordinal);

    /// <summary>The codec's name as Kconfig spells it (CONFIG_MODULE_COMPRESS_XZ).</summary>
    public static string ConfigName(ModuleCodec codec) => codec switch
    {
        ModuleCodec.Gzip => "GZIP",
        ModuleCodec.Xz => "XZ",
        ModuleCodec.Zstd => "ZSTD",
        _ => "NONE",
    };

    /// <summary>A decompressing view of <paramref name="compressed"/> (which it then owns).</summary>
    public static Stream Decompressing(Stream compressed, ModuleCodec codec) => codec switch
    {
        ModuleCodec.Xz => new XzDecoderStream(compressed, leaveOpen: false, MaxXzDictionary),
        ModuleCodec.Gzip => new GZipStream(compressed, CompressionMode.Decompress),
        ModuleCodec.Zstd => new ZstdSharp.DecompressionStream(compressed, leaveOpen: false),
        _ => compressed,
    };

    /// <summary>Opens a module file's ELF content, decompressing by the file name's ending.</summary>
    public static Stream OpenContent(string path)
    {
        if (!IsModuleFile(path)) throw new IOException($"{path}: not a kernel module file name (.ko, .ko.xz, .ko.gz or .ko.zst)");
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Decompressing(file, CodecOf(path));
    }

    /// <summary>
    /// Reads a decompressing stream to its end into <paramref name="destination"/>, which it fills
    /// from the start; returns the number of bytes, or -1 when the content does not fit.
    /// </summary>
    public static int ReadAll(Stream content, Span<byte> destination)
    {
        int total = 0;
        while (true)
        {
            if (total == destination.Length)
            {
                // Full: one more byte means the content is larger than the room.
                Span<byte> probe = stackalloc byte[1];
                return content.Read(probe) == 0 ? total : -1;
            }
            int n = content.Read(destination[total..]);
            if (n <= 0) return total;
            total += n;
        }
    }

    /// <summary>
    /// Reads a stream to its end into a managed array that starts at <paramref name="initial"/>
    /// bytes and doubles up to <paramref name="max"/>: the array and the length, or a null array
    /// when the content is larger than <paramref name="max"/>.
    /// </summary>
    public static (byte[]? Data, int Length) ReadAtMost(Stream content, int initial, int max)
    {
        var data = new byte[Math.Clamp(initial, 1, max)];
        int total = 0;
        while (true)
        {
            int n = content.Read(data, total, data.Length - total);
            if (n <= 0) return (data, total);
            total += n;
            if (total < data.Length) continue;
            if (data.Length == max)
            {
                Span<byte> probe = stackalloc byte[1];
                return content.Read(probe) == 0 ? (data, total) : (null, 0);
            }
            Array.Resize(ref data, (int)Math.Min(max, 2L * data.Length));
        }
    }

    /// <summary>Whether a decompressor error is one of bad data (as opposed to a failing disk).</summary>
    public static bool IsDataError(Exception e) => e is InvalidDataException or ZstdSharp.ZstdException;
}

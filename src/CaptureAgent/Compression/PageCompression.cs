using System.IO.Compression;
using ZstdSharp;

namespace CaptureAgent.Compression;

/// <summary>Per-page codecs of the kdump-compressed format; the values are its descriptor flags.</summary>
public enum PageCodec : uint
{
    None = 0,
    Zlib = 1,
    Lzo = 2,
    Snappy = 4,
    Zstd = 0x20,
}

/// <summary>Compresses one page at a time, reusing its state; one instance per thread.</summary>
public interface IPageCompressor : IDisposable
{
    PageCodec Codec { get; }

    /// <summary>Compressed size, or -1 when the result would not be smaller than the page (store it raw).</summary>
    int Compress(ReadOnlySpan<byte> page, Span<byte> destination);
}

public static class PageCompressors
{
    public static IPageCompressor? Create(PageCodec codec, int pageSize, int zstdLevel = ZstdPageCompressor.DefaultLevel) => codec switch
    {
        PageCodec.None => null,
        PageCodec.Zstd => new ZstdPageCompressor(zstdLevel),
        PageCodec.Zlib => new ZlibPageCompressor(pageSize),
        _ => throw new NotSupportedException($"{codec} compression is not built in"),
    };

    /// <summary>Decompresses one stored page; false if the data is corrupt or not exactly one page.</summary>
    public static bool TryDecompress(PageCodec codec, ReadOnlySpan<byte> data, Span<byte> page)
    {
        try
        {
            switch (codec)
            {
                case PageCodec.None:
                    if (data.Length != page.Length) return false;
                    data.CopyTo(page);
                    return true;
                case PageCodec.Zstd:
                    using (var d = new Decompressor())
                        return d.TryUnwrap(data, page, out int written) && written == page.Length;
                case PageCodec.Zlib:
                    unsafe
                    {
                        fixed (byte* p = data)
                        {
                            using var ms = new UnmanagedMemoryStream(p, data.Length);
                            using var z = new ZLibStream(ms, CompressionMode.Decompress);
                            int total = 0;
                            while (total < page.Length)
                            {
                                int n = z.Read(page[total..]);
                                if (n == 0) break;
                                total += n;
                            }
                            return total == page.Length && z.Read(new byte[1]) == 0;
                        }
                    }
                default:
                    return false;
            }
        }
        catch (Exception e) when (e is InvalidDataException or ZstdException or IOException)
        {
            return false;
        }
    }
}

/// <summary>
/// zstd level 1, one frame per page with its content size, as makedumpfile -z writes, plus the
/// frame checksum: 4 bytes a page buys detection of a corrupted page instead of silent garbage.
/// </summary>
public sealed class ZstdPageCompressor : IPageCompressor
{
    public const int DefaultLevel = 1;
    private readonly Compressor _zstd;

    public ZstdPageCompressor(int level = DefaultLevel)
    {
        _zstd = new Compressor(level);
        _zstd.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_checksumFlag, 1);
    }

    public PageCodec Codec => PageCodec.Zstd;

    public int Compress(ReadOnlySpan<byte> page, Span<byte> destination)
    {
        if (!_zstd.TryWrap(page, destination, out int written)) return -1;
        return written < page.Length ? written : -1;
    }

    public void Dispose() => _zstd.Dispose();
}

/// <summary>zlib-wrapped deflate at level 1 (Z_BEST_SPEED), as makedumpfile -c writes.</summary>
public sealed class ZlibPageCompressor(int pageSize) : IPageCompressor
{
    private readonly MemoryStream _out = new(pageSize + 1024);

    public PageCodec Codec => PageCodec.Zlib;

    public int Compress(ReadOnlySpan<byte> page, Span<byte> destination)
    {
        _out.SetLength(0);
        using (var z = new ZLibStream(_out, CompressionLevel.Fastest, leaveOpen: true))
            z.Write(page);
        int n = (int)_out.Length;
        if (n >= page.Length || n > destination.Length) return -1;
        _out.GetBuffer().AsSpan(0, n).CopyTo(destination);
        return n;
    }

    public void Dispose() => _out.Dispose();
}

using System.Diagnostics;

namespace CaptureAgent.Compression;

/// <summary>
/// compression = auto: which codec gets the dump onto the target first. Each candidate's cost per
/// page (CPU time, measured on this machine) and size per page (measured on a sample of the dump's
/// own pages) against how fast the target takes bytes (measured on the dump's first megabytes):
/// a slow NFS export or ssh link wants the smallest pages (zstd), a fast local disk the cheapest
/// (lzo or snappy).
/// </summary>
public sealed class CodecChoice : IDisposable
{
    public static readonly PageCodec[] Candidates = [PageCodec.Zstd, PageCodec.Lzo, PageCodec.Snappy];

    private readonly int _pageSize;
    private readonly IPageCompressor[] _compressors;
    private readonly long[] _ticks, _bytes;
    private readonly int[] _last;
    private readonly byte[] _out;
    private long _pages;

    public CodecChoice(int pageSize, int zstdLevel)
    {
        _pageSize = pageSize;
        _compressors = Candidates.Select(c => PageCompressors.Create(c, pageSize, zstdLevel)!).ToArray();
        _ticks = new long[Candidates.Length];
        _bytes = new long[Candidates.Length];
        _last = new int[Candidates.Length];
        _out = new byte[Candidates.Max(c => PageCompressors.MaxCompressedLength(c, pageSize))];
    }

    public long SampledPages => _pages;

    /// <summary>Compresses one sample page with every candidate, timing each.</summary>
    public void Measure(ReadOnlySpan<byte> page)
    {
        if (_pages == 0)
            foreach (var c in _compressors) c.Compress(page, _out);   // first use sets up state: not timed
        for (int i = 0; i < _compressors.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            int n = _compressors[i].Compress(page, _out);
            _ticks[i] += Stopwatch.GetTimestamp() - t0;
            _last[i] = n > 0 ? n : _pageSize;
            _bytes[i] += _last[i];
        }
        _pages++;
    }

    /// <summary>
    /// What the page last measured takes in <paramref name="codec"/> (its raw size when it does
    /// not shrink), or null when the codec is no candidate: the size sample of pass 1 reads it
    /// here instead of compressing the page once more.
    /// </summary>
    public int? LastSize(PageCodec codec)
    {
        int i = Array.IndexOf(Candidates, codec);
        return i < 0 || _pages == 0 ? null : _last[i];
    }

    public static bool IsCandidate(PageCodec codec) => Array.IndexOf(Candidates, codec) >= 0;

    /// <summary>Seconds of CPU and bytes per page of candidate i, as measured.</summary>
    public (double Seconds, double Bytes) PerPage(int i) => _pages == 0
        ? (0, _pageSize)
        : ((double)_ticks[i] / Stopwatch.Frequency / _pages, (double)_bytes[i] / _pages);

    /// <summary>The candidate with the least CPU a page, as measured (zstd before any sample).</summary>
    public PageCodec Cheapest => Best(i => PerPage(i).Seconds);

    /// <summary>The candidate with the smallest pages, as measured (zstd before any sample).</summary>
    public PageCodec Smallest => Best(i => PerPage(i).Bytes);

    private PageCodec Best(Func<int, double> cost)
    {
        if (_pages == 0) return PageCodec.Zstd;
        int best = 0;
        for (int i = 1; i < Candidates.Length; i++)
            if (cost(i) < cost(best)) best = i;
        return Candidates[best];
    }

    /// <summary>
    /// The candidate that writes <paramref name="pages"/> more pages soonest on a target taking
    /// <paramref name="bytesPerSecond"/>, with <paramref name="threads"/> compressing. Compressing
    /// and writing overlap even on one CPU: what is written goes to the page cache, and the device
    /// (or the NFS client's network) takes it from there while the CPU compresses the next pages,
    /// so the slower of the two sets the pace. (Adding them, as this did first, had a 4 MiB/s
    /// target at a tie between zstd and lzo where zstd finished in 7.9 s and lzo in 9.9 s. An ssh
    /// stream, whose encryption shares the CPU, overlaps less; its speed as measured includes it.) A
    /// candidate whose pages would not fit in <paramref name="room"/> bytes is taken only if none fits.
    /// </summary>
    public (PageCodec Codec, string Reason) Choose(ulong pages, double bytesPerSecond, int threads, long? room)
    {
        int best = 0;
        double bestTime = double.MaxValue;
        bool bestFits = false;
        var parts = new List<string>();
        for (int i = 0; i < Candidates.Length; i++)
        {
            var (cpu, size) = PerPage(i);
            double write = pages * size / Math.Max(bytesPerSecond, 1);
            double compute = pages * cpu / Math.Max(threads, 1);
            double time = Math.Max(compute, write);
            bool fits = room is not long r || pages * size <= r;
            parts.Add($"{PageCompressors.Name(Candidates[i])} {cpu * 1e6:0.0} µs and {size:0} bytes a page, about {time:0.0} s");
            if ((fits && !bestFits) || (fits == bestFits && time < bestTime))
            {
                (best, bestTime, bestFits) = (i, time, fits);
            }
        }
        string reason = $"the target takes {bytesPerSecond / (1 << 20):0.0} MiB/s; for the {pages} pages left: {string.Join(", ", parts)}" +
                        (bestFits ? "" : " (none fits the free space)");
        return (Candidates[best], reason);
    }

    public void Dispose()
    {
        foreach (var c in _compressors) c.Dispose();
    }
}

namespace CaptureAgent.Compression;

/// <summary>
/// Compresses a batch of pages on all CPUs the process may use (one in a capture kernel booted
/// with nr_cpus=1, where it runs inline). Each worker owns its compressor; results keep page order.
/// </summary>
public sealed class BatchCompressor : IDisposable
{
    private readonly IPageCompressor?[] _workers;
    private readonly byte[] _out;
    private readonly int _slot;
    private readonly int _pageSize;

    public int Capacity { get; }
    public int[] Sizes { get; }
    public PageCodec Codec { get; }

    public BatchCompressor(PageCodec codec, int pageSize, int capacity, int threads)
    {
        _pageSize = pageSize;
        Capacity = capacity;
        Codec = codec;
        _slot = pageSize * 2 + 512;
        _out = new byte[_slot * capacity];
        Sizes = new int[capacity];
        _workers = new IPageCompressor?[Math.Max(1, threads)];
        for (int i = 0; i < _workers.Length; i++) _workers[i] = PageCompressors.Create(codec, pageSize);
    }

    public static int DefaultThreads => Math.Min(Environment.ProcessorCount, 8);

    /// <summary>Compresses pages[indices[0..count)] (page-sized slots); Sizes[i] is -1 for a page to store raw.</summary>
    public void Compress(byte[] pages, int[] indices, int count)
    {
        var first = _workers[0];
        if (first is null)
        {
            for (int k = 0; k < count; k++) Sizes[indices[k]] = -1;
            return;
        }
        int workers = Math.Min(_workers.Length, Math.Max(1, count / 8));
        if (workers == 1)
        {
            for (int k = 0; k < count; k++) CompressOne(first, pages, indices[k]);
            return;
        }
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            var c = _workers[w]!;
            for (int k = w; k < count; k += workers) CompressOne(c, pages, indices[k]);
        });
    }

    private void CompressOne(IPageCompressor c, byte[] pages, int i) =>
        Sizes[i] = c.Compress(pages.AsSpan(i * _pageSize, _pageSize), _out.AsSpan(i * _slot, _slot));

    public ReadOnlySpan<byte> Output(int index) => _out.AsSpan(index * _slot, Sizes[index]);

    public void Dispose()
    {
        foreach (var w in _workers) w?.Dispose();
    }
}

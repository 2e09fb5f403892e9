namespace CaptureAgent.Compression;

/// <summary>
/// Compresses a batch of pages on all CPUs the process may use (one in a capture kernel booted
/// with nr_cpus=1, where it runs inline). Helper threads live as long as the compressor and are
/// handed work without allocating, so memory stays flat however long the dump runs.
/// Each worker owns its compressor; results keep page order.
/// </summary>
public sealed class BatchCompressor : IDisposable
{
    private readonly IPageCompressor?[] _compressors;
    private readonly byte[] _out;
    private readonly int _slot;
    private readonly int _pageSize;
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim[] _go;
    private readonly CountdownEvent _done;
    private volatile bool _stopping;
    // The batch being worked on, visible to the helpers between a Release and the countdown.
    private byte[] _pages = [];
    private int[] _indices = [];
    private int _count, _workers;

    public int Capacity { get; }
    public int[] Sizes { get; }
    public PageCodec Codec { get; }

    public BatchCompressor(PageCodec codec, int pageSize, int capacity, int threads, int zstdLevel = ZstdPageCompressor.DefaultLevel)
    {
        _pageSize = pageSize;
        Capacity = capacity;
        Codec = codec;
        _slot = pageSize * 2 + 512;
        _out = new byte[_slot * capacity];
        Sizes = new int[capacity];
        int n = codec == PageCodec.None ? 1 : Math.Max(1, threads);
        _compressors = new IPageCompressor?[n];
        for (int i = 0; i < n; i++) _compressors[i] = PageCompressors.Create(codec, pageSize, zstdLevel);
        _helpers = new Thread[n - 1];
        _go = new SemaphoreSlim[n - 1];
        _done = new CountdownEvent(1);
        for (int i = 0; i < _helpers.Length; i++)
        {
            int worker = i + 1;
            _go[i] = new SemaphoreSlim(0);
            _helpers[i] = new Thread(() => HelperLoop(worker)) { IsBackground = true, Name = $"compress-{worker}" };
            _helpers[i].Start();
        }
    }

    public static int DefaultThreads => Math.Min(Environment.ProcessorCount, 8);

    /// <summary>Compresses pages[indices[0..count)] (page-sized slots); Sizes[i] is -1 for a page to store raw.</summary>
    public void Compress(byte[] pages, int[] indices, int count)
    {
        if (_compressors[0] is null)
        {
            for (int k = 0; k < count; k++) Sizes[indices[k]] = -1;
            return;
        }
        _pages = pages;
        _indices = indices;
        _count = count;
        _workers = Math.Min(_compressors.Length, Math.Max(1, count / 8));
        if (_workers > 1)
        {
            _done.Reset(_workers - 1);
            for (int w = 1; w < _workers; w++) _go[w - 1].Release();
        }
        Work(0);
        if (_workers > 1) _done.Wait();
    }

    private void HelperLoop(int worker)
    {
        var go = _go[worker - 1];
        while (true)
        {
            go.Wait();
            if (_stopping) return;
            Work(worker);
            _done.Signal();
        }
    }

    private void Work(int worker)
    {
        var c = _compressors[worker]!;
        for (int k = worker; k < _count; k += _workers)
        {
            int i = _indices[k];
            Sizes[i] = c.Compress(_pages.AsSpan(i * _pageSize, _pageSize), _out.AsSpan(i * _slot, _slot));
        }
    }

    public ReadOnlySpan<byte> Output(int index) => _out.AsSpan(index * _slot, Sizes[index]);

    public void Dispose()
    {
        _stopping = true;
        foreach (var g in _go) g.Release();
        foreach (var t in _helpers) t.Join();
        foreach (var c in _compressors) c?.Dispose();
        foreach (var g in _go) g.Dispose();
        _done.Dispose();
    }
}

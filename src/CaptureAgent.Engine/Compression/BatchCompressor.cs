namespace CaptureAgent.Compression;

/// <summary>What a page of a batch turned out to be once read.</summary>
public enum PageKind : byte { Data, Zero, Unreadable }

/// <summary>
/// A batch of pages on its way to the dump: read into <see cref="Pages"/>, compressed into
/// <see cref="Output"/>, then written. Two of them let reading the next batch overlap with
/// compressing this one.
/// </summary>
public sealed class PageBatch
{
    public int PageSize { get; }
    public int Capacity { get; }
    public int Slot { get; }
    public byte[] Pages { get; }
    public PageKind[] Kinds { get; }
    /// <summary>Slots whose page is to be compressed, in order.</summary>
    public int[] ToCompress { get; }
    /// <summary>Compressed size per slot; -1: store the page raw.</summary>
    public int[] Sizes { get; }
    public byte[] Output { get; }
    public int Count, CompressCount;
    /// <summary>The codec the batch was compressed with.</summary>
    public PageCodec Codec;

    public PageBatch(int capacity, int pageSize, int slot)
    {
        PageSize = pageSize;
        Capacity = capacity;
        Slot = slot;
        Pages = new byte[capacity * pageSize];
        Kinds = new PageKind[capacity];
        ToCompress = new int[capacity];
        Sizes = new int[capacity];
        Output = new byte[capacity * slot];
    }

    public void Clear() => Count = CompressCount = 0;

    public Span<byte> Page(int slot) => Pages.AsSpan(slot * PageSize, PageSize);

    public ReadOnlySpan<byte> Compressed(int slot) => Output.AsSpan(slot * Slot, Sizes[slot]);
}

/// <summary>
/// Compresses batches of pages on the CPUs the process may use (one in a capture kernel booted
/// with nr_cpus=1, where it all runs inline in <see cref="Finish"/>). <see cref="Start"/> hands a
/// batch to the helper threads and returns at once, so the caller reads the next batch and
/// writes the previous one meanwhile; <see cref="Finish"/> has the caller claim pages too until
/// the batch is done. Pages are claimed a few at a time, so no thread idles while another has a
/// backlog. Helper threads live as long as the compressor and are handed work without
/// allocating, so memory stays flat however long the dump runs. Each worker owns its compressor.
/// </summary>
public sealed class BatchCompressor : IDisposable
{
    private const int Claim = 4;   // pages a worker takes at a time
    private readonly IPageCompressor?[] _compressors;
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim[] _go;
    private readonly CountdownEvent _done;
    private volatile bool _stopping;
    // The batch being worked on, visible to the helpers between a Release and the countdown.
    private PageBatch? _batch;
    private int _next, _helpersBusy;

    public PageCodec Codec { get; }
    public int Threads => _compressors.Length;

    public BatchCompressor(PageCodec codec, int pageSize, int threads, int zstdLevel = ZstdPageCompressor.DefaultLevel)
    {
        Codec = codec;
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

    /// <summary>Output room per page slot a batch needs for this codec.</summary>
    public static int SlotSize(PageCodec codec, int pageSize) => (PageCompressors.MaxCompressedLength(codec, pageSize) + 63) / 64 * 64;

    /// <summary>Begins compressing the batch's pages on the helper threads; the caller must <see cref="Finish"/> it.</summary>
    public void Start(PageBatch batch)
    {
        if (_batch is not null) throw new InvalidOperationException("a batch is already being compressed");
        _batch = batch;
        batch.Codec = Codec;
        _next = 0;
        if (_compressors[0] is null)
        {
            for (int k = 0; k < batch.CompressCount; k++) batch.Sizes[batch.ToCompress[k]] = -1;
            return;
        }
        _helpersBusy = batch.CompressCount >= 2 * Claim ? _helpers.Length : 0;
        if (_helpersBusy == 0) return;
        _done.Reset(_helpersBusy);
        for (int w = 0; w < _helpersBusy; w++) _go[w].Release();
    }

    /// <summary>Compresses what the helpers have not claimed yet, then waits for them.</summary>
    public void Finish()
    {
        if (_batch is null) return;
        if (_compressors[0] is not null) Work(0);
        if (_helpersBusy > 0) _done.Wait();
        _batch = null;
    }

    /// <summary>Start and Finish in one: the whole batch compressed before returning.</summary>
    public void Compress(PageBatch batch)
    {
        Start(batch);
        Finish();
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
        var b = _batch!;
        while (true)
        {
            int first = Interlocked.Add(ref _next, Claim) - Claim;
            if (first >= b.CompressCount) return;
            int last = Math.Min(first + Claim, b.CompressCount);
            for (int k = first; k < last; k++)
            {
                int i = b.ToCompress[k];
                b.Sizes[i] = c.Compress(b.Page(i), b.Output.AsSpan(i * b.Slot, b.Slot));
            }
        }
    }

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

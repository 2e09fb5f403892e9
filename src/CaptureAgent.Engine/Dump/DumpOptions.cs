using CaptureAgent.Compression;
using CaptureAgent.Filtering;

namespace CaptureAgent.Dump;

public enum DumpFormat { KdumpCompressed, Elf }

public sealed class DumpOptions
{
    public DumpLevel Level { get; init; } = DumpLevel.All;
    public PageCodec Codec { get; init; } = PageCodec.Zstd;

    /// <summary>
    /// Let the writer pick the codec that finishes first, from each codec's measured speed and size
    /// and the target's measured speed (<see cref="Codec"/> is used while measuring).
    /// </summary>
    public bool AutoCodec { get; init; }
    public DumpFormat Format { get; init; } = DumpFormat.KdumpCompressed;

    /// <summary>Pfns per filtering window; bounds the bitmap memory (2 bits per pfn at most in flight).</summary>
    public ulong WindowPfns { get; init; } = DefaultWindowPfns;

    /// <summary>4 Mi pfns = 16 GiB of memory per window, 512 KiB per bitmap.</summary>
    public const ulong DefaultWindowPfns = 1UL << 22;

    /// <summary>zstd level; negative levels are zstd's fast modes.</summary>
    public int ZstdLevel { get; init; } = Compression.ZstdPageCompressor.DefaultLevel;

    /// <summary>Compression threads; the capture kernel usually has one CPU.</summary>
    public int Threads { get; init; } = Compression.BatchCompressor.DefaultThreads;

    /// <summary>
    /// compression = auto: bytes of page data written before the target's speed is judged (or 2 s,
    /// whichever comes first). Small, because the probe's pages are the cheapest codec's whatever
    /// the choice (a slow target pays for their size); its fsync still takes long enough on a slow
    /// target (0.25 s at 4 MiB/s) to tell it from a fast one.
    /// </summary>
    public long ProbeBytes { get; init; } = 1 << 20;

    /// <summary>Called now and then with (pages done, pages to do).</summary>
    public Action<ulong, ulong>? Progress { get; init; }

    /// <summary>
    /// Called after each unit of work in every pass (a filtering window, a batch of pages): the
    /// capture kernel's PID 1 takes its silence as a hang.
    /// </summary>
    public Action? Heartbeat { get; init; }

    /// <summary>
    /// Bytes the target can still take (free space minus what must stay free), asked before the
    /// data and every 32 MiB of it; null: the target's space is not watched.
    /// </summary>
    public Func<long>? FreeSpace { get; init; }

    /// <summary>The level the dump switches to when the estimate or the free space says it will not fit.</summary>
    public DumpLevel? FallbackLevel { get; init; }
}

/// <summary>What a dump run produced; Problems lists what was degraded.</summary>
public sealed class DumpResult
{
    public ulong MaxMapnr;
    public ulong DumpablePages;
    public ulong ZeroPages;
    public ulong StoredPages;
    public ulong UnreadablePages;
    public long BytesWritten;
    /// <summary>Time spent classifying pages (first pass) and copying them (second pass, with its filtering).</summary>
    public double FilterSeconds, CopySeconds;
    public Filtering.FilterStats? Filter;
    /// <summary>The expected file size, from the page count and a compressed sample of pages.</summary>
    public long EstimatedBytes;
    /// <summary>The codec of the dump's header: the one asked for, or what compression = auto chose.</summary>
    public Compression.PageCodec Codec;
    /// <summary>compression = auto: what was measured and why the codec was chosen.</summary>
    public string? CodecChoice;
    /// <summary>Set when space made the writer exclude more than asked, from then on.</summary>
    public DumpLevel? LevelRaisedTo;
    /// <summary>The target filled up (or failed) mid-dump: the file holds the pages up to where it stopped.</summary>
    public bool Incomplete;
    public string? IncompleteReason;
    public List<string> Problems { get; } = new();
}

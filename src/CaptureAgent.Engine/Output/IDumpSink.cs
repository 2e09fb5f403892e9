using System.Buffers.Binary;
using CaptureAgent.Formats;
using CaptureAgent.Native;
using Microsoft.Win32.SafeHandles;

namespace CaptureAgent.Output;

/// <summary>Where a dump goes: writes at absolute offsets of the finished file.</summary>
public interface IDumpSink : IDisposable
{
    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>Makes everything written durable (fsync for files); called once at the end.</summary>
    void Complete();

    /// <summary>
    /// Allocates storage for [offset, offset + length) ahead of time: the descriptor table, written
    /// after the data it points to, still fits when the data has filled the target. Only that range:
    /// the bitmaps before it are sparse (windows without pages are never written), and allocating
    /// them would cost the disk what a wide, mostly empty pfn range does not need.
    /// </summary>
    void Reserve(long offset, long length) { }

    /// <summary>Makes what was written so far durable before more is written (a file's fsync); the end is still to come.</summary>
    void Flush() { }

    /// <summary>
    /// True when <see cref="Flush"/> may run on another thread while writes go on, covering what was
    /// written before it began (a file's fsync); the writer then flushes beside the copy.
    /// </summary>
    bool FlushesConcurrently => false;

    /// <summary>How far the written data reaches (a file's size), or -1 when the sink cannot tell.</summary>
    long Length => -1;
}

/// <summary>A regular file written with pwrite; holes stay sparse.</summary>
public sealed class FileSink : IDumpSink
{
    private readonly SafeFileHandle _file;

    public FileSink(SafeFileHandle file) => _file = file;

    /// <summary>Creates the file 0600 (dumps hold secrets), refusing to follow a symlink planted at the path.</summary>
    /// <param name="overwrite">False: a file already at the path is refused (O_EXCL), as makedumpfile does without -f.</param>
    public static FileSink Create(string path, bool overwrite = true)
    {
        var handle = Libc.OpenFile(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | (overwrite ? 0 : Libc.O_EXCL), 0x180 /* 0600 */);
        // An existing file keeps its old mode through O_TRUNC: tighten it.
        File.SetUnixFileMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new FileSink(handle);
    }

    /// <summary>The same safe creation, as a plain stream (logs, small files).</summary>
    public static FileStream OpenStream(string path, bool overwrite = true)
    {
        var handle = Libc.OpenFile(path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | (overwrite ? 0 : Libc.O_EXCL), 0x180);
        File.SetUnixFileMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return new FileStream(handle, FileAccess.Write);
    }

    public void Write(long offset, ReadOnlySpan<byte> data) => RandomAccess.Write(_file, data, offset);

    public void Complete() => RandomAccess.FlushToDisk(_file);

    public void Flush() => RandomAccess.FlushToDisk(_file);

    public bool FlushesConcurrently => true;

    public long Length => RandomAccess.GetLength(_file);

    public void Reserve(long offset, long length)
    {
        // Checked before the headers and bitmaps are written: a file that cannot reach its end is refused whole.
        if (offset + length > Libc.FileSizeLimit())
            throw new IOException($"the dump's page descriptors would end at byte {offset + length}, past the file size limit (ulimit -f) of {Libc.FileSizeLimit()} bytes", Libc.EFBIG);
        // Not every filesystem can (vfat without fallocate, NFS v3): then ENOSPC may still cut descriptors.
        int errno = Libc.Fallocate(_file, offset, length);
        if (errno is Libc.ENOSPC) throw new IOException($"the target has no room for the dump's {length >> 10} KiB of page descriptors", Libc.ENOSPC);
        if (errno is Libc.EFBIG) throw new IOException($"the dump's page descriptors would end at byte {offset + length}, past the largest file the target (or the file size limit) allows", Libc.EFBIG);
    }

    public void Dispose() => _file.Dispose();
}

/// <summary>
/// makedumpfile's flattened format (-F): a 4096-byte header, then (offset, size, data) records with
/// big-endian offsets and sizes, ended by (-1, -1). Lets a seeking writer stream into a pipe;
/// `makedumpfile -R` or `capture-agent` rearranges it into the normal file.
/// </summary>
public sealed class FlattenedSink : IDumpSink
{
    public const int HeaderSize = FlattenedReader.HeaderSize;
    private readonly Stream _out;
    private readonly bool _leaveOpen;

    public FlattenedSink(Stream output, bool leaveOpen = false)
    {
        _out = output;
        _leaveOpen = leaveOpen;
        var header = new byte[HeaderSize];
        FlattenedReader.Signature.CopyTo(header);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(16), FlattenedReader.FlatHeaderType);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(24), 1);   // VERSION_FLAT_HEADER
        _out.Write(header);
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;   // a zero-length record would end the reader's loop early
        Span<byte> rec = stackalloc byte[16];
        BinaryPrimitives.WriteInt64BigEndian(rec, offset);
        BinaryPrimitives.WriteInt64BigEndian(rec[8..], data.Length);
        _out.Write(rec);
        _out.Write(data);
    }

    public void Complete()
    {
        Span<byte> end = stackalloc byte[16];
        end.Fill(0xff);
        _out.Write(end);
        _out.Flush();
    }

    public void Dispose()
    {
        if (!_leaveOpen) _out.Dispose();
    }

    /// <summary>
    /// Rearranges a flattened stream into a seekable sink (what `makedumpfile -R` does) through
    /// the one flattened reader, then completes the sink. What came before a cut or a damaged
    /// record stays written.
    /// </summary>
    /// <exception cref="InvalidDataException">The input is not a flattened stream.</exception>
    public static FlattenedOutcome Rearrange(Stream input, IDumpSink output, long? length = null)
    {
        try
        {
            return new FlattenedReader(input, length).CopyTo(output.Write);
        }
        finally
        {
            output.Complete();
        }
    }
}

/// <summary>
/// Passes everything on, counting the bytes and the time spent waiting on the target (a flush may
/// run on the writer's flush thread, so the time is added atomically).
/// </summary>
public sealed class TimedSink(IDumpSink inner) : IDumpSink
{
    private long _ticks, _writeTicks, _lastFlushTicks;

    public long Bytes { get; private set; }
    /// <summary>Time spent in writes and flushes.</summary>
    public double Seconds => (double)Interlocked.Read(ref _ticks) / System.Diagnostics.Stopwatch.Frequency;
    /// <summary>Time spent in writes alone (a flush beside the copy is timed where it runs).</summary>
    public double WriteSeconds => (double)Interlocked.Read(ref _writeTicks) / System.Diagnostics.Stopwatch.Frequency;
    /// <summary>How long the last flush that ended took, on whichever thread ran it.</summary>
    public double LastFlushSeconds => (double)Interlocked.Read(ref _lastFlushTicks) / System.Diagnostics.Stopwatch.Frequency;

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            inner.Write(offset, data);
        }
        finally
        {
            long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - t0;
            Interlocked.Add(ref _ticks, ticks);
            Interlocked.Add(ref _writeTicks, ticks);
        }
        Bytes += data.Length;
    }

    public void Flush()
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            inner.Flush();
        }
        finally
        {
            long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - t0;
            Interlocked.Add(ref _ticks, ticks);
            Interlocked.Exchange(ref _lastFlushTicks, ticks);
        }
    }

    public bool FlushesConcurrently => inner.FlushesConcurrently;
    public void Complete() => inner.Complete();
    public void Reserve(long offset, long length) => inner.Reserve(offset, length);
    public long Length => inner.Length;
    public void Dispose() { }
}

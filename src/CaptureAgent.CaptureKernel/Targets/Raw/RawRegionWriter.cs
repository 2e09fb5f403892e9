using CaptureAgent.Native;
using CaptureAgent.Output;
using Microsoft.Win32.SafeHandles;
using CaptureAgent.Common;

namespace CaptureAgent.Targets.Raw;

/// <summary>
/// Front-to-back writes into [start, limit) of a device through one fixed buffer, with the CRC-64
/// of everything accepted. A write that would pass the limit is refused whole with ENOSPC, as a
/// full filesystem would, so callers that write whole records never leave half of one.
/// </summary>
internal sealed class RawRegionWriter : Stream
{
    private readonly SafeFileHandle _device;
    private readonly long _start, _limit;
    private readonly byte[] _buffer;
    private int _buffered;
    private long _flushed;

    public RawRegionWriter(SafeFileHandle device, long start, long limit, int bufferBytes = 1 << 20)
    {
        _device = device;
        _start = start;
        _limit = limit;
        _buffer = new byte[bufferBytes];
    }

    /// <summary>Bytes accepted so far (written or buffered).</summary>
    public long Written => _flushed + _buffered;

    /// <summary>Bytes that can still be accepted.</summary>
    public long Room => _limit - _start - Written;

    public ulong Crc { get; private set; }

    public override void Write(ReadOnlySpan<byte> data)
    {
        if (data.Length > Room)
            throw new IOException($"the raw device is full: {data.Length} bytes do not fit in the {Math.Max(Room, 0)} left", Libc.ENOSPC);
        Crc = Crc64.Update(Crc, data);
        while (!data.IsEmpty)
        {
            int n = Math.Min(data.Length, _buffer.Length - _buffered);
            data[..n].CopyTo(_buffer.AsSpan(_buffered));
            _buffered += n;
            data = data[n..];
            if (_buffered == _buffer.Length) Flush();
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void WriteByte(byte value) => Write([value]);

    /// <summary>Hands the buffer to the kernel (pwrite); <see cref="Sync"/> makes it durable.</summary>
    public override void Flush()
    {
        if (_buffered == 0) return;
        RandomAccess.Write(_device, _buffer.AsSpan(0, _buffered), _start + _flushed);
        _flushed += _buffered;
        _buffered = 0;
    }

    public void Sync()
    {
        Flush();
        RandomAccess.FlushToDisk(_device);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Written;
    public override long Position { get => Written; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>
/// The dump as makedumpfile's flattened stream on the device. Every record is accepted whole or
/// refused whole (ENOSPC, which KdumpCompressedWriter turns into an incomplete dump), and room for
/// the end marker is always kept, so even a cut stream ends properly. Every
/// <see cref="CheckpointBytes"/> the stream is fsynced and <c>checkpoint</c> records its length and
/// CRC in the device header: a capture that dies midway still leaves a verifiable prefix.
/// </summary>
internal sealed class RawStreamSink : IDumpSink
{
    public const long CheckpointBytes = 32L << 20;
    private const int RecordHeader = 16;
    private readonly RawRegionWriter _out;
    private readonly FlattenedSink _flat;
    private readonly Action _checkpoint;
    private readonly long _checkpointBytes;
    private long _nextCheckpoint;
    private long _reservedStart, _reservedEnd, _metadataWritten;

    public RawStreamSink(RawRegionWriter output, Action checkpoint, long checkpointBytes = CheckpointBytes)
    {
        _out = output;
        _checkpoint = checkpoint;
        _nextCheckpoint = _checkpointBytes = checkpointBytes;
        _flat = new FlattenedSink(output, leaveOpen: true);   // writes the 4096-byte flattened header
    }

    public bool Ended { get; private set; }

    /// <summary>
    /// Bytes the rest of the dump can still take: the room left, minus the descriptors still to
    /// come (a file sink preallocates them; here they are written later in the stream), minus the
    /// end marker, the final header record and a small margin for record headers.
    /// </summary>
    public long FreeSpace
    {
        get
        {
            long room = _out.Room - RecordHeader - (RecordHeader + 4096);
            long pendingMetadata = Math.Max(0, _reservedEnd - _reservedStart - _metadataWritten);
            return room - pendingMetadata - (64 << 10) - room / 2048;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        if (Ended) throw new InvalidOperationException("the flattened stream has already ended");
        if (RecordHeader + (long)data.Length > _out.Room - RecordHeader)
            throw new IOException($"no room on the raw device for {data.Length} more bytes", Libc.ENOSPC);
        _flat.Write(offset, data);
        if (offset >= _reservedStart && offset < _reservedEnd) _metadataWritten += data.Length;
        if (_out.Written >= _nextCheckpoint)
        {
            _nextCheckpoint = _out.Written + _checkpointBytes;
            _checkpoint();
        }
    }

    /// <summary>Only noted: the descriptors it covers are written later, and the space check counts them.</summary>
    public void Reserve(long offset, long length) => (_reservedStart, _reservedEnd) = (offset, offset + length);

    public void Flush() => _out.Sync();

    public void Complete()
    {
        if (Ended) return;
        _flat.Complete();   // the (-1, -1) end marker, for which room was kept
        Ended = true;
        _out.Sync();
    }

    public void Dispose() { }
}

namespace CaptureAgent.Report;

/// <summary>A write-only stream that keeps the last <c>capacity</c> bytes written.</summary>
internal sealed class TailStream(int capacity) : Stream
{
    private readonly byte[] _ring = new byte[capacity];
    private long _written;

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> data)
    {
        if (data.Length >= _ring.Length) data = data[^_ring.Length..];
        int at = (int)(_written % _ring.Length);
        int first = Math.Min(data.Length, _ring.Length - at);
        data[..first].CopyTo(_ring.AsSpan(at));
        data[first..].CopyTo(_ring);
        _written += data.Length;
    }

    public byte[] ToArray()
    {
        if (_written <= _ring.Length) return _ring.AsSpan(0, (int)_written).ToArray();
        int at = (int)(_written % _ring.Length);
        return [.. _ring.AsSpan(at), .. _ring.AsSpan(0, at)];
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _written;
    public override long Position { get => _written; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

namespace CaptureAgent.Compression.Xz;

/// <summary>
/// The compressed side of the decoder: a fixed 64 KiB buffer over the source stream that counts
/// what it hands out, since block, index and padding sizes are all checked against positions.
/// </summary>
internal sealed class XzInput(Stream source)
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _pos, _end;

    /// <summary>Bytes consumed since the start of the input.</summary>
    public long Position { get; private set; }

    private bool Fill()
    {
        if (_pos < _end) return true;
        _pos = 0;
        _end = source.Read(_buffer, 0, _buffer.Length);
        return _end > 0;
    }

    /// <summary>True when the source has nothing more.</summary>
    public bool AtEnd => !Fill();

    /// <summary>The next byte without consuming it, or -1 at the end of the input.</summary>
    public int Peek() => Fill() ? _buffer[_pos] : -1;

    public byte Byte(string where)
    {
        if (!Fill()) throw XzErrors.Truncated(where);
        Position++;
        return _buffer[_pos++];
    }

    public void Read(Span<byte> destination, string where)
    {
        while (destination.Length > 0)
        {
            if (!Fill()) throw XzErrors.Truncated(where);
            int n = Math.Min(destination.Length, _end - _pos);
            _buffer.AsSpan(_pos, n).CopyTo(destination);
            _pos += n;
            Position += n;
            destination = destination[n..];
        }
    }

    /// <summary>
    /// An xz variable-length integer: 7 bits a byte, least significant first, at most 9 bytes,
    /// no redundant trailing zero byte. <paramref name="crc"/> accumulates the bytes read.
    /// </summary>
    public ulong Vli(string where, ref uint crc)
    {
        ulong value = 0;
        for (int i = 0; i < 9; i++)
        {
            byte b = Byte(where);
            crc = Crc32.Update(crc, [b]);
            value |= (ulong)(b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                if (b == 0 && i > 0) throw XzErrors.Corrupt($"non-minimal integer in the {where}");
                return value;
            }
        }
        throw XzErrors.Corrupt($"integer longer than 9 bytes in the {where}");
    }
}

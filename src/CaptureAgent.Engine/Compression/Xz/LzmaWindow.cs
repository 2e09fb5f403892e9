namespace CaptureAgent.Compression.Xz;

/// <summary>
/// The LZMA dictionary, which is also the output buffer: a ring of the stream's dictionary size.
/// Bytes between <see cref="Start"/> and <see cref="Pos"/> are decoded but not yet handed to the
/// reader; decoding stops at <see cref="Limit"/>, so it never overwrites them.
/// </summary>
internal sealed class LzmaWindow
{
    public byte[] Buffer { get; private set; } = [];
    /// <summary>Ring size: a multiple of 16, so Pos keeps the position bits LZMA's contexts use.</summary>
    public int Size { get; private set; }
    public int Pos;
    public int Start;
    public int Limit;
    /// <summary>Valid history behind Pos (at most Size): no match may reach further.</summary>
    public int Full;

    /// <summary>Makes the ring <paramref name="size"/> bytes (rounded up to 16), reusing a large enough buffer.</summary>
    public void Allocate(int size)
    {
        size = (size + 15) & ~15;
        if (Buffer.Length < size) Buffer = new byte[size];
        Size = size;
        Pos = Start = Limit = Full = 0;
    }

    /// <summary>An LZMA2 dictionary reset; only called when everything decoded has been read out.</summary>
    public void Reset()
    {
        Pos = Start = Limit = Full = 0;
    }

    /// <summary>Goes back to the start of the ring once it is full and fully read out.</summary>
    public void WrapIfFull()
    {
        if (Pos == Size && Start == Pos) Pos = Start = 0;
    }

    public void Put(byte b)
    {
        Buffer[Pos++] = b;
        if (Full < Size) Full++;
    }

    /// <summary>The byte <paramref name="distance"/>+1 back from Pos.</summary>
    public byte Get(uint distance)
    {
        int i = Pos - (int)distance - 1;
        if (i < 0) i += Size;
        return Buffer[i];
    }

    /// <summary>Copies up to <paramref name="length"/> bytes from distance+1 back, stopping at Limit; returns what is left.</summary>
    public int CopyMatch(uint distance, int length)
    {
        int n = Math.Min(length, Limit - Pos);
        int src = Pos - (int)distance - 1;
        if (src < 0) src += Size;
        var buf = Buffer;
        if (src + n <= Pos)
        {
            // Source wholly behind the destination and not wrapped: one block copy.
            buf.AsSpan(src, n).CopyTo(buf.AsSpan(Pos));
            Pos += n;
        }
        else
        {
            // Overlapping (a run) or wrapping around the ring: byte by byte.
            for (int i = 0; i < n; i++)
            {
                buf[Pos++] = buf[src++];
                if (src == Size) src = 0;
            }
        }
        Full = Math.Min(Size, Full + n);
        return length - n;
    }

    /// <summary>Room for an uncompressed LZMA2 chunk's bytes, read straight into the ring.</summary>
    public Span<byte> Claim(int n)
    {
        var span = Buffer.AsSpan(Pos, n);
        Pos += n;
        Full = Math.Min(Size, Full + n);
        return span;
    }
}

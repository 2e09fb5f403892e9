using System.Numerics;
using System.Runtime.InteropServices;

namespace CaptureAgent.Filtering;

/// <summary>
/// A bitmap over the pfn window [Start, Start+Count): bit p-Start at byte (p-Start)>>3, bit (p-Start)&amp;7,
/// the same LSB-first order as the kdump-compressed file, so a window is written out as is.
/// Start is always a multiple of 8 so window bytes line up with file bytes.
/// </summary>
public sealed class PfnBitmap
{
    public ulong Start { get; private set; }
    public ulong Count { get; private set; }
    public byte[] Bytes { get; }

    public PfnBitmap(ulong capacityPfns)
    {
        Bytes = new byte[(capacityPfns + 7) / 8];
    }

    public void Reset(ulong start, ulong count)
    {
        if (start % 8 != 0) throw new ArgumentException("window start must be a multiple of 8", nameof(start));
        if ((count + 7) / 8 > (ulong)Bytes.Length) throw new ArgumentException("window larger than the bitmap", nameof(count));
        Start = start;
        Count = count;
        Array.Clear(Bytes);
    }

    public ulong End => Start + Count;
    public int ByteLength => (int)((Count + 7) / 8);

    public bool Contains(ulong pfn) => pfn >= Start && pfn < End;

    public bool Get(ulong pfn)
    {
        ulong i = pfn - Start;
        return (Bytes[i >> 3] & (1 << (int)(i & 7))) != 0;
    }

    public void Set(ulong pfn)
    {
        ulong i = pfn - Start;
        Bytes[i >> 3] |= (byte)(1 << (int)(i & 7));
    }

    /// <summary>Clears the bit; returns whether it was set.</summary>
    public bool Clear(ulong pfn)
    {
        ulong i = pfn - Start;
        byte mask = (byte)(1 << (int)(i & 7));
        ref byte b = ref Bytes[i >> 3];
        bool was = (b & mask) != 0;
        b &= (byte)~mask;
        return was;
    }

    /// <summary>Clears every bit of [from, to) clipped to the window; returns how many were set.</summary>
    public ulong ClearRange(ulong from, ulong to)
    {
        from = Math.Max(from, Start);
        to = Math.Min(to, End);
        ulong cleared = 0;
        for (ulong p = from; p < to;)
        {
            ulong i = p - Start;
            if ((i & 7) == 0 && to - p >= 8)
            {
                var bytes = Bytes.AsSpan((int)(i >> 3), (int)((to - p) / 8));
                foreach (byte b in bytes) cleared += (ulong)BitOperations.PopCount(b);
                bytes.Clear();
                p += (ulong)bytes.Length * 8;
            }
            else
            {
                if (Clear(p)) cleared++;
                p++;
            }
        }
        return cleared;
    }

    /// <summary>Sets every bit of [from, to) clipped to the window.</summary>
    public void SetRange(ulong from, ulong to)
    {
        from = Math.Max(from, Start);
        to = Math.Min(to, End);
        for (ulong p = from; p < to;)
        {
            ulong i = p - Start;
            if ((i & 7) == 0 && to - p >= 8)
            {
                ulong bytes = (to - p) / 8;
                Bytes.AsSpan((int)(i >> 3), (int)bytes).Fill(0xff);
                p += bytes * 8;
            }
            else
            {
                Bytes[i >> 3] |= (byte)(1 << (int)(i & 7));
                p++;
            }
        }
    }

    public ulong PopCount()
    {
        var span = Bytes.AsSpan(0, ByteLength);
        var words = MemoryMarshal.Cast<byte, ulong>(span);
        ulong n = 0;
        foreach (var w in words) n += (ulong)BitOperations.PopCount(w);
        for (int i = words.Length * 8; i < span.Length; i++) n += (ulong)BitOperations.PopCount(span[i]);
        return n;
    }

    /// <summary>The next set pfn at or after <paramref name="pfn"/>, or End.</summary>
    public ulong NextSet(ulong pfn)
    {
        while (pfn < End)
        {
            ulong i = pfn - Start;
            if ((i & 63) == 0 && End - pfn >= 64)
            {
                ulong w = BitConverter.ToUInt64(Bytes, (int)(i >> 3));
                if (w == 0) { pfn += 64; continue; }
                return pfn + (ulong)BitOperations.TrailingZeroCount(w);
            }
            if (Get(pfn)) return pfn;
            pfn++;
        }
        return End;
    }

    /// <summary>The next clear pfn at or after <paramref name="pfn"/>, or End.</summary>
    public ulong NextClear(ulong pfn)
    {
        while (pfn < End)
        {
            ulong i = pfn - Start;
            if ((i & 63) == 0 && End - pfn >= 64)
            {
                ulong w = BitConverter.ToUInt64(Bytes, (int)(i >> 3));
                if (w == ulong.MaxValue) { pfn += 64; continue; }
                return pfn + (ulong)BitOperations.TrailingZeroCount(~w);
            }
            if (!Get(pfn)) return pfn;
            pfn++;
        }
        return End;
    }
}

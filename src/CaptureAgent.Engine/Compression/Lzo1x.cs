using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace CaptureAgent.Compression;

/// <summary>
/// LZO1X, the stream format of makedumpfile -l (liblzo2's lzo1x_1_compress, read back with
/// lzo1x_decompress_safe), written from the format description: a byte stream of instructions,
/// each either a run of literals or a back-reference, the number of literals that follow a
/// back-reference carried in its two low "state" bits, ended by the M4 instruction 0x11 0x00 0x00.
///
/// Back-references, by the instruction's top bits (distance d, length L):
///   1LLDDDSS HHHHHHHH          M2: L 5..8,  d = (H&lt;&lt;3) + D + 1 ≤ 2 KiB
///   01LDDDSS HHHHHHHH          M2: L 3..4,  same distance
///   001LLLLL [ext] DDDDDDSS DDDDDDDD   M3: L = 2 + (L ?: 31 + ext), d = D + 1 ≤ 16 KiB
///   0001HLLL [ext] DDDDDDSS DDDDDDDD   M4: L = 2 + (L ?: 7 + ext),  d = 16384 + (H&lt;&lt;14) + D (d = 16384: end)
///   0000DDSS HHHHHHHH          M1 after 1..3 literals: L 2, d = (H&lt;&lt;2) + D + 1;
///                              after a literal run: L 3, d = (H&lt;&lt;2) + D + 2049
/// Literal runs: 0000LLLL [ext] when the state is 0: 3 + (L ?: 15 + ext) bytes; as the first byte
/// of the stream, 18..255 stands for 1..238 literals. "ext" is n zero bytes and one non-zero byte b:
/// 255·n + b.
/// </summary>
public static class Lzo1x
{
    private const int M2MaxLength = 8, M2MaxDistance = 0x800;
    private const int M3MaxDistance = 0x4000, M4MaxDistance = 0xbfff;
    private const int M3BaseLength = 33, M4BaseLength = 9;
    private const int FirstLiteralMax = 238;

    /// <summary>Room the compressor may need for <paramref name="length"/> input bytes (incompressible input).</summary>
    public static int MaxCompressedLength(int length) => length + length / 255 + 16;

    /// <summary>The largest input <see cref="Compress"/> takes: positions are kept as 16-bit numbers.</summary>
    public const int MaxInput = 1 << 16;

    /// <summary>
    /// Greedy LZO1X-1 style compression of <paramref name="input"/> (at most 64 KiB) with a hash
    /// table the caller owns and this call clears. Returns the compressed size, or -1 when the
    /// result would not fit in <paramref name="output"/>.
    /// </summary>
    public static unsafe int Compress(ReadOnlySpan<byte> input, Span<byte> output, ushort[] table)
    {
        int n = input.Length;
        if (n > MaxInput || (table.Length & (table.Length - 1)) != 0) throw new ArgumentException("input over 64 KiB or table not a power of two");
        Array.Clear(table);
        int hashShift = 32 - BitOperations.Log2((uint)table.Length);
        fixed (byte* src = input)
        fixed (byte* dst = output)
        fixed (ushort* dict = table)
        {
            var w = new Writer(dst, output.Length);
            int anchor = 0, ip = 1;
            int last = n - 8;   // 8-byte reads while extending a match stay inside the input
            while (ip < last)
            {
                uint word = Unsafe.ReadUnaligned<uint>(src + ip);
                uint h = (word * 0x1824429du) >> hashShift;
                int candidate = dict[h];
                dict[h] = (ushort)ip;
                int distance = ip - candidate;
                if (Unsafe.ReadUnaligned<uint>(src + candidate) != word || distance > M4MaxDistance)
                {
                    // Skip faster through data that does not compress, as LZO1X-1 does.
                    ip += 1 + ((ip - anchor) >> 5);
                    continue;
                }
                int length = 4 + MatchLength(src + candidate + 4, src + ip + 4, src + n);
                if (!w.Literals(src + anchor, ip - anchor) || !w.Match(distance, length)) return -1;
                ip += length;
                anchor = ip;
            }
            if (!w.Literals(src + anchor, n - anchor) || !w.End()) return -1;
            return w.Length;
        }
    }

    /// <summary>Equal bytes at a and b, a before b, stopping at end (b's bound).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int MatchLength(byte* a, byte* b, byte* end)
    {
        byte* start = b;
        while (b + 8 <= end)
        {
            ulong diff = Unsafe.ReadUnaligned<ulong>(a) ^ Unsafe.ReadUnaligned<ulong>(b);
            if (diff != 0) return (int)(b - start) + (BitOperations.TrailingZeroCount(diff) >> 3);
            a += 8;
            b += 8;
        }
        while (b < end && *a == *b) { a++; b++; }
        return (int)(b - start);
    }

    /// <summary>The instruction encoder: bounds-checked writes into the output.</summary>
    private unsafe struct Writer(byte* start, int capacity)
    {
        private int _at;
        /// <summary>Where the state bits of the last back-reference are, for 1..3 literals after it.</summary>
        private int _stateByte = -1;

        public readonly int Length => _at;

        public bool Literals(byte* from, int count)
        {
            if (count == 0) return true;
            if (!Room(count + 3 + count / 255)) return false;
            if (_at == 0 && count <= FirstLiteralMax) start[_at++] = (byte)(17 + count);
            else if (count <= 3 && _stateByte >= 0) start[_stateByte] |= (byte)count;
            else if (count <= 18) start[_at++] = (byte)(count - 3);
            else
            {
                start[_at++] = 0;
                Extension(count - 18);
            }
            Buffer.MemoryCopy(from, start + _at, capacity - _at, count);
            _at += count;
            _stateByte = -1;
            return true;
        }

        public bool Match(int distance, int length)
        {
            if (!Room(4 + length / 255)) return false;
            if (length <= M2MaxLength && distance <= M2MaxDistance)
            {
                int d = distance - 1;
                _stateByte = _at;
                start[_at++] = (byte)(((length - 1) << 5) | ((d & 7) << 2));
                start[_at++] = (byte)(d >> 3);
                return true;
            }
            if (distance <= M3MaxDistance)
            {
                int d = distance - 1;
                if (length <= M3BaseLength) start[_at++] = (byte)(0x20 | (length - 2));
                else
                {
                    start[_at++] = 0x20;
                    Extension(length - M3BaseLength);
                }
                Distance14(d);
                return true;
            }
            int d4 = distance - 0x4000;
            byte high = (byte)((d4 >> 11) & 8);
            if (length <= M4BaseLength) start[_at++] = (byte)(0x10 | high | (length - 2));
            else
            {
                start[_at++] = (byte)(0x10 | high);
                Extension(length - M4BaseLength);
            }
            Distance14(d4 & 0x3fff);
            return true;
        }

        /// <summary>The end of stream: M4 with distance 16384 and length 3.</summary>
        public bool End()
        {
            if (!Room(3)) return false;
            start[_at++] = 0x11;
            start[_at++] = 0;
            start[_at++] = 0;
            return true;
        }

        private void Distance14(int d)
        {
            _stateByte = _at;
            start[_at++] = (byte)(d << 2);
            start[_at++] = (byte)(d >> 6);
        }

        /// <summary>A length beyond what the instruction holds: zero bytes of 255 each, then the rest (1..255).</summary>
        private void Extension(int rest)
        {
            while (rest > 255)
            {
                start[_at++] = 0;
                rest -= 255;
            }
            start[_at++] = (byte)rest;
        }

        private readonly bool Room(int bytes) => _at + bytes <= capacity;
    }

    /// <summary>
    /// Decompresses one LZO1X stream into exactly <paramref name="output"/>.Length bytes. Every
    /// read, write and back-reference is checked: hostile input returns false, never reads or
    /// writes out of bounds, and ends in time linear in the output size.
    /// </summary>
    public static bool TryDecompress(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var r = new Reader(input);
        int op = 0, state = 0;
        if (!r.Has(1)) return false;
        if (input[0] > 17)
        {
            r.Skip(1);
            int count = input[0] - 17;
            if (!CopyLiterals(ref r, output, ref op, count)) return false;
            state = count < 4 ? count : 4;
        }
        while (true)
        {
            if (!r.TryByte(out int inst)) return false;
            int length, distance, next;
            if (inst < 16)
            {
                if (state == 0)
                {
                    int count = inst;
                    if (count == 0 && !r.TryExtension(15, output.Length, out count)) return false;
                    if (!CopyLiterals(ref r, output, ref op, count + 3)) return false;
                    state = 4;
                    continue;
                }
                if (!r.TryByte(out int h)) return false;
                length = state == 4 ? 3 : 2;
                distance = (h << 2) + ((inst >> 2) & 3) + (state == 4 ? 2049 : 1);
                next = inst & 3;
            }
            else if (inst < 32)
            {
                length = inst & 7;
                if (length == 0 && !r.TryExtension(7, output.Length, out length)) return false;
                length += 2;
                if (!r.TryLe16(out int le)) return false;
                distance = 16384 + ((inst & 8) << 11) + (le >> 2);
                next = le & 3;
                if (distance == 16384)
                    return length == 3 && op == output.Length && r.AtEnd;   // end of stream
            }
            else if (inst < 64)
            {
                length = inst & 31;
                if (length == 0 && !r.TryExtension(31, output.Length, out length)) return false;
                length += 2;
                if (!r.TryLe16(out int le)) return false;
                distance = (le >> 2) + 1;
                next = le & 3;
            }
            else
            {
                if (!r.TryByte(out int h)) return false;
                length = inst >= 128 ? 5 + ((inst >> 5) & 3) : 3 + ((inst >> 5) & 1);
                distance = (h << 3) + ((inst >> 2) & 7) + 1;
                next = inst & 3;
            }
            if (distance > op || length > output.Length - op) return false;
            CopyMatch(output, op, distance, length);
            op += length;
            if (!CopyLiterals(ref r, output, ref op, next)) return false;
            state = next;
        }
    }

    private static bool CopyLiterals(ref Reader r, Span<byte> output, ref int op, int count)
    {
        if (count > output.Length - op || !r.TryTake(count, out var bytes)) return false;
        bytes.CopyTo(output[op..]);
        op += count;
        return true;
    }

    /// <summary>A back-reference; an overlapping one (distance below length) repeats its pattern.</summary>
    private static void CopyMatch(Span<byte> output, int op, int distance, int length)
    {
        if (distance >= length)
        {
            output.Slice(op - distance, length).CopyTo(output[op..]);
            return;
        }
        for (int i = 0; i < length; i++) output[op + i] = output[op - distance + i];
    }

    private ref struct Reader(ReadOnlySpan<byte> input)
    {
        private readonly ReadOnlySpan<byte> _in = input;
        private int _at;

        public readonly bool AtEnd => _at == _in.Length;
        public readonly bool Has(int n) => n <= _in.Length - _at;
        public void Skip(int n) => _at += n;

        public bool TryByte(out int value)
        {
            if (_at >= _in.Length) { value = 0; return false; }
            value = _in[_at++];
            return true;
        }

        public bool TryLe16(out int value)
        {
            if (!Has(2)) { value = 0; return false; }
            value = BinaryPrimitives.ReadUInt16LittleEndian(_in[_at..]);
            _at += 2;
            return true;
        }

        public bool TryTake(int n, out ReadOnlySpan<byte> bytes)
        {
            if (!Has(n)) { bytes = default; return false; }
            bytes = _in.Slice(_at, n);
            _at += n;
            return true;
        }

        /// <summary>basis + 255 per zero byte + the closing non-zero byte; false past the input or when larger than <paramref name="limit"/>.</summary>
        public bool TryExtension(int basis, int limit, out int value)
        {
            value = basis;
            while (true)
            {
                if (!TryByte(out int b)) return false;
                if (b != 0) { value += b; return true; }
                value += 255;
                if (value > limit) return false;
            }
        }
    }
}

/// <summary>LZO1X per page, as makedumpfile -l writes; one instance per thread (it owns the hash table).</summary>
public sealed class LzoPageCompressor : IPageCompressor
{
    // 2^12 entries: one per position of a 4 KiB page; more buys nothing on pages this small.
    private readonly ushort[] _table;

    public LzoPageCompressor(int pageSize)
    {
        if (pageSize > Lzo1x.MaxInput) throw new NotSupportedException($"lzo pages of {pageSize} bytes");
        _table = new ushort[Math.Max(1 << 12, (int)BitOperations.RoundUpToPowerOf2((uint)pageSize))];
    }

    public PageCodec Codec => PageCodec.Lzo;

    public int Compress(ReadOnlySpan<byte> page, Span<byte> destination)
    {
        int limit = Math.Min(destination.Length, page.Length - 1);
        return Lzo1x.Compress(page, destination[..limit], _table);
    }

    public void Dispose() { }
}

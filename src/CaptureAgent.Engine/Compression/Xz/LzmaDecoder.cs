using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace CaptureAgent.Compression.Xz;

/// <summary>
/// The LZMA symbol decoder as LZMA2 drives it: one range-coded chunk at a time, whose compressed
/// bytes are all in memory (at most 64 KiB), producing into an <see cref="LzmaWindow"/> up to its
/// Limit. A match cut by the Limit is finished on the next call. Probabilities, state and the
/// four recent distances live across chunks until LZMA2 resets them.
/// </summary>
internal sealed class LzmaDecoder
{
    private const int States = 12;
    private const int PosStatesMax = 1 << 4;
    private const ushort ProbInit = 1024;       // half of the 11-bit probability range
    private const int MatchLenMin = 2;
    private const int EndPosModelIndex = 14;    // distance slots below this use probability-coded low bits
    private const int FullDistances = 128;

    private readonly ushort[] _isMatch = new ushort[States * PosStatesMax];
    private readonly ushort[] _isRep = new ushort[States];
    private readonly ushort[] _isRepG0 = new ushort[States];
    private readonly ushort[] _isRepG1 = new ushort[States];
    private readonly ushort[] _isRepG2 = new ushort[States];
    private readonly ushort[] _isRep0Long = new ushort[States * PosStatesMax];
    private readonly ushort[] _distSlot = new ushort[4 << 6];
    private readonly ushort[] _distSpecial = new ushort[1 + FullDistances - EndPosModelIndex];
    private readonly ushort[] _align = new ushort[1 << 4];
    private readonly ushort[] _literal = new ushort[0x300 << 4];   // lc + lp <= 4 in LZMA2
    private readonly LengthModel _matchLength = new();
    private readonly LengthModel _repLength = new();

    private int _lc, _lp, _pb;
    private int _state;
    private uint _rep0, _rep1, _rep2, _rep3;
    private int _pendingLength;

    // The range decoder over the current chunk.
    private byte[] _in = [];
    private int _inPos, _inEnd;
    private uint _range, _code;

    private sealed class LengthModel
    {
        public ushort Choice, Choice2;
        public readonly ushort[] Low = new ushort[PosStatesMax << 3];
        public readonly ushort[] Mid = new ushort[PosStatesMax << 3];
        public readonly ushort[] High = new ushort[256];

        public void Reset()
        {
            Choice = Choice2 = ProbInit;
            Array.Fill(Low, ProbInit);
            Array.Fill(Mid, ProbInit);
            Array.Fill(High, ProbInit);
        }
    }

    /// <summary>The lc/lp/pb properties byte; LZMA2 allows lc + lp &lt;= 4.</summary>
    public void SetProperties(byte props)
    {
        if (props >= 9 * 5 * 5) throw XzErrors.Corrupt($"invalid LZMA properties byte 0x{props:x2}");
        int lc = props % 9, lp = props / 9 % 5, pb = props / 45;
        if (lc + lp > 4) throw XzErrors.Corrupt($"LZMA2 properties lc={lc} lp={lp}: lc + lp exceeds 4");
        _lc = lc;
        _lp = lp;
        _pb = pb;
    }

    /// <summary>LZMA2's state reset: fresh probabilities, state 0, distances 0.</summary>
    public void Reset()
    {
        Array.Fill(_isMatch, ProbInit);
        Array.Fill(_isRep, ProbInit);
        Array.Fill(_isRepG0, ProbInit);
        Array.Fill(_isRepG1, ProbInit);
        Array.Fill(_isRepG2, ProbInit);
        Array.Fill(_isRep0Long, ProbInit);
        Array.Fill(_distSlot, ProbInit);
        Array.Fill(_distSpecial, ProbInit);
        Array.Fill(_align, ProbInit);
        Array.Fill(_literal, ProbInit);
        _matchLength.Reset();
        _repLength.Reset();
        _state = 0;
        _rep0 = _rep1 = _rep2 = _rep3 = 0;
        _pendingLength = 0;
    }

    /// <summary>Starts the range decoder on one chunk's compressed bytes.</summary>
    public void StartChunk(byte[] input, int length)
    {
        if (length < 5) throw XzErrors.Corrupt("LZMA chunk shorter than the range coder's 5 start bytes");
        if (input[0] != 0) throw XzErrors.Corrupt("LZMA chunk does not start with a zero byte");
        _in = input;
        _code = BinaryPrimitives.ReadUInt32BigEndian(input.AsSpan(1));
        _range = 0xFFFFFFFF;
        _inPos = 5;
        _inEnd = length;
        if (_code == _range) throw XzErrors.Corrupt("invalid range coder start");
    }

    /// <summary>
    /// True when the chunk ended cleanly: every compressed byte used, the range coder flushed
    /// (code 0) and no match running past the chunk's end.
    /// </summary>
    public bool ChunkFinished => _inPos == _inEnd && _code == 0 && _pendingLength == 0;

    /// <summary>Decodes until the window reaches its Limit.</summary>
    public void Decode(LzmaWindow w)
    {
        if (_pendingLength > 0) _pendingLength = w.CopyMatch(_rep0, _pendingLength);
        int pbMask = (1 << _pb) - 1;
        while (w.Pos < w.Limit)
        {
            int posState = w.Pos & pbMask;
            if (Bit(ref _isMatch[(_state << 4) + posState]) == 0)
            {
                DecodeLiteral(w);
                continue;
            }
            int length;
            if (Bit(ref _isRep[_state]) == 0)
            {
                length = DecodeLength(_matchLength, posState);
                _state = _state < 7 ? 7 : 10;
                uint distance = DecodeDistance(length);
                if (distance == 0xFFFFFFFF) throw XzErrors.Corrupt("end-of-payload marker inside an LZMA2 chunk");
                _rep3 = _rep2;
                _rep2 = _rep1;
                _rep1 = _rep0;
                _rep0 = distance;
            }
            else
            {
                if (w.Full == 0) throw XzErrors.Corrupt("repeated match with an empty dictionary");
                if (Bit(ref _isRepG0[_state]) == 0)
                {
                    if (Bit(ref _isRep0Long[(_state << 4) + posState]) == 0)
                    {
                        // A "short rep": one byte from the last distance.
                        _state = _state < 7 ? 9 : 11;
                        if (_rep0 >= (uint)w.Full) throw XzErrors.Corrupt("match distance beyond the dictionary");
                        w.Put(w.Get(_rep0));
                        continue;
                    }
                }
                else
                {
                    uint distance;
                    if (Bit(ref _isRepG1[_state]) == 0) distance = _rep1;
                    else
                    {
                        if (Bit(ref _isRepG2[_state]) == 0) distance = _rep2;
                        else
                        {
                            distance = _rep3;
                            _rep3 = _rep2;
                        }
                        _rep2 = _rep1;
                    }
                    _rep1 = _rep0;
                    _rep0 = distance;
                }
                length = DecodeLength(_repLength, posState);
                _state = _state < 7 ? 8 : 11;
            }
            if (_rep0 >= (uint)w.Full) throw XzErrors.Corrupt("match distance beyond the dictionary");
            _pendingLength = w.CopyMatch(_rep0, length + MatchLenMin);
        }
    }

    private void DecodeLiteral(LzmaWindow w)
    {
        int previous = w.Full > 0 ? w.Get(0) : 0;
        int context = ((w.Pos & ((1 << _lp) - 1)) << _lc) + (previous >> (8 - _lc));
        var probs = _literal.AsSpan(0x300 * context, 0x300);
        uint symbol = 1;
        if (_state >= 7)
        {
            // After a match the literal is coded against the byte at the last distance,
            // bit by bit until the first bit that differs.
            if (_rep0 >= (uint)w.Full) throw XzErrors.Corrupt("match distance beyond the dictionary");
            uint matchByte = w.Get(_rep0);
            do
            {
                uint matchBit = (matchByte >> 7) & 1;
                matchByte <<= 1;
                uint bit = Bit(ref probs[(int)(((1 + matchBit) << 8) + symbol)]);
                symbol = (symbol << 1) | bit;
                if (matchBit != bit) break;
            } while (symbol < 0x100);
        }
        while (symbol < 0x100) symbol = (symbol << 1) | Bit(ref probs[(int)symbol]);
        w.Put((byte)symbol);
        _state = _state < 4 ? 0 : _state < 10 ? _state - 3 : _state - 6;
    }

    /// <summary>A match length minus 2 (0..271).</summary>
    private int DecodeLength(LengthModel m, int posState)
    {
        if (Bit(ref m.Choice) == 0) return (int)BitTree(m.Low.AsSpan(posState << 3, 8), 3);
        if (Bit(ref m.Choice2) == 0) return 8 + (int)BitTree(m.Mid.AsSpan(posState << 3, 8), 3);
        return 16 + (int)BitTree(m.High, 8);
    }

    private uint DecodeDistance(int length)
    {
        int lengthState = length < 3 ? length : 3;
        uint slot = BitTree(_distSlot.AsSpan(lengthState << 6, 64), 6);
        if (slot < 4) return slot;
        int footerBits = (int)(slot >> 1) - 1;
        uint distance = (2 | (slot & 1)) << footerBits;
        if (slot < EndPosModelIndex)
            return distance + ReverseBitTree(_distSpecial.AsSpan((int)(distance - slot)), footerBits);
        distance += DirectBits(footerBits - 4) << 4;
        return distance + ReverseBitTree(_align, 4);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Bit(ref ushort prob)
    {
        uint bound = (_range >> 11) * prob;
        uint bit;
        if (_code < bound)
        {
            _range = bound;
            prob += (ushort)((2048 - prob) >> 5);
            bit = 0;
        }
        else
        {
            _range -= bound;
            _code -= bound;
            prob -= (ushort)(prob >> 5);
            bit = 1;
        }
        if (_range < 1u << 24) Normalize();
        return bit;
    }

    private void Normalize()
    {
        if (_inPos >= _inEnd) throw XzErrors.Corrupt("LZMA chunk needs more bytes than its header says");
        _range <<= 8;
        _code = (_code << 8) | _in[_inPos++];
    }

    private uint BitTree(Span<ushort> probs, int bits)
    {
        uint m = 1;
        for (int i = 0; i < bits; i++) m = (m << 1) | Bit(ref probs[(int)m]);
        return m - (1u << bits);
    }

    private uint ReverseBitTree(Span<ushort> probs, int bits)
    {
        uint m = 1, symbol = 0;
        for (int i = 0; i < bits; i++)
        {
            uint bit = Bit(ref probs[(int)m]);
            m = (m << 1) | bit;
            symbol |= bit << i;
        }
        return symbol;
    }

    /// <summary>Bits coded with probability one half (the middle of long distances).</summary>
    private uint DirectBits(int count)
    {
        uint result = 0;
        for (int i = 0; i < count; i++)
        {
            _range >>= 1;
            uint bit = _code >= _range ? 1u : 0u;
            if (bit != 0) _code -= _range;
            result = (result << 1) | bit;
            if (_range < 1u << 24) Normalize();
        }
        return result;
    }
}

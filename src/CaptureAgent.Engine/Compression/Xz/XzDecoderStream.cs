using System.Buffers.Binary;

namespace CaptureAgent.Compression.Xz;

/// <summary>
/// Decompresses the .xz container (xz-file-format 1.x): streams of blocks, each LZMA2-compressed
/// with a CRC32, CRC64, SHA-256 or no check, then an index and a footer; concatenated streams and
/// stream padding are accepted. Enough for the kernel's .ko.xz modules (one LZMA2 block, CRC32,
/// 1 MiB dictionary). Other filters (BCJ, delta) are refused by name.
///
/// Every byte of the container is verified: header CRCs, the check of each block, block sizes
/// against the block header and the index, the footer against the header. Memory is the
/// dictionary (at most <c>maxDictionarySize</c>, and no more than the block's stated
/// uncompressed size) plus 128 KiB of buffers, whatever the size of the data.
/// </summary>
public sealed class XzDecoderStream : Stream
{
    // The agent's heap is 32 MiB: a larger dictionary cannot be held. Real inputs need far less
    // (kernel modules 1 MiB, dracut 1 MiB, mkinitramfs' xz -6 8 MiB).
    public const long DefaultMaxDictionarySize = 16L << 20;

    private static ReadOnlySpan<byte> HeaderMagic => [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00];
    private static ReadOnlySpan<byte> FooterMagic => "YZ"u8;
    private const byte Lzma2FilterId = 0x21;

    private readonly Stream _source;
    private readonly bool _leaveOpen;
    private readonly long _maxDictionary;
    private readonly XzInput _in;
    private readonly Lzma2Decoder _lzma2 = new();

    private enum Phase { StreamHeader, BlockOrIndex, BlockData, Finished }
    private Phase _phase = Phase.StreamHeader;
    private int _streams;

    // The current stream.
    private byte _flagsCheckId;
    private BlockCheck _check = new(XzCheckType.None);
    private long _blocks;
    private IndexDigest _seen;

    // The current block.
    private long _blockStart;
    private int _blockHeaderSize;
    private long _statedCompressed = -1, _statedUncompressed = -1;
    private long _blockOut;

    /// <param name="maxDictionarySize">Largest dictionary (the decoder's memory) accepted, at most 1 GiB.</param>
    public XzDecoderStream(Stream source, bool leaveOpen = false, long maxDictionarySize = DefaultMaxDictionarySize)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxDictionarySize, 1L << 30);
        _source = source;
        _leaveOpen = leaveOpen;
        _maxDictionary = maxDictionarySize;
        _in = new XzInput(source);
    }

    /// <summary>True if <paramref name="start"/> begins with the xz stream magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> start) => start.StartsWith(HeaderMagic);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    public override int Read(Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            switch (_phase)
            {
                case Phase.StreamHeader:
                    if (!ReadStreamHeader()) _phase = Phase.Finished;
                    else _phase = Phase.BlockOrIndex;
                    break;
                case Phase.BlockOrIndex:
                    _phase = ReadBlockHeaderOrIndex() ? Phase.BlockData : Phase.StreamHeader;
                    break;
                case Phase.BlockData:
                    var w = _lzma2.Window;
                    if (w.Start < w.Pos)
                    {
                        int n = Math.Min(w.Pos - w.Start, buffer.Length - total);
                        var span = w.Buffer.AsSpan(w.Start, n);
                        _blockOut += n;
                        if (_statedUncompressed >= 0 && _blockOut > _statedUncompressed)
                            throw XzErrors.Corrupt("block has more data than its header states");
                        _check.Update(span);
                        span.CopyTo(buffer[total..]);
                        w.Start += n;
                        total += n;
                    }
                    else if (!_lzma2.DecodeMore(_in))
                    {
                        FinishBlock();
                        _phase = Phase.BlockOrIndex;
                    }
                    break;
                case Phase.Finished:
                    return total;
            }
        }
        return total;
    }

    /// <summary>Reads the stream padding and the next stream header; false at a clean end of input.</summary>
    private bool ReadStreamHeader()
    {
        if (_streams > 0)
        {
            // Stream padding: zero bytes in multiples of four, then the end or another stream.
            long padding = 0;
            while (_in.Peek() == 0)
            {
                _in.Byte("stream padding");
                padding++;
            }
            if (padding % 4 != 0) throw XzErrors.Corrupt("stream padding is not a multiple of four bytes");
            if (_in.AtEnd) return false;
        }
        else if (_in.AtEnd) throw XzErrors.Refused("the input is empty, not an xz stream");

        Span<byte> header = stackalloc byte[12];
        _in.Read(header, "stream header");
        if (!header.StartsWith(HeaderMagic))
            throw _streams == 0 ? XzErrors.Refused("not an xz stream (no xz magic at the start)") : XzErrors.Corrupt("garbage after the end of the stream");
        if (Crc32.Compute(header.Slice(6, 2)) != BinaryPrimitives.ReadUInt32LittleEndian(header[8..]))
            throw XzErrors.Corrupt("stream header CRC32 mismatch");
        _flagsCheckId = ParseStreamFlags(header.Slice(6, 2));
        _check = new BlockCheck((XzCheckType)_flagsCheckId);
        _blocks = 0;
        _seen = default;
        _streams++;
        return true;
    }

    private static byte ParseStreamFlags(ReadOnlySpan<byte> flags)
    {
        if (flags[0] != 0 || (flags[1] & 0xF0) != 0) throw XzErrors.Refused("unsupported stream flags (a newer xz format?)");
        int id = flags[1] & 0x0F;
        if (id is not (0 or 1 or 4 or 10)) throw XzErrors.Refused($"unsupported integrity check type {id} (known: none, CRC32, CRC64, SHA-256)");
        return (byte)id;
    }

    /// <summary>Parses a block header and readies the decoder; at the index (false) checks it and the footer.</summary>
    private bool ReadBlockHeaderOrIndex()
    {
        long start = _in.Position;
        byte first = _in.Byte("block header");
        if (first == 0)
        {
            ReadIndexAndFooter(start);
            return false;
        }
        int size = (first + 1) * 4;
        Span<byte> h = stackalloc byte[1024];
        h = h[..size];
        h[0] = first;
        _in.Read(h[1..], "block header");
        if (Crc32.Compute(h[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(h[^4..]))
            throw XzErrors.Corrupt("block header CRC32 mismatch");

        byte flags = h[1];
        if ((flags & 0x3C) != 0) throw XzErrors.Refused("unsupported block flags (a newer xz format?)");
        int filters = (flags & 0x03) + 1;
        int p = 2;
        var body = h[..^4];
        _statedCompressed = (flags & 0x40) != 0 ? (long)HeaderVli(body, ref p) : -1;
        _statedUncompressed = (flags & 0x80) != 0 ? (long)HeaderVli(body, ref p) : -1;
        if (_statedCompressed == 0) throw XzErrors.Corrupt("block header states a zero compressed size");
        long dictionary = 0;
        for (int i = 0; i < filters; i++)
        {
            ulong id = HeaderVli(body, ref p);
            ulong propsSize = HeaderVli(body, ref p);
            if (id != Lzma2FilterId)
                throw XzErrors.Refused($"the {FilterName(id)} filter is not supported (this decoder handles LZMA2 alone, as kernel modules use)");
            if (i != filters - 1) throw XzErrors.Corrupt("LZMA2 is not the last filter of the chain");
            if (propsSize != 1 || p >= body.Length) throw XzErrors.Corrupt("LZMA2 filter properties are not one byte");
            dictionary = Lzma2Decoder.DictionarySize(body[p++]);
        }
        foreach (byte b in body[p..])
            if (b != 0) throw XzErrors.Corrupt("non-zero block header padding");

        if (dictionary > _maxDictionary)
            throw XzErrors.Refused($"the data needs a {dictionary >> 20} MiB dictionary, more than the {_maxDictionary >> 20} MiB this decoder allows");
        long window = _statedUncompressed >= 0 ? Math.Min(dictionary, Math.Max(_statedUncompressed, 1)) : dictionary;
        _lzma2.Begin((int)window);
        _check.Reset();
        _blockStart = start;
        _blockHeaderSize = size;
        _blockOut = 0;
        return true;
    }

    private static ulong HeaderVli(ReadOnlySpan<byte> body, ref int p)
    {
        ulong value = 0;
        for (int i = 0; i < 9; i++)
        {
            if (p >= body.Length) throw XzErrors.Corrupt("block header fields overrun the header");
            byte b = body[p++];
            value |= (ulong)(b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0)
            {
                if (b == 0 && i > 0) throw XzErrors.Corrupt("non-minimal integer in the block header");
                return value;
            }
        }
        throw XzErrors.Corrupt("integer longer than 9 bytes in the block header");
    }

    private static string FilterName(ulong id) => id switch
    {
        0x03 => "delta",
        0x04 => "x86 BCJ",
        0x05 => "PowerPC BCJ",
        0x06 => "IA-64 BCJ",
        0x07 => "ARM BCJ",
        0x08 => "ARM-Thumb BCJ",
        0x09 => "SPARC BCJ",
        0x0A => "ARM64 BCJ",
        0x0B => "RISC-V BCJ",
        _ => $"0x{id:x}",
    };

    /// <summary>After the LZMA2 end marker: sizes, block padding, the check, and the block's index record.</summary>
    private void FinishBlock()
    {
        long compressed = _in.Position - _blockStart - _blockHeaderSize;
        if (_statedCompressed >= 0 && compressed != _statedCompressed)
            throw XzErrors.Corrupt($"block compressed size {compressed} differs from its header's {_statedCompressed}");
        if (_statedUncompressed >= 0 && _blockOut != _statedUncompressed)
            throw XzErrors.Corrupt($"block uncompressed size {_blockOut} differs from its header's {_statedUncompressed}");
        for (long pad = (4 - compressed % 4) % 4; pad > 0; pad--)
            if (_in.Byte("block padding") != 0) throw XzErrors.Corrupt("non-zero block padding");
        Span<byte> stored = stackalloc byte[32];
        stored = stored[.._check.Size];
        _in.Read(stored, "block check");
        if (!_check.Matches(stored))
            throw XzErrors.Corrupt($"{_check.Name} check mismatch: the decompressed data is damaged");
        _seen.Add((ulong)(_blockHeaderSize + compressed + _check.Size), (ulong)_blockOut);
        _blocks++;
    }

    private void ReadIndexAndFooter(long indexStart)
    {
        const string where = "index";
        uint crc = Crc32.Update(0, [0]);
        ulong count = _in.Vli(where, ref crc);
        if (count != (ulong)_blocks) throw XzErrors.Corrupt($"the index lists {count} blocks, the stream has {_blocks}");
        IndexDigest listed = default;
        for (ulong i = 0; i < count; i++)
        {
            ulong unpadded = _in.Vli(where, ref crc);
            ulong uncompressed = _in.Vli(where, ref crc);
            listed.Add(unpadded, uncompressed);
        }
        if (!listed.Equals(_seen)) throw XzErrors.Corrupt("the index does not match the blocks");
        while ((_in.Position - indexStart) % 4 != 0)
        {
            byte b = _in.Byte(where);
            if (b != 0) throw XzErrors.Corrupt("non-zero index padding");
            crc = Crc32.Update(crc, [b]);
        }
        Span<byte> tail = stackalloc byte[4];
        _in.Read(tail, where);
        if (BinaryPrimitives.ReadUInt32LittleEndian(tail) != crc) throw XzErrors.Corrupt("index CRC32 mismatch");
        long indexSize = _in.Position - indexStart;

        Span<byte> footer = stackalloc byte[12];
        _in.Read(footer, "stream footer");
        if (!footer[10..].SequenceEqual(FooterMagic)) throw XzErrors.Corrupt("no stream footer magic after the index");
        if (Crc32.Compute(footer.Slice(4, 6)) != BinaryPrimitives.ReadUInt32LittleEndian(footer)) throw XzErrors.Corrupt("stream footer CRC32 mismatch");
        long backward = ((long)BinaryPrimitives.ReadUInt32LittleEndian(footer[4..]) + 1) * 4;
        if (backward != indexSize) throw XzErrors.Corrupt("the footer's index size does not match the index");
        if (footer[8] != 0 || footer[9] != _flagsCheckId) throw XzErrors.Corrupt("stream footer flags differ from the header's");
    }

    /// <summary>
    /// What the index must agree with, in constant memory however many blocks there are: the
    /// count, the sums and a CRC over the (unpadded, uncompressed) size pairs.
    /// </summary>
    private struct IndexDigest : IEquatable<IndexDigest>
    {
        private ulong _unpadded, _uncompressed;
        private uint _crc;

        public void Add(ulong unpadded, ulong uncompressed)
        {
            _unpadded += unpadded;
            _uncompressed += uncompressed;
            Span<byte> pair = stackalloc byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(pair, unpadded);
            BinaryPrimitives.WriteUInt64LittleEndian(pair[8..], uncompressed);
            _crc = Crc32.Update(_crc, pair);
        }

        public readonly bool Equals(IndexDigest o) => _unpadded == o._unpadded && _uncompressed == o._uncompressed && _crc == o._crc;
        public override readonly bool Equals(object? obj) => obj is IndexDigest o && Equals(o);
        public override readonly int GetHashCode() => HashCode.Combine(_unpadded, _uncompressed, _crc);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_leaveOpen) _source.Dispose();
        base.Dispose(disposing);
    }
}

namespace CaptureAgent.Compression.Xz;

/// <summary>
/// LZMA2: a sequence of chunks, each either stored or LZMA-compressed (at most 2 MiB out, 64 KiB
/// in), with control bytes saying when to reset the dictionary, the LZMA state or its properties.
/// Decodes into the window a ring's worth at a time; the caller reads the window out between calls.
/// </summary>
internal sealed class Lzma2Decoder
{
    private readonly LzmaDecoder _lzma = new();
    private readonly byte[] _packed = new byte[1 << 16];
    private int _chunkLeft;            // uncompressed bytes of the current chunk not yet produced
    private bool _chunkIsLzma;
    private bool _needDictionaryReset, _needProperties, _ended;

    public LzmaWindow Window { get; } = new();

    /// <summary>The dictionary size an LZMA2 properties byte stands for.</summary>
    public static long DictionarySize(byte props)
    {
        if (props > 40) throw XzErrors.Corrupt($"invalid LZMA2 dictionary size byte {props}");
        if (props == 40) return 0xFFFFFFFF;
        return (2L | (props & 1u)) << (props / 2 + 11);
    }

    /// <summary>Starts a new LZMA2 stream (one xz block) with a ring of <paramref name="windowSize"/> bytes.</summary>
    public void Begin(int windowSize)
    {
        Window.Allocate(windowSize);
        _chunkLeft = 0;
        _needDictionaryReset = _needProperties = true;
        _ended = false;
    }

    /// <summary>
    /// Decodes more into the window. Call only when the window has been read out (Start == Pos).
    /// False at the LZMA2 end marker.
    /// </summary>
    public bool DecodeMore(XzInput input)
    {
        var w = Window;
        if (_ended) return false;
        w.WrapIfFull();
        while (_chunkLeft == 0)
            if (!NextChunk(input))
            {
                _ended = true;
                return false;
            }
        int n = Math.Min(_chunkLeft, w.Size - w.Pos);
        w.Limit = w.Pos + n;
        if (_chunkIsLzma) _lzma.Decode(w);
        else input.Read(w.Claim(n), "LZMA2 stored chunk");
        _chunkLeft -= n;
        if (_chunkLeft == 0 && _chunkIsLzma && !_lzma.ChunkFinished)
            throw XzErrors.Corrupt("LZMA chunk does not end where its header says");
        return true;
    }

    private bool NextChunk(XzInput input)
    {
        const string where = "LZMA2 chunk header";
        int control = input.Byte(where);
        if (control == 0) return false;
        if (control >= 0xE0 || control == 0x01)
        {
            _needProperties = true;
            _needDictionaryReset = false;
            Window.Reset();
        }
        else if (_needDictionaryReset) throw XzErrors.Corrupt("LZMA2 data does not start with a dictionary reset");

        if (control >= 0x80)
        {
            int size = ((control & 0x1F) << 16) + (input.Byte(where) << 8) + input.Byte(where) + 1;
            int packed = (input.Byte(where) << 8) + input.Byte(where) + 1;
            if (control >= 0xC0)
            {
                _lzma.SetProperties(input.Byte(where));
                _needProperties = false;
                _lzma.Reset();
            }
            else if (_needProperties) throw XzErrors.Corrupt("LZMA2 chunk without the properties a reset requires");
            else if (control >= 0xA0) _lzma.Reset();
            input.Read(_packed.AsSpan(0, packed), "LZMA chunk");
            _lzma.StartChunk(_packed, packed);
            _chunkLeft = size;
            _chunkIsLzma = true;
        }
        else
        {
            if (control > 0x02) throw XzErrors.Corrupt($"invalid LZMA2 control byte 0x{control:x2}");
            _chunkLeft = (input.Byte(where) << 8) + input.Byte(where) + 1;
            _chunkIsLzma = false;
        }
        return true;
    }
}

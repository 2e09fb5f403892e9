using System.Buffers.Binary;
using System.Numerics;
using CaptureAgent.Common;

namespace CaptureAgent.Compression.Xz;

/// <summary>CRC-32 (IEEE 802.3, reflected 0xEDB88320): xz headers, the index and the CRC32 check.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = MakeTable();

    private static uint[] MakeTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>Continues a CRC; start from 0 (the pre- and post-inversion are done here).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data) c = Table[(byte)(c ^ b)] ^ (c >> 8);
        return ~c;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Update(0, data);
}

/// <summary>
/// SHA-256 (FIPS 180-4) for xz's SHA-256 check. Written here rather than taken from
/// System.Security.Cryptography, which loads OpenSSL at run time: the static capture binary has none.
/// </summary>
internal sealed class Sha256
{
    // The round constants and initial state are defined as the first 32 fraction bits of the cube
    // (square) roots of the first 64 (8) primes; computing them avoids a hand-typed table.
    private static readonly uint[] K = FractionBits(64, cube: true);
    private static readonly uint[] Initial = FractionBits(8, cube: false);

    private readonly uint[] _h = (uint[])Initial.Clone();
    private readonly byte[] _block = new byte[64];
    private readonly uint[] _w = new uint[64];
    private int _fill;
    private ulong _length;

    private static uint[] FractionBits(int count, bool cube)
    {
        var result = new uint[count];
        int found = 0;
        for (int n = 2; found < count; n++)
        {
            bool prime = true;
            for (int d = 2; d * d <= n; d++)
                if (n % d == 0) { prime = false; break; }
            if (!prime) continue;
            double root = cube ? Math.Cbrt(n) : Math.Sqrt(n);
            result[found++] = (uint)((root - Math.Floor(root)) * 4294967296.0);
        }
        return result;
    }

    public void Update(ReadOnlySpan<byte> data)
    {
        _length += (ulong)data.Length;
        while (data.Length > 0)
        {
            int n = Math.Min(64 - _fill, data.Length);
            data[..n].CopyTo(_block.AsSpan(_fill));
            _fill += n;
            data = data[n..];
            if (_fill == 64)
            {
                Compress(_block);
                _fill = 0;
            }
        }
    }

    public byte[] Finish()
    {
        ulong bits = _length * 8;
        Span<byte> tail = stackalloc byte[72];
        int padLength = (_fill < 56 ? 56 : 120) - _fill;
        tail.Clear();
        tail[0] = 0x80;
        BinaryPrimitives.WriteUInt64BigEndian(tail[padLength..], bits);
        Update(tail[..(padLength + 8)]);
        var digest = new byte[32];
        for (int i = 0; i < 8; i++) BinaryPrimitives.WriteUInt32BigEndian(digest.AsSpan(i * 4), _h[i]);
        return digest;
    }

    private void Compress(ReadOnlySpan<byte> block)
    {
        var w = _w;
        for (int i = 0; i < 16; i++) w[i] = BinaryPrimitives.ReadUInt32BigEndian(block[(i * 4)..]);
        for (int i = 16; i < 64; i++)
        {
            uint s0 = BitOperations.RotateRight(w[i - 15], 7) ^ BitOperations.RotateRight(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint s1 = BitOperations.RotateRight(w[i - 2], 17) ^ BitOperations.RotateRight(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint a = _h[0], b = _h[1], c = _h[2], d = _h[3], e = _h[4], f = _h[5], g = _h[6], h = _h[7];
        for (int i = 0; i < 64; i++)
        {
            uint t1 = h + (BitOperations.RotateRight(e, 6) ^ BitOperations.RotateRight(e, 11) ^ BitOperations.RotateRight(e, 25))
                        + ((e & f) ^ (~e & g)) + K[i] + w[i];
            uint t2 = (BitOperations.RotateRight(a, 2) ^ BitOperations.RotateRight(a, 13) ^ BitOperations.RotateRight(a, 22))
                        + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        _h[0] += a; _h[1] += b; _h[2] += c; _h[3] += d;
        _h[4] += e; _h[5] += f; _h[6] += g; _h[7] += h;
    }
}

/// <summary>The integrity check types of the xz stream flags (the others are reserved).</summary>
public enum XzCheckType
{
    None = 0,
    Crc32 = 1,
    Crc64 = 4,
    Sha256 = 10,
}

/// <summary>Computes one block's check over its uncompressed data and compares it with the stored one.</summary>
internal sealed class BlockCheck(XzCheckType type)
{
    private uint _crc32;
    private ulong _crc64;
    private Sha256? _sha = type == XzCheckType.Sha256 ? new Sha256() : null;

    public XzCheckType Type => type;

    public string Name => type switch
    {
        XzCheckType.Crc32 => "CRC32",
        XzCheckType.Crc64 => "CRC64",
        XzCheckType.Sha256 => "SHA-256",
        _ => "no",
    };

    /// <summary>Bytes the check takes after each block.</summary>
    public int Size => type switch
    {
        XzCheckType.None => 0,
        XzCheckType.Crc32 => 4,
        XzCheckType.Crc64 => 8,
        _ => 32,
    };

    /// <summary>The stored size of a check ID: the format fixes it even for IDs no decoder knows.</summary>
    public static int SizeOf(int id) => id == 0 ? 0 : 4 << ((id - 1) / 3);

    public void Reset()
    {
        _crc32 = 0;
        _crc64 = 0;
        if (_sha is not null) _sha = new Sha256();
    }

    public void Update(ReadOnlySpan<byte> data)
    {
        switch (type)
        {
            case XzCheckType.Crc32: _crc32 = Crc32.Update(_crc32, data); break;
            case XzCheckType.Crc64: _crc64 = Crc64.Update(_crc64, data); break;
            case XzCheckType.Sha256: _sha!.Update(data); break;
        }
    }

    public bool Matches(ReadOnlySpan<byte> stored) => type switch
    {
        XzCheckType.None => true,
        XzCheckType.Crc32 => BinaryPrimitives.ReadUInt32LittleEndian(stored) == _crc32,
        XzCheckType.Crc64 => BinaryPrimitives.ReadUInt64LittleEndian(stored) == _crc64,
        _ => stored.SequenceEqual(_sha!.Finish()),
    };
}

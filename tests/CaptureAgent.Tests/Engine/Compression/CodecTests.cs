using System.Text;
using CaptureAgent.Compression;
using Xunit;

namespace CaptureAgent.Tests.Engine.Compression;

/// <summary>Every page codec of the kdump format, both ways, and their decoders against hostile input.</summary>
public class CodecTests
{
    private static readonly PageCodec[] Compressing = [PageCodec.Zstd, PageCodec.Zlib, PageCodec.Lzo, PageCodec.Snappy];

    /// <summary>Pages of the kinds memory holds: text, repeats, runs, sparse words, noise, and short or odd lengths.</summary>
    public static IEnumerable<byte[]> Samples()
    {
        var rng = new Random(1234);
        var text = new byte[4096];
        var words = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 400).Select(i => $"word{i % 37} {i * 7919 % 1000} ")));
        words.AsSpan(0, 4096).CopyTo(text);
        yield return text;
        yield return new byte[4096];                                                  // zero page
        yield return Enumerable.Repeat((byte)0xa5, 4096).ToArray();                   // one byte repeated: distance 1
        yield return Enumerable.Range(0, 4096).Select(i => (byte)(i % 3)).ToArray();   // distance 3, overlapping copies
        var sparse = new byte[4096];
        for (int i = 0; i < 4096; i += 64) BitConverter.TryWriteBytes(sparse.AsSpan(i), 0xffff888000000000UL + (ulong)i * 512);
        yield return sparse;                                                          // pointer tables
        var noise = new byte[4096];
        rng.NextBytes(noise);
        yield return noise;                                                           // incompressible
        var half = new byte[4096];
        rng.NextBytes(half.AsSpan(0, 2048));
        half.AsSpan(0, 2048).CopyTo(half.AsSpan(2048));
        yield return half;                                                            // a match 2 KiB back (M3)
        var far = new byte[65536];
        rng.NextBytes(far.AsSpan(0, 20000));
        far.AsSpan(0, 20000).CopyTo(far.AsSpan(40000));                               // distance 40000: M4
        yield return far;
        foreach (int n in new[] { 0, 1, 3, 4, 5, 8, 9, 17, 18, 19, 238, 239, 300, 1000 })
            yield return text.AsSpan(0, n).ToArray();
    }

    [Fact]
    public void LzoRoundTripsEveryKindOfPage()
    {
        var table = new ushort[1 << 12];
        foreach (var input in Samples())
        {
            var packed = new byte[Lzo1x.MaxCompressedLength(input.Length)];
            int n = Lzo1x.Compress(input, packed, table);
            Assert.True(n > 0, $"{input.Length} bytes did not fit the documented bound");
            var back = new byte[input.Length];
            Assert.True(Lzo1x.TryDecompress(packed.AsSpan(0, n), back), $"{input.Length} bytes did not decompress");
            Assert.True(back.AsSpan().SequenceEqual(input));
            // One byte short of the room it needs: the compressor says so instead of writing past it.
            Assert.Equal(-1, Lzo1x.Compress(input, packed.AsSpan(0, n - 1), table));
        }
    }

    [Fact]
    public void LzoCompressesTheWayMakedumpfileNeedsIt()
    {
        // Text shrinks; a zero page becomes a few bytes (one long match at distance 1).
        var page = Samples().First();
        using var c = new LzoPageCompressor(4096);
        var out1 = new byte[PageCompressors.MaxCompressedLength(PageCodec.Lzo, 4096)];
        Assert.InRange(c.Compress(page, out1), 1, 2048);
        Assert.InRange(c.Compress(new byte[4096], out1), 1, 64);
        var noise = new byte[4096];
        new Random(5).NextBytes(noise);
        Assert.Equal(-1, c.Compress(noise, out1));   // not smaller: stored raw
    }

    /// <summary>
    /// Streams written by hand from the format description, with instructions our compressor never
    /// emits but liblzo's may: M1 after a literal run (3 bytes, 2049+ back), M1 after 1-3 literals
    /// (2 bytes), a long literal run with a length extension, M4 (16 KiB+ back).
    /// </summary>
    [Fact]
    public void LzoDecodesEveryInstructionOfTheFormat()
    {
        var lits = new byte[16400];
        new Random(7).NextBytes(lits);

        // 2052 literals (0, seven zero bytes, 249: 18 + 7*255 + 249), then M1 after a run: distance 2052, 3 bytes.
        var s = new List<byte> { 0, 0, 0, 0, 0, 0, 0, 0, 249 };
        s.AddRange(lits.AsSpan(0, 2052).ToArray());
        s.AddRange(new byte[] { 0x0c, 0x00, 0x11, 0x00, 0x00 });
        var expect = lits.AsSpan(0, 2052).ToArray().Concat(lits.AsSpan(0, 3).ToArray()).ToArray();
        AssertDecodes(s.ToArray(), expect);

        // First byte 19: two literals "xy" (state 2); M1 of 2 bytes at distance 2 (0x04, 0x00).
        AssertDecodes([19, (byte)'x', (byte)'y', 0x04, 0x00, 0x11, 0x00, 0x00], "xyxy"u8.ToArray());

        // 16400 literals, then M4: distance 16385 (16384 + 1), length 5, then 2 trailing literals in its state bits.
        s = [0];
        int rest = 16400 - 18;
        while (rest > 255) { s.Add(0); rest -= 255; }
        s.Add((byte)rest);
        s.AddRange(lits);
        s.AddRange(new byte[] { 0x13, (1 << 2) | 2, 0x00, (byte)'p', (byte)'q', 0x11, 0x00, 0x00 });
        expect = lits.Concat(lits.AsSpan(16400 - 16385, 5).ToArray()).Concat("pq"u8.ToArray()).ToArray();
        AssertDecodes(s.ToArray(), expect);

        // M3 with a length extension: 40 bytes at distance 1 after one literal.
        AssertDecodes([18, (byte)'z', 0x20, 40 - 33, 0x00, 0x00, 0x11, 0x00, 0x00], Enumerable.Repeat((byte)'z', 41).ToArray());
    }

    private static void AssertDecodes(byte[] stream, byte[] expected)
    {
        var back = new byte[expected.Length];
        Assert.True(Lzo1x.TryDecompress(stream, back));
        Assert.True(back.AsSpan().SequenceEqual(expected));
        Assert.False(Lzo1x.TryDecompress(stream, new byte[expected.Length + 1]), "a stream that ends early for the page is refused");
        Assert.False(Lzo1x.TryDecompress(stream.AsSpan(0, stream.Length - 1), back), "a stream without its end marker is refused");
    }

    [Fact]
    public void LzoRefusesReferencesBeforeTheStartAndRunsPastTheEnd()
    {
        var page = new byte[16];
        Assert.False(Lzo1x.TryDecompress([18, 1, 0x40 | (3 << 2), 0x00, 0x11, 0, 0], page));   // M2 distance 4 after 1 byte
        Assert.False(Lzo1x.TryDecompress([17 + 20, 1, 2, 3], page));                            // 20 literals claimed, 3 there
        Assert.False(Lzo1x.TryDecompress([0x20, 0, 0, 0, 0, 0], page));                          // zero-byte length extension without end
        Assert.False(Lzo1x.TryDecompress([], page));
        Assert.False(Lzo1x.TryDecompress([0x11, 0, 0, 0x11, 0, 0], new byte[0]));              // bytes after the end marker
    }

    /// <summary>
    /// Mutated and random streams: every decoder returns false or exactly one page, never throws,
    /// never writes past the page (the page sits inside a larger buffer whose guard bytes must stay).
    /// </summary>
    [Theory]
    [InlineData(PageCodec.Lzo)]
    [InlineData(PageCodec.Snappy)]
    [InlineData(PageCodec.Zstd)]
    [InlineData(PageCodec.Zlib)]
    public void DecodersSurviveHostileInput(PageCodec codec)
    {
        var rng = new Random((int)codec);
        using var c = PageCompressors.Create(codec, 4096)!;
        using var d = new PageDecompressor();
        var packed = new byte[PageCompressors.MaxCompressedLength(codec, 4096)];
        var guarded = new byte[4096 + 64];
        int trials = 0;
        foreach (var sample in Samples().Where(x => x.Length == 4096))
        {
            int n = c.Compress(sample, packed);
            if (n <= 0) continue;
            for (int t = 0; t < 400; t++, trials++)
            {
                var bad = packed.AsSpan(0, n).ToArray();
                int flips = 1 + rng.Next(4);
                for (int f = 0; f < flips; f++) bad[rng.Next(bad.Length)] = (byte)rng.Next(256);
                if (t % 10 == 0) bad = bad.AsSpan(0, rng.Next(bad.Length)).ToArray();   // truncated
                guarded.AsSpan(4096).Fill(0xee);
                d.TryDecompress(codec, bad, guarded.AsSpan(0, 4096));
                Assert.True(guarded.AsSpan(4096).IndexOfAnyExcept((byte)0xee) < 0, $"{codec} wrote past the page");
            }
        }
        for (int t = 0; t < 2000; t++, trials++)
        {
            var junk = new byte[rng.Next(1, 5000)];
            rng.NextBytes(junk);
            guarded.AsSpan(4096).Fill(0xee);
            d.TryDecompress(codec, junk, guarded.AsSpan(0, 4096));
            Assert.True(guarded.AsSpan(4096).IndexOfAnyExcept((byte)0xee) < 0, $"{codec} wrote past the page");
        }
        Assert.True(trials > 2000);
    }

    [Theory]
    [InlineData(PageCodec.Zstd)]
    [InlineData(PageCodec.Zlib)]
    [InlineData(PageCodec.Lzo)]
    [InlineData(PageCodec.Snappy)]
    public void EveryCodecRoundTripsThroughThePageDecompressor(PageCodec codec)
    {
        using var c = PageCompressors.Create(codec, 4096)!;
        using var d = new PageDecompressor();
        var packed = new byte[BatchCompressor.SlotSize(codec, 4096)];
        var back = new byte[4096];
        int compressed = 0;
        foreach (var page in Samples().Where(x => x.Length == 4096))
        {
            int n = c.Compress(page, packed);
            if (n < 0) continue;
            compressed++;
            Assert.True(n < 4096);
            Assert.True(d.TryDecompress(codec, packed.AsSpan(0, n), back));
            Assert.True(back.AsSpan().SequenceEqual(page));
            Assert.False(d.TryDecompress(codec, packed.AsSpan(0, n), new byte[8192]), "a page of another size is refused");
        }
        Assert.True(compressed >= 5, $"{codec} compressed only {compressed} sample pages");
    }

    [Fact]
    public void ZlibIsWithinFivePercentOfZlibLevelOne()
    {
        // C zlib 1.2.13's compress2(level 1), what makedumpfile -c calls, makes 1301 bytes of this
        // page (Python's zlib.compress(page, 1)). zlib-ng's level 1, .NET's Fastest, is its "quick"
        // strategy and makes far more on real memory; its level 2 is the counterpart.
        using var c = new ZlibPageCompressor(4096);
        var packed = new byte[4096];
        int n = c.Compress(Samples().First(), packed);
        Assert.InRange(n, 1, 1301 * 105 / 100);
    }

    [Fact]
    public void CodecNamesAndFlagsAreMakedumpfiles()
    {
        foreach (var codec in Compressing.Append(PageCodec.None))
        {
            Assert.Equal(codec, PageCompressors.Parse(PageCompressors.Name(codec)));
            Assert.Equal(codec, PageCompressors.FromFlags((uint)codec));
        }
        Assert.Equal((1u, 2u, 4u, 0x20u), ((uint)PageCodec.Zlib, (uint)PageCodec.Lzo, (uint)PageCodec.Snappy, (uint)PageCodec.Zstd));
        Assert.Null(PageCompressors.Parse("lz4"));
        Assert.Null(PageCompressors.FromFlags(3));
    }
}

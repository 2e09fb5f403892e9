using System.Security.Cryptography;
using System.Text;
using CaptureAgent.Compression.Xz;
using CaptureAgent.Tests.Integration;
using Xunit;
using CaptureAgent.Common;

namespace CaptureAgent.Tests.Host.Initramfs;

/// <summary>The xz decoder against the xz CLI: its own output decoded back, and every module of the 6.12 tree.</summary>
public class XzDecoderTests
{
    /// <summary>Compressible text with incompressible runs (LZMA2 stores those chunks raw), deterministic.</summary>
    private static byte[] Sample(int length, int seed = 1)
    {
        var rng = new Random(seed);
        var data = new byte[length];
        string[] words = ["virtio", "block", "module", "kernel", "crash", "dump", "\n", " ", "0x", "ffffffff"];
        int i = 0;
        while (i < length)
        {
            if (rng.Next(8) == 0)
            {
                int n = Math.Min(length - i, rng.Next(1, 70_000));
                rng.NextBytes(data.AsSpan(i, n));
                i += n;
            }
            else
            {
                for (int k = rng.Next(1, 4000); k > 0 && i < length; k--)
                {
                    var w = words[rng.Next(words.Length)];
                    for (int c = 0; c < w.Length && i < length; c++) data[i++] = (byte)w[c];
                }
            }
        }
        return data;
    }

    private static byte[] XzCli(TempDir dir, byte[] input, string options)
    {
        File.WriteAllBytes(dir.File("in"), input);
        Fixtures.Sh($"xz -c -q {options} {dir.File("in")} > {dir.File("in.xz")}");
        return File.ReadAllBytes(dir.File("in.xz"));
    }

    private static byte[] Decode(byte[] xz, long maxDictionary = XzDecoderStream.DefaultMaxDictionarySize, int readSize = 100_003)
    {
        using var d = new XzDecoderStream(new MemoryStream(xz), maxDictionarySize: maxDictionary);
        using var output = new MemoryStream();
        var buf = new byte[readSize];
        int n;
        while ((n = d.Read(buf)) > 0) output.Write(buf, 0, n);
        return output.ToArray();
    }

    [Theory]
    [InlineData(0, "--check=crc32")]
    [InlineData(1, "--check=crc64")]
    [InlineData(5000, "--check=none")]
    [InlineData(300_000, "--check=sha256")]
    [InlineData(300_000, "--check=crc32 --lzma2=dict=1MiB")]                   // what the kernel's modules use
    [InlineData(3_500_000, "--check=crc64 --lzma2=dict=4KiB")]                  // the ring wraps hundreds of times
    [InlineData(3_500_000, "--check=crc32 --lzma2=dict=64KiB,lc=0,lp=4,pb=0")]  // position-heavy contexts
    [InlineData(3_500_000, "--check=crc32 --lzma2=dict=96KiB,lc=4,lp=0,pb=4")]  // a 3 * 2^n dictionary
    [InlineData(3_500_000, "-0")]
    [InlineData(3_500_000, "-6")]                                              // 8 MiB: mkinitramfs' COMPRESS=xz
    [InlineData(3_500_000, "--block-size=700000 --check=sha256")]               // several blocks, sizes in their headers
    [InlineData(600_000, "-T2 --block-size=100000 --check=crc64")]
    public void DecodesWhatTheXzToolWrites(int length, string options)
    {
        using var dir = new TempDir();
        var input = Sample(length, seed: length);
        var xz = XzCli(dir, input, options);
        Assert.Equal(input, Decode(xz));
        Assert.Equal(input, Decode(xz, readSize: 1));   // byte-at-a-time reads take the same path in tiny steps
    }

    /// <summary>xz -9e asks for a 64 MiB dictionary: more than the agent's heap; refused by default in words, decoded when allowed.</summary>
    [Fact]
    public void LargestPresetNeedsItsDictionaryAllowed()
    {
        using var dir = new TempDir();
        var input = Sample(3_500_000, seed: 9);
        var xz = XzCli(dir, input, "-9e");
        var e = Assert.Throws<InvalidDataException>(() => Decode(xz));
        Assert.Contains("64 MiB dictionary, more than the 16 MiB", e.Message);
        Assert.Equal(input, Decode(xz, maxDictionary: 64L << 20));
    }

    [Fact]
    public void DecodesConcatenatedStreamsWithStreamPadding()
    {
        using var dir = new TempDir();
        var a = Sample(200_000, 7);
        var b = Sample(50_000, 8);
        var xz = XzCli(dir, a, "--check=crc32").Concat(new byte[8]).Concat(XzCli(dir, b, "--check=sha256")).Concat(new byte[4]).ToArray();
        Assert.Equal(a.Concat(b).ToArray(), Decode(xz));
        var badPadding = xz.Concat(new byte[3]).ToArray();
        Assert.Contains("padding", Assert.Throws<InvalidDataException>(() => Decode(badPadding)).Message);
    }

    [Fact]
    public void EmptyOrForeignInputIsRefusedClearly()
    {
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => Decode([])).Message);
        Assert.Contains("not an xz stream", Assert.Throws<InvalidDataException>(() => Decode(Encoding.ASCII.GetBytes("\x7f" + "ELF and more bytes"))).Message);
    }

    [Fact]
    public void TruncatedInputSaysSoWhereverItIsCut()
    {
        using var dir = new TempDir();
        var xz = XzCli(dir, Sample(400_000, 3), "--check=crc64");
        for (int cut = 0; cut < xz.Length; cut += Math.Max(1, xz.Length / 97))
        {
            if (cut == 0) continue;   // that is empty input, tested above
            var e = Assert.Throws<InvalidDataException>(() => Decode(xz[..cut]));
            Assert.Contains("truncated", e.Message);
        }
        foreach (int cut in new[] { 1, 6, 11, 12, 13, xz.Length - 12, xz.Length - 1 })
            Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Decode(xz[..cut])).Message);
    }

    [Fact]
    public void CorruptionAnywhereIsDetected()
    {
        using var dir = new TempDir();
        var input = Sample(400_000, 4);
        var xz = XzCli(dir, input, "--check=crc32");
        var rng = new Random(5);
        for (int trial = 0; trial < 200; trial++)
        {
            var bad = (byte[])xz.Clone();
            int at = trial < 24 ? trial : trial < 48 ? xz.Length - (trial - 23) : rng.Next(xz.Length);
            bad[at] ^= (byte)(1 << rng.Next(8));
            var e = Assert.Throws<InvalidDataException>(() => Decode(bad));
            Assert.StartsWith("xz: ", e.Message);
        }
        // Damage only the stored check: the data decodes, the check says it is not what was written.
        var badCheck = (byte[])xz.Clone();
        int checkAt = xz.Length - 12 /* footer */ - 12 /* index of one record, padded, with CRC */ - 4;
        badCheck[checkAt] ^= 1;
        Assert.Contains("CRC32 check mismatch", Assert.Throws<InvalidDataException>(() => Decode(badCheck)).Message);
    }

    [Theory]
    [InlineData("--x86 --lzma2", "x86 BCJ")]
    [InlineData("--delta=dist=4 --lzma2", "delta")]
    [InlineData("--arm64 --lzma2", "ARM64 BCJ")]
    public void OtherFiltersAreRefusedByName(string options, string name)
    {
        using var dir = new TempDir();
        var xz = XzCli(dir, Sample(10_000), options);
        var e = Assert.Throws<InvalidDataException>(() => Decode(xz));
        Assert.Contains($"{name} filter is not supported", e.Message);
    }

    [Fact]
    public void DictionaryLargerThanTheLimitIsRefused()
    {
        using var dir = new TempDir();
        var xz = XzCli(dir, Sample(10_000), "--lzma2=dict=8MiB");
        Assert.Contains("8 MiB dictionary", Assert.Throws<InvalidDataException>(() => Decode(xz, maxDictionary: 1 << 20)).Message);
        Assert.Equal(Sample(10_000), Decode(xz, maxDictionary: 8 << 20));
    }

    [Fact]
    public void ChecksMatchTheirReferenceValues()
    {
        var nine = "123456789"u8;
        Assert.Equal(0xCBF43926u, Crc32.Compute(nine));
        Assert.Equal(0x995DC9BBDF1939FAul, Crc64.Update(0, nine));
        var rng = new Random(9);
        foreach (int length in Enumerable.Range(0, 130).Append(1_000_003))
        {
            var data = new byte[length];
            rng.NextBytes(data);
            var sha = new Sha256();
            // Fed in uneven pieces, as the decoder's reads hand it data.
            for (int at = 0; at < length;)
            {
                int n = Math.Min(length - at, rng.Next(1, 200));
                sha.Update(data.AsSpan(at, n));
                at += n;
            }
            Assert.Equal(SHA256.HashData(data), sha.Finish());
        }
    }

    [Fact]
    [Trait("Category", "Fixture")]
    public void EveryModuleOfThe612TreeDecodesLikeXzDoes()
    {
        string dir = ModuleTrees.ModuleDir(ModuleTrees.Root(ModuleTrees.Debian612), ModuleTrees.Debian612);
        // One xz run over the whole tree: "<sha256>  <path>" of each decompressed module.
        string listing = Fixtures.Sh(
            $"cd '{dir}' && find kernel -name '*.ko.xz' -print0 | sort -z | xargs -0 -P2 -n 64 sh -c 'for f; do printf \"%s  %s\\n\" \"$(xz -dc \"$f\" | sha256sum | cut -c1-64)\" \"$f\"; done' sh",
            timeoutSeconds: 1200);
        var expected = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split("  ", 2)).ToDictionary(p => p[1], p => p[0]);
        Assert.True(expected.Count > 1000, $"only {expected.Count} .ko.xz modules found in {dir}");
        var mismatches = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(expected, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, pair =>
        {
            using var file = File.OpenRead(Path.Combine(dir, pair.Key));
            using var xz = new XzDecoderStream(file);
            string actual = Convert.ToHexStringLower(SHA256.HashData(xz));
            if (actual != pair.Value) mismatches.Add(pair.Key);
        });
        Assert.Empty(mismatches);
    }
}

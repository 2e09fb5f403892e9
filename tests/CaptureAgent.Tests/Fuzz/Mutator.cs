using System.Buffers.Binary;

namespace CaptureAgent.Tests.Fuzz;

/// <summary>
/// A seeded generator (splitmix64: the same seed gives the same numbers on every machine and .NET
/// version) with the mutations the harness applies: values that break size and offset arithmetic,
/// bit flips, and pointers into the image's own structures (which make cycles).
/// </summary>
public sealed class Mutator(ulong seed)
{
    private ulong _state = seed;

    public ulong Seed { get; } = seed;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>0 ≤ result &lt; n.</summary>
    public int Below(int n) => n <= 1 ? 0 : (int)(Next() % (ulong)n);
    public long Below(long n) => n <= 1 ? 0 : (long)(Next() % (ulong)n);
    public bool Chance(int percent) => Below(100) < percent;
    public T Pick<T>(IReadOnlyList<T> items) => items[Below(items.Count)];

    /// <summary>Numbers that break arithmetic on sizes, counts, offsets and physical addresses.</summary>
    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 7, 8, 0xff, 0x100, 0xfff, 0x1000, 0x1001, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
        1UL << 32, 1UL << 40, 1UL << 46, 1UL << 47, 1UL << 48, 1UL << 51, 1UL << 52, 0x6000000000000,
        1UL << 62, 1UL << 63, ulong.MaxValue, ulong.MaxValue - 0xfff, ulong.MaxValue - 1, 0xffff888000000000, 0xffffffff80000000,
    ];

    /// <summary>A replacement for the 64-bit value <paramref name="original"/>.</summary>
    public ulong Value(ulong original) => Below(8) switch
    {
        0 or 1 => Pick(Interesting),
        2 => original ^ (1UL << Below(64)),
        3 => original + (ulong)(Below(2) == 0 ? 1 : 0x1000) * (Chance(50) ? 1UL : ulong.MaxValue),
        4 => original << (1 + Below(8)),
        5 => original >> (1 + Below(8)),
        6 => Next(),
        _ => original * (ulong)(2 + Below(1000)),
    };

    /// <summary>Mutates a little-endian field of 1, 2, 4 or 8 bytes in place.</summary>
    public void Field(Span<byte> bytes, int offset, int width)
    {
        if (offset < 0 || offset + width > bytes.Length) return;
        var f = bytes.Slice(offset, width);
        switch (width)
        {
            case 8: BinaryPrimitives.WriteUInt64LittleEndian(f, Value(BinaryPrimitives.ReadUInt64LittleEndian(f))); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(f, (uint)Value(BinaryPrimitives.ReadUInt32LittleEndian(f))); break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(f, (ushort)Value(BinaryPrimitives.ReadUInt16LittleEndian(f))); break;
            default: f[0] = (byte)Value(f[0]); break;
        }
    }

    /// <summary>One mutation somewhere in [start, start+length): a word, a byte, a bit, a zeroed or filled run.</summary>
    public string Somewhere(Span<byte> bytes, long start, long length, string what)
    {
        if (length <= 0 || start >= bytes.Length) return $"{what}: nothing to mutate";
        length = Math.Min(length, bytes.Length - start);
        long at = start + Below(length);
        switch (Below(6))
        {
            case 0:
                at -= (at - start) % 8;
                Field(bytes, (int)at, 8);
                return $"{what}: 8 bytes at {at}";
            case 1:
                at -= (at - start) % 4;
                Field(bytes, (int)at, 4);
                return $"{what}: 4 bytes at {at}";
            case 2:
                bytes[(int)at] ^= (byte)(1 << Below(8));
                return $"{what}: a bit at {at}";
            case 3:
                bytes[(int)at] = (byte)Next();
                return $"{what}: a byte at {at}";
            case 4:
            {
                int run = (int)Math.Min(1 + Below(4096), start + length - at);
                bytes.Slice((int)at, run).Clear();
                return $"{what}: {run} bytes zeroed at {at}";
            }
            default:
            {
                int run = (int)Math.Min(1 + Below(512), start + length - at);
                bytes.Slice((int)at, run).Fill((byte)(Chance(50) ? 0xff : Next()));
                return $"{what}: {run} bytes filled at {at}";
            }
        }
    }
}

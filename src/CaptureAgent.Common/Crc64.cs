namespace CaptureAgent.Common;

/// <summary>CRC-64 (ECMA-182, reflected 0xC96C5795D7870F42): xz's CRC64 check.</summary>
public static class Crc64
{
    private static readonly ulong[] Table = MakeTable();

    private static ulong[] MakeTable()
    {
        var t = new ulong[256];
        for (ulong i = 0; i < 256; i++)
        {
            ulong c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xC96C5795D7870F42ul ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static ulong Update(ulong crc, ReadOnlySpan<byte> data)
    {
        ulong c = ~crc;
        foreach (byte b in data) c = Table[(byte)(c ^ b)] ^ (c >> 8);
        return ~c;
    }
}

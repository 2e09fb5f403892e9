using System.Text;

namespace CaptureAgent.Targets;

/// <summary>UUIDs and labels spelled the way blkid prints them.</summary>
internal static class SuperblockText
{
    /// <summary>16 raw bytes as lowercase 8-4-4-4-12, or null when all zero (blkid leaves such a UUID out).</summary>
    public static string? Uuid(ReadOnlySpan<byte> raw)
    {
        if (raw.Length != 16 || raw.IndexOfAnyExcept((byte)0) < 0) return null;
        string h = Convert.ToHexStringLower(raw);
        return $"{h[..8]}-{h[8..12]}-{h[12..16]}-{h[16..20]}-{h[20..]}";
    }

    /// <summary>A fixed-size label field: up to the first NUL, trailing blanks dropped (blkid trims them too).</summary>
    public static string? Label(ReadOnlySpan<byte> field, Encoding? encoding = null)
    {
        int nul = field.IndexOf((byte)0);
        if (nul >= 0) field = field[..nul];
        string text = (encoding ?? Encoding.UTF8).GetString(field).TrimEnd(' ', '\t', '\n', '\r');
        return text.Length == 0 ? null : text;
    }
}

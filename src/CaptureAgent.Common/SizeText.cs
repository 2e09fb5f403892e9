namespace CaptureAgent.Common;

/// <summary>Sizes as the kernel's memparse() reads them (K, M, G, T suffixes, powers of 1024) and back.</summary>
public static class SizeText
{
    public const long MiB = 1L << 20;

    /// <summary>"256M", "1G", "1048576" → bytes; null for anything else (the caller names the option).</summary>
    public static long? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim();
        int shift = char.ToUpperInvariant(text[^1]) switch
        {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            _ => 0,
        };
        string digits = shift == 0 ? text : text[..^1];
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit) || !long.TryParse(digits, out long n)) return null;
        if (n > (long.MaxValue >> shift)) return null;
        return n << shift;
    }

    /// <summary>Bytes as a crashkernel= value: the largest exact unit (G, M, K), else plain bytes.</summary>
    public static string Format(long bytes)
    {
        if (bytes > 0 && bytes % (1L << 30) == 0) return $"{bytes >> 30}G";
        if (bytes > 0 && bytes % MiB == 0) return $"{bytes >> 20}M";
        if (bytes > 0 && bytes % 1024 == 0) return $"{bytes >> 10}K";
        return bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Bytes in MiB with one decimal, for reports.</summary>
    public static string Mib(long bytes) => (bytes / (double)MiB).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " MiB";

    public static long RoundUp(long bytes, long step) => (bytes + step - 1) / step * step;
}

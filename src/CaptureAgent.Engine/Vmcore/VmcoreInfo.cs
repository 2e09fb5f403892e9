using System.Globalization;
using System.Text;

namespace CaptureAgent.Vmcore;

/// <summary>
/// The kernel's VMCOREINFO note: one KEY=VALUE per line. SYMBOL values are hex without 0x;
/// SIZE/OFFSET/LENGTH/NUMBER are decimal (a few kernels print 0x-prefixed hex).
/// Like makedumpfile, the first occurrence of a key wins.
/// </summary>
public sealed class VmcoreInfo
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public string Text { get; }

    public VmcoreInfo(string text)
    {
        Text = text;
        foreach (var rawLine in text.Split('\n'))
        {
            var line = rawLine.TrimEnd('\r', '\0');
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            _values.TryAdd(line[..eq], line[(eq + 1)..]);
        }
    }

    public static VmcoreInfo Parse(ReadOnlySpan<byte> desc)
    {
        int end = desc.IndexOf((byte)0);
        if (end >= 0) desc = desc[..end];
        return new VmcoreInfo(Encoding.ASCII.GetString(desc));
    }

    public string? String(string key) => _values.TryGetValue(key, out var v) ? v : null;

    public ulong? Symbol(string name)
    {
        if (!_values.TryGetValue($"SYMBOL({name})", out var v)) return null;
        if (v.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) v = v[2..];
        return ulong.TryParse(v, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var r) && r != 0 && r != ulong.MaxValue
            ? r : null;
    }

    public long? Size(string name) => Number($"SIZE({name})");
    public long? Offset(string name) => Number($"OFFSET({name})");
    public long? Length(string name) => Number($"LENGTH({name})");
    public long? Num(string name) => Number($"NUMBER({name})");

    private long? Number(string key) => _values.TryGetValue(key, out var v) ? ParseNumber(v) : null;

    /// <summary>Decimal first; hex (with or without 0x) as the fallback, as makedumpfile does.</summary>
    public static long? ParseNumber(string v)
    {
        v = v.Trim();
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var d)) return d;
        if (ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var u)) return unchecked((long)u);
        var hex = v.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? v[2..] : v;
        if (ulong.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var h)) return unchecked((long)h);
        return null;
    }

    public string Require(string key) =>
        String(key) ?? throw new VmcoreException($"VMCOREINFO has no {key}");

    public long RequireNumber(string kind, string name) =>
        Number($"{kind}({name})") ?? throw new VmcoreException($"VMCOREINFO has no {kind}({name})");

    public ulong RequireSymbol(string name) =>
        Symbol(name) ?? throw new VmcoreException($"VMCOREINFO has no SYMBOL({name})");

    public string? OsRelease => String("OSRELEASE");
    public long? CrashTime => _values.TryGetValue("CRASHTIME", out var v) ? ParseNumber(v) : null;

    public ulong? KernelOffset =>
        _values.TryGetValue("KERNELOFFSET", out var v) &&
        ulong.TryParse(v, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var r) ? r : null;
}

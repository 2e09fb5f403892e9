using System.Globalization;
using System.Text;

namespace CaptureAgent.Targets;

/// <summary>How the configuration names the dump target.</summary>
public enum TargetKind
{
    /// <summary>/dev/NAME: a kernel device name (or /dev/mapper/NAME, a device-mapper name).</summary>
    Path,
    Uuid,
    Label,
    /// <summary>A partition's GPT unique GUID, or an MBR partition's "disksig-NN".</summary>
    PartUuid,
    /// <summary>A GPT partition name.</summary>
    PartLabel,
}

/// <summary>
/// A dump target as written in the configuration or on a kernel command line: <c>/dev/vda1</c>,
/// <c>UUID=...</c>, <c>LABEL=...</c>, <c>PARTUUID=...</c>, <c>PARTLABEL=...</c> (values may be quoted).
/// The udev links <c>/dev/disk/by-uuid/X</c> and friends mean the same as <c>UUID=X</c>: the capture
/// kernel has no udev to make them, so they are turned into what they stand for.
/// </summary>
public sealed record TargetSpec(TargetKind Kind, string Value)
{
    public static TargetSpec Parse(string text) =>
        TryParse(text, out var spec, out string? error) ? spec : throw new FormatException(error);

    public static bool TryParse(string? text, out TargetSpec spec, out string? error)
    {
        spec = null!;
        error = null;
        string t = (text ?? "").Trim();
        int eq = t.IndexOf('=');
        if (eq > 0 && !t.StartsWith('/'))
        {
            string key = t[..eq].Trim().ToUpperInvariant();
            string value = Unquote(t[(eq + 1)..].Trim());
            TargetKind? kind = key switch
            {
                "UUID" => TargetKind.Uuid,
                "LABEL" => TargetKind.Label,
                "PARTUUID" => TargetKind.PartUuid,
                "PARTLABEL" => TargetKind.PartLabel,
                _ => null,
            };
            if (kind is null) { error = $"target '{text}': {key}= is not one of UUID=, LABEL=, PARTUUID=, PARTLABEL="; return false; }
            if (value.Length == 0) { error = $"target '{text}' has an empty {key}"; return false; }
            spec = new TargetSpec(kind.Value, value);
            return true;
        }
        if (t.StartsWith("/dev/", StringComparison.Ordinal) && t.Length > 5 && !t.EndsWith('/'))
        {
            foreach (var (prefix, kind) in ByLinks)
                if (t.StartsWith(prefix, StringComparison.Ordinal) && t.Length > prefix.Length)
                {
                    spec = new TargetSpec(kind, UdevUnescape(t[prefix.Length..]));
                    return true;
                }
            if (t.Split('/').Any(part => part == ".."))
            {
                error = $"target '{text}' must not contain ..";
                return false;
            }
            spec = new TargetSpec(TargetKind.Path, t);
            return true;
        }
        error = $"target '{text}' is none of /dev/NAME, UUID=..., LABEL=..., PARTUUID=..., PARTLABEL=...";
        return false;
    }

    private static readonly (string Prefix, TargetKind Kind)[] ByLinks =
    [
        ("/dev/disk/by-uuid/", TargetKind.Uuid),
        ("/dev/disk/by-label/", TargetKind.Label),
        ("/dev/disk/by-partuuid/", TargetKind.PartUuid),
        ("/dev/disk/by-partlabel/", TargetKind.PartLabel),
    ];

    /// <summary>The device name under /dev a Path target means ("vda1", "mapper/crash"), else null.</summary>
    public string? DevRelativeName => Kind == TargetKind.Path ? Value["/dev/".Length..] : null;

    /// <summary>True when <paramref name="actual"/> is what this spec asks for (UUIDs compare without case).</summary>
    public bool ValueMatches(string? actual) => actual is not null && Kind switch
    {
        TargetKind.Uuid or TargetKind.PartUuid => string.Equals(Value, actual, StringComparison.OrdinalIgnoreCase),
        _ => Value == actual,
    };

    public override string ToString() => Kind switch
    {
        TargetKind.Path => Value,
        TargetKind.Uuid => "UUID=" + Value,
        TargetKind.Label => "LABEL=" + Value,
        TargetKind.PartUuid => "PARTUUID=" + Value,
        _ => "PARTLABEL=" + Value,
    };

    private static string Unquote(string v) =>
        v.Length >= 2 && (v[0] == '"' && v[^1] == '"' || v[0] == '\'' && v[^1] == '\'') ? v[1..^1] : v;

    /// <summary>udev writes unsafe bytes in link names as \xNN (a space in a label is \x20).</summary>
    private static string UdevUnescape(string s)
    {
        if (!s.Contains("\\x", StringComparison.Ordinal)) return s;
        var raw = Encoding.UTF8.GetBytes(s);
        var bytes = new List<byte>(raw.Length);
        for (int i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '\\' && i + 3 < raw.Length && raw[i + 1] == 'x'
                && byte.TryParse(Encoding.ASCII.GetString(raw, i + 2, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                bytes.Add(b);
                i += 3;
            }
            else bytes.Add(raw[i]);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}

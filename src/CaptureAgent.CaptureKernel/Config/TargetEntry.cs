using CaptureAgent.Targets;

namespace CaptureAgent.Config;

/// <summary>
/// One `target =` line: a local filesystem (<c>LABEL=</c>, <c>UUID=</c>, <c>PARTUUID=</c>, <c>PARTLABEL=</c>,
/// <c>/dev/NAME</c>), <c>raw:DEVICE</c>, <c>nfs:HOST:/export</c> or <c>ssh:user@host[:port]</c>.
/// </summary>
public sealed record TargetEntry(TargetType Type, string Text)
{
    /// <summary>The device of a local or raw target.</summary>
    public TargetSpec? Device { get; init; }
    /// <summary>nfs: the server (a name, an IPv4 address or a bracketed IPv6 address) and the export.</summary>
    public string? Server { get; init; }
    public string? Export { get; init; }
    /// <summary>ssh: user@host[:port] as written.</summary>
    public string? SshDestination { get; init; }

    /// <summary>Does this target need the network in the capture kernel?</summary>
    public bool NeedsNetwork => Type is TargetType.Nfs or TargetType.Ssh;

    public override string ToString() => Text;

    public static bool TryParse(string text, out TargetEntry entry, out string? error)
    {
        entry = null!;
        error = null;
        string t = text.Trim();
        if (t.StartsWith("raw:", StringComparison.Ordinal))
        {
            if (!TargetSpec.TryParse(t[4..], out var spec, out error)) return false;
            entry = new TargetEntry(TargetType.Raw, t) { Device = spec };
            return true;
        }
        if (t.StartsWith("nfs:", StringComparison.Ordinal))
        {
            string rest = t[4..];
            int split = rest.StartsWith('[') ? rest.IndexOf("]:", StringComparison.Ordinal) + 1 : rest.IndexOf(':');
            if (split <= 0 || split + 1 >= rest.Length || rest[split + 1] != '/')
            {
                error = $"target '{t}': expected nfs:HOST:/export";
                return false;
            }
            entry = new TargetEntry(TargetType.Nfs, t) { Server = rest[..split], Export = rest[(split + 1)..] };
            return true;
        }
        if (t.StartsWith("ssh:", StringComparison.Ordinal))
        {
            string dest = t[4..];
            int at = dest.IndexOf('@');
            if (at <= 0 || at == dest.Length - 1 || dest.Contains(' ') || dest.Contains('\''))
            {
                error = $"target '{t}': expected ssh:user@host[:port]";
                return false;
            }
            entry = new TargetEntry(TargetType.Ssh, t) { SshDestination = dest };
            return true;
        }
        if (!TargetSpec.TryParse(t, out var local, out error)) return false;
        entry = new TargetEntry(TargetType.Local, t) { Device = local };
        return true;
    }
}

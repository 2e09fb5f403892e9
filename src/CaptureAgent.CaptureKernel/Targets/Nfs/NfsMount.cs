using System.Net;
using System.Net.Sockets;
using CaptureAgent.Native;

namespace CaptureAgent.Targets.Nfs;

/// <summary>
/// Mounts an NFS export with the kernel's own client through mount(2): no mount.nfs, no rpcbind,
/// no rpc.statd. The kernel does not resolve names, so the server's address goes in <c>addr=</c>
/// as mount.nfs would pass it. NFSv4 needs nothing else; v3 is mounted with <c>nolock</c>
/// (no lockd in a capture kernel) and the kernel speaks the MOUNT protocol itself.
/// </summary>
public static class NfsMount
{
    /// <summary>Tried in order when the options name no version: the first the server accepts wins.</summary>
    private static readonly string[] Versions = ["4.2", "4.1", "4.0", "3"];
    public const string DefaultOptions = "soft,timeo=100,retrans=3";

    /// <summary>The mount(2) data for one attempt; the version and the address are ours to set.</summary>
    public static string MountData(string options, string version, IPAddress address)
    {
        var opts = options.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Where(o => !o.StartsWith("addr=", StringComparison.Ordinal) && !o.StartsWith("vers=", StringComparison.Ordinal)
                        && !o.StartsWith("nfsvers=", StringComparison.Ordinal)).ToList();
        opts.Add("vers=" + version);
        if (version == "3" && !opts.Contains("lock")) opts.Add("nolock");
        opts.Remove("lock");
        opts.Add("addr=" + address);
        return string.Join(',', opts);
    }

    /// <summary>The version the options ask for (vers= or nfsvers=), or null to negotiate.</summary>
    public static string? RequestedVersion(string options)
    {
        foreach (var o in options.Split(',', StringSplitOptions.RemoveEmptyEntries))
            if (o.StartsWith("vers=", StringComparison.Ordinal)) return o[5..];
            else if (o.StartsWith("nfsvers=", StringComparison.Ordinal)) return o[8..];
        return null;
    }

    /// <summary>An IP literal (IPv6 in brackets) or a name from the hosts file; DNS is not consulted.</summary>
    public static IPAddress ResolveServer(string server, string hostsFile = "/etc/hosts")
    {
        string s = server.Trim('[', ']');
        if (IPAddress.TryParse(s, out var ip)) return ip;
        if (File.Exists(hostsFile))
            foreach (var line in File.ReadLines(hostsFile))
            {
                var f = line.Split('#')[0].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (f.Length >= 2 && f.Skip(1).Contains(s, StringComparer.OrdinalIgnoreCase) && IPAddress.TryParse(f[0], out var found)) return found;
            }
        throw new IOException($"NFS server '{server}' must be an IP address (the capture kernel has no name resolution; or list it in {hostsFile})");
    }

    /// <summary>Mounts server:export on mountPoint; returns the version used. Throws with the kernel's errno named.</summary>
    public static string Mount(string server, string export, string mountPoint, string? options, Action<string>? report = null)
    {
        var address = ResolveServer(server);
        string opts = options ?? DefaultOptions;
        string source = (address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString()) + ":" + export;
        var versions = RequestedVersion(opts) is { } v ? [v] : Versions;
        string? lastError = null;
        foreach (var version in versions)
        {
            string type = version.StartsWith('4') ? "nfs4" : "nfs";
            string data = MountData(opts, version, address);
            int errno = Libc.Mount(source, mountPoint, type, Libc.MS_NOSUID | Libc.MS_NODEV, data);
            if (errno == 0)
            {
                report?.Invoke($"capture-agent: {source} mounted (NFS {version})");
                return version;
            }
            lastError = $"mounting {source} (NFS {version}) failed: {Libc.ErrnoName(errno)}";
            report?.Invoke("capture-agent: " + lastError);
            // Only a refused version is worth another try; a dead server or a missing export is not.
            if (errno is not (Libc.EPROTONOSUPPORT or Libc.EINVAL or Libc.ENODEV)) break;
        }
        throw new IOException(lastError ?? $"mounting {source} failed");
    }
}

using System.Net;
using System.Net.Sockets;

namespace CaptureAgent.Targets.Ssh;

/// <summary>
/// Where an ssh target sends a dump and how: the collector (user@host, port), the private key and
/// the known_hosts file that pins the collector's host key, the connect timeout and how many
/// times a connection that never came up is tried again.
/// </summary>
public sealed record SshDestination(string User, string Host, int Port, string KeyPath, string KnownHostsPath, TimeSpan ConnectTimeout, int Retries)
{
    /// <summary>Where the capture initramfs carries the key and the collector's host key.</summary>
    public const string ImageKeyPath = "/etc/capture-agent/ssh_key";
    public const string ImageKnownHostsPath = "/etc/capture-agent/known_hosts";

    /// <summary>Debian's kdump-tools tries 16 times, 3 s apart, while the network comes up.</summary>
    public const int DefaultRetries = 16;
    public static readonly TimeSpan DefaultRetryPause = TimeSpan.FromSeconds(3);
    public static readonly TimeSpan DefaultConnectTimeout = TimeSpan.FromSeconds(20);

    /// <summary>The OpenSSH client; the capture initramfs has it at the host's path.</summary>
    public string SshPath { get; init; } = "/usr/bin/ssh";

    public TimeSpan RetryPause { get; init; } = DefaultRetryPause;

    /// <summary>A write into ssh blocked this long means the link is dead: ssh is killed.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>user@host:port as shown in messages (an IPv6 host in brackets).</summary>
    public override string ToString() => $"{User}@{(Host.Contains(':') ? $"[{Host}]" : Host)}{(Port == 22 ? "" : $":{Port}")}";

    /// <summary>
    /// <c>user@host[:port]</c>, <c>user@[v6addr][:port]</c>; host is a name or an IP literal. Throws
    /// FormatException naming what is wrong. Names that ssh could read as options are refused.
    /// </summary>
    public static SshDestination Parse(string text, string? keyPath = null, string? knownHostsPath = null,
                                       TimeSpan? connectTimeout = null, int retries = DefaultRetries)
    {
        string t = text.Trim();
        if (t.StartsWith("ssh:", StringComparison.Ordinal)) t = t[4..];
        int at = t.LastIndexOf('@');
        if (at <= 0) throw new FormatException($"ssh destination '{text}': expected user@host[:port]");
        string user = t[..at], rest = t[(at + 1)..];
        if (user.StartsWith('-') || !user.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw new FormatException($"ssh destination '{text}': user '{user}' may hold only letters, digits, '.', '_' and '-'");
        string host;
        int port = 22;
        string? portText = null;
        if (rest.StartsWith('['))
        {
            int close = rest.IndexOf(']');
            if (close < 0) throw new FormatException($"ssh destination '{text}': unclosed '[' in the host");
            host = rest[1..close];
            if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
                throw new FormatException($"ssh destination '{text}': '[{host}]' is not an IPv6 address");
            string after = rest[(close + 1)..];
            if (after.Length > 0)
            {
                if (!after.StartsWith(':')) throw new FormatException($"ssh destination '{text}': expected ':port' after ']'");
                portText = after[1..];
            }
        }
        else
        {
            int colon = rest.IndexOf(':');
            if (colon >= 0 && rest.IndexOf(':', colon + 1) >= 0)
                throw new FormatException($"ssh destination '{text}': write an IPv6 address in brackets, user@[addr]:port");
            host = colon >= 0 ? rest[..colon] : rest;
            if (colon >= 0) portText = rest[(colon + 1)..];
            if (host.Length == 0 || host.StartsWith('-') || host.StartsWith('.')
                || !host.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
                throw new FormatException($"ssh destination '{text}': '{host}' is not a host name or address");
        }
        if (portText is not null && (!int.TryParse(portText, System.Globalization.NumberStyles.None, null, out port) || port is < 1 or > 65535))
            throw new FormatException($"ssh destination '{text}': port '{portText}' is not a number from 1 to 65535");
        string key = keyPath ?? ImageKeyPath, known = knownHostsPath ?? ImageKnownHostsPath;
        // ssh splits -o values at white space and quotes: such a path would be misread.
        foreach (var (what, p) in new[] { ("key", key), ("known_hosts", known) })
            if (p.Length == 0 || p.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\'))
                throw new FormatException($"ssh {what} path '{p}' must be non-empty, without spaces or quotes");
        if (retries < 0) throw new FormatException("ssh retries must be 0 or more");
        return new SshDestination(user, host, port, key, known, connectTimeout ?? DefaultConnectTimeout, retries);
    }
}

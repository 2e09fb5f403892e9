namespace CaptureAgent.Net;

/// <summary>What the capture kernel's network should look like.</summary>
/// <param name="Interface">"auto" (the first physical Ethernet NIC, one with carrier preferred), a kernel name
/// ("eth0") or a MAC address ("52:54:00:12:34:56"). The capture kernel has no udev: NICs keep their kernel
/// names (eth0...), so a predictable name of the first kernel (ens3) only works if it is the MAC or "auto".</param>
/// <param name="Mode">"dhcp", or static "ADDR/PREFIX [via GATEWAY]" ("10.0.2.15/24 via 10.0.2.2").</param>
/// <param name="Dns">Name servers to write to resolv.conf, before any the DHCP server gives.</param>
/// <param name="Timeout">For everything: the NIC appearing, its carrier, and the DHCP exchange.</param>
public sealed record NetworkSettings(string Interface, string Mode, IReadOnlyList<string> Dns, TimeSpan Timeout);

/// <summary>The configuration applied.</summary>
/// <param name="Address">Dotted quad.</param>
/// <param name="Gateway">The default route's gateway, or null when there is no default route.</param>
/// <param name="Source">"dhcp" or "static".</param>
public sealed record NetworkLease(string Interface, string Address, int PrefixLength, string? Gateway, IReadOnlyList<string> Dns, string Source)
{
    /// <summary>aa:bb:cc:dd:ee:ff of the interface.</summary>
    public string? Mac { get; init; }

    /// <summary>The DHCP server (option 54), for DHCP leases.</summary>
    public string? Server { get; init; }

    /// <summary>The DHCP lease time (option 51); null for static or infinite. The lease is not renewed.</summary>
    public TimeSpan? LeaseTime { get; init; }

    /// <summary>The domain (option 15), written as resolv.conf's search.</summary>
    public string? Domain { get; init; }

    /// <summary>One line: "eth0 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 (dhcp from 10.0.2.2, lease 86400 s)".</summary>
    public override string ToString()
    {
        var text = new System.Text.StringBuilder($"{Interface} {Address}/{PrefixLength}");
        if (Gateway is not null) text.Append(" via ").Append(Gateway);
        if (Dns.Count > 0) text.Append(" dns ").AppendJoin(',', Dns);
        if (Domain is not null) text.Append(" domain ").Append(Domain);
        text.Append(" (").Append(Source);
        if (Server is not null) text.Append(" from ").Append(Server);
        if (LeaseTime is { } lease) text.Append(", lease ").Append((long)lease.TotalSeconds).Append(" s");
        if (Mac is not null) text.Append(", mac ").Append(Mac);
        return text.Append(')').ToString();
    }
}

/// <summary>A parsed static mode: "10.0.2.15/24 via 10.0.2.2".</summary>
public sealed record StaticAddress(string Address, int PrefixLength, string? Gateway);

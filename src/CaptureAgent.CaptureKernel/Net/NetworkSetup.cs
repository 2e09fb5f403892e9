using System.Diagnostics;
using CaptureAgent.Targets;

namespace CaptureAgent.Net;

/// <summary>
/// Brings up the capture kernel's network with nothing but syscalls: lo, then one NIC chosen by
/// "auto", name or MAC (waited for while drivers probe), its carrier, an address by DHCP or a static
/// setting, the default route and resolv.conf. One timeout bounds the whole of it.
/// </summary>
public static class NetworkSetup
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);
    /// <summary>glibc reads at most three nameserver lines (MAXNS).</summary>
    private const int MaxNameServers = 3;

    /// <summary>Configures the network; throws IOException with one line saying what failed.</summary>
    /// <param name="resolvConf">Where to write the name servers; null or empty: nowhere.</param>
    public static NetworkLease Configure(NetworkSettings s, Action<string>? report = null, string? resolvConf = "/etc/resolv.conf")
    {
        ArgumentNullException.ThrowIfNull(s);
        StaticAddress? staticAddress = null;
        bool dhcp = s.Mode.Trim().Equals("dhcp", StringComparison.OrdinalIgnoreCase);
        if (!dhcp && !TryParseStatic(s.Mode, out staticAddress, out string? error))
            throw new IOException($"network mode '{s.Mode}': {error}");
        var dns = new List<uint>();
        foreach (var d in s.Dns)
        {
            if (!Ipv4.TryParse(d.Trim(), out uint a) || Ipv4.NotAHostAddress(a) is not null)
                throw new IOException($"DNS server '{d}' is not an IPv4 address");
            if (!dns.Contains(a)) dns.Add(a);
        }
        var clock = Stopwatch.StartNew();
        var timeout = s.Timeout > TimeSpan.Zero ? s.Timeout : TimeSpan.FromSeconds(1);

        const string sysRoot = "/sys";   // ioctls act on this kernel, so its own sysfs
        using var link = new LinkControl();
        // ssh and NFS may well talk to localhost-bound helpers; the kernel gives lo 127.0.0.1/8 when it goes up.
        try { link.Up("lo"); }
        catch (IOException e) { report?.Invoke($"capture-agent: warning: {e.Message}"); }

        string ifname = SelectInterface(s.Interface.Trim(), link, clock, timeout, report, sysRoot);
        byte[] mac = link.HardwareAddress(ifname, out ushort linkType);
        string macText = NetInterfaces.FormatMac(mac);
        if (dhcp && linkType != 1)
            throw new IOException($"{ifname} is not Ethernet (link type {linkType}): DHCP here needs an Ethernet NIC; give a static address");
        link.Up(ifname);

        bool carrier = WaitFor(() => NetInterfaces.Carrier(ifname, sysRoot) == true, clock, timeout);
        if (!carrier)
        {
            string msg = $"no carrier on {ifname} after {Math.Round(clock.Elapsed.TotalSeconds)} s (cable unplugged or switch port down?)";
            if (dhcp) throw new IOException(msg);
            report?.Invoke($"capture-agent: warning: {msg}; configuring it anyway");
        }

        uint address, gateway = 0;
        int prefix;
        string? server = null, domain = null;
        TimeSpan? leaseTime = null;
        if (dhcp)
        {
            var remaining = timeout - clock.Elapsed;
            var ack = new DhcpClient(ifname, mac, report).Acquire(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            address = ack.YourAddress;
            if (ack.SubnetMask is { } mask) prefix = Ipv4.PrefixOf(mask);
            else
            {
                prefix = Ipv4.ClassfulPrefix(address);
                report?.Invoke($"capture-agent: warning: the DHCP server sent no subnet mask; using /{prefix}");
            }
            gateway = ack.Routers.FirstOrDefault(r => Ipv4.NotAHostAddress(r) is null && r != address);
            foreach (var d in ack.DnsServers)
                if (Ipv4.NotAHostAddress(d) is null && !dns.Contains(d)) dns.Add(d);
            server = ack.ServerIdentifier is { } sid ? Ipv4.Format(sid) : null;
            if (ack.LeaseSeconds is { } l && l != uint.MaxValue) leaseTime = TimeSpan.FromSeconds(l);
            if (ack.DomainName is { Length: > 0 } dn)
            {
                if (DhcpPacket.IsSafeDomain(dn)) domain = dn.TrimEnd('.');
                else report?.Invoke("capture-agent: warning: ignoring a DHCP domain name with characters a resolv.conf cannot take");
            }
        }
        else
        {
            Ipv4.TryParse(staticAddress!.Address, out address);
            prefix = staticAddress.PrefixLength;
            if (staticAddress.Gateway is { } g) Ipv4.TryParse(g, out gateway);
        }

        link.SetAddress(ifname, address, prefix);
        if (gateway != 0) link.SetDefaultRoute(ifname, gateway, address, prefix);

        var dnsText = dns.Take(MaxNameServers).Select(Ipv4.Format).ToList();
        if (dns.Count > MaxNameServers)
            report?.Invoke($"capture-agent: warning: only the first {MaxNameServers} of {dns.Count} name servers are used");
        if (!string.IsNullOrEmpty(resolvConf) && (dnsText.Count > 0 || domain is not null))
            WriteResolvConf(resolvConf, dnsText, domain, $"{(dhcp ? "dhcp" : "static")} on {ifname}");

        return new NetworkLease(ifname, Ipv4.Format(address), prefix, gateway == 0 ? null : Ipv4.Format(gateway), dnsText, dhcp ? "dhcp" : "static")
        {
            Mac = macText,
            Server = server,
            LeaseTime = leaseTime,
            Domain = domain,
        };
    }

    /// <summary>
    /// "ADDR/PREFIX [via GATEWAY]" ("10.0.2.15/24 via 10.0.2.2"); the prefix may also be a dotted mask.
    /// A gateway outside the subnet is allowed (a host route reaches it).
    /// </summary>
    public static bool TryParseStatic(string text, out StaticAddress? value, out string? error)
    {
        value = null;
        error = null;
        var words = (text ?? "").Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length is not (1 or 3) || words.Length == 3 && words[1] != "via")
        {
            error = "expected ADDR/PREFIX [via GATEWAY], e.g. 10.0.2.15/24 via 10.0.2.2";
            return false;
        }
        int slash = words[0].IndexOf('/');
        if (slash < 0)
        {
            error = $"{words[0]}: missing /PREFIX (e.g. {words[0]}/24)";
            return false;
        }
        string addrText = words[0][..slash], prefixText = words[0][(slash + 1)..];
        if (!Ipv4.TryParse(addrText, out uint address))
        {
            error = $"'{addrText}' is not an IPv4 address";
            return false;
        }
        if (Ipv4.NotAHostAddress(address) is { } why)
        {
            error = $"{addrText}: {why}";
            return false;
        }
        int prefix;
        if (Ipv4.TryParse(prefixText, out uint mask)) prefix = Ipv4.PrefixOf(mask);
        else if (prefixText.Length is 1 or 2 && prefixText.All(char.IsAsciiDigit)) prefix = int.Parse(prefixText, System.Globalization.CultureInfo.InvariantCulture);
        else prefix = -1;
        if (prefix is < 1 or > 32)
        {
            error = $"'/{prefixText}' is not a prefix length 1-32 or a contiguous netmask";
            return false;
        }
        uint hostPart = address & ~Ipv4.MaskOf(prefix);
        if (prefix <= 30 && (hostPart == 0 || hostPart == ~Ipv4.MaskOf(prefix)))
        {
            error = $"{addrText}/{prefix} is the subnet's {(hostPart == 0 ? "network" : "broadcast")} address";
            return false;
        }
        string? gatewayText = null;
        if (words.Length == 3)
        {
            if (!Ipv4.TryParse(words[2], out uint gateway) || Ipv4.NotAHostAddress(gateway) is not null)
            {
                error = $"gateway '{words[2]}' is not a unicast IPv4 address";
                return false;
            }
            if (gateway == address)
            {
                error = $"gateway {words[2]} is the address itself";
                return false;
            }
            gatewayText = Ipv4.Format(gateway);
        }
        value = new StaticAddress(Ipv4.Format(address), prefix, gatewayText);
        return true;
    }

    /// <summary>
    /// The loadable kernel modules a NIC needs, from /sys/class/net/IF/device up through its parents
    /// (eth0: virtio_net, then virtio_pci), lowest level first; drivers built into the running kernel are
    /// left out, as for block devices. "auto" and a MAC are resolved as <see cref="Configure"/> would.
    /// </summary>
    public static IReadOnlyList<string> NicModules(string ifname, string sysRoot = "/sys") => NicModuleChain(ifname, sysRoot).Modules;

    /// <summary><see cref="NicModules"/> with every driver met and notes for the user.</summary>
    public static ModuleChain NicModuleChain(string ifname, string sysRoot = "/sys")
    {
        var all = NetInterfaces.List(sysRoot);
        NetInterface nic = ifname == "auto"
            ? NetInterfaces.AutoCandidates(all).OrderByDescending(n => NetInterfaces.Carrier(n.Name, sysRoot) == true).FirstOrDefault()
              ?? throw new IOException($"no physical Ethernet interface in {Path.Combine(sysRoot, "class", "net")}")
            : NetInterfaces.Match(all, ifname) ?? throw new IOException($"no network interface {ifname} in {Path.Combine(sysRoot, "class", "net")}");
        var modules = new List<string>();
        var levels = new List<DriverLevel>();
        var notes = new List<string>();
        string sysReal = LinkSafePath.Resolve(sysRoot, out _) ?? throw new IOException($"{sysRoot} cannot be read");
        string devicesRoot = Path.Combine(sysReal, "devices");
        string? device = LinkSafePath.Resolve(Path.Combine(sysRoot, "class", "net", nic.Name, "device"), out _);
        if (!nic.Physical || device is null)
        {
            notes.Add($"{nic.Name} is a virtual interface: the capture kernel configures a NIC, name it (or its MAC) instead");
            return new ModuleChain(modules, levels, notes);
        }
        for (string? level = device;
             level is not null && LinkSafePath.IsInside(level, devicesRoot) && level.Length > devicesRoot.Length;
             level = Path.GetDirectoryName(level))
        {
            string? driver = SysfsAttribute.LinkName(Path.Combine(level, "driver"));
            if (driver is null) continue;
            string? module = SysfsAttribute.LinkName(Path.Combine(level, "driver", "module"));
            // A module link only exists for a loaded module: no link means built into the running kernel.
            bool builtIn = module is null || Directory.Exists(Path.Combine(sysRoot, "module", module)) && !File.Exists(Path.Combine(sysRoot, "module", module, "initstate"));
            string? name = module is null ? null : BlockDeviceModules.Normalize(module);
            levels.Add(new DriverLevel(level[(devicesRoot.Length + 1)..], driver, name, builtIn));
            if (name is not null && !builtIn && !modules.Contains(name)) modules.Add(name);
        }
        if (nic.Wireless) notes.Add($"{nic.Name} is wireless: the capture kernel cannot join a Wi-Fi network");
        return new ModuleChain(modules, levels, notes);
    }

    /// <summary>Writes resolv.conf through a new file renamed over the old one: a planted symlink is replaced, never followed.</summary>
    public static void WriteResolvConf(string path, IReadOnlyList<string> nameServers, string? domain, string origin)
    {
        var text = new System.Text.StringBuilder($"# capture-agent net ({origin})\n");
        if (domain is not null) text.Append("search ").Append(domain).Append('\n');
        foreach (var ns in nameServers) text.Append("nameserver ").Append(ns).Append('\n');
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? "/";
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var f = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            }))
            {
                f.Write(System.Text.Encoding.ASCII.GetBytes(text.ToString()));
                f.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw new IOException($"writing {full}: {e.Message}", e);
        }
    }

    /// <summary>Waits for the interface the spec names; "auto" brings every candidate up to see which has carrier.</summary>
    private static string SelectInterface(string spec, LinkControl link, Stopwatch clock, TimeSpan timeout, Action<string>? report, string sysRoot)
    {
        if (spec.Length == 0 || spec.Equals("auto", StringComparison.OrdinalIgnoreCase)) spec = "auto";
        IReadOnlyList<NetInterface> all = [];
        if (spec != "auto")
        {
            NetInterface? found = null;
            if (!WaitFor(() => (found = NetInterfaces.Match(all = NetInterfaces.List(sysRoot), spec)) is not null, clock, timeout))
                throw new IOException(NetInterfaces.NotFound(spec, all, clock.Elapsed));
            if (found!.Name != spec) report?.Invoke($"capture-agent: {spec} is {found.Name}");
            return found.Name;
        }

        // auto: the first NIC that shows carrier; each needs to be up before the kernel reports carrier.
        var broughtUp = new List<string>();
        var reported = new HashSet<string>(StringComparer.Ordinal);
        string? chosen = null;
        IReadOnlyList<NetInterface> candidates = [];
        bool any = WaitFor(() =>
        {
            candidates = NetInterfaces.AutoCandidates(all = NetInterfaces.List(sysRoot));
            foreach (var c in candidates)
            {
                try { if (link.Up(c.Name)) broughtUp.Add(c.Name); }
                catch (IOException e) { ReportOnce(e.Message); }
            }
            chosen = candidates.FirstOrDefault(c => NetInterfaces.Carrier(c.Name, sysRoot) == true)?.Name;
            return chosen is not null;
        }, clock, timeout);
        if (!any)
        {
            if (candidates.Count == 0) throw new IOException(NetInterfaces.NotFound("auto", all, clock.Elapsed));
            chosen = candidates[0].Name;   // no carrier anywhere: the caller reports it for this one
        }
        foreach (var other in broughtUp.Where(n => n != chosen))
        {
            try { link.Down(other); } catch (IOException) { }
        }
        report?.Invoke($"capture-agent: network interface {chosen} (auto, of {string.Join(", ", candidates.Select(c => c.Name))})");
        return chosen!;

        void ReportOnce(string message)
        {
            if (reported.Add(message)) report?.Invoke("capture-agent: warning: " + message);
        }
    }

    private static bool WaitFor(Func<bool> condition, Stopwatch clock, TimeSpan timeout)
    {
        while (true)
        {
            if (condition()) return true;
            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero) return false;
            Thread.Sleep(left < Poll ? left : Poll);
        }
    }
}

using CaptureAgent.Targets;

namespace CaptureAgent.Net;

/// <summary>One entry of /sys/class/net.</summary>
/// <param name="Physical">It has a device link (a NIC bound to a bus), unlike lo, veth, bridges, bonds, tunnels.</param>
/// <param name="Type">ARPHRD_* from the type attribute: 1 is Ethernet, the only kind DHCP here speaks.</param>
public sealed record NetInterface(string Name, int IfIndex, string? Mac, bool Physical, bool Wireless, int Type)
{
    public bool IsEthernet => Type == 1;
}

/// <summary>Listing network interfaces and choosing one by "auto", name or MAC (the /sys/class/net view, no netlink).</summary>
public static class NetInterfaces
{
    public static IReadOnlyList<NetInterface> List(string sysRoot = "/sys")
    {
        string classDir = Path.Combine(sysRoot, "class", "net");
        var result = new List<NetInterface>();
        foreach (var name in SysfsAttribute.List(classDir, ""))
        {
            string dir = Path.Combine(classDir, name);
            // The device link is what tells a NIC from a software interface.
            bool physical = Directory.Exists(Path.Combine(dir, "device"));
            bool wireless = Directory.Exists(Path.Combine(dir, "wireless")) || Directory.Exists(Path.Combine(dir, "phy80211"));
            int.TryParse(SysfsAttribute.Read(dir, "ifindex"), out int index);
            int type = int.TryParse(SysfsAttribute.Read(dir, "type"), out int t) ? t : name == "lo" ? 772 : 1;
            result.Add(new NetInterface(name, index, NormalizeMac(SysfsAttribute.Read(dir, "address")), physical, wireless, type));
        }
        result.Sort((a, b) => a.IfIndex != b.IfIndex ? a.IfIndex.CompareTo(b.IfIndex) : string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    /// <summary>"52:54:00:12:34:56" or with '-' separators, any case.</summary>
    public static bool IsMac(string spec) => NormalizeMac(spec) is not null;

    /// <summary>aa:bb:cc:dd:ee:ff (lower case) for a six-byte MAC in ':' or '-' notation, else null.</summary>
    public static string? NormalizeMac(string? text)
    {
        if (text is null) return null;
        var parts = text.Trim().Split(text.Contains('-') ? '-' : ':');
        if (parts.Length != 6 || parts.Any(p => p.Length != 2 || !p.All(char.IsAsciiHexDigit))) return null;
        return string.Join(':', parts).ToLowerInvariant();
    }

    public static string FormatMac(ReadOnlySpan<byte> mac)
    {
        var text = new System.Text.StringBuilder(mac.Length * 3);
        foreach (byte b in mac) text.Append(text.Length == 0 ? "" : ":").Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        return text.ToString();
    }

    /// <summary>Candidates for "auto": physical wired Ethernet NICs, in probe (ifindex) order.</summary>
    public static IReadOnlyList<NetInterface> AutoCandidates(IReadOnlyList<NetInterface> all) =>
        all.Where(i => i.Physical && i.IsEthernet && !i.Wireless && i.Name != "lo").ToList();

    /// <summary>
    /// The interface a name or MAC spec names, or null. A MAC can be shared (a bridge or bond takes its
    /// first port's): the physical NIC wins. Any explicitly named interface is accepted, virtual or not.
    /// </summary>
    public static NetInterface? Match(IReadOnlyList<NetInterface> all, string spec)
    {
        if (NormalizeMac(spec) is { } mac)
            return all.Where(i => i.Mac == mac).OrderByDescending(i => i.Physical).FirstOrDefault();
        return all.FirstOrDefault(i => i.Name == spec);
    }

    /// <summary>1 carrier, 0 no carrier, null unknown (the interface is down: the kernel refuses to say).</summary>
    public static bool? Carrier(string name, string sysRoot = "/sys") =>
        SysfsAttribute.Read(Path.Combine(sysRoot, "class", "net", name), "carrier") switch
        {
            "1" => true,
            "0" => false,
            _ => null,
        };

    /// <summary>Why nothing matched, in one line, with what there is.</summary>
    public static string NotFound(string spec, IReadOnlyList<NetInterface> all, TimeSpan waited)
    {
        var others = all.Where(i => i.Name != "lo").ToList();
        string seen = others.Count == 0 ? "none but lo"
            : string.Join(", ", others.Select(i => i.Name + (i.Mac is null ? "" : $" {i.Mac}") + (i.Physical ? "" : " (virtual)")));
        string what = spec == "auto" ? "no physical Ethernet interface" : $"no network interface {spec}";
        // A first-kernel name (ens3, enp0s3) is udev's doing; the capture kernel's NICs are eth0...
        string hint = spec != "auto" && !IsMac(spec) && AutoCandidates(all).Count > 0
            ? "the capture kernel has no udev, NICs keep kernel names (eth0...): use auto or the MAC"
            : "is the NIC driver in the image?";
        return $"{what} after {Math.Round(waited.TotalSeconds)} s ({hint}); interfaces: {seen}";
    }
}

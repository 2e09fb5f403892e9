using CaptureAgent.Native;

namespace CaptureAgent.Net;

/// <summary>
/// Interface and route changes through the classic ioctls on an AF_INET datagram socket, the way
/// ifconfig and route did: small, and in every kernel with IPv4. Failures are IOExceptions naming
/// the interface, the step and the errno.
/// </summary>
public sealed class LinkControl : IDisposable
{
    private readonly int _fd = Libc.InetDatagramSocket();

    public void Dispose() => Libc.Close(_fd);

    public bool IsUp(string ifname) =>
        Libc.GetInterfaceFlags(_fd, ifname, out short flags) == 0 && (flags & Libc.IFF_UP) != 0;

    /// <summary>Sets IFF_UP (a no-op if it is up already). Returns false if it was up before.</summary>
    public bool Up(string ifname) => SetUp(ifname, true);

    public bool Down(string ifname) => SetUp(ifname, false);

    private bool SetUp(string ifname, bool up)
    {
        Check(Libc.GetInterfaceFlags(_fd, ifname, out short flags), ifname, "reading the flags of");
        if (((flags & Libc.IFF_UP) != 0) == up) return false;
        short wanted = up ? (short)(flags | Libc.IFF_UP) : (short)(flags & ~Libc.IFF_UP);
        Check(Libc.SetInterfaceFlags(_fd, ifname, wanted), ifname, up ? "bringing up" : "bringing down");
        return true;
    }

    /// <summary>The MAC (SIOCGIFHWADDR) and ARPHRD type.</summary>
    public byte[] HardwareAddress(string ifname, out ushort linkType)
    {
        var mac = new byte[6];
        Check(Libc.GetHardwareAddress(_fd, ifname, mac, out linkType), ifname, "reading the hardware address of");
        return mac;
    }

    /// <summary>The primary IPv4 address, or null when there is none.</summary>
    public uint? Address(string ifname) => Libc.GetInterfaceAddress(_fd, ifname, out uint a) == 0 ? a : null;

    /// <summary>Address then netmask: the kernel sets a classful mask and broadcast with the address, the mask fixes both and the prefix route.</summary>
    public void SetAddress(string ifname, uint address, int prefixLength)
    {
        Check(Libc.SetInterfaceAddress(_fd, ifname, Libc.SIOCSIFADDR, address), ifname, $"setting {Ipv4.Format(address)} on");
        Check(Libc.SetInterfaceAddress(_fd, ifname, Libc.SIOCSIFNETMASK, Ipv4.MaskOf(prefixLength)), ifname, $"setting /{prefixLength} on");
        // The kernel keeps the classful broadcast for /31 and /32 (10.255.255.255 on a /32): set it, or none.
        uint broadcast = prefixLength < 31 ? address | ~Ipv4.MaskOf(prefixLength) : 0;
        Libc.SetInterfaceAddress(_fd, ifname, Libc.SIOCSIFBRDADDR, broadcast);   // cosmetic: ignore a refusal
    }

    /// <summary>
    /// The default route via <paramref name="gateway"/> on <paramref name="ifname"/>, replacing an
    /// existing default route. A gateway outside the subnet (a /32 lease) first gets a host route, as
    /// the kernel refuses a gateway it cannot reach directly.
    /// </summary>
    public void SetDefaultRoute(string ifname, uint gateway, uint address, int prefixLength)
    {
        if (!Ipv4.SameSubnet(address, gateway, prefixLength))
        {
            int h = Libc.ChangeRoute(_fd, Libc.SIOCADDRT, gateway, 0, Ipv4.Broadcast, Libc.RTF_UP | Libc.RTF_HOST, ifname);
            if (h is not (0 or Libc.EEXIST)) Check(h, ifname, $"adding the host route to gateway {Ipv4.Format(gateway)} on");
        }
        int e = AddDefault(ifname, gateway);
        if (e == Libc.EEXIST)
        {
            // Someone (an earlier run) left a default route: ours replaces it.
            Libc.ChangeRoute(_fd, Libc.SIOCDELRT, 0, 0, 0, 0, null);
            e = AddDefault(ifname, gateway);
        }
        Check(e, ifname, $"adding the default route via {Ipv4.Format(gateway)} on");
    }

    private int AddDefault(string ifname, uint gateway) =>
        Libc.ChangeRoute(_fd, Libc.SIOCADDRT, 0, gateway, 0, Libc.RTF_UP | Libc.RTF_GATEWAY, ifname);

    private static void Check(int errno, string ifname, string what)
    {
        if (errno == 0) return;
        string hint = errno switch
        {
            Libc.EPERM or Libc.EACCES => " (needs CAP_NET_ADMIN: run as root)",
            Libc.ENODEV or Libc.NetErrno.ENXIO => " (no such interface)",
            Libc.NetErrno.ENETUNREACH => " (gateway not reachable on this link)",
            _ => "",
        };
        throw new IOException($"{what} {ifname}: {Libc.ErrnoName(errno)}{hint}", errno);
    }
}

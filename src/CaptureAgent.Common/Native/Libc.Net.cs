using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace CaptureAgent.Native;

/// <summary>
/// IPv4 networking without ip(8): interface ioctls (flags, address, netmask, hardware address,
/// routes) and the UDP socket calls of the DHCP client. x86_64 Linux layouts. Addresses are passed
/// as host-order uints (10.0.2.15 = 0x0A00020F) and turned into network order here.
/// </summary>
internal static partial class Libc
{
    public const int AF_INET = 2, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000, IPPROTO_UDP = 17;
    public const int SOL_SOCKET = 1, SO_REUSEADDR = 2, SO_BROADCAST = 6, SO_BINDTODEVICE = 25;
    /// <summary>errno values only the network code tests for (nested so other Libc parts can add their own).</summary>
    public static class NetErrno
    {
        public const int EINTR = 4, ENXIO = 6, EAGAIN = 11, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETDOWN = 100,
            ENETUNREACH = 101, EAFNOSUPPORT = 97;
    }
    public const short IFF_UP = 0x1, IFF_LOOPBACK = 0x8, IFF_RUNNING = 0x40;
    public const ushort RTF_UP = 0x1, RTF_GATEWAY = 0x2, RTF_HOST = 0x4;

    public const uint SIOCADDRT = 0x890B, SIOCDELRT = 0x890C, SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914,
        SIOCGIFADDR = 0x8915, SIOCSIFADDR = 0x8916, SIOCSIFBRDADDR = 0x891A, SIOCSIFNETMASK = 0x891C, SIOCGIFHWADDR = 0x8927;

    private const int IfNameSize = 16;   // IFNAMSIZ, with the NUL
    private const int IfreqSize = 40;    // name + the largest union member (struct ifmap)
    private const int SockaddrInSize = 16;
    private const int RtentrySize = 120;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int SocketRaw(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int IoctlRaw(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static unsafe partial int SetSockOptRaw(int fd, int level, int name, void* value, uint length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static unsafe partial int BindRaw(int fd, void* address, uint length);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    private static unsafe partial nint SendToRaw(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", EntryPoint = "recvfrom", SetLastError = true)]
    private static unsafe partial nint RecvFromRaw(int fd, void* buffer, nuint length, int flags, void* address, uint* addressLength);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int PollRaw(void* fds, nuint count, int timeoutMs);

    /// <summary>An AF_INET datagram socket (close-on-exec), or an IOException naming why not.</summary>
    public static int InetDatagramSocket()
    {
        int fd = SocketRaw(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            int e = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open an IPv4 socket: {ErrnoName(e)}{(e == NetErrno.EAFNOSUPPORT ? " (kernel without IPv4?)" : "")}", e);
        }
        return fd;
    }

    private static void WriteIfName(Span<byte> buffer, string ifname)
    {
        int n = Encoding.ASCII.GetByteCount(ifname);
        if (n == 0 || n >= IfNameSize) throw new IOException($"interface name '{ifname}' must be 1 to {IfNameSize - 1} characters");
        Encoding.ASCII.GetBytes(ifname, buffer);
    }

    private static void WriteSockaddrIn(Span<byte> buffer, uint address, ushort port = 0)
    {
        buffer[..SockaddrInSize].Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, AF_INET);   // sa_family is host order
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], port);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], address);
    }

    private static unsafe int Ioctl(int fd, uint request, Span<byte> arg)
    {
        fixed (byte* p = arg)
            return IoctlRaw(fd, request, p) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>SIOCGIFFLAGS; returns 0 or the errno.</summary>
    public static int GetInterfaceFlags(int fd, string ifname, out short flags)
    {
        Span<byte> ifr = stackalloc byte[IfreqSize];
        ifr.Clear();
        WriteIfName(ifr, ifname);
        int e = Ioctl(fd, SIOCGIFFLAGS, ifr);
        flags = e == 0 ? BinaryPrimitives.ReadInt16LittleEndian(ifr[IfNameSize..]) : (short)0;
        return e;
    }

    /// <summary>SIOCSIFFLAGS; returns 0 or the errno.</summary>
    public static int SetInterfaceFlags(int fd, string ifname, short flags)
    {
        Span<byte> ifr = stackalloc byte[IfreqSize];
        ifr.Clear();
        WriteIfName(ifr, ifname);
        BinaryPrimitives.WriteInt16LittleEndian(ifr[IfNameSize..], flags);
        return Ioctl(fd, SIOCSIFFLAGS, ifr);
    }

    /// <summary>SIOCSIFADDR, SIOCSIFNETMASK... (a struct sockaddr_in in the ifreq); returns 0 or the errno.</summary>
    public static int SetInterfaceAddress(int fd, string ifname, uint request, uint address)
    {
        Span<byte> ifr = stackalloc byte[IfreqSize];
        ifr.Clear();
        WriteIfName(ifr, ifname);
        WriteSockaddrIn(ifr[IfNameSize..], address);
        return Ioctl(fd, request, ifr);
    }

    /// <summary>SIOCGIFADDR: the interface's primary IPv4 address; returns 0 or the errno (EADDRNOTAVAIL: none).</summary>
    public static int GetInterfaceAddress(int fd, string ifname, out uint address)
    {
        Span<byte> ifr = stackalloc byte[IfreqSize];
        ifr.Clear();
        WriteIfName(ifr, ifname);
        int e = Ioctl(fd, SIOCGIFADDR, ifr);
        address = e == 0 ? BinaryPrimitives.ReadUInt32BigEndian(ifr[(IfNameSize + 4)..]) : 0;
        return e;
    }

    /// <summary>SIOCGIFHWADDR: the link-layer type (ARPHRD_*) and the first six address bytes; returns 0 or the errno.</summary>
    public static int GetHardwareAddress(int fd, string ifname, Span<byte> mac, out ushort linkType)
    {
        Span<byte> ifr = stackalloc byte[IfreqSize];
        ifr.Clear();
        WriteIfName(ifr, ifname);
        int e = Ioctl(fd, SIOCGIFHWADDR, ifr);
        linkType = e == 0 ? BinaryPrimitives.ReadUInt16LittleEndian(ifr[IfNameSize..]) : (ushort)0;
        if (e == 0) ifr.Slice(IfNameSize + 2, 6).CopyTo(mac);
        return e;
    }

    /// <summary>SIOCADDRT or SIOCDELRT with a struct rtentry; <paramref name="device"/> pins the route to an interface. Returns 0 or the errno.</summary>
    public static unsafe int ChangeRoute(int fd, uint request, uint destination, uint gateway, uint genmask, ushort flags, string? device)
    {
        Span<byte> rt = stackalloc byte[RtentrySize];
        rt.Clear();
        WriteSockaddrIn(rt[8..], destination);    // rt_dst
        WriteSockaddrIn(rt[24..], gateway);       // rt_gateway
        WriteSockaddrIn(rt[40..], genmask);       // rt_genmask
        BinaryPrimitives.WriteUInt16LittleEndian(rt[56..], flags);   // rt_flags
        byte[] name = new byte[IfNameSize];
        if (device is not null) WriteIfName(name, device);
        fixed (byte* namePtr = name)
        {
            // rt_dev is a char* the kernel copies from user memory.
            BinaryPrimitives.WriteInt64LittleEndian(rt[88..], device is null ? 0 : (long)namePtr);
            return Ioctl(fd, request, rt);
        }
    }

    /// <summary>setsockopt with an int value; returns 0 or the errno.</summary>
    public static unsafe int SetSocketOption(int fd, int level, int name, int value) =>
        SetSockOptRaw(fd, level, name, &value, sizeof(int)) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>SO_BINDTODEVICE: the socket sends and receives on this interface only. Returns 0 or the errno.</summary>
    public static unsafe int BindToDevice(int fd, string ifname)
    {
        Span<byte> name = stackalloc byte[IfNameSize];
        name.Clear();
        WriteIfName(name, ifname);
        fixed (byte* p = name)
            return SetSockOptRaw(fd, SOL_SOCKET, SO_BINDTODEVICE, p, IfNameSize) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>bind(2) to an IPv4 address and port; returns 0 or the errno.</summary>
    public static unsafe int BindInet(int fd, uint address, ushort port)
    {
        Span<byte> sa = stackalloc byte[SockaddrInSize];
        WriteSockaddrIn(sa, address, port);
        fixed (byte* p = sa)
            return BindRaw(fd, p, SockaddrInSize) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>sendto(2) one datagram; returns 0 or the errno.</summary>
    public static unsafe int SendTo(int fd, ReadOnlySpan<byte> data, uint address, ushort port)
    {
        Span<byte> sa = stackalloc byte[SockaddrInSize];
        WriteSockaddrIn(sa, address, port);
        fixed (byte* d = data)
        fixed (byte* p = sa)
        {
            nint n = SendToRaw(fd, d, (nuint)data.Length, 0, p, SockaddrInSize);
            if (n < 0) return Marshal.GetLastPInvokeError();
            return n == data.Length ? 0 : NetErrno.EAGAIN;
        }
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a datagram: 1 readable, 0 timed out, or -errno.</summary>
    public static unsafe int PollReadable(int fd, int timeoutMs)
    {
        // struct pollfd { int fd; short events; short revents; }
        Span<byte> pfd = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(pfd, fd);
        BinaryPrimitives.WriteInt16LittleEndian(pfd[4..], 1 /* POLLIN */);
        BinaryPrimitives.WriteInt16LittleEndian(pfd[6..], 0);
        fixed (byte* p = pfd)
        {
            int r = PollRaw(p, 1, timeoutMs);
            return r < 0 ? -Marshal.GetLastPInvokeError() : r > 0 ? 1 : 0;
        }
    }

    /// <summary>recvfrom(2) without blocking: the datagram length (truncated to the buffer), or -errno.</summary>
    public static unsafe int ReceiveFrom(int fd, Span<byte> buffer, out uint sourceAddress, out ushort sourcePort)
    {
        Span<byte> sa = stackalloc byte[SockaddrInSize];
        sa.Clear();
        uint length = SockaddrInSize;
        nint n;
        fixed (byte* b = buffer)
        fixed (byte* p = sa)
            n = RecvFromRaw(fd, b, (nuint)buffer.Length, 0x40 /* MSG_DONTWAIT */, p, &length);
        sourceAddress = BinaryPrimitives.ReadUInt32BigEndian(sa[4..]);
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(sa[2..]);
        return n < 0 ? -Marshal.GetLastPInvokeError() : (int)n;
    }
}

using System.Diagnostics;
using CaptureAgent.Native;

namespace CaptureAgent.Net;

/// <summary>
/// A DHCPv4 client for one lease: DISCOVER, OFFER, REQUEST, ACK (RFC 2131 SELECTING → BOUND),
/// over a UDP socket on 0.0.0.0:68 tied to the interface with SO_BINDTODEVICE. The broadcast flag
/// asks the server to broadcast its replies, which an address-less interface still receives.
/// Retransmits with doubling intervals (1, 2, 4, 8, 8... s, jittered), starts over on a NAK, gives
/// up at the deadline. The lease is not renewed: a capture is over long before any sane lease ends.
/// </summary>
public sealed class DhcpClient
{
    private const int MaxRequestTries = 4;
    private static readonly TimeSpan FirstInterval = TimeSpan.FromSeconds(1), MaxInterval = TimeSpan.FromSeconds(8);

    private readonly string _ifname;
    private readonly byte[] _mac;
    private readonly Action<string>? _report;
    private readonly HashSet<string> _reported = new(StringComparer.Ordinal);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly byte[] _receive = new byte[4096];   // bounded: bigger datagrams are cut and then fail to parse

    public DhcpClient(string ifname, byte[] mac, Action<string>? report)
    {
        _ifname = ifname;
        _mac = mac;
        _report = report;
    }

    /// <summary>The server's ACK, or an IOException ("no DHCP offer on eth0 after 30 s").</summary>
    public DhcpMessage Acquire(TimeSpan timeout)
    {
        int fd = OpenSocket();
        try
        {
            DhcpMessage? lastOffer = null;
            int naks = 0;
            while (_clock.Elapsed < timeout)
            {
                uint xid = (uint)Random.Shared.NextInt64(1, uint.MaxValue);
                var offer = Exchange(fd, xid, timeout, int.MaxValue, DhcpMessageType.Discover,
                    () => DhcpPacket.BuildDiscover(xid, _mac, Seconds()),
                    m => m.MessageType == DhcpMessageType.Offer && Ipv4.NotAHostAddress(m.YourAddress) is null && m.ServerIdentifier is not null);
                if (offer is null) break;
                lastOffer = offer;
                uint server = offer.ServerIdentifier!.Value;
                _report?.Invoke($"capture-agent: DHCP offer of {Ipv4.Format(offer.YourAddress)} from {Ipv4.Format(server)} on {_ifname}");
                var reply = Exchange(fd, xid, timeout, MaxRequestTries, DhcpMessageType.Request,
                    () => DhcpPacket.BuildRequest(xid, _mac, Seconds(), offer.YourAddress, server),
                    m => m.MessageType is DhcpMessageType.Ack or DhcpMessageType.Nak
                         && (m.ServerIdentifier is null || m.ServerIdentifier == server)
                         && (m.MessageType == DhcpMessageType.Nak || m.YourAddress != 0));
                if (reply is null) continue;   // no answer to the REQUEST: start over with a new DISCOVER
                if (reply.MessageType == DhcpMessageType.Ack) return reply;
                naks++;
                _report?.Invoke($"capture-agent: DHCP NAK from {Ipv4.Format(server)} on {_ifname}" +
                                (string.IsNullOrEmpty(reply.ServerMessage) ? "" : $": {Printable(reply.ServerMessage)}") + "; starting over");
                // A server that NAKs its own offers must not turn this into a busy loop.
                Sleep(TimeSpan.FromSeconds(Math.Min(naks, 4)), timeout);
            }
            string waited = $"after {Math.Round(_clock.Elapsed.TotalSeconds)} s";
            throw new IOException(lastOffer is null
                ? $"no DHCP offer on {_ifname} {waited}"
                : $"DHCP offer of {Ipv4.Format(lastOffer.YourAddress)} on {_ifname} was never acknowledged {waited}");
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    private int OpenSocket()
    {
        int fd = Libc.InetDatagramSocket();
        try
        {
            Require(Libc.SetSocketOption(fd, Libc.SOL_SOCKET, Libc.SO_REUSEADDR, 1), "SO_REUSEADDR");
            Require(Libc.SetSocketOption(fd, Libc.SOL_SOCKET, Libc.SO_BROADCAST, 1), "SO_BROADCAST");
            Require(Libc.BindToDevice(fd, _ifname), $"SO_BINDTODEVICE {_ifname}");
            int e = Libc.BindInet(fd, 0, DhcpPacket.ClientPort);
            if (e != 0)
                throw new IOException($"binding the DHCP client to port 68 on {_ifname}: {Libc.ErrnoName(e)}" +
                                      (e == Libc.NetErrno.EADDRINUSE ? " (another DHCP client is running)" : ""), e);
            return fd;
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }

        void Require(int errno, string what)
        {
            if (errno != 0) throw new IOException($"DHCP socket on {_ifname}: {what}: {Libc.ErrnoName(errno)}", errno);
        }
    }

    /// <summary>Sends a message and retransmits it until a reply <paramref name="accept"/> takes, the tries run out or the deadline passes.</summary>
    private DhcpMessage? Exchange(int fd, uint xid, TimeSpan deadline, int tries, DhcpMessageType kind, Func<byte[]> build, Func<DhcpMessage, bool> accept)
    {
        var interval = FirstInterval;
        for (int attempt = 0; attempt < tries && _clock.Elapsed < deadline; attempt++)
        {
            int e = Libc.SendTo(fd, build(), Ipv4.Broadcast, DhcpPacket.ServerPort);
            if (e != 0) ReportOnce($"sending DHCP {kind} on {_ifname}: {Libc.ErrnoName(e)}");
            // ±12.5% jitter so machines rebooting together do not stay in step.
            var wait = interval * (0.875 + Random.Shared.NextDouble() / 4);
            var until = Min(_clock.Elapsed + wait, deadline);
            if (Receive(fd, xid, until, accept) is { } reply) return reply;
            interval = Min(interval * 2, MaxInterval);
        }
        return null;
    }

    private DhcpMessage? Receive(int fd, uint xid, TimeSpan until, Func<DhcpMessage, bool> accept)
    {
        while (true)
        {
            var left = until - _clock.Elapsed;
            if (left <= TimeSpan.Zero) return null;
            int ready = Libc.PollReadable(fd, (int)Math.Ceiling(left.TotalMilliseconds));
            if (ready == -Libc.NetErrno.EINTR || ready == 0) continue;
            if (ready < 0) throw new IOException($"waiting for DHCP replies on {_ifname}: {Libc.ErrnoName(-ready)}");
            int n = Libc.ReceiveFrom(fd, _receive, out uint source, out _);
            if (n < 0) continue;   // EAGAIN after a spurious wakeup
            DhcpMessage message;
            try { message = DhcpPacket.Parse(_receive.AsSpan(0, n)); }
            catch (DhcpFormatException e)
            {
                ReportOnce($"ignoring a malformed DHCP packet from {Ipv4.Format(source)} on {_ifname}: {e.Message}");
                continue;
            }
            // Other clients' traffic on the same segment is normal: match op, xid and our MAC.
            if (message.Op != 2 || message.TransactionId != xid || !message.ClientHardwareAddress.AsSpan().StartsWith(_mac)) continue;
            if (accept(message)) return message;
        }
    }

    private void Sleep(TimeSpan duration, TimeSpan deadline)
    {
        var d = Min(duration, deadline - _clock.Elapsed);
        if (d > TimeSpan.Zero) Thread.Sleep(d);
    }

    private ushort Seconds() => (ushort)Math.Min(_clock.Elapsed.TotalSeconds, ushort.MaxValue);

    private void ReportOnce(string message)
    {
        if (_reported.Add(message)) _report?.Invoke("capture-agent: " + message);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static string Printable(string text) => new(text.Take(200).Select(c => c is >= ' ' and < '\x7f' ? c : '?').ToArray());
}

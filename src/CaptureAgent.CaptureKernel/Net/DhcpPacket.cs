using System.Buffers.Binary;
using System.Text;

namespace CaptureAgent.Net;

public enum DhcpMessageType : byte
{
    Discover = 1, Offer = 2, Request = 3, Decline = 4, Ack = 5, Nak = 6, Release = 7, Inform = 8,
}

/// <summary>A DHCP packet that breaks the format: the reason in one line.</summary>
public sealed class DhcpFormatException(string message) : FormatException(message);

/// <summary>A parsed DHCP reply (or request): the BOOTP header and the options this client uses, validated.</summary>
public sealed class DhcpMessage
{
    public byte Op { get; init; }
    public uint TransactionId { get; init; }
    public ushort Flags { get; init; }
    public uint ClientAddress { get; init; }
    public uint YourAddress { get; init; }
    public uint ServerAddress { get; init; }
    public byte[] ClientHardwareAddress { get; init; } = [];
    /// <summary>Every option, same-code occurrences concatenated (RFC 3396), pad and end left out.</summary>
    public IReadOnlyDictionary<byte, byte[]> Options { get; init; } = new Dictionary<byte, byte[]>();

    public DhcpMessageType? MessageType { get; init; }
    public uint? SubnetMask { get; init; }
    public IReadOnlyList<uint> Routers { get; init; } = [];
    public IReadOnlyList<uint> DnsServers { get; init; } = [];
    public uint? LeaseSeconds { get; init; }
    public uint? ServerIdentifier { get; init; }
    /// <summary>Option 15 as sent (trailing NULs removed); check it with <see cref="DhcpPacket.IsSafeDomain"/> before use.</summary>
    public string? DomainName { get; init; }
    /// <summary>Option 56, the server's text with a NAK.</summary>
    public string? ServerMessage { get; init; }
}

/// <summary>
/// DHCPv4 (RFC 2131/2132) on the wire: the 236-byte BOOTP header, the magic cookie and the options.
/// Replies come from the network, so parsing checks every length before reading it and says in one
/// line what was wrong.
/// </summary>
public static class DhcpPacket
{
    public const ushort ServerPort = 67, ClientPort = 68;
    public const int HeaderLength = 236;
    public const int OptionsOffset = HeaderLength + 4;
    public const uint MagicCookie = 0x63825363;
    /// <summary>BOOTP's minimum message; some relays drop shorter ones.</summary>
    public const int MinimumLength = 300;
    public const ushort BroadcastFlag = 0x8000;
    /// <summary>What this client accepts (option 57): a whole Ethernet frame's IP payload.</summary>
    public const ushort MaxMessageSize = 1500;

    public const byte OptPad = 0, OptSubnetMask = 1, OptRouter = 3, OptDns = 6, OptDomainName = 15, OptRequestedAddress = 50,
        OptLeaseTime = 51, OptOverload = 52, OptMessageType = 53, OptServerId = 54, OptParameterList = 55,
        OptMessage = 56, OptMaxMessageSize = 57, OptClientId = 61, OptEnd = 255;

    private static readonly byte[] RequestedParameters = [OptSubnetMask, OptRouter, OptDns, OptDomainName, OptLeaseTime, OptServerId];

    /// <summary>DHCPDISCOVER, broadcast flag set so the offer comes back as broadcast (we have no address yet to take unicast).</summary>
    public static byte[] BuildDiscover(uint xid, ReadOnlySpan<byte> mac, ushort seconds) =>
        Build(DhcpMessageType.Discover, xid, mac, seconds, requestedAddress: 0, serverId: 0);

    /// <summary>DHCPREQUEST in the SELECTING state: the offered address (50) and the chosen server (54), ciaddr 0.</summary>
    public static byte[] BuildRequest(uint xid, ReadOnlySpan<byte> mac, ushort seconds, uint requestedAddress, uint serverId) =>
        Build(DhcpMessageType.Request, xid, mac, seconds, requestedAddress, serverId);

    private static byte[] Build(DhcpMessageType type, uint xid, ReadOnlySpan<byte> mac, ushort seconds, uint requestedAddress, uint serverId)
    {
        if (mac.Length != 6) throw new ArgumentException("an Ethernet MAC is 6 bytes", nameof(mac));
        var p = new byte[MinimumLength];   // zero: ciaddr, yiaddr, siaddr, giaddr, sname, file, and the padding
        p[0] = 1;          // BOOTREQUEST
        p[1] = 1;          // htype Ethernet
        p[2] = 6;          // hlen
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), xid);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(8), seconds);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), BroadcastFlag);
        mac.CopyTo(p.AsSpan(28));
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(HeaderLength), MagicCookie);
        int o = OptionsOffset;
        p[o++] = OptMessageType; p[o++] = 1; p[o++] = (byte)type;
        p[o++] = OptClientId; p[o++] = 7; p[o++] = 1; mac.CopyTo(p.AsSpan(o)); o += 6;
        if (requestedAddress != 0)
        {
            p[o++] = OptRequestedAddress; p[o++] = 4; BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(o), requestedAddress); o += 4;
        }
        if (serverId != 0)
        {
            p[o++] = OptServerId; p[o++] = 4; BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(o), serverId); o += 4;
        }
        p[o++] = OptMaxMessageSize; p[o++] = 2; BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(o), MaxMessageSize); o += 2;
        p[o++] = OptParameterList; p[o++] = (byte)RequestedParameters.Length;
        RequestedParameters.CopyTo(p, o); o += RequestedParameters.Length;
        p[o] = OptEnd;
        return p;
    }

    /// <summary>Parses and validates a packet; throws <see cref="DhcpFormatException"/> naming the first problem.</summary>
    public static DhcpMessage Parse(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < OptionsOffset)
            throw new DhcpFormatException($"DHCP packet of {packet.Length} bytes is shorter than the {OptionsOffset}-byte header");
        if (BinaryPrimitives.ReadUInt32BigEndian(packet[HeaderLength..]) != MagicCookie)
            throw new DhcpFormatException("no DHCP magic cookie (a plain BOOTP packet?)");
        byte hlen = packet[2];
        if (hlen > 16) throw new DhcpFormatException($"hardware address length {hlen} is more than 16");

        var options = new Dictionary<byte, byte[]>();
        ParseOptions(packet[OptionsOffset..], options, "options");
        // Option 52: the options went on into the file and/or sname fields (file first, RFC 2131 4.1).
        if (options.TryGetValue(OptOverload, out var overload))
        {
            if (overload.Length != 1 || overload[0] is < 1 or > 3)
                throw new DhcpFormatException($"option 52 (overload) must be one byte 1-3, got {Hex(overload)}");
            if ((overload[0] & 1) != 0) ParseOptions(packet.Slice(108, 128), options, "file field");
            if ((overload[0] & 2) != 0) ParseOptions(packet.Slice(44, 64), options, "sname field");
        }

        return new DhcpMessage
        {
            Op = packet[0],
            TransactionId = BinaryPrimitives.ReadUInt32BigEndian(packet[4..]),
            Flags = BinaryPrimitives.ReadUInt16BigEndian(packet[10..]),
            ClientAddress = BinaryPrimitives.ReadUInt32BigEndian(packet[12..]),
            YourAddress = BinaryPrimitives.ReadUInt32BigEndian(packet[16..]),
            ServerAddress = BinaryPrimitives.ReadUInt32BigEndian(packet[20..]),
            ClientHardwareAddress = packet.Slice(28, hlen).ToArray(),
            Options = options,
            MessageType = OneByte(options, OptMessageType, "message type") is { } t
                ? t is >= 1 and <= 8 ? (DhcpMessageType)t : throw new DhcpFormatException($"option 53 (message type) {t} is not a DHCP message type")
                : null,
            SubnetMask = Address(options, OptSubnetMask, "subnet mask") is { } mask
                ? Ipv4.PrefixOf(mask) >= 0 ? mask : throw new DhcpFormatException($"option 1 (subnet mask) {Ipv4.Format(mask)} is not a contiguous mask")
                : null,
            Routers = Addresses(options, OptRouter, "router"),
            DnsServers = Addresses(options, OptDns, "DNS server"),
            LeaseSeconds = options.TryGetValue(OptLeaseTime, out var lease)
                ? lease.Length == 4 ? BinaryPrimitives.ReadUInt32BigEndian(lease) : throw LengthError(OptLeaseTime, "lease time", lease.Length, "4")
                : null,
            ServerIdentifier = Address(options, OptServerId, "server identifier"),
            DomainName = Text(options, OptDomainName),
            ServerMessage = Text(options, OptMessage),
        };
    }

    /// <summary>Walks one options area: pad (0) is skipped, end (255) stops, every other option needs a length byte and that many bytes.</summary>
    public static void ParseOptions(ReadOnlySpan<byte> area, Dictionary<byte, byte[]> into, string where)
    {
        int i = 0;
        while (i < area.Length)
        {
            byte code = area[i];
            if (code == OptPad) { i++; continue; }
            if (code == OptEnd) return;
            if (i + 1 >= area.Length)
                throw new DhcpFormatException($"option {code} at byte {i} of the {where} has no length byte");
            int length = area[i + 1];
            if (i + 2 + length > area.Length)
                throw new DhcpFormatException($"option {code} at byte {i} of the {where} claims {length} bytes but only {area.Length - i - 2} remain");
            var value = area.Slice(i + 2, length);
            // RFC 3396: an option split into several occurrences is their concatenation.
            into[code] = into.TryGetValue(code, out var before) ? [.. before, .. value] : value.ToArray();
            i += 2 + length;
        }
        // No end option: tolerated, the data simply ran out (some servers trim it).
    }

    /// <summary>A domain that is safe to write into resolv.conf: letters, digits, '-', '_', '.', at most 253 characters.</summary>
    public static bool IsSafeDomain(string? domain) =>
        domain is { Length: > 0 and <= 253 } && domain.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && !domain.StartsWith('.');

    private static byte? OneByte(Dictionary<byte, byte[]> options, byte code, string name) =>
        !options.TryGetValue(code, out var v) ? null : v.Length == 1 ? v[0] : throw LengthError(code, name, v.Length, "1");

    private static uint? Address(Dictionary<byte, byte[]> options, byte code, string name) =>
        !options.TryGetValue(code, out var v) ? null
        : v.Length == 4 ? BinaryPrimitives.ReadUInt32BigEndian(v) : throw LengthError(code, name, v.Length, "4");

    private static List<uint> Addresses(Dictionary<byte, byte[]> options, byte code, string name)
    {
        var list = new List<uint>();
        if (!options.TryGetValue(code, out var v)) return list;
        if (v.Length == 0 || v.Length % 4 != 0) throw LengthError(code, name, v.Length, "a non-zero multiple of 4");
        for (int i = 0; i < v.Length; i += 4) list.Add(BinaryPrimitives.ReadUInt32BigEndian(v.AsSpan(i)));
        return list;
    }

    private static string? Text(Dictionary<byte, byte[]> options, byte code) =>
        options.TryGetValue(code, out var v) ? Encoding.ASCII.GetString(v).TrimEnd('\0') : null;

    private static DhcpFormatException LengthError(byte code, string name, int length, string expected) =>
        new($"option {code} ({name}) is {length} bytes, must be {expected}");

    private static string Hex(byte[] bytes) => bytes.Length == 0 ? "nothing" : Convert.ToHexString(bytes);
}

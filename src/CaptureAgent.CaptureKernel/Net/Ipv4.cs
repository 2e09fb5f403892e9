using System.Globalization;

namespace CaptureAgent.Net;

/// <summary>IPv4 addresses as host-order uints (10.0.2.15 = 0x0A00020F): strict dotted quads, masks and prefixes.</summary>
public static class Ipv4
{
    public const uint Broadcast = 0xFFFFFFFF;

    /// <summary>Exactly four decimal parts 0-255 ("10.0.2.15"); no "10.2" shorthands, no hex, no leading zeros that could mean octal.</summary>
    public static bool TryParse(string? text, out uint address)
    {
        address = 0;
        if (text is null) return false;
        var parts = text.Split('.');
        if (parts.Length != 4) return false;
        foreach (var part in parts)
        {
            if (part.Length is 0 or > 3 || part.Length > 1 && part[0] == '0' || !part.All(char.IsAsciiDigit)) return false;
            int v = int.Parse(part, NumberStyles.None, CultureInfo.InvariantCulture);
            if (v > 255) return false;
            address = address << 8 | (uint)v;
        }
        return true;
    }

    public static string Format(uint address) =>
        $"{address >> 24}.{address >> 16 & 0xFF}.{address >> 8 & 0xFF}.{address & 0xFF}";

    public static uint MaskOf(int prefixLength) => prefixLength <= 0 ? 0 : prefixLength >= 32 ? Broadcast : Broadcast << (32 - prefixLength);

    /// <summary>The prefix length of a contiguous mask, or -1 (255.0.255.0 is no mask).</summary>
    public static int PrefixOf(uint mask)
    {
        int prefix = System.Numerics.BitOperations.LeadingZeroCount(~mask);
        return MaskOf(prefix) == mask ? prefix : -1;
    }

    /// <summary>The pre-CIDR class mask, for a DHCP server that sends no subnet mask (RFC 2131 leaves that to the client).</summary>
    public static int ClassfulPrefix(uint address) => (address >> 24) switch
    {
        < 128 => 8,
        < 192 => 16,
        _ => 24,
    };

    public static bool SameSubnet(uint a, uint b, int prefixLength) => (a & MaskOf(prefixLength)) == (b & MaskOf(prefixLength));

    /// <summary>Why an address cannot be an interface's own unicast address, or null if it can.</summary>
    public static string? NotAHostAddress(uint address) => (address >> 24) switch
    {
        _ when address == 0 => "0.0.0.0 is not a host address",
        _ when address == Broadcast => "255.255.255.255 is the broadcast address",
        127 => "127.0.0.0/8 is loopback",
        >= 224 and < 240 => "224.0.0.0/4 is multicast",
        >= 240 => "240.0.0.0/4 is reserved",
        0 => "0.0.0.0/8 is not routable",
        _ => null,
    };
}

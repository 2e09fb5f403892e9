using System.Buffers.Binary;
using CaptureAgent.Net;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Net;

/// <summary>DHCP messages built to RFC 2131/2132 byte offsets, and replies from a network that may lie.</summary>
public class DhcpPacketTests
{
    private static readonly byte[] Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    /// <summary>A BOOTREPLY with the given option bytes after the magic cookie.</summary>
    private static byte[] Reply(uint xid, params byte[] options)
    {
        var p = new byte[DhcpPacket.OptionsOffset + options.Length];
        p[0] = 2; p[1] = 1; p[2] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(4), xid);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(16), 0x0AE70032);   // yiaddr 10.231.0.50
        Mac.CopyTo(p, 28);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(236), DhcpPacket.MagicCookie);
        options.CopyTo(p, DhcpPacket.OptionsOffset);
        return p;
    }

    [Fact]
    public void DiscoverHasTheBootpHeaderBroadcastFlagAndOptions()
    {
        var p = DhcpPacket.BuildDiscover(0xDEADBEEF, Mac, seconds: 3);
        Assert.Equal(DhcpPacket.MinimumLength, p.Length);
        Assert.Equal(1, p[0]);                                                   // BOOTREQUEST
        Assert.Equal(1, p[1]);                                                   // Ethernet
        Assert.Equal(6, p[2]);                                                   // hlen
        Assert.Equal(0, p[3]);                                                   // hops
        Assert.Equal(0xDEADBEEFu, BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(4)));
        Assert.Equal(3, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(8)));
        Assert.Equal(0x8000, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(10)));  // broadcast flag
        Assert.All(p[12..28], b => Assert.Equal(0, b));                            // ciaddr yiaddr siaddr giaddr
        Assert.Equal(Mac, p[28..34]);
        Assert.All(p[34..236], b => Assert.Equal(0, b));                           // rest of chaddr, sname, file
        Assert.Equal([0x63, 0x82, 0x53, 0x63], p[236..240]);

        var m = DhcpPacket.Parse(p);   // our own parser reads it back
        Assert.Equal(DhcpMessageType.Discover, m.MessageType);
        Assert.Equal([1, .. Mac], m.Options[DhcpPacket.OptClientId]);
        Assert.Equal([1, 3, 6, 15, 51, 54], m.Options[DhcpPacket.OptParameterList]);
        Assert.Equal([0x05, 0xDC], m.Options[DhcpPacket.OptMaxMessageSize]);
        Assert.False(m.Options.ContainsKey(DhcpPacket.OptRequestedAddress));
        Assert.False(m.Options.ContainsKey(DhcpPacket.OptServerId));
        // Options are followed by end and then zero padding.
        int end = Array.IndexOf(p, (byte)255, DhcpPacket.OptionsOffset);
        Assert.True(end > DhcpPacket.OptionsOffset);
        Assert.All(p[(end + 1)..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void RequestCarriesTheOfferedAddressAndServer()
    {
        var p = DhcpPacket.BuildRequest(7, Mac, 1, requestedAddress: 0x0AE70032, serverId: 0x0AE70001);
        var m = DhcpPacket.Parse(p);
        Assert.Equal(DhcpMessageType.Request, m.MessageType);
        Assert.Equal(0u, m.ClientAddress);   // SELECTING: ciaddr stays 0
        Assert.Equal([10, 231, 0, 50], m.Options[DhcpPacket.OptRequestedAddress]);
        Assert.Equal(0x0AE70001u, m.ServerIdentifier);
    }

    [Fact]
    public void ParsesAnAckWithEveryOptionTheClientUses()
    {
        var p = Reply(42,
            53, 1, 5,
            0, 0,                                      // pads between options are skipped
            1, 4, 255, 255, 255, 0,
            3, 8, 10, 231, 0, 1, 10, 231, 0, 254,
            6, 8, 10, 231, 0, 1, 9, 9, 9, 9,
            51, 4, 0, 0, 0x0E, 0x10,
            54, 4, 10, 231, 0, 1,
            15, 13, (byte)'t', (byte)'e', (byte)'s', (byte)'t', (byte)'.', (byte)'e', (byte)'x', (byte)'a', (byte)'m', (byte)'p', (byte)'l', (byte)'e', 0,
            255,
            99, 200);                                  // after end: ignored, even with a bogus length
        var m = DhcpPacket.Parse(p);
        Assert.Equal(2, m.Op);
        Assert.Equal(42u, m.TransactionId);
        Assert.Equal(DhcpMessageType.Ack, m.MessageType);
        Assert.Equal(0x0AE70032u, m.YourAddress);
        Assert.Equal(24, Ipv4.PrefixOf(m.SubnetMask!.Value));
        Assert.Equal([0x0AE70001u, 0x0AE700FEu], m.Routers);
        Assert.Equal([0x0AE70001u, 0x09090909u], m.DnsServers);
        Assert.Equal(3600u, m.LeaseSeconds);
        Assert.Equal(0x0AE70001u, m.ServerIdentifier);
        Assert.Equal("test.example", m.DomainName);   // trailing NUL dropped
        Assert.False(m.Options.ContainsKey(99));
    }

    [Fact]
    public void MissingEndOptionIsToleratedWhenTheDataEndsCleanly()
    {
        var m = DhcpPacket.Parse(Reply(1, 53, 1, 2, 54, 4, 10, 0, 0, 1));
        Assert.Equal(DhcpMessageType.Offer, m.MessageType);
        Assert.Equal(0x0A000001u, m.ServerIdentifier);
        Assert.Null(m.SubnetMask);
        Assert.Empty(m.Routers);
    }

    [Fact]
    public void SplitOptionsAreConcatenated()
    {
        // RFC 3396: two occurrences of option 6 are one list.
        var m = DhcpPacket.Parse(Reply(1, 53, 1, 5, 6, 4, 1, 1, 1, 1, 6, 4, 8, 8, 8, 8, 255));
        Assert.Equal([0x01010101u, 0x08080808u], m.DnsServers);
    }

    [Fact]
    public void OverloadedFileFieldIsRead()
    {
        var p = Reply(1, 53, 1, 5, 52, 1, 1, 255);
        // Option 52 = 1: more options in the 128-byte file field (offset 108).
        byte[] more = [3, 4, 10, 0, 0, 1, 255];
        more.CopyTo(p, 108);
        Assert.Equal([0x0A000001u], DhcpPacket.Parse(p).Routers);
    }

    [Theory]
    [InlineData(new byte[] { 53, 1, 5, 6, 10, 1, 1, 1, 1 }, "option 6 at byte 3 of the options claims 10 bytes but only 4 remain")]
    [InlineData(new byte[] { 53, 1, 5, 3 }, "option 3 at byte 3 of the options has no length byte")]
    [InlineData(new byte[] { 53, 2, 5, 5, 255 }, "option 53 (message type) is 2 bytes, must be 1")]
    [InlineData(new byte[] { 53, 1, 9, 255 }, "option 53 (message type) 9 is not a DHCP message type")]
    [InlineData(new byte[] { 1, 3, 255, 255, 0, 255 }, "option 1 (subnet mask) is 3 bytes, must be 4")]
    [InlineData(new byte[] { 1, 4, 255, 0, 255, 0, 255 }, "option 1 (subnet mask) 255.0.255.0 is not a contiguous mask")]
    [InlineData(new byte[] { 3, 6, 10, 0, 0, 1, 10, 0, 255 }, "option 3 (router) is 6 bytes, must be a non-zero multiple of 4")]
    [InlineData(new byte[] { 6, 0, 255 }, "option 6 (DNS server) is 0 bytes, must be a non-zero multiple of 4")]
    [InlineData(new byte[] { 51, 2, 0, 1, 255 }, "option 51 (lease time) is 2 bytes, must be 4")]
    [InlineData(new byte[] { 54, 5, 10, 0, 0, 1, 0, 255 }, "option 54 (server identifier) is 5 bytes, must be 4")]
    [InlineData(new byte[] { 52, 1, 7, 255 }, "option 52 (overload) must be one byte 1-3, got 07")]
    public void BadOptionsAreRejectedWithOneLine(byte[] options, string message)
    {
        var e = Assert.Throws<DhcpFormatException>(() => DhcpPacket.Parse(Reply(1, options)));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void BadHeadersAreRejected()
    {
        Assert.Equal("DHCP packet of 100 bytes is shorter than the 240-byte header",
            Assert.Throws<DhcpFormatException>(() => DhcpPacket.Parse(new byte[100])).Message);
        var p = Reply(1, 255);
        p[236] = 0;
        Assert.Contains("magic cookie", Assert.Throws<DhcpFormatException>(() => DhcpPacket.Parse(p)).Message);
        p = Reply(1, 255);
        p[2] = 17;
        Assert.Equal("hardware address length 17 is more than 16", Assert.Throws<DhcpFormatException>(() => DhcpPacket.Parse(p)).Message);
    }

    [Fact]
    public void AnOverlongOptionInTheOverloadedFieldIsRejected()
    {
        var p = Reply(1, 53, 1, 5, 52, 1, 2, 255);
        p[44] = 6; p[45] = 100;   // sname field (64 bytes at offset 44): 100 bytes cannot fit
        Assert.Equal("option 6 at byte 0 of the sname field claims 100 bytes but only 62 remain",
            Assert.Throws<DhcpFormatException>(() => DhcpPacket.Parse(p)).Message);
    }

    [Theory]
    [InlineData("example.org", true)]
    [InlineData("lab-1.example_x.org", true)]
    [InlineData("evil.org\nnameserver 6.6.6.6", false)]
    [InlineData("a b", false)]
    [InlineData(".org", false)]
    [InlineData("", false)]
    public void OnlyPlainDomainsGoToResolvConf(string domain, bool safe) => Assert.Equal(safe, DhcpPacket.IsSafeDomain(domain));
}

using System.Text.RegularExpressions;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.CaptureKernel.Net;

/// <summary>
/// The published binary's `net up` in a network namespace against a real DHCP server (dnsmasq) on
/// the other end of a veth pair, checked with ip(8): the address, prefix and default route the
/// server gave, resolv.conf, and that packets really flow through the gateway.
/// </summary>
[Trait("Category", "Root")]
[Trait("Category", "Binary")]
public class NetNamespaceTests(ITestOutputHelper output)
{
    [Fact]
    public void DhcpLeaseFromDnsmasqIsConfigured()
    {
        using var lab = new NetLab();
        lab.StartDnsmasq("--dhcp-option=3," + NetLab.ServerAddress, "--dhcp-option=6,10.231.0.1,10.231.0.2",
            "--dhcp-option=15,lab.test");
        string resolv = lab.Scratch("resolv.conf");
        var (run, elapsed) = lab.Agent("net", "up", "--interface", lab.ClientIf, "--dhcp", "--timeout", "20", "--resolv-conf", resolv);
        output.WriteLine($"{elapsed.TotalSeconds:0.00} s\n{run.Stdout}{run.Stderr}");
        Assert.True(run.ExitCode == 0, run.Stderr + File.ReadAllText(lab.DnsmasqLog));

        // dnsmasq's lease for our MAC is the oracle for the address.
        string mac = Regex.Match(NetLab.Ip("-n", lab.Client, "link", "show", lab.ClientIf), @"link/ether ([0-9a-f:]{17})").Groups[1].Value;
        var lease = File.ReadAllLines(lab.LeaseFile).Select(l => l.Split(' ')).Single(f => f[1] == mac);
        string address = lease[2];
        Assert.Matches(@"^10\.231\.0\.(5\d|[6-9]\d)$", address);

        string addr = NetLab.Ip("-n", lab.Client, "-4", "-o", "addr", "show", "dev", lab.ClientIf);
        Assert.Contains($"inet {address}/24 brd 10.231.0.255 scope global {lab.ClientIf}", addr);
        Assert.Single(addr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        string routes = NetLab.Ip("-n", lab.Client, "-4", "route");
        Assert.Contains($"default via {NetLab.ServerAddress} dev {lab.ClientIf}", routes);
        Assert.Contains($"10.231.0.0/24 dev {lab.ClientIf} proto kernel scope link src {address}", routes);
        Assert.Equal($"# capture-agent net (dhcp on {lab.ClientIf})\nsearch lab.test\nnameserver 10.231.0.1\nnameserver 10.231.0.2\n", File.ReadAllText(resolv));
        Assert.Equal($"{lab.ClientIf} {address}/24 via 10.231.0.1 dns 10.231.0.1,10.231.0.2 domain lab.test (dhcp from 10.231.0.1, lease 3600 s, mac {mac})\n", run.Stdout);
        Assert.Contains("127.0.0.1/8", NetLab.Ip("-n", lab.Client, "-4", "-o", "addr", "show", "dev", "lo"));   // lo came up too

        // The server saw the whole exchange with our MAC, broadcast replies as asked.
        string log = File.ReadAllText(lab.DnsmasqLog);
        Assert.Contains($"DHCPDISCOVER({lab.ServerIf}) {mac}", log);
        Assert.Contains($"DHCPACK({lab.ServerIf}) {address} {mac}", log);
        AssertRoutedThroughGateway(lab);

        // Again, as an emergency shell would: the same lease, the default route replaced, --json.
        var (again, _) = lab.Agent("net", "up", "-i", mac.ToUpperInvariant(), "--timeout", "20", "--resolv-conf", "none", "--json");
        Assert.True(again.ExitCode == 0, again.Stderr);
        using (var leaseJson = System.Text.Json.JsonDocument.Parse(again.Stdout))
        {
            var l = leaseJson.RootElement;
            Assert.Equal((lab.ClientIf, address, 24, "10.231.0.1"), (l.GetProperty("interface").GetString(), l.GetProperty("address").GetString(),
                l.GetProperty("prefix_length").GetInt32(), l.GetProperty("gateway").GetString()));
        }
        Assert.Single(NetLab.Ip("-n", lab.Client, "-4", "route", "show", "default").Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void StaticAddressAndGateway()
    {
        using var lab = new NetLab();
        string resolv = lab.Scratch("etc/resolv.conf");   // the directory is made if missing
        var (run, _) = lab.Agent("net", "up", "--interface", lab.ClientIf, "--static", "10.231.0.7/24", "--gateway", NetLab.ServerAddress,
            "--dns", "10.231.0.53", "--timeout", "10", "--resolv-conf", resolv);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"inet 10.231.0.7/24 brd 10.231.0.255 scope global {lab.ClientIf}", NetLab.Ip("-n", lab.Client, "-4", "-o", "addr", "show", "dev", lab.ClientIf));
        Assert.Contains($"default via {NetLab.ServerAddress} dev {lab.ClientIf}", NetLab.Ip("-n", lab.Client, "-4", "route"));
        Assert.Equal($"# capture-agent net (static on {lab.ClientIf})\nnameserver 10.231.0.53\n", File.ReadAllText(resolv));
        AssertRoutedThroughGateway(lab);

        // A /32 with its gateway off-link (as clouds hand out): a host route to the gateway, then the default route.
        NetLab.Ip("-n", lab.Server, "route", "add", "10.231.5.9/32", "dev", lab.ServerIf);
        (run, _) = lab.Agent("net", "up", "-i", lab.ClientIf, "--static", "10.231.5.9/32 via 10.231.0.1", "--resolv-conf", "none");
        Assert.True(run.ExitCode == 0, run.Stderr);
        string addr = NetLab.Ip("-n", lab.Client, "-4", "-o", "addr", "show", "dev", lab.ClientIf);
        Assert.Contains($"inet 10.231.5.9/32 scope global {lab.ClientIf}", addr);   // no stale classful broadcast
        string routes = NetLab.Ip("-n", lab.Client, "-4", "route");
        Assert.Contains($"default via 10.231.0.1 dev {lab.ClientIf}", routes);
        Assert.Contains($"10.231.0.1 dev {lab.ClientIf} scope link", routes);
        AssertRoutedThroughGateway(lab);
    }

    [Fact]
    public void NoServerTimesOutWithOneLine()
    {
        using var lab = new NetLab();
        string resolv = lab.Scratch("resolv.conf");
        var (run, elapsed) = lab.Agent("net", "up", "--interface", lab.ClientIf, "--dhcp", "--timeout", "3", "--resolv-conf", resolv);
        output.WriteLine($"{elapsed.TotalSeconds:0.00} s: {run.Stderr}");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal($"capture-agent: error: no DHCP offer on {lab.ClientIf} after 3 s\n", run.Stderr);
        Assert.Equal("", run.Stdout);
        Assert.InRange(elapsed.TotalSeconds, 2.9, 5.5);
        Assert.False(File.Exists(resolv));
        Assert.DoesNotContain("inet ", NetLab.Ip("-n", lab.Client, "-4", "-o", "addr", "show", "dev", lab.ClientIf));
    }

    [Fact]
    public void MissingInterfaceIsNamed()
    {
        using var lab = new NetLab();
        var (run, elapsed) = lab.Agent("net", "up", "--interface", "nosuch0", "--timeout", "1", "--resolv-conf", "none");
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("capture-agent: error: no network interface nosuch0 after 1 s (is the NIC driver in the image?); interfaces: ", run.Stderr);
        Assert.Contains($"{lab.ClientIf} ", run.Stderr);
        Assert.InRange(elapsed.TotalSeconds, 0.9, 3.5);

        // auto skips virtual interfaces (the veth): nothing to choose.
        (run, _) = lab.Agent("net", "up", "--timeout", "1", "--resolv-conf", "none");
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("capture-agent: error: no physical Ethernet interface after 1 s (is the NIC driver in the image?)", run.Stderr);
    }

    [Theory]
    [InlineData(new[] { "net", "up", "--static", "10.0.2.15" }, "--static: 10.0.2.15: missing /PREFIX (e.g. 10.0.2.15/24)")]
    [InlineData(new[] { "net", "up", "--dhcp", "--static", "10.0.2.15/24" }, "--dhcp and --static exclude each other")]
    [InlineData(new[] { "net", "up", "--gateway", "10.0.2.2" }, "--gateway goes with --static (DHCP gives its own router)")]
    [InlineData(new[] { "net", "up", "--timeout", "soon" }, "--timeout 'soon' must be a number of seconds, 0 < t <= 86400")]
    [InlineData(new[] { "net", "down" }, "unknown net command 'down'")]
    public void UsageErrorsExitTwo(string[] args, string message)
    {
        var run = Fixtures.Exec(Fixtures.Binary, args, timeoutSeconds: 30);
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith($"capture-agent: error: {message}\n", run.Stderr);
    }

    /// <summary>
    /// A TCP connect to a closed port of a host beyond the gateway: "Connection refused" means the SYN went
    /// out through the default route and the RST came back to the configured address.
    /// </summary>
    private static void AssertRoutedThroughGateway(NetLab lab)
    {
        var r = lab.InClient("timeout", "5", "bash", "-c", $"exec 3<>/dev/tcp/{NetLab.FarHost}/9");
        Assert.Contains("Connection refused", r.Stderr);
    }
}

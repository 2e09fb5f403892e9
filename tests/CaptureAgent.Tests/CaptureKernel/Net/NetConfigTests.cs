using CaptureAgent.Net;
using CaptureAgent.Targets;
using CaptureAgent.Tests.CaptureKernel.Targets;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Net;

/// <summary>Static settings, addresses, interface choice and NIC modules from fake and real sysfs trees.</summary>
public class NetConfigTests
{
    [Theory]
    [InlineData("10.0.2.15/24 via 10.0.2.2", "10.0.2.15", 24, "10.0.2.2")]
    [InlineData("  10.0.2.15/24   via\t10.0.2.2 ", "10.0.2.15", 24, "10.0.2.2")]
    [InlineData("192.168.1.7/32", "192.168.1.7", 32, null)]
    [InlineData("192.168.1.7/255.255.255.0", "192.168.1.7", 24, null)]
    [InlineData("203.0.113.9/32 via 203.0.113.1", "203.0.113.9", 32, "203.0.113.1")]   // off-link gateway: a host route reaches it
    [InlineData("10.0.0.0/31", "10.0.0.0", 31, null)]                                   // RFC 3021 point-to-point: both ends usable
    public void StaticSettingsParse(string text, string address, int prefix, string? gateway)
    {
        Assert.True(NetworkSetup.TryParseStatic(text, out var value, out var error), error);
        Assert.Equal(new StaticAddress(address, prefix, gateway), value);
        Assert.Null(error);
    }

    [Theory]
    [InlineData("10.0.2.15", "10.0.2.15: missing /PREFIX (e.g. 10.0.2.15/24)")]
    [InlineData("10.0.2/24", "'10.0.2' is not an IPv4 address")]
    [InlineData("10.0.2.256/24", "'10.0.2.256' is not an IPv4 address")]
    [InlineData("010.0.2.15/24", "'010.0.2.15' is not an IPv4 address")]
    [InlineData("10.0.2.15/33", "'/33' is not a prefix length 1-32 or a contiguous netmask")]
    [InlineData("10.0.2.15/0", "'/0' is not a prefix length 1-32 or a contiguous netmask")]
    [InlineData("10.0.2.15/255.0.255.0", "'/255.0.255.0' is not a prefix length 1-32 or a contiguous netmask")]
    [InlineData("10.0.2.15/x", "'/x' is not a prefix length 1-32 or a contiguous netmask")]
    [InlineData("10.0.2.0/24", "10.0.2.0/24 is the subnet's network address")]
    [InlineData("10.0.2.255/24", "10.0.2.255/24 is the subnet's broadcast address")]
    [InlineData("127.0.0.2/8", "127.0.0.2: 127.0.0.0/8 is loopback")]
    [InlineData("224.0.0.5/24", "224.0.0.5: 224.0.0.0/4 is multicast")]
    [InlineData("10.0.2.15/24 via", "expected ADDR/PREFIX [via GATEWAY], e.g. 10.0.2.15/24 via 10.0.2.2")]
    [InlineData("10.0.2.15/24 gw 10.0.2.2", "expected ADDR/PREFIX [via GATEWAY], e.g. 10.0.2.15/24 via 10.0.2.2")]
    [InlineData("10.0.2.15/24 via router", "gateway 'router' is not a unicast IPv4 address")]
    [InlineData("10.0.2.15/24 via 10.0.2.15", "gateway 10.0.2.15 is the address itself")]
    [InlineData("", "expected ADDR/PREFIX [via GATEWAY], e.g. 10.0.2.15/24 via 10.0.2.2")]
    public void BadStaticSettingsSayWhatIsWrong(string text, string message)
    {
        Assert.False(NetworkSetup.TryParseStatic(text, out var value, out var error));
        Assert.Null(value);
        Assert.Equal(message, error);
    }

    [Fact]
    public void MasksAndPrefixes()
    {
        Assert.Equal(0xFFFFFF00u, Ipv4.MaskOf(24));
        Assert.Equal(0u, Ipv4.MaskOf(0));
        Assert.Equal(0xFFFFFFFFu, Ipv4.MaskOf(32));
        Assert.Equal(20, Ipv4.PrefixOf(0xFFFFF000));
        Assert.Equal(0, Ipv4.PrefixOf(0));
        Assert.Equal(-1, Ipv4.PrefixOf(0xFF00FF00));
        Assert.Equal(8, Ipv4.ClassfulPrefix(0x0A000001));
        Assert.Equal(16, Ipv4.ClassfulPrefix(0xAC100001));
        Assert.Equal(24, Ipv4.ClassfulPrefix(0xC0A80001));
        Assert.Equal("192.168.0.1", Ipv4.Format(0xC0A80001));
        Assert.True(Ipv4.TryParse("0.0.0.0", out uint zero) && zero == 0);
        Assert.False(Ipv4.TryParse("1.2.3.4.5", out _));
        Assert.False(Ipv4.TryParse("1.2.3.-4", out _));
        Assert.False(Ipv4.TryParse("0x1.2.3.4", out _));
    }

    [Theory]
    [InlineData("52:54:00:12:34:56", "52:54:00:12:34:56")]
    [InlineData("52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef")]
    [InlineData("eth0", null)]
    [InlineData("52:54:00:12:34", null)]
    [InlineData("52:54:00:12:34:5g", null)]
    public void MacSpecs(string text, string? normalized) => Assert.Equal(normalized, NetInterfaces.NormalizeMac(text));

    /// <summary>A machine: two virtio NICs (virtio_net on virtio_pci), an e1000e NIC, a bridge over the first, a veth and lo.</summary>
    private static FakeSysfs Machine()
    {
        var t = new FakeSysfs();
        Nic(t, "lo", 1, "00:00:00:00:00:00", device: null, type: 772);
        Nic(t, "eth0", 2, "52:54:00:00:00:01", "pci0000:00/0000:00:03.0/virtio0");
        Nic(t, "eth1", 3, "52:54:00:00:00:02", "pci0000:00/0000:00:04.0/virtio1");
        Nic(t, "eth2", 4, "00:1b:21:00:00:03", "pci0000:00/0000:00:1c.0/0000:02:00.0");
        Nic(t, "br0", 5, "52:54:00:00:00:01", device: null);
        Nic(t, "veth9", 6, "aa:bb:cc:dd:ee:ff", device: null);
        Nic(t, "wlan0", 7, "00:21:6a:00:00:07", "pci0000:00/0000:00:1d.0/0000:03:00.0", wireless: true);
        t.BindDriver("pci0000:00/0000:00:03.0/virtio0", "virtio", "virtio_net", "virtio_net");
        t.BindDriver("pci0000:00/0000:00:03.0", "pci", "virtio-pci", "virtio_pci");
        t.BindDriver("pci0000:00/0000:00:04.0/virtio1", "virtio", "virtio_net", "virtio_net");
        t.BindDriver("pci0000:00/0000:00:04.0", "pci", "virtio-pci", "virtio_pci");
        t.BindDriver("pci0000:00/0000:00:1c.0/0000:02:00.0", "pci", "e1000e", "e1000e");
        t.BindDriver("pci0000:00/0000:00:1c.0", "pci_express", "pcieport", module: null);
        t.BindDriver("pci0000:00/0000:00:1d.0/0000:03:00.0", "pci", "iwlwifi", "iwlwifi");
        return t;
    }

    private static void Nic(FakeSysfs t, string name, int index, string mac, string? device, int type = 1, bool wireless = false)
    {
        string dir = device is null
            ? Directory.CreateDirectory(Path.Combine(t.Sys, "devices", "virtual", "net", name)).FullName
            : Directory.CreateDirectory(Path.Combine(t.Device(device), "net", name)).FullName;
        File.WriteAllText(Path.Combine(dir, "ifindex"), index + "\n");
        File.WriteAllText(Path.Combine(dir, "address"), mac + "\n");
        File.WriteAllText(Path.Combine(dir, "type"), type + "\n");
        if (wireless) Directory.CreateDirectory(Path.Combine(dir, "wireless"));
        if (device is not null) File.CreateSymbolicLink(Path.Combine(dir, "device"), Path.GetRelativePath(dir, t.Device(device)));
        Directory.CreateDirectory(Path.Combine(t.Sys, "class", "net"));
        File.CreateSymbolicLink(Path.Combine(t.Sys, "class", "net", name), Path.GetRelativePath(Path.Combine(t.Sys, "class", "net"), dir));
    }

    [Fact]
    public void InterfacesAreListedInProbeOrderAndClassified()
    {
        using var t = Machine();
        var all = NetInterfaces.List(t.Sys);
        Assert.Equal(["lo", "eth0", "eth1", "eth2", "br0", "veth9", "wlan0"], all.Select(i => i.Name));
        Assert.Equal(["eth0", "eth1", "eth2"], NetInterfaces.AutoCandidates(all).Select(i => i.Name));   // no lo, virtual or wireless
        Assert.False(all.Single(i => i.Name == "br0").Physical);
        Assert.True(all.Single(i => i.Name == "wlan0").Wireless);
    }

    [Fact]
    public void SpecsMatchByNameOrMacAndTheNicWinsOverItsBridge()
    {
        using var t = Machine();
        var all = NetInterfaces.List(t.Sys);
        Assert.Equal("eth2", NetInterfaces.Match(all, "00:1B:21:00:00:03")!.Name);
        Assert.Equal("eth0", NetInterfaces.Match(all, "52-54-00-00-00-01")!.Name);   // br0 has the same MAC
        Assert.Equal("veth9", NetInterfaces.Match(all, "veth9")!.Name);              // named explicitly: virtual is fine
        Assert.Null(NetInterfaces.Match(all, "ens3"));
        Assert.Null(NetInterfaces.Match(all, "52:54:00:00:00:09"));
    }

    [Fact]
    public void NotFoundMessagesPointAtTheLikelyCause()
    {
        using var t = Machine();
        var all = NetInterfaces.List(t.Sys);
        string udev = NetInterfaces.NotFound("ens3", all, TimeSpan.FromSeconds(30));
        Assert.StartsWith("no network interface ens3 after 30 s (the capture kernel has no udev", udev);
        Assert.Contains("eth0 52:54:00:00:00:01", udev);
        Assert.Contains("br0 52:54:00:00:00:01 (virtual)", udev);
        Assert.DoesNotContain("lo ", udev);
        Assert.Equal("no physical Ethernet interface after 5 s (is the NIC driver in the image?); interfaces: none but lo",
            NetInterfaces.NotFound("auto", all.Where(i => i.Name == "lo").ToList(), TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void NicModulesWalkTheDriverChain()
    {
        using var t = Machine();
        Assert.Equal(["virtio_net", "virtio_pci"], NetworkSetup.NicModules("eth1", t.Sys));
        Assert.Equal(["virtio_net", "virtio_pci"], NetworkSetup.NicModules("52:54:00:00:00:01", t.Sys));   // the NIC, not br0
        Assert.Equal(["virtio_net", "virtio_pci"], NetworkSetup.NicModules("auto", t.Sys));                // no carrier known: the first
        var chain = NetworkSetup.NicModuleChain("eth2", t.Sys);
        Assert.Equal(["e1000e"], chain.Modules);   // pcieport is built in
        Assert.Equal([new DriverLevel("pci0000:00/0000:00:1c.0/0000:02:00.0", "e1000e", "e1000e", false),
                      new DriverLevel("pci0000:00/0000:00:1c.0", "pcieport", null, true)], chain.Levels);
        Assert.Contains("virtual interface", Assert.Single(NetworkSetup.NicModuleChain("br0", t.Sys).Notes));
        Assert.Empty(NetworkSetup.NicModules("br0", t.Sys));
        Assert.Contains("wireless", Assert.Single(NetworkSetup.NicModuleChain("wlan0", t.Sys).Notes));
        Assert.Equal("no network interface ens3 in " + Path.Combine(t.Sys, "class", "net"),
            Assert.Throws<IOException>(() => NetworkSetup.NicModules("ens3", t.Sys)).Message);
    }

    [Fact]
    public void AutoPrefersTheNicWithCarrier()
    {
        using var t = Machine();
        File.WriteAllText(Path.Combine(t.Sys, "class", "net", "eth2", "carrier"), "1\n");
        File.WriteAllText(Path.Combine(t.Sys, "class", "net", "eth0", "carrier"), "0\n");
        Assert.Equal(["e1000e"], NetworkSetup.NicModules("auto", t.Sys));
    }

    [Fact]
    public void BuiltInNicDriversNeedNoModule()
    {
        using var t = new FakeSysfs();
        Nic(t, "eth0", 2, "52:54:00:00:00:01", "pci0000:00/0000:00:03.0/virtio0");
        t.BindDriver("pci0000:00/0000:00:03.0/virtio0", "virtio", "virtio_net", "virtio_net", moduleIsBuiltIn: true);
        t.BindDriver("pci0000:00/0000:00:03.0", "pci", "virtio-pci", module: null);
        var chain = NetworkSetup.NicModuleChain("eth0", t.Sys);
        Assert.Empty(chain.Modules);
        Assert.All(chain.Levels, l => Assert.True(l.BuiltIn));
    }

    [Fact]
    public void ThisMachinesNicsResolveToLoadedModulesOnly()
    {
        // The oracle is /sys itself: every module reported is loaded (has initstate), every level has a bound driver.
        var nics = NetInterfaces.AutoCandidates(NetInterfaces.List());
        Assert.True(nics.Count > 0, "this test needs a NIC with hardware behind it (a VM or real machine, not a bare container)");
        foreach (var nic in nics)
        {
            var chain = NetworkSetup.NicModuleChain(nic.Name);
            Assert.NotEmpty(chain.Levels);
            foreach (var m in chain.Modules) Assert.True(File.Exists($"/sys/module/{m}/initstate"), $"{nic.Name}: {m} is not a loaded module");
            foreach (var l in chain.Levels) Assert.True(Directory.Exists(Path.Combine("/sys/devices", l.Device, "driver")), l.Device);
        }
    }

    [Fact]
    public void ResolvConfIsReplacedNotFollowed()
    {
        using var dir = new TempDir();
        string victim = dir.File("victim");
        File.WriteAllText(victim, "keep me\n");
        string path = dir.File("etc/resolv.conf");
        Directory.CreateDirectory(dir.File("etc"));
        File.CreateSymbolicLink(path, victim);
        NetworkSetup.WriteResolvConf(path, ["10.0.2.3", "9.9.9.9"], "lab.example", "dhcp on eth0");
        Assert.Equal("keep me\n", File.ReadAllText(victim));
        Assert.Null(new FileInfo(path).LinkTarget);
        Assert.Equal("# capture-agent net (dhcp on eth0)\nsearch lab.example\nnameserver 10.0.2.3\nnameserver 9.9.9.9\n", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(path));
        Assert.Single(Directory.GetFiles(dir.File("etc")));   // no temporary left behind
    }

    private static string Compact(System.Text.Json.JsonElement e)
    {
        var buf = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(buf)) e.WriteTo(w);
        return System.Text.Encoding.UTF8.GetString(buf.ToArray());
    }

    [Fact]
    public void LeaseLineAndJson()
    {
        var lease = new NetworkLease("eth0", "10.0.2.15", 24, "10.0.2.2", ["10.0.2.3"], "dhcp")
        {
            Mac = "52:54:00:12:34:56", Server = "10.0.2.2", LeaseTime = TimeSpan.FromSeconds(86400), Domain = "lab",
        };
        Assert.Equal("eth0 10.0.2.15/24 via 10.0.2.2 dns 10.0.2.3 domain lab (dhcp from 10.0.2.2, lease 86400 s, mac 52:54:00:12:34:56)", lease.ToString());
        var ms = new MemoryStream();
        CaptureAgent.Cli.NetCommand.WriteJson(ms, lease);
        using var doc = System.Text.Json.JsonDocument.Parse(ms.ToArray());
        Assert.Equal(["schema", "capture_agent_version", "interface", "address", "prefix_length", "gateway", "dns", "domain", "source", "server", "lease_seconds", "mac"],
            doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("""{"schema":1,"capture_agent_version":"VERSION","interface":"eth0","address":"10.0.2.15","prefix_length":24,"gateway":"10.0.2.2","dns":["10.0.2.3"],"domain":"lab","source":"dhcp","server":"10.0.2.2","lease_seconds":86400,"mac":"52:54:00:12:34:56"}""".Replace("VERSION", CaptureAgent.Common.BuildInfo.Version),
            Compact(doc.RootElement));
        Assert.EndsWith("\n", System.Text.Encoding.UTF8.GetString(ms.ToArray()));
        Assert.Equal("eth1 192.168.1.7/32 (static)", new NetworkLease("eth1", "192.168.1.7", 32, null, [], "static").ToString());
    }
}

using System.Diagnostics;
using CaptureAgent.Tests.Integration;

namespace CaptureAgent.Tests.CaptureKernel.Net;

/// <summary>
/// Two network namespaces joined by a veth pair: "server" (10.231.0.1/24 on its end, 10.232.0.1 on
/// its lo as a host beyond the gateway) and "client" (an unconfigured interface for capture-agent).
/// Nothing is connected to the host's network; disposing kills dnsmasq and deletes both namespaces.
/// Needs root and iproute2 (dnsmasq-base for DHCP).
/// </summary>
public sealed class NetLab : IDisposable
{
    public const string ServerAddress = "10.231.0.1", FarHost = "10.232.0.1";
    private const string Prefix = "canet";
    private static int _counter;

    private readonly TempDir _dir = new();
    private Process? _dnsmasq;

    public string Server { get; }
    public string Client { get; }
    public string ServerIf { get; }
    public string ClientIf { get; }
    public string Scratch(string name) => _dir.File(name);
    public string LeaseFile => _dir.File("dnsmasq.leases");
    public string DnsmasqLog => _dir.File("dnsmasq.log");

    public NetLab()
    {
        TestCategory.Require(TestCategory.Root);
        SweepStale();
        int n = Interlocked.Increment(ref _counter);
        int pid = Environment.ProcessId;
        Server = $"{Prefix}{pid}-{n}-srv";
        Client = $"{Prefix}{pid}-{n}-cli";
        ServerIf = $"cn{n}s{pid}";   // IFNAMSIZ: 15 characters at most
        ClientIf = $"cn{n}c{pid}";
        try
        {
            Ip("netns", "add", Server);
            Ip("netns", "add", Client);
            Ip("link", "add", ServerIf, "type", "veth", "peer", "name", ClientIf);
            Ip("link", "set", ServerIf, "netns", Server);
            Ip("link", "set", ClientIf, "netns", Client);
            Ip("-n", Server, "addr", "add", ServerAddress + "/24", "dev", ServerIf);
            Ip("-n", Server, "addr", "add", FarHost + "/32", "dev", "lo");
            Ip("-n", Server, "link", "set", "lo", "up");
            Ip("-n", Server, "link", "set", ServerIf, "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>dnsmasq as the DHCP server on the server end only: no DNS (--port=0), no resolv.conf, no config file.</summary>
    public void StartDnsmasq(params string[] extra)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[]
                 {
                     "netns", "exec", Server, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root",
                     "--interface=" + ServerIf, "--bind-interfaces", "--except-interface=lo", "--no-resolv", "--port=0",
                     "--dhcp-range=10.231.0.50,10.231.0.99,255.255.255.0,1h", "--dhcp-leasefile=" + LeaseFile,
                     "--log-dhcp", "--log-facility=" + DnsmasqLog,
                 }.Concat(extra))
            psi.ArgumentList.Add(a);
        _dnsmasq = Process.Start(psi)!;
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(DnsmasqLog) && File.ReadAllText(DnsmasqLog).Contains("DHCP, IP range")))
        {
            if (_dnsmasq.HasExited)
                throw new InvalidOperationException($"dnsmasq exited with {_dnsmasq.ExitCode}: {_dnsmasq.StandardError.ReadToEnd()}");
            if (clock.Elapsed > TimeSpan.FromSeconds(10)) throw new TimeoutException("dnsmasq did not start in 10 s");
            Thread.Sleep(50);
        }
    }

    /// <summary>capture-agent run inside the client namespace, timed.</summary>
    public (Fixtures.Run Run, TimeSpan Elapsed) Agent(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var run = Fixtures.Exec("ip", ["netns", "exec", Client, Fixtures.Binary, .. args], timeoutSeconds: 120);
        return (run, clock.Elapsed);
    }

    /// <summary>A command in the client namespace: exit code and both outputs.</summary>
    public Fixtures.Run InClient(params string[] command) => Fixtures.Exec("ip", ["netns", "exec", Client, .. command], timeoutSeconds: 30);

    public static string Ip(params string[] args)
    {
        var r = Fixtures.Exec("ip", args, timeoutSeconds: 30);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stderr.Trim()}" +
                                                (Environment.UserName == "root" ? "" : " (these tests need root)"));
        return r.Stdout;
    }

    public void Dispose()
    {
        if (_dnsmasq is { HasExited: false })
        {
            _dnsmasq.Kill();
            _dnsmasq.WaitForExit(5000);
        }
        _dnsmasq?.Dispose();
        // Deleting a namespace destroys the veth end inside it, and with it the peer; a pair that never
        // left the host namespace (setup failed half-way) is deleted by name.
        if (ServerIf is not null) Fixtures.Exec("ip", ["link", "del", ServerIf], timeoutSeconds: 30);
        foreach (var ns in new[] { Server, Client })
            if (ns is not null) Fixtures.Exec("ip", ["netns", "del", ns], timeoutSeconds: 30);
        _dir.Dispose();
    }

    /// <summary>Namespaces left by a test run that was killed before it could clean up (its PID is gone).</summary>
    private static void SweepStale()
    {
        if (!Directory.Exists("/run/netns")) return;
        foreach (var path in Directory.GetFiles("/run/netns", Prefix + "*"))
        {
            string name = Path.GetFileName(path);
            int dash = name.IndexOf('-');
            if (dash > Prefix.Length && int.TryParse(name[Prefix.Length..dash], out int pid) && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
                Fixtures.Exec("ip", ["netns", "del", name], timeoutSeconds: 30);
        }
    }
}

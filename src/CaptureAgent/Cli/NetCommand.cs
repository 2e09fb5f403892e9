using System.Globalization;
using CaptureAgent.Net;
using CaptureAgent.Common;

namespace CaptureAgent.Cli;

/// <summary>`capture-agent net up | list | modules`: the capture kernel's network, also usable from an emergency shell with no ip(8).</summary>
public static class NetCommand
{
    public const string Usage = """
        usage: capture-agent net up [--interface auto|NAME|MAC] [--dhcp | --static ADDR/PREFIX [--gateway GW]]
                                    [--dns IP]... [--timeout SECONDS] [--resolv-conf PATH|none] [--json]
               capture-agent net list                      interfaces with MAC, link state and whether they are NICs
               capture-agent net modules [auto|NAME|MAC]   kernel modules the NIC needs (for the capture initramfs)
          --interface    auto (default): the first physical Ethernet NIC, one with carrier preferred
          --dhcp         (default) DHCPv4; --static "10.0.2.15/24 via 10.0.2.2" or --static 10.0.2.15/24 --gateway 10.0.2.2
          --timeout      for the NIC, its carrier and the address together (default 30)
          --resolv-conf  where the name servers go (default /etc/resolv.conf)
        prints the configuration on one line; exit 0 configured, 1 failed, 2 usage
        """;

    public static int Run(string[] args) => CommandLine.Run(Usage, args, Subcommand);

    private static int Subcommand(string[] args)
    {
        if (args.Length == 0) throw new UsageException("net: expected up, list or modules");
        return args[0] switch
        {
            "up" => Up(args[1..]),
            "list" => List(args[1..]),
            "modules" => Modules(args[1..]),
            _ => throw new UsageException($"unknown net command '{args[0]}'"),
        };
    }

    private static int Up(string[] args)
    {
        string iface = "auto";
        string? staticAddress = null, gateway = null;
        bool dhcp = false, json = false;
        var dns = new List<string>();
        string? resolvConf = "/etc/resolv.conf";
        double timeout = 30;
        var cli = new ArgReader("net up", args);
        while (cli.Next() is { } option)
        {
            switch (option)
            {
                case "--interface" or "-i": iface = cli.Value(); break;
                case "--dhcp": dhcp = true; break;
                case "--static": staticAddress = cli.Value(); break;
                case "--gateway": gateway = cli.Value(); break;
                case "--dns": dns.AddRange(cli.List()); break;
                case "--resolv-conf": resolvConf = cli.Value() is { Length: > 0 } path && path != "none" ? path : null; break;
                case "--json": json = true; break;
                case "--timeout": timeout = Seconds(cli.Value()); break;
                default: throw cli.Unknown();
            }
        }
        cli.NoOperands();
        // These messages are the words the net tests (and scripts) know: no "net up:" before them.
        if (dhcp && staticAddress is not null) throw new UsageException("--dhcp and --static exclude each other");
        if (gateway is not null && staticAddress is null) throw new UsageException("--gateway goes with --static (DHCP gives its own router)");
        string mode = "dhcp";
        if (staticAddress is not null)
        {
            mode = gateway is null ? staticAddress : $"{staticAddress} via {gateway}";
            if (!NetworkSetup.TryParseStatic(mode, out _, out string? error)) throw new UsageException($"--static: {error}");
        }

        NetworkLease lease;
        try
        {
            lease = NetworkSetup.Configure(new NetworkSettings(iface, mode, dns, TimeSpan.FromSeconds(timeout)),
                line => Log.Info(line), resolvConf);
        }
        catch (IOException e)
        {
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
        if (json)
        {
            JsonOutput.ToStdout(stdout => WriteJson(stdout, lease));
        }
        else Console.Out.WriteLine(lease.ToString());
        return ExitCodes.Ok;
    }

    private static double Seconds(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double t) && t > 0 && t <= 86400
            ? t : throw new UsageException($"--timeout '{text}' must be a number of seconds, 0 < t <= 86400");

    private static int List(string[] args)
    {
        var cli = new ArgReader("net list", args);
        if (cli.Next() is not null) throw cli.Unknown();
        cli.NoOperands();
        foreach (var nic in NetInterfaces.List())
        {
            string kind = nic.Name == "lo" ? "loopback" : !nic.Physical ? "virtual" : nic.Wireless ? "wireless" : nic.IsEthernet ? "ethernet" : $"type {nic.Type}";
            string carrier = NetInterfaces.Carrier(nic.Name) switch { true => "carrier", false => "no-carrier", null => "down" };
            Console.Out.WriteLine($"{nic.Name} {nic.Mac ?? "-"} {kind} {carrier}");
        }
        return ExitCodes.Ok;
    }

    private static int Modules(string[] args)
    {
        var cli = new ArgReader("net modules", args);
        if (cli.Next() is not null) throw cli.Unknown();
        string spec = cli.Operands(0, 1, "at most one NIC") is [var nic] ? nic : "auto";
        try
        {
            var chain = NetworkSetup.NicModuleChain(spec);
            foreach (var level in chain.Levels)
                Log.Info($"{level.Device}: driver {level.Driver}" + (level.Module is null ? " (built in)" : level.BuiltIn ? $" ({level.Module}, built in)" : $" (module {level.Module})"));
            foreach (var note in chain.Notes) Log.Warn(note);
            Console.Out.WriteLine(string.Join(' ', chain.Modules));
            return ExitCodes.Ok;
        }
        catch (IOException e)
        {
            Log.Error(e.Message);
            return ExitCodes.Failed;
        }
    }

    /// <summary>net up --json (docs/json-output.md): the lease as it was applied.</summary>
    public static void WriteJson(Stream output, NetworkLease l) => JsonOutput.WriteObject(output, w =>
    {
        w.WriteString("interface", l.Interface);
        w.WriteString("address", l.Address);
        w.WriteNumber("prefix_length", l.PrefixLength);
        w.WriteString("gateway", l.Gateway);
        w.StringArray("dns", l.Dns);
        w.WriteString("domain", l.Domain);
        w.WriteString("source", l.Source);
        w.WriteString("server", l.Server);
        w.NumberOrNull("lease_seconds", l.LeaseTime is { } t ? (long)t.TotalSeconds : null);
        w.WriteString("mac", l.Mac);
    });
}

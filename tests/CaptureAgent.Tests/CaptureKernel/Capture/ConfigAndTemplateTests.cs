using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Filtering;
using CaptureAgent.Kexec;
using CaptureAgent.Targets;
using CaptureAgent.Targets.Nfs;
using Xunit;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

public class ConfigAndTemplateTests
{
    [Fact]
    public void TargetsKeepTheirOrderAndEveryKindParses()
    {
        var c = AgentConfig.Parse("""
            target = nfs:10.0.2.2:/srv/crash
            target = nfs:[fd00::2]:/export
            target = ssh:kdump@collector.example:2222
            target = UUID=0f2c0d8e-6f7e-4d41-9c1b-3a6d2b6e9a10
            target = raw:PARTLABEL=crashraw
            target = /dev/vdb1
            """);
        Assert.Empty(c.Errors);
        Assert.Equal([TargetType.Nfs, TargetType.Nfs, TargetType.Ssh, TargetType.Local, TargetType.Raw, TargetType.Local], c.Targets.Select(t => t.Type));
        Assert.Equal(("10.0.2.2", "/srv/crash"), (c.Targets[0].Server, c.Targets[0].Export));
        Assert.Equal(("[fd00::2]", "/export"), (c.Targets[1].Server, c.Targets[1].Export));
        Assert.Equal("kdump@collector.example:2222", c.Targets[2].SshDestination);
        Assert.Equal(new TargetSpec(TargetKind.Uuid, "0f2c0d8e-6f7e-4d41-9c1b-3a6d2b6e9a10"), c.Targets[3].Device);
        Assert.Equal(new TargetSpec(TargetKind.PartLabel, "crashraw"), c.Targets[4].Device);
        Assert.Equal(new TargetSpec(TargetKind.Path, "/dev/vdb1"), c.Targets[5].Device);
        Assert.True(c.NeedsNetwork);
        Assert.Equal("nfs:10.0.2.2:/srv/crash", c.Target);
    }

    [Fact]
    public void NewKeysParseAndBadValuesNameTheirLine()
    {
        var c = AgentConfig.Parse("""
            target = LABEL=dumps
            path = /var/crash/{kver}/{host}-{date}
            fallback_dump_level = 31
            keep_dumps = 3
            keep_size = 20G
            min_free = 512M
            network = 10.0.2.15/24 via 10.0.2.2
            network_interface = 52:54:00:12:34:56
            network_timeout = 15
            dns = 10.0.2.3, 1.1.1.1
            ssh_key = /etc/capture-agent/id_ed25519
            nfs_options = vers=3,soft
            pre_hook = /usr/lib/capture-agent/pre
            pre_hook = /usr/lib/capture-agent/pre2
            post_hook = /usr/lib/capture-agent/post
            target = nfs:collector
            target = ssh:nobody
            keep_size = lots
            network = wifi
            path = /var/{crashtime}
            dns = example.org
            fstype = ntfs
            """, "t.conf");
        Assert.Equal("/var/crash/{kver}/{host}-{date}", c.Path);
        Assert.Equal(DumpLevel.All, c.FallbackDumpLevel);
        Assert.Equal(3, c.KeepDumps);
        Assert.Equal(20L << 30, c.KeepBytes);
        Assert.Equal(512L << 20, c.MinFreeBytes);
        Assert.Equal("10.0.2.15/24 via 10.0.2.2", c.Network);
        Assert.Equal("52:54:00:12:34:56", c.NetworkInterface);
        Assert.Equal(TimeSpan.FromSeconds(15), c.NetworkTimeout);
        Assert.Equal(["10.0.2.3", "1.1.1.1"], c.Dns);
        Assert.Equal("/etc/capture-agent/id_ed25519", c.SshKey);
        Assert.Equal("vers=3,soft", c.NfsOptions);
        Assert.Equal(["/usr/lib/capture-agent/pre", "/usr/lib/capture-agent/pre2"], c.PreHooks);
        Assert.Equal(["/usr/lib/capture-agent/post"], c.PostHooks);
        Assert.Single(c.Targets);   // the two bad targets were refused, the good one kept
        Assert.False(c.NeedsNetwork);
        Assert.Equal(7, c.Errors.Count);
        Assert.StartsWith("t.conf:16: target 'nfs:collector': expected nfs:HOST:/export", c.Errors[0]);
        Assert.StartsWith("t.conf:17: target 'ssh:nobody': expected ssh:user@host", c.Errors[1]);
        Assert.StartsWith("t.conf:18: keep_size must be a size", c.Errors[2]);
        Assert.StartsWith("t.conf:19: network must be dhcp, none or ADDR/PREFIX", c.Errors[3]);
        Assert.StartsWith("t.conf:20: path placeholder '{crashtime}'", c.Errors[4]);
        Assert.StartsWith("t.conf:21: dns must list IP addresses", c.Errors[5]);
        Assert.StartsWith("t.conf:22: fstype must be", c.Errors[6]);
    }

    [Fact]
    public void PathWithoutPlaceholdersGetsTheDefaultLeaf()
    {
        Assert.Equal("/var/crash/{host}-{date}", AgentConfig.Parse("path = /var/crash/").Path);
        Assert.Equal("/var/crash/{host}-{date}", new AgentConfig().Path);
    }

    [Fact]
    public void TemplateExpandsEveryPlaceholderAndCannotEscapeTheTarget()
    {
        var facts = new CrashFacts("web-01", new DateTimeOffset(2026, 11, 23, 6, 40, 5, TimeSpan.Zero), "6.1.0-21-amd64", "4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00");
        Assert.Equal("var/crash/6.1.0-21-amd64/web-01-2026-11-23-06:40:05/4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00",
            PathTemplate.Expand("/var/crash/{kver}/{host}-{date}/{boot_id}", facts));
        Assert.Equal("var/crash/web-01-2026-11-23-06:40:05", PathTemplate.Expand("/var/crash", facts));
        // A hostile nodename in the crashed kernel cannot add path components.
        var evil = facts with { Host = "../../etc", BootId = null };
        string dir = PathTemplate.Expand("/d/{host}/{boot_id}", evil);
        Assert.Equal("d/.._.._etc/unknown-boot", dir);
        Assert.DoesNotContain("..", dir.Split('/'));
        Assert.Equal("unknown", PathTemplate.Expand("/{host}", facts with { Host = ".." }));
        Assert.Contains("unclosed", PathTemplate.Validate("/var/{host"));
        Assert.Contains("must not contain '..'", PathTemplate.Validate("/var/../etc"));
        Assert.Null(PathTemplate.Validate("/var/crash/{host}"));
    }

    [Fact]
    public void NfsMountDataCarriesTheAddressAndTheVersion()
    {
        var ip = System.Net.IPAddress.Parse("10.0.2.2");
        Assert.Equal("soft,timeo=100,retrans=3,vers=4.2,addr=10.0.2.2", NfsMount.MountData(NfsMount.DefaultOptions, "4.2", ip));
        // v3: no lockd in a capture kernel, and the user's own vers=/addr= are replaced.
        Assert.Equal("port=2049,vers=3,nolock,addr=10.0.2.2", NfsMount.MountData("port=2049,vers=4,addr=1.2.3.4", "3", ip));
        Assert.Equal("4.1", NfsMount.RequestedVersion("soft,vers=4.1"));
        Assert.Equal("3", NfsMount.RequestedVersion("nfsvers=3"));
        Assert.Null(NfsMount.RequestedVersion("soft"));
    }

    [Fact]
    public void NfsServerNamesComeFromTheHostsFileOnly()
    {
        using var dir = new TempDir();
        string hosts = dir.File("hosts");
        File.WriteAllText(hosts, "# comment\n127.0.0.1 localhost\n10.1.2.3\tnfs1 nfs1.lab  # the collector\n");
        Assert.Equal("10.1.2.3", NfsMount.ResolveServer("nfs1.lab", hosts).ToString());
        Assert.Equal("fd00::2", NfsMount.ResolveServer("[fd00::2]", hosts).ToString());
        var e = Assert.Throws<IOException>(() => NfsMount.ResolveServer("unknown.example", hosts));
        Assert.Contains("must be an IP address", e.Message);
    }

    [Fact]
    public void BootIdTravelsOnTheCaptureCommandLine()
    {
        string line = CaptureCommandLine.Build("BOOT_IMAGE=/vmlinuz root=/dev/vda1 capture_agent.boot_id=old", bootId: "4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00");
        Assert.Equal("4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00", CaptureCommandLine.Value(line, CaptureCommandLine.BootIdParameter));
        Assert.Single(CaptureCommandLine.Tokenize(line), t => t.StartsWith("capture_agent.boot_id=", StringComparison.Ordinal));
        // Anything that is not a boot id is left out rather than injected into the command line.
        Assert.Null(CaptureCommandLine.Value(CaptureCommandLine.Build("root=/dev/vda1", bootId: "x y"), CaptureCommandLine.BootIdParameter));
    }

    [Fact]
    public void HooksRunWithTheirEnvironmentAndNeverStopTheCapture()
    {
        using var dir = new TempDir();
        string outFile = dir.File("out.txt");
        string shebang = dir.File("with-shebang");
        File.WriteAllText(shebang, $"#!/bin/sh\necho \"$CAPTURE_AGENT_STAGE $CAPTURE_AGENT_STATUS\" >> {outFile}\n");
        string plain = dir.File("plain");
        File.WriteAllText(plain, $"echo plain >> {outFile}\nexit 4\n");
        string noInterpreter = dir.File("no-interpreter");
        File.WriteAllText(noInterpreter, "#!/nonexistent/python\nprint(1)\n");
        string hangs = dir.File("hangs");
        File.WriteAllText(hangs, "#!/bin/sh\nsleep 60\n");
        foreach (var f in new[] { shebang, plain, noInterpreter, hangs })
            File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var messages = new List<string>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int ok = Hooks.Run("post", [shebang, plain, noInterpreter, dir.File("missing"), hangs],
            new Dictionary<string, string> { ["CAPTURE_AGENT_STATUS"] = "complete" }, messages.Add, TimeSpan.FromSeconds(2));
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 30);
        Assert.Equal(1, ok);
        Assert.Equal("post complete\nplain\n", File.ReadAllText(outFile));
        Assert.Contains(messages, m => m.Contains("plain exited with 4"));
        Assert.Contains(messages, m => m.Contains("interpreter /nonexistent/python is not in the image"));
        Assert.Contains(messages, m => m.Contains("missing skipped: not in the image"));
        Assert.Contains(messages, m => m.Contains("hangs killed after 2 s"));
    }
}

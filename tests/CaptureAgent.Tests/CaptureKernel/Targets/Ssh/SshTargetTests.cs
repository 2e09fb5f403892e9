using System.Diagnostics;
using System.Text.Json;
using CaptureAgent.Capture;
using CaptureAgent.Dmesg;
using CaptureAgent.Dump;
using CaptureAgent.Initramfs;
using CaptureAgent.Output;
using CaptureAgent.Targets.Ssh;
using CaptureAgent.Tests.Host.Initramfs;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Tests.Synthetic;
using Xunit;
using Xunit.Abstractions;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Ssh;

/// <summary>Dumps sent to a real sshd on loopback with the system's OpenSSH client.</summary>
[Trait("Category", "Root")]
[Trait("Category", "Fixture")]
public class SshTargetTests(ITestOutputHelper output)
{
    private const UnixFileMode Rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Rwx = Rw | UnixFileMode.UserExecute;

    /// <summary>The real 6.1 vmcore (a missing fixture fails the test with the reason).</summary>
    private static string Vmcore() => Fixtures.Vmcore("6.1-1024");

    private static CrashFacts Facts(DumpSource s) => CaptureJob.Facts(s, null);

    /// <summary>CRC-64/XZ bit by bit: independent of the table-driven code under test.</summary>
    private static string Crc64File(string path)
    {
        ulong crc = ~0UL;
        using var f = File.OpenRead(path);
        var buf = new byte[1 << 20];
        int n;
        while ((n = f.Read(buf)) > 0)
            for (int i = 0; i < n; i++)
            {
                crc ^= buf[i];
                for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xC96C5795D7870F42UL : crc >> 1;
            }
        return (~crc).ToString("x16");
    }

    private static bool SameBytes(string a, string b)
    {
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        if (fa.Length != fb.Length) return false;
        var ba = new byte[1 << 20];
        var bb = new byte[1 << 20];
        int n;
        while ((n = fa.Read(ba)) > 0)
        {
            fb.ReadExactly(bb, 0, n);
            if (!ba.AsSpan(0, n).SequenceEqual(bb.AsSpan(0, n))) return false;
        }
        return true;
    }

    [Fact]
    public void SavesADumpThatRearrangesToTheDirectDumpWithLogAndManifest()
    {
        using var dir = new TempDir();
        using var server = new SshServer();
        string vmcore = Vmcore();
        var options = new DumpOptions { Level = Filtering.DumpLevel.All };
        string collector = dir.File("collector");
        var messages = new List<string>();
        SshSaveResult r;
        CrashFacts facts;
        var clock = Stopwatch.StartNew();
        using (var source = new DumpSource(vmcore))
        {
            facts = Facts(source);
            r = SshTarget.Save(server.Destination(), source, options, facts, collector.TrimStart('/') + "/crashes/host-date", messages.Add);
        }
        output.WriteLine($"saved in {clock.Elapsed.TotalSeconds:0.0} s: {r.VmcoreBytes} bytes; {string.Join(" | ", messages)}");
        Assert.True(r.Complete, r.Reason);
        Assert.Null(r.Reason);
        string d = Path.Combine(collector, "crashes", "host-date");
        Assert.Equal(d, r.RemoteDirectory);
        Assert.Equal($"root@127.0.0.1:{server.Port}:{d}", r.Where);
        Assert.Equal(["dmesg.txt", "manifest.json", "vmcore.flat"], Directory.GetFiles(d).Select(Path.GetFileName).Order());
        Assert.Equal(Rwx, File.GetUnixFileMode(d));
        Assert.Equal(Rwx, File.GetUnixFileMode(Path.Combine(collector, "crashes")));   // mkdir -p under umask 077
        Assert.All(Directory.GetFiles(d), f => Assert.Equal(Rw, File.GetUnixFileMode(f)));

        // The flattened stream, rearranged, is byte for byte the dump written directly to a file.
        using (var flat = File.OpenRead(Path.Combine(d, "vmcore.flat")))
        using (var sink = FileSink.Create(dir.File("rearranged")))
            FlattenedSink.Rearrange(flat, sink);
        using (var source = new DumpSource(vmcore))
        using (var sink = FileSink.Create(dir.File("direct")))
            new KdumpCompressedWriter(source, sink, options).Write();
        Assert.True(SameBytes(dir.File("direct"), dir.File("rearranged")), "rearranged vmcore.flat differs from the direct dump");
        Assert.Equal(new FileInfo(Path.Combine(d, "vmcore.flat")).Length, r.VmcoreBytes);

        var log = new MemoryStream();
        using (var source = new DumpSource(vmcore)) new PrintkLog(source.Kernel!, source.Info!).WriteTo(log);
        Assert.True(log.Length > 1000);
        Assert.Equal(log.ToArray(), File.ReadAllBytes(Path.Combine(d, "dmesg.txt")));

        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(d, "manifest.json")));
        var m = manifest.RootElement;
        Assert.True(m.GetProperty("complete").GetBoolean());
        Assert.Equal("flattened", m.GetProperty("format").GetString());
        Assert.Equal(facts.KernelRelease, m.GetProperty("kernel_release").GetString());
        Assert.Equal(31, m.GetProperty("dump_level").GetInt32());
        var files = m.GetProperty("files").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!);
        Assert.Equal(["dmesg.txt", "vmcore.flat"], files.Keys.Order());
        foreach (var (name, f) in files)
        {
            string path = Path.Combine(d, name);
            Assert.Equal(new FileInfo(path).Length, f.GetProperty("size").GetInt64());
            Assert.Equal(Crc64File(path), f.GetProperty("crc64").GetString());
        }
        Assert.Equal(r.VmcoreCrc64, files["vmcore.flat"].GetProperty("crc64").GetString());
    }

    [Fact]
    public void ATakenNameGetsASuffixAndASymlinkIsRefused()
    {
        using var dir = new TempDir();
        using var server = new SshServer();
        new SyntheticKernel().WriteElf(dir.File("vmcore"));
        using var source = new DumpSource(dir.File("vmcore"));
        string rel = dir.File("c").TrimStart('/') + "/h";
        var first = SshTarget.Save(server.Destination(), source, new DumpOptions(), Facts(source), rel);
        var second = SshTarget.Save(server.Destination(), source, new DumpOptions(), Facts(source), rel);
        Assert.True(first.Complete && second.Complete);
        Assert.Equal(dir.File("c/h") + "-1", second.RemoteDirectory);
        Assert.True(SameBytes(Path.Combine(first.RemoteDirectory, "vmcore.flat"), Path.Combine(second.RemoteDirectory, "vmcore.flat")));

        Directory.CreateDirectory(dir.File("elsewhere"));
        File.CreateSymbolicLink(dir.File("c/link"), dir.File("elsewhere"));
        var e = Assert.ThrowsAny<IOException>(() => SshTarget.Save(server.Destination(), source, new DumpOptions(), Facts(source),
            dir.File("c").TrimStart('/') + "/link"));
        Assert.Contains("is a symbolic link; refusing", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("elsewhere")));
    }

    [Fact]
    public void AWrongHostKeyFailsFastWithoutRetryingAndLeavesNothing()
    {
        using var dir = new TempDir();
        using var server = new SshServer();
        Fixtures.Sh($"ssh-keygen -q -t ed25519 -N '' -f {dir.File("other")}");
        File.WriteAllText(dir.File("known"), $"[127.0.0.1]:{server.Port} {string.Join(' ', File.ReadAllText(dir.File("other.pub")).Split(' ')[..2])}\n");
        new SyntheticKernel().WriteElf(dir.File("vmcore"));
        using var source = new DumpSource(dir.File("vmcore"));
        var messages = new List<string>();
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<SshStepException>(() => SshTarget.Save(server.Destination(retries: 5, knownHosts: dir.File("known")), source,
            new DumpOptions(), Facts(source), dir.File("c").TrimStart('/') + "/h", messages.Add));
        output.WriteLine(e.Message);
        Assert.Contains("Host key verification failed", e.Message);
        Assert.Empty(messages);   // no retry
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.False(Directory.Exists(dir.File("c")));
    }

    [Fact]
    public void AServerThatIsDownIsRetriedThenReportedClearly()
    {
        using var dir = new TempDir();
        new SyntheticKernel().WriteElf(dir.File("vmcore"));
        using var source = new DumpSource(dir.File("vmcore"));
        using var server = new SshServer();
        server.KillAll();
        var messages = new List<string>();
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<SshStepException>(() => SshTarget.Save(server.Destination(retries: 3, pause: TimeSpan.FromMilliseconds(500)),
            source, new DumpOptions(), Facts(source), "tmp/never", messages.Add));
        output.WriteLine(e.Message);
        Assert.Contains("Connection refused", e.Message);
        Assert.Contains("after 4 attempts", e.Message);
        Assert.Equal(3, messages.Count(m => m.Contains("trying again in 0.5 s")));
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.4, 10);
    }

    [Fact]
    public void AServerKilledMidStreamLeavesTheIncompleteFileAndSaysWhy()
    {
        using var dir = new TempDir();
        using var server = new SshServer();
        string vmcore = Vmcore();
        bool killed = false;
        var options = new DumpOptions
        {
            Progress = (done, total) =>
            {
                if (!killed && done >= total / 4 && done > 0) { killed = true; server.KillAll(); }
            },
        };
        string rel = dir.File("c").TrimStart('/') + "/h";
        SshSaveResult r;
        var clock = Stopwatch.StartNew();
        using (var source = new DumpSource(vmcore))
            r = SshTarget.Save(server.Destination(retries: 1), source, options, Facts(source), rel);
        output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s; reason: {r.Reason}; problems: {string.Join(" | ", r.Problems)}");
        Assert.True(killed);
        Assert.False(r.Complete);
        Assert.False(string.IsNullOrWhiteSpace(r.Reason));
        Assert.True(File.Exists(dir.File("c/h/vmcore-incomplete.flat")));
        Assert.False(File.Exists(dir.File("c/h/vmcore.flat")));
        Assert.InRange(new FileInfo(dir.File("c/h/vmcore-incomplete.flat")).Length, FlattenedSink.HeaderSize, r.VmcoreBytes);
        Assert.Contains(r.Problems, p => p.StartsWith("manifest.json not saved"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120));
    }

    [Fact]
    public void TheSshOfTheCaptureImageConnectsFromAChroot()
    {
        using var dir = new TempDir();
        using var server = new SshServer();
        string root = dir.File("root");
        ElfDependenciesTests.BuildAndUnpackSshImage(dir, root,
        [
            new InitramfsFile(server.ClientKey, SshDestination.ImageKeyPath, 0x180),
            new InitramfsFile(server.KnownHosts, SshDestination.ImageKnownHostsPath, 0x1a4),
        ]);
        var dest = SshDestination.Parse($"root@127.0.0.1:{server.Port}");
        Assert.Equal(SshDestination.ImageKeyPath, dest.KeyPath);
        var run = Fixtures.Exec("/usr/sbin/chroot", [root, dest.SshPath, .. SshTarget.Arguments(dest, "echo \"$((6 * 7))\"")], timeoutSeconds: 60);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal("42\n", run.Stdout);
    }

    [Fact]
    public void AnSshThatStopsTakingDataIsKilledAfterTheIdleTimeout()
    {
        using var dir = new TempDir();
        new SyntheticKernel().WriteElf(dir.File("vmcore"));
        Directory.CreateDirectory(dir.File("c"));
        string sleep = $"300.{Random.Shared.Next(100000, 999999)}";
        // Stands in for a hung link: says what the remote shell would, then never reads its input.
        File.WriteAllText(dir.File("ssh"), $$"""
            #!/bin/sh
            for last; do :; done
            case "$last" in
              *mkdir*) echo "dir:{{dir.File("c")}}" ;;
              *) echo ready; exec sleep {{sleep}} ;;
            esac
            """);
        File.SetUnixFileMode(dir.File("ssh"), Rwx);
        var dest = SshDestination.Parse("root@127.0.0.1", dir.File("key"), dir.File("known")) with
        {
            SshPath = dir.File("ssh"), IdleTimeout = TimeSpan.FromSeconds(2),
        };
        using var source = new DumpSource(dir.File("vmcore"));
        var clock = Stopwatch.StartNew();
        var r = SshTarget.Save(dest, source, new DumpOptions { Level = Filtering.DumpLevel.None, Codec = Compression.PageCodec.None },
                               Facts(source), "c/h");
        output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s: {r.Reason}; {string.Join(" | ", r.Problems)}");
        Assert.False(r.Complete);
        Assert.Equal("no progress for 2 s; ssh was stopped", r.Reason);
        Assert.InRange(clock.Elapsed.TotalSeconds, 2, 30);
        Assert.Contains(r.Problems, p => p.StartsWith("kernel log not saved: VMCOREINFO has neither"));   // no empty dmesg.txt.tmp
        Assert.DoesNotContain(Directory.GetFiles(dir.File("c")), f => Path.GetFileName(f).StartsWith("dmesg"));
        // Nothing left running: the fake ssh's exec'd sleep is gone.
        var left = Directory.GetDirectories("/proc").Where(p => int.TryParse(Path.GetFileName(p), out _)).Where(p =>
        {
            try { return File.ReadAllText(Path.Combine(p, "cmdline")).Contains(sleep); }
            catch (IOException) { return false; }
        }).ToList();
        Assert.Empty(left);
    }

    [Theory]
    [InlineData("root@collector", "root", "collector", 22)]
    [InlineData("ssh:dump.user@10.0.0.5:2222", "dump.user", "10.0.0.5", 2222)]
    [InlineData("u@[fe80::1]:22", "u", "fe80::1", 22)]
    [InlineData("u@[2001:db8::7]", "u", "2001:db8::7", 22)]
    public void ParsesDestinations(string text, string user, string host, int port)
    {
        var d = SshDestination.Parse(text);
        Assert.Equal((user, host, port), (d.User, d.Host, d.Port));
        Assert.Equal(SshDestination.DefaultRetries, d.Retries);
    }

    [Theory]
    [InlineData("collector", "expected user@host")]
    [InlineData("root@-oProxyCommand=x", "is not a host name")]
    [InlineData("-l@host", "may hold only")]
    [InlineData("root@host:0", "port '0'")]
    [InlineData("root@host:22x", "port '22x'")]
    [InlineData("root@fe80::1", "in brackets")]
    [InlineData("root@[10.0.0.1]:22", "is not an IPv6 address")]
    [InlineData("root@host name", "is not a host name")]
    public void RefusesBadDestinationsWithOneClearLine(string text, string why)
    {
        var e = Assert.Throws<FormatException>(() => SshDestination.Parse(text));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void QuotingSurvivesTheRemoteShell()
    {
        string nasty = "a'b\"c $HOME `id` \\ ; & | * \n end";
        var r = Fixtures.Exec("/bin/sh", ["-c", "printf %s " + SshTarget.Quote(nasty)]);
        Assert.Equal(nasty, r.Stdout);
    }
}

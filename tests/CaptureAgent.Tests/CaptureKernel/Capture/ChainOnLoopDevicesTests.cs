using CaptureAgent.Capture;
using CaptureAgent.Config;
using CaptureAgent.Initramfs;
using CaptureAgent.Tests.Integration;
using CaptureAgent.Vmcore;
using Xunit;
using CaptureAgent.Formats;

namespace CaptureAgent.Tests.CaptureKernel.Capture;

/// <summary>
/// The target chain on this machine's real block layer: loop devices with real filesystems, found
/// by label through /sys and /dev as in the capture kernel, mounted with mount(2). Needs root.
/// </summary>
[Trait("Category", "Root")]
[Trait("Category", "Fixture")]
public class ChainOnLoopDevicesTests
{
    private sealed class LoopDisk : IDisposable
    {
        public string Device { get; }
        public string Label { get; } = "ca" + Guid.NewGuid().ToString("N")[..8];
        private readonly string _image;

        public LoopDisk(TempDir dir, int mib)
        {
            TestCategory.Require(TestCategory.Root);
            _image = dir.File(Label + ".img");
            Fixtures.Sh($"truncate -s {mib}M {_image} && mkfs.ext4 -q -F -L {Label} {_image}");
            Device = Fixtures.Sh($"losetup --show -f {_image}").Trim();
        }

        /// <summary>Mounts the disk, runs the check, unmounts.</summary>
        public void Inspect(TempDir dir, Action<string> check)
        {
            string mp = Directory.CreateDirectory(dir.File("inspect-" + Label)).FullName;
            // Not -o ro: a mount namespace made meanwhile by a test running beside this one (the ssh
            // server's) holds a copy of the chain's read-write mount, so the filesystem can outlive
            // the chain's umount by a moment, and a read-only mount of it is refused ("would change
            // RO state", seen in CI). A read-write mount shares it; the checks only read.
            Fixtures.Sh($"mount {Device} {mp}");
            try { check(mp); }
            finally { Fixtures.Exec("/bin/umount", [mp]); }
        }

        public void Dispose() => Fixtures.Exec("/sbin/losetup", ["-d", Device]);
    }

    [Fact]
    public void MissingDeviceThenFullDiskThenARoomyOne()
    {
        using var dir = new TempDir();
        using var tiny = new LoopDisk(dir, 8);
        using var roomy = new LoopDisk(dir, 96);
        var config = AgentConfig.Parse($"""
            target = LABEL=absent-{Guid.NewGuid():N}
            target = LABEL={tiny.Label}
            target = LABEL={roomy.Label}
            device_timeout = 2
            path = /var/crash/{"{kver}"}/{"{host}"}-{"{date}"}
            min_free = 0
            """);
        Assert.Empty(config.Errors);
        var messages = new List<string>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var outcomes = new CaptureChain(config, Fixtures.Vmcore("6.1-1024"), messages.Add, Directory.CreateDirectory(dir.File("mnt")).FullName, "4e1f0c5a-9d6b-4c1e-8b43-7e2f3a1d5c00").Run();
        Assert.Equal(3, outcomes.Count);
        Assert.False(outcomes[0].Saved);
        Assert.Contains("absent", outcomes[0].Message);
        Assert.True(outcomes[1].Saved && !outcomes[1].Complete, outcomes[1].Message);
        Assert.True(outcomes[2].Complete, outcomes[2].Message);
        Assert.Contains(messages, m => m.Contains("trying the next target"));
        Assert.InRange(clock.Elapsed.TotalSeconds, 2, 120);

        tiny.Inspect(dir, mp =>
        {
            var d = Directory.GetDirectories(Path.Combine(mp, "var", "crash", Fixtures.Release("6.1-1024"))).Single();
            Assert.True(File.Exists(Path.Combine(d, "dmesg.txt")));
            using var kd = new KdumpFile(Path.Combine(d, "vmcore-incomplete"));
            Assert.True(kd.Incomplete);
            Assert.False(DumpManifest.Parse(File.ReadAllText(Path.Combine(d, DumpManifest.FileName))).Complete);
        });
        roomy.Inspect(dir, mp =>
        {
            var d = Directory.GetDirectories(Path.Combine(mp, "var", "crash", Fixtures.Release("6.1-1024"))).Single();
            Assert.StartsWith("unknown-host-", Path.GetFileName(d));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(d));
            using var kd = new KdumpFile(Path.Combine(d, "vmcore"));
            Assert.False(kd.Incomplete);
            Assert.Equal(kd.DumpablePages, kd.Scan().Ok);
            Assert.True(DumpManifest.Parse(File.ReadAllText(Path.Combine(d, DumpManifest.FileName))).Complete);
        });
    }

    [Fact]
    public void ConfigDecidesWhatTheImageCarries()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("etc/capture-agent"));
        File.WriteAllText(dir.File("etc/capture-agent/key"), "KEY");
        Directory.CreateDirectory(dir.File("usr/lib/capture-agent"));
        File.WriteAllText(dir.File("usr/lib/capture-agent/pre.sh"), "#!/bin/sh\ntrue\n");
        var config = AgentConfig.Parse("""
            target = nfs:10.0.2.2:/export
            target = ssh:kdump@10.0.2.2
            ssh_key = /etc/capture-agent/key
            ssh_known_hosts = /etc/capture-agent/known_hosts
            pre_hook = /usr/lib/capture-agent/pre.sh
            post_hook = /usr/lib/capture-agent/missing
            """);
        var needs = ConfigContent.For(config, dir.Path);
        Assert.Equal(["nfsv4", "nfsv3"], needs.Modules);
        Assert.Equal([ConfigContent.SshClient], needs.Executables);
        Assert.Equal([("/etc/capture-agent/key", 0x180), ("/usr/lib/capture-agent/pre.sh", 0x1c0)], needs.Files.Select(f => (f.Destination, f.Mode)));
        Assert.Contains(needs.Notes, n => n.Contains("ssh_known_hosts /etc/capture-agent/known_hosts does not exist"));
        Assert.Contains(needs.Notes, n => n.Contains("hook /usr/lib/capture-agent/missing does not exist"));
        Assert.Contains(needs.Notes, n => n.Contains("pre.sh is a script"));
        Assert.Empty(ConfigContent.For(AgentConfig.Parse("target = LABEL=x"), dir.Path).Modules);
    }
}

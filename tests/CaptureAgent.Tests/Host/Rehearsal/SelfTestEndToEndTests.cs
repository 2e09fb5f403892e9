using System.Text.Json;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.Host.Rehearsal;

/// <summary>
/// `capture-agent selftest` for real: the published binary is installed into a scratch root that
/// holds the cached Debian 6.1 kernel and its module tree; the kernel hook builds the stored capture
/// initramfs; selftest boots it in QEMU (TCG), crashes the VM's first kernel, and reads the dump
/// back from the scratch disk. drgn, independently, must open that dump and find the sysrq crash.
/// </summary>
[Collection("VirtualMachines")]   // one QEMU boot at a time
[Trait("Category", "Vm")]
public class SelfTestEndToEndTests(ITestOutputHelper log)
{
    internal static string Release => Fixtures.Kernel("6.1").Release;

    internal sealed class InstalledRoot : IDisposable
    {
        public TempDir Dir { get; } = new();
        public string Root => Dir.File("root");

        public InstalledRoot(string config)
        {
            string kdir = Fixtures.Kernel("6.1").Root;
            string kernel = Path.Combine(kdir, "boot", $"vmlinuz-{Release}");
            Assert.True(File.Exists(kernel), $"{kernel} is missing: run scripts/fixtures.sh (it caches the Debian kernel)");
            Directory.CreateDirectory(Path.Combine(Root, "boot"));
            Directory.CreateDirectory(Path.Combine(Root, "lib", "modules"));
            Directory.CreateDirectory(Path.Combine(Root, "etc"));
            File.Copy(kernel, Path.Combine(Root, "boot", $"vmlinuz-{Release}"));
            File.CreateSymbolicLink(Path.Combine(Root, "lib", "modules", Release), Path.Combine(kdir, "lib", "modules", Release));
            File.WriteAllText(Path.Combine(Root, "etc", "capture-agent.conf"), config);
            var install = Fixtures.Exec(Fixtures.Binary, ["install", "--root", Root, "--no-enable"]);
            Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
            // What the kernel package runs when this kernel is installed.
            var hook = Fixtures.Exec("/usr/bin/env", [$"CAPTURE_AGENT_ROOT={Root}", "/bin/sh", Path.Combine(Root, "etc/kernel/postinst.d/capture-agent"), Release, $"/boot/vmlinuz-{Release}"],
                timeoutSeconds: 300);
            Assert.True(hook.ExitCode == 0, hook.Stdout + hook.Stderr);
            Assert.True(File.Exists(Path.Combine(Root, "var/lib/capture-agent", Release, "initramfs.img")), hook.Stdout + hook.Stderr);
        }

        public void Dispose() => Dir.Dispose();
    }

    private (int ExitCode, JsonElement Json, string Stderr) SelfTest(InstalledRoot r, string work, params string[] extra)
    {
        var run = Fixtures.Exec(Fixtures.Binary, ["selftest", "--root", r.Root, "--kernel-version", Release, "--work", work, "--json", .. extra], timeoutSeconds: 1200);
        log.WriteLine(run.Stderr);
        log.WriteLine(run.Stdout);
        using var doc = JsonDocument.Parse(run.Stdout);
        return (run.ExitCode, doc.RootElement.Clone(), run.Stderr);
    }

    [Fact]
    public void AnInstalledHostPassesAndDrgnReadsTheDumpFromTheScratchDisk()
    {
        using var root = new InstalledRoot("target = LABEL=crashdump\nfstype = ext4\npath = /var/crash\ndump_level = 31\nextra_modules = virtio_pci virtio_blk\ndevice_timeout = 30\n");
        string work = root.Dir.File("work");
        var (rc, json, stderr) = SelfTest(root, work, "--crashkernel", "256M", "--keep");
        Assert.True(rc == 0, stderr);
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.Equal("complete dump saved", json.GetProperty("outcome").GetString());
        Assert.Equal("ext4 LABEL=crashdump on Virtio", json.GetProperty("scratch_disk").GetString());
        Assert.StartsWith("complete, ", json.GetProperty("verify").GetString());
        Assert.Equal("debugfs", json.GetProperty("read_back").GetString());   // ext4: read from the image file, no loop device
        Assert.Equal("sysrq triggered crash", json.GetProperty("panic_message").GetString());
        Assert.Equal(256L << 20, json.GetProperty("crashkernel_bytes").GetInt64());
        Assert.InRange(json.GetProperty("agent_peak_kib").GetInt64(), 1, 24 * 1024);
        string dumpDir = json.GetProperty("dump_directory").GetString()!;
        Assert.StartsWith("/var/crash/", dumpDir);

        // Independently of our reader: drgn opens the vmcore on the kept scratch disk.
        string mnt = root.Dir.File("mnt");
        Directory.CreateDirectory(mnt);
        var mount = Fixtures.Exec("/bin/mount", ["-o", "loop,ro", Path.Combine(work, "scratch.img"), mnt]);
        Assert.True(mount.ExitCode == 0, mount.Stderr);
        try
        {
            string vmcore = Path.Combine(mnt, dumpDir.TrimStart('/'), "vmcore");
            Assert.Equal("600", Convert.ToString((int)File.GetUnixFileMode(vmcore), 8));
            var drgn = Fixtures.Exec("/usr/bin/drgn", ["-q", "-c", vmcore, "-s", Fixtures.Vmlinux("6.1-1024"), Fixtures.OracleScript("drgn_check.py")], timeoutSeconds: 600);
            log.WriteLine(drgn.Stdout + drgn.Stderr);
            Assert.Contains($"release {Release}", drgn.Stdout);
            Assert.Contains("sysrq_handle_crash", drgn.Stdout);
        }
        finally
        {
            Fixtures.Exec("/bin/umount", [mnt]);
        }

        // Nothing of the scratch root's own files was touched besides the store.
        Assert.Equal("target = LABEL=crashdump\nfstype = ext4\npath = /var/crash\ndump_level = 31\nextra_modules = virtio_pci virtio_blk\ndevice_timeout = 30\n",
            File.ReadAllText(Path.Combine(root.Root, "etc/capture-agent.conf")));
    }

    [Fact]
    public void APartitionTargetOnAnotherFilesystemAndAReservationTooSmall()
    {
        // PARTUUID= on xfs, no disk driver named: the capture kernel's built-in nvme is what the scratch disk uses.
        const string partUuid = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2";
        using var root = new InstalledRoot($"target = PARTUUID={partUuid}\nfstype = xfs\npath = /var/crash\ndump_level = 31\ndevice_timeout = 30\n");
        var (rc, json, stderr) = SelfTest(root, root.Dir.File("work"), "--crashkernel", "256M");
        Assert.True(rc == 0, stderr);
        Assert.Equal($"xfs PARTUUID={partUuid} on Nvme", json.GetProperty("scratch_disk").GetString());
        Assert.Equal("loop mount", json.GetProperty("read_back").GetString());
        Assert.StartsWith("complete, ", json.GetProperty("verify").GetString());
        Assert.False(File.Exists(Path.Combine(root.Dir.File("work"), "scratch.img")));   // removed without --keep

        // 64M: the capture kernel cannot even reach /init. The self-test fails and says where. It
        // mostly runs out of memory saying so; once in CI it fell silent instead (then it is stopped
        // as hung after 240 s, not after the 900 s timeout, and is not taken for a panic).
        (rc, json, stderr) = SelfTest(root, root.Dir.File("work-small"), "--crashkernel", "64M");
        Assert.Equal(1, rc);
        Assert.False(json.GetProperty("passed").GetBoolean());
        Assert.StartsWith("FAILED: ", json.GetProperty("summary").GetString());
        string outcome = json.GetProperty("outcome").GetString()!;
        Assert.True(outcome == "out of memory before /init (capture kernel boot)"
            || outcome == "the capture kernel hung (no console output for 240 s) before the agent started", outcome);
        Assert.DoesNotContain("capture-agent: capture kernel started", File.ReadAllText(json.GetProperty("console_log").GetString()!));
    }
}

using System.Diagnostics;
using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;
using Xunit.Abstractions;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>
/// The whole path on a real kernel: an ext4 image attached read-only as a loop device, found by
/// UUID through this machine's /sys and devtmpfs /dev. Needs root and a loop driver; says so and
/// passes without them (a container may not allow it).
/// </summary>
[Trait("Category", "Root")]
public class RealBlockDeviceTests(ITestOutputHelper output)
{
    private const string Uuid = "c0ffee00-1234-4abc-8def-0123456789ab";

    [Fact]
    public void FindsALoopDeviceByUuidThroughTheRealSysfs()
    {
        TestCategory.Require(TestCategory.Root);
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "loop.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", Uuid, "-L", "realloop", image]);
        var attach = Fixtures.Exec("/usr/sbin/losetup", ["--show", "-f", "-r", image]);
        Assert.True(attach.ExitCode == 0 && attach.Stdout.StartsWith("/dev/loop", StringComparison.Ordinal),
            $"this test needs a loop device (root and the loop driver): losetup said {attach.Stderr.Trim()}");
        string node = attach.Stdout.Trim();
        string name = Path.GetFileName(node);
        try
        {
            var locator = new TargetLocator() { Report = output.WriteLine };
            var match = locator.WaitFor(TargetSpec.Parse("UUID=" + Uuid), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100));
            Assert.Equal(node, match.Node);
            Assert.Equal(("ext4", "realloop"), (match.Volume.Type, match.Volume.Label));
            Assert.Equal(16L << 20, match.Device!.SizeBytes);
            Assert.True(match.Device.ReadOnly);
            Assert.Equal(node, locator.Find(TargetSpec.Parse("LABEL=realloop"), out _)!.Node);
            Assert.Equal(node, locator.Find(TargetSpec.Parse(node), out _)!.Node);
            // Straight from the block device node (stat gives no length: the sysfs size stands in).
            Assert.Equal(Uuid, SuperblockProbe.ProbePath(node, confineTo: "/dev").Uuid);
            Assert.Equal(Blkid.Export(node)["UUID"], SuperblockProbe.ProbePath(node).Uuid);

            var chain = BlockDeviceModules.Resolve(name, "ext4");
            output.WriteLine($"{name}: modules {string.Join(' ', chain.Modules)}; notes: {string.Join("; ", chain.Notes)}");
            Assert.Contains(chain.Notes, n => n.Contains("loop device", StringComparison.Ordinal));
        }
        finally
        {
            Fixtures.Exec("/usr/sbin/losetup", ["-d", node]);
        }
    }

    /// <summary>
    /// Another process holding an exclusive flock on the device (udevadm lock, systemd-repart) makes
    /// .NET's open fail: it takes a shared advisory lock on every read-only open unless the
    /// System.IO.DisableFileLocking switch is set. The probe must say so, not throw.
    /// </summary>
    [Fact]
    public void AnotherProcesssExclusiveLockIsReportedNotThrown()
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "locked.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "locked", image]);
        using var holder = Process.Start(new ProcessStartInfo("/usr/bin/flock", ["-x", image, "sleep", "20"]) { UseShellExecute = false })!;
        try
        {
            Thread.Sleep(300);
            Assert.False(holder.HasExited);
            var probe = SuperblockProbe.ProbePath(image);
            output.WriteLine(probe.Describe());
            if (AppContext.TryGetSwitch("System.IO.DisableFileLocking", out bool disabled) && disabled)
                Assert.Equal("locked", probe.Label);
            else
                Assert.Contains("being used by another process", probe.Problem);
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
    }
}

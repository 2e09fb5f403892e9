using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.Targets;

public class TargetTests
{
    private static Dictionary<string, string> Blkid(string image)
    {
        var r = Fixtures.Exec("/usr/sbin/blkid", ["-p", "-o", "export", image]);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
    }

    [Theory]
    [InlineData("ext4", "/usr/sbin/mkfs.ext4", "-q -F -U {0} -L {1}")]
    [InlineData("ext3", "/usr/sbin/mkfs.ext3", "-q -F -U {0} -L {1}")]
    [InlineData("ext2", "/usr/sbin/mkfs.ext2", "-q -F -U {0} -L {1}")]
    [InlineData("xfs", "/usr/sbin/mkfs.xfs", "-q -f -m uuid={0} -L {1}")]
    [InlineData("btrfs", "/usr/sbin/mkfs.btrfs", "-q -f -U {0} -L {1}")]
    public void ProbeAgreesWithBlkid(string type, string mkfs, string options)
    {
        Assert.True(File.Exists(mkfs), $"{mkfs} missing: apt-get install e2fsprogs xfsprogs btrfs-progs");
        using var dir = new TempDir();
        string image = dir.File("fs.img");
        using (var f = File.Create(image)) f.SetLength(320L << 20);
        string uuid = Guid.NewGuid().ToString();
        string label = "dump" + type;
        var args = string.Format(options, uuid, label).Split(' ').Append(image);
        var r = Fixtures.Exec(mkfs, args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var probe = FilesystemProbe.Probe(image);
        var blkid = Blkid(image);
        Assert.NotNull(probe);
        Assert.Equal(blkid["TYPE"], probe!.Type);
        Assert.Equal(type, probe.Type);
        Assert.Equal(blkid["UUID"], probe.Uuid);
        Assert.Equal(uuid, probe.Uuid);
        Assert.Equal(label, probe.Label);
    }

    [Fact]
    public void GarbageAndShortInputAreUnknown()
    {
        Assert.Null(FilesystemProbe.Probe(new byte[10]));
        var junk = new byte[200_000];
        new Random(7).NextBytes(junk);
        Assert.Null(FilesystemProbe.Probe(junk));
        Assert.Null(FilesystemProbe.Probe("/nonexistent/device"));
    }

    /// <summary>A fake /sys and /dev: two disks, one with an ext4 image as its node.</summary>
    [Fact]
    public void FindsTargetsByPathUuidAndLabelAndTimesOutWithWhatItSaw()
    {
        using var dir = new TempDir();
        string sys = dir.File("sys"), dev = Directory.CreateDirectory(dir.File("dev")).FullName;
        foreach (var (name, mm) in new[] { ("vda", "254:0"), ("vdb", "254:16"), ("loop0", "7:0") })
        {
            var d = Directory.CreateDirectory(Path.Combine(sys, "class", "block", name)).FullName;
            File.WriteAllText(Path.Combine(d, "dev"), mm + "\n");
            File.WriteAllText(Path.Combine(d, "size"), "655360\n");
        }
        File.WriteAllBytes(Path.Combine(dev, "vda"), new byte[4096]);
        using (var f = File.Create(Path.Combine(dev, "vdb"))) f.SetLength(320L << 20);
        string uuid = Guid.NewGuid().ToString();
        Assert.Equal(0, Fixtures.Exec("/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", uuid, "-L", "crashes", Path.Combine(dev, "vdb")]).ExitCode);

        Assert.Equal(Path.Combine(dev, "vdb"), new DeviceSpec($"UUID={uuid.ToUpperInvariant()}").WaitFor(TimeSpan.FromSeconds(1), sys, dev).Node);
        var byLabel = new DeviceSpec("LABEL=crashes").WaitFor(TimeSpan.FromSeconds(1), sys, dev);
        Assert.Equal("ext4", byLabel.Filesystem!.Type);
        Assert.Equal(Path.Combine(dev, "vda"), new DeviceSpec(Path.Combine(dev, "vda")).WaitFor(TimeSpan.FromSeconds(1), sys, dev).Node);

        var fake = TimeSpan.Zero;
        int sleeps = 0;
        var e = Assert.Throws<IOException>(() => new DeviceSpec("LABEL=nothere").WaitFor(TimeSpan.FromSeconds(30), sys, dev,
            () => fake, d => { fake += d; sleeps++; }));
        Assert.Equal(120, sleeps);
        Assert.Contains("no block device matching LABEL=nothere after 30 s", e.Message);
        Assert.Contains("vdb (ext4 LABEL=crashes)", e.Message);
        Assert.Contains("vda (unknown)", e.Message);
        Assert.DoesNotContain("loop0", e.Message);
        Assert.Throws<ArgumentException>(() => new DeviceSpec("vda"));
    }
}

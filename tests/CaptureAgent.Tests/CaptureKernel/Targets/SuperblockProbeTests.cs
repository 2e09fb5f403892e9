using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>Superblock probing against mkfs-made images, with blkid -p as the oracle.</summary>
public class SuperblockProbeTests
{
    private const string Uuid = "3f1c2a9e-5b7d-4e21-9c0a-7d5e1b2c3a4f";

    public static TheoryData<string, string, string[], int> Filesystems => new()
    {
        // name, tool, arguments ({U} uuid, {L} label), image MiB
        { "ext4", "/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext4 4k blocks", "/usr/sbin/mkfs.ext4", ["-q", "-F", "-b", "4096", "-U", "{U}", "-L", "{L}"], 64 },
        { "ext4 no journal", "/usr/sbin/mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext4 no metadata_csum", "/usr/sbin/mkfs.ext4", ["-q", "-F", "-O", "^metadata_csum", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext3", "/usr/sbin/mkfs.ext3", ["-q", "-F", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext3 without journal is ext2", "/usr/sbin/mkfs.ext3", ["-q", "-F", "-O", "^has_journal", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext2", "/usr/sbin/mkfs.ext2", ["-q", "-F", "-U", "{U}", "-L", "{L}"], 16 },
        { "ext2 with extents is ext4", "/usr/sbin/mkfs.ext2", ["-q", "-F", "-O", "extent", "-U", "{U}", "-L", "{L}"], 16 },
        { "jbd", "/usr/sbin/mke2fs", ["-q", "-F", "-O", "journal_dev", "-U", "{U}", "-L", "{L}"], 16 },
        { "xfs", "/usr/sbin/mkfs.xfs", ["-q", "-f", "-m", "uuid={U}", "-L", "{L}"], 320 },
        { "xfs 4k sectors", "/usr/sbin/mkfs.xfs", ["-q", "-f", "-s", "size=4096", "-m", "uuid={U}", "-L", "{L}"], 320 },
        { "xfs v4", "/usr/sbin/mkfs.xfs", ["-q", "-f", "-m", "crc=0,uuid={U}", "-L", "{L}"], 320 },
        { "btrfs", "/usr/sbin/mkfs.btrfs", ["-q", "-f", "-U", "{U}", "-L", "{L}"], 160 },
        { "vfat 12", "/usr/sbin/mkfs.vfat", ["-F", "12", "-i", "1a2b3c4d", "-n", "{L}"], 8 },
        { "vfat 16", "/usr/sbin/mkfs.vfat", ["-F", "16", "-i", "00c0ffee", "-n", "{L}"], 64 },
        { "vfat 32", "/usr/sbin/mkfs.vfat", ["-F", "32", "-i", "deadbeef", "-n", "{L}"], 300 },
        { "vfat no label", "/usr/sbin/mkfs.vfat", ["-F", "32", "-i", "deadbeef"], 300 },
        { "swap", "/usr/sbin/mkswap", ["-U", "{U}", "-L", "{L}"], 8 },
        { "swap no label", "/usr/sbin/mkswap", ["-U", "{U}"], 8 },
        { "ext4 no label", "/usr/sbin/mkfs.ext4", ["-q", "-F", "-U", "{U}"], 16 },
        { "xfs no label", "/usr/sbin/mkfs.xfs", ["-q", "-f", "-m", "uuid={U}"], 320 },
        { "btrfs no label", "/usr/sbin/mkfs.btrfs", ["-q", "-f", "-U", "{U}"], 160 },
    };

    [Theory]
    [MemberData(nameof(Filesystems))]
    public void AgreesWithBlkid(string name, string tool, string[] arguments, int megabytes)
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "fs.img", megabytes);
        string label = LabelFor(name, tool);
        Blkid.Run(tool, arguments.Select(a => a.Replace("{U}", Uuid).Replace("{L}", label)).Append(image));

        var probe = SuperblockProbe.ProbePath(image);
        var blkid = Blkid.Export(image);
        Assert.True(blkid.ContainsKey("TYPE"), $"blkid found nothing on the {name} image");
        Assert.Null(probe.Problem);
        Assert.Equal(blkid["TYPE"], probe.Type);
        Assert.Equal(blkid.GetValueOrDefault("UUID"), probe.Uuid);
        Assert.Equal(blkid.GetValueOrDefault("LABEL"), probe.Label);
        Assert.Equal(blkid.GetValueOrDefault("UUID_SUB"), probe.SubUuid);
        if (blkid.TryGetValue("VERSION", out var version) && probe.Type is "vfat" or "swap") Assert.Equal(version, probe.Version);
        Assert.Empty(probe.AlsoFound);
        if (!tool.EndsWith("vfat", StringComparison.Ordinal) && arguments.Contains("{U}")) Assert.Equal(Uuid, probe.Uuid);
        if (arguments.Contains("{L}")) Assert.Equal(label, probe.Label);

        // The same bytes through the in-memory entry point.
        var head = new byte[Math.Min(new FileInfo(image).Length, 1L << 20)];
        using (var f = File.OpenRead(image)) f.ReadExactly(head);
        Assert.Equal(probe.Type, SuperblockProbe.Probe(head).Type);
    }

    private static string LabelFor(string name, string tool) =>
        tool.EndsWith("vfat", StringComparison.Ordinal) ? "DUMP " + name[^2..].ToUpperInvariant()   // 11 chars, blkid keeps the inner space
        : tool.EndsWith("xfs", StringComparison.Ordinal) ? "crash xfs"                             // 12 bytes at most
        : "crash dump " + name.Split(' ')[0];

    [Fact]
    public void FullLengthAndNonAsciiLabelsAgreeWithBlkid()
    {
        using var dir = new TempDir();
        string ext = Blkid.Image(dir, "ext.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "dump-ünïcødé", ext]);   // 16 bytes of UTF-8, no NUL
        Assert.Equal(Blkid.Value(ext, "LABEL"), SuperblockProbe.ProbePath(ext).Label);
        Assert.Equal("dump-ünïcødé", SuperblockProbe.ProbePath(ext).Label);

        string btrfs = Blkid.Image(dir, "btrfs.img", 160);
        string longLabel = new string('x', 200) + " end";
        Blkid.Run("/usr/sbin/mkfs.btrfs", ["-q", "-f", "-L", longLabel, btrfs]);
        Assert.Equal(longLabel, SuperblockProbe.ProbePath(btrfs).Label);
        Assert.Equal(Blkid.Export(btrfs)["LABEL"], SuperblockProbe.ProbePath(btrfs).Label);
    }

    /// <summary>
    /// A torn superblock: the kernel would refuse it, the filesystem's own tools call the checksum
    /// bad, newer blkid (2.39+) rejects it; so is it here, else we would try to mount garbage. (The
    /// blkid 2.38 of Debian 12 still reports such superblocks, so it is not the oracle here.)
    /// </summary>
    [Theory]
    [InlineData("ext4", 16, 1024 + 0x78)]          // label byte (metadata_csum is on by default)
    [InlineData("xfs", 320, 108)]                  // v5 fname byte
    [InlineData("btrfs", 160, 0x10000 + 0x12B)]    // label byte
    public void BadChecksumIsRejectedLikeTheFilesystemsOwnTools(string type, int megabytes, long offset)
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "fs.img", megabytes);
        Blkid.Run("/usr/sbin/mkfs." + type, [type == "ext4" ? "-F" : "-f", "-q", "-L", "good", image]);
        Assert.Equal(type, SuperblockProbe.ProbePath(image).Type);
        Assert.True(ChecksumGood(type, image));
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = offset;
            f.WriteByte((byte)'X');
        }
        Assert.False(ChecksumGood(type, image));
        var probe = SuperblockProbe.ProbePath(image);
        Assert.False(probe.IsKnown);
        Assert.Null(probe.Problem);
        Assert.Equal($"unknown: {(type == "ext4" ? "ext" : type)} superblock checksum mismatch", probe.Describe());
    }

    private static bool ChecksumGood(string type, string image) => type switch
    {
        "ext4" => Fixtures.Exec("/usr/sbin/dumpe2fs", ["-h", image]).ExitCode == 0,
        "xfs" => Fixtures.Exec("/usr/sbin/xfs_db", ["-r", "-c", "sb 0", "-c", "p crc", image]).Stdout.Contains("(correct)"),
        _ => Fixtures.Exec("/usr/bin/btrfs", ["inspect-internal", "dump-super", image]).Stdout
            .Split('\n').Any(l => l.StartsWith("csum\t", StringComparison.Ordinal) && l.EndsWith("[match]", StringComparison.Ordinal)),
    };

    [Fact]
    public void GarbageEmptyAndShortInputAreUnknown()
    {
        Assert.Equal(VolumeIdentity.Unknown, SuperblockProbe.Probe(ReadOnlyMemory<byte>.Empty));
        Assert.Equal(VolumeIdentity.Unknown, SuperblockProbe.Probe(new byte[200_000]));
        var random = new Random(12345);
        for (int i = 0; i < 50; i++)
        {
            var junk = new byte[random.Next(0, 140_000)];
            random.NextBytes(junk);
            Assert.False(SuperblockProbe.Probe(junk).IsKnown);
        }
        // Signatures alone, with nonsense around them, are not enough.
        var fake = new byte[140_000];
        "XFSB"u8.CopyTo(fake);
        fake[1024 + 0x38] = 0x53; fake[1024 + 0x39] = 0xEF; fake[1024 + 0x18] = 0xFF;
        "_BHRfS_M"u8.CopyTo(fake.AsSpan(0x10040));
        Assert.False(SuperblockProbe.Probe(fake).IsKnown);
    }

    /// <summary>Every prefix of real images, and random damage to them: never an exception, truncation never half-parsed.</summary>
    [Fact]
    public void TruncatedAndDamagedImagesNeverThrow()
    {
        using var dir = new TempDir();
        var images = new List<byte[]>();
        foreach (var (tool, mb, args) in new (string, int, string[])[]
        {
            ("/usr/sbin/mkfs.ext4", 16, ["-q", "-F", "-L", "t"]),
            ("/usr/sbin/mkfs.xfs", 320, ["-q", "-f", "-L", "t"]),
            ("/usr/sbin/mkfs.btrfs", 160, ["-q", "-f", "-L", "t"]),
            ("/usr/sbin/mkfs.vfat", 64, ["-n", "T"]),
            ("/usr/sbin/mkswap", 8, ["-L", "t"]),
        })
        {
            string image = Blkid.Image(dir, Path.GetFileName(tool) + ".img", mb);
            Blkid.Run(tool, args.Append(image));
            var head = new byte[128 * 1024];
            using (var f = File.OpenRead(image)) f.ReadExactly(head);
            images.Add(head);
        }
        foreach (var head in images)
        {
            string full = SuperblockProbe.Probe(head).Type;
            Assert.NotEqual(VolumeIdentity.UnknownType, full);
            // Cut before the end of the structure the type lives in: unknown, never a guess from half a superblock.
            int needed = full switch { "ext4" => 2048, "xfs" => 512, "btrfs" => 0x10000 + 4096, "vfat" => 512, _ => 4096 };
            foreach (int cut in new[] { 0, 1, 511, 1023, 1024, 1500, needed - 1 }.Where(c => c < needed))
                Assert.NotEqual(full, SuperblockProbe.Probe(head.AsMemory(0, Math.Min(cut, head.Length))).Type);
            for (int cut = 0; cut <= head.Length; cut += 1531) SuperblockProbe.Probe(head.AsMemory(0, cut));
            var random = new Random(full.Length);
            for (int round = 0; round < 300; round++)
            {
                var damaged = (byte[])head.Clone();
                for (int k = 0; k < 16; k++) damaged[random.Next(0, 70_000)] = (byte)random.Next(256);
                SuperblockProbe.Probe(damaged);   // must not throw, whatever it answers
            }
        }
    }

    /// <summary>Probing a 320 MiB filesystem reads a few blocks, not megabytes.</summary>
    [Fact]
    public void ReadsAreBounded()
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "vfat.img", 300);
        Blkid.Run("/usr/sbin/mkfs.vfat", ["-F", "32", "-n", "B", image]);
        var counting = new CountingSource(File.ReadAllBytes(image));
        Assert.Equal("vfat", SuperblockProbe.Probe(counting).Type);
        Assert.InRange(counting.BytesRead, 1, 160 * 1024);
        Assert.InRange(counting.Reads, 1, 24);

        var empty = new CountingSource(new byte[64 << 20]);
        Assert.False(SuperblockProbe.Probe(empty).IsKnown);
        Assert.InRange(empty.BytesRead, 1, 160 * 1024);
    }

    private sealed class CountingSource(byte[] image) : BlockSource
    {
        public long BytesRead;
        public int Reads;
        public override long Length => image.Length;

        protected override int ReadAt(long offset, Span<byte> destination)
        {
            Reads++;
            int n = (int)Math.Min(destination.Length, image.Length - offset);
            image.AsSpan((int)offset, n).CopyTo(destination);
            BytesRead += n;
            return n;
        }
    }

    /// <summary>A stale md superblock over a filesystem: the container wins, the filesystem is still named.</summary>
    [Fact]
    public void SecondSignatureIsReportedNotHidden()
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "ext.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "both", image]);
        var head = new byte[128 * 1024];
        using (var f = File.OpenRead(image)) f.ReadExactly(head);
        // A whole md 1.2 superblock (checksummed, as blkid insists too) at 4 KiB.
        Md.MdImages.WriteVersion1(head.AsSpan(4096, 4096), new Md.MdImages.Member(), 8, 16L << 11);
        var probe = SuperblockProbe.Probe(head);
        Assert.Equal("linux_raid_member", probe.Type);
        Assert.Equal(["ext4"], probe.AlsoFound);
        Assert.Equal("linux_raid_member LABEL=host:dump +ext4", probe.Describe());
    }

    [Fact]
    public void ContainersAreNamed()
    {
        var luks = new byte[8192];
        luks[0] = (byte)'L'; luks[1] = (byte)'U'; luks[2] = (byte)'K'; luks[3] = (byte)'S'; luks[4] = 0xBA; luks[5] = 0xBE; luks[7] = 2;
        "0a1b2c3d-1111-2222-3333-444455556666"u8.CopyTo(luks.AsSpan(168));
        "secret-dumps"u8.CopyTo(luks.AsSpan(24));
        var l = SuperblockProbe.Probe(luks);
        Assert.Equal(("crypto_LUKS", "0a1b2c3d-1111-2222-3333-444455556666", "secret-dumps", VolumeUsage.Crypto), (l.Type, l.Uuid, l.Label, l.Usage));

        var md = new byte[8192];
        md[4096] = 0xFC; md[4097] = 0x4E; md[4098] = 0x2B; md[4099] = 0xA9; md[4100] = 1;
        // The magic alone is no member: blkid and the kernel check the superblock's checksum.
        Assert.Equal("unknown", SuperblockProbe.Probe(md).Type);
        Md.MdImages.WriteVersion1(md.AsSpan(4096, 4096), new Md.MdImages.Member(), 8, 16);
        var member = SuperblockProbe.Probe(md);
        Assert.Equal(("linux_raid_member", "01234567-89ab-cdef-fedc-ba9876543210", "host:dump", "1.2"), (member.Type, member.Uuid, member.Label, member.Version));

        var lvm = new byte[8192];
        "LABELONE"u8.CopyTo(lvm.AsSpan(512));
        "LVM2 001"u8.CopyTo(lvm.AsSpan(512 + 24));
        Assert.Equal("LVM2_member", SuperblockProbe.Probe(lvm).Type);
    }

    [Fact]
    public void PathsAreCheckedBeforeOpening()
    {
        using var dir = new TempDir();
        string devRoot = Directory.CreateDirectory(dir.File("dev")).FullName;
        string outside = Blkid.Image(dir, "outside.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", "-L", "outside", outside]);
        File.Copy(outside, Path.Combine(devRoot, "vdb"));
        Directory.CreateDirectory(Path.Combine(devRoot, "disk", "by-label"));

        // A by-label style link that stays in /dev is followed...
        File.CreateSymbolicLink(Path.Combine(devRoot, "disk", "by-label", "inside"), "../../vdb");
        Assert.Equal("ext4", SuperblockProbe.ProbePath(Path.Combine(devRoot, "disk", "by-label", "inside"), confineTo: devRoot).Type);
        // ...one that leaves it is not.
        File.CreateSymbolicLink(Path.Combine(devRoot, "escape"), outside);
        var escaped = SuperblockProbe.ProbePath(Path.Combine(devRoot, "escape"), confineTo: devRoot);
        Assert.False(escaped.IsKnown);
        Assert.Contains("outside", escaped.Problem);
        // Loops, directories and missing nodes are reported, not thrown.
        File.CreateSymbolicLink(Path.Combine(devRoot, "loop-a"), "loop-b");
        File.CreateSymbolicLink(Path.Combine(devRoot, "loop-b"), "loop-a");
        Assert.Contains("symbolic links", SuperblockProbe.ProbePath(Path.Combine(devRoot, "loop-a")).Problem);
        Assert.Contains("directory", SuperblockProbe.ProbePath(devRoot).Problem);
        Assert.Contains("does not exist", SuperblockProbe.ProbePath(Path.Combine(devRoot, "nothing")).Problem);
        Assert.NotNull(SuperblockProbe.ProbePath("").Problem);
    }

    [Fact]
    public void DescribeIsShort()
    {
        Assert.Equal("ext4 LABEL=dump", new VolumeIdentity("ext4", "u", "dump").Describe());
        Assert.Equal("ext4 LABEL=dump UUID=u", new VolumeIdentity("ext4", "u", "dump").Describe(withUuid: true));
        Assert.Equal("unknown", VolumeIdentity.Unknown.Describe());
        Assert.Equal("unreadable: denied", VolumeIdentity.Unreadable("denied").Describe());
    }
}

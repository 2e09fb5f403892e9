using CaptureAgent.Targets;
using CaptureAgent.Targets.Md;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets.Md;

/// <summary>md superblocks read from synthetic member images, checked against mdadm --examine and blkid -p.</summary>
public class MdSuperblockTests
{
    private const long Size = 8L << 20;

    private static List<MdSuperblock> Read(byte[] image) => MdSuperblock.ReadAll(BlockSource.FromBytes(image), image.Length);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Version1IsFoundWhereItsMinorVersionSays(int minor)
    {
        var m = new MdImages.Member { DevNumber = 1, Roles = [0, 1], Events = 0x1_0000_0007 };
        var found = Assert.Single(Read(MdImages.Version1(m, minor, Size)));
        Assert.Equal((1, minor, $"1.{minor}"), (found.MajorVersion, found.MinorVersion, found.Version));
        Assert.Equal("01234567:89abcdef:fedcba98:76543210", found.ArrayUuid);
        Assert.Equal(("host:dump", 1, "raid1", 2), (found.Name, found.Level, found.LevelName, found.RaidDisks));
        Assert.Equal((0x1_0000_0007UL, 1, 1), (found.Events, found.DeviceNumber, found.Role));
        Assert.Equal(2048UL, found.DataOffsetSectors);
        Assert.True(found.IsActiveMember);
        Assert.True(found.Clean);
    }

    [Fact]
    public void Version090SitsInTheLast64KiBAlignedBlock()
    {
        // Not a multiple of 64 KiB: the superblock is at the last aligned 64 KiB below the end.
        long size = Size + 12345L * 512;
        var m = new MdImages.Member { Level = 5, RaidDisks = 3, Events = 0x2_0000_0003, Clean = false };
        var image = MdImages.Version090(m, size, number: 2, role: 2);
        var found = Assert.Single(Read(image));
        Assert.Equal(((size / 512 & ~127L) - 128) * 512, found.Offset);
        Assert.Equal(("0.90", 90), (found.Version, found.MinorVersion));
        Assert.Equal("01234567:89abcdef:fedcba98:76543210", found.ArrayUuid);
        Assert.Equal((5, 3, 2, 2), (found.Level, found.RaidDisks, found.DeviceNumber, found.Role));
        Assert.Equal(0x2_0000_0003UL, found.Events);
        Assert.False(found.Clean);
        Assert.Equal(3, found.RecordedDevices.Count);
        Assert.Null(found.Name);
    }

    [Fact]
    public void ADamagedChecksumIsRejectedWithItsReason()
    {
        var image = MdImages.Version1(new MdImages.Member(), 2, Size);
        image[4096 + 200] ^= 1;   // events
        var rejected = new List<string>();
        Assert.Empty(MdSuperblock.ReadAll(BlockSource.FromBytes(image), image.Length, rejected));
        Assert.Contains(rejected, r => r.Contains("1.2") && r.Contains("checksum mismatch"));
    }

    [Fact]
    public void HostileFieldsAreRefusedNotTrusted()
    {
        var tooManyRoles = MdImages.Version1(new MdImages.Member(), 2, Size);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(tooManyRoles.AsSpan(4096 + 220), 3000);   // max_dev
        var rejected = new List<string>();
        Assert.Empty(MdSuperblock.ReadAll(BlockSource.FromBytes(tooManyRoles), tooManyRoles.Length, rejected));
        Assert.Contains(rejected, r => r.Contains("max_dev 3000"));

        var zeroDisks = MdImages.Version1(new MdImages.Member { RaidDisks = 0 }, 2, Size);
        rejected.Clear();
        Assert.Empty(MdSuperblock.ReadAll(BlockSource.FromBytes(zeroDisks), zeroDisks.Length, rejected));
        Assert.Contains(rejected, r => r.Contains("raid_disks 0"));

        // A 1.2 superblock copied to the 1.1 place says it sits elsewhere: not a 1.1 superblock.
        var moved = MdImages.Version1(new MdImages.Member(), 2, Size);
        moved.AsSpan(4096, 4096).CopyTo(moved);
        moved.AsSpan(4096, 4096).Clear();
        rejected.Clear();
        Assert.Empty(MdSuperblock.ReadAll(BlockSource.FromBytes(moved), moved.Length, rejected));
        Assert.Contains(rejected, r => r.Contains("sector 8"));

        // A dev_number beyond the role table is a spare, never an index out of the block.
        var far = Assert.Single(Read(MdImages.Version1(new MdImages.Member { DevNumber = int.MaxValue }, 2, Size)));
        Assert.Equal(MdSuperblock.RoleSpare, far.Role);
        Assert.False(far.IsActiveMember);

        // Truncated images: no read beyond the end.
        var image = MdImages.Version1(new MdImages.Member(), 2, Size);
        Assert.Empty(MdSuperblock.ReadAll(BlockSource.FromBytes(image.AsMemory(0, 6000)), 6000));
    }

    [Fact]
    public void TheProbeCallsEveryPlacementARaidMemberAsBlkidDoes()
    {
        using var dir = new TempDir();
        var images = new (string Name, byte[] Bytes)[]
        {
            ("v10", MdImages.Version1(new MdImages.Member(), 0, Size)),
            ("v11", MdImages.Version1(new MdImages.Member(), 1, Size)),
            ("v12", MdImages.Version1(new MdImages.Member(), 2, Size)),
            ("v090", MdImages.Version090(new MdImages.Member(), Size, 0, 0)),
        };
        foreach (var (name, bytes) in images)
        {
            string path = dir.File(name + ".img");
            File.WriteAllBytes(path, bytes);
            var ours = SuperblockProbe.ProbePath(path);
            var blkid = Blkid.Export(path);
            Assert.Equal(("linux_raid_member", VolumeUsage.Raid), (ours.Type, ours.Usage));
            Assert.Equal(blkid["TYPE"], ours.Type);
            Assert.Equal(blkid["UUID"], ours.Uuid);
            Assert.Equal(blkid.GetValueOrDefault("LABEL"), ours.Label);
            Assert.Equal(blkid["VERSION"], ours.Version);
        }
    }

    [Fact]
    public void MdadmExamineReadsTheSameFields()
    {
        using var dir = new TempDir();
        Assert.True(File.Exists("/usr/sbin/mdadm") || File.Exists("/sbin/mdadm"), "mdadm is not installed (apt-get install mdadm): it is the oracle of this test");
        var cases = new (string Name, byte[] Bytes, int Role)[]
        {
            ("raid10-12", MdImages.Version1(new MdImages.Member { Level = 10, Layout = 0x102, RaidDisks = 4, Roles = [0, 1, 2, 3], DevNumber = 2, Events = 77 }, 2, Size), 2),
            ("raid5-090", MdImages.Version090(new MdImages.Member { Level = 5, RaidDisks = 3, Events = 9 }, Size, 1, 1), 1),
        };
        foreach (var (name, bytes, role) in cases)
        {
            string path = dir.File(name + ".img");
            File.WriteAllBytes(path, bytes);
            var ours = Assert.Single(Read(bytes));
            var r = Fixtures.Exec("mdadm", ["--examine", "--export", path]);
            Assert.True(r.ExitCode == 0, $"mdadm --examine {name}: {r.Stderr}");
            var mdadm = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
            Assert.Equal(mdadm["MD_UUID"], ours.ArrayUuid);
            Assert.Equal(mdadm["MD_LEVEL"], ours.LevelName);
            Assert.Equal(mdadm["MD_DEVICES"], ours.RaidDisks.ToString());
            Assert.Equal(mdadm["MD_EVENTS"], ours.Events.ToString());
            if (ours.MajorVersion == 1) Assert.Equal(mdadm["MD_NAME"], ours.Name);
            // The long form names the version, this member's role, and checks the checksum.
            var text = Fixtures.Exec("mdadm", ["--examine", path]).Stdout;
            string Line(string key) => text.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(key + " :", StringComparison.Ordinal));
            Assert.EndsWith(": " + (ours.MajorVersion == 0 ? "0.90.00" : ours.Version), Line("Version"));
            Assert.EndsWith("correct", Line("Checksum"));
            if (ours.MajorVersion == 1) Assert.EndsWith($"Active device {ours.Role}", Line("Device Role"));
            Assert.Equal(role, ours.Role);
        }
    }
}

using System.Text.Json;
using CaptureAgent.Targets;
using CaptureAgent.Tests.Integration;
using Xunit;

namespace CaptureAgent.Tests.CaptureKernel.Targets;

/// <summary>GPT and MBR tables made by sfdisk, checked against sfdisk's own JSON dump and blkid's PTUUID.</summary>
public class PartitionTableTests
{
    private const string Sfdisk = "/usr/sbin/sfdisk";

    private static string GptImage(TempDir dir)
    {
        string image = Blkid.Image(dir, "gpt.img", 64);
        Blkid.Run(Sfdisk, ["-q", image], """
            label: gpt
            size=20M, type=linux, name="crash dumps"
            size=10M, type=swap
            size=10M, type=linux
            """);
        return image;
    }

    private static JsonElement SfdiskJson(string image) =>
        JsonDocument.Parse(Fixtures.Exec(Sfdisk, ["-J", image]).Stdout).RootElement.GetProperty("partitiontable");

    [Fact]
    public void GptAgreesWithSfdiskAndBlkid()
    {
        using var dir = new TempDir();
        string image = GptImage(dir);
        var table = PartitionTable.ReadPath(image);
        Assert.NotNull(table);
        var json = SfdiskJson(image);
        var blkid = Blkid.Export(image);
        Assert.Equal(blkid["PTTYPE"], table!.Type);
        Assert.Equal(blkid["PTUUID"], table.DiskId);
        Assert.Equal(json.GetProperty("id").GetString()!.ToLowerInvariant(), table.DiskId);
        var expected = json.GetProperty("partitions").EnumerateArray().ToList();
        Assert.Equal(expected.Count, table.Partitions.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var p = table.Partitions[i];
            Assert.Equal(i + 1, p.Number);
            Assert.Equal(expected[i].GetProperty("uuid").GetString()!.ToLowerInvariant(), p.PartUuid);
            Assert.Equal(expected[i].GetProperty("type").GetString()!.ToLowerInvariant(), p.TypeGuid);
            Assert.Equal(expected[i].TryGetProperty("name", out var name) ? name.GetString() : null, p.Name);
            Assert.Equal(expected[i].GetProperty("start").GetInt64(), p.FirstSector);
            Assert.Equal(expected[i].GetProperty("start").GetInt64() + expected[i].GetProperty("size").GetInt64() - 1, p.LastSector);
            Assert.Equal(Fixtures.Exec(Sfdisk, ["--part-uuid", image, (i + 1).ToString()]).Stdout.Trim().ToLowerInvariant(), p.PartUuid);
        }
        Assert.Equal("crash dumps", table.Partition(1)!.Name);
        Assert.Null(table.Partition(4));
    }

    [Fact]
    public void DamagedPrimaryGptFallsBackToTheBackup()
    {
        using var dir = new TempDir();
        string image = GptImage(dir);
        var good = PartitionTable.ReadPath(image)!;
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 512 + 60;   // inside the disk GUID of the primary header
            f.WriteByte(0x42);
        }
        var fromBackup = PartitionTable.ReadPath(image);
        Assert.NotNull(fromBackup);
        Assert.Equal(good.DiskId, fromBackup!.DiskId);
        Assert.Equal(good.Partitions, fromBackup.Partitions);

        // Without the image's length there is no way to the backup: no table rather than a wrong one.
        var head = new byte[64 * 1024];
        using (var f = File.OpenRead(image)) f.ReadExactly(head);
        Assert.Null(PartitionTable.Read(head.AsMemory(0, 34 * 512)));
    }

    [Fact]
    public void MbrDiskSignatureAndPartUuids()
    {
        using var dir = new TempDir();
        string image = Blkid.Image(dir, "mbr.img", 64);
        Blkid.Run(Sfdisk, ["-q", image], """
            label: dos
            label-id: 0xdeadbeef
            start=2048, size=20480, type=83
            start=22528, size=61440, type=5
            start=24576, size=10240, type=83
            start=36864, size=10240, type=82
            """);
        var table = PartitionTable.ReadPath(image);
        Assert.NotNull(table);
        var blkid = Blkid.Export(image);
        Assert.Equal(("dos", "deadbeef"), (blkid["PTTYPE"], blkid["PTUUID"]));
        Assert.Equal(("dos", "deadbeef"), (table!.Type, table.DiskId));
        Assert.Equal([1, 2], table.Partitions.Select(p => p.Number));
        Assert.Equal("deadbeef-01", table.Partition(1)!.PartUuid);
        Assert.Equal("05", table.Partition(2)!.TypeGuid);
        // Logical partitions (5, 6...) are named by number the same way (root=PARTUUID=SSSSSSSS-PP).
        Assert.Equal("deadbeef-05", PartitionTable.MbrPartUuid(0xdeadbeef, 5));
    }

    [Fact]
    public void NoTableGarbageAndFilesystemsAreNull()
    {
        Assert.Null(PartitionTable.Read(ReadOnlyMemory<byte>.Empty));
        Assert.Null(PartitionTable.Read(new byte[1 << 20]));
        var junk = new byte[1 << 16];
        new Random(3).NextBytes(junk);
        junk[510] = 0x55; junk[511] = 0xAA;
        Assert.Null(PartitionTable.Read(junk));
        junk[446 + 4] = 0xEE;   // protective MBR, but no GPT behind it
        Assert.Null(PartitionTable.Read(junk));
        Assert.Null(PartitionTable.ReadPath("/nonexistent/disk"));

        using var dir = new TempDir();
        string ext = Blkid.Image(dir, "ext.img", 16);
        Blkid.Run("/usr/sbin/mkfs.ext4", ["-q", "-F", ext]);
        Assert.Null(PartitionTable.ReadPath(ext));
        string vfat = Blkid.Image(dir, "vfat.img", 64);
        Blkid.Run("/usr/sbin/mkfs.vfat", ["-F", "16", vfat]);   // a boot sector ends in 55 AA too
        Assert.Null(PartitionTable.ReadPath(vfat));
    }

    [Fact]
    public void DamagedTablesNeverThrow()
    {
        using var dir = new TempDir();
        string image = GptImage(dir);
        var head = new byte[64 * 1024];
        using (var f = File.OpenRead(image)) f.ReadExactly(head);
        var random = new Random(9);
        for (int round = 0; round < 500; round++)
        {
            var damaged = (byte[])head.Clone();
            for (int k = 0; k < 4; k++) damaged[random.Next(0, 34 * 512)] = (byte)random.Next(256);
            PartitionTable.Read(damaged.AsMemory(0, random.Next(0, damaged.Length)));
        }
    }
}
